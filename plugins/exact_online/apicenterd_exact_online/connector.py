"""The Exact Online connector: items, sales prices and accounts through the REST API (OData v2)."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from apicenterd import (
    Change,
    Connector,
    ConnectorError,
    ConnectorSettings,
    Customer,
    Entity,
    FatalError,
    Found,
    JournalEntry,
    OAuth2RefreshAuth,
    Order,
    Product,
    RecordError,
    Shipment,
    Sink,
    Source,
    StockLevel,
    WebhookEvent,
    WebhookRejected,
    WebhookRequest,
)
from apicenterd.kit import odata_or_filters

from . import mapping
from .client import RATE_LIMITS, ExactClient, guid_key, odata_string, parse_odata_date
from .invoices import SalesInvoiceSink
from .webhooks import WebhookError, verify

__all__ = ["ExactOnlineConnector", "ExactOnlineSettings", "REGIONS"]

REGIONS = ("nl", "be", "de", "co.uk", "com")
"""Exact Online's regional hosts: ``https://start.exactonline.<region>``."""

ACCESS_TOKEN_MARGIN = 30.0
"""Seconds before its end an access token (10 minutes) is refreshed: never before 9.5 minutes."""

FIND_MANY_CHUNK = 20
"""Codes per ``or`` filter (keeps the URL short)."""

CURSOR_DIGITS = 20
PAGE_KEYS = 60
"""Keys per ``or`` look-up at most: one standard page (60) answers them."""
BULK_PRICES_FROM = 200
"""A sync page with more items than this reads every sales price through the bulk API once."""
_IS_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


WEBHOOK_TOPICS = {
    "Items": Entity.PRODUCTS,
    "SalesOrders": Entity.ORDERS,
    "GoodsDeliveries": Entity.SHIPMENTS,
    "StockPositions": Entity.STOCK,
}
"""Exact's webhook topics (WebhookSubscriptions.Topic) → the entity whose flows a message triggers."""


class ExactOnlineSettings(ConnectorSettings):
    """Connection settings of an Exact Online connection (one company = one division)."""

    base_url: str = Field(default="", description="API host; unset: https://start.exactonline.<region>")
    region: str = Field(default="nl", description="Exact Online region: nl, be, de, co.uk or com")
    token_url: str = Field(default="", description="OAuth2 token endpoint; unset: <base_url>/api/oauth2/token")
    authorize_url: str | None = Field(default=None, description="OAuth2 consent page; unset: <base_url>/api/oauth2/auth")
    client_id: str = Field(min_length=1, description="Client ID of the app registered in the Exact App Center")
    client_secret: SecretStr = Field(description="Client secret of that app")
    refresh_token: SecretStr | None = Field(
        default=None, description="Bootstraps an empty token store; rotated tokens are kept in the state store"
    )
    division: int | None = Field(default=None, ge=1, description="Division (company) number; unset: CurrentDivision of current/Me")
    currency: str = Field(default="EUR", min_length=3, max_length=3, description="The division's currency (SalesItemPrices.Currency)")
    daily_reserve: int = Field(
        default=50,
        ge=0,
        le=4999,
        description="Calls of the day's 5,000 kept back (for `apicenterd check` and manual work); the flows share the rest by priority",
    )
    error_limit: int = Field(
        default=5, ge=1, le=9, description="Failed calls (400/401/403/404) on one endpoint in an hour after which it is not called"
    )
    stock_warehouse: str | None = Field(
        default=None, description="WarehouseCode whose stock the stock source reads; unset: an item's stock summed over every warehouse"
    )
    journal_code: str = Field(default="90", min_length=1, description="Journal (JournalCode) of the journal entries written")
    item_vat_code: str | None = Field(default=None, description="SalesVatCode of new items; unset: Exact's default")
    account_vat_code: str | None = Field(default=None, description="SalesVATCode of new accounts; unset: Exact's default")
    webhook_secret: SecretStr | None = Field(
        default=None, description="The app's webhook secret (App Center): verifies HashCode of webhooks to /webhooks/<connection>"
    )

    webhook_url: str | None = Field(
        default=None,
        description="The public URL of this connection's webhook path on the daemon (https://.../webhooks/<connection>): "
        "the CallbackURL of the WebhookSubscriptions the connector makes for webhook_topics",
    )
    webhook_topics: list[str] = Field(
        default_factory=list,
        description="Exact webhook topics to subscribe to at webhook_url (Items, SalesOrders, GoodsDeliveries, "
        "StockPositions); each runs the flows that read what it changes",
    )

    @field_validator("webhook_topics")
    @classmethod
    def _topics(cls, value: list[str]) -> list[str]:
        for topic in value:
            if topic not in WEBHOOK_TOPICS:
                raise ValueError(f"unknown Exact webhook topic {topic!r} (known: {', '.join(WEBHOOK_TOPICS)})")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _webhooks(self) -> Any:
        if self.webhook_topics and not self.webhook_url:
            raise ValueError("webhook_topics needs webhook_url: the public URL Exact sends them to (.../webhooks/<connection>)")
        if self.webhook_topics and self.webhook_secret is None:
            raise ValueError("webhook_topics needs webhook_secret: the app's webhook secret, without which no message is accepted")
        return self

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if value not in REGIONS:
            raise ValueError(f"region {value!r} is not one of {', '.join(REGIONS)}")
        return value

    def model_post_init(self, context: Any) -> None:
        base = (self.base_url or f"https://start.exactonline.{self.region}").rstrip("/")
        object.__setattr__(self, "base_url", base)
        if not self.token_url:
            object.__setattr__(self, "token_url", f"{base}/api/oauth2/token")
        if not self.authorize_url:
            object.__setattr__(self, "authorize_url", f"{base}/api/oauth2/auth")


class ItemSource(Source[Product]):
    """Items with their sales price, through the sync API (``sync/Logistics/Items``, ``Timestamp gt X``,
    in Timestamp order, so each change carries its own Timestamp as its cursor)."""

    connector: ExactOnlineConnector
    field_map = {k: ", ".join(v) for k, v in mapping.PRODUCT_FIELDS.items()}

    def __init__(self, connector: ExactOnlineConnector) -> None:
        super().__init__(connector)
        self._counted: dict[str | None, int] = {}

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        stamp = int(since) if since else 1
        every_price: dict[str, dict[str, Any]] | None = None
        self._counted.pop(since, None)
        async for items in conn.client.pages(
            "sync/Logistics/Items", select=(*mapping.ITEM_SELECT, "Modified"), filter=f"Timestamp gt {stamp}", what="items changed"
        ):
            if since not in self._counted and len(items) >= COUNT_FROM:
                await self._count(since, items)
            codes = [str(i["Code"]) for i in items if isinstance(i.get("Code"), str)]
            if every_price is None and len(codes) > BULK_PRICES_FROM:
                # a large read (a first sync): every price through the bulk API, 1,000 a call,
                # instead of one call per look-up of up to PAGE_KEYS codes
                every_price = await conn.all_prices()
            prices = every_price if every_price is not None else await conn.prices_of(codes)
            for item in items:
                cursor = str(item.get("Timestamp") or stamp).zfill(CURSOR_DIGITS)
                price = prices.get(str(item.get("Code")))
                to_record = functools.partial(mapping.item_to_product, item, price, currency=conn.settings.currency)
                yield self.mapped(str(item.get("ID")), cursor, to_record)

    async def _count(self, since: str | None, first_page: list[dict[str, Any]]) -> None:
        """A long read (its first page is full): how many items it has, for :meth:`backlog`. The sync
        API tells no total, so one ``logistics/Items/$count`` call counts the items modified since the
        earliest of the first page (about the same items: a Timestamp moves when an item is modified)."""
        stamps = []
        for item in first_page:
            try:
                when = parse_odata_date(item.get("Modified"))
            except ValueError:
                continue
            if when is not None:
                stamps.append(when)
        if not stamps:
            return
        floor = min(stamps).strftime("%Y-%m-%dT%H:%M:%S")
        try:
            total = await self.connector.client.count(
                "logistics/Items", filter=f"Modified ge datetime'{floor}'", what="how many items the sync reads"
            )
        except (RecordError, FatalError) as exc:  # a figure for people: the read goes on without it
            self.connector.context.log.info("exact_items_not_counted", error=str(exc))
            return
        if total is not None:
            self._counted[since] = total

    async def backlog(self, since: str | None) -> int | None:
        """The items a read from ``since`` has (counted once, when that read's first page came full:
        no call now, when the day budget may be spent); None before such a read."""
        return self._counted.get(since)


COUNT_FROM = 1000
"""A read whose first page holds this many items (a full sync page) is long: its items are counted."""

WEBHOOK_SUBSCRIPTIONS = "webhooks/WebhookSubscriptions"

MIN_ORDER_CURSOR = "1900-01-01T00:00:00.000Z"

COUNT_PAGE = 60
"""A read through the standard API whose first page holds this many rows (a full page: more follow)
is long: it is counted once, with ``$count`` and the read's own filter, for the source's backlog."""


class _CountedRead:
    """The backlog of a source read through the standard API with a ``Modified ge`` filter: when a
    read's first page is full, one ``{resource}/$count`` with the same filter counts what the read
    yields (one call of the day's 5,000, once per read); :meth:`backlog` then tells it without a call
    (the day budget may be spent by then). A short read is never counted (it ends within a call or two)."""

    connector: ExactOnlineConnector

    def __init__(self, connector: ExactOnlineConnector) -> None:
        super().__init__(connector)  # type: ignore[call-arg]  # Source's, next in the MRO
        self._counted: dict[str | None, int] = {}

    async def _counting(
        self,
        since: str | None,
        pages: AsyncIterator[list[dict[str, Any]]],
        *,
        resource: str,
        filter: str,
        what: str,
        share: Callable[[list[dict[str, Any]]], int] | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """``pages`` as they come; after the first, when it is full, the read counted. ``share(rows)``
        (optional) is the part of a page's rows the source keeps (a warehouse filter applied by the
        connector): the count is scaled by that part of the first page."""
        counted = self._counted
        counted.pop(since, None)
        first = True
        async for rows in pages:
            if first and len(rows) >= COUNT_PAGE:
                try:
                    total = await self.connector.client.count(resource, filter=filter, what=f"how many {what} the read has")
                except (RecordError, FatalError) as exc:  # a figure for people: the read goes on without it
                    self.connector.context.log.info("exact_not_counted", resource=resource, error=str(exc))
                else:
                    if total is not None:
                        counted[since] = round(total * share(rows) / len(rows)) if share is not None else total
            first = False
            yield rows

    async def backlog(self, since: str | None) -> int | None:
        """The rows a read from ``since`` has (counted once, when that read's first page came full);
        None before such a read."""
        return self._counted.get(since)


def _lines(order: dict[str, Any]) -> Any:
    """An order's expanded lines (a list), or what Exact gave instead (``__deferred``, nothing)."""
    block = order.get("SalesOrderLines")
    return block.get("results") if isinstance(block, dict) else block


def _order_cursor(modified: Any) -> str:
    when = parse_odata_date(modified)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z" if when else MIN_ORDER_CURSOR


class SalesOrderSource(_CountedRead, Source[Order]):
    """Sales orders with their lines (``$expand=SalesOrderLines``) and ordering Account, changed
    since a ``Modified`` cursor (``Modified ge datetime'...'``: filtering is mandatory here).

    Read in Exact's own order, not by Modified: every change carries ``since`` and the last the
    newest ``Modified`` seen, so the cursor moves once the whole read is settled."""

    connector: ExactOnlineConnector
    field_map = {
        "number": "OrderNumber",
        "status": "Status",
        "created_at": "OrderDate",
        "lines.*.sku": "SalesOrderLines.ItemCode",
        "lines.*.quantity": "SalesOrderLines.Quantity",
        "lines.*.unit_price": "SalesOrderLines.UnitPrice",
        "customer": "OrderedBy (Account)",
        "reference": "YourRef",
        "total": "AmountFC",
        "payment_terms": "PaymentCondition",
        "payment_method": "PaymentCondition's PaymentMethod (cashflow/PaymentConditions: B, I or K)",
    }

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        floor = since or MIN_ORDER_CURSOR
        newest = floor
        pending: Change | None = None
        expression = f"Modified ge datetime'{floor[:19]}'"
        async for orders in self._counting(
            since,
            conn.client.pages(
                "salesorder/SalesOrders",
                select=mapping.ORDER_SELECT,
                filter=expression,
                expand="SalesOrderLines",
                what="sales orders changed",
            ),
            resource="salesorder/SalesOrders",
            filter=expression,
            what="sales orders",
        ):
            await conn.enrich_orders(orders)
            accounts = await conn.accounts_by_id([str(o["OrderedBy"]) for o in orders if o.get("OrderedBy")])
            methods = await conn.payment_methods([str(o["PaymentCondition"]).strip() for o in orders if o.get("PaymentCondition")])
            for order in orders:
                try:
                    newest = max(newest, _order_cursor(order.get("Modified")))
                except ValueError as exc:
                    conn.context.log.warning("exact_bad_modified", order=order.get("OrderNumber"), error=str(exc))
                if pending is not None:
                    yield pending
                account = accounts.get(str(order.get("OrderedBy")))
                method = methods.get(str(order.get("PaymentCondition") or "").strip())
                to_record = functools.partial(mapping.sales_order_to_order, order, account, payment_method=method)
                pending = self.mapped(str(order.get("OrderID")), floor, to_record)
        if pending is not None:
            yield dataclasses.replace(pending, cursor=newest)


class ItemWarehouseSource(_CountedRead, Source[StockLevel]):
    """Stock per item (``inventory/ItemWarehouses``: ``CurrentStock`` on hand, ``ReservedStock``
    reserved by sales orders), changed since a ``Modified`` cursor: only the warehouse
    ``stock_warehouse`` (a ``WarehouseCode``) when set, else summed over every warehouse of the
    item. The same cursor rule as orders."""

    connector: ExactOnlineConnector
    field_map = {"sku": "ItemCode", "location": "WarehouseCode", "on_hand": "CurrentStock", "reserved": "ReservedStock"}

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        if self.connector.settings.stock_warehouse is None:
            async for change in self._totals(since):
                yield change
            return
        async for change in self._one_warehouse(since):
            yield change

    async def _totals(self, since: str | None) -> AsyncIterator[Change]:
        """Every warehouse (``stock_warehouse`` unset): one StockLevel per item (keyed by its code),
        its stock summed over all its warehouses. Each page's items have their other warehouses
        fetched (``ItemCode eq ... or ...``, one call for a page's 60 codes), so an item in two
        warehouses is never written as one warehouse's figure; an item already given in this read
        is not given again when another of its rows comes on a later page."""
        conn = self.connector
        floor = since or MIN_ORDER_CURSOR
        newest = floor
        expression = f"Modified ge datetime'{floor[:19]}'"
        given: set[str] = set()
        pending: Change | None = None
        async for rows in self._counting(
            since,
            conn.client.pages("inventory/ItemWarehouses", select=mapping.STOCK_SELECT, filter=expression, what="stock positions changed"),
            resource="inventory/ItemWarehouses",
            filter=expression,
            what="stock positions",
        ):
            changes: list[Change] = []
            fresh: dict[str, dict[str, dict[str, Any]]] = {}
            for row in rows:
                try:
                    newest = max(newest, _order_cursor(row.get("Modified")))
                except ValueError as exc:
                    conn.context.log.warning("exact_bad_modified", item=row.get("ItemCode"), error=str(exc))
                code = str(row.get("ItemCode") or "").strip()
                if not code:  # a failed change naming the row
                    changes.append(self.mapped(str(row.get("ID")), floor, functools.partial(mapping.item_warehouse_to_stock, row)))
                elif code not in given:
                    fresh.setdefault(code, {})[str(row.get("WarehouseCode") or "").strip()] = row
            for others, _codes in odata_or_filters("ItemCode", list(fresh), max_keys=PAGE_KEYS):
                async for more in conn.client.pages(
                    "inventory/ItemWarehouses", select=mapping.STOCK_SELECT, filter=others, what="other warehouses of changed items"
                ):
                    for row in more:
                        code = str(row.get("ItemCode") or "").strip()
                        if code in fresh:  # a row the read gave stays as it was read
                            fresh[code].setdefault(str(row.get("WarehouseCode") or "").strip(), row)
            given.update(fresh)
            changes += [
                self.mapped(code, floor, functools.partial(mapping.item_warehouses_to_stock, code, list(by_warehouse.values())))
                for code, by_warehouse in fresh.items()
            ]
            for change in changes:
                if pending is not None:
                    yield pending
                pending = change
        if pending is not None:
            yield dataclasses.replace(pending, cursor=newest)

    async def _one_warehouse(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        floor = since or MIN_ORDER_CURSOR
        newest = floor
        pending: Change | None = None
        wanted = conn.settings.stock_warehouse
        expression = f"Modified ge datetime'{floor[:19]}'"

        def kept(rows: list[dict[str, Any]]) -> int:
            return sum(1 for row in rows if wanted is None or str(row.get("WarehouseCode") or "").strip() == wanted)

        async for rows in self._counting(
            since,
            conn.client.pages("inventory/ItemWarehouses", select=mapping.STOCK_SELECT, filter=expression, what="stock positions changed"),
            resource="inventory/ItemWarehouses",
            filter=expression,
            what="stock positions",
            share=kept,
        ):
            for row in rows:
                if wanted is not None and str(row.get("WarehouseCode") or "").strip() != wanted:
                    continue
                try:
                    newest = max(newest, _order_cursor(row.get("Modified")))
                except ValueError as exc:
                    conn.context.log.warning("exact_bad_modified", item=row.get("ItemCode"), error=str(exc))
                if pending is not None:
                    yield pending
                pending = self.mapped(str(row.get("ID")), floor, functools.partial(mapping.item_warehouse_to_stock, row))
        if pending is not None:
            yield dataclasses.replace(pending, cursor=newest)


class GoodsDeliverySource(_CountedRead, Source[Shipment]):
    """Goods deliveries (``salesorder/GoodsDeliveries`` with their lines) as shipments of the shop's
    orders: the shop's order number is the Exact sales order's ``YourRef`` (where an order that came
    from the shop keeps it); one shipment per order a delivery covers. The same cursor rule as orders."""

    connector: ExactOnlineConnector
    field_map = {
        "order_number": "SalesOrder.YourRef (by GoodsDeliveryLines.SalesOrderNumber)",
        "tracking_code": "TrackingNumber",
        "carrier": "ShippingMethodCode",
        "shipped_at": "DeliveryDate",
        "lines.*.sku": "GoodsDeliveryLines.ItemCode",
        "lines.*.quantity": "GoodsDeliveryLines.QuantityDelivered",
    }

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        floor = since or MIN_ORDER_CURSOR
        newest = floor
        pending: Change | None = None
        expression = f"Modified ge datetime'{floor[:19]}'"
        async for deliveries in self._counting(
            since,
            conn.client.pages(
                "salesorder/GoodsDeliveries",
                select=mapping.DELIVERY_SELECT,
                filter=expression,
                expand="GoodsDeliveryLines",
                what="goods deliveries changed",
            ),
            resource="salesorder/GoodsDeliveries",
            filter=expression,
            what="goods deliveries",
        ):
            numbers: list[int] = []
            for delivery in deliveries:
                try:
                    numbers.extend(mapping.delivery_orders(delivery))
                except RecordError:
                    continue  # mapped below, as a failed change
            refs = await conn.order_refs(numbers)
            for delivery in deliveries:
                try:
                    newest = max(newest, _order_cursor(delivery.get("Modified")))
                except ValueError as exc:
                    conn.context.log.warning("exact_bad_modified", delivery=delivery.get("DeliveryNumber"), error=str(exc))
                try:
                    shipments = mapping.delivery_to_shipments(delivery, refs)
                except (RecordError, ValueError) as exc:
                    failed = functools.partial(_raise, exc)
                    shipments_or_error: list[Any] = [failed]
                else:
                    shipments_or_error = [functools.partial(_identity, shipment) for shipment in shipments]
                for n, make in enumerate(shipments_or_error):
                    if pending is not None:
                        yield pending
                    pending = self.mapped(f"{delivery.get('EntryID')}/{n}", floor, make)
        if pending is not None:
            yield dataclasses.replace(pending, cursor=newest)


def _raise(exc: Exception) -> Any:
    raise exc


def _identity(record: Shipment) -> Shipment:
    return record


class ItemSink(Sink[Product]):
    """Items by ``Code`` (the SKU); the price in ``SalesItemPrices`` (one per item, the division's currency)."""

    connector: ExactOnlineConnector
    written_fields = frozenset(mapping.PRODUCT_FIELDS)
    field_map = {k: ", ".join(v) for k, v in mapping.PRODUCT_FIELDS.items()}

    def _found(self, item: dict[str, Any], price: dict[str, Any] | None) -> Found:
        record = mapping.item_to_product(item, price, currency=self.connector.settings.currency)
        return Found(id=str(item["ID"]), record=record, vendor={"item": item, "price": price})

    async def find(self, key: str) -> Found | None:
        return (await self.find_many([key])).get(key)

    async def find_many(self, keys: Sequence[str]) -> Mapping[str, Found]:
        conn = self.connector
        items = await conn.items_by_code(keys)
        prices = await conn.prices_of(list(items)) if items else {}
        return {code: self._found(item, prices.get(code)) for code, item in items.items()}

    async def create(self, record: Product) -> str:
        conn = self.connector
        group = await conn.item_group(record.item_group, f"product {record.sku!r}") if record.item_group else None
        body = mapping.item_body(record, vat_code=conn.settings.item_vat_code, item_group_id=group)
        created = await conn.client.create("logistics/Items", body, what=f"item {record.sku!r}")
        if record.price_excl_tax is not None:
            await conn.set_price(str(created["ID"]), record, None)
        return str(created["ID"])

    async def update(self, target_id: str, record: Product, fields: frozenset[str]) -> None:
        conn = self.connector
        group = None
        if "item_group" in fields and record.item_group:
            group = await conn.item_group(record.item_group, f"product {record.sku!r}")
        body = mapping.item_body(record, fields, item_group_id=group)
        if body:
            await conn.client.update("logistics/Items", target_id, body, what=f"item {record.sku!r}")
        if "price_excl_tax" in fields and record.price_excl_tax is not None:
            current = await conn.prices_of([record.sku])
            await conn.set_price(target_id, record, current.get(record.sku))

    def normalize(self, record: Product) -> Product:
        return mapping.normalize_product(record)


class AccountSink(Sink[Customer]):
    """Accounts (customers, ``Status`` C) by e-mail, then by code; a company's contact person as a Contact."""

    connector: ExactOnlineConnector
    written_fields = frozenset(mapping.CUSTOMER_FIELDS)
    field_map = {k: ", ".join(v) for k, v in mapping.CUSTOMER_FIELDS.items()}

    async def find(self, key: str) -> Found | None:
        account = await self.connector.account_by_key(key)
        if account is None:
            return None
        record = mapping.account_to_customer(account)
        classes = {k: str(v) for k, v in record.custom_fields.items() if k in mapping.CLASSIFICATIONS}
        if classes:  # compared by code, as the flow gives them
            codes = await self.connector.classification_codes(list(classes.values()))
            custom = {**record.custom_fields, **{k: codes.get(v, v) for k, v in classes.items()}}
            record = record.model_copy(update={"custom_fields": custom})
        return Found(id=str(account["ID"]), record=record, vendor=account)

    async def create(self, record: Customer) -> str:
        conn = self.connector
        what = f"customer {record.key()!r}"
        body = mapping.account_body(record, vat_code=record.tax_code or conn.settings.account_vat_code)
        body = await conn.classifications(body, what)
        if record.revenue_account:  # the flow's revenue_accounts map (per country): a GL account code
            body["GLAccountSales"] = (await conn.gl_accounts([record.revenue_account]))[record.revenue_account]
        if record.payment_terms:  # the flow's payment_terms: Exact's payment condition code
            body["PaymentConditionSales"] = record.payment_terms
        created = await conn.client.create("crm/Accounts", body, what=what)
        account_id = str(created["ID"])
        contact = mapping.contact_body(record, account_id)
        if contact is not None:
            person = await conn.client.create("crm/Contacts", contact, what=f"contact person of {what}")
            await conn.client.update("crm/Accounts", account_id, {"MainContact": person["ID"]}, what=f"main contact of {what}")
        return account_id

    async def update(self, target_id: str, record: Customer, fields: frozenset[str]) -> None:
        body = await self.connector.classifications(mapping.account_body(record, fields), f"customer {record.key()!r}")
        if body:
            await self.connector.client.update("crm/Accounts", target_id, body, what=f"customer {record.key()!r}")

    def normalize(self, record: Customer) -> Customer:
        unwritable = [name for name in ("cost_centre", "cost_unit", "payment_method") if getattr(record, name)]
        if unwritable:
            raise RecordError(
                f"customer {record.key()!r}: Exact Online's Account has no writable {', '.join(unwritable)} "
                "(the SDK marks Account.Costcenter read-only and obsolete, and has no cost unit or payment method on an Account; "
                "the payment method is part of the payment condition): set them on the invoices or journal flow, "
                "or the payment condition with options.payment_terms"
            )
        return mapping.normalize_customer(record)


class JournalSink(Sink[JournalEntry]):
    """Journal entries as ``GeneralJournalEntries`` in the configured journal, their number as
    ``EntryNumber`` (so a number Exact has is found, never booked twice), GL accounts by code.
    A booked entry is never changed: an entry found is linked as it is."""

    connector: ExactOnlineConnector
    written_fields = frozenset({"number"})
    field_map = {
        "number": "EntryNumber",
        "entry_date": "GeneralJournalEntryLines.Date",
        "lines.*.account": "GeneralJournalEntryLines.GLAccount (by Code)",
        "lines.*.debit": "GeneralJournalEntryLines.AmountFC (+)",
        "lines.*.credit": "GeneralJournalEntryLines.AmountFC (-)",
        "lines.*.description": "GeneralJournalEntryLines.Description",
        "lines.*.cost_centre": "GeneralJournalEntryLines.CostCenter",
        "lines.*.cost_unit": "GeneralJournalEntryLines.CostUnit",
    }

    def normalize(self, record: JournalEntry) -> JournalEntry:
        return mapping.normalize_journal(record)

    async def find(self, key: str) -> Found | None:
        """By ``EntryNumber`` in the journal for a whole number; else by a line's ``Notes`` (where
        :func:`~.mapping.journal_body` keeps a number Exact cannot take, e.g. eAccounting's ``F12-20240105``)."""
        conn = self.connector
        select = ("EntryID", "EntryNumber", "JournalCode", "Currency")
        what = f"journal entry {key}"
        if mapping.numbered(key):
            number = mapping.entry_number(key)
            found = await conn.client.first(
                "generaljournalentry/GeneralJournalEntries", select=select, filter=f"EntryNumber eq {number}", what=what
            )
            candidates = [e for e in found if e.get("EntryNumber") == number]
        else:
            lines = await conn.client.first(
                "generaljournalentry/GeneralJournalEntryLines",
                select=("ID", "EntryID", "Notes"),
                filter=f"Notes eq {odata_string(key)}",
                what=what,
            )
            ids = list(
                dict.fromkeys(
                    str(line["EntryID"]) for line in lines if line.get("Notes") == key and _IS_GUID.fullmatch(str(line.get("EntryID")))
                )
            )
            if not ids:
                return None
            expression = " or ".join(f"EntryID eq guid'{entry_id}'" for entry_id in ids[:FIND_MANY_CHUNK])
            candidates = await conn.client.first("generaljournalentry/GeneralJournalEntries", select=select, filter=expression, what=what)
        entry = next((e for e in candidates if str(e.get("JournalCode")) == conn.settings.journal_code), None)
        if entry is None:
            return None
        return Found(id=str(entry["EntryID"]), record=mapping.entry_stub(entry, key), vendor=entry)

    async def create(self, record: JournalEntry) -> str:
        conn = self.connector
        accounts = await conn.gl_accounts([line.account for line in record.lines])
        body = mapping.journal_body(record, journal=conn.settings.journal_code, gl_accounts=accounts)
        created = await conn.client.create(
            "generaljournalentry/GeneralJournalEntries", body, what=f"journal entry {record.number}", key="EntryID"
        )
        return str(created["EntryID"])

    async def update(self, target_id: str, record: JournalEntry, fields: frozenset[str]) -> None:
        raise RecordError(f"journal entry {record.number}: booked in Exact Online as {target_id}; a booked entry is not changed")


class ExactOnlineConnector(Connector):
    """Exact Online (REST API, OData v2) for one division.

    Reads items (with their sales price) through the sync API; writes items with their sales
    price and customer accounts with their contact person. Within 60 calls a minute and
    5,000 a day (:data:`~.client.RATE_LIMITS`, with Exact's headers); a spent day pauses the
    connection until Exact's reset. OAuth2 with 10-minute access tokens and rotating refresh
    tokens, the client's id and secret in the token request's form.
    """

    name: ClassVar[str] = "exact_online"
    title: ClassVar[str] = "Exact Online"
    Settings: ClassVar[type[ConnectorSettings]] = ExactOnlineSettings
    sources = {
        Entity.PRODUCTS: ItemSource,
        Entity.ORDERS: SalesOrderSource,
        Entity.STOCK: ItemWarehouseSource,
        Entity.SHIPMENTS: GoodsDeliverySource,
    }
    sinks = {Entity.PRODUCTS: ItemSink, Entity.CUSTOMERS: AccountSink, Entity.JOURNAL: JournalSink, Entity.INVOICES: SalesInvoiceSink}
    rate_limits = RATE_LIMITS
    oauth_authorize_url: ClassVar[str | None] = "https://start.exactonline.nl/api/oauth2/auth"
    oauth_scopes: ClassVar[tuple[str, ...]] = ()
    oauth_client_auth: ClassVar[str] = "post"
    default_port: ClassVar[int | None] = 8703

    settings: ExactOnlineSettings

    def __init__(self, settings: ConnectorSettings, context: Any):
        super().__init__(settings, context)
        self.api: ExactClient | None = None
        self._gl: dict[str, str] = {}
        self._groups: dict[str, str] = {}
        self._conditions: dict[str, str] = {}
        self._vat: dict[str, Any] = {}
        self._class_names: dict[str, int] = {}
        self._classes: dict[tuple[int, str], str] = {}
        self._class_codes: dict[str, str] = {}

    async def open(self) -> None:
        """Create the authenticated API client."""
        s = self.settings
        self._token_client = self.context.http_client(base_url=s.base_url, timeout=s.timeout)
        auth = OAuth2RefreshAuth(
            token_client=self._token_client,
            token_url=s.token_url,
            client_id=s.client_id,
            client_secret=s.client_secret.get_secret_value(),
            tokens=self.context.tokens,
            initial_refresh_token=s.refresh_token.get_secret_value() if s.refresh_token else None,
            connection=self.context.name,
            client_auth="post",
            margin=ACCESS_TOKEN_MARGIN,
        )
        self.api = ExactClient(
            self.context.http_client(base_url=s.base_url, auth=auth, timeout=s.timeout),
            division=s.division,
            # daily_reserve is kept by the core's day budget (shared by the flows by priority); the
            # client itself stops only when Exact says the day is spent (another app, another daemon)
            reserve=0,
            error_limit=s.error_limit,
        )

        if s.webhook_url:  # with no topics left: removes the subscriptions made before
            try:
                await self.subscribe_webhooks()
            except ConnectorError as exc:  # the flows still poll: webhooks only make them sooner
                self.context.log.warning("exact_webhooks_not_subscribed", error=str(exc))

    async def subscribe_webhooks(self) -> list[str]:
        """Make sure Exact sends every topic of ``webhook_topics`` to ``webhook_url``, once: ``GET
        webhooks/WebhookSubscriptions``, a ``POST`` (``CallbackURL``, ``Topic``) for each topic not
        subscribed there yet, a ``DELETE`` for a subscription at ``webhook_url`` whose topic is no longer
        configured (other callback URLs, other apps', are left alone). Idempotent; the topics subscribed now."""
        url = self.settings.webhook_url or ""
        wanted = list(self.settings.webhook_topics)
        present: set[str] = set()
        stale: list[dict[str, Any]] = []
        async for rows in self.client.pages(WEBHOOK_SUBSCRIPTIONS, select=("ID", "CallbackURL", "Topic"), what="webhook subscriptions"):
            for row in rows:
                if row.get("CallbackURL") != url:
                    continue
                if row.get("Topic") in wanted and row.get("Topic") not in present:
                    present.add(str(row["Topic"]))
                elif row.get("ID"):
                    stale.append(row)
        for row in stale:
            await self.client.delete(WEBHOOK_SUBSCRIPTIONS, str(row["ID"]), what=f"webhook subscription {row.get('Topic')}")
        if stale:
            self.context.log.info("exact_webhooks_unsubscribed", topics=[r.get("Topic") for r in stale])
        added = [t for t in wanted if t not in present]
        for topic in added:
            body = {"CallbackURL": url, "Topic": topic, "Description": f"apicenterd {self.context.name}"}
            await self.client.create(WEBHOOK_SUBSCRIPTIONS, body, what=f"webhook subscription {topic}")
        if added:
            self.context.log.info("exact_webhooks_subscribed", topics=added)
        return added

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        if self.api is not None:
            await self.api.aclose()
            await self._token_client.aclose()
            self.api = None

    async def webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        """An Exact webhook (``{"Content": {...}, "HashCode": "..."}``, HashCode the HMAC-SHA256 of the raw
        Content with ``webhook_secret``) as a trigger of the flows that read its topic; a message of
        another division or a topic no source reads triggers nothing."""
        secret = self.settings.webhook_secret
        if secret is None:
            raise WebhookRejected(f"connection {self.context.name!r}: no webhook_secret configured: an Exact webhook cannot be verified")
        try:
            content = verify(request.body, secret.get_secret_value())
        except WebhookError as exc:
            raise WebhookRejected(str(exc), malformed="does not match" not in str(exc)) from None
        division = content.get("Division")
        if self.settings.division is not None and division is not None and division != self.settings.division:
            return []
        entity = WEBHOOK_TOPICS.get(str(content.get("Topic") or ""))
        if entity is None:
            return []
        key = content.get("Key")
        return [WebhookEvent(entity, str(key) if key else None, f"{content.get('Topic')} {content.get('Action') or ''}".strip())]

    async def check(self) -> None:
        """The division (current/Me when not configured): proves the token and the company."""
        await self.client.division()

    @property
    def client(self) -> ExactClient:
        """The API client (made in :meth:`open`)."""
        if self.api is None:
            raise FatalError(f"connection {self.context.name!r}: used before open() or after aclose()")
        return self.api

    # -- look-ups the parts share ---------------------------------------------------------

    async def items_by_code(self, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The Items whose Code is one of ``codes`` (exact matches): as many per call as a short URL
        and one page (60) hold (:func:`apicenterd.kit.odata_or_filters`)."""
        found: dict[str, dict[str, Any]] = {}
        select = [f for f in mapping.ITEM_SELECT if f != "Timestamp"]
        for expression, chunk in odata_or_filters("Code", codes, max_keys=PAGE_KEYS):
            async for items in self.client.pages("logistics/Items", select=select, filter=expression, what=f"{len(chunk)} items by Code"):
                for item in items:
                    if item.get("Code") in chunk:
                        found[item["Code"]] = item
        return found

    async def prices_of(self, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The SalesItemPrice in the division's currency of each item code (the first one Exact lists)."""
        found: dict[str, dict[str, Any]] = {}
        for expression, chunk in odata_or_filters("ItemCode", codes, max_keys=PAGE_KEYS):
            async for prices in self.client.pages(
                "logistics/SalesItemPrices", select=mapping.PRICE_SELECT, filter=expression, what=f"sales prices of {len(chunk)} items"
            ):
                for price in prices:
                    code = price.get("ItemCode")
                    if code in chunk and code not in found and (price.get("Currency") or self.settings.currency) == self.settings.currency:
                        found[code] = price
        return found

    async def all_prices(self) -> dict[str, dict[str, Any]]:
        """Every SalesItemPrice in the division's currency by item code (``bulk/Logistics/SalesItemPrices``)."""
        found: dict[str, dict[str, Any]] = {}
        async for prices in self.client.pages("bulk/Logistics/SalesItemPrices", select=mapping.PRICE_SELECT, what="all sales prices"):
            for price in prices:
                code = price.get("ItemCode")
                if (
                    isinstance(code, str)
                    and code not in found
                    and (price.get("Currency") or self.settings.currency) == self.settings.currency
                ):
                    found[code] = price
        return found

    async def set_price(self, item_id: str, record: Product, current: dict[str, Any] | None) -> None:
        """Write the item's sales price: PUT the existing SalesItemPrice, or POST one."""
        what = f"sales price of item {record.sku!r}"
        if current is not None and current.get("ID"):
            await self.client.update("logistics/SalesItemPrices", str(current["ID"]), {"Price": record.price_excl_tax}, what=what)
            return
        body = {"Item": item_id, "Price": record.price_excl_tax, "Currency": self.settings.currency}
        await self.client.create("logistics/SalesItemPrices", body, what=what)

    async def gl_accounts(self, codes: Sequence[str]) -> dict[str, str]:
        """GL account code → its ID (kept for the connection's life: the chart of accounts is configuration);
        RecordError naming a code Exact does not have."""
        missing = [c for c in dict.fromkeys(codes) if c not in self._gl]
        for start in range(0, len(missing), FIND_MANY_CHUNK):
            chunk = missing[start : start + FIND_MANY_CHUNK]
            expression = " or ".join(f"Code eq {odata_string(code)}" for code in chunk)
            async for accounts in self.client.pages("financial/GLAccounts", select=("ID", "Code"), filter=expression, what="GL accounts"):
                self._gl.update({str(a["Code"]).strip(): str(a["ID"]) for a in accounts if a.get("Code") and a.get("ID")})
        unknown = [c for c in codes if c not in self._gl]
        if unknown:
            raise RecordError(
                f"GL account(s) {', '.join(sorted(set(unknown)))} not found in Exact Online division {await self.client.division()}"
            )
        return {c: self._gl[c] for c in codes}

    async def item_group(self, code: str, what: str) -> str:
        """The ID of the item group (``logistics/ItemGroups``) with ``code``, kept for the connection's
        life; RecordError naming a code Exact does not have (item groups are made in Exact, not here)."""
        code = code.strip()
        if code not in self._groups:
            found = await self.client.first(
                "logistics/ItemGroups", select=("ID", "Code"), filter=f"Code eq {odata_string(code)}", what=f"item group {code!r}"
            )
            match = next((g for g in found if str(g.get("Code") or "").strip() == code and g.get("ID")), None)
            if match is None:
                raise RecordError(f"{what}: item group {code!r} not found in Exact Online division {await self.client.division()}")
            self._groups[code] = str(match["ID"])
        return self._groups[code]

    async def payment_methods(self, codes: Sequence[str]) -> dict[str, str]:
        """Payment condition code → its payment method (``cashflow/PaymentConditions``: B on credit,
        I collection, K cash), kept for the connection's life; conditions Exact does not have are left out."""
        missing = [c for c in dict.fromkeys(codes) if c and c not in self._conditions]
        for start in range(0, len(missing), FIND_MANY_CHUNK):
            chunk = missing[start : start + FIND_MANY_CHUNK]
            expression = " or ".join(f"Code eq {odata_string(code)}" for code in chunk)
            async for rows in self.client.pages(
                "cashflow/PaymentConditions", select=("ID", "Code", "PaymentMethod"), filter=expression, what="payment conditions"
            ):
                self._conditions.update(
                    {str(r["Code"]).strip(): str(r["PaymentMethod"]).strip() for r in rows if r.get("Code") and r.get("PaymentMethod")}
                )
        return {c: self._conditions[c] for c in codes if c in self._conditions}

    async def enrich_orders(self, orders: list[dict[str, Any]]) -> None:
        """Make a page of SalesOrders whole before they are mapped: the lines of an order Exact gave
        deferred (not expanded) read from ``salesorder/SalesOrderLines`` by ``OrderID``, and a line's
        missing ``VATPercentage`` taken from its sales ``VATCode`` (``vat/VATCodes``, ``Percentage``)."""
        deferred = [str(o["OrderID"]) for o in orders if o.get("OrderID") and not isinstance(_lines(o), list)]
        wanted = [i for i in dict.fromkeys(deferred) if _IS_GUID.fullmatch(i)]
        found: dict[str, list[dict[str, Any]]] = {}
        for start in range(0, len(wanted), FIND_MANY_CHUNK):
            chunk = wanted[start : start + FIND_MANY_CHUNK]
            expression = " or ".join(f"OrderID eq guid'{order_id}'" for order_id in chunk)
            async for rows in self.client.pages(
                "salesorder/SalesOrderLines", select=mapping.ORDER_LINE_SELECT, filter=expression, what=f"lines of {len(chunk)} orders"
            ):
                for row in rows:
                    found.setdefault(str(row.get("OrderID")), []).append(row)
        for order in orders:
            if str(order.get("OrderID")) in found:
                order["SalesOrderLines"] = {"results": found[str(order["OrderID"])]}
        rows = [row for order in orders if isinstance(lines := _lines(order), list) for row in lines if isinstance(row, dict)]
        codes = [str(r["VATCode"]).strip() for r in rows if r.get("VATPercentage") is None and str(r.get("VATCode") or "").strip()]
        if codes:
            rates = await self.vat_percentages(codes)
            for row in rows:
                code = str(row.get("VATCode") or "").strip()
                if row.get("VATPercentage") is None and code in rates:
                    row["VATPercentage"] = rates[code]

    async def vat_percentages(self, codes: Sequence[str]) -> dict[str, Any]:
        """VAT code → its ``Percentage`` (a fraction, as Exact gives it), from ``vat/VATCodes``, kept for
        the connection's life; codes Exact does not have are left out (the order then fails, naming it)."""
        missing = [c for c in dict.fromkeys(codes) if c and c not in self._vat]
        for start in range(0, len(missing), FIND_MANY_CHUNK):
            chunk = missing[start : start + FIND_MANY_CHUNK]
            expression = " or ".join(f"Code eq {odata_string(code)}" for code in chunk)
            async for rows in self.client.pages(
                "vat/VATCodes", select=("ID", "Code", "Percentage"), filter=expression, what=f"{len(chunk)} VAT codes"
            ):
                known = [r for r in rows if r.get("Code") and r.get("Percentage") is not None]
                self._vat.update({str(r["Code"]).strip(): r["Percentage"] for r in known})
        return {c: self._vat[c] for c in codes if c in self._vat}

    async def classifications(self, body: dict[str, Any], what: str) -> dict[str, Any]:
        """``body`` with each ``Classification<n>`` code replaced by the ID of the ``crm/AccountClassifications``
        entry with that ``Code`` under the classification whose ``SequenceNumber`` is n (kept for the
        connection's life); RecordError naming a code Exact does not have there."""
        wanted = {k: str(v).strip() for k, v in body.items() if k in mapping.CLASSIFICATIONS and v is not None}
        if not wanted:
            return body
        if not self._class_names:
            async for rows in self.client.pages(
                "crm/AccountClassificationNames", select=("ID", "SequenceNumber"), what="account classification names"
            ):
                self._class_names.update({str(r["ID"]): int(r["SequenceNumber"]) for r in rows if r.get("ID") and r.get("SequenceNumber")})
        resolved = dict(body)
        for field, code in wanted.items():
            sequence = mapping.CLASSIFICATIONS[field]
            if (sequence, code) not in self._classes:
                rows = await self.client.first(
                    "crm/AccountClassifications",
                    select=("ID", "Code", "AccountClassificationName"),
                    filter=f"Code eq {odata_string(code)}",
                    what=f"account classification {code!r}",
                )
                for row in rows:
                    number = self._class_names.get(str(row.get("AccountClassificationName")))
                    if number is not None and row.get("ID") and str(row.get("Code") or "").strip() == code:
                        self._classes[(number, code)] = str(row["ID"])
                        self._class_codes[str(row["ID"])] = code
            if (sequence, code) not in self._classes:
                raise RecordError(
                    f"{what}: custom field {field}: account classification code {code!r} not found in classification {sequence} "
                    f"of Exact Online division {await self.client.division()} (crm/AccountClassifications)"
                )
            resolved[field] = self._classes[(sequence, code)]
        return resolved

    async def classification_codes(self, ids: Sequence[str]) -> dict[str, str]:
        """Account classification ID → its ``Code`` (kept for the connection's life); IDs Exact lacks left out."""
        missing = [i for i in dict.fromkeys(ids) if i not in self._class_codes and _IS_GUID.fullmatch(i)]
        for start in range(0, len(missing), FIND_MANY_CHUNK):
            chunk = missing[start : start + FIND_MANY_CHUNK]
            expression = " or ".join(f"ID eq guid'{class_id}'" for class_id in chunk)
            async for rows in self.client.pages(
                "crm/AccountClassifications", select=("ID", "Code"), filter=expression, what="account classifications"
            ):
                self._class_codes.update({str(r["ID"]): str(r["Code"]).strip() for r in rows if r.get("ID") and r.get("Code")})
        return {i: self._class_codes[i] for i in ids if i in self._class_codes}

    async def order_refs(self, numbers: Sequence[int]) -> dict[int, str]:
        """Exact sales order number → its ``YourRef`` (the shop's order number), for the orders that have one."""
        wanted = list(dict.fromkeys(numbers))
        refs: dict[int, str] = {}
        for start in range(0, len(wanted), FIND_MANY_CHUNK):
            chunk = wanted[start : start + FIND_MANY_CHUNK]
            expression = " or ".join(f"OrderNumber eq {number}" for number in chunk)
            async for orders in self.client.pages(
                "salesorder/SalesOrders", select=("OrderID", "OrderNumber", "YourRef"), filter=expression, what="orders of deliveries"
            ):
                refs.update(
                    {o["OrderNumber"]: str(o["YourRef"]).strip() for o in orders if o.get("YourRef") and o.get("OrderNumber") in chunk}
                )
        return refs

    async def accounts_by_id(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The Accounts with these IDs, ``FIND_MANY_CHUNK`` per call (what is not a GUID is not looked up)."""
        wanted = [i for i in dict.fromkeys(ids) if _IS_GUID.fullmatch(i)]
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), FIND_MANY_CHUNK):
            chunk = wanted[start : start + FIND_MANY_CHUNK]
            expression = " or ".join(f"ID eq guid'{account_id}'" for account_id in chunk)
            pages = self.client.pages("crm/Accounts", select=mapping.ACCOUNT_SELECT, filter=expression, what="ordering accounts")
            async for accounts in pages:
                found.update({str(a["ID"]): a for a in accounts})
        return found

    async def account_by_key(self, key: str) -> dict[str, Any] | None:
        """The Account with e-mail ``key`` (also found through a contact person's e-mail), else with Code ``key``."""
        client = self.client
        what = f"customer {key!r}"
        if "@" in key:
            found = await client.first("crm/Accounts", select=mapping.ACCOUNT_SELECT, filter=f"Email eq {odata_string(key)}", what=what)
            matches = [a for a in found if (a.get("Email") or "").strip().lower() == key.lower()]
            if matches:
                return matches[0]
            contacts = await client.first(
                "crm/Contacts", select=("ID", "Account", "Email"), filter=f"Email eq {odata_string(key)}", what=what
            )
            account_id = next((c.get("Account") for c in contacts if (c.get("Email") or "").strip().lower() == key.lower()), None)
            if not account_id:
                return None
            found = await client.first("crm/Accounts", select=mapping.ACCOUNT_SELECT, filter=f"ID eq guid'{account_id}'", what=what)
            return found[0] if found else None
        code = mapping.account_code(key)
        found = await client.first("crm/Accounts", select=mapping.ACCOUNT_SELECT, filter=f"Code eq {odata_string(code)}", what=what)
        return next((a for a in found if (a.get("Code") or "").strip() == key.strip()), None)

    # -- demo / tests ------------------------------------------------------------------------

    @classmethod
    def simulator(cls, *, seed: int = 1, records: int = 0, **options: Any) -> Any:
        """An in-memory Exact Online (see :mod:`apicenterd_exact_online.simulator`)."""
        from .simulator import create_app

        return create_app(seed=seed, records=records, **options)

    @classmethod
    def demo_settings(cls, base_url: str) -> dict[str, Any]:
        """Settings the simulator at ``base_url`` accepts."""
        from .simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, demo_refresh_token

        return {
            "base_url": base_url,
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "refresh_token": demo_refresh_token(),
        }


__all__ += [
    "AccountSink",
    "ItemSink",
    "ItemSource",
    "GoodsDeliverySource",
    "ItemWarehouseSource",
    "JournalSink",
    "SalesOrderSource",
    "guid_key",
]
