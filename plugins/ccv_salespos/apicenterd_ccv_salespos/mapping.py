"""Pure functions between CCV Shop JSON and apicenterd's canonical records (money as Decimal)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from apicenterd import Address, Contact, Customer, Order, OrderLine, Product, RecordError, Shipment, StockLevel

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
    "FINAL_STATUSES",
    "order_cursor",
    "parse_order_cursor",
    "order_number_of",
    "address_to_canonical",
    "customer_to_canonical",
    "order_line",
    "order_discount",
    "order_to_canonical",
    "split_shipment_key",
    "ordernumber_filter",
    "matches_number",
    "shipment_from_order",
    "shipment_patch",
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
    11: "ready_to_be_collected",
    12: "being_assembled",
    13: "backorder",
    14: "reserved",
}
"""CCV order statuses 1–14 (HIGH) with the canonical status names apicenterd uses for them: the doc's
English name, lower case, without a leading "is", spaces as underscores."""

NOT_RESERVING_STATUSES = frozenset({5, 6, 7, 8})
"""Sent, delivered, completed, cancelled: their rows no longer hold stock (a convention, not documented)."""

OPEN_STATUSES = tuple(s for s in ORDER_STATUSES if s not in NOT_RESERVING_STATUSES)
"""The statuses whose order rows count as reserved stock."""

EXCL_PRECISION = Decimal("0.0001")
"""Prices derived by adding or removing VAT keep four decimals, so the round trip loses no cent."""

MAX_MAGNITUDE = Decimal("1e15")
"""No amount, rate or quantity in a shop comes near this; beyond it Decimal arithmetic at four
decimals would overflow the context's 28 digits, so such a number is a record error."""

_Model = TypeVar("_Model", bound=BaseModel)


def _build(model: type[_Model], where: str, **values: Any) -> _Model:
    """``model(**values)``; a value the canonical model rejects is a RecordError naming the field."""
    try:
        return model(**values)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "(record)"
        raise RecordError(f"{where}: {field}: {err['msg']} (got {err.get('input')!r:.60})") from None


def _object(value: Any, where: str) -> Mapping[str, Any]:
    """A nested JSON object; null, "" and [] (PHP's empty array) count as empty, anything else is a RecordError."""
    if isinstance(value, Mapping):
        return value
    if value is None or (isinstance(value, (str, list)) and not value):
        return {}
    raise RecordError(f"{where}: expected an object, got {value!r:.60}")


def _status(order: Mapping[str, Any]) -> int | None:
    """The order's integer ``status``, None when absent or not an integer."""
    status = order.get("status")
    return status if isinstance(status, int) and not isinstance(status, bool) else None


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
        raise RecordError(f"{where}: expected a number, got {value!r:.60}")
    try:
        result = Decimal(str(value))  # str() of a float is its shortest repr: 12.95 → Decimal("12.95")
    except (InvalidOperation, ValueError):  # ValueError: str() of an int past Python's digit limit
        raise RecordError(f"{where}: expected a number, got {value!r:.60}") from None
    if not result.is_finite():
        raise RecordError(f"{where}: expected a finite number, got {value!r:.60}")
    if abs(result) >= MAX_MAGNITUDE:
        raise RecordError(f"{where}: {value!r:.40} is out of range (at most {MAX_MAGNITUDE:,.0f})")
    return result


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _tax_rate(item: Mapping[str, Any], where: str) -> Decimal | None:
    rate = to_decimal(item.get("vatrate"), f"{where}.vatrate")
    if rate is None and item.get("taxtariff") == "zero":
        return Decimal(0)
    if rate is not None and not 0 <= rate < 100:
        raise RecordError(f"{where}.vatrate: {rate} is not a VAT percentage (0 to 100)")
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
    return _build(
        Product,
        where,
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
    return order.get("is_completed", True) is not False and _status(order) not in NOT_RESERVING_STATUSES


def reserved_quantities(rows: Iterable[Mapping[str, Any]], errors: dict[int, str] | None = None) -> dict[int, Decimal]:
    """Sum of ``count`` per ``product_id`` over order rows (rows without a product are ignored).

    A row whose ``count`` cannot be read is a RecordError; with ``errors``, the reason is kept
    there under the row's product id instead, and the reading goes on.
    """
    reserved: dict[int, Decimal] = {}
    for row in rows:
        product_id = row.get("product_id")
        if not isinstance(product_id, int) or isinstance(product_id, bool):
            continue  # a deposit, a text row: it holds no product's stock, whatever its count says
        try:
            count = to_decimal(row.get("count"), f"order row {row.get('id')}.count")
        except RecordError as exc:
            if errors is None:
                raise
            errors.setdefault(product_id, f"reserved stock unknown: {exc}")
            continue
        if count:
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
    return _build(
        StockLevel,
        where,
        sku=sku,
        location=_text(item.get("stocklocation")),
        on_hand=on_hand,
        reserved=reserved,
        available=on_hand - reserved,
        tracked=tracked,
    )


def variant_stock_level(combination: Mapping[str, Any], sku: str, *, managed: bool) -> StockLevel:
    """An attribute combination's (a variant's) stock under ``sku``: on hand = its ``stock``;
    ``managed`` is its parent product's ``stockenabled`` (a variant has no flag of its own)."""
    where = f"attribute combination {combination.get('id')}"
    raw = combination.get("stock")
    on_hand = (to_decimal(raw, f"{where}.stock") if managed and raw is not None else None) or Decimal(0)
    return _build(StockLevel, where, sku=sku, location=None, on_hand=on_hand, reserved=Decimal(0), available=on_hand, tracked=managed)


# -- customers, orders, shipments ------------------------------------------------------------

FINAL_STATUSES = frozenset({7, 8})
"""Completed and cancelled: statuses from which an order is not expected to move on (a convention)."""

CENT = Decimal("0.01")
"""How far totals may disagree and still count as equal (CCV rounds to cents)."""

CURSOR_DIGITS = 12
"""Order cursors are the zero-padded ``ordernumber``, so that cursor strings sort as the numbers do."""


def order_cursor(number: int) -> str:
    """The cursor of the order with ``ordernumber`` ``number`` (fixed width, sorts numerically)."""
    return f"{number:0{CURSOR_DIGITS}d}"


def parse_order_cursor(cursor: str) -> int:
    """The ``ordernumber`` an order or customer cursor stands for; ValueError naming it otherwise."""
    if not isinstance(cursor, str) or not cursor.isdigit():
        raise ValueError(f"order cursor {cursor!r} is not a zero-padded ordernumber")
    return int(cursor)


def order_number_of(order: Mapping[str, Any]) -> int | None:
    """The integer ``ordernumber`` (given when the order is completed), None when absent or not an int."""
    number = order.get("ordernumber")
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def _house_number(value: Any) -> str:
    if not isinstance(value, (str, int, float, Decimal)) or isinstance(value, bool) or value in ("", 0):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def address_to_canonical(address: Mapping[str, Any] | None) -> Address:
    """A CCV billing or delivery address as a canonical Address (street, number and suffix as CCV splits them)."""
    address = address or {}
    country = _text(address.get("country_code"))
    street = _text(address.get("street")) or _text(address.get("address_line_1")) or ""
    line2 = _text(address.get("address_line_2")) or ""
    if not _text(address.get("street")) and street and line2 == street:
        line2 = ""
    return Address(
        street=street,
        house_number=_house_number(address.get("housenumber")),
        house_number_suffix=_text(address.get("housenumber_suffix")) or "",
        line2=line2,
        postcode=_text(address.get("zipcode")) or "",
        city=_text(address.get("city")) or "",
        region=_text(address.get("province")) or "",
        country=country.upper() if country and len(country) == 2 and country.isalpha() else None,
    )


def _is_blank(address: Mapping[str, Any] | None) -> bool:
    """True for a delivery address that is all empty strings (CCV's way of saying "same as billing")."""
    return not address or not any(
        v not in (None, "", 0) for k, v in address.items() if k not in ("country", "country_code", "gender")
    )


def customer_to_canonical(
    personal: Mapping[str, Any], *, currency: str | None = None, language: str | None = None, where: str = "customer"
) -> Customer:
    """An order's ``customer`` (Personalinfo) as a canonical Customer.

    A company when ``billingaddress.company`` is filled in or ``customertype`` is ``b2b`` (named after
    the person when the company field is empty: a sole trader), with the person as ``contact``;
    else a person. The delivery address falls back to the billing address when it is all empty.
    RecordError (naming ``where``) when an address is not an object or a value is not valid.
    """
    billing = _object(personal.get("billingaddress"), f"{where}.billingaddress")
    delivery = _object(personal.get("deliveryaddress"), f"{where}.deliveryaddress")
    first, last = _text(billing.get("first_name")) or "", _text(billing.get("last_name")) or ""
    person = _text(billing.get("full_name")) or " ".join(p for p in (first, last) if p)
    company = _text(billing.get("company"))
    phone = _text(billing.get("telephone")) or _text(billing.get("mobile"))
    email = (_text(personal.get("email")) or "").lower() or None  # Customer lowercases its own; Contact does not
    is_company = company is not None or personal.get("customertype") == "b2b"
    billing_address = address_to_canonical(billing)
    name = (company or person) if is_company else person
    return _build(
        Customer,
        where,
        kind="company" if is_company else "person",
        name=name or email or "",
        email=email,
        phone=phone,
        contact=Contact(first_name=first, last_name=last, email=email, phone=phone) if is_company else None,
        billing_address=billing_address,
        shipping_address=billing_address if _is_blank(delivery) else address_to_canonical(delivery),
        vat_number=_text(personal.get("btw")),
        coc_number=_text(personal.get("kvk")),
        language=_text(language),
        currency=(_text(currency) or "").upper() or None,
    )


def _row_name(row: Mapping[str, Any]) -> str:
    """The row's product name, with its attribute choices (``Kleur: rood``) appended."""
    name = _text(row.get("product_name")) or _text(row.get("product_number")) or ""
    attributes = row.get("attributes")
    choices = [
        f"{_text(a.get('option_name')) or ''}: {_text(a.get('value_name')) or ''}".strip(": ")
        for a in (attributes if isinstance(attributes, list) else ())
        if isinstance(a, Mapping)
    ]
    choices = [c for c in choices if c]
    return f"{name} ({', '.join(choices)})" if choices else name


def order_line(row: Mapping[str, Any], *, prices_include_tax: bool, variant_sku: bool = False) -> OrderLine:
    """One order row as a canonical line; CCV's ``discount`` is per unit, the canonical one per line.

    ``sku`` is ``product_number`` (the SKU this connector reads products and stock by); with
    ``variant_sku`` it is the attribute combination's ``sub_sku_number`` when the row has one.
    Rows whose ``product_type`` is not ``product`` (deposits and the like) become ``fee`` lines.
    """
    where = f"order row {row.get('id')}"
    count = to_decimal(row.get("count"), f"{where}.count") or Decimal(0)
    price = to_decimal(row.get("price"), f"{where}.price") or Decimal(0)
    discount = to_decimal(row.get("discount"), f"{where}.discount") or Decimal(0)
    sku = _text(row.get("product_number"))
    if variant_sku:
        sku = _text(row.get("sub_sku_number")) or sku
    return _build(
        OrderLine,
        where,
        kind="product" if row.get("product_type", "product") == "product" else "fee",
        sku=sku,
        name=_row_name(row),
        quantity=count,
        unit_price=price,
        prices_include_tax=prices_include_tax,
        discount=discount * count,  # total_price = (price − discount) × count
        tax_rate=to_decimal(row.get("tax"), f"{where}.tax"),
        total=to_decimal(row.get("total_price"), f"{where}.total_price"),
    )


def _flag(order: Mapping[str, Any], key: str, override: bool | None) -> bool:
    """A taxes-included flag of the order, unless the connection setting overrides it (missing: incl.)."""
    if override is not None:
        return override
    return order.get(key) is not False


def order_discount(
    order: Mapping[str, Any], product_lines: list[OrderLine], charges: Decimal, where: str
) -> Decimal:
    """The order-level discount not already carried by the rows (0 for none).

    ``total_discounts`` may or may not include the rows' own discounts (UNKNOWN), so the totals decide:
    rows + charges − total_discounts = total_price → it is order level (a coupon); rows + charges =
    total_price → the rows carry it. When neither adds up, what exceeds the rows' discounts is order level.
    """
    discounts = to_decimal(order.get("total_discounts"), f"{where}.total_discounts") or Decimal(0)
    if discounts <= 0:
        return Decimal(0)
    total = to_decimal(order.get("total_price"), f"{where}.total_price")
    rows_total = sum((line.total if line.total is not None else line.unit_price * line.quantity - line.discount
                      for line in product_lines), Decimal(0))  # fmt: skip
    if total is not None:
        if abs(rows_total + charges - discounts - total) <= CENT:
            return discounts
        if abs(rows_total + charges - total) <= CENT:
            return Decimal(0)
    carried = sum((line.discount for line in product_lines), Decimal(0))
    return max(discounts - carried, Decimal(0))


def order_to_canonical(
    order: Mapping[str, Any],
    rows: Iterable[Mapping[str, Any]],
    *,
    prices_include_tax: bool | None = None,
    variant_sku: bool = False,
) -> Order:
    """A CCV order and its rows as a canonical Order.

    Lines: one per row; a ``shipping`` line for ``total_shipping``; ``fee`` lines for
    ``paymethod_costs`` and ``extra_costs``; a ``discount`` line (negative price) for an order-level
    discount (see :func:`order_discount`). RecordError for an order that cannot be mapped
    (no ``ordernumber_full``, no ``total_price``, no ``create_date``, bad numbers).
    """
    where = f"order {order.get('id')}"
    number = _text(str(order.get("ordernumber_full") or "")) or None
    if number is None:
        raise RecordError(f"{where}: has no ordernumber_full (not completed yet?)")
    where = f"order {number} (id {order.get('id')})"
    currency = (_text(order.get("currency")) or "EUR").upper()
    rows_incl = _flag(order, "order_row_taxes_included", prices_include_tax)
    lines = [order_line(row, prices_include_tax=rows_incl, variant_sku=variant_sku) for row in rows]
    product_lines = list(lines)
    charges = Decimal(0)
    shipping = to_decimal(order.get("total_shipping"), f"{where}.total_shipping")
    if shipping and shipping > 0:
        charges += shipping
        lines.append(
            OrderLine(
                kind="shipping",
                name="Verzendkosten",
                unit_price=shipping,
                prices_include_tax=_flag(order, "shipping_taxes_included", prices_include_tax),
                tax_rate=to_decimal(order.get("shipping_tax_percentage"), f"{where}.shipping_tax_percentage"),
                total=shipping,
            )
        )
    order_incl = _flag(order, "taxes_included", prices_include_tax)
    for key, label in (("paymethod_costs", "Betaalkosten"), ("extra_costs", None)):
        amount = to_decimal(order.get(key), f"{where}.{key}")
        if amount and amount > 0:
            charges += amount
            name = label or _text(order.get("extra_costs_description")) or "Extra kosten"
            lines.append(OrderLine(kind="fee", name=name, unit_price=amount, prices_include_tax=order_incl, total=amount))
    discount = order_discount(order, product_lines, charges, where)
    if discount:
        rates = {line.tax_rate for line in product_lines}
        coupon = order.get("discountcoupon") or {}
        code = _text(coupon.get("code")) if isinstance(coupon, Mapping) else None
        lines.append(
            OrderLine(
                kind="discount",
                name=f"Korting {code}" if code else "Korting",
                unit_price=-discount,
                prices_include_tax=order_incl,
                tax_rate=rates.pop() if len(rates) == 1 else None,  # one rate in the order: the discount has it too
                total=-discount,
            )
        )
    status = order.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        raise RecordError(f"{where}: has no status")
    personal = _object(order.get("customer"), f"{where}.customer")
    customer = (
        customer_to_canonical(personal, currency=currency, language=_text(order.get("orderedinlng")), where=f"{where}.customer")
        if personal
        else None
    )
    total = to_decimal(order.get("total_price"), f"{where}.total_price")
    if total is None:
        raise RecordError(f"{where}: has no total_price")
    try:
        created = parse_datetime(order.get("create_date"), f"{where}.create_date")
    except ValueError as exc:
        raise RecordError(str(exc)) from None
    billing = _object(personal.get("billingaddress"), f"{where}.customer.billingaddress")
    custom = {
        "ccv_order_id": order.get("id"),
        "ccv_status": status,
        "ccv_paymethod_id": order.get("paymethod_id"),
        "ccv_paymethod_label": _text(order.get("paymethod_label")),
        "ccv_deliver_method": _text(order.get("deliver_method")),
        "ccv_invoicenumber": order.get("invoicenumber"),
        "ccv_track_and_trace_code": _text(order.get("track_and_trace_code")),
    }
    return _build(
        Order,
        where,
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
        paid=order.get("paid") is True,
        payment_method=_text(order.get("paymethod")),
        reference=_text(personal.get("reference")),
        note=_text(billing.get("comment")),
        custom_fields={k: v for k, v in custom.items() if v is not None},
    )


def split_shipment_key(key: str) -> tuple[str, str]:
    """``Shipment.key()`` → (order number, tracking code); split at the last ``/`` (prefixes may hold one)."""
    number, _, code = key.rpartition("/")
    return number.strip(), code.strip()


def ordernumber_filter(number: str) -> int | None:
    """The integer for the ``ordernumber`` list filter: the trailing digits of ``ordernumber_full``."""
    digits = ""
    for char in reversed(number.strip()):
        if not char.isdigit():
            break
        digits = char + digits
    return int(digits) if digits else None


def matches_number(order: Mapping[str, Any], number: str) -> bool:
    """Whether ``order`` is the order numbered ``number`` (its ``ordernumber_full``, or the bare number)."""
    full = order.get("ordernumber_full")
    return (full is not None and str(full).strip() == number) or str(order.get("ordernumber")) == number


def shipment_from_order(order: Mapping[str, Any]) -> Shipment | None:
    """The order's track & trace as a canonical Shipment; None when it has no code (or no number)."""
    code = _text(order.get("track_and_trace_code"))
    number = _text(str(order.get("ordernumber_full") or ""))
    if code is None or number is None:
        return None
    deeplink = _text(order.get("track_and_trace_deeplink"))
    return _build(
        Shipment,
        f"order {number}",
        order_number=number,
        tracking_code=code,
        carrier=_text(order.get("track_and_trace_carrier")),
        tracking_url=deeplink if deeplink and deeplink.startswith(("http://", "https://")) else None,
    )


SENT = 5
"""The status a shipment sets (doc §7)."""
PAST_SENT = frozenset({6, 7})
"""Delivered and completed: a shipment does not move these back to sent."""
CANCELLED = 8


def shipment_patch(order: Mapping[str, Any], shipment: Shipment, *, mail: bool) -> dict[str, Any]:
    """The ``PATCH /orders/:id/`` body that records ``shipment`` on ``order`` (status 5 and track & trace).

    When the order already holds this code, only a changed carrier is sent (no status, no second
    e-mail); a carrier of None never clears CCV's. RecordError when CCV cannot hold the shipment:
    the order already has another code (one per order), or it is cancelled. A delivered or
    completed order keeps its status. An empty body means there is nothing to write.
    """
    number = shipment.order_number
    current = _text(order.get("track_and_trace_code"))
    if current is not None and current != shipment.tracking_code:
        raise RecordError(
            f"order {number} already has track & trace {current}; CCV keeps one code per order; "
            "split shipments are not supported"
        )
    if current is not None:
        carrier = _text(order.get("track_and_trace_carrier"))
        return {"track_and_trace_carrier": shipment.carrier} if shipment.carrier and shipment.carrier != carrier else {}
    if order.get("status") == CANCELLED:
        raise RecordError(f"order {number} is cancelled in CCV; a shipment is not recorded on it")
    body: dict[str, Any] = {}
    if _status(order) not in PAST_SENT:
        body["status"] = SENT
    body["track_and_trace_code"] = shipment.tracking_code
    if shipment.carrier:
        body["track_and_trace_carrier"] = shipment.carrier
    body["mail"] = mail
    return body
