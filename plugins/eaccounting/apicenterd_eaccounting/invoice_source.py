"""eAccounting customer invoices (``/v2/customerinvoices``) as a source: changed since a
``ModifiedUtc`` cursor, each with its customer (read once per run)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from apicenterd import Change, Customer, Invoice, InvoiceLine, RecordError, Source

from . import mapping
from .order_source import changes_with_customers

if TYPE_CHECKING:
    from .connector import EAccountingConnector

__all__ = ["InvoiceSource", "api_to_invoice"]


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _number(value: Any) -> Decimal:
    number = mapping.to_decimal(value)
    return number if number is not None else Decimal(0)


def _day(value: Any, what: str) -> date | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except ValueError:
        raise RecordError(f"{what}: {value!r} is not a date") from None


def api_to_invoice(invoice: Mapping[str, Any], customer: Customer | None) -> Invoice:
    """A CustomerInvoiceApi as an Invoice: ``InvoiceNumber`` its number, rows with an
    ``ArticleNumber`` as article lines (``DiscountPercentage`` a fraction: 0.1 = 10 %), others as
    text lines; ``TotalAmount`` the total incl. VAT; paid when ``RemainingAmount`` is 0; unit prices
    incl. VAT when ``IncludesVat``."""
    number = invoice.get("InvoiceNumber")
    if number is None or isinstance(number, bool):
        raise RecordError(f"invoice {invoice.get('Id')}: no InvoiceNumber")
    what = f"invoice {number}"
    when = _day(invoice.get("InvoiceDate") or invoice.get("CreatedUtc"), f"{what}: InvoiceDate")
    if when is None:
        raise RecordError(f"{what}: no InvoiceDate")
    lines = []
    for row in invoice.get("Rows") or []:
        if not isinstance(row, dict):
            raise ValueError(f"{what}: a row is not an object")
        quantity, price = _number(row.get("Quantity")), _number(row.get("UnitPrice"))
        sku = _text(row.get("ArticleNumber")) or None
        share = _number(row.get("DiscountPercentage")) if sku else Decimal(0)
        vat = mapping.to_decimal(row.get("PercentVat")) if sku else None  # a fraction: 0.25 = 25 %
        lines.append(
            InvoiceLine(
                kind="product" if sku else "text",
                sku=sku,
                description=_text(row.get("Text")),
                quantity=quantity if sku else Decimal(0),
                unit_price=price,
                discount=(quantity * price * share).quantize(Decimal("0.01")),
                tax_rate=vat * 100 if vat is not None else None,
            )
        )
    remaining = mapping.to_decimal(invoice.get("RemainingAmount"))
    return Invoice(
        number=str(number),
        invoice_date=when,
        due_date=_day(invoice.get("DueDate"), f"{what}: DueDate"),
        currency=_text(invoice.get("CurrencyCode")).upper() or "EUR",
        customer=customer,
        lines=tuple(lines),
        total=_number(invoice.get("TotalAmount")),
        total_tax=mapping.to_decimal(invoice.get("TotalVatAmount")),
        prices_include_tax=bool(invoice.get("IncludesVat")),
        paid=remaining is not None and remaining == 0,
        payment_terms=_text(invoice.get("TermsOfPaymentId")) or None,  # an Id: a target's terms come from the flow's payment_terms map
    )


class InvoiceSource(Source[Invoice]):
    """Customer invoices changed since a ``ModifiedUtc`` cursor (``$filter=ModifiedUtc ge ...``),
    each with its customer (read once per run); paged and cursored as :class:`~.order_source.OrderSource`."""

    connector: EAccountingConnector
    field_map = {
        "number": "InvoiceNumber",
        "invoice_date": "InvoiceDate",
        "due_date": "DueDate",
        "customer": "CustomerId (GET /v2/customers/{id})",
        "lines.*.sku": "Rows[].ArticleNumber",
        "lines.*.quantity": "Rows[].Quantity",
        "lines.*.unit_price": "Rows[].UnitPrice",
        "total": "TotalAmount",
        "paid": "RemainingAmount = 0",
        "payment_terms": "TermsOfPaymentId",
    }

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        async for change in changes_with_customers(self, since, "/v2/customerinvoices", "customer invoices", api_to_invoice):
            yield change
