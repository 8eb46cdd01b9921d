"""Sales invoices into Exact Online: ``salesinvoice/SalesInvoices`` with their lines (a document sink)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from apicenterd import DocumentRequest, DocumentSink, Found, Invoice, RecordError

from .client import odata_string

if TYPE_CHECKING:
    from .connector import ExactOnlineConnector

__all__ = ["INVOICE_TYPES", "ExactInvoiceSettings", "SalesInvoiceSink", "invoice_body", "normalize_invoice"]

INVOICE_TYPES = {"sales": 8020, "direct": 8023}
"""SalesInvoice ``Type``: 8020 a sales invoice, 8023 a direct sales invoice [unverified: Exact's docs as remembered]."""

CENT = Decimal("0.01")


class ExactInvoiceSettings(BaseModel):
    """``target_settings`` of an invoice flow into Exact Online."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    journal: str = Field(default="70", min_length=1, description="Sales journal (Journal) of the invoices")
    type: Literal["sales", "direct"] = Field(default="sales", description="A sales invoice (8020) or a direct sales invoice (8023)")


def normalize_invoice(invoice: Invoice) -> Invoice:
    """Prices excl. VAT in cents (Exact's UnitPrice is excl. VAT); RecordError for a line whose VAT is unknown."""
    lines = []
    for n, line in enumerate(invoice.lines, 1):
        price = line.unit_price
        if invoice.prices_include_tax:
            if line.tax_rate is None:
                raise RecordError(f"invoice {invoice.number}: line {n} has a price incl. VAT and no tax_rate")
            price = price / (1 + line.tax_rate / 100)
        lines.append(line.model_copy(update={"unit_price": price.quantize(CENT), "discount": line.discount.quantize(CENT)}))
    return invoice.model_copy(update={"lines": tuple(lines), "prices_include_tax": False})


def invoice_body(request: DocumentRequest[Invoice], *, settings: ExactInvoiceSettings, gl_accounts: dict[str, str]) -> dict[str, Any]:
    """The SalesInvoice for a normalized invoice: the debtor as InvoiceTo and OrderedBy, the number in YourRef."""
    invoice = request.record
    rows = []
    for line in invoice.lines:
        row: dict[str, Any] = {
            "Description": (line.description or line.sku or "")[:60],
            "Quantity": line.quantity,
            "UnitPrice": line.unit_price,
        }
        if line.sku:
            row["Item"] = request.article(line.sku).id
        gross = line.unit_price * line.quantity
        if line.discount and gross:
            row["Discount"] = (line.discount / gross).quantize(Decimal("0.0001"))  # Exact: a fraction of the line
        if line.tax_code:
            row["VATCode"] = line.tax_code
        if line.account:
            row["GLAccount"] = gl_accounts[line.account]
        if line.cost_centre:
            row["CostCenter"] = line.cost_centre
        rows.append(row)
    if not rows:
        raise RecordError(f"invoice {invoice.number}: no lines")
    body: dict[str, Any] = {
        "Journal": settings.journal,
        "Type": INVOICE_TYPES[settings.type],
        "InvoiceTo": request.customer_id,
        "OrderedBy": request.customer_id,
        "YourRef": invoice.number,
        "Description": f"Invoice {invoice.number}"[:60],
        "Currency": invoice.currency,
        "OrderDate": invoice.invoice_date,
        "SalesInvoiceLines": rows,
    }
    if invoice.due_date:
        body["DueDate"] = invoice.due_date
    if invoice.payment_terms:
        body["PaymentCondition"] = invoice.payment_terms
    return body


class SalesInvoiceSink(DocumentSink[Invoice]):
    """Invoices as SalesInvoices (drafts in Exact until processed there), the source's number in
    ``YourRef``, by which :meth:`find` looks an invoice up before one is created."""

    connector: ExactOnlineConnector
    documents = frozenset({"invoice_draft", "invoice"})  # both a SalesInvoice, a draft until processed in Exact
    settings = ExactInvoiceSettings
    written_fields = frozenset({"number", "invoice_date", "due_date", "currency", "lines", "payment_terms", "customer_id"})
    field_map = {
        "number": "YourRef",
        "customer_id": "InvoiceTo, OrderedBy",
        "invoice_date": "OrderDate",
        "due_date": "DueDate",
        "payment_terms": "PaymentCondition",
        "lines.*.sku": "SalesInvoiceLines[].Item (by Code)",
        "lines.*.quantity": "SalesInvoiceLines[].Quantity",
        "lines.*.unit_price": "SalesInvoiceLines[].UnitPrice (excl. VAT)",
        "lines.*.tax_code": "SalesInvoiceLines[].VATCode",
        "lines.*.account": "SalesInvoiceLines[].GLAccount (by code)",
        "lines.*.cost_centre": "SalesInvoiceLines[].CostCenter",
    }

    async def find(self, number: str) -> Found | None:
        found = await self.connector.client.first(
            "salesinvoice/SalesInvoices",
            select=("InvoiceID", "YourRef", "InvoiceNumber", "Status"),
            filter=f"YourRef eq {odata_string(number)}",
            what=f"invoice {number}",
        )
        invoice = next((i for i in found if i.get("YourRef") == number), None)
        return None if invoice is None else Found(id=str(invoice["InvoiceID"]), vendor=invoice)

    async def create(self, request: DocumentRequest[Invoice]) -> str:
        conn = self.connector
        settings = request.settings if isinstance(request.settings, ExactInvoiceSettings) else ExactInvoiceSettings()
        accounts = [line.account for line in request.record.lines if line.account]
        gl = await conn.gl_accounts(accounts) if accounts else {}
        body = invoice_body(request, settings=settings, gl_accounts=gl)
        created = await conn.client.create("salesinvoice/SalesInvoices", body, what=f"invoice {request.record.number}", key="InvoiceID")
        return str(created["InvoiceID"])

    def normalize(self, record: Invoice) -> Invoice:
        return normalize_invoice(record)
