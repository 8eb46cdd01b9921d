"""An in-memory Visma eAccounting API v2 (Starlette ASGI app) for the demo, tests and benchmarks.

It implements what the connector uses, the way the vendor does: the ``/connect/token``
refresh grant (client_secret_basic, expiring access tokens, rotating refresh tokens),
``/v2/articles``, ``/v2/customers``, ``/v2/articleaccountcodings``, ``/v2/units``,
``/v2/termsofpayments``, ``/v2/companysettings``, the sales documents ``/v2/orders``,
``/v2/customerinvoicedrafts`` and ``/v2/customerinvoices`` (see :mod:`.sim_documents`), the
vouchers ``/v2/vouchers`` (a booked invoice's voucher, see :mod:`.sim_vouchers`) and
the reference lists ``/v2/costcenters``, ``/v2/deliverymethods``, ``/v2/deliveryterms``, with the swagger's JSON shapes, the
``{Meta, Data}`` envelope with ``$page``/``$pagesize``/``$filter``/``$orderby``, the
swagger's validation rules, duplicate-number conflicts, ``ChangedUtc``, and the
600-calls-a-minute-per-endpoint limit answered with ``429`` and ``ErrorCode 4010``.

State lives on ``app.state.sim`` (a :class:`Simulator`) for tests to inspect and change. The
plumbing (request log, gate chain, fault switch, token endpoint, stores, paging) is the
simulator toolkit's (:mod:`apicenterd.testing.sim`); this module is eAccounting's rules.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from apicenterd.testing.sim import (
    BearerAuth,
    ChangeClock,
    Collection,
    GuidIds,
    RateLimitGate,
    TokenServer,
    VendorSim,
    json_response,
    page_number,
    read_json,
)

from .sim_documents import Documents, seed_cost_centers, seed_delivery_methods, seed_delivery_terms
from .sim_rules import (
    ARTICLE_RULES,
    CUSTOMER_RULES,
    DRAFT_RULES,
    INVOICE_RULES,
    ORDER_RULES,
    Rule,
    VendorError,
    compile_filter,
    validate,
)
from .sim_seed_orders import seed_orders
from .sim_vouchers import VOUCHER_RULES, Vouchers

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "demo_refresh_token",
    "Rule",
    "ARTICLE_RULES",
    "CUSTOMER_RULES",
    "Simulator",
    "create_app",
]

DEMO_CLIENT_ID = "apicenterd-demo"
DEMO_CLIENT_SECRET = "apicenterd-demo-secret"
_SIGNING_KEY = b"apicenterd-eaccounting-simulator"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
SCOPES = "ea:api ea:sales offline_access"


def _token_server(ttl: float = 3600.0) -> TokenServer:
    """``/connect/token``: the refresh grant with client_secret_basic; refresh tokens rotate."""
    return TokenServer(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, signing_key=_SIGNING_KEY, ttl=ttl, scope=SCOPES)


def demo_refresh_token() -> str:
    """The refresh token a fresh simulator accepts (once: it rotates like the vendor's)."""
    return _token_server().demo_refresh_token()


_JSON = json_response


def _utc(when: datetime) -> str:
    return f"{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond // 1000:03d}Z"


def _endpoint(path: str) -> str:
    return re.sub(r"/[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}(?=/|$)", "", path).rstrip("/").lower()


# -- the simulated company -----------------------------------------------------------------


class Simulator(VendorSim):
    """One simulated eAccounting company, its OAuth server and its counters."""

    def __init__(
        self,
        *,
        seed: int = 1,
        records: int = 0,
        customers: int = 0,
        orders: int = 0,
        invoices: int = 0,
        rate_limit: int = 600,
        token_ttl: float = 3600.0,
        clock: Callable[[], datetime] | None = None,
        static_token: str | None = None,
    ):
        super().__init__()
        self._rng = random.Random(seed)
        self._id = GuidIds(self._rng)  # one sequence for every kind, so ids stay what they were for a seed
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._changes = ChangeClock(self._clock, tick=timedelta(milliseconds=1))
        self.oauth = _token_server(token_ttl)
        if static_token:  # an access token that never expires (until expire_access_tokens)
            self.oauth.access_tokens[static_token] = math.inf
        self.limiter = RateLimitGate(rate_limit, 60.0, _quota_exceeded, key=lambda request: _endpoint(request.url.path))
        self.gates = [BearerAuth(self.oauth.valid, _denied), self.limiter, self.fault_gate]
        self.articles = Collection(self._id, unique=("Number",), conflict=_conflict("an article"))
        self.customers = Collection(self._id, conflict=_conflict("a customer"))
        self.codings = self._seed_codings()
        self.units = self._seed_units()
        self.terms = self._seed_terms()
        self.company = self._seed_company()
        base = datetime(2024, 1, 1, tzinfo=timezone.utc)
        if orders or invoices:  # documents need customers and articles to refer to
            wanted = max(1, min(orders + invoices, 10))
            records, customers = records or wanted, customers or wanted
        for n in range(1, records + 1):
            self._seed_article(n, base + timedelta(minutes=n))
        for n in range(1, customers + 1):
            self._seed_customer(n, base + timedelta(minutes=n))
        # seeded after the articles and customers, so their ids stay what they were for a seed
        self.cost_centers = seed_cost_centers(self._id)
        self.delivery_methods = seed_delivery_methods(self._id)
        self.delivery_terms = seed_delivery_terms(self._id)
        self.orders: dict[str, dict[str, Any]] = {}
        self.invoice_drafts: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.documents = Documents(self)
        self.vouchers = Vouchers(self)  # a booked invoice's voucher; manual vouchers
        # seeded last, so the ids above stay what they were for a seed
        if orders:
            seed_orders(self, orders, seed=seed)
        for made in seed_orders(self, invoices, seed=seed + 1) if invoices else ():
            draft = self.documents.invoice_order(made["Id"])
            self.documents.convert_draft(draft["Id"])
            del self.orders[made["Id"]]  # only its invoice is seeded

    # seeding (deterministic for a seed)

    def _seed_codings(self) -> dict[str, dict[str, Any]]:
        codings = {}
        for n, rate in enumerate((25, 21, 12, 9, 6, 0)):
            coding_id = self._id()
            codings[coding_id] = {
                "Id": coding_id,
                "Name": f"Goods {rate}% VAT" if rate else "Goods VAT exempt",
                "NameEnglish": f"Goods {rate}% VAT" if rate else "Goods VAT exempt",
                "Type": "Goods",
                "VatRate": f"{rate}%",
                "IsActive": True,
                "VatRatePercent": Decimal(rate) / 100,
                "DomesticSalesSubjectToReversedConstructionVatAccountNumber": 3231,
                "DomesticSalesSubjectToVatAccountNumber": 3001 + n,
                "DomesticSalesVatExemptAccountNumber": 3004,
                "ForeignSalesSubjectToMossAccountNumber": 3106,
                "ForeignSalesSubjectToThirdPartySalesAccountNumber": 3108,
                "ForeignSalesSubjectToVatWithinEuAccountNumber": 3105,
                "ForeignSalesVatExemptOutsideEuAccountNumber": 3105,
                "ForeignSalesVatExemptWithinEuAccountNumber": 3108,
                "DomesticSalesVatCodeExemptAccountNumber": 3004,
                "ChangedUtc": "2023-01-01T00:00:00.000Z",
            }
        return codings

    def _seed_units(self) -> dict[str, dict[str, Any]]:
        units = {}
        for name, code, abbreviation in (("Piece", "PCE", "pcs"), ("Hour", "HUR", "h"), ("Kilogram", "KGM", "kg"), ("Metre", "MTR", "m")):
            unit_id = self._id()
            units[unit_id] = {"Id": unit_id, "Name": name, "Code": code, "Abbreviation": abbreviation}
        return units

    def _seed_terms(self) -> dict[str, dict[str, Any]]:
        terms = {}
        for name, days, type_id, text in (("30 days net", 30, 0, "Normal"), ("14 days net", 14, 0, "Normal"), ("Cash", 0, 2, "Cash")):
            terms_id = self._id()
            terms[terms_id] = {
                "Id": terms_id,
                "Name": name,
                "NameEnglish": name,
                "NumberOfDays": days,
                "TermsOfPaymentTypeId": type_id,
                "TermsOfPaymentTypeText": text,
                "AvailableForSales": True,
                "AvailableForPurchase": True,
            }
        return terms

    def _seed_company(self) -> dict[str, Any]:
        return {
            "Name": "Demo Company B.V.",
            "Email": "finance@demo.example",
            "Phone": "0201234567",
            "Address1": "Herengracht 1",
            "CountryCode": "NL",
            "PostalCode": "1015BA",
            "City": "Amsterdam",
            "CurrencyCode": "EUR",
            "TermsOfPaymentId": next(iter(self.terms)),
            "CorporateIdentityNumber": "12345678",
            "VatCode": "NL001234567B01",
            "ProductVariant": 1,
            "TypeOfBusiness": 1,
            "VatPeriod": 3,
            "ActivatedModules": [],
            "NextCustomerNumber": 1,
            "NextSupplierNumber": 1,
            "NextCustomerInvoiceNumber": 1,
            "NextQuoteNumber": 1,
            "ShowPricesExclVatPC": False,
        }

    def _seed_article(self, n: int, changed: datetime) -> None:
        coding_id = self._rng.choice([c for c in self.codings.values() if c["VatRatePercent"] in (Decimal("0.21"), Decimal("0.09"))])["Id"]
        net = Decimal(self._rng.randrange(100, 20000)) / 100
        vat = self.codings[coding_id]["VatRatePercent"]
        body = {
            "IsActive": True,
            "Number": f"EA-{n:05d}",
            "Name": f"{self._rng.choice(['Blue', 'Red', 'Green', 'Black'])} {self._rng.choice(['mug', 'shirt', 'lamp', 'chair'])} {n}",
            "NetPrice": net,
            "GrossPrice": (net * (1 + vat)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP),
            "CodingId": coding_id,
            "UnitId": next(iter(self.units)),
            "StockBalance": Decimal(self._rng.randrange(0, 100)),
            "PurchasePrice": (net / 2).quantize(Decimal("0.01")),
        }
        self._store_article(self._id(), body, changed)

    def _seed_customer(self, n: int, changed: datetime) -> None:
        body = {
            "Name": f"Customer {n}",
            "EmailAddress": f"customer{n}@example.com",
            "InvoiceAddress1": f"Dorpsstraat {n}",
            "InvoicePostalCode": f"{1000 + n}AB",
            "InvoiceCity": "Utrecht",
            "InvoiceCountryCode": "NL",
            "TermsOfPaymentId": next(iter(self.terms)),
            "IsPrivatePerson": n % 2 == 0,
            "IsActive": True,
        }
        self._store_customer(self._id(), body, changed)

    # helpers for tests (request_count, count, reset_counts, fail_next, expire_access_tokens: VendorSim)

    def article_by_number(self, number: str) -> dict[str, Any] | None:
        """The stored article with ``number`` (as eAccounting compares: case-insensitive), as the API shows it."""
        found: dict[str, Any] | None = self.articles.find("Number", number)
        return found

    def by_reference(self, store: dict[str, dict[str, Any]], reference: str) -> list[dict[str, Any]]:
        """The documents in ``store`` (``sim.orders``, ``sim.invoice_drafts``, ``sim.invoices``) with this YourReference."""
        return [d for d in store.values() if d.get("YourReference") == reference]

    def invoice_order(self, order_id: str) -> dict[str, Any]:
        """Make an invoice draft of an order, as a user does in eAccounting (the order becomes Invoiced)."""
        return self.documents.invoice_order(order_id)

    def convert_draft(self, draft_id: str) -> dict[str, Any]:
        """Book an invoice draft as an invoice, as a user does (the draft disappears)."""
        return self.documents.convert_draft(draft_id)

    def coding_for(self, percent: int | Decimal) -> str:
        """The id of the coding with VAT ``percent``."""
        return next(c["Id"] for c in self.codings.values() if c["VatRatePercent"] * 100 == Decimal(percent))

    # state changes

    def _utc_now(self) -> str:
        return _utc(self._changed_now())

    def _changed_now(self) -> datetime:
        return self._changes.now()

    def _store_article(self, article_id: str, clean: dict[str, Any], changed: datetime | None = None) -> dict[str, Any]:
        coding, unit = self.codings[clean["CodingId"]], self.units[clean["UnitId"]]
        previous = self.articles.get(article_id, {})
        balance = Decimal(clean.get("StockBalance") or 0)
        article = dict.fromkeys(ARTICLE_RULES)
        article.update(clean)
        reserved = Decimal(0)
        article.update(
            Id=article_id,
            CodingName=coding["Name"],
            UnitName=unit["Name"],
            UnitAbbreviation=unit["Abbreviation"],
            StockBalance=balance,
            StockBalanceReserved=reserved,
            StockBalanceAvailable=balance - reserved,
            StockBalanceManuallyChangedUtc=previous.get("StockBalanceManuallyChangedUtc"),
            PurchasePriceManuallyChangedUtc=previous.get("PurchasePriceManuallyChangedUtc"),
            ArticleLabels=clean.get("ArticleLabels") or [],
            SendToWebshop=clean.get("SendToWebshop", True),
            HouseWorkType=clean.get("HouseWorkType"),
            ChangedUtc=_utc(changed or self._changed_now()),
        )
        if previous and Decimal(previous.get("StockBalance") or 0) != balance:
            article["StockBalanceManuallyChangedUtc"] = article["ChangedUtc"]
        self.articles[article_id] = article
        return article

    def _store_customer(self, customer_id: str, clean: dict[str, Any], changed: datetime | None = None) -> dict[str, Any]:
        customer = dict.fromkeys(CUSTOMER_RULES)
        customer.update(clean)
        number = clean.get("CustomerNumber")
        if not number:
            number = str(self.company["NextCustomerNumber"])
            self.company["NextCustomerNumber"] += 1
        customer.update(
            Id=customer_id,
            CustomerNumber=number,
            TermsOfPayment=self.terms[clean["TermsOfPaymentId"]],
            EmailAddresses=clean.get("EmailAddresses") or [],
            CustomerLabels=clean.get("CustomerLabels") or [],
            ChangedUtc=_utc(changed or self._changed_now()),
        )
        self.customers[customer_id] = customer
        return customer

    def error_response(self, exc: VendorError) -> Response:
        """eAccounting's error body: ErrorCode, DeveloperErrorMessage, ErrorId."""
        body = {"ErrorCode": exc.code, "DeveloperErrorMessage": exc.message, "ErrorId": str(uuid.uuid4())}
        return json_response(body, exc.status, exc.headers)

    # lists

    def page(self, request: Request, items: list[dict[str, Any]], rules: Mapping[str, Rule] | None) -> Response:
        """The ``{Meta, Data}`` page of ``items`` that the query's $filter/$orderby/$page/$pagesize select."""
        query = request.query_params
        unknown = sorted(k for k in query if k.startswith("$") and k not in ("$page", "$pagesize", "$filter", "$orderby"))
        if unknown:
            raise VendorError(400, 2000, f"The query parameter {unknown[0]} is not supported.")
        try:
            page = int(query.get("$page", 1))
            size = min(int(query.get("$pagesize", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
        except ValueError:
            raise VendorError(400, 2000, "$page and $pagesize must be integers") from None
        if page < 1 or size < 1:
            raise VendorError(400, 2000, "$page and $pagesize must be 1 or more")

        if rules is not None and query.get("$filter"):
            predicate = compile_filter(query["$filter"], rules)  # once per request, not per item
            items = [i for i in items if predicate(i)]
        if query.get("$orderby"):
            field, _, direction = query["$orderby"].strip().partition(" ")
            if rules is None or field not in rules or direction.lower() not in ("", "asc", "desc"):
                raise VendorError(400, 2000, f"$orderby: cannot order by {query['$orderby']!r}")
            items = sorted(items, key=lambda i: (i.get(field) is not None, i.get(field) or ""), reverse=direction.lower() == "desc")
        numbered = page_number(items, page, size)
        return _JSON(
            {
                "Meta": {
                    "CurrentPage": page,
                    "PageSize": size,
                    "TotalNumberOfPages": numbered.total_pages,
                    "TotalNumberOfResults": numbered.total,
                    "ServerTimeUtc": _utc(self._clock()),
                },
                "Data": numbered.items,
            }
        )

    # articles and customers

    def write_article(self, body: Any, article_id: str | None = None) -> dict[str, Any]:
        """Validate and store an article (POST when ``article_id`` is None, else PUT)."""
        clean = validate(body, ARTICLE_RULES)
        if clean["CodingId"] not in self.codings:
            raise VendorError(400, 3000, f"ResourceNotFound - CodingId {clean['CodingId']} does not exist.")
        if clean["UnitId"] not in self.units:
            raise VendorError(400, 3000, f"ResourceNotFound - UnitId {clean['UnitId']} does not exist.")
        self.articles.check_unique("Number", clean["Number"], article_id)
        return self._store_article(article_id or self._id(), clean)

    def write_customer(self, body: Any, customer_id: str | None = None) -> dict[str, Any]:
        """Validate and store a customer (POST when ``customer_id`` is None, else PUT)."""
        clean = validate(body, CUSTOMER_RULES)
        if clean["TermsOfPaymentId"] not in self.terms:
            raise VendorError(400, 3000, f"ResourceNotFound - TermsOfPaymentId {clean['TermsOfPaymentId']} does not exist.")
        self.customers.check_unique("CustomerNumber", clean.get("CustomerNumber"), customer_id)
        return self._store_customer(customer_id or self._id(), clean)


# -- routes ------------------------------------------------------------------------------


_NUMBER_EQ = re.compile(r"Number eq '((?:[^']|'')*)'")
_NUMBERS_EQ = re.compile(r"Number eq '(?:[^']|'')*'(?:\s+or\s+Number eq '(?:[^']|'')*')*")

_api = Simulator.api


def _denied() -> VendorError:
    return VendorError(
        401,
        4005,
        "AuthorizationException - Authorization has been denied for this request.",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _quota_exceeded(wait: float, gate: RateLimitGate) -> VendorError:
    return VendorError(
        429, 4010, f"API calls quota exceeded! maximum admitted {gate.limit} per Minute. Try again in {max(1, math.ceil(wait))} seconds."
    )


def _conflict(what: str) -> Callable[[str, Any], VendorError]:
    return lambda prop, value: VendorError(400, 4000, f"Conflict - {what} with {prop} '{value}' already exists.")


async def _body(request: Request) -> Any:
    return await read_json(request, lambda: VendorError(400, 2000, "DataModelValidationError - the request body is not valid JSON"))


def _one(store: dict[str, dict[str, Any]], item_id: str, what: str) -> dict[str, Any]:
    if item_id not in store:
        raise VendorError(404, 3000, f"ResourceNotFound - {what} {item_id} was not found.")
    return store[item_id]


@_api
async def articles(sim: Simulator, request: Request) -> Response:
    """GET (a page of) or POST articles."""
    if request.method == "POST":
        return _JSON(sim.write_article(await _body(request)))
    expression = request.query_params.get("$filter", "").strip()
    if expression and _NUMBERS_EQ.fullmatch(expression):
        # the connector's look-up by SKU(s): answered from the index, same result as the scan
        numbers = [m.replace("''", "'") for m in _NUMBER_EQ.findall(expression)]
        found = [a for a in (sim.article_by_number(n) for n in dict.fromkeys(numbers)) if a is not None]
        return sim.page(request, found, ARTICLE_RULES)
    return sim.page(request, list(sim.articles.values()), ARTICLE_RULES)


def _writable(attribute: str, write: str, rules: Mapping[str, Rule], what: str):
    @_api
    async def listing(sim: Simulator, request: Request) -> Response:
        """GET a page of the items, or POST a new one."""
        if request.method == "POST":
            return _JSON(getattr(sim, write)(await _body(request)))
        return sim.page(request, list(getattr(sim, attribute).values()), rules)

    @_api
    async def single(sim: Simulator, request: Request) -> Response:
        """GET or PUT one item."""
        item_id = request.path_params["id"]
        item = _one(getattr(sim, attribute), item_id, what)
        if request.method == "PUT":
            return _JSON(getattr(sim, write)(await _body(request), item_id))
        return _JSON(item)

    return listing, single


def _reference(attribute: str, what: str):
    @_api
    async def listing(sim: Simulator, request: Request) -> Response:
        """GET a page of the reference list."""
        return sim.page(request, list(getattr(sim, attribute).values()), None)

    @_api
    async def single(sim: Simulator, request: Request) -> Response:
        """GET one item of the reference list."""
        return _JSON(_one(getattr(sim, attribute), request.path_params["id"], what))

    return listing, single


@_api
async def company_settings(sim: Simulator, request: Request) -> Response:
    """GET the company settings."""
    return _JSON(sim.company)


def _documents(attribute: str, rules: Mapping[str, Rule], write: str, what: str):
    @_api
    async def listing(sim: Simulator, request: Request) -> Response:
        """GET a page of the documents, or POST a new one."""
        if request.method == "POST":
            created = getattr(sim.documents, write)(await _body(request))
            if attribute == "invoices":
                # POST /v2/customerinvoices answers InvoiceUrlApi, not the invoice
                return _JSON({"Url": f"{str(request.base_url).rstrip('/')}/v2/customerinvoices/{created['Id']}"})
            return _JSON(created)
        return sim.page(request, list(getattr(sim, attribute).values()), rules)

    @_api
    async def single(sim: Simulator, request: Request) -> Response:
        """GET one document."""
        return _JSON(_one(getattr(sim, attribute), request.path_params["id"], what))

    return listing, single


@_api
async def vouchers(sim: Simulator, request: Request) -> Response:
    """GET a page of the vouchers (all fiscal years), or POST a manual voucher."""
    if request.method == "POST":
        return _JSON(sim.vouchers.write_manual(await _body(request)))
    return sim.page(request, list(sim.vouchers.store.values()), VOUCHER_RULES)


async def _token(request: Request) -> Response:
    return await request.app.state.sim.oauth.endpoint(request)


def create_app(*, seed: int = 1, records: int = 0, **options: Any) -> Starlette:
    """The simulator app; ``options``: ``customers``, ``orders`` and ``invoices`` (seeded, after
    ``records`` articles; orders and invoices bring articles and customers of their own when none
    are asked for), ``rate_limit`` (calls a minute per
    endpoint, 0 = off), ``token_ttl`` (seconds), ``clock`` (returns an aware UTC datetime),
    ``static_token`` (an access token accepted without any token request, for ``access_token``)."""
    _, article = _writable("articles", "write_article", ARTICLE_RULES, "Article")
    customers, customer = _writable("customers", "write_customer", CUSTOMER_RULES, "Customer")
    codings, coding = _reference("codings", "ArticleAccountCoding")
    units, unit = _reference("units", "Unit")
    terms, term = _reference("terms", "TermsOfPayment")
    methods, method = _reference("delivery_methods", "DeliveryMethod")
    delivery_terms, delivery_term = _reference("delivery_terms", "DeliveryTerm")
    cost_centers, _ = _reference("cost_centers", "CostCenter")
    orders, order = _documents("orders", ORDER_RULES, "write_order", "Order")
    drafts, draft = _documents("invoice_drafts", DRAFT_RULES, "write_draft", "CustomerInvoiceDraft")
    invoices, invoice = _documents("invoices", INVOICE_RULES, "write_invoice", "CustomerInvoice")
    app = Starlette(
        routes=[
            Route("/connect/token", _token, methods=["POST"]),
            Route("/v2/companysettings", company_settings, methods=["GET"]),
            Route("/v2/articles", articles, methods=["GET", "POST"]),
            Route("/v2/articles/{id}", article, methods=["GET", "PUT"]),
            Route("/v2/customers", customers, methods=["GET", "POST"]),
            Route("/v2/customers/{id}", customer, methods=["GET", "PUT"]),
            Route("/v2/articleaccountcodings", codings, methods=["GET"]),
            Route("/v2/articleaccountcodings/{id}", coding, methods=["GET"]),
            Route("/v2/units", units, methods=["GET"]),
            Route("/v2/units/{id}", unit, methods=["GET"]),
            Route("/v2/termsofpayments", terms, methods=["GET"]),
            Route("/v2/termsofpayments/{id}", term, methods=["GET"]),
            Route("/v2/deliverymethods", methods, methods=["GET"]),
            Route("/v2/deliverymethods/{id}", method, methods=["GET"]),
            Route("/v2/deliveryterms", delivery_terms, methods=["GET"]),
            Route("/v2/deliveryterms/{id}", delivery_term, methods=["GET"]),
            Route("/v2/costcenters", cost_centers, methods=["GET"]),
            Route("/v2/orders", orders, methods=["GET", "POST"]),
            Route("/v2/orders/{id}", order, methods=["GET"]),
            Route("/v2/customerinvoicedrafts", drafts, methods=["GET", "POST"]),
            Route("/v2/customerinvoicedrafts/{id}", draft, methods=["GET"]),
            Route("/v2/customerinvoices", invoices, methods=["GET", "POST"]),
            Route("/v2/customerinvoices/{id}", invoice, methods=["GET"]),
            Route("/v2/vouchers", vouchers, methods=["GET", "POST"]),
        ]
    )
    app.state.sim = Simulator(seed=seed, records=records, **options)
    return app
