"""Exact Online JSON ⇄ the canonical records (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from apicenterd import Address, Contact, Customer, JournalEntry, Order, OrderLine, Product, RecordError, Shipment, StockLevel

__all__ = [
    "DELIVERY_SELECT",
    "delivery_to_shipments",
    "STOCK_SELECT",
    "item_warehouse_to_stock",
    "item_warehouses_to_stock",
    "entry_number",
    "entry_stub",
    "journal_body",
    "normalize_journal",
    "ORDER_SELECT",
    "ORDER_LINE_SELECT",
    "line_vat",
    "ORDER_STATUSES",
    "sales_order_to_order",
    "ACCOUNT_SELECT",
    "CUSTOMER_FIELDS",
    "ITEM_SELECT",
    "PRICE_SELECT",
    "PRODUCT_FIELDS",
    "account_body",
    "account_code",
    "account_to_customer",
    "contact_body",
    "item_body",
    "item_to_product",
    "normalize_customer",
    "normalize_product",
    "to_decimal",
]

CODE_LENGTH = 18
"""Exact keeps an Account's ``Code`` right-aligned in 18 characters (``"              1001"``)."""

PRODUCT_FIELDS: dict[str, tuple[str, ...]] = {
    "sku": ("Code",),
    "name": ("Description",),
    "description": ("ExtraDescription",),
    "ean": ("Barcode",),
    "unit": ("Unit",),
    "price_excl_tax": ("SalesItemPrices.Price",),
    "active": ("IsSalesItem",),
    "item_group": ("ItemGroup (by logistics/ItemGroups Code)",),
    "custom_fields": ("FreeTextField_01-10", "FreeNumberField_01-08", "FreeBoolField_01-05", "FreeDateField_01-05", "Class_01-10"),
}
"""Canonical product field → the Exact properties behind it."""

ITEM_FREE_FIELDS = (
    *(f"FreeTextField_{n:02d}" for n in range(1, 11)),
    *(f"FreeNumberField_{n:02d}" for n in range(1, 9)),
    *(f"FreeBoolField_{n:02d}" for n in range(1, 6)),
    *(f"FreeDateField_{n:02d}" for n in range(1, 6)),
    *(f"Class_{n:02d}" for n in range(1, 11)),
)
"""The Item properties a product's ``custom_fields`` may name: Exact's free text, number, yes/no and
date fields and its item classes (the "custom filters", codes of ``ItemClasses``); all writable in the SDK."""

DATE_FIELDS = frozenset(f"FreeDateField_{n:02d}" for n in range(1, 6))
"""Free fields that hold a date: written as ``YYYY-MM-DD``, read back (Exact's ``/Date(ms)/``) the same way."""

CLASSIFICATIONS = {f"Classification{n}": n for n in range(1, 9)}
"""An Account's classification properties → the ``SequenceNumber`` of their ``AccountClassificationNames``
entry; a customer's ``custom_fields`` give them by the classification's ``Code``."""

ITEM_SELECT = (
    "ID",
    "Code",
    "Description",
    "ExtraDescription",
    "Barcode",
    "Unit",
    "IsSalesItem",
    "ItemGroupCode",
    *ITEM_FREE_FIELDS,
    "Timestamp",
)
"""What a product read asks for (``$select``; ``Timestamp`` only on the sync endpoint)."""
PRICE_SELECT = ("ID", "Item", "ItemCode", "Price", "Currency", "Unit")

CUSTOMER_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("Name",),
    "email": ("Email",),
    "phone": ("Phone",),
    "billing_address": ("AddressLine1", "Postcode", "City", "Country"),
    "vat_number": ("VATNumber",),
    "coc_number": ("ChamberOfCommerce",),
    "customer_number": ("Code",),
    "custom_fields": ("Remarks", "Website", "SearchCode", "TradeName", "Classification1-8 (by AccountClassifications Code)"),
}
"""Canonical customer field → the Account properties behind it."""

ACCOUNT_FREE_FIELDS = ("Remarks", "Website", "SearchCode", "TradeName", *(f"Classification{n}" for n in range(1, 9)))
"""The Account properties a customer's ``custom_fields`` may name: Exact's Account has no free
fields in the REST API (the SDK lists none); these are its writable properties the connector does
not fill otherwise (``Classification1``-``8``: given and compared by the ``Code`` of an
``AccountClassifications`` entry, written as its ID by the connector)."""

ACCOUNT_SELECT = (
    "ID",
    "Code",
    "Name",
    "Email",
    "Phone",
    "AddressLine1",
    "Postcode",
    "City",
    "Country",
    "VATNumber",
    "ChamberOfCommerce",
    "MainContact",
    "Status",
    *ACCOUNT_FREE_FIELDS,
)

NAME_LENGTH = 60
CODE_MAX = 30


def to_decimal(value: Any) -> Decimal | None:
    """A number from Exact's JSON (int, Decimal, numeric string) as Decimal; None for None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"expected a number, got {value!r:.40}") from None


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _empty(value: Any) -> bool:
    """Exact's value of a free field nobody set: null, blank, 0 or false."""
    return value is None or value is False or value == "" or (isinstance(value, (int, float, Decimal)) and value == 0)


def custom_values(record: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The free fields ``names`` of an Exact object that are set (text stripped, dates as ``YYYY-MM-DD``)."""
    values = {}
    for name in names:
        value = record.get(name)
        if isinstance(value, str):
            value = value.strip()
        if name in DATE_FIELDS and not _empty(value):
            from .client import parse_odata_date

            try:
                when = parse_odata_date(value)
            except ValueError:
                when = None  # not a date Exact would give: kept as it is (compares unequal, so rewritten)
            if when is not None:
                value = when.astimezone(timezone.utc).date().isoformat()
        if not _empty(value):
            values[name] = value
    return values


def free_date(value: Any, name: str, what: str) -> str:
    """A free date field's value as ``YYYY-MM-DD`` (a date, or an ISO date or date-time text);
    RecordError naming the field and the value otherwise."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text[:10]).isoformat() if len(text) == 10 else datetime.fromisoformat(text).date().isoformat()
        except ValueError:
            pass
    raise RecordError(f"{what}: custom field {name} is a date field of Exact Online: {value!r} is not a date (use YYYY-MM-DD)")


def checked_custom(custom: dict[str, Any], names: tuple[str, ...], what: str) -> dict[str, Any]:
    """``custom`` without empty values; RecordError naming a field Exact does not let one write there."""
    unknown = sorted(set(custom) - set(names))
    if unknown:
        raise RecordError(
            f"{what}: custom field(s) {', '.join(unknown)} are not writable free fields of Exact Online (use: {names[0]}, ... {names[-1]})"
        )
    checked = {k: (v.strip() if isinstance(v, str) else v) for k, v in custom.items() if not _empty(v.strip() if isinstance(v, str) else v)}
    return {k: free_date(v, k, what) if k in DATE_FIELDS else v for k, v in checked.items()}


def item_to_product(item: dict[str, Any], price: dict[str, Any] | None = None, *, currency: str = "EUR") -> Product:
    """An Item (and its SalesItemPrice) as a Product."""
    code = _text(item.get("Code"))
    if not code:
        raise RecordError(f"Exact item {item.get('ID')}: no Code")
    return Product(
        sku=code,
        name=_text(item.get("Description")) or code,
        description=_text(item.get("ExtraDescription")),
        ean=_text(item.get("Barcode")),
        unit=_text(item.get("Unit")),
        price_excl_tax=to_decimal(price.get("Price")) if price else None,
        currency=(_text(price.get("Currency")) if price else None) or currency,
        active=bool(item.get("IsSalesItem", True)),
        item_group=_text(item.get("ItemGroupCode")),
        custom_fields=custom_values(item, ITEM_FREE_FIELDS),
    )


def normalize_product(product: Product) -> Product:
    """The product as Exact stores it: Description 60 characters, price in cents; RecordError for a Code over 30."""
    if len(product.sku) > CODE_MAX:
        raise RecordError(f"product {product.sku!r}: Exact's item Code holds {CODE_MAX} characters, the SKU has {len(product.sku)}")
    price = product.price_excl_tax.quantize(Decimal("0.01")) if product.price_excl_tax is not None else None
    custom = checked_custom(product.custom_fields, ITEM_FREE_FIELDS, f"product {product.sku!r}")
    return product.model_copy(
        update={
            "name": product.name[:NAME_LENGTH],
            "price_excl_tax": price,
            "price_incl_tax": None,
            "item_group": product.item_group.strip() if product.item_group and product.item_group.strip() else None,
            "custom_fields": custom,
        }
    )


def item_body(
    product: Product, fields: frozenset[str] | None = None, *, vat_code: str | None = None, item_group_id: str | None = None
) -> dict[str, Any]:
    """The Item properties for ``fields`` (all on create); the price goes to SalesItemPrices."""
    every = fields is None
    fields = fields or frozenset()
    body: dict[str, Any] = {}
    if every:
        body["Code"] = product.sku
        body["IsSalesItem"] = product.active
        if product.unit:
            body["Unit"] = product.unit
        if vat_code:
            body["SalesVatCode"] = vat_code
    elif "active" in fields:
        body["IsSalesItem"] = product.active
    if every or "name" in fields:
        body["Description"] = product.name[:NAME_LENGTH]
    if every or "description" in fields:
        body["ExtraDescription"] = (product.description or "")[:255] or None
    if every or "ean" in fields:
        body["Barcode"] = product.ean
    if (every or "item_group" in fields) and item_group_id:
        body["ItemGroup"] = item_group_id
    if every or "custom_fields" in fields:
        body.update(product.custom_fields)
    return {k: v for k, v in body.items() if not (every and v is None)}


def account_code(code: str) -> str:
    """An Account ``Code`` as Exact keeps it: right-aligned in 18 characters."""
    return code.strip().rjust(CODE_LENGTH)


def _street(address: Address) -> str:
    return " ".join(part for part in (address.street, address.house_number, address.house_number_suffix) if part).strip()


def account_to_customer(account: dict[str, Any], contact: dict[str, Any] | None = None) -> Customer:
    """An Account (its main contact, if read) as a Customer; Exact has no person debtor apart
    from a company, so an Account with no contact is a company."""
    name = _text(account.get("Name"))
    if not name:
        raise RecordError(f"Exact account {account.get('ID')}: no Name")
    line = _text(account.get("AddressLine1")) or ""
    person = None
    if contact:
        person = Contact(
            first_name=_text(contact.get("FirstName")) or "",
            last_name=_text(contact.get("LastName")) or "",
            email=_text(contact.get("Email")),
            phone=_text(contact.get("Phone")),
        )
    return Customer(
        kind="company",
        name=name,
        email=_text(account.get("Email")),
        phone=_text(account.get("Phone")),
        contact=person,
        billing_address=Address(
            street=line,
            postcode=_text(account.get("Postcode")) or "",
            city=_text(account.get("City")) or "",
            country=_text(account.get("Country")),
        ),
        vat_number=_text(account.get("VATNumber")),
        coc_number=_text(account.get("ChamberOfCommerce")),
        customer_number=_text(account.get("Code")),
        custom_fields=custom_values(account, ACCOUNT_FREE_FIELDS),
    )


def normalize_customer(customer: Customer) -> Customer:
    """The customer as an Exact Account holds it: one address line (street and number joined), name 50."""
    address = customer.billing_address
    line = _street(address)
    return customer.model_copy(
        update={
            "kind": "company",
            "name": customer.name[:50],
            "billing_address": Address(street=line, postcode=address.postcode, city=address.city, country=address.country),
            "shipping_address": None,
            "customer_number": customer.customer_number.strip() if customer.customer_number else None,
            "language": None,
            "currency": None,
            "contact": customer.contact if customer.kind == "company" else None,
            "custom_fields": checked_custom(customer.custom_fields, ACCOUNT_FREE_FIELDS, f"customer {customer.key()!r}"),
        }
    )


def account_body(customer: Customer, fields: frozenset[str] | None = None, *, vat_code: str | None = None) -> dict[str, Any]:
    """The Account properties for ``fields`` (all on create: a customer, ``Status`` "C")."""
    every = fields is None
    fields = fields or frozenset()
    address = customer.billing_address
    values: dict[str, tuple[tuple[str, Any], ...]] = {
        "name": (("Name", customer.name[:50]),),
        "email": (("Email", customer.email),),
        "phone": (("Phone", customer.phone),),
        "billing_address": (
            ("AddressLine1", _street(address) or None),
            ("Postcode", address.postcode or None),
            ("City", address.city or None),
            ("Country", address.country),
        ),
        "vat_number": (("VATNumber", customer.vat_number),),
        "coc_number": (("ChamberOfCommerce", customer.coc_number),),
        "customer_number": (("Code", account_code(customer.customer_number) if customer.customer_number else None),),
    }
    body: dict[str, Any] = {}
    for field, written in values.items():
        if every or field in fields:
            for prop, value in written:
                body[prop] = value
    if every or "custom_fields" in fields:
        body.update(customer.custom_fields)
    if every:
        body["Status"] = "C"
        if vat_code:
            body["SalesVATCode"] = vat_code
        body = {k: v for k, v in body.items() if v is not None}
    return body


def contact_body(customer: Customer, account_id: str) -> dict[str, Any] | None:
    """The contact person of a company Account, or None."""
    person = customer.contact
    if customer.kind != "company" or person is None or not (person.first_name or person.last_name):
        return None
    body = {"Account": account_id, "FirstName": person.first_name, "LastName": person.last_name or person.first_name}
    if person.email:
        body["Email"] = person.email
    if person.phone:
        body["Phone"] = person.phone
    return body


ORDER_SELECT = (
    "OrderID",
    "OrderNumber",
    "OrderDate",
    "Status",
    "Currency",
    "OrderedBy",
    "YourRef",
    "Description",
    "Remarks",
    "PaymentCondition",
    "AmountFC",
    "AmountFCExclVat",
    "Modified",
    "SalesOrderLines",
)
"""What an order read asks for (with ``$expand=SalesOrderLines``)."""

ORDER_LINE_SELECT = (
    "ID",
    "OrderID",
    "LineNumber",
    "Item",
    "ItemCode",
    "Description",
    "Quantity",
    "UnitPrice",
    "NetPrice",
    "AmountFC",
    "Discount",
    "VATCode",
    "VATPercentage",
    "VATAmount",
    "UnitCode",
)
"""What a read of ``salesorder/SalesOrderLines`` asks for (orders whose lines came deferred)."""

ORDER_STATUSES = {12: "new", 20: "in_process", 21: "completed", 45: "cancelled"}
"""Exact's SalesOrder ``Status`` (12 open, 20 partial, 21 complete, 45 cancelled) → the canonical status."""


def _percent(value: Any) -> Decimal | None:
    """Exact's VATPercentage (a fraction: 0.21) as a percentage (21)."""
    rate = to_decimal(value)
    if rate is None:
        return None
    return (rate * 100).normalize() if rate <= 1 else rate


def line_vat(row: dict[str, Any], what: str) -> tuple[str | None, Decimal]:
    """A SalesOrderLine's sales VAT code and rate (a percentage): the rate from ``VATPercentage`` (filled
    from the VAT code's ``Percentage`` by the source when Exact left it out), else from ``VATAmount`` over
    ``AmountFC`` (to a tenth of a percent); RecordError when the line tells neither (the target would book the wrong VAT)."""
    code = _text(row.get("VATCode"))
    rate = _percent(row.get("VATPercentage"))
    if rate is None:
        vat, amount = to_decimal(row.get("VATAmount")), to_decimal(row.get("AmountFC"))
        if vat is not None and amount:
            # the VAT amount is rounded to cents: its rate to a tenth (3.38 on 37.50 is 9.01%: 9)
            rate = (vat / amount * 100).quantize(Decimal("0.1")).normalize()
    if rate is None:
        named = f"VAT code {code!r} has no percentage" if code else "no VATCode, VATPercentage or VATAmount"
        raise RecordError(f"{what}: line {row.get('LineNumber')}: {named}")
    return code, rate


def _when(value: Any, what: str) -> datetime:
    from .client import parse_odata_date

    when = parse_odata_date(value)
    if when is None:
        raise RecordError(f"{what}: no date")
    return when.astimezone(timezone.utc)


def sales_order_to_order(order: dict[str, Any], account: dict[str, Any] | None, *, payment_method: str | None = None) -> Order:
    """A SalesOrder (lines expanded) and its ordering Account as an Order: prices excl. VAT,
    VAT per line from ``VATPercentage``, the line discount (a fraction in Exact) as an amount."""
    number = order.get("OrderNumber")
    what = f"Exact sales order {number}"
    if number in (None, ""):
        raise RecordError(f"Exact sales order {order.get('OrderID')}: no OrderNumber")
    lines_block = order.get("SalesOrderLines")
    rows = lines_block.get("results") if isinstance(lines_block, dict) else lines_block
    if not isinstance(rows, list):
        raise RecordError(f"{what}: SalesOrderLines not expanded")
    lines = []
    for row in sorted(rows, key=lambda r: r.get("LineNumber") or 0):
        quantity = to_decimal(row.get("Quantity")) or Decimal(0)
        price = to_decimal(row.get("UnitPrice"))
        if price is None:
            raise RecordError(f"{what}: line {row.get('LineNumber')} has no UnitPrice")
        fraction = to_decimal(row.get("Discount")) or Decimal(0)
        _, rate = line_vat(row, what)  # Exact's code is not the target's: the flow's tax_codes map gives that
        lines.append(
            OrderLine(
                sku=_text(row.get("ItemCode")),
                name=_text(row.get("Description")) or _text(row.get("ItemCode")) or "",
                quantity=quantity,
                unit_price=price,
                prices_include_tax=False,
                discount=(price * quantity * fraction).quantize(Decimal("0.01")),
                tax_rate=rate,
            )
        )
    status = order.get("Status")
    customer = account_to_customer(account) if account else None
    total = to_decimal(order.get("AmountFC"))
    excl = to_decimal(order.get("AmountFCExclVat"))
    return Order(
        number=str(number),
        status=ORDER_STATUSES.get(status, str(status)) if isinstance(status, int) else str(status),
        created_at=_when(order.get("OrderDate"), what),
        currency=_text(order.get("Currency")) or "EUR",
        customer=customer,
        billing_address=customer.billing_address if customer else Address(),
        lines=tuple(lines),
        total=total if total is not None else Decimal(0),
        total_tax=(total - excl) if total is not None and excl is not None else None,
        payment_terms=_text(order.get("PaymentCondition")),
        payment_method=payment_method,
        reference=_text(order.get("YourRef")),
        note=_text(order.get("Remarks")),
    )


MAX_ENTRY_NUMBER = 2**31 - 1


def entry_number(number: str) -> int:
    """A journal entry's number as Exact's ``EntryNumber`` (an Int32); RecordError for anything else."""
    text = number.strip()
    if not text.isdigit() or not 0 < int(text) <= MAX_ENTRY_NUMBER:
        raise RecordError(f"journal entry {number!r}: Exact's EntryNumber is a whole number from 1 to {MAX_ENTRY_NUMBER}")
    return int(text)


def numbered(number: str) -> bool:
    """Whether a journal entry's number is an Exact ``EntryNumber`` (else Exact numbers the entry,
    and the source's number goes into each line's ``Notes``: ``F12-20240105`` of eAccounting)."""
    text = number.strip()
    return text.isdigit() and 0 < int(text) <= MAX_ENTRY_NUMBER


NOTES_LENGTH = 100
"""How much of a source's entry number a line's ``Notes`` keeps at most (Exact's notes are longer)."""


def normalize_journal(entry: JournalEntry) -> JournalEntry:
    """RecordError for an entry Exact refuses: no lines, lines that do not balance, a number too long to keep."""
    if len(entry.number.strip()) > NOTES_LENGTH:
        raise RecordError(f"journal entry {entry.number[:40]!r}...: a number over {NOTES_LENGTH} characters cannot be kept in Exact")
    if not entry.lines:
        raise RecordError(f"journal entry {entry.number}: no lines")
    balance = sum((line.debit - line.credit for line in entry.lines), Decimal(0))
    if balance != 0:
        raise RecordError(f"journal entry {entry.number}: debit and credit differ by {balance}")
    return entry


def entry_stub(entry: dict[str, Any], number: str | None = None) -> JournalEntry:
    """What the sink compares of a booked entry: its number (a booked entry is never changed)."""
    return JournalEntry(
        number=number or str(entry.get("EntryNumber")), entry_date=date(1970, 1, 1), currency=_text(entry.get("Currency")) or "EUR"
    )


def journal_body(entry: JournalEntry, *, journal: str, gl_accounts: dict[str, str]) -> dict[str, Any]:
    """A GeneralJournalEntry with its lines (``AmountFC``: debit positive, credit negative)."""
    lines = []
    for line in entry.lines:
        row: dict[str, Any] = {
            "GLAccount": gl_accounts[line.account],
            "AmountFC": (line.debit - line.credit).quantize(Decimal("0.01")),
            "Date": entry.entry_date,
            "Description": (line.description or entry.description)[:60] or None,
        }
        if line.cost_centre:
            row["CostCenter"] = line.cost_centre
        if line.cost_unit:
            row["CostUnit"] = line.cost_unit
        if not numbered(entry.number):
            row["Notes"] = entry.number  # how find() knows the entry again (Exact numbers it)
        lines.append({k: v for k, v in row.items() if v is not None})
    body: dict[str, Any] = {"JournalCode": journal, "Currency": entry.currency, "GeneralJournalEntryLines": lines}
    if numbered(entry.number):
        body["EntryNumber"] = entry_number(entry.number)
    return body


STOCK_SELECT = ("ID", "ItemCode", "WarehouseCode", "CurrentStock", "ReservedStock", "Modified")
"""What a stock read asks for."""


def item_warehouse_to_stock(row: dict[str, Any]) -> StockLevel:
    """An ItemWarehouse as a StockLevel: on hand ``CurrentStock``, reserved ``ReservedStock``,
    available the difference (the stock flow's ``available`` option decides what is written)."""
    code = _text(row.get("ItemCode"))
    if not code:
        raise RecordError(f"Exact item warehouse {row.get('ID')}: no ItemCode")
    on_hand = to_decimal(row.get("CurrentStock")) or Decimal(0)
    reserved = to_decimal(row.get("ReservedStock")) or Decimal(0)
    return StockLevel(sku=code, location=_text(row.get("WarehouseCode")), on_hand=on_hand, reserved=reserved, available=on_hand - reserved)


def item_warehouses_to_stock(code: str, rows: Sequence[dict[str, Any]]) -> StockLevel:
    """An item's ItemWarehouses as one StockLevel: on hand and reserved summed over the warehouses;
    the location is the warehouse when there is only one."""
    on_hand = sum((to_decimal(row.get("CurrentStock")) or Decimal(0) for row in rows), Decimal(0))
    reserved = sum((to_decimal(row.get("ReservedStock")) or Decimal(0) for row in rows), Decimal(0))
    location = _text(rows[0].get("WarehouseCode")) if len(rows) == 1 else None
    return StockLevel(sku=code, location=location, on_hand=on_hand, reserved=reserved, available=on_hand - reserved)


DELIVERY_SELECT = ("EntryID", "DeliveryNumber", "DeliveryDate", "TrackingNumber", "ShippingMethodCode", "Modified", "GoodsDeliveryLines")
"""What a shipments read asks for (with ``$expand=GoodsDeliveryLines``)."""


def delivery_orders(delivery: dict[str, Any]) -> list[int]:
    """The Exact sales order numbers a goods delivery delivers (from its lines), in order."""
    block = delivery.get("GoodsDeliveryLines")
    rows = block.get("results") if isinstance(block, dict) else block
    if not isinstance(rows, list):
        raise RecordError(f"Exact goods delivery {delivery.get('DeliveryNumber')}: GoodsDeliveryLines not expanded")
    return list(dict.fromkeys(r["SalesOrderNumber"] for r in rows if isinstance(r, dict) and isinstance(r.get("SalesOrderNumber"), int)))


def delivery_to_shipments(delivery: dict[str, Any], order_numbers: dict[int, str]) -> list[Shipment]:
    """A goods delivery as one Shipment per sales order it delivers (a split delivery is several
    shipments of one order over time); ``order_numbers`` maps Exact's order number to the shop's."""
    what = f"Exact goods delivery {delivery.get('DeliveryNumber')}"
    block = delivery.get("GoodsDeliveryLines")
    rows = block.get("results") if isinstance(block, dict) else block
    shipments = []
    for exact_number in delivery_orders(delivery):
        number = order_numbers.get(exact_number)
        if not number:
            raise RecordError(f"{what}: sales order {exact_number} has no shop order number (YourRef)")
        lines = tuple(
            OrderLine(
                sku=_text(r.get("ItemCode")),
                name=_text(r.get("ItemCode")) or "",
                quantity=to_decimal(r.get("QuantityDelivered")) or Decimal(0),
                unit_price=Decimal(0),
            )
            for r in rows or ()
            if r.get("SalesOrderNumber") == exact_number
        )
        tracking = _text(delivery.get("TrackingNumber")) or next(
            (_text(r.get("TrackingNumber")) for r in rows or () if _text(r.get("TrackingNumber"))), None
        )
        shipments.append(
            Shipment(
                order_number=number,
                tracking_code=tracking or "",
                carrier=_text(delivery.get("ShippingMethodCode")),
                shipped_at=_when(delivery.get("DeliveryDate"), what) if delivery.get("DeliveryDate") else None,
                lines=lines,
            )
        )
    return shipments
