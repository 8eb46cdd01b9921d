"""Pure translation between canonical orders and invoices and eAccounting's sales documents
(OrderApi, CustomerInvoiceDraftApi, CustomerInvoiceApi) and their rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from apicenterd import Address, Invoice, InvoiceLine, Order, OrderLine, RecordError

from .mapping import build, cut, join_street, length, split_street, text_of, to_decimal

__all__ = [
    "DOCUMENT_PATHS",
    "REFERENCE_LIMITS",
    "ORDER_WRITTEN_FIELDS",
    "INVOICE_WRITTEN_FIELDS",
    "OrderSettings",
    "InvoiceSettings",
    "Article",
    "Debtor",
    "Resolved",
    "Line",
    "order_lines",
    "invoice_lines",
    "order_settings",
    "invoice_settings",
    "includes_vat",
    "unit_price",
    "discount_percentage",
    "rows",
    "totals",
    "order_body",
    "invoice_body",
    "document_to_order",
    "document_to_invoice",
    "normalize_order",
    "normalize_invoice",
]

CENT = Decimal("0.01")
DOCUMENT_PATHS: Mapping[str, str] = {
    "order": "/v2/orders",
    "invoice_draft": "/v2/customerinvoicedrafts",
    "invoice": "/v2/customerinvoices",
}
"""Where each document kind the connector creates lives."""

REFERENCE_LIMITS: Mapping[str, int] = {"order": 50, "invoice_draft": 100, "invoice": 50}
"""maxLength of YourReference (where the source's number is kept) per document kind."""

QUANTITY_DECIMALS: Mapping[str, int] = {"order": 4, "invoice_draft": 2, "invoice": 2}
"""Decimals the swagger's pattern allows in a row's Quantity, per document kind."""

MAX_ROWS = 1000  # LineNumber: minimum 0, maximum 1000
TEXT_LIMIT = 2000  # row Text
NAME_LIMIT = 50  # InvoiceCustomerName / DeliveryCustomerName
ADDRESS_LIMITS = {"Address1": 50, "Address2": 50, "PostalCode": 10, "City": 50, "CountryCode": 2}
ORDER_STATUS = {"draft": 1, "ongoing": 2}
STATUS_NAMES = {1: "draft", 2: "ongoing", 3: "shipped", 4: "invoiced"}

ORDER_WRITTEN_FIELDS = frozenset(
    {
        "number", "created_at", "currency", "customer_id", "billing_address", "shipping_address", "lines", "document",
        "cost_centre", "cost_unit",
    }
)
"""The canonical Order fields a sales document stores (YourReference, OrderDate/InvoiceDate,
currency, CustomerId, Invoice*/Delivery* addresses, Rows)."""

INVOICE_WRITTEN_FIELDS = frozenset({"number", "invoice_date", "due_date", "currency", "customer_id", "lines"})
"""The canonical Invoice fields an invoice draft or invoice stores."""


# -- flow settings ---------------------------------------------------------------------


class OrderSettings(BaseModel):
    """``target_settings`` of an order flow into eAccounting (all optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    our_reference: str | None = Field(
        default=None, max_length=50, description="OurReference on every document: the seller's reference (a name)"
    )
    delivery_method_code: str | None = Field(
        default=None, max_length=20, description="Code of a /v2/deliverymethods entry (orders and invoice drafts)"
    )
    delivery_term_code: str | None = Field(
        default=None, max_length=20, description="Code of a /v2/deliveryterms entry (orders and invoice drafts)"
    )
    order_status: Literal["draft", "ongoing"] = Field(
        default="ongoing", description="Status of a new order (1 = Draft, 2 = Ongoing)"
    )
    eu_third_party: bool = Field(default=False, description="EuThirdParty: the sale is EU triangular trade")
    note_as_text_row: bool = Field(default=False, description="Add the order's note as a last text row")


class InvoiceSettings(BaseModel):
    """``target_settings`` of an invoice flow into eAccounting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    document: Literal["invoice_draft", "invoice"] = Field(
        default="invoice_draft", description="Create invoice drafts (to check and send in eAccounting) or booked invoices"
    )
    our_reference: str | None = Field(default=None, max_length=50, description="OurReference on every invoice")
    eu_third_party: bool = Field(default=False, description="EuThirdParty: the sale is EU triangular trade")
    line_article: str | None = Field(
        default=None, max_length=40, description="Article Number for invoice lines without a SKU"
    )


def _settings(model: type[BaseModel], values: Mapping[str, Any], what: str) -> Any:
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors())
        raise RecordError(f"{what}: target_fields are not valid for eAccounting ({problems})") from None


def order_settings(order: Order) -> OrderSettings:
    """The order's ``target_fields`` as :class:`OrderSettings` (RecordError when invalid)."""
    return _settings(OrderSettings, order.target_fields, f"order {order.number}")


def invoice_settings(invoice: Invoice) -> InvoiceSettings:
    """The invoice's ``target_fields`` as :class:`InvoiceSettings` (RecordError when invalid)."""
    return _settings(InvoiceSettings, invoice.target_fields, f"invoice {invoice.number}")


# -- what the connector resolves before building a body ------------------------------------


@dataclasses.dataclass(frozen=True)
class Article:
    """What a row needs of an article: its Id, Number, Name and the VAT of its coding."""

    id: str
    number: str
    name: str
    vat_percent: Decimal | None


@dataclasses.dataclass(frozen=True)
class Debtor:
    """What a document needs of a CustomerApi object."""

    id: str
    name: str
    is_private: bool
    currency: str | None
    reverse_charge: bool
    terms_id: str | None
    address: Address
    delivery: Address | None

    @classmethod
    def from_api(cls, customer: Mapping[str, Any]) -> Debtor:
        """The debtor behind a CustomerApi object."""

        def text(prop: str) -> str:
            return text_of(customer.get(prop)) or ""  # a property that is not a string reads as absent

        def address(prefix: str) -> Address:
            street, number, suffix = split_street(text(f"{prefix}Address1"))
            country = text(f"{prefix}CountryCode").upper() or None
            return Address(
                street=street,
                house_number=number,
                house_number_suffix=suffix,
                line2=text(f"{prefix}Address2"),
                postcode=text(f"{prefix}PostalCode"),
                city=text(f"{prefix}City"),
                country=country if country and len(country) == 2 and country.isascii() and country.isalpha() else None,
            )

        delivery = address("Delivery")
        return cls(
            id=str(customer.get("Id")),
            name=text("Name"),
            is_private=bool(customer.get("IsPrivatePerson")),
            currency=text("CurrencyCode").upper() or None,
            reverse_charge=bool(customer.get("ReverseChargeOnConstructionServices")),
            terms_id=text_of(customer.get("TermsOfPaymentId")),
            address=address("Invoice"),
            delivery=delivery if delivery.city or delivery.street else None,
        )


@dataclasses.dataclass(frozen=True)
class Resolved:
    """Everything looked up in eAccounting that turns a canonical document into a body."""

    debtor: Debtor
    includes_vat: bool
    currency: str
    country: str | None = None  # the company's, when neither the document nor the debtor has one
    articles: Mapping[str, Article] = dataclasses.field(default_factory=dict)
    dimensions: Mapping[tuple[int, str], str] = dataclasses.field(default_factory=dict)
    delivery_method: Mapping[str, str] | None = None
    delivery_term: Mapping[str, str] | None = None
    due_date: date | None = None


@dataclasses.dataclass(frozen=True)
class Line:
    """An order or invoice line, as far as a sales-document row cares."""

    kind: str
    sku: str | None
    name: str
    quantity: Decimal
    unit_price: Decimal
    prices_include_tax: bool
    discount: Decimal
    tax_rate: Decimal | None
    cost_centre: str | None
    cost_unit: str | None
    text_only: bool = False  # a note: a text row with no amount


def order_lines(order: Order, settings: OrderSettings | None = None) -> list[Line]:
    """The order's lines (with the order's cost centre and unit as the default), plus the note
    as a text row when ``note_as_text_row``."""
    lines = [
        Line(
            kind=line.kind,
            sku=line.sku or None,
            name=line.name,
            quantity=line.quantity,
            unit_price=line.unit_price,
            prices_include_tax=line.prices_include_tax,
            discount=line.discount,
            tax_rate=line.tax_rate,
            cost_centre=line.cost_centre or order.cost_centre,
            cost_unit=line.cost_unit or order.cost_unit,
        )
        for line in order.lines
    ]
    if settings is not None and settings.note_as_text_row and order.note:
        lines.append(Line("note", None, order.note, Decimal(0), Decimal(0), True, Decimal(0), None, None, None, text_only=True))
    return lines


def invoice_lines(invoice: Invoice, settings: InvoiceSettings | None = None) -> list[Line]:
    """The invoice's lines; a line without a SKU takes ``line_article`` when set."""
    default_sku = settings.line_article if settings is not None else None
    return [
        Line(
            kind="product" if (line.sku or default_sku) else "fee",
            sku=line.sku or default_sku,
            name=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            prices_include_tax=invoice.prices_include_tax,
            discount=line.discount,
            tax_rate=line.tax_rate,
            cost_centre=line.cost_centre,
            cost_unit=None,
        )
        for line in invoice.lines
    ]


# -- prices, discounts, rows ---------------------------------------------------------------


def includes_vat(is_private_person: bool, show_prices_excl_vat_pc: bool) -> bool:
    """Whether a new document's unit prices include VAT: eAccounting decides it on creation,
    for private persons unless the company shows them prices excl. VAT (``IncludesVat``)."""
    return is_private_person and not show_prices_excl_vat_pc


def _cents(value: Decimal, what: str = "document") -> Decimal:
    try:
        return value.quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than an amount can have
        raise RecordError(f"{what}: amount {value:.6} is out of range for eAccounting") from None


def unit_price(price: Decimal, *, given_incl: bool, want_incl: bool, rate: Decimal | None, what: str) -> Decimal:
    """``price`` in the document's price mode, rounded to cents (VAT added or taken out at ``rate`` %)."""
    if given_incl == want_incl:
        return _cents(price, what)
    if rate is None:
        mode = "including" if given_incl else "excluding"
        raise RecordError(f"{what}: the price is {mode} VAT, the eAccounting document is not, and the line has no tax_rate to convert it")
    if not 0 <= rate <= 100:
        raise RecordError(f"{what}: tax_rate {rate} is not a VAT percentage (0 to 100)")
    factor = 1 + rate / 100
    return _cents(price / factor if given_incl else price * factor, what)


def discount_percentage(line: Line, what: str) -> Decimal | None:
    """The line's discount amount as eAccounting's DiscountPercentage (a fraction 0–1, 4 decimals)."""
    if not line.discount:
        return None
    gross = abs(line.quantity * line.unit_price)
    if line.discount < 0 or gross == 0 or abs(line.discount) > gross:
        raise RecordError(f"{what}: discount {line.discount} cannot be a DiscountPercentage of {gross} (0 to 100 %)")
    return (abs(line.discount) / gross).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def _quantity(value: Decimal, decimals: int, what: str) -> Decimal:
    try:
        rounded = value.quantize(Decimal(1).scaleb(-decimals))
    except InvalidOperation:
        raise RecordError(f"{what}: quantity {value:.6} is out of range for eAccounting") from None
    if value != rounded:
        raise RecordError(f"{what}: quantity {value} has more than the {decimals} decimals eAccounting allows")
    return value


def _line_what(number: str, n: int, line: Line) -> str:
    return f"{number}: line {n} ({line.name or line.sku or line.kind})"


def missing_skus(lines: Iterable[Line], articles: Mapping[str, Article]) -> list[str]:
    """The SKUs of ``lines`` that are not among the found ``articles``, in order, once each."""
    missing: list[str] = []
    for line in lines:
        if line.sku and line.sku not in articles and line.sku not in missing:
            missing.append(line.sku)
    return missing


def rows(lines: Iterable[Line], kind: str, resolved: Resolved, number: str) -> list[dict[str, Any]]:
    """The Rows of a ``kind`` document (``order``, ``invoice_draft``, ``invoice``) for ``lines``.

    Article rows carry ArticleId, Text, Quantity, UnitPrice (in the document's price mode),
    DiscountPercentage and the cost centre items; a line with no SKU and no amount becomes a
    text row; a shipping, discount or fee line with an amount but no SKU is a RecordError
    (eAccounting books amounts only on article rows).
    """
    out: list[dict[str, Any]] = []
    for n, line in enumerate(lines, start=1):
        what = _line_what(number, n, line)
        if n > MAX_ROWS:
            raise RecordError(f"{number}: {n} rows, eAccounting allows {MAX_ROWS} (LineNumber 0–1000)")
        text = (line.name or "").strip()
        if length(text) > TEXT_LIMIT:
            raise RecordError(
                f"{what}: Text is {length(text)} characters, eAccounting allows {TEXT_LIMIT} (UTF-16 code units, as .NET counts)"
            )
        article = resolved.articles.get(line.sku) if line.sku else None
        if line.sku and article is None:
            raise RecordError(f"{what}: no article with Number {line.sku!r} in eAccounting")
        if article is None:
            if line.kind == "product":
                raise RecordError(f"{what}: a product line needs a SKU (an eAccounting article Number)")
            if not line.text_only and line.quantity * line.unit_price - line.discount != 0:
                option = {"shipping": "shipping_sku", "discount": "discount_sku"}.get(line.kind)
                hint = f"set the order flow's options.{option} to an eAccounting article Number" if option else "give the line a SKU"
                raise RecordError(f"{what}: eAccounting books amounts only on article rows; {hint}")
            out.append(_text_row(kind, n, text or line.kind))
            continue
        rate = line.tax_rate if line.tax_rate is not None else article.vat_percent
        price = unit_price(line.unit_price, given_incl=line.prices_include_tax, want_incl=resolved.includes_vat, rate=rate, what=what)
        if line.kind == "discount":
            price = -abs(price)
        row: dict[str, Any] = {
            "ArticleId": article.id,
            "Text": text or article.name,
            "Quantity": _quantity(line.quantity, QUANTITY_DECIMALS[kind], what),
            "UnitPrice": price,
        }
        percentage = discount_percentage(line, what)
        if percentage is not None:
            row["DiscountPercentage"] = percentage
        for dimension, code in ((1, line.cost_centre), (2, line.cost_unit)):
            if code:
                item = resolved.dimensions.get((dimension, code))
                if item is None:
                    raise RecordError(f"{what}: no active item {code!r} in eAccounting cost centre {dimension}")
                row[f"CostCenterItemId{dimension}"] = item
        out.append(_row(kind, n, row, is_text=False))
    return out


def _row(kind: str, n: int, row: dict[str, Any], *, is_text: bool) -> dict[str, Any]:
    if kind == "order":
        return {"LineNumber": n, "IsTextRow": is_text, **row, "IsWorkCost": False, "EligibleForReverseChargeOnVat": False}
    if kind == "invoice_draft":
        return {"LineNumber": n, "IsTextRow": is_text, **row, "ReversedConstructionServicesVatFree": False}
    return row  # CustomerInvoiceRowApi: LineNumber and IsTextRow are read-only; a text row has no ArticleId


def _text_row(kind: str, n: int, text: str) -> dict[str, Any]:
    return _row(kind, n, {"Text": cut(text, TEXT_LIMIT)}, is_text=True)


def totals(body_rows: Iterable[Mapping[str, Any]], vat_by_article: Mapping[str, Decimal | None], included: bool) -> tuple[Decimal, Decimal]:
    """``(Amount, VatAmount)`` of rows: Amount includes VAT; VAT per row at its article's rate, in cents."""
    amount = vat = Decimal(0)
    for row in body_rows:
        if not row.get("ArticleId"):
            continue
        quantity, price = to_decimal(row.get("Quantity")) or Decimal(0), to_decimal(row.get("UnitPrice")) or Decimal(0)
        line = _cents(quantity * price * (1 - (to_decimal(row.get("DiscountPercentage")) or Decimal(0))))
        rate = vat_by_article.get(row["ArticleId"]) or Decimal(0)
        line_vat = _cents(line * rate / (100 + rate)) if included else _cents(line * rate / 100)
        amount += line if included else line + line_vat
        vat += line_vat
    return amount, vat


# -- document headers ----------------------------------------------------------------------


def _text(value: str | None, prop: str, limit: int | None, what: str, *, required: bool = False) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise RecordError(f"{what}: {prop} is empty, eAccounting requires it")
        return None
    if limit is not None and length(value) > limit:
        raise RecordError(f"{what}: {prop} is {length(value)} characters, eAccounting allows {limit} (UTF-16 code units, as .NET counts)")
    return value


def _address(prefix: str, address: Address, name: str, what: str, *, required: bool, country: str | None) -> dict[str, Any]:
    values = {
        f"{prefix}CustomerName": (name, NAME_LIMIT),
        f"{prefix}Address1": (join_street(address), ADDRESS_LIMITS["Address1"]),
        f"{prefix}Address2": (address.line2, ADDRESS_LIMITS["Address2"]),
        f"{prefix}PostalCode": (address.postcode, ADDRESS_LIMITS["PostalCode"]),
        f"{prefix}City": (address.city, ADDRESS_LIMITS["City"]),
        f"{prefix}CountryCode": (address.country or country, ADDRESS_LIMITS["CountryCode"]),
    }
    must = {f"{prefix}CustomerName", f"{prefix}PostalCode", f"{prefix}City", f"{prefix}CountryCode"} if required else set()
    return {prop: _text(value, prop, limit, what, required=prop in must) for prop, (value, limit) in values.items()}


def _addresses(billing: Address, shipping: Address | None, name: str | None, resolved: Resolved, what: str) -> dict[str, Any]:
    debtor = resolved.debtor
    # a document without a usable invoice address is sent to the debtor's
    invoice = billing if (billing.city or billing.postcode) else debtor.address
    body = _address("Invoice", invoice, name or debtor.name, what, required=True, country=debtor.address.country or resolved.country)
    if shipping is not None:
        body.update(_address("Delivery", shipping, name or debtor.name, what, required=False, country=None))
    return body


def _day(value: date | datetime) -> str:
    return (value.date() if isinstance(value, datetime) else value).isoformat()


def _references(number: str, kind: str, our_reference: str | None, what: str) -> dict[str, Any]:
    return {
        "YourReference": _text(number, "YourReference (the source's number)", REFERENCE_LIMITS[kind], what, required=True),
        "OurReference": _text(our_reference, "OurReference", 50, what),
    }


def _delivery(resolved: Resolved) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if resolved.delivery_method:
        body["DeliveryMethodCode"], body["DeliveryMethodName"] = resolved.delivery_method["Code"], resolved.delivery_method.get("Name")
    if resolved.delivery_term:
        body["DeliveryTermCode"], body["DeliveryTermName"] = resolved.delivery_term["Code"], resolved.delivery_term.get("Name")
    return body


def _compact(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value is not None}


def order_body(order: Order, kind: str, resolved: Resolved, settings: OrderSettings) -> dict[str, Any]:
    """The POST body of a ``kind`` document (``order``, ``invoice_draft`` or ``invoice``) for ``order``."""
    what = f"order {order.number}"
    body_rows = rows(order_lines(order, settings), kind, resolved, what)
    name = order.customer.name if order.customer is not None else None
    body: dict[str, Any] = {"CustomerId": resolved.debtor.id, "RotReducedInvoicingType": 0, "EuThirdParty": settings.eu_third_party}
    body.update(_references(order.number, kind, settings.our_reference, what))
    if kind == "order":
        amount, vat = totals(body_rows, {a.id: a.vat_percent for a in resolved.articles.values()}, resolved.includes_vat)
        body.update(
            CurrencyCode=resolved.currency,
            Amount=amount,
            VatAmount=vat,
            RoundingsAmount=Decimal(0),
            CustomerIsPrivatePerson=resolved.debtor.is_private,
            ReverseChargeOnConstructionServices=resolved.debtor.reverse_charge,
            OrderDate=_day(order.created_at),
            Status=ORDER_STATUS[settings.order_status],
        )
    else:
        body["InvoiceDate"] = _day(order.created_at)
    if kind in ("order", "invoice_draft"):
        body["CustomerIsPrivatePerson"] = resolved.debtor.is_private
        body.update(_addresses(order.billing_address, order.shipping_address, name, resolved, what))
        body.update(_delivery(resolved))
    elif resolved.due_date is not None:
        body["DueDate"] = resolved.due_date.isoformat()
    body["Rows"] = body_rows
    return _compact(body)


def invoice_body(invoice: Invoice, kind: str, resolved: Resolved, settings: InvoiceSettings) -> dict[str, Any]:
    """The POST body of an invoice draft or invoice for the canonical ``invoice``."""
    what = f"invoice {invoice.number}"
    body: dict[str, Any] = {
        "CustomerId": resolved.debtor.id,
        "RotReducedInvoicingType": 0,
        "EuThirdParty": settings.eu_third_party,
        "InvoiceDate": invoice.invoice_date.isoformat(),
    }
    body.update(_references(invoice.number, kind, settings.our_reference, what))
    if kind == "invoice_draft":
        customer = invoice.customer
        body["CustomerIsPrivatePerson"] = resolved.debtor.is_private
        body.update(
            _addresses(
                customer.billing_address if customer else Address(),
                customer.shipping_address if customer else None,
                customer.name if customer else None,
                resolved,
                what,
            )
        )
    else:
        due = invoice.due_date or resolved.due_date
        if due is not None:
            body["DueDate"] = due.isoformat()
    body["Rows"] = rows(invoice_lines(invoice, settings), kind, resolved, what)
    return _compact(body)


# -- reading documents back ----------------------------------------------------------------


def _date_of(value: Any, prop: str, what: str) -> date | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except ValueError:
        raise RecordError(f"{what}: {prop} {value!r:.40} is not an ISO date") from None


def _document_address(doc: Mapping[str, Any], prefix: str) -> Address | None:
    def text(prop: str) -> str:
        return text_of(doc.get(f"{prefix}{prop}")) or ""  # a property that is not a string reads as absent

    if not any(text(p) for p in ("Address1", "PostalCode", "City")):
        return None
    street, number, suffix = split_street(text("Address1"))
    country = text("CountryCode").upper()
    return Address(
        street=street,
        house_number=number,
        house_number_suffix=suffix,
        line2=text("Address2"),
        postcode=text("PostalCode"),
        city=text("City"),
        country=country if len(country) == 2 and country.isascii() and country.isalpha() else None,
    )


def _document_lines(doc: Mapping[str, Any], included: bool, what: str) -> tuple[OrderLine, ...]:
    rows = doc.get("Rows") or []
    if not isinstance(rows, list) or not all(isinstance(row, Mapping) for row in rows):
        raise RecordError(f"{what}: Rows is not a list of objects")
    lines = []
    for row in sorted(rows, key=lambda r: to_decimal(r.get("LineNumber")) or 0):
        if row.get("IsTextRow") or not row.get("ArticleId"):
            continue  # a text row has no amount: not a canonical line
        quantity = to_decimal(row.get("Quantity")) or Decimal(0)
        price = to_decimal(row.get("UnitPrice")) or Decimal(0)
        percentage = to_decimal(row.get("DiscountPercentage")) or Decimal(0)
        line_what = f"{what}: row {row.get('LineNumber')!r:.20}"
        lines.append(
            build(
                OrderLine,
                line_what,
                sku=text_of(row.get("ArticleNumber")) or None,
                name=text_of(row.get("Text")) or "",
                quantity=quantity,
                unit_price=price,
                prices_include_tax=included,
                discount=_cents(abs(quantity * price) * percentage, line_what),
            )
        )
    return tuple(lines)


def _document_includes_vat(doc: Mapping[str, Any], show_prices_excl_vat_pc: bool) -> bool:
    if isinstance(doc.get("IncludesVat"), bool):
        return doc["IncludesVat"]
    return includes_vat(bool(doc.get("CustomerIsPrivatePerson")), show_prices_excl_vat_pc)


def document_to_order(doc: Mapping[str, Any], kind: str, *, show_prices_excl_vat_pc: bool = False) -> Order:
    """An OrderApi / CustomerInvoiceDraftApi / CustomerInvoiceApi object as a canonical Order
    (``document`` says which; text rows are left out)."""
    what = f"{kind} {doc.get('Id')!r:.60}"
    included = _document_includes_vat(doc, show_prices_excl_vat_pc)
    prop = "OrderDate" if kind == "order" else ("InvoiceDate" if doc.get("InvoiceDate") else "CreatedUtc")
    when = _date_of(doc.get(prop), prop, what)
    if kind == "order":
        status = doc.get("Status")
        status = STATUS_NAMES.get(status, "unknown") if isinstance(status, int) else "unknown"
        total, tax = doc.get("Amount"), doc.get("VatAmount")
    else:
        status, total, tax = ("draft" if kind == "invoice_draft" else "invoiced"), doc.get("TotalAmount"), doc.get("TotalVatAmount")
    currency = (text_of(doc.get("CurrencyCode")) or text_of(doc.get("InvoiceCurrencyCode")) or "EUR").upper()
    return build(
        Order,
        what,
        number=text_of(doc.get("YourReference")) or str(doc.get("Id")),
        status=status,
        created_at=datetime.combine(when or date(1970, 1, 1), time(), tzinfo=timezone.utc),
        currency=currency if len(currency) == 3 and currency.isascii() and currency.isalpha() else "EUR",
        billing_address=_document_address(doc, "Invoice") or Address(),
        shipping_address=_document_address(doc, "Delivery"),
        lines=_document_lines(doc, included, what),
        total=to_decimal(total) or Decimal(0),
        total_tax=to_decimal(tax),
        document=kind,
        customer_id=text_of(doc.get("CustomerId")),
    )


def document_to_invoice(doc: Mapping[str, Any], kind: str, *, show_prices_excl_vat_pc: bool = False) -> Invoice:
    """A CustomerInvoiceDraftApi / CustomerInvoiceApi object as a canonical Invoice."""
    what = f"{kind} {doc.get('Id')!r:.60}"
    included = _document_includes_vat(doc, show_prices_excl_vat_pc)
    currency = (text_of(doc.get("CurrencyCode")) or text_of(doc.get("InvoiceCurrencyCode")) or "EUR").upper()
    prop = "InvoiceDate" if doc.get("InvoiceDate") else "CreatedUtc"
    return build(
        Invoice,
        what,
        number=text_of(doc.get("YourReference")) or str(doc.get("Id")),
        invoice_date=_date_of(doc.get(prop), prop, what) or date(1970, 1, 1),
        due_date=_date_of(doc.get("DueDate"), "DueDate", what),
        currency=currency if len(currency) == 3 and currency.isascii() and currency.isalpha() else "EUR",
        lines=tuple(
            InvoiceLine(sku=line.sku, description=line.name, quantity=line.quantity, unit_price=line.unit_price, discount=line.discount)
            for line in _document_lines(doc, included, what)
        ),
        total=to_decimal(doc.get("TotalAmount")) or Decimal(0),
        total_tax=to_decimal(doc.get("TotalVatAmount")),
        prices_include_tax=included,
        paid=kind == "invoice" and to_decimal(doc.get("RemainingAmount")) == 0,
        customer_id=text_of(doc.get("CustomerId")),
    )


# -- normalize ---------------------------------------------------------------------------------


def _normal_address(address: Address | None, prefix: str, what: str) -> Address | None:
    if address is None:
        return None
    values = {
        "Address1": join_street(address),
        "Address2": address.line2,
        "PostalCode": address.postcode,
        "City": address.city,
    }
    for prop, value in values.items():
        _text(value, f"{prefix}{prop}", ADDRESS_LIMITS[prop], what)
    street, number, suffix = split_street(values["Address1"])
    return Address(
        street=street,
        house_number=number,
        house_number_suffix=suffix,
        line2=address.line2.strip(),
        postcode=address.postcode.strip(),
        city=address.city.strip(),
        country=address.country,
    )


def normalize_order(order: Order) -> Order:
    """``order`` as eAccounting stores it: cents, the order date, one-line addresses; RecordError
    naming the property and limit for what eAccounting would reject."""
    kind = order.document or "order"
    what = f"order {order.number}"
    if kind not in DOCUMENT_PATHS:
        raise RecordError(f"{what}: eAccounting cannot create a {kind!r} (it creates: {', '.join(DOCUMENT_PATHS)})")
    settings = order_settings(order)
    _text(order.number, "YourReference (the order number)", REFERENCE_LIMITS[kind], what, required=True)
    if order.customer is not None:
        _text(order.customer.name, "InvoiceCustomerName", NAME_LIMIT, what)
    if len(order.lines) + (1 if settings.note_as_text_row and order.note else 0) > MAX_ROWS:
        raise RecordError(f"{what}: {len(order.lines)} lines, eAccounting allows {MAX_ROWS} rows")
    if settings.note_as_text_row and order.note and length(order.note.strip()) > TEXT_LIMIT:
        raise RecordError(f"{what}: the note is {length(order.note.strip())} characters, a text row allows {TEXT_LIMIT}")
    lines = []
    for n, line in enumerate(order.lines, start=1):
        line_what = f"{what}: line {n} ({line.name or line.sku or line.kind})"
        _text(line.name, "Text", TEXT_LIMIT, line_what)
        _quantity(line.quantity, QUANTITY_DECIMALS[kind], line_what)
        lines.append(
            line.model_copy(
                update={
                    "name": line.name.strip(),
                    "unit_price": _cents(line.unit_price, line_what),
                    "discount": _cents(line.discount, line_what),
                    "total": _cents(line.total, line_what) if line.total is not None else None,
                }
            )
        )
    return order.model_copy(
        update={
            "created_at": datetime.combine(order.created_at.date(), time(), tzinfo=order.created_at.tzinfo),
            "billing_address": _normal_address(order.billing_address, "Invoice", what),
            "shipping_address": _normal_address(order.shipping_address, "Delivery", what),
            "lines": tuple(lines),
            "total": _cents(order.total, what),
            "total_tax": _cents(order.total_tax, what) if order.total_tax is not None else None,
        }
    )


def normalize_invoice(invoice: Invoice) -> Invoice:
    """``invoice`` as eAccounting stores it (cents); RecordError for what it would reject."""
    settings = invoice_settings(invoice)
    what = f"invoice {invoice.number}"
    _text(invoice.number, "YourReference (the invoice number)", REFERENCE_LIMITS[settings.document], what, required=True)
    if len(invoice.lines) > MAX_ROWS:
        raise RecordError(f"{what}: {len(invoice.lines)} lines, eAccounting allows {MAX_ROWS} rows")
    lines = []
    for n, line in enumerate(invoice.lines, start=1):
        line_what = f"{what}: line {n} ({line.description or line.sku or 'line'})"
        _text(line.description, "Text", TEXT_LIMIT, line_what)
        _quantity(line.quantity, QUANTITY_DECIMALS[settings.document], line_what)
        update = {
            "description": line.description.strip(),
            "unit_price": _cents(line.unit_price, line_what),
            "discount": _cents(line.discount, line_what),
        }
        lines.append(line.model_copy(update=update))
    return invoice.model_copy(
        update={
            "lines": tuple(lines),
            "total": _cents(invoice.total, what),
            "total_tax": _cents(invoice.total_tax, what) if invoice.total_tax is not None else None,
        }
    )
