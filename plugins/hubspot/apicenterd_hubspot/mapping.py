"""Canonical records <-> HubSpot properties (all property values are strings in the CRM API)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from apicenterd import Address, Contact, Customer, Order, OrderLine, Product, RecordError

__all__ = [
    "PRODUCT_FIELDS",
    "CUSTOMER_FIELDS",
    "CONTACT_PROPERTIES",
    "COMPANY_PROPERTIES",
    "decimal_of",
    "text",
    "product_properties",
    "to_product",
    "normalize_product",
    "PRODUCT_EXTRAS",
    "product_extra_properties",
    "normalize_extras",
    "contact_properties",
    "company_properties",
    "to_customer",
    "normalize_customer",
    "CUSTOMER_EXTRAS",
    "extra_properties",
    "read_extras",
    "deal_properties",
    "line_item_properties",
    "to_order",
]

PRODUCT_FIELDS: Mapping[str, str] = {
    "sku": "<sku_property> (and hs_sku)",
    "name": "name",
    "description": "description",
    "price_excl_tax": "price",
    "purchase_price": "hs_cost_of_goods_sold",
    "item_group": "product_properties.item_group",
    "ean": "product_properties.ean",
    "unit": "product_properties.unit",
    "short_description": "product_properties.short_description",
    "custom_fields": "product_properties.custom_fields.<name>",
}
PRODUCT_EXTRAS = frozenset({"item_group", "ean", "unit", "short_description"})
"""Product fields (all text) a connection can write to HubSpot properties of its choosing
(``product_properties``), besides ``custom_fields.<name>``."""
CUSTOMER_FIELDS: Mapping[str, str] = {
    "kind": "a company with its contact, or a contact",
    "name": "companies.name, or contacts.firstname + lastname",
    "email": "contacts.email",
    "phone": "phone",
    "contact": "contacts.firstname, lastname, email, phone",
    "billing_address": "address, zip, city, country",
    "classification": "customer_properties.classification (e.g. lifecyclestage), on the company or the person's contact",
    "tax_code": "customer_properties.tax_code (the flow's tax_codes per country)",
    "revenue_account": "customer_properties.revenue_account (the flow's revenue_accounts per country)",
    "payment_terms": "customer_properties.payment_terms",
    "payment_method": "customer_properties.payment_method",
    "cost_centre": "customer_properties.cost_centre",
    "cost_unit": "customer_properties.cost_unit",
    "customer_number": "customer_properties.customer_number",
    "vat_number": "customer_properties.vat_number",
    "coc_number": "customer_properties.coc_number",
    "language": "customer_properties.language",
    "custom_fields": "customer_properties.custom_fields.<name>",
}
CUSTOMER_EXTRAS = frozenset(
    {
        "classification",
        "tax_code",
        "revenue_account",
        "payment_terms",
        "payment_method",
        "cost_centre",
        "cost_unit",
        "customer_number",
        "vat_number",
        "coc_number",
        "language",
    }
)
"""Customer fields a connection can write to HubSpot properties of its choosing (``customer_properties``),
besides ``custom_fields.<name>``."""
CONTACT_PROPERTIES = ("email", "firstname", "lastname", "phone", "company", "address", "zip", "city", "country", "associatedcompanyid")
COMPANY_PROPERTIES = ("name", "phone", "address", "zip", "city", "country", "domain")


def text(value: Any) -> str:
    """A property value as HubSpot takes it: a string ("" clears the property)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    return str(value)


def decimal_of(value: Any, what: str) -> Decimal | None:
    """A number property (a string) as Decimal; None when empty; RecordError naming ``what`` when not a number."""
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise RecordError(f"{what}: {value!r} is not a number") from None
    if not number.is_finite():
        raise RecordError(f"{what}: {value!r} is not a number")
    return number


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(Decimal("0.01"))


# -- products -----------------------------------------------------------------------------


def product_properties(
    product: Product, fields: frozenset[str] | None, sku_property: str, extras: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The product's properties to write (``fields``: only these canonical fields; None: all), with
    the configured extra fields (``product_properties``: field -> property) among them."""
    wanted = fields if fields is not None else frozenset(PRODUCT_FIELDS)
    props: dict[str, str] = {}
    if "sku" in wanted:
        props[sku_property] = product.sku
        props["hs_sku"] = product.sku
    if "name" in wanted:
        props["name"] = product.name
    if "description" in wanted:
        props["description"] = text(product.description)
    if "price_excl_tax" in wanted:
        props["price"] = text(_money(product.price_excl_tax))
    if "purchase_price" in wanted:
        props["hs_cost_of_goods_sold"] = text(_money(product.purchase_price))
    if extras:
        chosen = {f: p for f, p in extras.items() if f.split(".", 1)[0] in wanted}
        props.update(product_extra_properties(product, chosen))
    return props


def product_extra_properties(product: Product, extras: Mapping[str, str]) -> dict[str, str]:
    """The configured product fields (``product_properties``) as properties: unlike a customer's, a
    field the product lacks clears the property (the sink compares them, so HubSpot must follow)."""
    return {prop: text(_extra_value(product, field)) for field, prop in extras.items()}


def to_product(item: Mapping[str, Any], sku_property: str, currency: str, extras: Mapping[str, str] | None = None) -> Product:
    """A HubSpot product as a canonical Product (its SKU from the unique property, else ``hs_sku``),
    with the configured extra fields (``product_properties``) read from their properties."""
    props = item.get("properties") or {}
    sku = props.get(sku_property) or props.get("hs_sku")
    if not sku:
        raise RecordError(f"product {item.get('id')}: no SKU ({sku_property} and hs_sku are empty)")
    return Product(
        sku=sku,
        name=props.get("name") or sku,
        description=props.get("description") or None,
        price_excl_tax=_money(decimal_of(props.get("price"), f"product {sku} price")),
        purchase_price=_money(decimal_of(props.get("hs_cost_of_goods_sold"), f"product {sku} hs_cost_of_goods_sold")),
        currency=currency,
        **read_extras(props, extras or {}),
    )


def normalize_product(product: Product, extras: Mapping[str, str] | None = None) -> Product:
    """The product as HubSpot keeps it: money in cents; no price incl. VAT, no tax rate on the
    product; of the extra fields only those ``extras`` (``product_properties``) writes, as text."""
    if not product.name.strip():
        raise RecordError(f"product {product.sku}: HubSpot needs a name")
    cleared: dict[str, Any] = dict.fromkeys(PRODUCT_EXTRAS)
    cleared["custom_fields"] = {}
    return product.model_copy(
        update={
            "price_excl_tax": _money(product.price_excl_tax),
            "purchase_price": _money(product.purchase_price),
            "description": product.description or None,
            **cleared,
            **normalize_extras(product, extras or {}),
        }
    )


def normalize_extras(record: Customer | Product, extras: Mapping[str, str]) -> dict[str, Any]:
    """The configured extra fields of ``record`` as they read back from HubSpot (text; empty: None,
    an empty custom field left out): the update of the normalized record."""
    update: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for field in extras:
        value = _extra_value(record, field)
        value = None if value is None or text(value) == "" else text(value)
        if field.startswith("custom_fields."):
            if value is not None:
                custom[field.removeprefix("custom_fields.")] = value
        else:
            update[field] = value
    if custom:
        update["custom_fields"] = custom
    return update


# -- customers ----------------------------------------------------------------------------


def _street(address: Address) -> str:
    number = f"{address.house_number}{address.house_number_suffix}".strip()
    return " ".join(p for p in (address.street, number) if p)


def _address_props(address: Address) -> dict[str, str]:
    return {"address": _street(address), "zip": address.postcode, "city": address.city, "country": address.country or ""}


def _address_of(props: Mapping[str, Any]) -> Address:
    country = str(props.get("country") or "").strip()
    return Address(
        street=str(props.get("address") or ""),
        postcode=str(props.get("zip") or ""),
        city=str(props.get("city") or ""),
        country=country.upper() if len(country) == 2 and country.isalpha() else None,
    )


def _split_name(name: str) -> tuple[str, str]:
    first, _, last = name.strip().partition(" ")
    return first, last


def contact_properties(customer: Customer) -> dict[str, str]:
    """The contact of ``customer`` (the person, or the company's contact person), keyed by e-mail."""
    if customer.kind == "company":
        contact = customer.contact or Contact()
        first, last = contact.first_name, contact.last_name
        props = {"firstname": first, "lastname": last, "phone": contact.phone or customer.phone or "", "company": customer.name}
    else:
        if customer.contact and (customer.contact.first_name or customer.contact.last_name):
            first, last = customer.contact.first_name, customer.contact.last_name
        else:
            first, last = _split_name(customer.name)
        props = {"firstname": first, "lastname": last, "phone": customer.phone or "", **_address_props(customer.billing_address)}
    if customer.email:
        props["email"] = customer.email
    return props


def company_properties(customer: Customer) -> dict[str, str]:
    """The company of a company customer."""
    return {"name": customer.name, "phone": customer.phone or "", **_address_props(customer.billing_address)}


def _extra_value(record: Customer | Product, field: str) -> Any:
    if field.startswith("custom_fields."):
        return record.custom_fields.get(field.removeprefix("custom_fields."))
    return getattr(record, field)


def extra_properties(customer: Customer, extras: Mapping[str, str]) -> dict[str, str]:
    """The configured customer fields (``customer_properties``: field -> property) that ``customer``
    has, as properties; a field it lacks (None) is left alone in HubSpot, not cleared."""
    props: dict[str, str] = {}
    for field, prop in extras.items():
        value = _extra_value(customer, field)
        if value is not None:
            props[prop] = text(value)
    return props


def read_extras(props: Mapping[str, Any], extras: Mapping[str, str]) -> dict[str, Any]:
    """The configured customer fields from an object's properties (the update of a Customer)."""
    update: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for field, prop in extras.items():
        value = props.get(prop)
        value = None if value in (None, "") else str(value)
        if field.startswith("custom_fields."):
            if value is not None:
                custom[field.removeprefix("custom_fields.")] = value
        else:
            update[field] = value
    if custom:
        update["custom_fields"] = custom
    return update


def to_customer(contact: Mapping[str, Any] | None, company: Mapping[str, Any] | None, extras: Mapping[str, str] | None = None) -> Customer:
    """:func:`_to_customer` with the configured extra fields read from the customer's object (the
    company of a company, else the contact)."""
    customer = _to_customer(contact, company)
    if not extras:
        return customer
    holder = company if company is not None else contact
    return customer.model_copy(update=read_extras((holder or {}).get("properties") or {}, extras))


def _to_customer(contact: Mapping[str, Any] | None, company: Mapping[str, Any] | None) -> Customer:
    """A contact (and its primary company) as a canonical Customer: a company with its contact
    person when there is a company, else a person."""
    cprops = (contact or {}).get("properties") or {}
    email = cprops.get("email") or None
    first, last = str(cprops.get("firstname") or ""), str(cprops.get("lastname") or "")
    if company is not None:
        props = company.get("properties") or {}
        name = str(props.get("name") or cprops.get("company") or "").strip()
        if not name:
            raise RecordError(f"company {company.get('id')}: no name")
        return Customer(
            kind="company",
            name=name,
            email=email,
            phone=props.get("phone") or None,
            contact=Contact(first_name=first, last_name=last, email=email, phone=cprops.get("phone") or None) if contact else None,
            billing_address=_address_of(props),
        )
    if contact is None:
        raise RecordError("neither a contact nor a company")
    name = " ".join(p for p in (first, last) if p) or (email or "")
    if not name:
        raise RecordError(f"contact {contact.get('id')}: no name and no e-mail")
    return Customer(
        kind="person",
        name=name,
        email=email,
        phone=cprops.get("phone") or None,
        contact=Contact(first_name=first, last_name=last, email=email, phone=cprops.get("phone") or None),
        billing_address=_address_of(cprops),
    )


def normalize_customer(customer: Customer, extras: Mapping[str, str] | None = None) -> Customer:
    """The customer as HubSpot keeps it: one address line, no shipping address, a contact with the
    e-mail, and of the other fields those ``extras`` (``customer_properties``) writes, as text."""
    base = _normalize_customer(customer)
    if not extras:
        return base
    return base.model_copy(update=normalize_extras(customer, extras))


def _normalize_customer(customer: Customer) -> Customer:
    if not customer.email:
        raise RecordError(f"customer {customer.key()!r}: HubSpot contacts are found by e-mail, and this one has none")
    address = customer.billing_address
    street = _street(address)
    if customer.kind == "person":
        contact = customer.contact or Contact()
        first, last = (contact.first_name, contact.last_name) if (contact.first_name or contact.last_name) else _split_name(customer.name)
        contact = Contact(first_name=first, last_name=last, email=customer.email, phone=customer.phone)
        name = " ".join(p for p in (first, last) if p)
    else:
        contact = customer.contact or Contact()
        contact = Contact(
            first_name=contact.first_name, last_name=contact.last_name, email=customer.email, phone=contact.phone or customer.phone
        )
        name = customer.name
    return Customer(
        kind=customer.kind,
        name=name,
        email=customer.email,
        phone=customer.phone,
        contact=contact,
        billing_address=Address(street=street, postcode=address.postcode, city=address.city, country=address.country),
    )


# -- deals ----------------------------------------------------------------------------------


def _epoch_ms(stamp: datetime) -> str:
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return str(int(stamp.timestamp() * 1000))


def deal_properties(order: Order, *, order_property: str, pipeline: str, stage: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The deal of an order: name, amount, currency, close date, pipeline and stage, the order reference."""
    props = {
        "dealname": f"Order {order.number}" + (f" ({order.customer.name})" if order.customer else ""),
        "amount": text(order.total),
        "deal_currency_code": order.currency,
        "closedate": _epoch_ms(order.created_at),
        "pipeline": pipeline,
        "dealstage": stage,
        order_property: order.number,
    }
    if order.note:
        props["description"] = order.note
    props.update(extra)
    return props


def line_item_properties(order: Order, n: int, line: OrderLine, product_id: str | None, line_property: str) -> dict[str, str]:
    """One line item (its reference ``<order>/<n>`` in the unique ``line_property``)."""
    props = {
        "name": line.name or line.sku or line.kind,
        "quantity": text(line.quantity),
        "price": text(line.unit_price),
        line_property: f"{order.number}/{n}",
    }
    if line.discount and line.quantity:
        props["discount"] = text((line.discount / line.quantity).quantize(Decimal("0.01")))
    if product_id:
        props["hs_product_id"] = product_id
    if line.sku:
        props["hs_sku"] = line.sku
    return props


def to_order(
    deal: Mapping[str, Any],
    line_items: list[Mapping[str, Any]],
    skus: Mapping[str, str],
    customer: Customer | None,
    *,
    currency: str,
    prices_include_tax: bool,
    payment_terms_property: str | None,
    payment_method_property: str | None,
) -> Order:
    """A deal with its line items as a canonical Order (number ``HS-<deal id>``, status = the stage)."""
    props = deal.get("properties") or {}
    deal_id = str(deal.get("id"))
    what = f"deal {deal_id}"
    lines = []
    for item in line_items:
        lp = item.get("properties") or {}
        sku = skus.get(str(lp.get("hs_product_id") or "")) or lp.get("hs_sku") or None
        quantity = decimal_of(lp.get("quantity"), f"{what} line item {item.get('id')} quantity") or Decimal(1)
        price = decimal_of(lp.get("price"), f"{what} line item {item.get('id')} price")
        if price is None:
            raise RecordError(f"{what}: line item {item.get('id')} has no price")
        discount = (decimal_of(lp.get("discount"), f"{what} line item {item.get('id')} discount") or Decimal(0)) * quantity
        lines.append(
            OrderLine(
                sku=sku,
                name=str(lp.get("name") or sku or ""),
                quantity=quantity,
                unit_price=price,
                discount=discount,
                prices_include_tax=prices_include_tax,
            )
        )
    stamp = props.get("closedate") or props.get("createdate") or deal.get("createdAt")
    if not stamp:
        raise RecordError(f"{what}: no close or create date")
    from .client import cursor_to_ms

    created = datetime.fromtimestamp(cursor_to_ms(str(stamp)) / 1000, tz=timezone.utc)
    amount = decimal_of(props.get("amount"), f"{what} amount")
    total = amount if amount is not None else sum((ln.unit_price * ln.quantity - ln.discount for ln in lines), Decimal(0))
    return Order(
        number=f"HS-{deal_id}",
        status=str(props.get("dealstage") or ""),
        created_at=created,
        currency=str(props.get("deal_currency_code") or currency),
        customer=customer,
        billing_address=customer.billing_address if customer else Address(),
        lines=tuple(lines),
        total=total,
        payment_terms=(props.get(payment_terms_property) or None) if payment_terms_property else None,
        payment_method=(props.get(payment_method_property) or None) if payment_method_property else None,
        reference=str(props.get("dealname") or "") or None,
        note=props.get("description") or None,
    )
