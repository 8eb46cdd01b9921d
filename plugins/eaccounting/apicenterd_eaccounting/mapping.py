"""Pure translation between eAccounting JSON (ArticleApi, CustomerApi) and canonical records."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from apicenterd import Address, Contact, Customer, Product, RecordError, StockLevel

__all__ = [
    "PRODUCT_FIELDS",
    "CUSTOMER_FIELDS",
    "CUSTOMER_LIMITS",
    "to_decimal",
    "text_of",
    "build",
    "price",
    "vat_percent",
    "article_fields",
    "new_article",
    "article_to_product",
    "article_to_stock",
    "normalize_product",
    "normalize_stock",
    "normalize_customer",
    "stock_balance",
    "customer_fields",
    "new_customer",
    "api_to_customer",
    "join_street",
    "split_street",
]

CENT = Decimal("0.01")
PRICE_MAX = Decimal(10_000_000)
ARTICLE_LIMITS = {"Number": 40, "Name": 50}

PRODUCT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "sku": ("Number",),
    "name": ("Name",),
    "price_excl_tax": ("NetPrice",),
    "price_incl_tax": ("GrossPrice",),
    "purchase_price": ("PurchasePrice",),
    "tax_rate": ("CodingId",),
    "active": ("IsActive",),
}
"""Canonical product field → the ArticleApi properties that store it.

``unit`` is not among them: eAccounting keeps a reference to one of the company's units,
which the source's unit text is matched to (or a default) when the article is created."""

CUSTOMER_FIELDS: Mapping[str, tuple[str, ...]] = {
    "kind": ("IsPrivatePerson",),
    "name": ("Name",),
    "email": ("EmailAddress",),
    "phone": ("Telephone",),
    "contact": ("ContactPersonName", "ContactPersonEmail", "ContactPersonPhone"),
    "billing_address": ("InvoiceAddress1", "InvoiceAddress2", "InvoicePostalCode", "InvoiceCity", "InvoiceCountryCode"),
    "shipping_address": ("DeliveryAddress1", "DeliveryAddress2", "DeliveryPostalCode", "DeliveryCity", "DeliveryCountryCode"),
    "vat_number": ("VatNumber",),
    "coc_number": ("CorporateIdentityNumber",),
    "customer_number": ("CustomerNumber",),
    "language": ("SalesDocumentLanguage",),
    "currency": ("CurrencyCode",),
}
"""Canonical customer field → the CustomerApi properties that store it."""

CUSTOMER_LIMITS: Mapping[str, int] = {
    "Name": 50,
    "EmailAddress": 255,
    "Telephone": 50,
    "ContactPersonName": 100,
    "ContactPersonEmail": 255,
    "ContactPersonPhone": 50,
    "InvoiceAddress1": 50,
    "InvoiceAddress2": 50,
    "InvoicePostalCode": 10,
    "InvoiceCity": 50,
    "InvoiceCountryCode": 2,
    "DeliveryAddress1": 50,
    "DeliveryAddress2": 50,
    "DeliveryPostalCode": 10,
    "DeliveryCity": 50,
    "DeliveryCountryCode": 2,
    "VatNumber": 20,
    "CorporateIdentityNumber": 20,
    # the swagger's description says 20, its maxLength says 16: the stricter one wins
    "CustomerNumber": 16,
    "SalesDocumentLanguage": 2,
    "CurrencyCode": 3,
}
"""maxLength of each CustomerApi property the connector writes (from the swagger)."""


def to_decimal(value: Any) -> Decimal | None:
    """A JSON number (int, float, Decimal or numeric string) as Decimal; None stays None, and so
    does what is no finite number (text, NaN, Infinity, objects)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):  # ValueError: str() of an int past Python's digit limit
        return None
    return number if number.is_finite() else None


def text_of(value: Any) -> str | None:
    """A JSON string property as it is; None for null and for anything that is not a string."""
    return value if isinstance(value, str) else None


_Model = TypeVar("_Model", bound=BaseModel)


def build(model: type[_Model], what: str, **values: Any) -> _Model:
    """``model(**values)``; a value the canonical model rejects is a RecordError naming the field."""
    try:
        return model(**values)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "(record)"
        raise RecordError(f"{what}: {field}: {err['msg']} (got {err.get('input')!r:.60})") from None


def _plain(value: Decimal) -> Decimal:
    """``25.00`` → ``25``, ``2.50`` → ``2.5``, without exponent notation."""
    if value == value.to_integral_value():
        try:
            return value.quantize(Decimal(1))
        except InvalidOperation:  # more digits than the context holds: no rate, but no crash either
            return value.normalize()
    return value.normalize()


def _cents(value: Decimal, prop: str, what: str) -> Decimal:
    """``value`` rounded half-up to cents; RecordError when it has too many digits to be an amount."""
    try:
        return value.quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise RecordError(f"{what}: {prop} {value} is out of range for eAccounting") from None


def price(value: Decimal | None, prop: str, what: str, *, bounded: bool = True) -> Decimal | None:
    """A money amount rounded half-up to cents and (``bounded``) checked against the 0…10,000,000
    range the swagger gives NetPrice and GrossPrice."""
    if value is None:
        return None
    rounded = _cents(value, prop, what)
    if bounded and not Decimal(0) <= rounded <= PRICE_MAX:
        raise RecordError(f"{what}: {prop} is {rounded}, eAccounting allows 0 to {PRICE_MAX}")
    return rounded


def stock_balance(value: Decimal, what: str = "stock") -> Decimal:
    """A stock quantity as eAccounting stores it: at most 2 decimals (RecordError when out of range)."""
    return _cents(value, "StockBalance", what)


def vat_percent(coding: Mapping[str, Any]) -> Decimal | None:
    """The VAT percentage of an ArticleAccountCodingAPI, whether it gives 0.25 or 25."""
    rate = to_decimal(coding.get("VatRatePercent"))
    if rate is None:
        return None
    if not Decimal(0) <= rate <= Decimal(100):
        return None  # no VAT rate; the coding matches no product's rate
    # unverified which of the two the live API returns; a VAT rate under 1 % does not exist
    if Decimal(0) < rate < Decimal(1):
        rate *= 100
    return _plain(rate)


def length(value: str) -> int:
    """A text's length as eAccounting (.NET) counts it against a maxLength: in UTF-16 code units,
    so a character outside the Basic Multilingual Plane (an emoji) counts twice."""
    return len(value.encode("utf-16-le")) // 2


def cut(value: str, limit: int) -> str:
    """``value`` cut to at most ``limit`` UTF-16 code units, never in the middle of a character."""
    if length(value) <= limit:
        return value
    out, used = [], 0
    for char in value:
        size = 2 if ord(char) > 0xFFFF else 1
        if used + size > limit:
            break
        out.append(char)
        used += size
    return "".join(out)


def _text(value: str | None, prop: str, limit: int, what: str, *, required: bool = False, truncate: bool = False) -> str | None:
    """A string checked against eAccounting's maxLength, counted as .NET counts it (UTF-16 code
    units; see :func:`length`), and, when required, non-empty."""
    if value is None or value == "":
        if required:
            raise RecordError(f"{what}: {prop} is empty, eAccounting requires it")
        return None
    if length(value) > limit:
        if not truncate:
            raise RecordError(
                f"{what}: {prop} is {length(value)} characters, eAccounting allows {limit} (UTF-16 code units, as .NET counts)"
            )
        value = cut(value, limit)
    return value


def article_fields(
    product: Product,
    fields: Iterable[str],
    *,
    coding_id: str | None = None,
    truncate_names: bool = False,
) -> dict[str, Any]:
    """The ArticleApi properties holding the canonical ``fields`` of ``product`` (others are left out)."""
    what = f"article {product.sku!r}"
    fields = set(fields)
    out: dict[str, Any] = {}
    if "sku" in fields:
        out["Number"] = _text(product.sku, "Number", ARTICLE_LIMITS["Number"], what, required=True)
    if "name" in fields:
        out["Name"] = _text(product.name, "Name", ARTICLE_LIMITS["Name"], what, required=True, truncate=truncate_names)
    if "price_excl_tax" in fields:
        out["NetPrice"] = price(product.price_excl_tax, "NetPrice", what)
    if "price_incl_tax" in fields:
        out["GrossPrice"] = price(product.price_incl_tax, "GrossPrice", what)
    if "purchase_price" in fields:
        out["PurchasePrice"] = price(product.purchase_price, "PurchasePrice", what, bounded=False)
    if "tax_rate" in fields and coding_id:
        out["CodingId"] = coding_id
    if "active" in fields:
        out["IsActive"] = product.active
    return out


def new_article(product: Product, *, coding_id: str, unit_id: str, truncate_names: bool = False) -> dict[str, Any]:
    """The body of ``POST /v2/articles`` for ``product``; ``quantity`` becomes the opening StockBalance."""
    body = article_fields(product, PRODUCT_FIELDS, coding_id=coding_id, truncate_names=truncate_names)
    body = {key: value for key, value in body.items() if value is not None}
    body["CodingId"], body["UnitId"] = coding_id, unit_id
    if product.quantity is not None:
        body["StockBalance"] = stock_balance(product.quantity, f"article {product.sku!r}")
    return body


def _required(data: Mapping[str, Any], prop: str, what: str) -> str:
    value = data.get(prop)
    if value is None or value == "":
        raise RecordError(f"{what}: eAccounting returned no {prop}")
    if not isinstance(value, str):
        raise RecordError(f"{what}: {prop} is not text: {value!r:.60}")
    return value


def article_to_product(article: Mapping[str, Any], *, vat_rate: Decimal | None = None, currency: str = "EUR") -> Product:
    """An ArticleApi object as a canonical Product (``vat_rate`` comes from its coding)."""
    what = f"article {article.get('Id')!r:.60}"
    return build(
        Product,
        what,
        sku=_required(article, "Number", what),
        name=text_of(article.get("Name")) or "",
        price_excl_tax=to_decimal(article.get("NetPrice")),
        price_incl_tax=to_decimal(article.get("GrossPrice")),
        purchase_price=to_decimal(article.get("PurchasePrice")),
        tax_rate=vat_rate,
        currency=currency,
        quantity=to_decimal(article.get("StockBalance")),
        unit=text_of(article.get("UnitAbbreviation")) or text_of(article.get("UnitName")) or None,
        active=bool(article.get("IsActive", True)),
        custom_fields=_extras(article, {"name_english": "NameEnglish", "coding": "CodingName"}, "ArticleLabels"),
    )


def _labels(value: Any) -> str | None:
    """Label objects (``{Id, Name, Description}``) as their names, comma-separated, sorted."""
    names = sorted(text_of(x.get("Name")) or "" for x in value if isinstance(x, dict)) if isinstance(value, list) else []
    return ", ".join(n for n in names if n) or None


def _extras(data: Mapping[str, Any], names: Mapping[str, str], labels: str) -> dict[str, str]:
    """What eAccounting holds beyond the canonical fields, as ``custom_fields`` a flow's map rules can
    send on (``custom_fields.<name>``): the given text properties and the labels; empty ones left out."""
    found = {name: (text_of(data.get(key)) or "").strip() for name, key in names.items()}
    found["labels"] = _labels(data.get(labels)) or ""
    return {name: value for name, value in found.items() if value}


def article_to_stock(article: Mapping[str, Any]) -> StockLevel:
    """An article's StockBalance as a StockLevel: the connector writes canonical ``available`` there,
    so it reads back as both ``on_hand`` and ``available``."""
    what = f"article {article.get('Id')!r:.60}"
    balance = to_decimal(article.get("StockBalance")) or Decimal(0)
    return build(StockLevel, what, sku=_required(article, "Number", what), on_hand=balance, available=balance)


_STREET = re.compile(r"^(?P<street>.*?\S)\s+(?P<number>\d+)\s*(?P<suffix>[^\s\d]\S*)?$")


def join_street(address: Address) -> str:
    """``street house_number+suffix`` on one line, as eAccounting's Address1 holds it."""
    number = f"{address.house_number}{address.house_number_suffix}".strip()
    return " ".join(part for part in (address.street.strip(), number) if part)


def split_street(line: str) -> tuple[str, str, str]:
    """``"Kerkstraat 12A"`` → ``("Kerkstraat", "12", "A")``; a line without a number is all street."""
    match = _STREET.match(line.strip())
    if not match:
        return line.strip(), "", ""
    return match["street"].strip(), match["number"], match["suffix"] or ""


def _country(value: Any) -> str | None:
    value = (text_of(value) or "").strip().upper()
    return value if re.fullmatch(r"[A-Z]{2}", value) else None


def _address_props(prefix: str, address: Address | None, what: str, *, required: bool) -> dict[str, Any]:
    address = address or Address()
    props = {
        f"{prefix}Address1": join_street(address),
        f"{prefix}Address2": address.line2,
        f"{prefix}PostalCode": address.postcode,
        f"{prefix}City": address.city,
        f"{prefix}CountryCode": address.country,
    }
    out: dict[str, Any] = {}
    for prop, value in props.items():
        must = required and prop in (f"{prefix}PostalCode", f"{prefix}City")
        out[prop] = _text(value, prop, CUSTOMER_LIMITS[prop], what, required=must)
    return out


def _language(value: str | None, what: str) -> str | None:
    if not value:
        return None
    code = re.split(r"[-_]", value.strip())[0].lower()
    if len(code) != 2:
        raise RecordError(f"{what}: language {value!r} is not a 2-letter code, as SalesDocumentLanguage needs")
    return code


def customer_fields(
    customer: Customer, fields: Iterable[str], *, terms_of_payment_id: str | None = None
) -> dict[str, Any]:
    """The CustomerApi properties holding the canonical ``fields`` of ``customer`` (others are left out)."""
    what = f"customer {customer.key()!r}"
    fields = set(fields)
    out: dict[str, Any] = {}

    def text(prop: str, value: str | None, *, required: bool = False) -> None:
        """Set ``prop`` to the checked string."""
        out[prop] = _text(value, prop, CUSTOMER_LIMITS[prop], what, required=required)

    if "kind" in fields:
        out["IsPrivatePerson"] = customer.kind == "person"
    if "name" in fields:
        text("Name", customer.name, required=True)
    if "email" in fields:
        text("EmailAddress", customer.email)
    if "phone" in fields:
        text("Telephone", customer.phone)
    if "contact" in fields:
        contact = customer.contact if customer.kind == "company" else None
        text("ContactPersonName", contact.full_name if contact else None)
        text("ContactPersonEmail", contact.email if contact else None)
        text("ContactPersonPhone", contact.phone if contact else None)
    if "billing_address" in fields:
        out.update(_address_props("Invoice", customer.billing_address, what, required=True))
    if "shipping_address" in fields:
        out.update(_address_props("Delivery", customer.shipping_address, what, required=False))
    if "vat_number" in fields:
        text("VatNumber", customer.vat_number)
    if "coc_number" in fields:
        text("CorporateIdentityNumber", customer.coc_number)
    if "customer_number" in fields and customer.customer_number:
        # never cleared: eAccounting numbers a customer itself when none is given
        text("CustomerNumber", customer.customer_number)
    if "language" in fields:
        out["SalesDocumentLanguage"] = _language(customer.language, what)
    if "currency" in fields:
        text("CurrencyCode", customer.currency)
    if terms_of_payment_id:
        out["TermsOfPaymentId"] = terms_of_payment_id
    return out


def new_customer(customer: Customer, *, terms_of_payment_id: str) -> dict[str, Any]:
    """The body of ``POST /v2/customers`` for ``customer``."""
    body = customer_fields(customer, CUSTOMER_FIELDS, terms_of_payment_id=terms_of_payment_id)
    body = {key: value for key, value in body.items() if value is not None}
    body["IsActive"] = True
    return body


def _address_from(data: Mapping[str, Any], prefix: str) -> Address:
    street, number, suffix = split_street(text_of(data.get(f"{prefix}Address1")) or "")
    return Address(
        street=street,
        house_number=number,
        house_number_suffix=suffix,
        line2=text_of(data.get(f"{prefix}Address2")) or "",
        postcode=text_of(data.get(f"{prefix}PostalCode")) or "",
        city=text_of(data.get(f"{prefix}City")) or "",
        country=_country(data.get(f"{prefix}CountryCode")),
    )


def api_to_customer(data: Mapping[str, Any]) -> Customer:
    """A CustomerApi object as a canonical Customer."""
    what = f"customer {data.get('Id')!r:.60}"
    private = bool(data.get("IsPrivatePerson"))
    text = {key: text_of(value) for key, value in data.items()}  # properties that are not strings read as absent
    contact = None
    if not private and any(text.get(p) for p in CUSTOMER_FIELDS["contact"]):
        first, _, last = (text.get("ContactPersonName") or "").strip().partition(" ")
        contact = Contact(
            first_name=first,
            last_name=last.strip(),
            email=text.get("ContactPersonEmail") or None,
            phone=text.get("ContactPersonPhone") or None,
        )
    delivery = any(text.get(p) for p in CUSTOMER_FIELDS["shipping_address"])
    currency = (text.get("CurrencyCode") or "").upper()
    return build(
        Customer,
        what,
        kind="person" if private else "company",
        name=_required(data, "Name", what),
        email=text.get("EmailAddress") or None,
        phone=text.get("Telephone") or text.get("MobilePhone") or None,
        contact=contact,
        billing_address=_address_from(data, "Invoice"),
        shipping_address=_address_from(data, "Delivery") if delivery else None,
        vat_number=text.get("VatNumber") or None,
        coc_number=text.get("CorporateIdentityNumber") or None,
        customer_number=text.get("CustomerNumber") or None,
        language=(text.get("SalesDocumentLanguage") or "").lower() or None,
        currency=currency if re.fullmatch(r"[A-Z]{3}", currency) else None,
        custom_fields=_customer_extras(data),
    )


def _customer_extras(data: Mapping[str, Any]) -> dict[str, str]:
    """A customer's website, GLN, webshop number, note, labels and terms of payment (its name) as custom fields."""
    found = _extras(
        data,
        {"website": "WwwAddress", "gln": "EdiGlnNumber", "webshop_customer_number": "WebshopCustomerNumber", "note": "Note"},
        "CustomerLabels",
    )
    terms = data.get("TermsOfPayment")
    if isinstance(terms, dict) and (text_of(terms.get("Name")) or "").strip():
        found["terms_of_payment"] = str(terms["Name"]).strip()
    return found


def normalize_product(product: Product, *, truncate_names: bool = False) -> Product:
    """``product`` as eAccounting will store it: cents, a name cut (or rejected) at 50 characters."""
    what = f"article {product.sku!r}"
    _text(product.sku, "Number", ARTICLE_LIMITS["Number"], what, required=True)
    return product.model_copy(
        update={
            "name": _text(product.name, "Name", ARTICLE_LIMITS["Name"], what, required=True, truncate=truncate_names),
            "price_excl_tax": price(product.price_excl_tax, "NetPrice", what),
            "price_incl_tax": price(product.price_incl_tax, "GrossPrice", what),
            "purchase_price": price(product.purchase_price, "PurchasePrice", what, bounded=False),
            "tax_rate": _plain(product.tax_rate) if product.tax_rate is not None else None,
            "quantity": stock_balance(product.quantity, what) if product.quantity is not None else None,
        }
    )


def normalize_stock(stock: StockLevel) -> StockLevel:
    """``stock`` with eAccounting's 2 decimals."""
    what = f"stock of article {stock.sku!r}"
    return stock.model_copy(
        update={name: stock_balance(getattr(stock, name), what) for name in ("on_hand", "reserved", "available")}
    )


def normalize_customer(customer: Customer) -> Customer:
    """``customer`` as it reads back from eAccounting (one address line, no region, 2-letter
    language, no contact for a person); RecordError if eAccounting would reject it."""
    return api_to_customer(customer_fields(customer, CUSTOMER_FIELDS))
