"""The CCV SalesPOS connector: products and stock read from the CCV Shop REST API (SalesPOS media type)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import httpx
from pydantic import Field, SecretStr

from apicenterd import Change, Connector, ConnectorSettings, Entity, FatalError, RateLimit, RecordError

from . import mapping
from .client import API_PREFIX, MAX_PAGE_SIZE, SALESPOS_MEDIA_TYPE, CCVAuth, CCVClient, resource_of

__all__ = ["CCVSalesPOSConnector", "get_bucket", "write_bucket"]


def get_bucket(request: httpx.Request) -> str | None:
    """The GET limit's bucket: ``GET:<resource>``; None (not governed) for writes."""
    return f"GET:{resource_of(request.url.path)}" if request.method == "GET" else None


def write_bucket(request: httpx.Request) -> str | None:
    """The write limit's bucket: ``<METHOD>:<resource>``; None (not governed) for GETs."""
    return None if request.method == "GET" else f"{request.method}:{resource_of(request.url.path)}"


class CCVSalesPOSConnector(Connector):
    """CCV SalesPOS, through the CCV Shop REST API with ``Accept: application/vnd.verto.salespos+json``.

    Reads:

    ``products``
        ``GET /products/?orderby=modifydate_desc`` paged until a product older than the cursor
        (there is no modify-date filter), yielded oldest first. The cursor is the product's
        ``modifydate``; the boundary second is read again, which the engine skips by hash.
        A product without ``productnumber`` has no SKU: it is skipped with a warning.
        The canonical price is the sell price, ``price − discount``.
    ``stock``
        One StockLevel per product: on hand = ``stock``, reserved = the ``count`` of the rows of
        orders in a status other than sent/delivered/completed/cancelled, available = on hand −
        reserved. Reservations change without touching the product, so every run reads all
        products and ignores ``since``; the cursor is the run's start time.

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

    reads = frozenset({Entity.PRODUCTS, Entity.STOCK})
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

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def check(self) -> None:
        """One signed ``GET /products/?size=1``: proves the key pair, the signature and the host."""
        await self.client.request("GET", "products/", what="check", params={"start": 0, "size": 1})

    def read(self, entity: Entity, since: str | None) -> AsyncIterator[Change]:
        """Products changed at or after ``since``, or every product's stock level (see the class doc)."""
        if entity is Entity.PRODUCTS:
            return self._read_products(since)
        if entity is Entity.STOCK:
            return self._read_stock()
        return super().read(entity, since)

    async def _read_products(self, since: str | None) -> AsyncIterator[Change]:
        try:
            cutoff = mapping.parse_datetime(since, "products cursor") if since else None
        except ValueError as exc:
            raise FatalError(f"{self.context.name}: {exc}") from None
        changed: list[tuple[datetime, int, dict[str, Any]]] = []
        async with contextlib.aclosing(self.client.products(orderby="modifydate_desc")) as items:
            async for item in items:
                try:
                    modified = mapping.parse_datetime(item.get("modifydate"), f"product {item.get('id')}.modifydate")
                except ValueError as exc:
                    raise FatalError(f"GET /products/: {exc}") from None
                if cutoff is not None and modified < cutoff:
                    break  # newest first: everything after this is older than the cursor
                changed.append((modified, _int_id(item), item))
        changed.sort(key=lambda entry: entry[:2])
        for modified, product_id, item in changed:
            try:
                record = mapping.product_to_canonical(
                    item, currency=self.settings.currency, prices_include_tax=self.settings.prices_include_tax
                )
            except RecordError as exc:
                self.context.log.warning("ccv_salespos.product_skipped", product_id=product_id, reason=str(exc))
                continue
            yield Change(source_id=str(product_id), record=record, cursor=mapping.format_cursor(modified))

    async def reservations(self) -> dict[int, Decimal]:
        """Reserved quantity per product id: one orders list per open status, one rows call per open order."""
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
        return mapping.reserved_quantities(rows)

    async def _read_stock(self) -> AsyncIterator[Change]:
        cursor = mapping.format_cursor(datetime.now(timezone.utc))
        reserved = await self.reservations()
        async for item in self.client.products(orderby="id"):
            product_id = _int_id(item)
            try:
                level = mapping.stock_level(item, reserved.get(product_id, Decimal(0)))
            except RecordError as exc:
                self.context.log.warning("ccv_salespos.stock_skipped", product_id=product_id, reason=str(exc))
                continue
            yield Change(source_id=str(product_id), record=level, cursor=cursor)

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
