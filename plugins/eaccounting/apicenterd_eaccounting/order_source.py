"""eAccounting orders (``/v2/orders``) as a source: changed since a ``ModifiedUtc`` cursor, each with its customer."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from apicenterd import Address, Change, Customer, Order, OrderLine, RecordError, Source

from . import mapping
from .client import cursor_of, filter_since

if TYPE_CHECKING:
    from .connector import EAccountingConnector

__all__ = ["ORDER_STATUSES", "OrderSource", "api_to_order"]

MIN_CURSOR = "0001-01-01T00:00:00.000000Z"

ORDER_STATUSES = {1: "draft", 2: "ongoing", 3: "shipped", 4: "invoiced"}
"""``OrderApi.Status`` (swagger: 1 = Draft, 2 = Ongoing, 3 = Shipped, 4 = Invoiced) as canonical status names."""


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _number(value: Any, what: str) -> Decimal:
    number = mapping.to_decimal(value)
    return number if number is not None else Decimal(0)


def _address(order: Mapping[str, Any], prefix: str) -> Address:
    country = _text(order.get(f"{prefix}CountryCode")).upper()
    return Address(
        street=_text(order.get(f"{prefix}Address1")),
        line2=_text(order.get(f"{prefix}Address2")),
        postcode=_text(order.get(f"{prefix}PostalCode")),
        city=_text(order.get(f"{prefix}City")),
        country=country if len(country) == 2 and country.isalpha() else None,
    )


def api_to_order(order: Mapping[str, Any], customer: Customer | None) -> Order:
    """An OrderApi as an Order: rows with ``ArticleNumber`` as product lines (``DiscountPercentage``
    is a fraction: 0.1 = 10 %), text rows as text lines; ``Amount`` is the total incl. VAT; unit
    prices include VAT for a private person (eAccounting's IncludesVat). The delivery method and
    terms codes go in ``custom_fields`` (``delivery_method``, ``delivery_terms``) for a target's
    carrier maps (Visma.net's ``shipVia``)."""
    number = order.get("Number")
    if number is None or isinstance(number, bool):
        raise RecordError(f"order {order.get('Id')}: no Number")
    included = bool(order.get("CustomerIsPrivatePerson"))
    lines = []
    for row in order.get("Rows") or []:
        if not isinstance(row, dict):
            raise ValueError(f"order {number}: a row is not an object")
        quantity = _number(row.get("Quantity"), "Quantity")
        price = _number(row.get("UnitPrice"), "UnitPrice")
        share = _number(row.get("DiscountPercentage"), "DiscountPercentage")
        if row.get("IsTextRow") or not _text(row.get("ArticleNumber")):
            lines.append(OrderLine(kind="text", name=_text(row.get("Text")), quantity=quantity, unit_price=price))
            continue
        lines.append(
            OrderLine(
                sku=_text(row.get("ArticleNumber")),
                name=_text(row.get("Text")),
                quantity=quantity,
                unit_price=price,
                prices_include_tax=included,
                discount=(quantity * price * share).quantize(Decimal("0.01")),
            )
        )
    when = order.get("OrderDate") or order.get("CreatedUtc")
    created = datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else datetime(1970, 1, 1, tzinfo=timezone.utc)
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    status = order.get("Status")
    return Order(
        number=str(number),
        status=ORDER_STATUSES.get(status, str(status)) if isinstance(status, int) else "ongoing",
        created_at=created,
        currency=_text(order.get("CurrencyCode")).upper() or "EUR",
        customer=customer,
        billing_address=_address(order, "Invoice"),
        shipping_address=_address(order, "Delivery") if order.get("DeliveryAddress1") else None,
        lines=tuple(lines),
        total=_number(order.get("Amount"), "Amount"),
        total_tax=mapping.to_decimal(order.get("VatAmount")),
        reference=_text(order.get("YourReference")) or None,
        custom_fields={
            name: _text(order.get(field))
            for name, field in (("delivery_method", "DeliveryMethodCode"), ("delivery_terms", "DeliveryTermCode"))
            if _text(order.get(field))
        },
    )


class OrderSource(Source[Order]):
    """Orders changed since a ``ModifiedUtc`` cursor (``$filter=ModifiedUtc ge ...``), each with
    its customer (read once per run). Paged in the API's default order: every change carries
    ``since`` and the last one the newest ``ModifiedUtc`` seen, as the other eAccounting sources."""

    connector: EAccountingConnector
    field_map = {
        "number": "Number",
        "status": "Status",
        "created_at": "OrderDate",
        "customer": "CustomerId (GET /v2/customers/{id})",
        "lines.*.sku": "Rows[].ArticleNumber",
        "lines.*.quantity": "Rows[].Quantity",
        "lines.*.unit_price": "Rows[].UnitPrice",
        "total": "Amount",
        "custom_fields.delivery_method": "DeliveryMethodCode",
        "custom_fields.delivery_terms": "DeliveryTermCode",
    }

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        async for change in changes_with_customers(self, since, "/v2/orders", "orders", api_to_order):
            yield change


async def changes_with_customers(
    source: Source[Any], since: str | None, path: str, noun: str, convert: Callable[[Mapping[str, Any], Customer | None], Any]
) -> AsyncIterator[Change]:
    """The changes of ``source``: the records at ``path`` changed since ``since`` (a ``ModifiedUtc``
    cursor; ``noun`` names them in errors), each made by ``convert`` with its customer (read once per
    run). Every change carries ``since``; the last one the newest ``ModifiedUtc`` seen."""
    connector = cast("EAccountingConnector", source.connector)
    api = connector.client
    params = {"$filter": filter_since(since, "ModifiedUtc")} if since and since > MIN_CURSOR else {}
    floor = since or MIN_CURSOR
    newest = floor
    pending: Change | None = None
    customers: dict[str, Customer | None] = {}
    async for data in api.pages(path, what=f"{noun} changed since {since or 'the beginning'}", params=params):
        for item in data:
            customer_id = str(item.get("CustomerId") or "")
            if customer_id and customer_id not in customers:
                found = await api.get_object(f"/v2/customers/{customer_id}", what=f"customer {customer_id}")
                try:
                    customers[customer_id] = mapping.api_to_customer(found)
                except (RecordError, ValueError):
                    customers[customer_id] = None
            try:
                if item.get("ModifiedUtc"):
                    newest = max(newest, cursor_of(item["ModifiedUtc"]))
            except ValueError as exc:
                connector.context.log.warning("eaccounting_bad_modified_utc", id=item.get("Id"), error=str(exc))
            if pending is not None:
                yield pending
            pending = source.mapped(str(item.get("Id")), floor, functools.partial(convert, item, customers.get(customer_id)))
    if pending is not None:
        yield dataclasses.replace(pending, cursor=newest)
