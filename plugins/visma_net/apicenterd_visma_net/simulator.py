"""An in-memory Visma.net ERP on the simulator toolkit: Visma Connect tokens (client credentials
with a tenant, authorization code + refresh token), the v1 controller routes the connector uses
with ``{"value": ...}`` field wrappers, pageNumber/pageSize paging with ``metadata``,
``lastModifiedDateTime`` filters, 201 + ``Location``, Visma.net error bodies and the
``X-RateLimit-*`` headers of its fixed hourly window."""

from __future__ import annotations

import math
import time
import urllib.parse
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from apicenterd.testing.sim import BearerAuth, ChangeClock, TokenServer, VendorError, VendorSim, json_response, read_json, seeded

__all__ = ["DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET", "DEMO_TENANT", "VismaNetSim", "create_app"]

DEMO_CLIENT_ID = "apicenterd-demo-vismanet"
DEMO_CLIENT_SECRET = "demo-secret-vismanet"
DEMO_TENANT = "demo-tenant-0001"
MAX_PAGE_SIZE = 1000
ORDER_TYPES = ("SO", "IN", "CS")
BRANCHES = ("1", "2")
VAT_CODES = ("1", "2", "3")
ATTRIBUTES = {"COLOR": "Colour", "SIZE": "Size", "MATERIAL": "Material", "BRAND": "Brand"}  # the item class's attributes
CUSTOMER_ATTRIBUTES = {"SEGMENT": "Segment", "CHANNEL": "Sales channel"}  # the customer class's attributes
PAYMENT_METHODS = ("BANK", "CARD", "INVOICE", "DD")
SHIP_VIAS = {"POST": "Posten", "PICKUP": "Pick-up at the warehouse", "DHL": "DHL Express"}
SHIPPING_TERMS = {"FCA": "Free carrier", "DAP": "Delivered at place"}
SERVICE_API, INTERACTIVE_API = "vismanet_erp_service_api", "vismanet_erp_interactive_api"
METHOD_SCOPES = {"GET": "read", "POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}
"""What each HTTP method needs of the token (``<api>:<operation>``): the simulator's own copy of
the rule, so the connector's table is checked against it rather than against itself."""

# what the simulator accepts for lastModifiedDateTime (the 9.66 spec's list of formats)
_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f")
_CONDITIONS: dict[str, Callable[[datetime, datetime], bool]] = {
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}


def _now_ms() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _bad(message: str, code: str = "400") -> VendorError:
    return VendorError(400, code, message)


def _value(body: dict[str, Any], field: str, where: str = "") -> Any:
    """The ``value`` of a ``DtoValue`` wrapper; a bare value is refused as the API's model binding does."""
    if field not in body:
        return None
    wrapped = body[field]
    if not isinstance(wrapped, dict) or set(wrapped) != {"value"}:
        raise _bad(f"{where}{field}: expected a field wrapper {{\"value\": ...}}")
    return wrapped["value"]


class VismaNetSim(VendorSim):
    """One Visma.net company."""

    def __init__(
        self,
        *,
        seed: int = 1,
        records: int = 0,
        rate_limit: int = 10_000,
        require_branch: bool = False,
        accounts: tuple[str, ...] | None = None,
    ):
        super().__init__()
        self.accounts = frozenset(accounts) if accounts is not None else None  # the chart of accounts (None: any)
        self.oauth = TokenServer(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, signing_key=b"visma-net-sim", access_prefix="vn.")
        self.service_tokens: dict[str, float] = {}
        self.token_scopes: dict[str, frozenset[str]] = {}  # service token -> the scopes granted with it
        self.approved_scopes = frozenset(f"{SERVICE_API}:{op}" for op in ("read", "create", "update", "delete"))
        """What the service app is approved for in the Developer Portal (asking for more: invalid_scope)."""
        self.interactive_scopes = frozenset(f"{INTERACTIVE_API}:{op}" for op in ("read", "create", "update", "delete"))
        """What the user consented to for the interactive app (every interactive token carries these)."""
        self.scope_requests: list[tuple[str, ...]] = []  # the scopes of each client-credentials token request
        self.rate_limit, self.window_start, self.window_used = rate_limit, time.monotonic(), 0
        self.require_branch = require_branch
        self.clock = ChangeClock(_now_ms, tick=timedelta(milliseconds=1))  # Visma.net stamps to the millisecond
        self.customers: dict[str, dict[str, Any]] = {}
        self.inventory: dict[str, dict[str, Any]] = {}
        self.summaries: dict[str, list[dict[str, Any]]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.journal: dict[str, dict[str, Any]] = {}
        self.next_number = 10000
        self.gates = [BearerAuth(self.token_valid, lambda: VendorError(401, "401", "Authorization has been denied for this request.")),
                      self.scope_gate, self.rate_gate, self.fault_gate]
        self.seed(seed, records)

    # -- tokens ------------------------------------------------------------------------------

    def token_valid(self, token: str) -> bool:
        """A live service-app token, or one the authorization-code server issued."""
        return self.service_tokens.get(token, 0.0) > time.time() or (self.oauth is not None and self.oauth.valid(token))

    def expire_access_tokens(self) -> None:
        super().expire_access_tokens()
        for token in self.service_tokens:
            self.service_tokens[token] = 0.0

    async def token(self, request: Request) -> Response:
        """POST /connect/token: client_credentials (form client_id/client_secret + tenant_id), else the code/refresh grants."""
        assert self.oauth is not None
        form = {k: v[-1] for k, v in urllib.parse.parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return await self.oauth.endpoint(request)
        self.oauth.token_requests += 1
        if (form.get("client_id"), form.get("client_secret")) != (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET):
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        if not form.get("tenant_id"):
            return JSONResponse({"error": "invalid_request", "error_description": "tenant_id is required"}, status_code=400)
        if form["tenant_id"] != DEMO_TENANT:
            return JSONResponse({"error": "invalid_grant", "error_description": "the app has no access to the tenant"}, status_code=400)
        scopes = set(form.get("scope", "").split())
        self.scope_requests.append(tuple(sorted(scopes)))
        if not scopes or not all(s.startswith(f"{SERVICE_API}:") for s in scopes) or not scopes <= self.approved_scopes:
            return JSONResponse({"error": "invalid_scope"}, status_code=400)
        access = "vn." + uuid.uuid4().hex
        self.service_tokens[access] = time.time() + 3600
        self.token_scopes[access] = frozenset(scopes)
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": 3600, "scope": " ".join(sorted(scopes))})

    def scope_gate(self, request: Request) -> None:
        """The token must carry the scope of the call's operation (GET read, POST create, PUT/PATCH
        update, DELETE delete) of its API (service or interactive): else 403, as Visma.net answers
        an insufficient scope (the body's wording is not documented; see the plugin README)."""
        token = request.headers.get("Authorization", "")[7:].strip()
        if token in self.token_scopes:
            granted, needed = self.token_scopes[token], f"{SERVICE_API}:{METHOD_SCOPES.get(request.method, 'read')}"
        else:
            granted, needed = self.interactive_scopes, f"{INTERACTIVE_API}:{METHOD_SCOPES.get(request.method, 'read')}"
        if needed not in granted:
            raise VendorError(
                403,
                "403",
                "Forbidden: the access token does not have the scope required for this operation",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'},
            )

    # -- the rate window (X requests an hour per company + client) -------------------------------

    def _window(self) -> float:
        now = time.monotonic()
        if now - self.window_start >= 3600:
            self.window_start, self.window_used = now, 0
        return 3600 - (now - self.window_start)

    def rate_gate(self, request: Request) -> None:
        left = self._window()
        if self.window_used >= self.rate_limit:
            headers = {**self._headers(left), "Retry-After": str(max(1, math.ceil(left)))}
            raise VendorError(429, "429", "Rate limit exceeded", headers=headers)
        self.window_used += 1

    def _headers(self, left: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_limit - self.window_used)),
            "X-RateLimit-Reset": str(max(0, math.ceil(left))),
            "X-RateLimit-Policy": "4-fixed-window",
        }

    def after(self, request: Request, response: Response) -> Response:
        response.headers.update(self._headers(self._window()))
        return response

    def error_response(self, exc: VendorError) -> Response:
        """Visma.net's error body."""
        body = {
            "ExceptionType": "IPPException",
            "ExceptionMessage": exc.message,
            "ExceptionFaultCode": str(exc.code),
            "ExceptionMessageID": f"{exc.code}_{uuid.uuid4()}",
            "ExceptionDetails": "",
        }
        return json_response(body, exc.status, exc.headers)

    # -- data ----------------------------------------------------------------------------------

    def stamp(self) -> str:
        """A lastModifiedDateTime as Visma.net sends it: company-local, no offset (UTC here)."""
        return self.clock.now().replace(tzinfo=None).isoformat(timespec="milliseconds")

    def number(self) -> str:
        self.next_number += 1
        return str(self.next_number)

    def seed(self, seed: int, records: int) -> None:
        """``records`` inventory items (VN-00001 ...) with stock in two warehouses, and as many customers."""
        for n in range(1, records + 1):
            rng = seeded(seed, "inventory", n)
            sku = f"VN-{n:05d}"
            self.inventory[sku] = {
                "inventoryId": n,
                "inventoryNumber": sku,
                "status": "Active",
                "type": "FinishedGoodItem",
                "description": f"Item {n}",
                "defaultPrice": Decimal(rng.randint(100, 99999)) / 100,
                "vatCode": {"id": "1", "description": "21%"},
                "lastModifiedDateTime": self.stamp(),
            }
            self.summaries[sku] = [
                {
                    "inventory": {"number": sku, "description": f"Item {n}"},
                    "warehouse": {"id": wh, "description": f"Warehouse {wh}"},
                    "available": Decimal(rng.randint(0, 50)),
                    "availableForShipment": Decimal(rng.randint(0, 20)),
                    "onHand": Decimal(rng.randint(50, 100)),
                    "soBooked": Decimal(rng.randint(0, 5)),
                }
                for wh in ("MAIN", "WEB")
            ]
            number = self.number()
            self.customers[number] = {
                "internalId": n,
                "number": number,
                "name": f"Customer {n}",
                "status": "Active",
                "mainAddress": {
                    "addressLine1": f"Street {n}", "postalCode": "0150", "city": "Oslo", "country": {"id": "NO", "name": "Norway"},
                },
                "mainContact": {"name": f"Customer {n}", "email": f"customer{n}@example.com", "phone1": ""},
                "currencyId": "NOK",
                "lastModifiedDateTime": self.stamp(),
                "createdDateTime": self.stamp(),
            }

    def add_order(self, order: dict[str, Any]) -> dict[str, Any]:
        """Put a sales order (SalesOrderDto) in the store as if keyed in on the ERP's screen."""
        order.setdefault("orderNo", self.number())
        order.setdefault("orderType", "SO")
        order["lastModifiedDateTime"] = self.stamp()
        self.orders[f"{order['orderType']}/{order['orderNo']}"] = order
        return order


# -- list helpers ----------------------------------------------------------------------------------


def _parse_when(raw: str) -> datetime:
    for fmt in _FORMATS:
        try:
            return datetime.strptime(raw, fmt)  # noqa: DTZ007 - Visma.net's filter is company-local without a zone
        except ValueError:
            continue
    raise _bad(f"lastModifiedDateTime: '{raw}' is not in an accepted format (yyyy-MM-dd, yyyy-MM-ddTHH:mm:ss.FFF, ...)")


def _listing(request: Request, items: list[dict[str, Any]]) -> Response:
    """Filter by lastModifiedDateTime + condition, page by pageNumber/pageSize, each record with its ``metadata``."""
    query = request.query_params
    when, condition = query.get("lastModifiedDateTime"), query.get("lastModifiedDateTimeCondition")
    if (when is None) != (condition is None):
        raise _bad("LastModifiedDateTime and LastModifiedDateTimeCondition are mutually inclusive")
    if when is not None and condition is not None:
        test = _CONDITIONS.get(condition)
        if test is None:
            raise _bad(f"lastModifiedDateTimeCondition: '{condition}' is not one of >, <, >=, <=")
        bound = _parse_when(when)
        items = [i for i in items if test(datetime.fromisoformat(i["lastModifiedDateTime"]), bound)]
    if ("numberToRead" in query or "skipRecords" in query) and ("pageNumber" in query or "pageSize" in query):
        raise _bad("Pagenumber and pagesize does not work with NumberToRead and SkipRecords")
    try:
        page = int(query.get("pageNumber", "1"))
        size = int(query.get("pageSize", str(MAX_PAGE_SIZE)))
    except ValueError:
        raise _bad("pageNumber and pageSize must be integers") from None
    if page < 1 or size < 1:
        raise _bad("pageNumber and pageSize must be 1 or more")
    size = min(size, MAX_PAGE_SIZE)
    window = items[(page - 1) * size : page * size]
    meta = {"totalCount": len(items), "maxPageSize": MAX_PAGE_SIZE}
    return json_response([{**item, "metadata": meta} for item in window])


def _created(request: Request, number: str) -> Response:
    path = request.url.path.rstrip("/")
    location = str(request.url.replace(path=f"{path}/{urllib.parse.quote(number, safe='')}", query=""))
    return Response(status_code=201, headers={"Location": location})


async def _body(request: Request) -> dict[str, Any]:
    body = await read_json(request, lambda: _bad("The request body is not valid JSON"))
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object")
    return body


def _address(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(f"{where}: expected an object")
    country = _value(value, "countryId", f"{where}.")
    return {
        "addressLine1": _value(value, "addressLine1", f"{where}.") or "",
        "addressLine2": _value(value, "addressLine2", f"{where}.") or "",
        "postalCode": _value(value, "postalCode", f"{where}.") or "",
        "city": _value(value, "city", f"{where}.") or "",
        **({"country": {"id": country, "name": country}} if country else {}),
    }


# -- routes ----------------------------------------------------------------------------------------


async def customers(sim: VismaNetSim, request: Request) -> Response:
    if request.method == "POST":
        body = await _body(request)
        return _save_customer(sim, request, body, None)
    items = list(sim.customers.values())
    email = request.query_params.get("email")
    if email:
        items = [c for c in items if str((c.get("mainContact") or {}).get("email") or "").lower() == email.lower()]
    return _listing(request, items)


def _save_customer(sim: VismaNetSim, request: Request, body: dict[str, Any], number: str | None) -> Response:
    current = sim.customers.get(number) if number else None
    if number and current is None:
        raise VendorError(404, "404", f"Customer with number {number} not found")
    name = _value(body, "name")
    if current is None and not name:
        raise _bad("Error: 'Name' cannot be empty.")
    record = dict(current or {"internalId": len(sim.customers) + 1, "status": "Active", "createdDateTime": sim.stamp()})
    if current is None:
        wanted = _value(body, "number")
        record["number"] = wanted or sim.number()
        if record["number"] in sim.customers:
            raise _bad(f"Customer {record['number']} already exists")
    for field in ("name", "vatRegistrationId", "corporateId", "currencyId", "note"):
        if field in body:
            record[field] = _value(body, field)
    for field, into in (("customerClassId", "customerClass"), ("creditTermsId", "creditTerms"), ("vatZoneId", "vatZone")):
        if field in body:
            record[into] = {"id": _value(body, field)}
    if "glAccounts" in body:  # 9.66 CustomerGlAccountsUpdateDto (read back as CustomerGlAccountsDto)
        accounts = _value(body, "glAccounts")
        if not isinstance(accounts, dict):
            raise _bad("glAccounts: expected an object")
        sales = _value(accounts, "salesAccount", "glAccounts.")
        if sales is not None:
            if sim.accounts is not None and str(sales) not in sim.accounts:
                raise _bad(f"glAccounts.salesAccount: Account '{sales}' cannot be found in the system.")
            record["glAccounts"] = {**(record.get("glAccounts") or {}), "salesAccount": {"number": str(sales), "type": "Income"}}
    if "defaultPaymentMethod" in body:  # 9.66 CustomerDefaultPaymentMethodUpdateDto (read back as defaultPaymentMethodId)
        method = _value(body, "defaultPaymentMethod")
        if not isinstance(method, dict):
            raise _bad("defaultPaymentMethod: expected an object")
        method_id = _value(method, "paymentMethodId", "defaultPaymentMethod.")
        if method_id not in PAYMENT_METHODS:
            raise _bad(f"defaultPaymentMethod.paymentMethodId: Payment method '{method_id}' does not exist")
        record["defaultPaymentMethodId"] = method_id
    if "attributeLines" in body:
        record["attributes"] = _attribute_lines(body["attributeLines"], record.get("attributes"), CUSTOMER_ATTRIBUTES)
    if "mainAddress" in body:
        record["mainAddress"] = _address(_value(body, "mainAddress"), "mainAddress")
    if "mainContact" in body:
        contact = _value(body, "mainContact") or {}
        record["mainContact"] = {k: _value(contact, k, "mainContact.") or "" for k in ("name", "attention", "email", "phone1")}
    record["lastModifiedDateTime"] = sim.stamp()
    sim.customers[record["number"]] = record
    return _created(request, record["number"]) if current is None else Response(status_code=204)


async def customer(sim: VismaNetSim, request: Request) -> Response:
    number = request.path_params["number"]
    if request.method == "PUT":
        return _save_customer(sim, request, await _body(request), number)
    if number not in sim.customers:
        raise VendorError(404, "404", f"Customer with number {number} not found")
    return json_response(sim.customers[number])


def _attribute_lines(lines: Any, current: Any, known: dict[str, str]) -> list[dict[str, Any]]:
    """AttributeLineUpdateDto rows merged into the record's ``attributes`` (AttributeIdValueDto); an attribute
    its class lacks is refused, as the ERP refuses it."""
    values = {a["id"]: a for a in current or []}
    for n, line in enumerate(lines if isinstance(lines, list) else [None]):
        if not isinstance(line, dict):
            raise _bad(f"attributeLines[{n}]: expected an object")
        attribute = _value(line, "attributeId", f"attributeLines[{n}].")
        if attribute not in known:
            raise _bad(f"attributeLines[{n}].attributeId: Attribute '{attribute}' does not exist")
        value = _value(line, "attributeValue", f"attributeLines[{n}].")
        values[attribute] = {"id": attribute, "value": value, "description": known[attribute]}
    return sorted(values.values(), key=lambda a: a["id"])


async def inventories(sim: VismaNetSim, request: Request) -> Response:
    if request.method == "POST":
        return _save_item(sim, request, await _body(request), None)
    return _listing(request, list(sim.inventory.values()))


def _save_item(sim: VismaNetSim, request: Request, body: dict[str, Any], number: str | None) -> Response:
    current = sim.inventory.get(number) if number else None
    if number and current is None:
        raise VendorError(404, "404", f"Inventory item {number} not found")
    record = dict(current or {"inventoryId": len(sim.inventory) + 1, "status": "Active", "type": "FinishedGoodItem"})
    if current is None:
        sku = _value(body, "inventoryNumber")
        if not sku:
            raise _bad("Error: 'Inventory ID' cannot be empty.")
        if sku in sim.inventory:
            raise _bad(f"Inventory item {sku} already exists")
        if not _value(body, "description"):
            raise _bad("Error: 'Description' cannot be empty.")
        record["inventoryNumber"] = sku
    for field in ("description", "status", "type"):
        if field in body:
            record[field] = _value(body, field)
    if "defaultPrice" in body:
        price = _value(body, "defaultPrice")
        if price is not None and not isinstance(price, (int, Decimal)):
            raise _bad("defaultPrice: expected a number")
        record["defaultPrice"] = price
    if "vatCode" in body:
        code = _value(body, "vatCode")
        if code not in VAT_CODES:
            raise _bad(f"VAT code '{code}' does not exist")
        record["vatCode"] = {"id": code, "description": code}
    for field in ("itemClass", "postingClass"):
        if field in body:
            record[field] = {"id": _value(body, field)}
    if "attributeLines" in body:
        record["attributes"] = _attribute_lines(body["attributeLines"], record.get("attributes"), ATTRIBUTES)
    record["lastModifiedDateTime"] = sim.stamp()
    sim.inventory[record["inventoryNumber"]] = record
    return _created(request, record["inventoryNumber"]) if current is None else Response(status_code=204)


async def inventory(sim: VismaNetSim, request: Request) -> Response:
    number = request.path_params["number"]
    if request.method == "PUT":
        return _save_item(sim, request, await _body(request), number)
    if number not in sim.inventory:
        raise VendorError(404, "404", f"Inventory item {number} not found")
    return json_response(sim.inventory[number])


async def summary(sim: VismaNetSim, request: Request) -> Response:
    number = request.path_params["number"]
    if number not in sim.inventory:
        raise VendorError(404, "404", f"Inventory item {number} not found")
    rows = sim.summaries.get(number, [])
    warehouse = request.query_params.get("warehouse")
    if warehouse:
        rows = [r for r in rows if r["warehouse"]["id"] == warehouse]
    return json_response(rows)


def _branch(sim: VismaNetSim, value: Any, where: str) -> None:
    if value is None:
        if sim.require_branch:
            raise _bad(f"{where}: 'Branch' cannot be empty.")
        return
    if value not in BRANCHES:
        raise _bad(f"{where}: Branch '{value}' does not exist")


async def sales_orders(sim: VismaNetSim, request: Request) -> Response:
    if request.method == "GET":
        items = list(sim.orders.values())
        if request.query_params.get("orderType"):
            items = [o for o in items if o["orderType"] == request.query_params["orderType"]]
        return _listing(request, items)
    body = await _body(request)
    order_type = _value(body, "orderType") or "SO"
    if order_type not in ORDER_TYPES:
        raise _bad(f"Order type '{order_type}' does not exist")
    number = _value(body, "customer")
    if number not in sim.customers:
        raise _bad(f"Customer '{number}' does not exist")
    _branch(sim, _value(body, "branchNumber"), "branchNumber")
    ship_via = _value(body, "shipVia")
    if ship_via is not None and ship_via not in SHIP_VIAS:
        raise _bad(f"shipVia: Ship via '{ship_via}' cannot be found in the system.")
    shipping_terms = _value(body, "shippingTerms")
    if shipping_terms is not None and shipping_terms not in SHIPPING_TERMS:
        raise _bad(f"shippingTerms: Shipping terms '{shipping_terms}' cannot be found in the system.")
    lines = body.get("lines")
    if not isinstance(lines, list) or not lines:
        raise _bad("lines: a sales order needs at least one line")
    rows: list[dict[str, Any]] = []
    total = Decimal(0)
    for n, line in enumerate(lines, start=1):
        sku = _value(line, "inventoryNumber", f"lines[{n - 1}].") or _value(line, "inventoryId", f"lines[{n - 1}].")
        if _value(line, "inventoryId") not in (None, sku):
            raise _bad(f"lines[{n - 1}]: inventoryId and inventoryNumber name different items")
        if sku not in sim.inventory:
            raise _bad(f"lines[{n - 1}].inventoryNumber: Inventory item '{sku}' does not exist")
        quantity = Decimal(str(_value(line, "quantity", f"lines[{n - 1}].") or 0))
        price = Decimal(str(_value(line, "unitPrice", f"lines[{n - 1}].") or 0))
        discount = Decimal(str(_value(line, "discountAmount", f"lines[{n - 1}].") or 0))
        total += quantity * price - discount
        rows.append({
            "lineNbr": n,
            "inventory": {"number": sku, "description": sim.inventory[sku]["description"]},
            "quantity": quantity,
            "unitPrice": price,
            "discountAmount": discount,
            "lineDescription": _value(line, "lineDescription", f"lines[{n - 1}].") or "",
        })
    order = sim.add_order({
        "orderType": order_type,
        "status": "Open",
        "date": _value(body, "date") or sim.stamp(),
        "customer": {"number": number, "name": sim.customers[number]["name"]},
        "customerRefNo": _value(body, "customerRefNo") or "",
        "currency": _value(body, "currency") or "NOK",
        "description": _value(body, "description") or "",
        **({"shipVia": {"id": ship_via, "description": SHIP_VIAS[ship_via]}} if ship_via else {}),
        **({"shippingTerms": {"id": shipping_terms, "description": SHIPPING_TERMS[shipping_terms]}} if shipping_terms else {}),
        **({"terms": {"id": _value(body, "terms"), "description": _value(body, "terms")}} if _value(body, "terms") else {}),
        "lines": rows,
        "orderTotal": total,
        "taxTotal": Decimal(0),
    })
    return _created(request, order["orderNo"])


async def sales_order(sim: VismaNetSim, request: Request) -> Response:
    number = request.path_params["number"]
    found = next((o for o in sim.orders.values() if o["orderNo"] == number), None)
    if found is None:
        raise VendorError(404, "404", f"Sales order {number} not found")
    return json_response(found)


async def customer_invoices(sim: VismaNetSim, request: Request) -> Response:
    if request.method == "GET":
        return _listing(request, list(sim.invoices.values()))
    body = await _body(request)
    number = _value(body, "customerNumber")
    if number not in sim.customers:
        raise _bad(f"Customer '{number}' does not exist")
    _branch(sim, _value(body, "branchNumber"), "branchNumber")
    lines = body.get("invoiceLines")
    if not isinstance(lines, list) or not lines:
        raise _bad("invoiceLines: an invoice needs at least one line")
    for n, line in enumerate(lines):
        sku = _value(line, "inventoryNumber", f"invoiceLines[{n}].")
        if sku is not None and sku not in sim.inventory:
            raise _bad(f"invoiceLines[{n}].inventoryNumber: Inventory item '{sku}' does not exist")
    reference = sim.number()
    sim.invoices[reference] = {
        "referenceNumber": reference,
        "documentType": "Invoice",
        "status": "Balanced",
        "customer": {"number": number},
        "externalReference": _value(body, "externalReference") or "",
        "lastModifiedDateTime": sim.stamp(),
    }
    return _created(request, reference)


async def journal_transactions(sim: VismaNetSim, request: Request) -> Response:
    if request.method == "GET":
        return _listing(request, list(sim.journal.values()))
    body = await _body(request)
    lines = body.get("journalTransactionLines")
    if not isinstance(lines, list) or not lines:
        raise _bad("journalTransactionLines: a transaction needs lines")
    _branch(sim, _value(body, "branch"), "branch")
    debit = credit = Decimal(0)
    rows = []
    for n, line in enumerate(lines):
        debit += Decimal(str(_value(line, "debitAmountInCurrency", f"journalTransactionLines[{n}].") or 0))
        credit += Decimal(str(_value(line, "creditAmountInCurrency", f"journalTransactionLines[{n}].") or 0))
        account = _value(line, "accountNumber", f"journalTransactionLines[{n}].")
        if not account:
            raise _bad(f"journalTransactionLines[{n}].accountNumber: 'Account' cannot be empty.")
        if sim.accounts is not None and str(account) not in sim.accounts:
            raise _bad(f"journalTransactionLines[{n}].accountNumber: Account '{account}' cannot be found in the system.")
        rows.append({
            "lineNumber": n + 1,
            "accountNumber": _value(line, "accountNumber"),
            "referenceNumber": _value(line, "referenceNumber") or "",
            "transactionDescription": _value(line, "transactionDescription") or "",
            "debitAmountInCurrency": _value(line, "debitAmountInCurrency") or 0,
            "creditAmountInCurrency": _value(line, "creditAmountInCurrency") or 0,
        })
    if debit != credit:
        raise _bad(f"The batch is out of balance: debit {debit}, credit {credit}")
    batch = sim.number()
    sim.journal[batch] = {
        "module": "ModuleGL",
        "batchNumber": batch,
        "status": "Balanced",
        "transactionDate": _value(body, "transactionDate"),
        "currencyId": _value(body, "currencyId"),
        "description": _value(body, "description") or "",
        "journalTransactionLines": rows,
        "lastModifiedDateTime": sim.stamp(),
    }
    return _created(request, batch)


def _routes() -> list[Route]:
    api = VismaNetSim.api
    return [
        Route("/customer", api(customers), methods=["GET", "POST"]),
        Route("/customer/{number}", api(customer), methods=["GET", "PUT"]),
        Route("/inventory", api(inventories), methods=["GET", "POST"]),
        Route("/inventory/{number}", api(inventory), methods=["GET", "PUT"]),
        Route("/inventorysummary/{number}", api(summary), methods=["GET"]),
        Route("/salesorder", api(sales_orders), methods=["GET", "POST"]),
        Route("/salesorder/{number}", api(sales_order), methods=["GET"]),
        Route("/salesorderbasic", api(sales_orders), methods=["GET", "POST"]),
        Route("/customerinvoice", api(customer_invoices), methods=["GET", "POST"]),
        Route("/journaltransaction", api(journal_transactions), methods=["GET", "POST"]),
    ]


def create_app(*, seed: int = 1, records: int = 0, **options: Any) -> Starlette:
    """The simulator app: the API at ``/v1`` (api.finance.visma.net) and ``/API/controller/api/v1``
    (the old integration.visma.net paths of the swagger), the token endpoint at ``/connect/token``."""
    sim = VismaNetSim(seed=seed, records=records, **options)
    app = Starlette(
        routes=[
            Route("/connect/token", sim.token, methods=["POST"]),
            Mount("/v1", routes=_routes()),
            Mount("/API/controller/api/v1", routes=_routes()),
        ]
    )
    app.state.sim = sim
    return app

