"""Till orders: read by sync marker (``getOrders``), and written into the till (``createOrderV3``).

A created order carries the source's order number as ``extOrderId`` (``findOrder`` finds it
again) and an ``idempotencyKey`` derived from that number alone, so a create that is retried
after a lost answer, a crash or a restart is replayed by MplusKASSA, never duplicated.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from apicenterd import Change, DocumentRequest, DocumentSink, FatalError, Found, Order, RecordError, Source

from . import mapping, soap
from .client import cursor_of, marker_of, result_error

if TYPE_CHECKING:  # pragma: no cover
    from .connector import MplusKassaConnector

__all__ = ["TillOrderSettings", "TillOrderSink", "till_order_source", "idempotency_key"]

DEFAULT_EMPLOYEE = 999999
"""The employee number MplusKASSA orders get unless the flow names one (the field is mandatory)."""
MAX_KEY = 64
"""Longest idempotency key sent as it is; longer ones are hashed ([unverified] limit)."""


class TillOrderSettings(BaseModel):
    """What a flow writing orders into MplusKASSA gives that the source lacks (``target_settings``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    employee_number: int = Field(default=DEFAULT_EMPLOYEE, ge=0, description="employeeNumber of every order (mandatory in MplusKASSA)")
    branch_number: int | None = Field(default=None, ge=0, description="entryBranchNumber (the till's branch)")
    workplace_number: int | None = Field(default=None, ge=0, description="workplaceNumber (the till)")
    text_article_number: int | None = Field(
        default=None, gt=0, description="Article booked for a text line (a line without SKU); unset: such a line fails the order"
    )
    idempotency_prefix: str = Field(default="apicenterd-order-", max_length=32, description="Prefix of every idempotencyKey")


def idempotency_key(prefix: str, number: str) -> str:
    """The idempotencyKey of order ``number``: the same for every retry of its create."""
    key = f"{prefix}{number}"
    if len(key) <= MAX_KEY:
        return key
    return prefix + hashlib.sha256(number.encode()).hexdigest()[: MAX_KEY - len(prefix)]


async def till_order_source(source: Source[Order], since: str | None) -> AsyncIterator[Change]:
    """The changes of :class:`~apicenterd_mpluskassa.connector.OrderSource` (see there)."""
    conn: MplusKassaConnector = source.connector  # type: ignore[assignment]
    branches = conn.settings.order_branches

    def body(marker: int | None, limit: int) -> dict[str, Any]:
        request: dict[str, Any] = {"syncMarker": marker or 0, "syncMarkerLimit": limit}
        if branches:
            request["branchNumbers"] = branches
        request.update({"articlePluNumbers": {}, "articleBarcodes": {}, "includeLineList": True})
        return {"request": request}

    async for orders in conn.client.sync_pages(
        "getOrders",
        body,
        container="orderList",
        item="order",
        since=marker_of(since),
        limit=conn.settings.page_size,
        what="orders",
    ):
        numbers = sorted({n for o in orders if (n := soap.to_int(o, "relationNumber"))})
        relations: dict[int, dict[str, Any]] = {}
        if numbers:
            answer = await conn.client.call(
                "getRelations", {"request": {"relationNumbers": numbers}}, what=f"relations of {len(orders)} orders"
            )
            for relation in soap.many(soap.one(answer, "relationList"), "relation"):
                number = soap.to_int(relation, "relationNumber")
                if number is not None:
                    relations[number] = relation
        for order in orders:
            source_id = soap.text(order, "orderId") or "?"
            relation = relations.get(soap.to_int(order, "relationNumber") or -1)
            yield source.mapped(
                source_id,
                cursor_of(soap.to_int(order, "syncMarker") or 0),
                functools.partial(mapping.order_to_canonical, order, currency=conn.settings.currency, relation=relation),
            )


def _address(address: Any, name: str) -> dict[str, Any] | None:
    if address is None:
        return None
    return mapping.ordered(
        mapping.ADDRESS_FIELDS,
        {
            "name": name or None,
            "address": mapping._street(address) or None,
            "zipcode": address.postcode or None,
            "city": address.city or None,
            "country": address.country,
        },
    )


class TillOrderSink(DocumentSink[Order]):
    """Orders into the till: ``createOrderV3`` (extOrderId = the source's number, an idempotencyKey,
    the flow's employee number, default 999999); ``findOrder`` by extOrderId."""

    connector: MplusKassaConnector
    documents = frozenset({"order"})
    settings = TillOrderSettings
    written_fields = frozenset({"number", "customer_id", "lines", "reference", "billing_address", "shipping_address"})
    field_map = {
        "number": "extOrderId (and the idempotencyKey)",
        "customer_id": "relationNumber",
        "lines.*.sku": "line.articleNumber",
        "lines.*.name": "line.text",
        "lines.*.quantity": "line.data.quantity/decimalPlaces",
        "lines.*.unit_price": "line.data.price (cents, incl. VAT) or priceExcl",
        "lines.*.discount": "line.data.discountAmount",
        "reference": "reference",
        "billing_address": "invoiceAddress",
        "shipping_address": "deliveryAddress",
    }

    async def find(self, number: str) -> Found | None:
        answer = await self.connector.client.call("findOrder", {"extOrderId": number}, what=f"order {number!r}")
        order = soap.one(answer, "order")
        if soap.text(answer, "result") == "GET-ORDER-RESULT-OK" and isinstance(order, dict):
            return Found(id=soap.text(order, "orderId") or number, vendor=order)
        return None

    async def create(self, request: DocumentRequest[Order]) -> str:
        record = request.record
        settings = request.settings if isinstance(request.settings, TillOrderSettings) else TillOrderSettings()
        what = f"order {record.number!r}"
        include_tax = all(line.prices_include_tax for line in record.lines) if record.lines else True
        lines = [self._line(request, line, include_tax, settings, what) for line in record.lines]
        customer = record.customer
        order: dict[str, Any] = {
            "orderId": "",  # the WSDL requires it, also on create
            "extOrderId": record.number,
            "entryBranchNumber": settings.branch_number,
            "employeeNumber": settings.employee_number,
            "relationNumber": int(request.customer_id) if request.customer and request.customer.id.isdigit() else None,
            "deliveryAddress": _address(record.shipping_address, customer.name if customer else ""),
            "invoiceAddress": _address(record.billing_address, customer.name if customer else "") if customer else None,
            "workplaceNumber": settings.workplace_number,
            "reference": record.reference or record.number,
            "vatMethod": "VAT-METHOD-INCLUSIVE" if include_tax else "VAT-METHOD-EXCLUSIVE",
            "lineList": {"line": lines},
        }
        body = mapping.ordered(
            mapping.CREATE_ORDER_V3_FIELDS,
            {
                "idempotencyKey": idempotency_key(settings.idempotency_prefix, record.number),
                "order": mapping.ordered(mapping.ORDER_FIELDS, order),
                "applySalesAndActions": False,
                "applySalesPrices": False,
                "applyPriceGroups": False,
            },
        )
        answer = await self.connector.client.call("createOrderV3", {"request": body}, what=what, record=True)
        result = soap.text(answer, "result")
        if result == "CREATE-ORDER-RESULT-EXT-ORDER-ID-ALREADY-EXISTS":
            found = await self.find(record.number)
            if found is None:
                raise RecordError(f"{what}: MplusKASSA says extOrderId {record.number!r} exists, but findOrder does not find it")
            return found.id
        if result != "CREATE-ORDER-RESULT-OK":
            raise result_error(result, soap.text(answer, "errorMessage"), what)
        order_id = soap.text(soap.one(answer, "info"), "orderId") or soap.text(soap.one(answer, "order"), "orderId")
        if not order_id:
            raise FatalError(f"{what}: createOrderV3 answered OK without an orderId")
        if soap.text(answer, "idempotencyResult") == "IDEMPOTENCY-RESULT-REPLAY-RESPONSE":
            self.connector.context.log.info("mpluskassa_order_create_replayed", order=record.number, order_id=order_id)
        return order_id

    def _line(
        self, request: DocumentRequest[Order], line: Any, include_tax: bool, settings: TillOrderSettings, what: str
    ) -> dict[str, Any]:
        if line.sku:
            article = int(request.article(line.sku).id)
        elif settings.text_article_number is not None:
            article = settings.text_article_number
        else:
            raise RecordError(
                f"{what}: line {line.name!r} has no SKU and MplusKASSA needs an article on every line "
                "(set target_settings.text_article_number, or the flow's lines_without_sku)"
            )
        value, places = mapping.quantity(line.quantity)
        price = mapping.cents(line.unit_price, f"{what}: line {line.name or line.sku!r}")
        data: dict[str, Any] = {"quantity": value, "decimalPlaces": places}
        if include_tax:
            data["price"] = price
        else:
            data["priceExcl"] = price
        if line.discount:
            data["discountType"] = "DISCOUNT-TYPE-EXTERNAL-DISCOUNT"
            data["discountAmount" if include_tax else "discountAmountExcl"] = mapping.cents(line.discount, what)
        return mapping.ordered(
            mapping.LINE_FIELDS,
            {"articleNumber": article, "text": line.name or None, "data": mapping.ordered(mapping.LINEDATA_FIELDS, data)},
        )

    def normalize(self, record: Order) -> Order:
        if any(line.quantity != line.quantity.quantize(Decimal("0.001")) for line in record.lines):
            raise RecordError(f"order {record.number!r}: a quantity with more than 3 decimals")
        return record
