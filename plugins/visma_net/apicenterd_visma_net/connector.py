"""The Visma.net ERP connector: customers, inventory items, stock, sales orders, customer invoices and journal transactions."""

from __future__ import annotations

import dataclasses
import functools
import hmac
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from apicenterd import (
    AuthError,
    Change,
    Connector,
    ConnectorSettings,
    Customer,
    DocumentRequest,
    DocumentSink,
    Entity,
    FatalError,
    Found,
    JournalEntry,
    OAuth2RefreshAuth,
    Order,
    Product,
    RateLimit,
    RateLimitHeaders,
    RecordError,
    Sink,
    Source,
    StockLevel,
    WebhookEvent,
    WebhookRejected,
    WebhookRequest,
)

from . import mapping
from .client import (
    INTERACTIVE_API,
    OPERATION_SCOPES,
    SERVICE_API,
    ClientCredentialsAuth,
    VismaNetClient,
    cursor_of,
    scope_for,
    scopes_for,
    since_params,
)
from .mapping import wrap

__all__ = ["VismaNetConnector", "VismaNetSettings", "RATE_LIMIT_HEADERS", "SERVICE_SCOPES", "INTERACTIVE_SCOPES"]

INVOICE_LINE_TEXT = 30
"""9.66 CustomerInvoiceLineDto.description: "The alphanumeric string may contain up to 30 characters"."""

MIN_CURSOR = "0001-01-01T00:00:00.000000Z"

RATE_LIMIT_HEADERS = RateLimitHeaders(
    remaining="X-RateLimit-Remaining", reset="X-RateLimit-Reset", reset_unit="seconds", limit="X-RateLimit-Limit"
)
"""Visma.net's "4-fixed-window" policy headers (docs.vismasoftware.no rate-limits page, cited in api-specs README §3)."""

REQUESTS_PER_HOUR = 1000
"""Visma.net publishes no number ("X requests/hour per company+client"): start here and follow
``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (a lower limit the API reports is adopted)."""

CONNECTOR_OPERATIONS = ("GET", "POST", "PUT")
"""Every operation the connector performs (it reads, creates and updates; it never deletes)."""
SERVICE_SCOPES = scopes_for(CONNECTOR_OPERATIONS, SERVICE_API)
"""What a service app may need: read, create, update (asked for as the calls need them, see ClientCredentialsAuth)."""
INTERACTIVE_SCOPES = ("openid", "offline_access", *scopes_for(CONNECTOR_OPERATIONS, INTERACTIVE_API))
"""What ``apicenterd auth`` asks consent for: the user consents once, before any flow runs, so the
connector cannot narrow these by use (set ``scopes`` to narrow them)."""
OPERATION_NAMES = {"read": "reading", "create": "creating", "update": "updating", "delete": "deleting"}


class VismaNetSettings(ConnectorSettings):
    """Connection settings of a Visma.net ERP connection."""

    base_url: str = Field(
        default="https://api.finance.visma.net",
        description="API host (the retired https://integration.visma.net needs api_path /API/controller/api/v1)",
    )
    api_path: str = Field(default="/v1", description="Path of the v1 controller API under base_url")
    token_url: str = Field(default="https://connect.visma.com/connect/token", description="Visma Connect token endpoint")
    authorize_url: str | None = Field(
        default="https://connect.visma.com/connect/authorize", description="Visma Connect consent page (interactive apps)"
    )
    client_id: str = Field(min_length=1, description="Client id of the app in the Visma Developer Portal")
    client_secret: SecretStr = Field(description="Its client secret")
    tenant_id: str | None = Field(
        default=None,
        description=(
            "Service app: the company's Visma Connect tenant id (client credentials). "
            "Unset: an interactive app (authorization code + refresh token)"
        ),
    )
    refresh_token: SecretStr | None = Field(default=None, description="Interactive app: bootstraps an empty token store")
    scopes: list[str] | None = Field(
        default=None,
        description=(
            "Scopes to ask for (fixed). Unset: a service app asks for the scope of each operation as it is "
            "first used (a source-only connection: read only); an interactive app asks consent for read, create, update"
        ),
    )
    company_id: str | None = Field(default=None, description="Sent as ipp-company-id (interactive apps with access to several companies)")
    time_zone: str = Field(default="UTC", description="The company's time zone: timestamps Visma.net sends without an offset are in it")
    page_size: int = Field(default=100, ge=1, le=1000, description="pageSize of list requests (the server caps it at its maxPageSize)")
    currency: str = Field(default="EUR", min_length=3, max_length=3, description="The company's base currency (product prices)")
    vat_codes: dict[str, str] = Field(default_factory=dict, description='VAT rate → Visma.net VAT code id, e.g. {"21" = "1", "9" = "2"}')
    item_class: str | None = Field(default=None, description="itemClass of new inventory items")
    posting_class: str | None = Field(default=None, description="postingClass of new inventory items")
    item_type: str = Field(default="FinishedGoodItem", description="type of new inventory items (InventoryType)")
    customer_class: str | None = Field(default=None, description="customerClassId of new customers")
    item_attributes: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Product characteristics (the canonical product's attributes, by name) → Visma.net attribute id of the item "
            'class, e.g. {"Colour" = "COLOR"}; written as attributeLines, read back from attributes. Unmapped ones are not carried'
        ),
    )
    customer_custom_fields: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "The customer's custom fields (custom_fields, by name) → Visma.net customer attribute id, e.g. "
            '{"segment" = "SEGMENT"}; written as attributeLines, read back from attributes. Unmapped ones are not carried'
        ),
    )
    item_custom_fields: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "The product's custom fields (custom_fields, by name) → attribute id of the item class, e.g. "
            '{"brand" = "BRAND"}; written as attributeLines with the characteristics. Unmapped ones are not carried'
        ),
    )
    warehouse: str | None = Field(default=None, description="Stock: only this warehouse (unset: the sum of all)")
    stock_quantity: Literal["available_minus_reserved", "available", "available_for_shipment", "on_hand"] = Field(
        default="available_minus_reserved", description="What the stock source reports as available"
    )
    branch: str | None = Field(default=None, description="branchNumber of new sales orders, invoices and journal transactions")
    ledger: str | None = Field(default=None, description="ledger of new journal transactions (unset: the company's actual ledger)")
    webhook_token: SecretStr | None = Field(
        default=None,
        description=(
            "A secret of your choosing in the webhook URL registered in the Visma Developer Portal "
            "(https://<host>/webhooks/<connection>?token=<it>); Visma.net signs nothing, so webhooks are only a "
            "trigger that re-reads through the API. Unset: webhooks are refused"
        ),
    )
    sales_order_api: Literal["salesorder", "salesorderbasic"] = Field(
        default="salesorder", description="The v1 sales order endpoint to write to (SalesOrders API v3 is not supported: no spec)"
    )

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Oslo)") from None
        return value

    @field_validator("vat_codes")
    @classmethod
    def _rates(cls, value: dict[str, str]) -> dict[str, str]:
        for rate in value:
            try:
                Decimal(rate)
            except ArithmeticError:
                raise ValueError(f"vat_codes: key {rate!r} is not a VAT rate (a number such as \"21\")") from None
        return value

    @field_validator("api_path")
    @classmethod
    def _path(cls, value: str) -> str:
        return "/" + value.strip("/")


READ_ENTITIES = (Entity.CUSTOMERS, Entity.PRODUCTS, Entity.STOCK, Entity.ORDERS)
"""What this connector reads: a webhook re-reads some of these."""

WEBHOOK_ENTITIES: dict[str, tuple[Entity, ...]] = {
    "customers": (Entity.CUSTOMERS,),
    "products": (Entity.PRODUCTS, Entity.STOCK),
    "stock": (Entity.STOCK,),
    "orders": (Entity.ORDERS,),
}
"""A webhook URL's ``entity`` → the entities re-read."""

WEBHOOK_EVENTS: tuple[tuple[str, tuple[Entity, ...]], ...] = (
    ("salesorder", (Entity.ORDERS,)),
    ("shipment", (Entity.ORDERS, Entity.STOCK)),
    ("inventoryitem", (Entity.PRODUCTS, Entity.STOCK)),
    ("stockitem", (Entity.PRODUCTS, Entity.STOCK)),
    ("nonstockitem", (Entity.PRODUCTS,)),
    ("customer", (Entity.CUSTOMERS,)),
)
"""Visma.net's webhook event names ("Supported events and entities", docs.vismasoftware.no), squashed to
lower-case letters → the entities re-read. The payload's field names are not documented: every string of
the body (two levels deep) is tried."""


def _event_names(body: Any, depth: int = 0) -> list[str]:
    """The strings of a webhook body, two levels deep (where an event or entity name may be)."""
    if isinstance(body, str):
        return [body]
    if depth > 2:
        return []
    if isinstance(body, dict):
        return [n for v in body.values() for n in _event_names(v, depth + 1)]
    if isinstance(body, list):
        return [n for v in body[:100] for n in _event_names(v, depth + 1)]
    return []


class _Changes(Source[Any]):
    """Records of one list changed since a ``lastModifiedDateTime`` cursor (condition ``>=``).

    The order the API pages in is not documented, so (as with eAccounting) every change carries
    ``since`` and the last one the newest ``lastModifiedDateTime`` seen: the cursor moves once,
    when the whole read is settled."""

    connector: VismaNetConnector
    path: ClassVar[str]
    what: ClassVar[str]

    async def converter(self) -> Callable[[dict[str, Any]], Any]:
        raise NotImplementedError

    def item_id(self, item: dict[str, Any]) -> str:
        raise NotImplementedError

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        to_record = await self.converter()
        params = since_params(since, conn.zone) if since and since > MIN_CURSOR else {}
        floor = since or MIN_CURSOR
        newest = floor
        pending: Change | None = None
        async for data in conn.client.pages(self.path, what=f"{self.what} changed since {since or 'the beginning'}", params=params):
            for item in data:
                try:
                    if item.get("lastModifiedDateTime"):
                        newest = max(newest, cursor_of(item["lastModifiedDateTime"], conn.zone))
                except ValueError as exc:
                    conn.context.log.warning("visma_net_bad_timestamp", entity=self.what, error=str(exc))
                if pending is not None:
                    yield pending
                pending = self.mapped(self.item_id(item), floor, functools.partial(to_record, item))
        if pending is not None:
            yield dataclasses.replace(pending, cursor=newest)


class CustomerSource(_Changes):
    """Customers (``GET customer``)."""

    path, what = "customer", "customers"
    field_map = {k: ", ".join(v) for k, v in mapping.CUSTOMER_FIELDS.items()}

    def item_id(self, item: dict[str, Any]) -> str:
        return str(item.get("number"))

    async def converter(self) -> Callable[[dict[str, Any]], Customer]:
        return mapping.customer_from


class InventorySource(_Changes):
    """Inventory items as products (``GET inventory``)."""

    path, what = "inventory", "products"
    field_map = {k: ", ".join(v) for k, v in mapping.PRODUCT_FIELDS.items()}

    def item_id(self, item: dict[str, Any]) -> str:
        return str(item.get("inventoryNumber"))

    async def converter(self) -> Callable[[dict[str, Any]], Product]:
        conn = self.connector
        s = conn.settings
        return functools.partial(
            mapping.product_from,
            currency=s.currency,
            vat_rates=conn.vat_rates,
            attributes=s.item_attributes,
            custom_fields=s.item_custom_fields,
        )


class StockSource(Source[StockLevel]):
    """Stock per inventory item: ``GET inventorysummary/{inventoryNumber}`` (the settings' warehouse,
    else all summed), available − reserved by default. Stock changes do not touch the item's
    ``lastModifiedDateTime``, so every run reads every item; the engine writes only what changed."""

    connector: VismaNetConnector
    field_map = {"sku": "inventory.number", "available": "available - soBooked", "on_hand": "onHand", "reserved": "soBooked"}

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        s = conn.settings
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        cursor = max(stamp, since or MIN_CURSOR)
        params = {"warehouse": s.warehouse} if s.warehouse else None
        async for data in conn.client.pages("inventory", what="inventory items for stock"):
            for item in data:
                sku = str(item.get("inventoryNumber") or "")
                if not sku or str(item.get("status") or "").lower() == "inactive":
                    continue
                rows = await conn.client.get(f"inventorysummary/{_quote(sku)}", what=f"stock of {sku}", params=params)
                if not isinstance(rows, list):
                    raise FatalError(f"stock of {sku}: GET inventorysummary/{sku} did not answer a list")
                yield self.mapped(
                    sku, cursor, functools.partial(mapping.stock_from, sku, rows, mode=s.stock_quantity, warehouse=s.warehouse)
                )


class OrderSource(_Changes):
    """Sales orders (``GET salesorder``), each with its customer read once per run (e-mail, address)."""

    path, what = "salesorder", "orders"

    def item_id(self, item: dict[str, Any]) -> str:
        return f"{item.get('orderType', '')}/{item.get('orderNo')}"

    async def converter(self) -> Callable[[dict[str, Any]], Order]:
        raise NotImplementedError  # changes() converts with the customer it read

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        customers: dict[str, Customer | None] = {}
        params = since_params(since, conn.zone) if since and since > MIN_CURSOR else {}
        floor = since or MIN_CURSOR
        newest = floor
        pending: Change | None = None
        async for data in conn.client.pages("salesorder", what=f"sales orders changed since {since or 'the beginning'}", params=params):
            for item in data:
                number = str((item.get("customer") or {}).get("number") or "")
                if number and number not in customers:
                    found = await conn.client.get_or_none(f"customer/{_quote(number)}", what=f"customer {number}")
                    try:
                        customers[number] = mapping.customer_from(found) if isinstance(found, dict) else None
                    except (RecordError, ValueError):
                        customers[number] = None
                if item.get("lastModifiedDateTime"):
                    try:
                        newest = max(newest, cursor_of(item["lastModifiedDateTime"], conn.zone))
                    except ValueError as exc:
                        conn.context.log.warning("visma_net_bad_timestamp", entity="orders", error=str(exc))
                if pending is not None:
                    yield pending
                convert = functools.partial(mapping.order_from, item, zone=conn.zone, customer=customers.get(number))
                pending = self.mapped(self.item_id(item), floor, convert)
        if pending is not None:
            yield dataclasses.replace(pending, cursor=newest)


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


class CustomerSink(Sink[Customer]):
    """Customers by e-mail (``GET customer?email=``, exact match on ``mainContact.email``), else by number."""

    connector: VismaNetConnector
    written_fields = frozenset(mapping.CUSTOMER_FIELDS)
    field_map = {k: ", ".join(v) for k, v in mapping.CUSTOMER_FIELDS.items()}

    def _read(self, item: dict[str, Any]) -> Found:
        record = mapping.customer_from(item, codes=True, custom_fields=self.connector.settings.customer_custom_fields)
        return Found(id=str(item["number"]), record=record, vendor=item)

    async def find(self, key: str) -> Found | None:
        api = self.connector.client
        if "@" in key:
            wanted = key.strip().lower()
            async for data in api.pages("customer", what=f"customer {key!r}", params={"email": key}):
                for item in data:
                    contact = item.get("mainContact") or {}
                    if str(contact.get("email") or "").strip().lower() == wanted:
                        return self._read(item)
            return None
        item = await api.get_or_none(f"customer/{_quote(key)}", what=f"customer {key!r}")
        if not isinstance(item, dict):
            return None
        return self._read(item)

    async def create(self, record: Customer) -> str:
        s = self.connector.settings
        body = mapping.customer_body(record, customer_class=s.customer_class, custom_fields=s.customer_custom_fields)
        return await self.connector.client.create("customer", body, what=f"customer {record.key()!r}")

    async def update(self, target_id: str, record: Customer, fields: frozenset[str]) -> None:
        body = mapping.customer_body(record, fields, custom_fields=self.connector.settings.customer_custom_fields)
        if body:
            await self.connector.client.update(f"customer/{_quote(target_id)}", body, what=f"customer {record.key()!r}")

    def normalize(self, record: Customer) -> Customer:
        return mapping.normalize_customer(record, self.connector.settings.customer_custom_fields)


class InventorySink(Sink[Product]):
    """Inventory items by inventory number (the SKU): ``GET inventory/{number}``, ``POST inventory``, ``PUT inventory/{number}``."""

    connector: VismaNetConnector
    written_fields = frozenset(mapping.PRODUCT_FIELDS)
    field_map = {k: ", ".join(v) for k, v in mapping.PRODUCT_FIELDS.items()}

    async def find(self, key: str) -> Found | None:
        conn = self.connector
        item = await conn.client.get_or_none(f"inventory/{_quote(key)}", what=f"inventory item {key!r}")
        if not isinstance(item, dict):
            return None
        s = conn.settings
        record = mapping.product_from(
            item, currency=s.currency, vat_rates=conn.vat_rates, attributes=s.item_attributes, custom_fields=s.item_custom_fields
        )
        return Found(id=str(item.get("inventoryNumber") or key), record=record, vendor=item)

    async def create(self, record: Product) -> str:
        conn = self.connector
        s = conn.settings
        body = mapping.product_body(
            record,
            vat_code=conn.vat_code(record),
            item_class=s.item_class,
            posting_class=s.posting_class,
            item_type=s.item_type,
            attributes=s.item_attributes,
            custom_fields=s.item_custom_fields,
        )
        return await conn.client.create("inventory", body, what=f"inventory item {record.sku!r}")

    async def update(self, target_id: str, record: Product, fields: frozenset[str]) -> None:
        conn = self.connector
        body = mapping.product_body(
            record,
            fields,
            vat_code=conn.vat_code(record) if "tax_rate" in fields else None,
            attributes=conn.settings.item_attributes,
            custom_fields=conn.settings.item_custom_fields,
        )
        if body:
            await conn.client.update(f"inventory/{_quote(target_id)}", body, what=f"inventory item {record.sku!r}")

    def normalize(self, record: Product) -> Product:
        if record.currency != self.connector.settings.currency:
            raise RecordError(
                f"product {record.sku!r}: prices in {record.currency}, the Visma.net company books in {self.connector.settings.currency}"
            )
        s = self.connector.settings
        return mapping.normalize_product(record, s.item_attributes, s.item_custom_fields)


class OrderSettings(BaseModel):
    """The flow's ``target_settings`` for orders into Visma.net."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_type: str = Field(
        default="SO",
        pattern=r"^[A-Za-z0-9]{2}$",
        description="orderType of new sales orders (9.66: a two-character alphanumeric id)",
    )
    branch: str | None = Field(default=None, description="branchNumber (unset: the connection's branch)")
    warehouse: str | None = Field(default=None, description="warehouse of the lines")
    non_stock_item: str | None = Field(default=None, description="inventory item for lines without SKU (shipping, fees)")
    ship_via: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'The order\'s delivery method (custom_fields["delivery_method"]) → Visma.net shipVia code; "default" for the '
            "rest. Empty: no shipVia (the customer's default). Set: a method it lacks (and no default) is a record error"
        ),
    )
    shipping_terms: dict[str, str] = Field(
        default_factory=dict,
        description='The order\'s delivery terms (custom_fields["delivery_terms"]) → Visma.net shippingTerms; "default" for the rest',
    )


class OrderSink(DocumentSink[Order]):
    """An order as a sales order (``document = "order"``) or a customer invoice (``"invoice"``); the
    source's number goes in ``customerRefNo`` / ``externalReference``, which :meth:`find` looks for."""

    connector: VismaNetConnector
    documents = frozenset({"order", "invoice"})
    settings = OrderSettings
    written_fields = frozenset({"number", "customer_id", "created_at", "lines", "currency", "billing_address", "shipping_address"})
    field_map = {
        "number": "customerRefNo / externalReference",
        "customer_id": "customer / customerNumber",
        "created_at": "date / documentDate",
        "lines.*.sku": "lines[].inventoryId / invoiceLines[].inventoryNumber",
        "lines.*.quantity": "lines[].quantity",
        "lines.*.unit_price": "lines[].unitPrice / unitPriceInCurrency (excl. VAT)",
        "lines.*.discount": "lines[].discountAmount",
        "lines.*.tax_code": "lines[].taxCategory / vatCodeId",
        "lines.*.account": "invoiceLines[].accountNumber",
    }

    async def find(self, number: str) -> Found | None:
        conn = self.connector
        async for data in conn.client.pages(conn.settings.sales_order_api, what=f"sales order for {number!r}"):
            for item in data:
                if str(item.get("customerRefNo") or "") == number:
                    return Found(id=f"{item.get('orderType')}/{item.get('orderNo')}", vendor=item)
        async for data in conn.client.pages("customerinvoice", what=f"customer invoice for {number!r}"):
            for item in data:
                if str(item.get("externalReference") or "") == number:
                    return Found(id=f"invoice/{item.get('referenceNumber')}", vendor=item)
        return None

    async def create(self, request: DocumentRequest[Order]) -> str:
        conn = self.connector
        settings = request.settings if isinstance(request.settings, OrderSettings) else OrderSettings()
        order = request.record
        branch = settings.branch or conn.settings.branch
        if request.kind == "invoice":
            body = self._invoice(request, settings, branch)
            number = await conn.client.create("customerinvoice", body, what=f"customer invoice for order {order.number!r}")
            return f"invoice/{number}"
        body = self._sales_order(request, settings, branch)
        number = await conn.client.create(conn.settings.sales_order_api, body, what=f"sales order for order {order.number!r}")
        return f"{settings.order_type}/{number}"

    def _line_item(self, request: DocumentRequest[Order], line: Any, settings: OrderSettings) -> str:
        if line.sku:
            return request.article(line.sku).id
        if settings.non_stock_item:
            return settings.non_stock_item
        raise RecordError(
            f"order {request.record.number!r}: line {line.name!r} has no SKU and no non_stock_item is set in the flow's target_settings"
        )

    def _sales_order(self, request: DocumentRequest[Order], settings: OrderSettings, branch: str | None) -> dict[str, Any]:
        order = request.record
        lines = []
        for line in order.lines:
            if line.kind == "text":
                continue
            item = self._line_item(request, line, settings)
            body: dict[str, Any] = {
                "operation": "Insert",
                "inventoryId": wrap(item),  # the 2017 swagger's (and the v1 API's) name of the item
                "inventoryNumber": wrap(item),  # required by the 9.66 spec's SalesOrderLineUpdateDto
                "quantity": wrap(line.quantity),
                "unitPrice": wrap(_excl(line)),
                "lineDescription": wrap(line.name),
            }
            if line.discount:
                body["discountAmount"] = wrap(line.discount)
                body["manualDiscount"] = wrap(True)
            if line.tax_code:
                body["taxCategory"] = wrap(line.tax_code)
            if settings.warehouse:
                body["warehouse"] = wrap(settings.warehouse)
            if branch:
                body["branchNumber"] = wrap(branch)
            lines.append(body)
        result: dict[str, Any] = {
            "orderType": wrap(settings.order_type),
            "customer": wrap(request.customer_id),
            "date": wrap(order.created_at.astimezone(self.connector.zone).replace(tzinfo=None).isoformat(timespec="seconds")),
            "customerRefNo": wrap(order.number),
            "currency": wrap(order.currency),
            "description": wrap((order.note or f"Order {order.number}")[:256]),
            "lines": lines,
        }
        if branch:
            result["branchNumber"] = wrap(branch)
        if order.payment_terms:
            result["terms"] = wrap(order.payment_terms)
        if order.payment_method:
            result["paymentMethod"] = wrap(order.payment_method)  # 9.66 SalesOrderUpdateDto (not in the 2017 file)
        ship_via = _by_map(settings.ship_via, order, "delivery_method", "ship_via")
        if ship_via:
            result["shipVia"] = wrap(ship_via)
        terms = _by_map(settings.shipping_terms, order, "delivery_terms", "shipping_terms")
        if terms:
            result["shippingTerms"] = wrap(terms)
        if order.shipping_address is not None:
            address = mapping.address_body(order.shipping_address)
            result["soShippingAddress"] = wrap({"overrideAddress": wrap(True), **address})
        return result

    def _invoice(self, request: DocumentRequest[Order], settings: OrderSettings, branch: str | None) -> dict[str, Any]:
        order = request.record
        lines = []
        for number, line in enumerate((x for x in order.lines if x.kind != "text"), start=1):
            body: dict[str, Any] = {
                "operation": "Insert",
                "lineNumber": wrap(number),
                "inventoryNumber": wrap(self._line_item(request, line, settings)),
                "description": wrap(line.name[:INVOICE_LINE_TEXT]),
                "quantity": wrap(line.quantity),
                "unitPriceInCurrency": wrap(_excl(line)),
            }
            if line.discount:
                body["discountAmountInCurrency"] = wrap(line.discount)
            if line.tax_code:
                body["vatCodeId"] = wrap(line.tax_code)
            if line.account:
                body["accountNumber"] = wrap(line.account)
            if branch:
                body["branchNumber"] = wrap(branch)
            lines.append(body)
        result: dict[str, Any] = {
            "customerNumber": wrap(request.customer_id),
            "documentDate": wrap(order.created_at.astimezone(self.connector.zone).replace(tzinfo=None).isoformat(timespec="seconds")),
            "externalReference": wrap(order.number),
            "currencyId": wrap(order.currency),
            "invoiceText": wrap((order.note or f"Order {order.number}")[:256]),
            "invoiceLines": lines,
        }
        if order.payment_terms:
            result["creditTermsId"] = wrap(order.payment_terms)
        if order.payment_method:
            result["paymentMethodId"] = wrap(order.payment_method)
        if branch:
            result["branchNumber"] = wrap(branch)
        return result

    def normalize(self, record: Order) -> Order:
        return record


def _by_map(table: dict[str, str], order: Order, field: str, setting: str) -> str | None:
    """The target code for the order's ``custom_fields[field]`` by ``table`` ("default" for the rest);
    None without a table; RecordError for a value the table lacks when it has no default."""
    if not table:
        return None
    value = str(order.custom_fields.get(field) or "")
    if value in table:
        return table[value]
    if "default" in table:
        return table["default"]
    raise RecordError(
        f"order {order.number!r}: {field.replace('_', ' ')} {value or '(none)'!r} is not in the flow's target_settings.{setting} "
        f"(it maps: {', '.join(sorted(table))}; add it or a \"default\")"
    )


def _excl(line: Any) -> Decimal:
    """A line's unit price excl. VAT in cents (Visma.net prices are excl. VAT)."""
    price = line.unit_price
    if line.prices_include_tax and line.tax_rate:
        price = price / (1 + line.tax_rate / 100)
    return Decimal(price).quantize(mapping.CENT)


class JournalSink(Sink[JournalEntry]):
    """Sales bookings as journal transactions (``POST journaltransaction``), never booked twice:
    the entry's number is in every line's ``referenceNumber``, found before a create, and a
    booked entry is never changed."""

    connector: VismaNetConnector
    written_fields = frozenset({"number", "entry_date", "currency", "lines"})

    async def find(self, key: str) -> Found | None:
        async for data in self.connector.client.pages("journaltransaction", what=f"journal transaction {key!r}"):
            for item in data:
                lines = item.get("journalTransactionLines") or []
                if any(str(line.get("referenceNumber") or "") == key for line in lines if isinstance(line, dict)):
                    try:
                        record = mapping.journal_from(item, key)
                    except (ValueError, ArithmeticError):
                        record = None  # unreadable: the engine will try an update, which is refused
                    return Found(id=str(item.get("batchNumber")), record=record, vendor=item)
        return None

    def normalize(self, record: JournalEntry) -> JournalEntry:
        return mapping.normalize_journal(record)

    async def create(self, record: JournalEntry) -> str:
        s = self.connector.settings
        body = mapping.journal_body(record, branch=s.branch, ledger=s.ledger)
        return await self.connector.client.create("journaltransaction", body, what=f"journal entry {record.number!r}")

    async def update(self, target_id: str, record: JournalEntry, fields: frozenset[str]) -> None:
        raise RecordError(
            f"journal entry {record.number!r} is already booked in Visma.net as batch {target_id}; a booked entry is not "
            "changed (book a correction in eAccounting)"
        )


class VismaNetConnector(Connector):
    """Visma.net ERP (the v1 controller API).

    Reads customers, inventory items, stock (inventory summary) and sales orders; writes
    customers, inventory items, sales orders or customer invoices, and journal transactions.
    Visma Connect OAuth2: client credentials with ``tenant_id`` (service app) or authorization
    code with refresh tokens (interactive app, ``apicenterd auth``).
    """

    name: ClassVar[str] = "visma_net"
    title: ClassVar[str] = "Visma.net ERP"
    Settings: ClassVar[type[ConnectorSettings]] = VismaNetSettings
    sources = {
        Entity.CUSTOMERS: CustomerSource,
        Entity.PRODUCTS: InventorySource,
        Entity.STOCK: StockSource,
        Entity.ORDERS: OrderSource,
    }
    sinks = {
        Entity.CUSTOMERS: CustomerSink,
        Entity.PRODUCTS: InventorySink,
        Entity.ORDERS: OrderSink,
        Entity.JOURNAL: JournalSink,
    }
    rate_limits = (RateLimit(REQUESTS_PER_HOUR, 3600.0, name="per_company_client", headers=RATE_LIMIT_HEADERS),)
    oauth_authorize_url: ClassVar[str | None] = "https://connect.visma.com/connect/authorize"
    oauth_scopes: ClassVar[tuple[str, ...]] = INTERACTIVE_SCOPES
    default_port: ClassVar[int | None] = 8707

    settings: VismaNetSettings

    def __init__(self, settings: ConnectorSettings, context: Any):
        super().__init__(settings, context)
        self.api: VismaNetClient | None = None
        self.zone = ZoneInfo(self.settings.time_zone)
        self.vat_rates: dict[str, Decimal] = {code: Decimal(rate) for rate, code in self.settings.vat_codes.items()}

    async def open(self) -> None:
        """The token client and the authenticated API client."""
        s = self.settings
        self._token_client = self.context.http_client(base_url=s.token_url, timeout=s.timeout)
        auth: Any
        if s.tenant_id:
            auth = ClientCredentialsAuth(
                token_client=self._token_client,
                token_url=s.token_url,
                client_id=s.client_id,
                client_secret=s.client_secret.get_secret_value(),
                tenant_id=s.tenant_id,
                scopes=tuple(s.scopes) if s.scopes else None,
                api=SERVICE_API,
            )
        else:
            auth = OAuth2RefreshAuth(
                token_client=self._token_client,
                token_url=s.token_url,
                client_id=s.client_id,
                client_secret=s.client_secret.get_secret_value(),
                tokens=self.context.tokens,
                initial_refresh_token=s.refresh_token.get_secret_value() if s.refresh_token else None,
                connection=self.context.name,
            )
        self.auth = auth
        headers = {"ipp-company-id": s.company_id} if s.company_id else None
        http = self.context.http_client(base_url=s.base_url, auth=auth, headers=headers, timeout=s.timeout)
        self.api = VismaNetClient(http, api_path=s.api_path, page_size=s.page_size, forbidden=self._missing_scope)

    def _missing_scope(self, method: str, response: Any, what: str) -> AuthError | None:
        """A 403 that is a missing scope (the operation's scope is not among the token's, or the
        answer says ``insufficient_scope``): an AuthError naming the operation, the scope and the
        setting to change. Not retried (AuthError), and a 403 does not count for the circuit breaker."""
        s = self.settings
        service = bool(s.tenant_id)
        api = SERVICE_API if service else INTERACTIVE_API
        needed = scope_for(method, api)
        if isinstance(self.auth, ClientCredentialsAuth):
            has = set(self.auth.granted if self.auth.granted is not None else self.auth.asked)
        else:
            has = set(s.scopes or INTERACTIVE_SCOPES)
        says = "insufficient_scope" in response.headers.get("WWW-Authenticate", "")
        if needed in has and not says:
            return None
        operation = OPERATION_NAMES[OPERATION_SCOPES.get(method.upper(), "read")]
        name = self.context.name
        if service and not s.scopes:
            fix = (f"the token was asked for it but not granted: approve {needed!r} for the service app in the Visma "
                   "Developer Portal (and for the tenant in the Visma App Store)")  # fmt: skip
        elif service:
            fix = (f"add {needed!r} to the scopes setting of connection {name!r} (or remove the setting: the connector "
                   "then asks for what each operation needs) and approve it for the app in the Visma Developer Portal")  # fmt: skip
        else:
            fix = (f"add {needed!r} to the scopes setting of connection {name!r} (unset: {' '.join(INTERACTIVE_SCOPES)}) "
                   f"and run `apicenterd auth {name}` again so the user consents to it")  # fmt: skip
        return AuthError(
            f"{what}: Visma.net refused {method.upper()} {response.request.url.path} (HTTP 403): {operation} needs the "
            f"scope {needed!r}, which the token lacks (it has: {' '.join(sorted(has)) or 'none'}); {fix}",
            status=403,
            vendor_code="insufficient_scope",
            reauthorize=not service,  # a service app's scopes are granted in the portal, not by `apicenterd auth`
        )

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        if self.api is not None:
            await self.api.aclose()
            await self._token_client.aclose()
            self.api = None

    async def check(self) -> None:
        """One page of one customer: proves the token, the tenant and the read scope."""
        async for _ in self.client.pages("customer", what="check", params={"pageSize": 1}):
            break

    @property
    def client(self) -> VismaNetClient:
        """The API client (made in :meth:`open`)."""
        if self.api is None:
            raise FatalError(f"connection {self.context.name!r}: used before open() or after aclose()")
        return self.api

    def vat_code(self, product: Product) -> str | None:
        """The VAT code for the product's rate (``vat_codes``); None without a map; RecordError for an unmapped rate."""
        if not self.settings.vat_codes or product.tax_rate is None:
            return None
        for rate, code in self.settings.vat_codes.items():
            if Decimal(rate) == product.tax_rate:
                return code
        raise RecordError(
            f"product {product.sku!r}: VAT {product.tax_rate}% has no Visma.net VAT code in vat_codes "
            f"(mapped: {', '.join(sorted(self.settings.vat_codes))})"
        )

    async def webhook(self, request: WebhookRequest) -> Sequence[WebhookEvent]:
        """A Visma Webhook Dispatcher delivery as a trigger: the URL's ``token`` must be the connection's
        ``webhook_token`` (Visma.net documents no signature); the entities to re-read are the URL's
        ``entity`` (one subscription URL per event type), else the ones the body's event names mention
        (Customer, Inventory Item, Sales Order, Shipment), else every entity this connector reads.
        Nothing is read from the body beyond those names: the flows re-read through the API."""
        s = self.settings
        if s.webhook_token is None:
            raise WebhookRejected(f"connection {self.context.name!r}: no webhook_token is configured, so webhooks are refused")
        given = request.query.get("token", "")
        if not hmac.compare_digest(given.encode(), s.webhook_token.get_secret_value().encode()):
            raise WebhookRejected("the URL's token does not match the connection's webhook_token" if given else "the URL has no token")
        wanted = request.query.get("entity")
        if wanted is not None:
            if wanted not in WEBHOOK_ENTITIES:
                raise WebhookRejected(f"entity={wanted!r} in the URL: not one of {', '.join(WEBHOOK_ENTITIES)}", malformed=True)
            return [WebhookEvent(entity=e, kind=f"entity={wanted}") for e in WEBHOOK_ENTITIES[wanted]]
        try:
            body = json.loads(request.body) if request.body.strip() else None
        except (ValueError, UnicodeDecodeError):
            raise WebhookRejected("the body is not JSON", malformed=True) from None
        names = _event_names(body)
        found: dict[Entity, str] = {}
        for name in names:
            key = re.sub(r"[^a-z]", "", name.lower())
            for prefix, entities in WEBHOOK_EVENTS:
                if key.startswith(prefix):
                    for entity in entities:
                        found.setdefault(entity, name)
        if not found:
            return [WebhookEvent(entity=e, kind="unrecognised event") for e in READ_ENTITIES]
        return [WebhookEvent(entity=e, kind=kind) for e, kind in found.items()]

    @classmethod
    def simulator(cls, *, seed: int = 1, records: int = 0, **options: Any) -> Any:
        """An in-memory Visma.net (see :mod:`apicenterd_visma_net.simulator`)."""
        from .simulator import create_app

        return create_app(seed=seed, records=records, **options)

    @classmethod
    def demo_settings(cls, base_url: str) -> dict[str, Any]:
        """Settings the simulator at ``base_url`` accepts (a service app with its demo tenant)."""
        from .simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_TENANT

        return {
            "base_url": base_url,
            "token_url": f"{base_url.rstrip('/')}/connect/token",
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "tenant_id": DEMO_TENANT,
            "vat_codes": {"21": "1", "9": "2", "0": "3"},
        }

