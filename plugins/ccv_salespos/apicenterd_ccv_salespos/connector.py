"""The CCV SalesPOS connector (CCV Shop REST API): reads products, stock, orders and customers; writes shipments."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
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
    Order,
    Product,
    RateLimit,
    RecordError,
    Shipment,
    Sink,
    Source,
    StockLevel,
    WebhookEvent,
    WebhookRejected,
    WebhookRequest,
)

from . import mapping
from .client import API_PREFIX, MAX_PAGE_SIZE, SALESPOS_MEDIA_TYPE, CCVAuth, CCVClient, resource_of

__all__ = ["CCVSalesPOSConnector", "WEBHOOK_EVENTS", "get_bucket", "write_bucket"]

WEBHOOK_EVENTS: dict[str, tuple[Entity, ...]] = {
    "orders.created": (Entity.ORDERS, Entity.CUSTOMERS, Entity.STOCK),
    "orders.updated.status": (Entity.ORDERS, Entity.CUSTOMERS, Entity.STOCK),
    "orders.updated.ispaid": (Entity.ORDERS, Entity.CUSTOMERS),
    "orders.updated.trackandtrace": (Entity.ORDERS,),
    "products.created": (Entity.PRODUCTS, Entity.STOCK),
    "products.updated": (Entity.PRODUCTS, Entity.STOCK),
    "products.deleted": (Entity.PRODUCTS, Entity.STOCK),
}
"""The CCV webhook events the connector subscribes to (CCV-SHOP-API.md §8, seen registered by real apps)
and the entities whose flows each one runs: an order's status changes its rows' stock reservations;
customers come from orders."""
WEBHOOK_SHORTHANDS = {"orders.updated.*": ("orders.updated.status", "orders.updated.ispaid", "orders.updated.trackandtrace")}

MIN_PRODUCT_CURSOR = "1970-01-01T00:00:00Z"
"""The products cursor of a read from the beginning, carried until the read is settled."""

ROWS_CACHE_SIZE = 10_000
"""Orders whose rows are remembered between runs (keyed by the order's content; see ``_rows_for``)."""


def get_bucket(request: httpx.Request) -> str | None:
    """The GET limit's bucket: ``GET:<resource>``; None (not governed) for writes."""
    return f"GET:{resource_of(request.url.path)}" if request.method == "GET" else None


def write_bucket(request: httpx.Request) -> str | None:
    """The write limit's bucket: ``<METHOD>:<resource>``; None (not governed) for GETs."""
    return None if request.method == "GET" else f"{request.method}:{resource_of(request.url.path)}"


class ProductSource(Source[Product]):
    """Products (see the connector's doc)."""

    connector: CCVSalesPOSConnector
    field_map = {
        'sku': 'productnumber',
        'name': 'name',
        'ean': 'eannumber',
        'short_description': 'shortdescription',
        'description': 'description',
        'price_incl_tax': 'price - discount (incl. VAT unless prices_include_tax = false)',
        'price_excl_tax': '(price - discount) / (1 + vatrate/100)',
        'tax_rate': 'vatrate',
        'purchase_price': 'purchaseprice',
        'quantity': 'stock',
        'unit': 'unit',
        'images': 'productmainphoto',
        'active': 'is_active',
        'weight_kg': 'weight',
    }

    def changes(self, since: str | None) -> AsyncIterator[Change]:
        return self.connector.read_products(since)

    async def backlog(self, since: str | None) -> int | None:
        """The products changed at or after ``since`` (all of them from the beginning): CCV tells no
        total (CCV-SHOP-API.md §4), so their place in ``orderby=modifydate_desc`` is searched with
        one-item pages (about 2·log2 of the count in GETs of CCV's, not of a day-budgeted vendor)."""
        conn = self.connector
        try:
            cutoff = mapping.parse_datetime(since, "products cursor") if since else None
        except ValueError:
            return None

        def before_cutoff(item: dict[str, Any]) -> bool:
            try:
                return cutoff is not None and mapping.parse_datetime(item.get("modifydate")) < cutoff
            except ValueError:
                return False

        return await conn.count_products("modifydate_desc", before_cutoff)


class StockSource(Source[StockLevel]):
    """Stock levels of every product (``since`` is ignored: reservations change without the product)."""

    connector: CCVSalesPOSConnector
    field_map = {
        'sku': 'productnumber',
        'on_hand': 'stock',
        'reserved': 'sum of orderrows.count of open orders',
        'tracked': 'stockenabled',
    }

    def changes(self, since: str | None) -> AsyncIterator[Change]:
        return self.connector.read_stock()

    async def backlog(self, since: str | None) -> int | None:
        """Every product (a stock read reads them all): counted as :meth:`ProductSource.backlog` does."""
        return await self.connector.count_products("id", lambda item: False)


class OrderSource(Source[Order]):
    """Completed orders by ``ordernumber``."""

    connector: CCVSalesPOSConnector
    field_map = {
        'number': 'ordernumber_full',
        'status': 'status (1-14, as a name)',
        'created_at': 'create_date',
        'paid': 'paid',
        'payment_method': 'paymethod',
        'customer.email': 'customer.email',
        'customer.name': 'customer.billingaddress.company or full_name',
        'billing_address.street': 'customer.billingaddress.street',
        'billing_address.house_number': 'customer.billingaddress.housenumber',
        'billing_address.postcode': 'customer.billingaddress.zipcode',
        'billing_address.city': 'customer.billingaddress.city',
        'billing_address.country': 'customer.billingaddress.country_code',
        'shipping_address.street': 'customer.deliveryaddress.street',
        'lines.*.sku': 'orderrows[].product_number',
        'lines.*.name': 'orderrows[].product_name',
        'lines.*.quantity': 'orderrows[].count',
        'lines.*.unit_price': 'orderrows[].price',
        'lines.*.discount': 'orderrows[].discount',
        'lines.*.tax_rate': 'orderrows[].tax',
        'total': 'total_price',
    }

    def changes(self, since: str | None) -> AsyncIterator[Change]:
        return self.connector.read_orders(since)

    async def backlog(self, since: str | None) -> int | None:
        """A delta read gathers its orders before it yields the first: their number, without a call.
        From the beginning: the span of completed orders' ``ordernumber`` (numbered in sequence when
        an order is completed), from the lowest and the highest (two one-order GETs); about."""
        conn = self.connector
        if since is not None:
            try:
                return conn.orders_gathered.get(mapping.parse_order_cursor(since))
            except ValueError:
                return None
        return await conn.order_number_span()


class CustomerSource(Source[Customer]):
    """Customers from the orders' ``customer`` blocks, one per e-mail address."""

    connector: CCVSalesPOSConnector

    def changes(self, since: str | None) -> AsyncIterator[Change]:
        return self.connector.read_customers(since)


class ShipmentSink(Sink[Shipment]):
    """A shipment is its order's status 5 (sent) with a track & trace code."""

    connector: CCVSalesPOSConnector
    written_fields = frozenset({"order_number", "tracking_code", "carrier"})
    field_map = {
        'order_number': 'ordernumber (filter)',
        'tracking_code': 'track_and_trace_code',
        'carrier': 'track_and_trace_carrier',
    }

    async def find(self, key: str) -> Found | None:
        """``<order number>/<tracking code>``: the order, when it holds that track & trace code."""
        conn = self.connector
        number, code = mapping.split_shipment_key(key)
        if not number or not code:
            return None
        order = await conn.order_by_number(number)
        shipment = mapping.shipment_from_order(order) if order is not None else None
        if order is None or shipment is None or shipment.tracking_code != code:
            return None
        return Found(str(_int_id(order)), shipment.model_copy(update={"order_number": number}))

    async def create(self, record: Shipment) -> str:
        """Record a shipment on its order: ``PATCH /orders/:id/`` with status 5, track & trace and ``mail``."""
        order = await self.connector.order_by_number(record.order_number)
        if order is None:
            raise RecordError(f"order {record.order_number} not found in CCV (GET /orders/?ordernumber=…)")
        await self.connector.write_shipment(order, record)
        return str(_int_id(order))

    async def update(self, target_id: str, record: Shipment, fields: frozenset[str]) -> None:
        """Change the carrier of the order's track & trace code (a different code is a RecordError)."""
        await self.connector.write_shipment(await self.connector.client.order(target_id), record)


PLACE_PROBES = 40
"""Doublings at most when a backlog is searched (2**40 products: never reached in practice)."""
VARIANT_PREFIX = "attributecombinations/"
"""Target ids of variant stock: ``attributecombinations/<id>`` (a product's target id is its plain id)."""
VARIANT_INDEX_SECONDS = 300.0
"""A SKU missing from the variant index rebuilds it when it is older than this (new variants are found)."""


class StockSink(Sink[StockLevel]):
    """A product's ``stock`` (the canonical ``available``: on hand − reserved at the source), found by
    ``productnumber``; or, for a SKU no product has, a variant's (attribute combination's) ``stock``,
    found by its ``sku_number`` (else its ``product_number``) and written with ``PATCH
    /attributecombinations/:id/ {"stock": n}`` (CCV-SHOP-API.md §5). The variants are indexed by one
    paged read of ``/products/?expand=attributecombinations`` when a SKU is not a product (again when
    a SKU is missing and the index is over ``VARIANT_INDEX_SECONDS`` old). CCV's manage-stock flag
    (``stockenabled``, of the product; of the parent product for a variant) is honoured: stock CCV
    does not manage is left alone unless ``stock_enable`` is set (then the write turns it on); a
    record whose source does not manage the SKU's stock (``tracked`` false) writes nothing. No stock
    without a product or variant: create raises (sync products first)."""

    connector: CCVSalesPOSConnector
    written_fields = frozenset({"available"})
    field_map = {
        "sku": "productnumber (filter); else attributecombinations[].sku_number or product_number",
        "available": "stock (of the product or the attribute combination)",
        "tracked": "stockenabled (of the product)",
    }

    def __init__(self, connector: CCVSalesPOSConnector) -> None:
        super().__init__(connector)
        self._variants: dict[str, dict[str, Any]] | None = None
        self._indexed_at = 0.0

    async def find(self, key: str) -> Found | None:
        if self._variants is not None and key in self._variants:  # known as a variant: no look-up by productnumber
            return self._found_variant(key, self._variants[key])
        product = await self.connector.product_by_number(key)
        if product is not None:
            return Found(id=str(_int_id(product)), record=mapping.stock_level(product), vendor=product)
        variant = await self._variant(key)
        return None if variant is None else self._found_variant(key, variant)

    async def _variant(self, sku: str) -> dict[str, Any] | None:
        now = time.monotonic()
        if self._variants is None or (sku not in self._variants and now - self._indexed_at > VARIANT_INDEX_SECONDS):
            self._variants = await self.connector.variants_by_sku()
            self._indexed_at = now
        return self._variants.get(sku)

    @staticmethod
    def _found_variant(sku: str, variant: dict[str, Any]) -> Found:
        """``variant``: ``{"attributecombination": <resource>, "product_id": n, "stockenabled": <the product's>}``."""
        combination = variant["attributecombination"]
        record = mapping.variant_stock_level(combination, sku, managed=variant["stockenabled"])
        return Found(id=f"{VARIANT_PREFIX}{_int_id(combination)}", record=record, vendor=variant)

    async def create(self, record: StockLevel) -> str:
        raise RecordError(f"no product or variant with SKU {record.sku!r} in CCV; sync products first")

    async def update(self, target_id: str, record: StockLevel, fields: frozenset[str]) -> None:
        if target_id.startswith(VARIANT_PREFIX):
            found = await self.find(record.sku)
            if found is None or found.id != target_id:
                raise RecordError(f"{target_id} (SKU {record.sku!r}) is no longer a variant in CCV")
            await self._write(target_id, record, found.vendor)
            return
        product = await self.connector.client.get_one(f"products/{target_id}/", what=f"product {target_id}")
        await self._write(target_id, record, product)

    async def update_found(self, found: Found, record: StockLevel, fields: frozenset[str]) -> None:
        """The product (or variant) as the look-up read it tells its manage-stock flag: no second GET."""
        await self._write(found.id, record, found.vendor)

    async def _write(self, target_id: str, record: StockLevel, vendor: Any) -> None:
        enable = self.connector.settings.stock_enable
        is_variant = isinstance(vendor, dict) and "attributecombination" in vendor
        managed = isinstance(vendor, dict) and bool(vendor.get("stockenabled"))
        if not record.tracked or (not managed and not enable):
            self.connector.context.log.info(
                "ccv_stock_left_alone", sku=record.sku, target=target_id,
                reason="the source does not manage its stock" if not record.tracked else "stockenabled is off in CCV",
            )  # fmt: skip
            return
        client = self.connector.client
        stock = float(record.available)
        if is_variant:
            what = f"stock of variant {record.sku!r}"
            if not managed:  # the flag is the parent product's
                await client.request("PATCH", f"products/{vendor['product_id']}/", what=what, json={"stockenabled": True})
                vendor["stockenabled"] = True
            await client.request("PATCH", f"{target_id}/", what=what, json={"stock": stock})
            vendor["attributecombination"]["stock"] = stock
            return
        body: dict[str, Any] = {"stock": stock}
        if not managed:
            body["stockenabled"] = True
        what = f"stock of product {record.sku!r}"
        await client.request("PATCH", f"products/{target_id}/", what=what, json=body)


class CCVSalesPOSConnector(Connector):
    """CCV SalesPOS, through the CCV Shop REST API with ``Accept: application/vnd.verto.salespos+json``.

    Reads:

    ``products``
        ``GET /products/?orderby=modifydate_desc`` paged until a product older than the cursor
        (there is no modify-date filter), yielded page by page in that order (newest first), so
        memory stays one page whatever the count. The cursor is the newest ``modifydate`` read;
        it is given with the last change only (the others carry ``since``), so it moves once
        the whole read is settled. The boundary second is read again, which the engine skips by hash.
        A product without ``productnumber`` has no SKU, one without a readable ``modifydate`` no
        place in that order: each is skipped with a warning.
        The canonical price is the sell price, ``price − discount``.
    ``stock``
        One StockLevel per product: on hand = ``stock``, reserved = the ``count`` of the rows of
        orders in a status other than sent/delivered/completed/cancelled, available = on hand −
        reserved. Reservations change without touching the product, so every run reads all
        products and ignores ``since``; the cursor is the run's start time.

    ``orders``
        Orders have no modify-date filter, but ``ordernumber`` is given when an order is completed,
        so it grows in completion order. A full read pages ``orderby=ordernumber``; a delta read
        pages ``orderby=ordernumber_desc`` until an order is both numbered below the cursor and
        created before ``order_reread_days`` ago. The cursor is the zero-padded ``ordernumber``.
        The orders below the cursor that the scan passes (created in the re-read window) are
        yielded again with the cursor ``since``, first, so status and payment changes are seen;
        the engine skips the unchanged ones by hash. Rows (``GET /orders/:id/orderrows/``) are
        fetched once per order content: an order whose JSON did not change reuses its rows.
        An order that cannot be mapped is logged (``ccv_salespos.order_skipped``) and skipped.
    ``customers``
        CCV's API (as documented) has no customers resource: customers come from the orders'
        ``customer`` blocks, one per distinct e-mail address, the latest order winning. The cursor
        is that order's number; no order rows are read. Orders without an e-mail are not customers.

    Writes:

    ``shipments``
        One track & trace code per order (``PATCH /orders/:id/`` with status 5, the code, the
        carrier and ``mail``). The id is the CCV order id. A second, different code for an order
        is a RecordError: CCV cannot hold split shipments.

    Every request is signed (``x-public``, ``x-date``, ``x-hash`` = HMAC-SHA512 of
    ``public|METHOD|path+query|body|x-date``) and every 2xx response's signature is checked.

    Rate limits: CCV allows 150 GET per minute per resource, and 100 per minute per resource for
    each writing method; the resource is the last non-numeric path segment.
    """

    name = "ccv_salespos"
    title = "CCV SalesPOS"

    class Settings(ConnectorSettings):
        """A CCV Shop / SalesPOS connection: shop root URL and the API key pair."""

        base_url: str = Field(description="Shop root, e.g. https://myshop.ccvshop.nl (the client adds /api/rest/v1/)")
        public_key: str = Field(min_length=1, description="API public key (x-public)")
        private_key: SecretStr = Field(description="API private (secret) key, signs every request")
        media_type: str = Field(default=SALESPOS_MEDIA_TYPE, description="Accept header selecting the API schema")
        prices_include_tax: bool | None = Field(
            default=None, description="Whether product prices include VAT; None: assume so for products (NL shops)"
            " and use each order's taxes_included flags for orders"
        )
        currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$", description="Currency of the shop's prices")
        page_size: int = Field(default=100, ge=1, le=MAX_PAGE_SIZE, description="Items per page (max 250)")
        verify_response_signature: bool = Field(default=True, description="Check x-hash on every 2xx response")
        order_reread_days: int = Field(
            default=30, ge=0, le=366,
            description="A delta read of orders also re-reads the orders created in this many days (status and"
            " payment changes); 0: only new orders",
        )  # fmt: skip
        variant_sku: bool = Field(
            default=False,
            description="Order lines of attribute combinations use sub_sku_number as SKU; false: product_number,"
            " the SKU products and stock are read by",
        )
        stock_enable: bool = Field(
            default=False,
            description="A stock flow into CCV turns on a product's manage-stock flag (stockenabled) when it is off;"
            " false: such products are left alone",
        )
        shipment_mail: bool = Field(default=True, description="A shipment asks CCV to e-mail the customer (mail: true)")
        webhook_url: str | None = Field(
            default=None,
            description="The public URL of this connection's webhook path on the daemon, e.g. "
            "https://apicenterd.example.com/webhooks/salespos (through the TLS reverse proxy)",
        )
        webhook_events: list[str] = Field(
            default_factory=list,
            description="CCV events to subscribe to at webhook_url, e.g. orders.created, orders.updated.* "
            "(status, ispaid, trackandtrace), products.updated; each runs the flows that read what it changes",
        )

        @field_validator("webhook_events")
        @classmethod
        def _events(cls, value: list[str]) -> list[str]:
            events: list[str] = []
            for event in value:
                for name in WEBHOOK_SHORTHANDS.get(event, (event,)):
                    if name not in WEBHOOK_EVENTS:
                        known = ", ".join([*WEBHOOK_EVENTS, *WEBHOOK_SHORTHANDS])
                        raise ValueError(f"unknown CCV webhook event {event!r} (known: {known})")
                    if name not in events:
                        events.append(name)
            return events

        @model_validator(mode="after")
        def _url_for_events(self) -> Any:
            if self.webhook_events and not self.webhook_url:
                raise ValueError("webhook_events needs webhook_url: the public URL CCV sends them to (…/webhooks/<connection>)")
            return self

    sources = {
        Entity.PRODUCTS: ProductSource,
        Entity.STOCK: StockSource,
        Entity.ORDERS: OrderSource,
        Entity.CUSTOMERS: CustomerSource,
    }
    sinks = {Entity.SHIPMENTS: ShipmentSink, Entity.STOCK: StockSink}
    rate_limits = (
        RateLimit(150, 60.0, name="get_per_resource", key=get_bucket),
        RateLimit(100, 60.0, name="write_per_resource", key=write_bucket),
    )
    default_port = 8701

    settings: Settings

    async def open(self) -> None:
        """Create the signed HTTP client rooted at ``<base_url>/api/rest/v1/``."""
        settings = self.settings
        self._http = self.context.http_client(
            base_url=settings.base_url.rstrip("/") + API_PREFIX,
            auth=CCVAuth(
                settings.public_key,
                settings.private_key.get_secret_value(),
                verify_responses=settings.verify_response_signature,
            ),
            headers={"Accept": settings.media_type},
            timeout=settings.timeout,
        )
        self.client = CCVClient(self._http, page_size=settings.page_size)
        self.clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
        self.orders_gathered: dict[int, int] = {}
        """Orders a delta read from an ordernumber gathered (sorted before yielding), for the backlog."""
        self._rows: collections.OrderedDict[int, tuple[str, list[dict[str, Any]]]] = collections.OrderedDict()
        if settings.webhook_url:  # with no events left: unsubscribes the ones configured before
            try:
                await self.subscribe_webhooks()
            except ConnectorError as exc:  # the flows still poll: webhooks only make them sooner
                self.context.log.warning("ccv_salespos.webhooks_not_subscribed", error=str(exc))

    def webhook_address(self, event: str) -> str:
        """Where CCV sends ``event``: ``webhook_url`` with ``?event=<event>`` (CCV's payloads do not name their event)."""
        url = self.settings.webhook_url or ""
        return f"{url}{'&' if '?' in url else '?'}event={event}"

    async def subscribe_webhooks(self) -> list[str]:
        """Make sure CCV sends every configured event to :meth:`webhook_address`, and no other: ``GET
        /webhooks/``, then ``POST /webhooks/`` for each event not registered there (or ``PATCH`` one
        registered inactive), and ``DELETE /webhooks/:id/`` for each subscription at this connection's
        ``webhook_url`` whose event is no longer configured (one this connector made: its address is
        ``webhook_url?event=…``; other apps' subscriptions are left alone). Idempotent; the events
        subscribed now."""
        wanted = {self.webhook_address(e): e for e in self.settings.webhook_events}
        ours = self.webhook_address("")  # "<webhook_url>?event=": the prefix of every address we subscribe
        present: dict[str, dict[str, Any]] = {}
        stale: list[dict[str, Any]] = []
        async for item in self.client.collection("webhooks/", what="webhooks"):
            address = item.get("address")
            if address in wanted and item.get("event") == wanted[address]:
                present[address] = item
            elif isinstance(address, str) and address.startswith(ours) and item.get("id") is not None:
                stale.append(item)
        removed = []
        for item in stale:
            await self.client.request("DELETE", f"webhooks/{item['id']}/", what="webhooks")
            removed.append(str(item.get("event")))
        if removed:
            self.context.log.info("ccv_salespos.webhooks_unsubscribed", events=removed)
        added = []
        for address, event in wanted.items():
            found = present.get(address)
            if found is None:
                body = {"event": event, "address": address, "is_active": True}
                await self.client.request("POST", "webhooks/", what="webhooks", json=body)
                added.append(event)
            elif found.get("is_active") is False:
                await self.client.request("PATCH", f"webhooks/{found['id']}/", what="webhooks", json={"is_active": True})
                added.append(event)
        if added:
            self.context.log.info("ccv_salespos.webhooks_subscribed", events=added)
        return added

    async def webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        """A CCV webhook as a trigger: its event from the URL we subscribed (``?event=``), the resource's id
        from the body. CCV's webhook signature is undocumented (CCV-SHOP-API.md §8), so nothing is taken
        from the body but the id: the flows re-read through the signed API. A body naming another shop's
        ``href`` is refused."""
        event = request.query.get("event", "")
        if event not in WEBHOOK_EVENTS:
            raise WebhookRejected(
                f"event {event[:60]!r} in the URL is not one this connection subscribes to (?event=, one of "
                f"{', '.join(self.settings.webhook_events) or 'none configured'})",
                malformed=True,
            )
        try:
            data = json.loads(request.body)
        except ValueError:
            raise WebhookRejected("the body is not JSON", malformed=True) from None
        if not isinstance(data, dict):
            raise WebhookRejected(f"the body is not a JSON object ({type(data).__name__})", malformed=True)
        href = data.get("href")
        if isinstance(href, str) and href.startswith("http"):
            shop = httpx.URL(self.settings.base_url).host
            if httpx.URL(href).host != shop:
                raise WebhookRejected(f"the body's href is on {httpx.URL(href).host}, not this connection's shop {shop}")
        source_id = str(data["id"]) if isinstance(data.get("id"), (int, str)) else None
        return [WebhookEvent(entity, source_id, event) for entity in WEBHOOK_EVENTS[event]]

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def check(self) -> None:
        """One signed ``GET /products/?size=1``: proves the key pair, the signature and the host."""
        await self.client.request("GET", "products/", what="check", params={"start": 0, "size": 1})

    async def read_products(self, since: str | None) -> AsyncIterator[Change]:
        """Products changed at or after ``since``, newest first, page by page as CCV sends them.

        CCV has no modify-date filter; ``orderby=modifydate_desc`` is the one order in which a
        delta read can stop at the cursor, and in which a product changed while paging moves to
        the front (already read: it is read again next run) instead of pushing an unread one
        past the page being read (CCV-SHOP-API.md §4: offsets shift while paging). Records
        older than the ones yielded are not settled yet, so every change carries ``since`` (or,
        reading from the beginning, ``MIN_PRODUCT_CURSOR``: the cursor does not move) except the last, which carries the
        newest ``modifydate``
        seen: the cursor advances once, when the whole read is settled. A run that stops
        half-way reads the same products again next time; the engine skips the unchanged
        ones by hash, without a call. Memory: one page and one pending change.
        """
        try:
            cutoff = mapping.parse_datetime(since, "products cursor") if since else None
        except ValueError as exc:
            raise FatalError(f"{self.context.name}: {exc}") from None
        newest: datetime | None = None
        pending: Change | None = None
        floor = since or MIN_PRODUCT_CURSOR
        # numbers kept as their text: product_to_canonical reads every one through to_decimal (the same
        # Decimal), and a page of ~100 products decodes in less than half the time than with Decimal
        async with contextlib.aclosing(self.client.products(orderby="modifydate_desc", parse_float=str)) as items:
            async for item in items:
                product_id = _int_id(item)
                try:
                    modified = mapping.parse_datetime(item.get("modifydate"), f"product {item.get('id')}.modifydate")
                except ValueError as exc:  # cannot be placed before or after the cursor: this one fails, not the run
                    if pending is not None:
                        yield pending
                    pending = Change(source_id=str(product_id), record=None, cursor=floor, error=str(exc))
                    continue
                if cutoff is not None and modified < cutoff:
                    break  # newest first: everything after this is older than the cursor
                newest = modified if newest is None else max(newest, modified)
                if pending is not None:
                    yield pending
                # a product that cannot be mapped is a failed change (audited, dead-lettered), not a gap
                pending = Source.mapped(
                    str(product_id),
                    floor,
                    functools.partial(
                        mapping.product_to_canonical,
                        item,
                        currency=self.settings.currency,
                        prices_include_tax=self.settings.prices_include_tax,
                    ),
                )
        if pending is not None:
            yield dataclasses.replace(pending, cursor=mapping.format_cursor(newest) if newest is not None else floor)

    async def reservations(self, errors: dict[int, str] | None = None) -> dict[int, Decimal]:
        """Reserved quantity per product id: one orders list per open status, one rows call per open order.

        With ``errors``, a product whose reserved quantity cannot be read (a row's ``count``) is
        kept there with the reason, instead of failing the run."""
        rows: list[dict[str, Any]] = []
        seen: set[int] = set()
        for status in mapping.OPEN_STATUSES:
            async for order in self.client.orders(status=status):
                order_id = _int_id(order)
                # the status filter is checked again here, in case a server ignores it
                if order_id in seen or not mapping.reserves_stock(order):
                    continue
                seen.add(order_id)
                rows.extend([row async for row in self.client.order_rows(order_id)])
        return mapping.reserved_quantities(rows, errors)

    async def read_stock(self) -> AsyncIterator[Change]:
        cursor = mapping.format_cursor(datetime.now(timezone.utc))
        unknown: dict[int, str] = {}
        reserved = await self.reservations(unknown)
        async for item in self.client.products(orderby="id"):
            product_id = _int_id(item)
            if product_id in unknown:  # its available stock cannot be told: fail this one, not the run
                yield Change(source_id=str(product_id), record=None, cursor=cursor, error=unknown[product_id])
                continue
            yield Source.mapped(
                str(product_id), cursor, functools.partial(mapping.stock_level, item, reserved.get(product_id, Decimal(0)))
            )

    # ---------------------------------------------------------------- orders and customers

    def _since_number(self, since: str | None, entity: Entity) -> int | None:
        if since is None:
            return None
        try:
            return mapping.parse_order_cursor(since)
        except ValueError as exc:
            raise FatalError(f"{self.context.name}: {entity} {exc}") from None

    async def _orders_ascending(self, since_number: int | None, horizon: datetime | None) -> AsyncIterator[dict[str, Any]]:
        """Completed orders by ascending ``ordernumber``: all of them, or (a delta) those numbered at or
        above ``since_number`` and, below it, those the newest-first scan meets created after ``horizon``."""
        if since_number is None:
            async with contextlib.aclosing(self.client.orders(orderby="ordernumber")) as items:
                async for order in items:
                    if self._numbered(order):
                        yield order
            return
        found: dict[int, tuple[int, dict[str, Any]]] = {}  # by id: an order added while paging repeats one
        async with contextlib.aclosing(self.client.orders(orderby="ordernumber_desc")) as items:
            async for order in items:
                if not self._numbered(order):
                    continue
                number = mapping.order_number_of(order)
                assert number is not None
                if number < since_number:
                    try:
                        created = mapping.parse_datetime(order.get("create_date"), "create_date")
                    except ValueError:
                        continue  # cannot place it in the window; mapping would skip it anyway
                    if horizon is None or created < horizon:
                        break  # newest first: the rest is older than the cursor and the window
                found[_int_id(order)] = (number, order)
        self.orders_gathered = {since_number: len(found)}
        for _, order in sorted(found.values(), key=lambda entry: entry[0]):
            yield order

    def _numbered(self, order: dict[str, Any]) -> bool:
        if mapping.order_number_of(order) is not None:
            return True
        self.context.log.warning(
            "ccv_salespos.order_skipped", order_id=order.get("id"), reason="order has no integer ordernumber"
        )
        return False

    async def _rows_for(self, order: dict[str, Any]) -> list[dict[str, Any]]:
        """The order's rows; reused while the order resource itself is unchanged (saves one call per order)."""
        order_id = _int_id(order)
        fingerprint = json.dumps(order, sort_keys=True, default=str)
        cached = self._rows.get(order_id)
        if cached is not None and cached[0] == fingerprint:
            self._rows.move_to_end(order_id)
            return cached[1]
        rows = [row async for row in self.client.order_rows(order_id)]
        self._rows[order_id] = (fingerprint, rows)
        self._rows.move_to_end(order_id)
        while len(self._rows) > ROWS_CACHE_SIZE:
            self._rows.popitem(last=False)
        return rows

    async def read_orders(self, since: str | None) -> AsyncIterator[Change]:
        since_number = self._since_number(since, Entity.ORDERS)
        days = self.settings.order_reread_days
        horizon = self.clock() - timedelta(days=days) if days else None
        last = ""
        async for order in self._orders_ascending(since_number, horizon):
            number = mapping.order_number_of(order)
            assert number is not None
            # re-read orders below the cursor keep the cursor where it is: it must not go back
            at = since if since is not None and since_number is not None and number < since_number else mapping.order_cursor(number)
            cursor = max(last, at)
            rows: list[dict[str, Any]] = []
            rows_error: str | None = None
            try:
                rows = await self._rows_for(order)
            except RecordError as exc:  # its rows are gone (404): this order fails, not the run
                rows_error = str(exc)
            last = cursor
            if rows_error is not None:
                yield Change(source_id=str(_int_id(order)), record=None, cursor=cursor, error=rows_error)
                continue
            # an order that cannot be mapped is a failed change (audited, dead-lettered), not a gap
            yield Source.mapped(
                str(_int_id(order)),
                cursor,
                functools.partial(
                    mapping.order_to_canonical,
                    order,
                    rows,
                    prices_include_tax=self.settings.prices_include_tax,
                    variant_sku=self.settings.variant_sku,
                ),
            )

    async def read_customers(self, since: str | None) -> AsyncIterator[Change]:
        since_number = self._since_number(since, Entity.CUSTOMERS)
        latest: dict[str, tuple[int, dict[str, Any]]] = {}
        async for order in self._orders_ascending(since_number, None):
            personal = order.get("customer")
            email = personal.get("email") if isinstance(personal, dict) else None
            email = email.strip().lower() if isinstance(email, str) else ""
            if email:  # POS walk-in sales have no e-mail: no customer to keep
                number = mapping.order_number_of(order)
                assert number is not None
                if email not in latest or latest[email][0] <= number:
                    latest[email] = (number, order)
        for email, (number, order) in sorted(latest.items(), key=lambda entry: entry[1][0]):
            currency = order.get("currency") if isinstance(order.get("currency"), str) else None
            yield Source.mapped(
                email,
                mapping.order_cursor(number),
                functools.partial(
                    mapping.customer_to_canonical,
                    order["customer"],
                    currency=currency or None,
                    language=order.get("orderedinlng") or None,
                ),
            )

    # ---------------------------------------------------------------- shipments

    async def product_by_number(self, number: str) -> dict[str, Any] | None:
        """The product whose ``productnumber`` is exactly ``number`` (the list filter), or None."""
        async with contextlib.aclosing(self.client.products(productnumber=number)) as items:
            async for product in items:
                if str(product.get("productnumber") or "") == number:
                    return product
        return None

    async def variants_by_sku(self) -> dict[str, dict[str, Any]]:
        """Every attribute combination (``{"attributecombination", "product_id", "stockenabled"}``) by its
        ``sku_number``, and by its ``product_number`` where no combination has that as its ``sku_number``:
        one paged read of ``/products/?expand=attributecombinations``; a product whose expansion has more
        (``next``) has its combinations read with ``GET /products/:id/attributecombinations/``. A SKU two
        combinations share is left out (logged): stock written by it would be a guess."""
        index: dict[str, dict[str, dict[str, Any]]] = {"sku_number": {}, "product_number": {}}
        shared: set[str] = set()
        async with contextlib.aclosing(self.client.products(orderby="id", expand="attributecombinations")) as items:
            async for product in items:
                link = product.get("attributecombinations")
                embedded = link.get("collection") if isinstance(link, dict) else None
                if not isinstance(embedded, dict) or not isinstance(embedded.get("items"), list):
                    continue  # not expanded: no variants
                combinations = [c for c in embedded["items"] if isinstance(c, dict)]
                if embedded.get("next"):  # more than the expansion holds
                    url = f"products/{_int_id(product)}/attributecombinations/"
                    combinations = [c async for c in self.client.collection(url, what=f"product {product.get('id')} variants")]
                for combination in combinations:
                    variant = {
                        "attributecombination": combination,
                        "product_id": _int_id(product),
                        "stockenabled": bool(product.get("stockenabled")),
                    }
                    for field, by in index.items():
                        sku = str(combination.get(field) or "").strip()
                        if not sku:
                            continue
                        if sku in by and by[sku]["attributecombination"].get("id") != combination.get("id"):
                            shared.add(sku)
                        by[sku] = variant
        for sku in sorted(shared):
            self.context.log.warning("ccv_variant_sku_shared", sku=sku, reason="two attribute combinations have this SKU")
        found = {**index["product_number"], **index["sku_number"]}
        return {sku: variant for sku, variant in found.items() if sku not in shared}

    async def _item_at(self, url: str, params: dict[str, Any], start: int, what: str) -> dict[str, Any] | None:
        body = await self.client.request("GET", url, what=what, params={**params, "start": start, "size": 1})
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise FatalError(f"{what}: GET {url} did not return a collection ({{items: [...], next: ...}})")
        return items[0] if items and isinstance(items[0], dict) else None

    async def count_products(self, orderby: str, past: Callable[[dict[str, Any]], bool]) -> int | None:
        """How many products of ``GET /products/?orderby=<orderby>`` come before the first one ``past``
        says is beyond the wanted ones (all of them when none is): CCV tells no total, so the place
        is searched with one-item pages (``start=k&size=1``), doubling then halving: about 2·log2 of
        the count in calls. About: offsets shift while products change (CCV-SHOP-API.md §4)."""
        what = "how many products are to be read"
        params = {"orderby": orderby}

        async def wanted(start: int) -> bool:
            item = await self._item_at("products/", params, start, what)
            return item is not None and not past(item)

        low, high = 0, 1  # wanted(k) for k < low; not wanted(high)
        if not await wanted(0):
            return 0
        for _ in range(PLACE_PROBES):
            if not await wanted(high):
                break
            low, high = high, high * 2
        else:
            return None  # beyond what the search goes to: unknown
        while high - low > 1:
            middle = (low + high) // 2
            if await wanted(middle):
                low = middle
            else:
                high = middle
        return high

    async def order_number_span(self) -> int | None:
        """Completed orders from the lowest ``ordernumber`` to the highest (two one-order GETs); None for none."""
        numbers = []
        for orderby in ("ordernumber", "ordernumber_desc"):
            order = await self._item_at("orders/", {"orderby": orderby}, 0, "how many orders are to be read")
            number = None if order is None else mapping.order_number_of(order)
            if number is None:
                return None
            numbers.append(number)
        return max(0, numbers[1] - numbers[0] + 1)

    async def order_by_number(self, number: str) -> dict[str, Any] | None:
        """The completed order numbered ``number`` (``ordernumber_full``), via the ``ordernumber`` filter."""
        wanted = mapping.ordernumber_filter(number)
        if wanted is None:
            return None
        async with contextlib.aclosing(self.client.orders(ordernumber=wanted)) as items:
            async for order in items:
                if mapping.matches_number(order, number):
                    return order
        return None

    async def write_shipment(self, order: dict[str, Any], shipment: Shipment) -> None:
        body = mapping.shipment_patch(order, shipment, mail=self.settings.shipment_mail)
        if body:
            await self.client.patch_order(_int_id(order), body)

    @classmethod
    def simulator(cls, *, seed: int = 1, records: int = 0, **options: Any) -> Any:
        """The CCV Shop API simulator (Starlette), seeded with ``records`` products and some orders."""
        from .simulator import create_app

        return create_app(seed=seed, records=records, **options)

    @classmethod
    def demo_settings(cls, base_url: str) -> dict[str, Any]:
        """Settings matching the simulator's demo key pair."""
        from .simulator import DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY

        return {"base_url": base_url, "public_key": DEMO_PUBLIC_KEY, "private_key": DEMO_PRIVATE_KEY}


def _int_id(item: dict[str, Any]) -> int:
    value = item.get("id")
    if not isinstance(value, int) or isinstance(value, bool):
        raise FatalError(f"CCV item has no integer id: {item!r:.120}")
    return value
