"""The simulator's vouchers (``/v2/vouchers``): every booked customer invoice gets its voucher, as
in eAccounting, and manual vouchers can be posted; the swagger's ``VoucherApi`` shape.

The simulated chart of accounts is a demo's, not a vendor fact: receivables 1510, output VAT
2611, revenue the coding's ``DomesticSalesSubjectToVatAccountNumber`` (3001 and up)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .sim_rules import Rule, VendorError, parse_time

if TYPE_CHECKING:  # pragma: no cover
    from .simulator import Simulator

__all__ = ["RECEIVABLES_ACCOUNT", "VAT_ACCOUNT", "VOUCHER_RULES", "Vouchers"]

RECEIVABLES_ACCOUNT = 1510
VAT_ACCOUNT = 2611

VOUCHER_RULES: Mapping[str, Rule] = {
    "Id": Rule("uuid", read_only=True),
    "VoucherDate": Rule("datetime", required=True),
    "VoucherText": Rule("string", required=True, max_length=100),
    "Rows": Rule("array", required=True),
    "NumberAndNumberSeries": Rule("string", read_only=True),
    "NumberSeries": Rule("string"),
    "ModifiedUtc": Rule("datetime", read_only=True),
    "VoucherType": Rule("integer", read_only=True),
    "SourceId": Rule("uuid", read_only=True),
}
"""The ``VoucherApi`` properties (what ``$filter`` may name)."""

_ROW_FIELDS = (
    "AccountNumber", "AccountDescription", "DebitAmount", "CreditAmount", "TransactionText", "CostCenterItemId1",
    "CostCenterItemId2", "CostCenterItemId3", "VatCodeId", "VatCodeAndPercent", "Quantity", "Weight", "DeliveryDate",
    "HarvestYear", "ProjectId",
)  # fmt: skip

CENT = Decimal("0.01")


def _row(account: int, debit: Decimal, credit: Decimal, text: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(_ROW_FIELDS)
    row.update(AccountNumber=account, AccountDescription=f"Account {account}", DebitAmount=debit, CreditAmount=credit)
    row["TransactionText"] = text[:50]
    return row


class Vouchers:
    """The vouchers of one simulated company (``sim.vouchers.store``), numbered per series."""

    def __init__(self, sim: Simulator):
        self.sim = sim
        self.store: dict[str, dict[str, Any]] = {}
        self.manual_number = 0

    def _store(self, voucher_id: str, body: dict[str, Any]) -> dict[str, Any]:
        voucher = {"Attachments": None, "NumberSeries": None, "SourceId": None, **body}
        voucher.update(Id=voucher_id, ModifiedUtc=self.sim._utc_now())
        self.store[voucher_id] = voucher
        return voucher

    def book_invoice(self, invoice: Mapping[str, Any]) -> dict[str, Any]:
        """The voucher of a booked customer invoice (``invoice["VoucherId"]``): receivables debit
        (credit for a credit invoice), revenue per coding account and output VAT on the other side."""
        credit_note = bool(invoice.get("IsCreditInvoice"))
        total = Decimal(invoice.get("TotalAmount") or 0)
        vat = Decimal(invoice.get("TotalVatAmount") or 0)
        revenue: dict[int, Decimal] = defaultdict(Decimal)
        for row in invoice.get("Rows") or []:
            if row.get("IsTextRow") or not row.get("ArticleId"):
                continue
            article = self.sim.articles.get(row["ArticleId"]) or {}
            coding = self.sim.codings.get(str(article.get("CodingId")), {})
            revenue[int(coding.get("DomesticSalesSubjectToVatAccountNumber") or 3001)] += Decimal(row.get("AmountNoVat") or 0)
        text = f"Customer invoice {invoice.get('InvoiceNumber')}, {invoice.get('InvoiceCustomerName') or ''}".strip(", ")
        zero = Decimal(0)

        def side(amount: Decimal, debit: bool) -> tuple[Decimal, Decimal]:
            debit = debit != credit_note
            return (abs(amount).quantize(CENT), zero) if debit else (zero, abs(amount).quantize(CENT))

        rows = [_row(RECEIVABLES_ACCOUNT, *side(total, True), text)]
        rows += [_row(account, *side(amount, False), text) for account, amount in sorted(revenue.items()) if amount]
        if vat:
            rows.append(_row(VAT_ACCOUNT, *side(vat, False), text))
        return self._store(
            str(invoice["VoucherId"]),
            {
                "VoucherDate": invoice.get("InvoiceDate"),
                "VoucherText": text[:100],
                "Rows": rows,
                "NumberAndNumberSeries": str(invoice.get("VoucherNumber") or "").replace(" ", ""),
                "NumberSeries": "F",
                "VoucherType": 15 if credit_note else 14,
                "SourceId": invoice.get("Id"),
            },
        )

    def write_manual(self, body: Any) -> dict[str, Any]:
        """POST /v2/vouchers: a manual voucher (type 2), balanced, every row with an account."""
        if not isinstance(body, dict):
            raise VendorError(400, 2000, "DataModelValidationError - the request body is not a VoucherApi object")
        text = body.get("VoucherText")
        if not isinstance(text, str) or len(text) > 100:
            raise VendorError(400, 2000, "VoucherText: required, at most 100 characters")
        try:
            when = parse_time(str(body.get("VoucherDate") or ""))
        except ValueError:
            raise VendorError(400, 2000, "VoucherDate: required, yyyy-mm-dd") from None
        rows = body.get("Rows")
        if not isinstance(rows, list) or not rows:
            raise VendorError(400, 2000, "Rows: required")
        debit = credit = Decimal(0)
        stored = []
        for n, row in enumerate(rows):
            account = row.get("AccountNumber") if isinstance(row, dict) else None
            if not isinstance(account, int) or account < 1:
                raise VendorError(400, 2000, f"Rows[{n}].AccountNumber: required, a positive integer")
            d, c = Decimal(str(row.get("DebitAmount") or 0)), Decimal(str(row.get("CreditAmount") or 0))
            debit, credit = debit + d, credit + c
            stored.append(_row(account, d, c, str(row.get("TransactionText") or "")))
        if debit != credit:
            raise VendorError(400, 2000, f"The voucher is not balanced: debit {debit}, credit {credit}")
        self.manual_number += 1
        return self._store(
            self.sim._id(),
            {
                "VoucherDate": when.strftime("%Y-%m-%dT00:00:00"),
                "VoucherText": text,
                "Rows": stored,
                "NumberAndNumberSeries": f"A{self.manual_number}",
                "NumberSeries": "A",
                "VoucherType": 2,
            },
        )
