"""An in-memory Exact Online on the simulator toolkit: the vendor's rules, checked against the spec files.

* OAuth2: ``POST /api/oauth2/token`` (client id and secret as form fields), access tokens of
  600 s, refresh tokens that rotate (each works once).
* ``GET /api/v1/current/Me`` (``CurrentDivision``); everything else under ``/api/v1/{division}/``.
* OData v2: lists ``{"d": {"results": [...], "__next": url}}`` with ``$skiptoken``, 60 a page
  (1,000 on ``sync/`` and ``bulk/``), ``$select`` required on sync and bulk, ``$filter``
  required where a sync variant exists, a small ``$filter`` language (``eq`` / ``gt`` joined
  by ``or``), one object ``{"d": {...}}`` from a POST, 204 from a PUT.
* 60 calls a minute and 5,000 a day, with ``X-RateLimit-*`` and ``X-RateLimit-Minutely-*``
  headers on every answer (resets in epoch milliseconds); 429 over either.
* Errors as ``{"error": {"code": "", "message": {"lang": "en-US", "value": "..."}}}``; a write
  of a property the SDK marks read-only, or of a property the resource does not have, is a 400.
* Account codes are kept right-aligned in 18 characters.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from apicenterd.testing.sim import (
    BearerAuth,
    Collection,
    GuidIds,
    RateLimitGate,
    TokenServer,
    VendorError,
    VendorSim,
    json_response,
    odata_page,
    read_json,
    retry_after,
    seeded,
)

from .mapping import ACCOUNT_FREE_FIELDS, ITEM_FREE_FIELDS
from .sdk import READ_ONLY, RESOURCES, SDK_MODEL

__all__ = ["DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET", "DIVISION", "ExactSim", "create_app", "demo_refresh_token", "WRITABLE"]

DEMO_CLIENT_ID = "00000000-demo-exact-client"
DEMO_CLIENT_SECRET = "exact-demo-secret"
DIVISION = 1234567
PAGE, SYNC_PAGE = 60, 1000
ACCESS_TTL = 600.0

WRITABLE: dict[str, frozenset[str]] = {
    "crm/Accounts": frozenset(
        (
            "ID",
            "Code",
            "Name",
            "Email",
            "Phone",
            "AddressLine1",
            "AddressLine2",
            "Postcode",
            "City",
            "Country",
            "VATNumber",
            "ChamberOfCommerce",
            "MainContact",
            "Status",
            "SalesVATCode",
            "GLAccountSales",
            "PaymentConditionSales",
            "Language",
            *ACCOUNT_FREE_FIELDS,
        )
    ),
    "crm/Contacts": frozenset(("ID", "Account", "FirstName", "LastName", "Email", "Phone", "Mobile", "Initials")),
    "logistics/Items": frozenset(
        (
            "ID",
            "Code",
            "Description",
            "ExtraDescription",
            "Barcode",
            "Unit",
            "IsSalesItem",
            "IsStockItem",
            "SalesVatCode",
            "ItemGroup",
            "Notes",
            "SearchCode",
            *ITEM_FREE_FIELDS,
        )
    ),
    "logistics/SalesItemPrices": frozenset(("ID", "Item", "Price", "Currency", "Unit", "Quantity", "StartDate", "EndDate")),
    "salesinvoice/SalesInvoices": frozenset(
        (
            "Journal",
            "Type",
            "InvoiceTo",
            "OrderedBy",
            "YourRef",
            "Description",
            "Currency",
            "OrderDate",
            "DueDate",
            "PaymentCondition",
            "SalesInvoiceLines",
        )
    ),
    "generaljournalentry/GeneralJournalEntries": frozenset(
        ("JournalCode", "EntryNumber", "Currency", "FinancialPeriod", "FinancialYear", "GeneralJournalEntryLines")
    ),
    "salesinvoice/PrintedSalesInvoices": frozenset(
        ("InvoiceID", "InvoiceDate", "SendEmailToCustomer", "DocumentLayout", "EmailLayout", "ExtraText")
    ),
}
"""The properties the simulator lets a client write (a subset of the SDK's writable ones)."""

LINE_WRITABLE = {
    "SalesInvoiceLines": frozenset(
        ("Item", "Description", "Quantity", "UnitPrice", "Discount", "VATCode", "GLAccount", "CostCenter", "CostUnit")
    ),
    "GeneralJournalEntryLines": frozenset(("GLAccount", "AmountFC", "Date", "Description", "CostCenter", "CostUnit", "VATCode", "Notes")),
}
"""The properties of the lines posted inside a document."""
GL_ACCOUNTS = {
    "1000": "Cash",
    "1100": "Bank",
    "1300": "Debtors",
    "1500": "VAT payable",
    "8000": "Revenue",
    "8100": "Revenue EU",
    "8200": "Revenue export",
    "8300": "Shipping revenue",
    "4000": "Costs",
}
"""The general ledger accounts every simulated division has (code: description)."""
ITEM_GROUPS = {"DEF": "Default", "FOOD": "Food", "TOOLS": "Tools"}
"""The item groups every simulated division has (code: description; DEF the default one)."""
PAYMENT_CONDITIONS = {"00": ("Direct", "K"), "14": ("14 days", "B"), "30": ("30 days", "B"), "IN": ("Direct debit", "I")}
"""The payment conditions every simulated division has (code: description, PaymentMethod)."""

VAT_CODES = {"0": ("No VAT", 0.0), "1": ("VAT low 9%", 0.09), "2": ("VAT high 21%", 0.21)}
"""The sales VAT codes every simulated division has (code: description, Percentage as a fraction)."""

ACCOUNT_CLASSIFICATIONS = {
    1: ("Customer rating", {"A": "Gold", "B": "Silver"}),
    2: ("Region", {"A": "North", "S": "South"}),
}
"""Account classifications every simulated division has: SequenceNumber → (name, {Code: description});
the code ``A`` is in both, as Exact allows."""

SYNC_OF = {"sync/Logistics/Items": "logistics/Items", "sync/CRM/Accounts": "crm/Accounts"}
FILTER_REQUIRED = {
    "salesorder/GoodsDeliveries",
    "salesinvoice/SalesInvoices",
    "inventory/ItemWarehouses",
    "generaljournalentry/GeneralJournalEntries",
    "financial/GLAccounts",
    "logistics/Items",
    "crm/Accounts",
    "crm/Contacts",
    "logistics/SalesItemPrices",
    "salesorder/SalesOrders",
    "salesorder/SalesOrderLines",
}
"""Resources with a sync or bulk variant: a GET without ``$filter`` is refused."""

_TERM = re.compile(r"^\s*(\w+)\s+(eq|gt|ge)\s+(?:'((?:[^']|'')*)'|guid'([0-9a-fA-F-]{36})'|(\d+)L?|datetime'([0-9T:.-]+)')\s*$")
_MS = re.compile(r"^/Date\((-?\d+)\)/$")
_KEY = re.compile(r"^\(guid'([0-9a-fA-F-]{36})'\)$")


def demo_refresh_token() -> str:
    """The refresh token a fresh simulator accepts (once: it rotates)."""
    return _token_server().demo_refresh_token()


def _token_server(clock: Callable[[], float] = time.time) -> TokenServer:
    return TokenServer(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, signing_key=b"exact-sim", ttl=ACCESS_TTL, client_auth="post", clock=clock)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> VendorError:
    return VendorError(status, "", message, headers=headers)


def parse_filter(expression: str) -> list[tuple[str, str, Any]]:
    """``A eq 'x' or B eq guid'...' or Timestamp gt 5`` as (field, op, value) terms; VendorError otherwise."""
    terms = []
    for part in re.split(r"\s+or\s+", expression.strip()):
        match = _TERM.match(part)
        if not match:
            raise _error(400, f"Error in query syntax: {part[:80]!r}")
        field, op, text, guid, number, when = match.groups()
        value: Any
        if when is not None:
            try:
                value = int(datetime.fromisoformat(when).replace(tzinfo=timezone.utc).timestamp() * 1000)
            except ValueError:
                raise _error(400, f"Error in query syntax: bad datetime {when!r}") from None
        else:
            value = text.replace("''", "'") if text is not None else guid if guid is not None else int(number)
        terms.append((field, op, value))
    return terms


def _matches(item: dict[str, Any], terms: list[tuple[str, str, Any]]) -> bool:
    for field, op, value in terms:
        have = item.get(field)
        if op == "eq" and (have == value or (isinstance(have, str) and isinstance(value, str) and have.lower() == value.lower())):
            return True
        if isinstance(have, str) and (stamp := _MS.match(have)):
            have = int(stamp.group(1))  # an OData date compares by its milliseconds
        if op in ("gt", "ge") and isinstance(have, int) and isinstance(value, int) and (have > value or (op == "ge" and have == value)):
            return True
    return False


class ExactSim(VendorSim):
    """One Exact Online division in memory."""

    def __init__(
        self,
        *,
        seed: int = 1,
        records: int = 0,
        customers: int = 0,
        minutely: int = 60,
        daily: int = 5000,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__()
        self.clock = clock
        self.oauth = _token_server(clock)
        self.daily_limit, self.minutely_limit = daily, minutely
        self.minute = RateLimitGate(minutely, 60.0, self._refuse, clock=clock)
        self.day = RateLimitGate(daily, 86400.0, self._refuse, clock=clock)
        self.gates = [BearerAuth(self.oauth.valid, lambda: _error(401, "Unauthorized")), self.day, self.minute, self.fault_gate]
        ids = GuidIds(seeded(seed, "exact-ids"))
        self.data: dict[str, Collection] = {
            resource: Collection(
                ids,
                unique=("Code",) if resource == "logistics/Items" else (),
                conflict=lambda field, value: _error(400, f"{field}: '{value}' already exists"),
            )
            for resource in WRITABLE
        }
        self.data["salesorder/SalesOrders"] = Collection(ids)  # read only here: orders come from Exact
        self.data["inventory/ItemWarehouses"] = Collection(ids)  # read only here
        self.data["salesorder/GoodsDeliveries"] = Collection(ids)  # read only here
        self.data["financial/GLAccounts"] = Collection(ids)
        for code, description in GL_ACCOUNTS.items():
            self.data["financial/GLAccounts"].add({"Code": code, "Description": description}, id_field="ID")
        self.data["logistics/ItemGroups"] = Collection(ids)
        for code, description in ITEM_GROUPS.items():
            self.data["logistics/ItemGroups"].add(
                {"Code": code, "Description": description, "IsDefault": int(code == "DEF")}, id_field="ID"
            )
        self.data["cashflow/PaymentConditions"] = Collection(ids)
        for code, (description, method) in PAYMENT_CONDITIONS.items():
            self.data["cashflow/PaymentConditions"].add({"Code": code, "Description": description, "PaymentMethod": method}, id_field="ID")
        self.data["generaljournalentry/GeneralJournalEntryLines"] = Collection(ids)  # filled by book()
        self.data["salesorder/SalesOrderLines"] = Collection(ids)  # filled by add_order()
        self.data["webhooks/WebhookSubscriptions"] = Collection(ids)
        self.data["crm/AccountClassificationNames"] = Collection(ids)
        self.data["crm/AccountClassifications"] = Collection(ids)
        for sequence, (description, entries) in ACCOUNT_CLASSIFICATIONS.items():
            name = self.data["crm/AccountClassificationNames"].add({"SequenceNumber": sequence, "Description": description}, id_field="ID")
            for code, text in entries.items():
                self.data["crm/AccountClassifications"].add(
                    {"Code": code, "Description": text, "AccountClassificationName": name["ID"]}, id_field="ID"
                )
        self.data["vat/VATCodes"] = Collection(ids)
        for code, (description, percentage) in VAT_CODES.items():
            self.data["vat/VATCodes"].add({"Code": code, "Description": description, "Percentage": percentage}, id_field="ID")
        self.expand_lines = True
        """False: ``$expand=SalesOrderLines`` is ignored (the lines come ``__deferred``), as Exact may answer."""
        self.timestamp = 1000
        self.writes: list[tuple[str, str, bytes]] = []
        self.refusals = 0  # 429s answered
        for n in range(1, customers + 1):
            self.add_account(f"Customer {n} BV", f"customer{n}@example.com", code=str(1000 + n), City="Utrecht", Country="NL")
        rng = seeded(seed, "exact-items")
        for n in range(1, records + 1):
            fields = {"Code": f"EX-{n:05d}", "Description": f"Exact item {n}", "IsSalesItem": True, "Unit": "pc"}
            item = self._store("logistics/Items", fields)
            self._store("logistics/SalesItemPrices", {"Item": item["ID"], "Price": rng.randint(100, 9999) / 100, "Currency": "EUR"})

    def _modified(self) -> str:
        return f"/Date({int(self.clock() * 1000)})/"

    def add_account(self, name: str, email: str | None = None, code: str | None = None, **fields: Any) -> dict[str, Any]:
        """A customer Account (``Status`` C), as if made in Exact."""
        body = {"Name": name, "Email": email, "Status": "C", **fields}
        if code is not None:
            body["Code"] = code
        return self._store("crm/Accounts", body)

    def add_order(
        self,
        account_id: str,
        lines: list[tuple[str, float, float]],
        *,
        status: int = 12,
        your_ref: str | None = None,
        vat: float = 0.21,
        number: int | None = None,
        payment_condition: str | None = None,
        vat_code: str | None = None,
    ) -> dict[str, Any]:
        """A sales order for ``account_id`` with lines of (item code, quantity, unit price excl. VAT);
        ``vat_code`` (one of :data:`VAT_CODES`) sets each line's VATCode and its percentage."""
        if vat_code is not None:
            vat = VAT_CODES[vat_code][1]
        orders = self.data["salesorder/SalesOrders"]
        number = number or 1 + max((o["OrderNumber"] for o in orders.values()), default=0)
        rows = []
        for n, (code, quantity, price) in enumerate(lines, 1):
            item = self.data["logistics/Items"].find("Code", code)
            if item is None:
                raise ValueError(f"no item {code!r} in the simulator")
            amount = round(quantity * price, 2)
            rows.append(
                {
                    "ID": str(uuid.UUID(int=seeded(number, "line", n).getrandbits(128))),
                    "LineNumber": n,
                    "Item": item["ID"],
                    "ItemCode": code,
                    "Description": item["Description"],
                    "Quantity": quantity,
                    "UnitPrice": price,
                    "NetPrice": price,
                    "AmountFC": amount,
                    "Discount": 0,
                    "VATPercentage": vat,
                    "VATAmount": round(amount * vat, 2),
                    "UnitCode": item.get("Unit") or "pc",
                    **({"VATCode": vat_code} if vat_code is not None else {}),
                }
            )
        excl = round(sum(r["AmountFC"] for r in rows), 2)
        self.timestamp += 1
        order = {
            "OrderNumber": number,
            "OrderDate": self._modified(),
            "Status": status,
            "Currency": "EUR",
            "OrderedBy": account_id,
            "InvoiceTo": account_id,
            "DeliverTo": account_id,
            "YourRef": your_ref,
            "Description": f"Order {number}",
            "AmountFCExclVat": excl,
            "AmountFC": round(excl + sum(r["VATAmount"] for r in rows), 2),
            "Modified": self._modified(),
            "Timestamp": self.timestamp,
            "SalesOrderLines": rows,
        }
        if payment_condition is not None:
            order["PaymentCondition"] = payment_condition
        stored: dict[str, Any] = orders.add(order, id_field="OrderID")
        for row in rows:  # the same dicts: a test's change to a line shows in both reads
            row["OrderID"] = stored["OrderID"]
            row["OrderNumber"] = number
            self.data["salesorder/SalesOrderLines"][row["ID"]] = row
        return stored

    def deliver(self, order: dict[str, Any], tracking: str, *, carrier: str = "POSTNL", lines: int | None = None) -> dict[str, Any]:
        """A goods delivery of (the first ``lines`` of) ``order``'s lines with a tracking number."""
        deliveries = self.data["salesorder/GoodsDeliveries"]
        self.timestamp += 1
        number = 1 + max((d["DeliveryNumber"] for d in deliveries.values()), default=0)
        rows = [
            {
                "LineNumber": n,
                "ItemCode": line["ItemCode"],
                "QuantityDelivered": line["Quantity"],
                "QuantityOrdered": line["Quantity"],
                "SalesOrderNumber": order["OrderNumber"],
                "SalesOrderLineNumber": line["LineNumber"],
                "TrackingNumber": tracking,
            }
            for n, line in enumerate(order["SalesOrderLines"][:lines], 1)
        ]
        delivery = {
            "DeliveryNumber": number,
            "DeliveryDate": self._modified(),
            "TrackingNumber": tracking,
            "ShippingMethodCode": carrier,
            "DeliveryAccount": order["OrderedBy"],
            "Modified": self._modified(),
            "Timestamp": self.timestamp,
            "GoodsDeliveryLines": rows,
        }
        stored: dict[str, Any] = deliveries.add(delivery, id_field="EntryID")
        return stored

    def set_stock(self, code: str, current: float, reserved: float = 0, *, warehouse: str = "1") -> dict[str, Any]:
        """The stock of item ``code`` in ``warehouse`` (made or changed now)."""
        item = self.data["logistics/Items"].find("Code", code)
        if item is None:
            raise ValueError(f"no item {code!r} in the simulator")
        stock = self.data["inventory/ItemWarehouses"]
        row = next((r for r in stock.values() if r["Item"] == item["ID"] and r["WarehouseCode"] == warehouse), None)
        self.timestamp += 1
        fields = {"CurrentStock": current, "ReservedStock": reserved, "Modified": self._modified(), "Timestamp": self.timestamp}
        if row is None:
            stored: dict[str, Any] = stock.add({"Item": item["ID"], "ItemCode": code, "WarehouseCode": warehouse, **fields}, id_field="ID")
            return stored
        row.update(fields)
        return row

    def invoice(self, body: dict[str, Any]) -> dict[str, Any]:
        """A draft sales invoice (Status 10) for a known account, its lines on known items."""
        if body.get("InvoiceTo") not in self.data["crm/Accounts"]:
            raise _error(400, "InvoiceTo: not found")
        if not body.get("Journal"):
            raise _error(400, "Mandatory: Journal")
        for n, line in enumerate(body["SalesInvoiceLines"], 1):
            if "Item" in line and line["Item"] not in self.data["logistics/Items"]:
                raise _error(400, f"Line {n}: Item: not found")
        invoices = self.data["salesinvoice/SalesInvoices"]
        self.timestamp += 1
        number = 1 + max((i.get("InvoiceNumber") or 0 for i in invoices.values()), default=0)
        entry = {**body, "InvoiceNumber": number, "Status": 10, "Timestamp": self.timestamp, "Modified": self._modified()}
        stored: dict[str, Any] = invoices.add(entry, id_field="InvoiceID")
        return {k: v for k, v in stored.items() if k not in ("Timestamp", "SalesInvoiceLines")}

    def book(self, body: dict[str, Any]) -> dict[str, Any]:
        """A general journal entry: lines on known GL accounts that balance (a 400 otherwise)."""
        journal = body.get("JournalCode")
        if not journal:
            raise _error(400, "Mandatory: JournalCode")
        total = 0.0
        for n, line in enumerate(body["GeneralJournalEntryLines"], 1):
            if line.get("GLAccount") not in self.data["financial/GLAccounts"]:
                raise _error(400, f"Line {n}: GLAccount: not found")
            if not isinstance(line.get("AmountFC"), (int, float)):
                raise _error(400, f"Line {n}: Mandatory: AmountFC")
            total += line["AmountFC"]
        if abs(total) > 0.005:
            raise _error(400, f"The entry is not balanced: {total:.2f}")
        entries = self.data["generaljournalentry/GeneralJournalEntries"]
        number = body.get("EntryNumber") or 1 + max((e.get("EntryNumber") or 0 for e in entries.values()), default=0)
        if not isinstance(number, int) or isinstance(number, bool):
            raise _error(400, f"EntryNumber: {number!r} is not an Int32")
        if any(e.get("EntryNumber") == number and e.get("JournalCode") == journal for e in entries.values()):
            raise _error(400, f"Entry number {number} already exists in journal {journal}")
        self.timestamp += 1
        entry = {**body, "EntryNumber": number, "Status": 20, "Timestamp": self.timestamp, "Modified": self._modified()}
        stored: dict[str, Any] = entries.add(entry, id_field="EntryID")
        for n, line in enumerate(body["GeneralJournalEntryLines"], 1):
            row = {**line, "EntryID": stored["EntryID"], "EntryNumber": number, "LineNumber": n}
            self.data["generaljournalentry/GeneralJournalEntryLines"].add(row, id_field="ID")
        return {k: v for k, v in stored.items() if k not in ("Timestamp", "GeneralJournalEntryLines")}

    def print_invoice(self, body: dict[str, Any]) -> dict[str, Any]:
        """``PrintedSalesInvoices``: processes an open or draft invoice (Status 50, its InvoiceDate); 400 when processed."""
        invoice = self.data["salesinvoice/SalesInvoices"].get(body.get("InvoiceID"))
        if invoice is None:
            raise _error(400, "InvoiceID: not found")
        if invoice.get("Status") == 50:
            raise _error(400, "The invoice has already been processed")
        self.timestamp += 1
        invoice.update({"Status": 50, "Timestamp": self.timestamp, "Modified": self._modified()})
        if body.get("InvoiceDate"):
            invoice["InvoiceDate"] = body["InvoiceDate"]
        return {**body, "DocumentCreationSuccess": "Document created", "Division": DIVISION}

    async def before(self, request: Request) -> None:
        """Keep the body of every write (the conformance tests check them against the SDK)."""
        if request.method in ("POST", "PUT"):
            self.writes.append((request.method, request.url.path, await request.body()))

    def _refuse(self, wait: float, gate: RateLimitGate) -> VendorError:
        self.refusals += 1
        return _error(429, "API rate limit exceeded.", headers={"Retry-After": retry_after(wait)})

    def _window(self, gate: RateLimitGate) -> tuple[int, int]:
        """(calls left, reset in epoch ms) of a gate's current fixed window (aligned to its period)."""
        period = gate.window.period
        now = self.clock()
        current = int(now // period)
        window, count = gate.window._windows.get("", (current, 0))
        used = count if window == current else 0
        return max(0, gate.limit - used), int((current + 1) * period * 1000)

    def error_response(self, exc: VendorError) -> Response:
        body = {"error": {"code": "" if exc.code is None else str(exc.code), "message": {"lang": "en-US", "value": exc.message}}}
        return self._headers(json_response(body, exc.status, exc.headers))

    def after(self, request: Request, response: Response) -> Response:
        return self._headers(response)

    def _headers(self, response: Response) -> Response:
        left, reset = self._window(self.day)
        response.headers["X-RateLimit-Limit"] = str(self.daily_limit)
        response.headers["X-RateLimit-Remaining"] = str(left)
        response.headers["X-RateLimit-Reset"] = str(reset)
        left, reset = self._window(self.minute)
        response.headers["X-RateLimit-Minutely-Limit"] = str(self.minutely_limit)
        response.headers["X-RateLimit-Minutely-Remaining"] = str(left)
        response.headers["X-RateLimit-Minutely-Reset"] = str(reset)
        return response

    def _store(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        self.timestamp += 1
        item = {**body, "Timestamp": self.timestamp, "Modified": self._modified()}
        if resource == "crm/Accounts" and isinstance(item.get("Code"), str):
            item["Code"] = item["Code"].strip().rjust(18)
        if resource == "logistics/Items" and item.get("ItemGroup") is not None:
            group = self.data["logistics/ItemGroups"].get(item["ItemGroup"])
            if group is None:
                raise _error(400, "ItemGroup: not found")
            item["ItemGroupCode"] = group["Code"]
        if resource == "logistics/SalesItemPrices":
            owner = self.data["logistics/Items"].get(item.get("Item"))
            if owner is None:
                raise _error(400, "Item: not found")
            item["ItemCode"] = owner["Code"]
        stored: dict[str, Any] = self.data[resource].add(item, id_field="ID")
        return stored

    def check_body(self, resource: str, body: Any) -> dict[str, Any]:
        """The body of a write, refused (400) for a read-only or unknown property."""
        if not isinstance(body, dict):
            raise _error(400, "Invalid request body: expected a JSON object")
        model = RESOURCES[resource]
        for name in body:
            if name in READ_ONLY.get(model, ()):
                raise _error(400, f"'{name}' is a read-only property of {model.split('.')[-1]}")
            if name not in WRITABLE[resource]:
                raise _error(400, f"The property '{name}' does not exist on type 'Exact.Web.Api.Models.{model.split('.')[-1]}'")
        for nested, allowed in LINE_WRITABLE.items():
            if nested not in body:
                continue
            lines = body[nested]
            if not isinstance(lines, list) or not lines or not all(isinstance(line, dict) for line in lines):
                raise _error(400, f"{nested}: expected a list of lines")
            line_model = SDK_MODEL[nested]
            for line in lines:
                for name in line:
                    if name in READ_ONLY.get(line_model, ()):
                        raise _error(400, f"'{name}' is a read-only property of {line_model.split('.')[-1]}")
                    if name not in allowed:
                        raise _error(
                            400, f"The property '{name}' does not exist on type 'Exact.Web.Api.Models.{line_model.split('.')[-1]}'"
                        )
        for name, value in list(body.items()):
            if name.startswith("FreeDateField_") and value is not None:  # Edm.DateTime: kept and given as /Date(ms)/
                try:
                    when = datetime.fromisoformat(str(value)).replace(tzinfo=timezone.utc)
                except ValueError:
                    raise _error(400, f"{name}: '{value}' is not a valid date") from None
                body[name] = f"/Date({int(when.timestamp() * 1000)})/"
            if name.startswith("Classification") and value is not None and value not in self.data["crm/AccountClassifications"]:
                raise _error(400, f"{name}: account classification '{value}' not found")
        return body


_NAME = re.compile(r"^(\w+)(\(.*\))?$")


def _resource(request: Request) -> tuple[str, str | None]:
    """The resource path and the key segment (``(guid'...')``) of the URL, if any."""
    match = _NAME.match(request.path_params["name"])
    if not match:
        raise _error(404, f"Resource not found: {request.path_params['name'][:60]}")
    return f"{request.path_params['service']}/{match.group(1)}", match.group(2)


def _division(request: Request) -> None:
    if request.path_params["division"] != str(DIVISION):
        raise _error(403, f"Forbidden: no access to division {request.path_params['division']}")


async def me(sim: ExactSim, request: Request) -> Response:
    """``current/Me``: the user's current division."""
    item = {
        "__metadata": {
            "uri": f"{request.base_url}api/v1/current/Me(guid'00000000-0000-0000-0000-000000000001')",
            "type": "Exact.Web.Api.System.Me",
        },
        "CurrentDivision": DIVISION,
        "UserID": "00000000-0000-0000-0000-000000000001",
        "FullName": "Demo User",
    }
    select = request.query_params.get("$select")
    if select:
        item = {k: v for k, v in item.items() if k == "__metadata" or k in select.split(",")}
    return json_response({"d": {"results": [item]}})


def _listing(sim: ExactSim, request: Request, resource: str, *, sync: bool) -> Response:
    query = request.query_params
    select = query.get("$select")
    if sync and not select:
        raise _error(400, "$select is mandatory for this endpoint")
    expression = query.get("$filter")
    if not sync and resource in FILTER_REQUIRED and not expression:
        raise _error(400, "$filter is mandatory for this endpoint (use the sync API to read everything)")
    items = list(sim.data[resource].values())
    if expression:
        terms = parse_filter(expression)
        items = [item for item in items if _matches(item, terms)]
    if sync:
        items.sort(key=lambda item: item["Timestamp"])
    size = SYNC_PAGE if sync else PAGE
    try:
        top = int(query.get("$top") or size)
        skip = int(query.get("$skiptoken") or 0)
    except ValueError:
        raise _error(400, "Error in query syntax: $top or $skiptoken is not a number") from None
    window, next_link = odata_page(items, str(request.url), skip, min(top, size))
    fields = select.split(",") if select else None
    expand = (query.get("$expand") or "").split(",")
    model = RESOURCES.get(resource, resource).split(".")[-1]
    key = {
        "salesorder/SalesOrders": "OrderID",
        "generaljournalentry/GeneralJournalEntries": "EntryID",
        "salesinvoice/SalesInvoices": "InvoiceID",
        "salesorder/GoodsDeliveries": "EntryID",
    }.get(resource, "ID")  # GeneralJournalEntryLines: ID
    results = []
    for item in window:
        uri = f"{request.base_url}api/v1/{DIVISION}/{resource}(guid'{item[key]}')"
        shown = {k: v for k, v in item.items() if fields is None or k in fields}
        if not sync and (fields is None or "Timestamp" not in fields):
            shown.pop("Timestamp", None)
        for nested in ("SalesOrderLines", "GoodsDeliveryLines"):
            if nested in shown:
                deferred = {"__deferred": {"uri": f"{uri}/{nested}"}}
                expanded = nested in expand and (sim.expand_lines or nested != "SalesOrderLines")
                shown[nested] = {"results": shown[nested]} if expanded else deferred
        results.append({"__metadata": {"uri": uri, "type": f"Exact.Web.Api.Models.{model}"}, **shown})
    d: dict[str, Any] = {"results": results}
    if next_link:
        d["__next"] = next_link
    return json_response({"d": d})


async def collection(sim: ExactSim, request: Request) -> Response:
    """GET (list) or POST (create) a resource; GET or PUT one object by its key."""
    _division(request)
    resource, key = _resource(request)
    if key is not None:
        return await one(sim, request, resource, key)
    if request.method in ("PUT", "DELETE"):
        raise _error(405, f"{request.method} needs a key: (guid'...')")
    if resource not in sim.data:
        raise _error(404, f"Resource not found: {resource}")
    if request.method == "GET":
        return _listing(sim, request, resource, sync=False)
    if resource == "webhooks/WebhookSubscriptions":
        return json_response({"d": await _subscribe(sim, request)}, 201)
    if resource not in WRITABLE:
        raise _error(405, f"The simulator does not create {resource}")
    body = sim.check_body(resource, await read_json(request, lambda: _error(400, "Invalid JSON"), decimals=False))
    if resource == "logistics/Items" and (not body.get("Code") or not body.get("Description")):
        raise _error(400, "Mandatory: Code, Description")
    if resource == "crm/Accounts" and not body.get("Name"):
        raise _error(400, "Mandatory: Name")
    if resource == "crm/Contacts" and (not body.get("Account") or body["Account"] not in sim.data["crm/Accounts"]):
        raise _error(400, "Account: not found")
    if resource == "generaljournalentry/GeneralJournalEntries":
        return json_response({"d": sim.book(body)}, 201)
    if resource == "salesinvoice/SalesInvoices":
        return json_response({"d": sim.invoice(body)}, 201)
    if resource == "salesinvoice/PrintedSalesInvoices":
        return json_response({"d": sim.print_invoice(body)}, 201)
    stored = sim._store(resource, {k: v for k, v in body.items() if k != "ID"})
    shown = {k: v for k, v in stored.items() if k != "Timestamp"}
    return json_response({"d": shown}, 201)


WEBHOOK_FIELDS = frozenset(("CallbackURL", "Topic", "Description", "IsInstant"))
"""What a WebhookSubscription is created with (picqer's client: ``Topic``, ``CallbackURL``; the SDK has no model)."""


async def _subscribe(sim: ExactSim, request: Request) -> dict[str, Any]:
    """A webhook subscription: a known topic to an https (or the simulator's http) callback, once per topic and URL."""
    body = await read_json(request, lambda: _error(400, "Invalid JSON"), decimals=False)
    if not isinstance(body, dict):
        raise _error(400, "Invalid request body: expected a JSON object")
    unknown = sorted(set(body) - WEBHOOK_FIELDS)
    if unknown:
        raise _error(400, f"The property '{unknown[0]}' does not exist on type 'Exact.Web.Api.Models.WebhookSubscription'")
    if not body.get("CallbackURL") or not body.get("Topic"):
        raise _error(400, "Mandatory: CallbackURL, Topic")
    subscriptions = sim.data["webhooks/WebhookSubscriptions"]
    if any(w["Topic"] == body["Topic"] and w["CallbackURL"] == body["CallbackURL"] for w in subscriptions.values()):
        raise _error(400, f"There is already a subscription for topic {body['Topic']} to this callback URL")
    stored: dict[str, Any] = subscriptions.add({**body, "ClientID": DEMO_CLIENT_ID, "Division": DIVISION}, id_field="ID")
    return stored


async def one(sim: ExactSim, request: Request, resource: str, key: str) -> Response:
    """PUT one object (the properties sent change, 204), GET it; DELETE a webhook subscription."""
    match = _KEY.match(key)
    if request.method == "DELETE":
        if resource != "webhooks/WebhookSubscriptions" or not match or match.group(1) not in sim.data[resource]:
            raise _error(404, f"Not found: {resource}{key[:60]}")
        del sim.data[resource][match.group(1)]
        return Response(status_code=204)
    if resource not in WRITABLE or not match:
        raise _error(404, f"Resource not found: {resource}{key[:60]}")
    item = sim.data[resource].get(match.group(1))
    if item is None:
        raise _error(404, "Not found")
    if request.method == "GET":
        return json_response({"d": {k: v for k, v in item.items() if k != "Timestamp"}})
    body = sim.check_body(resource, await read_json(request, lambda: _error(400, "Invalid JSON"), decimals=False))
    sim.timestamp += 1
    updated = {**item, **{k: v for k, v in body.items() if k != "ID"}, "Timestamp": sim.timestamp}
    if resource == "crm/Accounts" and isinstance(updated.get("Code"), str):
        updated["Code"] = updated["Code"].strip().rjust(18)
    if resource == "logistics/Items" and "ItemGroup" in body:
        group = sim.data["logistics/ItemGroups"].get(body["ItemGroup"])
        if group is None:
            raise _error(400, "ItemGroup: not found")
        updated["ItemGroupCode"] = group["Code"]
    sim.data[resource][item["ID"]] = updated
    return Response(status_code=204)


async def sync(sim: ExactSim, request: Request) -> Response:
    """``sync/{service}/{name}``: everything with ``Timestamp gt X``, 1,000 a page, in Timestamp order."""
    _division(request)
    name = f"sync/{request.path_params['service']}/{request.path_params['name']}"
    resource = SYNC_OF.get(name)
    if resource is None:
        raise _error(404, f"Resource not found: {name}")
    expression = request.query_params.get("$filter", "")
    if not expression.replace(" ", "").startswith("Timestampgt"):
        raise _error(400, "$filter on Timestamp (Timestamp gt X) is mandatory for the sync API")
    return _listing(sim, request, resource, sync=True)


async def count(sim: ExactSim, request: Request) -> Response:
    """``{service}/{name}/$count``: how many items match ``$filter`` (mandatory where it is for the
    list), as a plain number."""
    _division(request)
    resource = f"{request.path_params['service']}/{request.path_params['name']}"
    if resource not in sim.data:
        raise _error(404, f"Resource not found: {resource}")
    expression = request.query_params.get("$filter")
    if resource in FILTER_REQUIRED and not expression:
        raise _error(400, "$filter is mandatory for this endpoint (use the sync API to read everything)")
    items = list(sim.data[resource].values())
    if expression:
        terms = parse_filter(expression)
        items = [item for item in items if _matches(item, terms)]
    return Response(str(len(items)), media_type="text/plain")


BULK_OF = {"bulk/Logistics/SalesItemPrices": "logistics/SalesItemPrices", "bulk/Logistics/Items": "logistics/Items"}


async def bulk(sim: ExactSim, request: Request) -> Response:
    """``bulk/{service}/{name}``: the whole resource, 1,000 a page, ``$select`` mandatory, ``$filter`` optional."""
    _division(request)
    name = f"bulk/{request.path_params['service']}/{request.path_params['name']}"
    resource = BULK_OF.get(name)
    if resource is None:
        raise _error(404, f"Resource not found: {name}")
    return _listing(sim, request, resource, sync=True)


def create_app(*, seed: int = 1, records: int = 0, **options: Any) -> Starlette:
    """The simulator app (``app.state.sim`` is its :class:`ExactSim`)."""
    sim = ExactSim(seed=seed, records=records, **options)
    assert sim.oauth is not None
    app = Starlette(
        routes=[
            Route("/api/oauth2/token", sim.oauth.endpoint, methods=["POST"]),
            Route("/api/v1/current/Me", VendorSim.api(me), methods=["GET"]),
            Route("/api/v1/{division}/sync/{service}/{name}", VendorSim.api(sync), methods=["GET"]),
            Route("/api/v1/{division}/bulk/{service}/{name}", VendorSim.api(bulk), methods=["GET"]),
            Route("/api/v1/{division}/{service}/{name}/$count", VendorSim.api(count), methods=["GET"]),
            Route("/api/v1/{division}/{service}/{name}", VendorSim.api(collection), methods=["GET", "POST", "PUT", "DELETE"]),
        ]
    )
    app.state.sim = sim
    return app
