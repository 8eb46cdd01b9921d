"""Pure functions between CCV Shop JSON and apicenterd's canonical records (money as Decimal)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from apicenterd import Address, Contact, Customer, Order, OrderLine, Product, RecordError, StockLevel

__all__ = [
    "ORDER_STATUSES",
    "NOT_RESERVING_STATUSES",
    "OPEN_STATUSES",
    "parse_datetime",
    "format_cursor",
    "to_decimal",
    "product_to_canonical",
    "reserves_stock",
    "reserved_quantities",
    "stock_level",
    "address_to_canonical",
    "customer_to_canonical",
    "order_to_canonical",
]

ORDER_STATUSES: Mapping[int, str] = {
    1: "new",
    2: "in_process",
    3: "wait_for_manufacturer",
    4: "wait_for_payment",
    5: "sent",
    6: "delivered",
    7: "completed",
    8: "cancelled",
    9: "wait_for_supplier",
    10: "being_packaged",
    11: "ready_for_collection",
    12: "being_assembled",
    13: "backorder",
    14: "reserved",
}
"""CCV order statuses 1–14 (HIGH) with the canonical status names apicenterd uses for them."""

NOT_RESERVING_STATUSES = frozenset({5, 6, 7, 8})
"""Sent, delivered, completed, cancelled: their rows no longer hold stock (a convention, not documented)."""

OPEN_STATUSES = tuple(s for s in ORDER_STATUSES if s not in NOT_RESERVING_STATUSES)
"""The statuses whose order rows count as reserved stock."""

EXCL_PRECISION = Decimal("0.0001")
"""Prices derived by adding or removing VAT keep four decimals, so the round trip loses no cent."""


def parse_datetime(value: Any, where: str = "date") -> datetime:
    """A CCV timestamp (``2022-11-07T21:51:00Z``, ``+00:00`` or ``+0000``) as an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: expected an ISO-8601 timestamp, got {value!r}")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not an ISO-8601 timestamp") from None
    if moment.tzinfo is None:  # CCV dates are UTC (MED)
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def format_cursor(moment: datetime) -> str:
    """A fixed-width UTC timestamp, so that cursor strings sort as the times do."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_decimal(value: Any, where: str) -> Decimal | None:
    """A JSON number (or numeric string) as Decimal, None for null/""; RecordError naming ``where`` otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError(f"{where}: expected a number, got {value!r}")
    try:
        result = Decimal(str(value))  # str() of a float is its shortest repr: 12.95 → Decimal("12.95")
    except InvalidOperation:
        raise RecordError(f"{where}: expected a number, got {value!r}") from None
    if not result.is_finite():
        raise RecordError(f"{where}: expected a finite number, got {value!r}")
    return result


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _tax_rate(item: Mapping[str, Any], where: str) -> Decimal | None:
    rate = to_decimal(item.get("vatrate"), f"{where}.vatrate")
    if rate is None and item.get("taxtariff") == "zero":
        return Decimal(0)
    return rate  # other taxtariff names have no documented percentage


def _with_and_without_tax(amount: Decimal, rate: Decimal | None, includes_tax: bool) -> tuple[Decimal | None, Decimal | None]:
    """(excl, incl) for ``amount``; the side that cannot be derived without a rate is None."""
    if rate is None:
        return (None, amount) if includes_tax else (amount, None)
    factor = 1 + rate / 100
    if includes_tax:
        return (amount / factor).quantize(EXCL_PRECISION), amount
    return amount, (amount * factor).quantize(EXCL_PRECISION)


def product_to_canonical(
    item: Mapping[str, Any], *, currency: str = "EUR", prices_include_tax: bool | None = None
) -> Product:
    """A CCV product as a canonical Product; the canonical price is the sell price (``price − discount``).

    ``prices_include_tax=None`` assumes incl. VAT, as NL shops normally are (the product carries no flag).
    Raises RecordError for a product that cannot be mapped (no ``productnumber``, bad numbers).
    """
    where = f"product {item.get('id')}"
    sku = _text(item.get("productnumber"))
    if sku is None:
        raise RecordError(f"{where}: has no productnumber, so it has no SKU to match on")
    price = to_decimal(item.get("price"), f"{where}.price")
    discount = to_decimal(item.get("discount"), f"{where}.discount") or Decimal(0)
    rate = _tax_rate(item, where)
    excl = incl = None
    if price is not None:
        excl, incl = _with_and_without_tax(price - discount, rate, True if prices_include_tax is None else prices_include_tax)
    stock = to_decimal(item.get("stock"), f"{where}.stock") if item.get("stockenabled") else None
    photo = item.get("productmainphoto")
    return Product(
        sku=sku,
        name=_text(item.get("name")) or sku,
        ean=_text(item.get("eannumber")),
        short_description=_text(item.get("shortdescription")),
        description=_text(item.get("description")),
        price_excl_tax=excl,
        price_incl_tax=incl,
        tax_rate=rate,
        purchase_price=to_decimal(item.get("purchaseprice"), f"{where}.purchaseprice"),
        currency=currency,
        quantity=stock,
        unit=_text(item.get("unit")),
        images=(photo,) if isinstance(photo, str) and photo.startswith(("http://", "https://")) else (),
        active=bool(item.get("is_active", True)),
        weight_kg=to_decimal(item.get("weight"), f"{where}.weight"),
    )


def reserves_stock(order: Mapping[str, Any]) -> bool:
    """Whether an order's rows hold stock: completed (checked out) and not sent, delivered, completed or cancelled."""
    return order.get("is_completed", True) is not False and order.get("status") not in NOT_RESERVING_STATUSES


def reserved_quantities(rows: Iterable[Mapping[str, Any]]) -> dict[int, Decimal]:
    """Sum of ``count`` per ``product_id`` over order rows (rows without a product are ignored)."""
    reserved: dict[int, Decimal] = {}
    for row in rows:
        product_id = row.get("product_id")
        count = to_decimal(row.get("count"), f"order row {row.get('id')}.count")
        if isinstance(product_id, int) and count:
            reserved[product_id] = reserved.get(product_id, Decimal(0)) + count
    return reserved


def stock_level(item: Mapping[str, Any], reserved: Decimal = Decimal(0)) -> StockLevel:
    """A CCV product's stock: on hand = ``stock``, available = on hand − reserved; untracked products are all 0."""
    where = f"product {item.get('id')}"
    sku = _text(item.get("productnumber"))
    if sku is None:
        raise RecordError(f"{where}: has no productnumber, so its stock has no SKU")
    tracked = bool(item.get("stockenabled"))
    on_hand = (to_decimal(item.get("stock"), f"{where}.stock") if tracked else None) or Decimal(0)
    if not tracked:  # nothing to reserve from; a negative "available" would read as oversold
        reserved = Decimal(0)
    return StockLevel(
        sku=sku,
        location=_text(item.get("stocklocation")),
        on_hand=on_hand,
        reserved=reserved,
        available=on_hand - reserved,
        tracked=tracked,
    )


def address_to_canonical(address: Mapping[str, Any] | None) -> Address:
    """A CCV billing or delivery address as a canonical Address."""
    address = address or {}
    number = address.get("housenumber")
    country = _text(address.get("country_code"))
    street = _text(address.get("street")) or _text(address.get("address_line_1")) or ""
    return Address(
        street=street,
        house_number="" if number in (None, "", 0) else str(number),
        house_number_suffix=_text(address.get("housenumber_suffix")) or "",
        line2=_text(address.get("address_line_2")) or "",
        postcode=_text(address.get("zipcode")) or "",
        city=_text(address.get("city")) or "",
        region=_text(address.get("province")) or "",
        country=country.upper() if country and len(country) == 2 else None,
    )


def _is_blank(address: Mapping[str, Any] | None) -> bool:
    return not address or not any(v for k, v in address.items() if k not in ("country", "country_code"))


def customer_to_canonical(personal: Mapping[str, Any], *, currency: str | None = None) -> Customer:
    """An order's ``customer`` (Personalinfo) as a canonical Customer: b2b → company, else person."""
    billing = personal.get("billingaddress") or {}
    delivery = personal.get("deliveryaddress")
    person = _text(billing.get("full_name")) or " ".join(
        p for p in (_text(billing.get("first_name")), _text(billing.get("last_name"))) if p
    )
    company = _text(billing.get("company"))
    phone = _text(billing.get("telephone")) or _text(billing.get("mobile"))
    email = _text(personal.get("email"))
    is_company = personal.get("customertype") == "b2b" and company is not None
    return Customer(
        kind="company" if is_company else "person",
        name=(company if is_company else person) or email or "",
        email=email,
        phone=phone,
        contact=Contact(
            first_name=_text(billing.get("first_name")) or "",
            last_name=_text(billing.get("last_name")) or "",
            email=email,
            phone=phone,
        )
        if is_company
        else None,
        billing_address=address_to_canonical(billing),
        # the delivery address is all empty strings when it equals the billing address
        shipping_address=None if _is_blank(delivery) else address_to_canonical(delivery),
        vat_number=_text(personal.get("btw")),
        coc_number=_text(personal.get("kvk")),
        currency=currency,
    )


def _order_line(row: Mapping[str, Any], includes_tax: bool) -> OrderLine:
    where = f"order row {row.get('id')}"
    count = to_decimal(row.get("count"), f"{where}.count") or Decimal(0)
    price = to_decimal(row.get("price"), f"{where}.price") or Decimal(0)
    discount = to_decimal(row.get("discount"), f"{where}.discount") or Decimal(0)
    return OrderLine(
        kind="product" if row.get("product_type", "product") == "product" else "fee",
        sku=_text(row.get("sub_sku_number")) or _text(row.get("product_number")),
        name=_text(row.get("product_name")) or "",
        quantity=count,
        unit_price=price,
        prices_include_tax=includes_tax,
        discount=discount * count,  # CCV's row discount is per unit: total = (price − discount) × count
        tax_rate=to_decimal(row.get("tax"), f"{where}.tax"),
        total=to_decimal(row.get("total_price"), f"{where}.total_price"),
    )


def order_to_canonical(
    order: Mapping[str, Any], rows: Iterable[Mapping[str, Any]], *, prices_include_tax: bool | None = None
) -> Order:
    """A CCV order and its rows as a canonical Order (shipping costs become a ``shipping`` line)."""
    where = f"order {order.get('id')}"
    number = _text(str(order.get("ordernumber_full") or "")) or None
    if number is None:
        raise RecordError(f"{where}: has no ordernumber_full (not completed yet?)")
    currency = _text(order.get("currency")) or "EUR"
    rows_incl = order.get("order_row_taxes_included") if prices_include_tax is None else prices_include_tax
    lines = [_order_line(row, rows_incl is not False) for row in rows]
    shipping = to_decimal(order.get("total_shipping"), f"{where}.total_shipping")
    if shipping:
        shipping_incl = order.get("shipping_taxes_included") if prices_include_tax is None else prices_include_tax
        lines.append(
            OrderLine(
                kind="shipping",
                name="Verzendkosten",
                unit_price=shipping,
                prices_include_tax=shipping_incl is not False,
                tax_rate=to_decimal(order.get("shipping_tax_percentage"), f"{where}.shipping_tax_percentage"),
                total=shipping,
            )
        )
    status = order.get("status")
    customer = customer_to_canonical(order["customer"], currency=currency) if order.get("customer") else None
    total = to_decimal(order.get("total_price"), f"{where}.total_price")
    if total is None:
        raise RecordError(f"{where}: has no total_price")
    try:
        created = parse_datetime(order.get("create_date"), f"{where}.create_date")
    except ValueError as exc:
        raise RecordError(str(exc)) from None
    return Order(
        number=number,
        status=ORDER_STATUSES.get(status, f"status_{status}"),
        created_at=created,
        currency=currency,
        customer=customer,
        billing_address=customer.billing_address if customer else Address(),
        shipping_address=customer.shipping_address if customer else None,
        lines=tuple(lines),
        total=total,
        total_tax=to_decimal(order.get("total_tax"), f"{where}.total_tax"),
        paid=bool(order.get("paid")),
        payment_method=_text(order.get("paymethod")),
        reference=_text((order.get("customer") or {}).get("reference")),
        custom_fields={"ccv_order_id": order.get("id"), "ccv_status": status},
    )
