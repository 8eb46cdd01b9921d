"""The Visma eAccounting connector: products, stock, customers, orders and invoices through the eAccounting API v2."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from apicenterd import (
    Change,
    Connector,
    ConnectorSettings,
    Customer,
    DocumentRequest,
    DocumentSink,
    Entity,
    FatalError,
    Found,
    Invoice,
    OAuth2RefreshAuth,
    Order,
    Product,
    RateLimit,
    Record,
    RecordError,
    Sink,
    Source,
    StockLevel,
)

from . import documents as docs
from . import mapping
from .client import EAccountingClient, cursor_of, endpoint_key, filter_since, odata_string
from .invoice_source import InvoiceSource
from .order_source import OrderSource
from .sales import INVOICE_KINDS, ORDER_KINDS, SalesDocuments
from .static_token import StaticTokenAuth
from .voucher_source import SALES_VOUCHER_TYPES, VOUCHER_TYPES, VoucherSource

__all__ = ["EAccountingConnector", "EAccountingSettings"]

MIN_CURSOR = "0001-01-01T00:00:00.000000Z"

RecordT = TypeVar("RecordT", bound=Record)


class EAccountingSettings(ConnectorSettings):
    """Connection settings of an eAccounting connection."""

    base_url: str = Field(
        default="https://eaccountingapi.vismaonline.com",
        description="API root without /v2 (sandbox: https://eaccountingapi-sandbox.test.vismaonline.com)",
    )
    token_url: str = Field(
        default="https://identity.vismaonline.com/connect/token",
        description="OAuth2 token endpoint (sandbox: https://identity-sandbox.test.vismaonline.com/connect/token)",
    )
    client_id: str | None = Field(
        default=None, min_length=1, description="OAuth2 client id from the Visma Developer Portal (unless access_token)"
    )
    client_secret: SecretStr | None = Field(default=None, description="OAuth2 client secret (unless access_token)")
    refresh_token: SecretStr | None = Field(
        default=None, description="Bootstraps an empty token store; rotated tokens are kept in the state store"
    )
    access_token: SecretStr | None = Field(
        default=None,
        description=(
            "A static access token used as it is, never refreshed (instead of client_id, client_secret and "
            "refresh_token); when eAccounting rejects it the connection pauses until a reload brings a new one"
        ),
    )
    voucher_types: list[int] = Field(
        default=list(SALES_VOUCHER_TYPES),
        min_length=1,
        description="Journal source (sales bookings): the VoucherTypes read (14/15 customer invoices, 23/24 quick invoices)",
    )
    article_coding_id: str | None = Field(
        default=None, description="CodingId for every article; unset: the first active coding with the product's VAT rate"
    )
    unit_id: str | None = Field(
        default=None, description="UnitId for articles whose unit matches no eAccounting unit; unset: the first unit"
    )
    terms_of_payment_id: str | None = Field(
        default=None, description="TermsOfPaymentId for new customers; unset: the company's default"
    )
    page_size: int = Field(default=100, ge=1, le=1000, description="$pagesize of list requests")
    truncate_names: bool = Field(
        default=False, description="Cut article names to eAccounting's 50 characters instead of rejecting them"
    )

    @model_validator(mode="after")
    def _one_way_to_sign_in(self) -> EAccountingSettings:
        if self.access_token is not None:
            if not self.access_token.get_secret_value().strip():
                raise ValueError("access_token is empty")
            extra = [f for f in ("client_id", "client_secret", "refresh_token") if getattr(self, f) is not None]
            if extra:
                raise ValueError(
                    f"access_token (a static token, never refreshed) and {', '.join(extra)} (OAuth2 refresh) exclude "
                    f"each other: remove {'them' if len(extra) > 1 else 'it'} or access_token"
                )
        else:
            missing = [f for f in ("client_id", "client_secret") if getattr(self, f) is None]
            if missing:
                raise ValueError(
                    f"{' and '.join(missing)} {'are' if len(missing) > 1 else 'is'} required for OAuth2 "
                    "(or give a static access_token instead)"
                )
        return self

    @field_validator("base_url", "token_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.rstrip("/")
        # the paths already start with /v2
        return value[: -len("/v2")] if value.endswith("/v2") else value

    @field_validator("voucher_types")
    @classmethod
    def _voucher_types(cls, value: list[int]) -> list[int]:
        unknown = [t for t in value if t not in VOUCHER_TYPES]
        if unknown:
            raise ValueError(f"unknown VoucherType {unknown[0]} (eAccounting's are {', '.join(map(str, VOUCHER_TYPES))})")
        return value


FIND_MANY_CHUNK = 25
"""SKUs per look-up call: keeps the URL short (well under 2,000 characters)."""


class _Changes(Source[RecordT]):
    """Records of one eAccounting list changed since a ``ChangedUtc`` cursor, page by page.

    Paged in the API's default order, not ``$orderby=ChangedUtc``: in that order a record
    changed while paging jumps to the last page and pushes a neighbour onto a page already
    read. In the default order a changed record keeps its place; one read twice (a page
    shifted by a create) is yielded twice, the later one being the newer. Records older
    than the ones yielded may still be unread, so every change carries ``since`` (or
    ``MIN_CURSOR`` from the beginning: the cursor does not move) except the last, which
    carries the newest ``ChangedUtc`` seen: the cursor advances once, when the whole read
    is settled. A run that stops half-way reads the same records again next time; the
    engine skips the unchanged ones by hash. Memory: one page and one pending change.
    """

    connector: EAccountingConnector
    path: ClassVar[str]
    what: ClassVar[str]

    async def converter(self) -> Callable[[dict[str, Any]], RecordT]:
        """vendor item -> canonical record (RecordError/ValueError when it cannot be)."""
        raise NotImplementedError

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        to_record = await self.converter()
        params = {"$filter": filter_since(since)} if since else {}
        floor = since or MIN_CURSOR
        newest = floor
        pending: Change | None = None
        api = self.connector.client
        async for data in api.pages(self.path, what=f"{self.what} changed since {since or 'the beginning'}", params=params):
            for item in data:
                item_id = str(item.get("Id"))
                try:
                    if item.get("ChangedUtc"):
                        newest = max(newest, cursor_of(item["ChangedUtc"]))
                except ValueError as exc:  # read it all the same: a bad timestamp must not end the run
                    self.connector.context.log.warning("eaccounting_bad_changed_utc", entity=self.what, id=item_id, error=str(exc))
                if pending is not None:
                    yield pending
                # an item that cannot be mapped is a failed change (audited, dead-lettered), not a gap
                pending = self.mapped(item_id, floor, functools.partial(to_record, item))
        if pending is not None:
            yield dataclasses.replace(pending, cursor=newest)

    async def backlog(self, since: str | None) -> int | None:
        """The records :meth:`changes` reads from ``since``: the list's ``Meta.TotalNumberOfResults``
        for the same ``$filter``, in one call of one item."""
        params = {"$filter": filter_since(since)} if since else {}
        what = f"how many {self.what} changed since {since or 'the beginning'}"
        body = await self.connector.client.get(self.path, what=what, params={**params, "$page": 1, "$pagesize": 1})
        meta, _ = self.connector.client._envelope(body, what)
        total = meta.get("TotalNumberOfResults")
        return total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None


class ArticleSource(_Changes[Product]):
    """Articles as products (their VAT from the account coding, in the company's currency)."""

    path, what = "/v2/articles", "products"
    field_map = {k: ", ".join(v) for k, v in mapping.PRODUCT_FIELDS.items()}

    async def converter(self) -> Callable[[dict[str, Any]], Product]:
        rates, currency = await self.connector.vat_rates(), await self.connector.currency()
        return lambda article: mapping.article_to_product(article, vat_rate=rates.get(str(article.get("CodingId"))), currency=currency)


class CustomerSource(_Changes[Customer]):
    """Customers (companies with their contact person, private persons)."""

    path, what = "/v2/customers", "customers"
    field_map = {k: ", ".join(v) for k, v in mapping.CUSTOMER_FIELDS.items()}

    async def converter(self) -> Callable[[dict[str, Any]], Customer]:
        return mapping.api_to_customer


class ArticleSink(Sink[Product]):
    """Articles by ``Number`` (the SKU); the VAT rate picks the ``CodingId``, the unit the ``UnitId`` (on create)."""

    writes_in_flight = 4  # each record is its own article/customer: independent writes

    connector: EAccountingConnector
    written_fields = frozenset(mapping.PRODUCT_FIELDS)  # unit: on create only
    field_map = {k: ", ".join(v) for k, v in mapping.PRODUCT_FIELDS.items()}

    async def _found(self, article: dict[str, Any]) -> Found:
        conn = self.connector
        rate = (await conn.vat_rates()).get(str(article.get("CodingId")))
        record = mapping.article_to_product(article, vat_rate=rate, currency=await conn.currency())
        return Found(id=str(article["Id"]), record=record, vendor=article)

    async def find(self, key: str) -> Found | None:
        article = await self.connector.article_by_number(key)
        return None if article is None else await self._found(article)

    async def find_many(self, keys: Sequence[str]) -> Mapping[str, Found]:
        """``FIND_MANY_CHUNK`` Numbers per call with an OData ``or`` filter (documented by Visma,
        unverified against the live API)."""
        return {sku: await self._found(a) for sku, a in (await self.connector.articles_by_number(keys)).items()}

    async def create(self, record: Product) -> str:
        conn = self.connector
        await conn.check_currency(record)
        body = mapping.new_article(
            record,
            coding_id=await conn.coding_id(record),
            unit_id=await conn.unit_id(record),
            truncate_names=conn.settings.truncate_names,
        )
        created = await conn.client.post("/v2/articles", body, what=f"article {record.sku!r}")
        return _id_of(created, f"article {record.sku!r}")

    async def update(self, target_id: str, record: Product, fields: frozenset[str]) -> None:
        await self._update(target_id, record, fields, None)

    async def update_found(self, found: Found, record: Product, fields: frozenset[str]) -> None:
        """The article as the look-up read it is the PUT's base: no second GET."""
        await self._update(found.id, record, fields, found.vendor)

    async def _update(self, target_id: str, record: Product, fields: frozenset[str], current: Mapping[str, Any] | None) -> None:
        conn = self.connector
        if "price_excl_tax" in fields or "price_incl_tax" in fields or "purchase_price" in fields:
            await conn.check_currency(record)
        changes = mapping.article_fields(
            record,
            fields,
            coding_id=await conn.coding_id(record) if "tax_rate" in fields else None,
            truncate_names=conn.settings.truncate_names,
        )
        await conn.patch(f"/v2/articles/{target_id}", changes, what=f"article {record.sku!r}", current=current)

    def normalize(self, record: Product) -> Product:
        """Cents, 50-character names (UTF-16 code units); RecordError for what eAccounting refuses."""
        return mapping.normalize_product(record, truncate_names=self.connector.settings.truncate_names)


class StockSink(Sink[StockLevel]):
    """The article's ``StockBalance`` (the canonical ``available``); no stock without an article."""

    connector: EAccountingConnector
    written_fields = frozenset({"available"})
    field_map = {"sku": "Number", "available": "StockBalance"}

    async def find(self, key: str) -> Found | None:
        article = await self.connector.article_by_number(key)
        return None if article is None else Found(id=str(article["Id"]), record=mapping.article_to_stock(article))

    async def find_many(self, keys: Sequence[str]) -> Mapping[str, Found]:
        articles = await self.connector.articles_by_number(keys)
        return {sku: Found(id=str(a["Id"]), record=mapping.article_to_stock(a), vendor=a) for sku, a in articles.items()}

    async def create(self, record: StockLevel) -> str:
        raise RecordError(f"no article with number {record.sku!r} in eAccounting; sync products first")

    async def update(self, target_id: str, record: StockLevel, fields: frozenset[str]) -> None:
        await self._update(target_id, record, fields, None)

    async def update_found(self, found: Found, record: StockLevel, fields: frozenset[str]) -> None:
        """The article as the look-up read it is the PUT's base: no second GET."""
        await self._update(found.id, record, fields, found.vendor)

    async def _update(self, target_id: str, record: StockLevel, fields: frozenset[str], current: Mapping[str, Any] | None) -> None:
        if not record.tracked or (fields and "available" not in fields):
            return  # the source does not manage this SKU's stock, or nothing we store changed
        changes = {"StockBalance": mapping.stock_balance(record.available, f"stock of article {record.sku!r}")}
        await self.connector.patch(f"/v2/articles/{target_id}", changes, what=f"stock of article {record.sku!r}", current=current)

    def normalize(self, record: StockLevel) -> StockLevel:
        return mapping.normalize_stock(record)


class CustomerSink(Sink[Customer]):
    """Customers by e-mail (``$filter=EmailAddress eq ...``), else customer number or name."""

    writes_in_flight = 4  # each record is its own article/customer: independent writes

    connector: EAccountingConnector
    written_fields = frozenset(mapping.CUSTOMER_FIELDS)
    field_map = {k: ", ".join(v) for k, v in mapping.CUSTOMER_FIELDS.items()}

    async def find(self, key: str) -> Found | None:
        customer = await self.connector.customer_by_key(key)
        if customer is None:
            return None
        return Found(id=str(customer["Id"]), record=mapping.api_to_customer(customer), vendor=customer)

    async def create(self, record: Customer) -> str:
        conn = self.connector
        body = mapping.new_customer(record, terms_of_payment_id=await conn.terms_of_payment_id())
        created = await conn.client.post("/v2/customers", body, what=f"customer {record.key()!r}")
        return _id_of(created, f"customer {record.key()!r}")

    async def update(self, target_id: str, record: Customer, fields: frozenset[str]) -> None:
        changes = mapping.customer_fields(record, fields)
        await self.connector.patch(f"/v2/customers/{target_id}", changes, what=f"customer {record.key()!r}")

    def normalize(self, record: Customer) -> Customer:
        return mapping.normalize_customer(record)


DOCUMENT_FIELD_MAP = {
    "number": "YourReference",
    "customer_id": "CustomerId",
    "created_at": "OrderDate / InvoiceDate",
    "lines.*.sku": "Rows[].ArticleId (by Number)",
    "lines.*.name": "Rows[].Text",
    "lines.*.quantity": "Rows[].Quantity",
    "lines.*.unit_price": "Rows[].UnitPrice",
    "lines.*.discount": "Rows[].DiscountPercentage",
    "billing_address.street": "InvoiceAddress1",
    "billing_address.postcode": "InvoicePostalCode",
    "billing_address.city": "InvoiceCity",
    "billing_address.country": "InvoiceCountryCode",
    "shipping_address.street": "DeliveryAddress1",
    "shipping_address.postcode": "DeliveryPostalCode",
    "shipping_address.city": "DeliveryCity",
    "shipping_address.country": "DeliveryCountryCode",
    "currency": "CurrencyCode",
}


class OrderSink(DocumentSink[Order]):
    """An order (``/v2/orders``), invoice draft or invoice, as the flow's ``document`` asks; the
    source's number is kept in ``YourReference``, which :meth:`find` searches in all three (an
    order may have been invoiced since). See :mod:`.documents` for the rows."""

    connector: EAccountingConnector
    documents = frozenset(docs.DOCUMENT_PATHS)
    settings = docs.OrderSettings
    written_fields = docs.ORDER_WRITTEN_FIELDS
    field_map = DOCUMENT_FIELD_MAP

    async def find(self, number: str) -> Found | None:
        return await self.connector.sales.find(number, ORDER_KINDS)

    async def create(self, request: DocumentRequest[Order]) -> str:
        return await self.connector.sales.create_order(request)

    def normalize(self, record: Order) -> Order:
        return docs.normalize_order(record)


class InvoiceSink(DocumentSink[Invoice]):
    """An invoice draft or a booked invoice (``target_settings.document``)."""

    connector: EAccountingConnector
    documents = frozenset(docs.DOCUMENT_PATHS)
    settings = docs.InvoiceSettings
    written_fields = docs.INVOICE_WRITTEN_FIELDS
    field_map = DOCUMENT_FIELD_MAP

    async def find(self, number: str) -> Found | None:
        return await self.connector.sales.find(number, INVOICE_KINDS, as_invoice=True)

    async def create(self, request: DocumentRequest[Invoice]) -> str:
        return await self.connector.sales.create_invoice(request)

    def normalize(self, record: Invoice) -> Invoice:
        return docs.normalize_invoice(record)


def _id_of(created: Any, what: str) -> str:
    if not isinstance(created, dict) or not created.get("Id"):
        raise FatalError(f"{what}: eAccounting confirmed the create but returned no Id")
    return str(created["Id"])


class EAccountingConnector(Connector):
    """Visma eAccounting (Spiris Bookkeeping & Invoicing) API v2.

    Reads products and customers (delta by ``ChangedUtc``) and writes products, stock,
    customers, orders and invoices.

    * **Products** are articles, looked up by ``Number`` (the SKU). The VAT rate picks the
      article account coding (``CodingId``), the unit the ``UnitId`` (on create). Names over 50
      characters are a :class:`~apicenterd.RecordError` unless ``truncate_names`` is set.
    * **Stock** is the article's ``StockBalance``: the canonical ``available`` quantity is
      written there (eAccounting computes its own reserved/available from its orders).
      There is no stock without an article: sync products first.
    * **Customers** are looked up by e-mail address (``$filter=EmailAddress eq ...``);
      companies get the contact person fields, private persons ``IsPrivatePerson``.
    * **Orders** become an order (``/v2/orders``), an invoice draft or an invoice, as
      ``Order.document`` asks; the source's order number is kept in ``YourReference``, which
      :meth:`find` searches in all three (an order may have been invoiced since). **Invoices**
      become invoice drafts or invoices the same way. See :mod:`.documents` for the rows.
    * Updates read the object, change only the properties behind the given canonical
      fields, and PUT it back (eAccounting's PUT replaces the object); nothing changed,
      no PUT.

    Authentication is OAuth2 with rotating refresh tokens (``OAuth2RefreshAuth``), or a static
    ``access_token`` that is never refreshed (:class:`.static_token.StaticTokenAuth`); the
    vendor counts 600 calls a minute per endpoint, which :attr:`rate_limits` declares.
    """

    name: ClassVar[str] = "eaccounting"
    title: ClassVar[str] = "Visma eAccounting"
    Settings: ClassVar[type[ConnectorSettings]] = EAccountingSettings
    sources = {
        Entity.PRODUCTS: ArticleSource,
        Entity.CUSTOMERS: CustomerSource,
        Entity.ORDERS: OrderSource,
        Entity.INVOICES: InvoiceSource,
        Entity.JOURNAL: VoucherSource,
    }
    sinks = {
        Entity.PRODUCTS: ArticleSink,
        Entity.STOCK: StockSink,
        Entity.CUSTOMERS: CustomerSink,
        Entity.ORDERS: OrderSink,
        Entity.INVOICES: InvoiceSink,
    }
    rate_limits = (RateLimit(600, 60.0, name="per_endpoint", key=endpoint_key),)
    # [3rd, unverified] Visma Connect: README of shared/api-specs, section 1
    oauth_authorize_url: ClassVar[str | None] = "https://identity.vismaonline.com/connect/authorize"
    oauth_scopes: ClassVar[tuple[str, ...]] = ("ea:api", "ea:sales", "ea:accounting_readonly", "offline_access")
    default_port: ClassVar[int | None] = 8702

    settings: EAccountingSettings

    def __init__(self, settings: ConnectorSettings, context: Any):
        super().__init__(settings, context)
        self.api: EAccountingClient | None = None
        self._codings: list[dict[str, Any]] | None = None
        self._units: list[dict[str, Any]] | None = None
        self._company: dict[str, Any] | None = None
        self._terms_id: str | None = None
        self._sales: SalesDocuments | None = None

    @classmethod
    def oauth_consent_url(cls, settings: ConnectorSettings) -> str | None:
        """Visma Connect's consent page beside the token endpoint in ``token_url``: the sandbox's
        (``identity-sandbox.test.vismaonline.com``) for a sandbox token URL, production's otherwise."""
        token_url = getattr(settings, "token_url", "") or ""
        if token_url.rstrip("/").endswith("/connect/token"):
            return token_url.rstrip("/").removesuffix("token") + "authorize"
        return cls.oauth_authorize_url

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Create the authenticated API client."""
        s = self.settings
        self._token_client = self.context.http_client(base_url=s.token_url, timeout=s.timeout)
        auth: httpx.Auth
        if s.access_token is not None:
            auth = StaticTokenAuth(s.access_token.get_secret_value(), connection=self.context.name)
        else:
            assert s.client_id is not None and s.client_secret is not None  # the settings' validator
            auth = OAuth2RefreshAuth(
                token_client=self._token_client,
                token_url=s.token_url,
                client_id=s.client_id,
                client_secret=s.client_secret.get_secret_value(),
                tokens=self.context.tokens,
                initial_refresh_token=s.refresh_token.get_secret_value() if s.refresh_token else None,
                connection=self.context.name,
            )
        self.api = EAccountingClient(
            self.context.http_client(base_url=s.base_url, auth=auth, timeout=s.timeout), page_size=s.page_size
        )
        self._sales = SalesDocuments(self.api, self.context.log, company=self._company_settings, vat_rates=self.vat_rates)

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        if self.api is not None:
            await self.api.aclose()
            await self._token_client.aclose()
            self.api = None

    async def check(self) -> None:
        """GET /v2/companysettings: proves the token, the scopes (ea:sales) and the company."""
        await self._company_settings(refresh=True)

    # -- lookups (cached for the connection's lifetime) ------------------------------------

    async def _company_settings(self, *, refresh: bool = False) -> dict[str, Any]:
        if self._company is None or refresh:
            company = await self.client.get_object("/v2/companysettings", what="company settings")
            if not company.get("Name"):
                raise FatalError("company settings: GET /v2/companysettings returned no company Name")
            self._company = company
        return self._company

    async def currency(self) -> str:
        return ((await self._company_settings()).get("CurrencyCode") or "EUR").upper()

    async def _coding_list(self) -> list[dict[str, Any]]:
        if self._codings is None:
            self._codings = await self.client.all("/v2/articleaccountcodings", what="article account codings")
        return self._codings

    async def vat_rates(self) -> dict[str, Decimal | None]:
        return {str(c.get("Id")): mapping.vat_percent(c) for c in await self._coding_list()}

    async def coding_id(self, product: Product) -> str:
        if self.settings.article_coding_id:
            return self.settings.article_coding_id
        what = f"article {product.sku!r}"
        if product.tax_rate is None:
            raise RecordError(f"{what}: the product has no tax_rate and no article_coding_id is configured")
        active = [c for c in await self._coding_list() if c.get("IsActive", True)]
        for coding in active:
            if mapping.vat_percent(coding) == product.tax_rate:
                return coding["Id"]
        rates = ", ".join(sorted({str(mapping.vat_percent(c)) for c in active}, key=lambda r: Decimal(r)))
        raise RecordError(
            f"{what}: no active article account coding in eAccounting has VAT {product.tax_rate}% (there are: {rates})"
        )

    async def unit_id(self, product: Product) -> str:
        if self._units is None:
            self._units = await self.client.all("/v2/units", what="units")
        if product.unit:
            wanted = product.unit.strip().lower()
            for unit in self._units:
                if wanted in {str(unit.get(k) or "").strip().lower() for k in ("Code", "Abbreviation", "Name")}:
                    return unit["Id"]
        if self.settings.unit_id:
            return self.settings.unit_id
        if not self._units:
            raise RecordError(f"article {product.sku!r}: eAccounting has no units and no unit_id is configured")
        return self._units[0]["Id"]

    async def terms_of_payment_id(self) -> str:
        if self.settings.terms_of_payment_id:
            return self.settings.terms_of_payment_id
        if self._terms_id is None:
            default = (await self._company_settings()).get("TermsOfPaymentId")
            if not default:
                terms = await self.client.all("/v2/termsofpayments", what="terms of payment")
                default = next((t["Id"] for t in terms if t.get("AvailableForSales", True) and t.get("Id")), None)
            if not default:
                raise RecordError("eAccounting has no terms of payment for sales; set terms_of_payment_id")
            self._terms_id = default
        return self._terms_id

    # -- what the sources and sinks share -----------------------------------------------

    @property
    def sales(self) -> SalesDocuments:
        """The sales-document side (made in :meth:`open`)."""
        if self._sales is None:
            raise FatalError(f"connection {self.context.name!r}: used before open() or after aclose()")
        return self._sales

    @property
    def client(self) -> EAccountingClient:
        """The API client (made in :meth:`open`)."""
        if self.api is None:
            raise FatalError(f"connection {self.context.name!r}: used before open() or after aclose()")
        return self.api

    async def article_by_number(self, sku: str) -> dict[str, Any] | None:
        """The article whose Number is ``sku`` (an exact match), or None."""
        found = await self.client.first("/v2/articles", f"Number eq {odata_string(sku)}", what=f"article {sku!r}")
        # an exact match only, in case the server matches case-insensitively
        exact = [a for a in found if a.get("Number") == sku]
        return (exact or found)[0] if (exact or found) else None

    async def articles_by_number(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The articles with these Numbers that exist, ``FIND_MANY_CHUNK`` per call."""
        wanted = list(dict.fromkeys(keys))
        articles: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), FIND_MANY_CHUNK):
            chunk = wanted[start : start + FIND_MANY_CHUNK]
            expression = " or ".join(f"Number eq {odata_string(sku)}" for sku in chunk)
            async for data in self.client.pages("/v2/articles", what=f"{len(chunk)} articles by Number", params={"$filter": expression}):
                for article in data:
                    number = article.get("Number")
                    if number in chunk:  # exact matches only, as in article_by_number()
                        articles[number] = article
        return articles

    async def customer_by_key(self, key: str) -> dict[str, Any] | None:
        """The customer with e-mail ``key`` (a key with ``@``), else customer number, else name."""
        what = f"customer {key!r}"
        if "@" in key:
            found = await self.client.first("/v2/customers", f"EmailAddress eq {odata_string(key)}", what=what)
            matches = [c for c in found if (c.get("EmailAddress") or "").strip().lower() == key.lower()]
        else:
            matches = []
            for prop in ("CustomerNumber", "Name"):
                found = await self.client.first("/v2/customers", f"{prop} eq {odata_string(key)}", what=what)
                matches = [c for c in found if c.get(prop) == key]
                if matches:
                    break
        if len(matches) > 1:
            self.context.log.warning("eaccounting_customer_ambiguous", key=key, ids=[c.get("Id") for c in matches])
        return matches[0] if matches else None

    async def patch(self, path: str, changes: dict[str, Any], *, what: str, current: Mapping[str, Any] | None = None) -> None:
        """Read the object (unless ``current``, just read, is given), change only ``changes``, PUT it
        back (eAccounting's PUT replaces the object); nothing changed, no PUT."""
        if current is None:
            current = await self.client.get_object(path, what=what)
        if all(_same(current.get(key), value) for key, value in changes.items()):
            return  # nothing eAccounting stores would change: spend no PUT
        await self.client.put(path, {**current, **changes}, what=what)

    async def check_currency(self, product: Product) -> None:
        """RecordError when the product's prices are not in the company's currency."""
        currency = await self.currency()
        if product.currency != currency:
            raise RecordError(
                f"article {product.sku!r}: prices are in {product.currency}, the eAccounting company books in {currency}"
            )

    # -- demo / tests ----------------------------------------------------------------

    simulator_seeds = {"products": "records", "customers": "customers", "orders": "orders", "invoices": "invoices"}

    @classmethod
    def simulator(cls, *, seed: int = 1, records: int = 0, **options: Any) -> Any:
        """An in-memory eAccounting (see :mod:`apicenterd_eaccounting.simulator`)."""
        from .simulator import create_app

        return create_app(seed=seed, records=records, **options)

    @classmethod
    def demo_settings(cls, base_url: str) -> dict[str, Any]:
        """Settings the simulator at ``base_url`` accepts (its token endpoint and demo client)."""
        from .simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, demo_refresh_token

        return {
            "base_url": base_url,
            "token_url": f"{base_url.rstrip('/')}/connect/token",
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "refresh_token": demo_refresh_token(),
        }


def _same(current: Any, new: Any) -> bool:
    """Whether a stored property already holds ``new`` (numbers compared as numbers, "" as None)."""
    if isinstance(new, Decimal):
        return mapping.to_decimal(current) == new
    if new is None or new == "":
        return current in (None, "")
    return current == new
