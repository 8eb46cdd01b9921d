"""Visma.net JSON ⇄ the canonical records: pure functions, field wrappers (``{"value": ...}``) on the write side."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from apicenterd import (
    Address,
    Attribute,
    Contact,
    Customer,
    JournalEntry,
    JournalLine,
    Order,
    OrderLine,
    Product,
    RecordError,
    StockLevel,
)

from .client import vendor_time

__all__ = [
    "CUSTOMER_FIELDS",
    "PRODUCT_FIELDS",
    "customer_body",
    "customer_from",
    "journal_body",
    "order_from",
    "product_body",
    "product_from",
    "stock_from",
    "to_decimal",
    "wrap",
]

CENT = Decimal("0.01")

CUSTOMER_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "email": ("mainContact.email",),
    "phone": ("mainContact.phone1",),
    "contact": ("mainContact.attention",),
    "billing_address": ("mainAddress",),
    "vat_number": ("vatRegistrationId",),
    "coc_number": ("corporateId",),
    "currency": ("currencyId",),
    "tax_code": ("vatZoneId",),
    "payment_terms": ("creditTermsId",),
    "revenue_account": ("glAccounts.salesAccount",),
    "payment_method": ("defaultPaymentMethod.paymentMethodId",),
    "classification": ("customerClassId",),
    "custom_fields": ("attributeLines",),
}
"""Canonical customer field → the CustomerUpdateDto fields it is written to (9.66: ``glAccounts`` and
``defaultPaymentMethod`` are in the 9.66 model only; the flow's codes are left as they are when unset)."""

CUSTOMER_CODES = frozenset({"tax_code", "payment_terms", "revenue_account", "payment_method", "classification"})
"""The target's codes a flow sets on a customer: written when set, never cleared (unset: the ERP's or the class's default)."""

PRODUCT_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("description",),
    "price_excl_tax": ("defaultPrice",),
    "active": ("status",),
    "attributes": ("attributeLines",),
    "custom_fields": ("attributeLines",),
}
"""Canonical product field → the InventoryUpdateDto fields it is written to (``tax_rate`` → ``vatCode`` with a VAT map;
``attributes``, the product characteristics, only those the connection's ``item_attributes`` maps; ``custom_fields``
only those ``item_custom_fields`` maps, as attribute lines too)."""


def wrap(value: Any) -> dict[str, Any]:
    """A Visma.net field wrapper (``DtoValue[T]``): ``{"value": value}``."""
    return {"value": value}


def to_decimal(value: Any, what: str = "amount") -> Decimal | None:
    """A JSON number (Decimal, int or numeric string) as Decimal; None for null."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a number, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what}: expected a number, got {value!r:.40}") from None
    if not number.is_finite():
        raise ValueError(f"{what}: expected a finite number, got {value!r}")
    return number


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _country(address: Mapping[str, Any]) -> str | None:
    country = address.get("country")
    code = country.get("id") if isinstance(country, dict) else address.get("countryId")
    code = _text(code).upper()
    return code if len(code) == 2 and code.isalpha() else None


def address_from(address: Any) -> Address:
    """An AddressDto (or SalesOrderAddressDto) as an Address (``addressLine1`` is the street line)."""
    if not isinstance(address, dict):
        return Address()
    return Address(
        street=_text(address.get("addressLine1")),
        line2=_text(address.get("addressLine2")),
        postcode=_text(address.get("postalCode")),
        city=_text(address.get("city")),
        country=_country(address),
    )


def _street_line(address: Address) -> str:
    return " ".join(p for p in (address.street, address.house_number, address.house_number_suffix) if p)


def address_body(address: Address) -> dict[str, Any]:
    """An AddressUpdateDto."""
    body: dict[str, Any] = {
        "addressLine1": wrap(_street_line(address)),
        "addressLine2": wrap(address.line2),
        "postalCode": wrap(address.postcode),
        "city": wrap(address.city),
    }
    if address.country:
        body["countryId"] = wrap(address.country)
    return body


# -- customers ----------------------------------------------------------------------------------


def _code(value: Any, field: str = "id") -> str | None:
    """The code of a ``{"id": ...}`` (or ``{"number": ...}``) description object, or of a plain string."""
    if isinstance(value, dict):
        value = value.get(field)
    return _text(value) or None


def custom_fields_from(rows: Any, names: Mapping[str, str]) -> dict[str, str]:
    """AttributeIdValueDto rows (``id``, ``value``) as the custom fields ``names`` (field name → attribute id) maps."""
    by_id = {attribute_id: name for name, attribute_id in names.items()}
    found: dict[str, str] = {}
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and str(row.get("id") or "") in by_id and row.get("value") not in (None, ""):
            found[by_id[str(row["id"])]] = str(row["value"])
    return found


def customer_from(item: Mapping[str, Any], *, codes: bool = False, custom_fields: Mapping[str, str] | None = None) -> Customer:
    """A CustomerDto as a Customer: a company when its main contact names a person
    (``attention``) or it has a corporate id, else a person. ``codes`` (the sink's read-back): also
    the target's codes the sink writes (``vatZone``, ``creditTerms``, ``glAccounts.salesAccount``,
    ``defaultPaymentMethodId``, ``customerClass``) and the custom fields ``custom_fields`` maps."""
    number = _text(item.get("number"))
    name = _text(item.get("name"))
    if not name:
        raise RecordError(f"customer {number or '?'}: no name")
    contact: Mapping[str, Any] = item.get("mainContact") or {}
    if not isinstance(contact, dict):
        contact = {}
    attention = _text(contact.get("attention"))
    email = _text(contact.get("email")) or None
    phone = _text(contact.get("phone1")) or None
    company = bool(attention) or bool(_text(item.get("corporateId")))
    person_contact = None
    if company and attention:
        first, _, last = attention.partition(" ")
        person_contact = Contact(first_name=first, last_name=last, email=email, phone=phone)
    return Customer(
        kind="company" if company else "person",
        name=name,
        email=email,
        phone=phone,
        contact=person_contact,
        billing_address=address_from(item.get("mainAddress")),
        vat_number=_text(item.get("vatRegistrationId")) or None,
        coc_number=_text(item.get("corporateId")) or None,
        customer_number=number or None,
        currency=_text(item.get("currencyId")).upper() or None,
        **(_customer_codes(item, custom_fields or {}) if codes else {}),
    )


def _customer_codes(item: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    raw = item.get("glAccounts")
    accounts: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    return {
        "tax_code": _code(item.get("vatZone")),
        "payment_terms": _code(item.get("creditTerms")),
        "revenue_account": _code(accounts.get("salesAccount"), "number"),  # AccountNumberTypeDescriptionDto [medium: "number"]
        "payment_method": _code(item.get("defaultPaymentMethodId")),
        "classification": _code(item.get("customerClass")),
        "custom_fields": custom_fields_from(item.get("attributes"), names),
    }


def attribute_lines(values: Mapping[str, Any], names: Mapping[str, str]) -> list[dict[str, Any]]:
    """AttributeLineUpdateDto rows (``attributeId``, ``attributeValue``) for the ``values`` that ``names`` maps."""
    return [{"attributeId": wrap(names[k]), "attributeValue": wrap(str(v))} for k, v in sorted(values.items()) if k in names]


def customer_body(
    record: Customer,
    fields: frozenset[str] | None = None,
    *,
    customer_class: str | None = None,
    custom_fields: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A CustomerUpdateDto: every written field on create (``fields`` None), else only ``fields``.
    A company's contact person goes in ``mainContact.attention``; the flow's codes (set, never
    cleared): ``tax_code`` → ``vatZoneId`` (the VAT zone per country), ``payment_terms`` →
    ``creditTermsId``, ``revenue_account`` → ``glAccounts.salesAccount`` (per country),
    ``payment_method`` → ``defaultPaymentMethod``, ``classification`` → ``customerClassId`` (else
    ``customer_class`` on create); ``custom_fields`` that ``custom_fields`` maps → ``attributeLines``."""
    every = fields is None
    want = set(CUSTOMER_FIELDS) if fields is None else set(fields)
    body: dict[str, Any] = {}
    if every and record.customer_number:
        body["number"] = wrap(record.customer_number)
    if "name" in want:
        body["name"] = wrap(record.name)
    if want & {"email", "phone", "contact", "name"}:
        attention = ""
        if record.kind == "company" and record.contact is not None:
            attention = " ".join(p for p in (record.contact.first_name, record.contact.last_name) if p)
        body["mainContact"] = wrap(
            {"name": wrap(record.name), "attention": wrap(attention), "email": wrap(record.email or ""), "phone1": wrap(record.phone or "")}
        )
    if "billing_address" in want:
        body["mainAddress"] = wrap(address_body(record.billing_address))
    if "vat_number" in want:
        body["vatRegistrationId"] = wrap(record.vat_number or "")
    if "coc_number" in want:
        body["corporateId"] = wrap(record.coc_number or "")
    if "currency" in want and record.currency:
        body["currencyId"] = wrap(record.currency)
    if "classification" in want and (record.classification or (every and customer_class)):
        body["customerClassId"] = wrap(record.classification or customer_class)
    if "tax_code" in want and record.tax_code:
        body["vatZoneId"] = wrap(record.tax_code)
    if "payment_terms" in want and record.payment_terms:
        body["creditTermsId"] = wrap(record.payment_terms)
    if "revenue_account" in want and record.revenue_account:
        body["glAccounts"] = wrap({"salesAccount": wrap(record.revenue_account)})
    if "payment_method" in want and record.payment_method:
        body["defaultPaymentMethod"] = wrap({"paymentMethodId": wrap(record.payment_method), "isDefault": wrap(True)})
    if "custom_fields" in want and custom_fields:
        lines = attribute_lines(record.custom_fields, custom_fields)
        if lines:
            body["attributeLines"] = lines
    return body


def normalize_customer(record: Customer, custom_fields: Mapping[str, str] | None = None) -> Customer:
    """What Visma.net keeps of a customer: the street line joined; no contact for a person; names up to 60;
    the custom fields ``custom_fields`` maps (as text, empty ones left out); no cost centre or unit (not carried)."""
    if len(record.name) > 60:  # 9.66: CustomerUpdateDto.name maxLength is not given; the ERP screen's limit [unverified]
        raise RecordError(f"customer {record.key()!r}: name longer than 60 characters")
    billing = record.billing_address
    street = _street_line(billing)
    contact = record.contact if record.kind == "company" else None
    if contact is not None:
        contact = Contact(first_name=contact.first_name, last_name=contact.last_name, email=record.email, phone=record.phone)
    return record.model_copy(
        update={
            "billing_address": Address(
                street=street, line2=billing.line2, postcode=billing.postcode, city=billing.city, country=billing.country
            ),
            "contact": contact,
            "shipping_address": None,
            "language": None,
            "custom_fields": {k: str(v) for k, v in record.custom_fields.items() if k in (custom_fields or {}) and v not in (None, "")},
            "cost_centre": None,
            "cost_unit": None,
        }
    )


# -- products --------------------------------------------------------------------------------


def product_from(
    item: Mapping[str, Any],
    *,
    currency: str,
    vat_rates: Mapping[str, Decimal],
    attributes: Mapping[str, str] | None = None,
    custom_fields: Mapping[str, str] | None = None,
) -> Product:
    """An InventoryDto as a Product (price excl. VAT in the company's currency; the VAT rate by the VAT map;
    the item's attributes that ``attributes`` (characteristic name → attribute id) maps, by name)."""
    number = _text(item.get("inventoryNumber"))
    if not number:
        raise RecordError("inventory item without inventoryNumber")
    vat = item.get("vatCode")
    vat_id = _text(vat.get("id")) if isinstance(vat, dict) else ""
    return Product(
        sku=number,
        name=_text(item.get("description")) or number,
        price_excl_tax=to_decimal(item.get("defaultPrice"), f"inventory {number} defaultPrice"),
        tax_rate=vat_rates.get(vat_id),
        currency=currency,
        active=_text(item.get("status")).lower() != "inactive",
        attributes=attributes_from(item.get("attributes"), attributes or {}),
        custom_fields=custom_fields_from(item.get("attributes"), custom_fields or {}),
    )


def attributes_from(rows: Any, names: Mapping[str, str]) -> tuple[Attribute, ...]:
    """AttributeIdValueDto rows (``id``, ``value``) as the characteristics ``names`` maps, sorted by name."""
    by_id = {attribute_id: name for name, attribute_id in names.items()}
    found = []
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and str(row.get("id") or "") in by_id and row.get("value") not in (None, ""):
            found.append(Attribute(name=by_id[str(row["id"])], value=str(row["value"])))
    return tuple(sorted(found, key=lambda a: a.name))


def product_body(
    record: Product,
    fields: frozenset[str] | None = None,
    *,
    vat_code: str | None = None,
    item_class: str | None = None,
    posting_class: str | None = None,
    item_type: str = "FinishedGoodItem",
    attributes: Mapping[str, str] | None = None,
    custom_fields: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An InventoryUpdateDto: everything on create (``fields`` None), else only ``fields``; the
    mapped characteristics and custom fields as ``attributeLines`` (``attributeId``, ``attributeValue``);
    the flow's ``item_group`` as ``itemClass`` on create (else ``item_class``)."""
    want = set(PRODUCT_FIELDS) | {"tax_rate"} if fields is None else set(fields)
    body: dict[str, Any] = {}
    if fields is None:
        body["inventoryNumber"] = wrap(record.sku)
        body["type"] = wrap(item_type)
        if record.item_group or item_class:
            body["itemClass"] = wrap(record.item_group or item_class)
        if posting_class:
            body["postingClass"] = wrap(posting_class)
    if "name" in want:
        body["description"] = wrap(record.name)
    if "price_excl_tax" in want and record.price_excl_tax is not None:
        body["defaultPrice"] = wrap(record.price_excl_tax.quantize(CENT))
    if "active" in want:
        body["status"] = wrap("Active" if record.active else "Inactive")
    if "tax_rate" in want and vat_code:
        body["vatCode"] = wrap(vat_code)
    lines: list[dict[str, Any]] = []
    if "attributes" in want and attributes:
        lines += [
            {"attributeId": wrap(attributes[a.name]), "attributeValue": wrap(a.value)} for a in record.attributes if a.name in attributes
        ]
    if "custom_fields" in want and custom_fields:
        lines += attribute_lines(record.custom_fields, custom_fields)
    if lines:
        body["attributeLines"] = lines
    return body


def normalize_product(
    record: Product, attributes: Mapping[str, str] | None = None, custom_fields: Mapping[str, str] | None = None
) -> Product:
    """Prices in cents; the characteristics ``attributes`` maps kept (sorted by name, empty values
    left out), the parts this pair does not carry (other attributes, categories, images) dropped."""
    if record.type != "simple":
        raise RecordError(f"product {record.sku!r}: only simple products go to Visma.net inventory items (variants are not supported)")
    price = record.price_excl_tax
    if price is None and record.price_incl_tax is not None and record.tax_rate is not None:
        price = record.price_incl_tax / (1 + record.tax_rate / 100)
    return record.model_copy(
        update={
            "price_excl_tax": price.quantize(CENT) if price is not None else None,
            "price_incl_tax": None,
            "attributes": tuple(sorted((a for a in record.attributes if a.name in (attributes or {}) and a.value), key=lambda a: a.name)),
            "custom_fields": {k: str(v) for k, v in record.custom_fields.items() if k in (custom_fields or {}) and v not in (None, "")},
            "categories": (),
            "images": (),
            "ean": None,
            "short_description": None,
            "description": None,
            "purchase_price": None,
            "quantity": None,
            "unit": None,
            "weight_kg": None,
        }
    )


# -- stock -----------------------------------------------------------------------------------


STOCK_MODES = ("available_minus_reserved", "available", "available_for_shipment", "on_hand")


def stock_from(sku: str, rows: list[dict[str, Any]], *, mode: str, warehouse: str | None) -> StockLevel:
    """InventorySummaryDto rows (one per warehouse/location) as one StockLevel: their sums;
    ``reserved`` is ``soBooked`` (booked on sales orders), ``available`` by ``mode``."""

    def total(field: str) -> Decimal:
        return sum((to_decimal(row.get(field), f"stock of {sku} {field}") or Decimal(0) for row in rows), Decimal(0))

    on_hand, reserved = total("onHand"), total("soBooked")
    available = {
        "available_minus_reserved": total("available") - reserved,
        "available": total("available"),
        "available_for_shipment": total("availableForShipment"),
        "on_hand": on_hand,
    }[mode]
    return StockLevel(sku=sku, location=warehouse, on_hand=on_hand, reserved=reserved, available=available)


# -- orders ----------------------------------------------------------------------------------


def order_from(item: Mapping[str, Any], *, zone: ZoneInfo, customer: Customer | None) -> Order:
    """A SalesOrderDto as an Order (amounts excl. VAT, as Visma.net keeps them)."""
    number = _text(item.get("orderNo"))
    if not number:
        raise RecordError("sales order without orderNo")
    when = item.get("date") or item.get("lastModifiedDateTime")
    lines = []
    for row in item.get("lines") or []:
        inventory = row.get("inventory") if isinstance(row.get("inventory"), dict) else {}
        sku = _text(inventory.get("number")) or None
        lines.append(
            OrderLine(
                kind="product" if sku else "text",
                sku=sku,
                name=_text(row.get("lineDescription")) or _text(inventory.get("description")),
                quantity=to_decimal(row.get("quantity"), f"order {number} quantity") or Decimal(0),
                unit_price=to_decimal(row.get("unitPrice"), f"order {number} unitPrice") or Decimal(0),
                prices_include_tax=False,
                discount=to_decimal(row.get("discountAmount"), f"order {number} discountAmount") or Decimal(0),
            )
        )
    terms = item.get("terms")
    return Order(
        number=number,
        status=_text(item.get("status")) or "Open",
        created_at=vendor_time(when, zone) if when else datetime(1970, 1, 1, tzinfo=zone),
        currency=_text(item.get("currency")).upper() or "EUR",
        customer=customer,
        billing_address=address_from(item.get("soBillingAddress")),
        shipping_address=address_from(item.get("soShippingAddress")) if item.get("soShippingAddress") else None,
        lines=tuple(lines),
        total=to_decimal(item.get("orderTotal"), f"order {number} orderTotal") or Decimal(0),
        total_tax=to_decimal(item.get("taxTotal"), f"order {number} taxTotal"),
        payment_terms=_text(terms.get("id")) if isinstance(terms, dict) else None,
        payment_method=_id_of(item.get("paymentMethod")),
        reference=_text(item.get("customerRefNo")) or None,
        note=_text(item.get("description")) or None,
    )


def _id_of(value: Any) -> str | None:
    """A code sent as a string or as a ``{"id": ...}`` description object (the read shape of
    ``paymentMethod`` on sales orders is not in the 2017 file; 9.66 writes it as a string)."""
    if isinstance(value, dict):
        value = value.get("id")
    return _text(value) or None


# -- journal -----------------------------------------------------------------------------------


DESCRIPTION_LENGTH = 256
"""Descriptions are cut here (the 2017 swagger has no lengths; the screens' description fields take 256 [low])."""


def normalize_journal(entry: JournalEntry) -> JournalEntry:
    """The entry as Visma.net will hold it: amounts in cents, every line's description its own or
    the entry's (what :func:`journal_body` writes and :func:`journal_from` reads back), no cost
    centre (not written)."""
    lines = tuple(
        line.model_copy(
            update={
                "debit": line.debit.quantize(CENT),
                "credit": line.credit.quantize(CENT),
                "description": (line.description or entry.description)[:DESCRIPTION_LENGTH],
                "cost_centre": None,
            }
        )
        for line in entry.lines
    )
    return entry.model_copy(update={"lines": lines})


def journal_from(item: Mapping[str, Any], number: str) -> JournalEntry:
    """A JournalTransactionDto booked for entry ``number`` as a JournalEntry (what :func:`journal_body`
    wrote: the lines' accounts, amounts and descriptions, the date and the currency)."""
    lines = []
    for line in item.get("journalTransactionLines") or []:
        if not isinstance(line, dict):
            continue
        debit = line.get("debitAmountInCurrency", line.get("debitAmount"))
        credit = line.get("creditAmountInCurrency", line.get("creditAmount"))
        lines.append(
            JournalLine(
                account=str(line.get("accountNumber") or ""),
                debit=Decimal(str(debit or 0)).quantize(CENT),
                credit=Decimal(str(credit or 0)).quantize(CENT),
                description=str(line.get("transactionDescription") or ""),
            )
        )
    when = str(item.get("transactionDate") or "")
    return JournalEntry(
        number=number,
        entry_date=datetime.fromisoformat(when[:19]).date(),
        currency=str(item.get("currencyId") or "EUR"),
        lines=tuple(lines),
    )


def journal_body(entry: JournalEntry, *, branch: str | None, ledger: str | None) -> dict[str, Any]:
    """A JournalTransactionUpdateDto: the entry's number in every line's ``referenceNumber`` (how
    :meth:`find` knows it was booked) and in the description."""
    debit = sum((line.debit for line in entry.lines), Decimal(0))
    credit = sum((line.credit for line in entry.lines), Decimal(0))
    if not entry.lines:
        raise RecordError(f"journal entry {entry.number!r}: no lines")
    if debit != credit:
        raise RecordError(f"journal entry {entry.number!r}: debit {debit} and credit {credit} differ")
    body: dict[str, Any] = {
        "transactionDate": wrap(entry.entry_date.isoformat()),
        "currencyId": wrap(entry.currency),
        "description": wrap(f"{entry.number} {entry.description}".strip()[:256]),
        "journalTransactionLines": [
            {
                "operation": "Insert",
                "accountNumber": wrap(line.account),
                "referenceNumber": wrap(entry.number),
                "transactionDescription": wrap(line.description),
                "debitAmountInCurrency": wrap(line.debit.quantize(CENT)),
                "creditAmountInCurrency": wrap(line.credit.quantize(CENT)),
                **({"branch": wrap(branch)} if branch else {}),
            }
            for line in entry.lines
        ],
    }
    if branch:
        body["branch"] = wrap(branch)
    if ledger:
        body["ledger"] = wrap(ledger)
    return body
