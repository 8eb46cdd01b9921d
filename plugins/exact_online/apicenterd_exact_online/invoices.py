"""Sales invoices into Exact Online: ``salesinvoice/SalesInvoices`` with their lines (a document sink)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from apicenterd import DocumentRequest, DocumentSink, Found, Invoice, RecordError, RetryableError

from .client import odata_string

if TYPE_CHECKING:
    from .connector import ExactOnlineConnector

__all__ = ["INVOICE_TYPES", "ExactInvoiceSettings", "SalesInvoiceSink", "invoice_body", "normalize_invoice", "printed_body"]

INVOICE_TYPES = {"sales": 8020, "direct": 8023}
"""SalesInvoice ``Type``: 8020 a sales invoice, 8023 a direct sales invoice (the SDK model file:
``SalesInvoice.Type`` "8020 - Sales invoices, 8021 - Sales credit note, 8023 - Direct sales invoice,
8024 - Direct credit note")."""

CENT = Decimal("0.01")
LOOKED_UP_MAX = 1000
"""Look-ups find() keeps for the create() that follows it, at most."""
PROCESSED = 50
"""SalesInvoice ``Status`` of a processed invoice (the SDK: "50 - Processed")."""


class ExactInvoiceSettings(BaseModel):
    """``target_settings`` of an invoice flow into Exact Online."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    journal: str = Field(default="70", min_length=1, description="Sales journal (Journal) of the invoices")
    type: Literal["sales", "direct"] = Field(default="sales", description="A sales invoice (8020) or a direct sales invoice (8023)")
    process: bool = Field(
        default=False,
        description="Process (print) each invoice in Exact right after creating it (salesinvoice/PrintedSalesInvoices): "
        "it gets its invoice number and date and is booked; false: it stays open for a person to process",
    )
    send_email: bool = Field(default=False, description="When processing: Exact e-mails the invoice to the customer (SendEmailToCustomer)")
    document_layout: str | None = Field(
        default=None, description="When processing: the ID of the document layout (DocumentLayout); unset: Exact's default"
    )


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
        if line.cost_centre or invoice.cost_centre:
            row["CostCenter"] = line.cost_centre or invoice.cost_centre
        if line.cost_unit or invoice.cost_unit:
            row["CostUnit"] = line.cost_unit or invoice.cost_unit
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
    # Exact keeps the payment method on the payment condition (Cashflow.PaymentCondition.PaymentMethod:
    # B on credit, I collection, K cash); a SalesInvoice has no method of its own. So the flow's
    # payment_methods map names a payment condition, used when the terms gave none.
    condition = invoice.payment_terms or invoice.payment_method
    if condition:
        body["PaymentCondition"] = condition
    return body


def printed_body(invoice_id: str, invoice: Invoice, settings: ExactInvoiceSettings) -> dict[str, Any]:
    """The PrintedSalesInvoice that processes an open SalesInvoice (its official date: the invoice's)."""
    body: dict[str, Any] = {"InvoiceID": invoice_id, "InvoiceDate": invoice.invoice_date, "SendEmailToCustomer": settings.send_email}
    if settings.document_layout:
        body["DocumentLayout"] = settings.document_layout
    return body


class SalesInvoiceSink(DocumentSink[Invoice]):
    """Invoices as SalesInvoices (drafts in Exact until processed there), the source's number in
    ``YourRef``, by which :meth:`find` looks an invoice up before one is created."""

    connector: ExactOnlineConnector
    documents = frozenset({"invoice_draft", "invoice"})  # both a SalesInvoice, a draft until processed in Exact
    settings = ExactInvoiceSettings
    written_fields = frozenset(
        {
            "number",
            "invoice_date",
            "due_date",
            "currency",
            "lines",
            "payment_terms",
            "payment_method",
            "customer_id",
            "cost_centre",
            "cost_unit",
        }
    )
    field_map = {
        "number": "YourRef",
        "customer_id": "InvoiceTo, OrderedBy",
        "invoice_date": "OrderDate (PrintedSalesInvoices.InvoiceDate when processed)",
        "due_date": "DueDate",
        "payment_terms": "PaymentCondition",
        "payment_method": "PaymentCondition (when no terms: a condition carries Exact's payment method)",
        "cost_centre": "SalesInvoiceLines[].CostCenter (lines without their own)",
        "cost_unit": "SalesInvoiceLines[].CostUnit (lines without their own)",
        "lines.*.cost_unit": "SalesInvoiceLines[].CostUnit",
        "lines.*.sku": "SalesInvoiceLines[].Item (by Code)",
        "lines.*.quantity": "SalesInvoiceLines[].Quantity",
        "lines.*.unit_price": "SalesInvoiceLines[].UnitPrice (excl. VAT)",
        "lines.*.tax_code": "SalesInvoiceLines[].VATCode",
        "lines.*.account": "SalesInvoiceLines[].GLAccount (by code)",
        "lines.*.cost_centre": "SalesInvoiceLines[].CostCenter",
    }

    def __init__(self, connector: ExactOnlineConnector) -> None:
        super().__init__(connector)
        self._looked_up: dict[str, dict[str, Any] | None] = {}

    async def _existing(self, number: str) -> dict[str, Any] | None:
        found = await self.connector.client.first(
            "salesinvoice/SalesInvoices",
            select=("InvoiceID", "YourRef", "InvoiceNumber", "Status", "Type"),
            filter=f"YourRef eq {odata_string(number)}",
            what=f"invoice {number}",
        )
        return next((i for i in found if i.get("YourRef") == number), None)

    async def find(self, number: str) -> Found | None:
        """The invoice with ``YourRef`` ``number``. An open *direct* invoice (Type 8023, not processed:
        ``Status`` not 50) is not "found": the order process then calls :meth:`create`, which knows the
        flow's ``process`` setting, takes that invoice instead of making a second one, and processes it
        when the flow processes invoices (the retry of a direct invoice whose processing failed). An
        open sales invoice (8020) is found: it is meant to be processed in Exact by a person."""
        invoice = await self._existing(number)
        if invoice is None or (invoice.get("Type") == INVOICE_TYPES["direct"] and invoice.get("Status") != PROCESSED):
            if len(self._looked_up) >= LOOKED_UP_MAX:  # orders that failed before their create: let them go
                self._looked_up.clear()
            self._looked_up[number] = invoice  # for the create() the order process calls next: no second look-up
            return None
        return Found(id=str(invoice["InvoiceID"]), vendor=invoice)

    async def create(self, request: DocumentRequest[Invoice]) -> str:
        conn = self.connector
        settings = request.settings if isinstance(request.settings, ExactInvoiceSettings) else ExactInvoiceSettings()
        what = f"invoice {request.record.number}"
        number = request.record.number
        # made before: never a second one (what find() just saw, used once: a retry looks again)
        existing = self._looked_up.pop(number) if number in self._looked_up else await self._existing(number)
        if existing is not None:
            invoice_id = str(existing["InvoiceID"])
            conn.context.log.info("exact_invoice_exists_open", invoice=request.record.number, invoice_id=invoice_id)
        else:
            accounts = [line.account for line in request.record.lines if line.account]
            gl = await conn.gl_accounts(accounts) if accounts else {}
            body = invoice_body(request, settings=settings, gl_accounts=gl)
            created = await conn.client.create("salesinvoice/SalesInvoices", body, what=what, key="InvoiceID")
            invoice_id = str(created["InvoiceID"])
        if settings.process and request.kind == "invoice" and (existing is None or existing.get("Status") != PROCESSED):
            try:
                await conn.client.create(
                    "salesinvoice/PrintedSalesInvoices",
                    printed_body(invoice_id, request.record, settings),
                    what=f"processing {what}",
                    key="InvoiceID",
                )
            except RetryableError:
                raise  # retried: create() again takes the open invoice and processes it (or sees it processed)
            except Exception as exc:  # the invoice exists, a retry must not make a second one
                # the next run finds it open by YourRef (find() says None, create() takes it) and processes it
                raise RecordError(
                    f"{what}: created in Exact Online as {invoice_id} but not processed; the next run processes it: {exc}"
                ) from exc
        return invoice_id

    def normalize(self, record: Invoice) -> Invoice:
        return normalize_invoice(record)
