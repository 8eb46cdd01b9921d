"""QuickBooks Online JSON objects (element names of Finance.xsd) ⇄ canonical records."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from apicenterd import Address, Attribute, Contact, Customer, Product, RecordError, StockLevel

NAME_MAX = 100
"""Item.Name and Customer.DisplayName at most (Finance.xsd / Intuit: 100 characters)."""
SKU_MAX = 100

PRODUCT_FIELDS: dict[str, tuple[str, ...]] = {
    "sku": ("Sku",),
    "name": ("Name",),
    "description": ("Description",),
    "price_excl_tax": ("UnitPrice",),
    "purchase_price": ("PurchaseCost",),
    "active": ("Active",),
}
CUSTOMER_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("DisplayName", "CompanyName"),
    "email": ("PrimaryEmailAddr.Address",),
    "phone": ("PrimaryPhone.FreeFormNumber",),
    "billing_address": ("BillAddr",),
    "vat_number": ("PrimaryTaxIdentifier",),
    "tax_code": ("DefaultTaxCodeRef",),
    "payment_terms": ("SalesTermRef",),
    "payment_method": ("PaymentMethodRef",),
    "classification": ("CustomerTypeRef",),
}
"""Canonical customer field → Customer properties. ``revenue_account``, ``custom_fields``,
``cost_centre`` and ``cost_unit`` have none: QuickBooks books revenue per line (the item's or the
line's ``ItemAccountRef``), has no custom fields on customers through the API, and keeps classes
and locations on transactions."""

_CUSTOMER_REFS = (("tax_code", "DefaultTaxCodeRef"), ("payment_terms", "SalesTermRef"),
                  ("payment_method", "PaymentMethodRef"), ("classification", "CustomerTypeRef"))  # fmt: skip


def to_decimal(value: Any, what: str = "value") -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise RecordError(f"{what}: {value!r} is not a number") from None


def cursor_of(item: dict[str, Any]) -> str:
    """``MetaData.LastUpdatedTime`` (with its offset) as a UTC cursor that sorts like the time."""
    raw = (item.get("MetaData") or {}).get("LastUpdatedTime")
    if not isinstance(raw, str):
        raise ValueError(f"Id {item.get('Id')}: no MetaData.LastUpdatedTime")
    when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def ref_value(ref: Any) -> str | None:
    if isinstance(ref, dict):
        value = ref.get("value")
        return str(value) if value not in (None, "") else None
    return None


def item_to_product(
    item: dict[str, Any],
    *,
    currency: str = "USD",
    group_fields: tuple[str | tuple[str, str], ...] = (),
    categories: Mapping[str, str] | None = None,
    tax_rates: Mapping[str, Decimal] | None = None,
    default_tax_rate: Decimal | None = None,
) -> Product:
    """An ``Item`` as a product: ``Sku`` (else ``Name``) is the SKU. A sub-item (``SubItem``,
    ``ParentRef``) under a ``Category`` item (``categories``: Id → FullyQualifiedName) is a simple
    product in that category; under another item it is a variant whose ``parent_sku`` is the
    parent's name (the grouping key). ``group_fields`` copy item fields into attributes: a field
    name (the attribute is named alike) or an (attribute, dotted field path) pair."""
    sku = item.get("Sku") or item.get("Name")
    if not sku:
        raise RecordError(f"item {item.get('Id')}: neither Sku nor Name")
    ref = item.get("ParentRef") if isinstance(item.get("ParentRef"), dict) else None
    category = (categories or {}).get(str(ref.get("value"))) if ref else None
    if ref and category is None and not categories and ref.get("name") and not item.get("SubItem"):
        category = str(ref["name"])
    parent = ref if (ref and item.get("SubItem") and category is None) else None
    attributes = []
    for entry in group_fields:
        name, path = (entry, entry) if isinstance(entry, str) else entry
        value: Any = item
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, dict):
            value = value.get("name") or value.get("value")
        if value not in (None, ""):
            attributes.append(Attribute(name=name, value=str(value)))
    tracked = bool(item.get("TrackQtyOnHand"))
    tax_code = ref_value(item.get("SalesTaxCodeRef"))
    tax_rate = (tax_rates or {}).get(tax_code or "", default_tax_rate)
    return Product(
        sku=str(sku),
        name=str(item.get("Name") or sku),
        description=item.get("Description") or None,
        price_excl_tax=to_decimal(item.get("UnitPrice"), f"item {sku} UnitPrice"),
        tax_rate=tax_rate,
        purchase_price=to_decimal(item.get("PurchaseCost"), f"item {sku} PurchaseCost"),
        currency=currency,
        quantity=to_decimal(item.get("QtyOnHand"), f"item {sku} QtyOnHand") if tracked else None,
        type="variant" if parent else "simple",
        parent_sku=str(parent.get("name") or parent.get("value")) if parent else None,
        attributes=tuple(attributes),
        categories=(category,) if category else (),
        active=item.get("Active", True) is not False,
    )


def item_to_stock(item: dict[str, Any]) -> StockLevel:
    """An item's stock: ``QtyOnHand`` on hand, ``QtyOnSalesOrder`` reserved (on sales orders)."""
    sku = str(item.get("Sku") or item.get("Name"))
    qty = to_decimal(item.get("QtyOnHand"), f"item {sku} QtyOnHand") or Decimal(0)
    reserved = to_decimal(item.get("QtyOnSalesOrder"), f"item {sku} QtyOnSalesOrder") or Decimal(0)
    return StockLevel(sku=sku, on_hand=qty, reserved=reserved, available=qty - reserved, tracked=bool(item.get("TrackQtyOnHand")))


def check_name(value: str, what: str) -> str:
    if ":" in value:
        raise RecordError(f"{what}: QuickBooks names may not contain ':' ({value!r})")
    if len(value) > NAME_MAX:
        raise RecordError(f"{what}: {len(value)} characters; QuickBooks takes at most {NAME_MAX} ({value[:40]!r}...)")
    return value


def item_fields(record: Product, fields: frozenset[str] | None) -> dict[str, Any]:
    """The Item properties behind ``fields`` (all when None)."""
    out: dict[str, Any] = {}
    want = (lambda f: True) if fields is None else (lambda f: f in fields)
    if want("sku"):
        out["Sku"] = record.sku
    if want("name"):
        out["Name"] = check_name(record.name, f"item {record.sku!r} Name")
    if want("description"):
        out["Description"] = record.description or ""
    if want("price_excl_tax") and record.price_excl_tax is not None:
        out["UnitPrice"] = record.price_excl_tax
    if want("purchase_price") and record.purchase_price is not None:
        out["PurchaseCost"] = record.purchase_price
    if want("active"):
        out["Active"] = record.active
    return out


def email_of(customer: dict[str, Any]) -> str | None:
    addr = customer.get("PrimaryEmailAddr")
    value = addr.get("Address") if isinstance(addr, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _address(raw: Any) -> Address:
    if not isinstance(raw, dict):
        return Address()
    country = (raw.get("Country") or "").strip().upper()
    return Address(
        street=raw.get("Line1") or "",
        postcode=raw.get("PostalCode") or "",
        city=raw.get("City") or "",
        region=raw.get("CountrySubDivisionCode") or "",
        country=country if len(country) == 2 else None,
    )


def api_to_customer(customer: dict[str, Any]) -> Customer:
    company = (customer.get("CompanyName") or "").strip()
    given, family = customer.get("GivenName") or "", customer.get("FamilyName") or ""
    email = email_of(customer)
    phone = (customer.get("PrimaryPhone") or {}).get("FreeFormNumber") if isinstance(customer.get("PrimaryPhone"), dict) else None
    name = customer.get("DisplayName") or company or f"{given} {family}".strip()
    if not name:
        raise RecordError(f"customer {customer.get('Id')}: no DisplayName")
    return Customer(
        kind="company" if company else "person",
        name=str(name),
        email=email,
        phone=phone,
        contact=Contact(first_name=given, last_name=family, email=email) if company and (given or family) else None,
        billing_address=_address(customer.get("BillAddr")),
        shipping_address=_address(customer["ShipAddr"]) if isinstance(customer.get("ShipAddr"), dict) else None,
        vat_number=customer.get("PrimaryTaxIdentifier") or None,
        customer_number=str(customer["Id"]) if customer.get("Id") else None,
        currency=ref_value(customer.get("CurrencyRef")),
        **{field: ref_value(customer.get(prop)) for field, prop in _CUSTOMER_REFS},
    )


def _bill_addr(address: Address) -> dict[str, Any]:
    street = " ".join(p for p in (address.street, address.house_number, address.house_number_suffix) if p)
    out = {"Line1": street, "City": address.city, "PostalCode": address.postcode, "Country": address.country or ""}
    if address.region:
        out["CountrySubDivisionCode"] = address.region
    return {k: v for k, v in out.items() if v}


def customer_fields(record: Customer, fields: frozenset[str] | None) -> dict[str, Any]:
    """The Customer properties behind ``fields`` (all when None)."""
    want = (lambda f: True) if fields is None else (lambda f: f in fields)
    out: dict[str, Any] = {}
    if want("name"):
        out["DisplayName"] = check_name(record.name, f"customer {record.key()!r} DisplayName")
        if record.kind == "company":
            out["CompanyName"] = record.name
            if record.contact:
                out["GivenName"], out["FamilyName"] = record.contact.first_name, record.contact.last_name
        else:
            first, _, last = record.name.rpartition(" ")
            out["GivenName"], out["FamilyName"] = (first, last) if first else ("", last)
    if want("email") and record.email:
        out["PrimaryEmailAddr"] = {"Address": record.email}
    if want("phone") and record.phone:
        out["PrimaryPhone"] = {"FreeFormNumber": record.phone}
    if want("billing_address"):
        bill = _bill_addr(record.billing_address)
        if bill:
            out["BillAddr"] = bill
    if want("vat_number") and record.vat_number:
        out["PrimaryTaxIdentifier"] = record.vat_number
    for field, prop in _CUSTOMER_REFS:  # the flow's codes (tax code and terms per country, ...): ids of QuickBooks lists
        value = getattr(record, field)
        if want(field) and value:
            out[prop] = {"value": value}
    return out


def normalize_customer(record: Customer) -> Customer:
    check_name(record.name, f"customer {record.key()!r} DisplayName")
    return record.model_copy(
        update={
            "customer_number": None,
            "coc_number": None,
            "language": None,
            "currency": None,
            "shipping_address": None,
            "contact": record.contact if record.kind == "company" else None,
            "revenue_account": None,  # no such Customer property (see CUSTOMER_FIELDS)
            "custom_fields": {},
            "cost_centre": None,
            "cost_unit": None,
        }
    )
