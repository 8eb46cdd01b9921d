"""eAccounting's booked sales (``GET /v2/vouchers`` of the sales voucher types) as journal entries.

Why vouchers and not ``/v2/customerinvoices``: a voucher is the booking itself, with the
account numbers, debit and credit of every row (``VoucherRowApi``), so it can be booked in
another ledger as it is; an invoice carries only amounts and VAT rates, and its accounts would
have to be guessed from the article codings. Every booked customer invoice has its voucher
(``CustomerInvoiceApi.VoucherId``/``VoucherNumber``); ``VoucherApi.VoucherType`` says which
vouchers are sales (swagger: 14 = CustomerInvoiceDebit, 15 = CustomerInvoiceCredit,
23/24 = CustomerQuickInvoiceDebit/Credit, 27 = IZettleVoucher).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Mapping
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from apicenterd import Change, JournalEntry, JournalLine, RecordError, Source

from . import mapping
from .client import cursor_of, filter_since

if TYPE_CHECKING:
    from .connector import EAccountingConnector

__all__ = ["SALES_VOUCHER_TYPES", "VOUCHER_TYPES", "VoucherSource", "api_to_journal_entry", "entry_number"]

MIN_CURSOR = "0001-01-01T00:00:00.000000Z"

VOUCHER_TYPES = {
    2: "ManualVoucher", 5: "BankAccountTransferDeposit", 6: "BankAccountTransferWithDrawal", 7: "PurchaseReceipt",
    8: "VatReport", 9: "SieImport", 10: "BankTransactionDeposit", 11: "BankTransactionWithdrawal",
    12: "SupplierInvoiceDebit", 13: "SupplierInvoiceCredit", 14: "CustomerInvoiceDebit", 15: "CustomerInvoiceCredit",
    16: "ClaimOnCardAcquirer", 17: "TaxReturn", 18: "AllocationPeriod", 19: "AllocationPeriodCorrection",
    20: "InventoryEvent", 21: "EmployerReport", 22: "Payslip", 23: "CustomerQuickInvoiceDebit",
    24: "CustomerQuickInvoiceCredit", 25: "SupplierQuickInvoiceDebit", 26: "SupplierQuickInvoiceCredit", 27: "IZettleVoucher",
}  # fmt: skip
"""``VoucherApi.VoucherType`` (the 2018 swagger's enum and its description)."""

SALES_VOUCHER_TYPES = (14, 15, 23, 24)
"""The voucher types read as sales bookings by default: customer invoices and quick invoices, debit and credit."""


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _amount(row: Mapping[str, Any], name: str, where: str) -> Decimal:
    value = row.get(name)
    if value is None:
        return Decimal(0)
    amount = mapping.to_decimal(value)
    if amount is None or isinstance(value, bool):
        raise RecordError(f"{where}.{name}: {value!r} is not an amount")
    return amount


def _voucher_date(voucher: Mapping[str, Any], where: str) -> date:
    text = _text(voucher.get("VoucherDate"))
    if not text:
        raise RecordError(f"{where}: no VoucherDate")
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise RecordError(f"{where}.VoucherDate: {text!r} is not a date (yyyy-mm-dd)") from None


def entry_number(voucher: Mapping[str, Any]) -> str:
    """The journal entry's number: ``NumberAndNumberSeries`` and the voucher date (``F12-20240105``).

    eAccounting numbers vouchers per series and fiscal year, so the number alone can come back
    the next year; a date belongs to one fiscal year, so number and date together are unique."""
    where = f"voucher {voucher.get('Id')}"
    number = "".join(_text(voucher.get("NumberAndNumberSeries")).split())
    if not number:
        raise RecordError(f"{where}: no NumberAndNumberSeries")
    return f"{number}-{_voucher_date(voucher, where):%Y%m%d}"


def api_to_journal_entry(voucher: Mapping[str, Any], *, currency: str) -> JournalEntry:
    """A VoucherApi as a JournalEntry: each row's ``AccountNumber`` with its ``DebitAmount`` and
    ``CreditAmount`` (rows with neither left out), ``TransactionText`` as the line's description,
    ``VoucherText`` as the entry's. Vouchers are booked in the company's currency."""
    number = entry_number(voucher)
    where = f"voucher {number}"
    rows = voucher.get("Rows")
    if not isinstance(rows, list) or not rows:
        raise RecordError(f"{where}: no Rows")
    lines = []
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RecordError(f"{where}.Rows[{n}]: not an object")
        account = row.get("AccountNumber")
        if account is None or isinstance(account, bool) or not str(account).strip():
            raise RecordError(f"{where}.Rows[{n}]: no AccountNumber")
        debit = _amount(row, "DebitAmount", f"{where}.Rows[{n}]")
        credit = _amount(row, "CreditAmount", f"{where}.Rows[{n}]")
        # the swagger's minimum is 0; should a negative amount come, it is the other side
        if debit < 0:
            debit, credit = Decimal(0), credit - debit
        if credit < 0:
            debit, credit = debit - credit, Decimal(0)
        if not debit and not credit:
            continue
        lines.append(JournalLine(account=str(account).strip(), debit=debit, credit=credit, description=_text(row.get("TransactionText"))))
    if not lines:
        raise RecordError(f"{where}: every row is zero")
    return JournalEntry(
        number=number,
        entry_date=_voucher_date(voucher, where),
        currency=currency,
        description=_text(voucher.get("VoucherText")),
        lines=tuple(lines),
    )


class VoucherSource(Source[JournalEntry]):
    """Sales bookings: vouchers changed since a ``ModifiedUtc`` cursor (``$filter=ModifiedUtc ge ...``)
    whose ``VoucherType`` is one of the connection's ``voucher_types``; the others are read and
    passed over. Paged in the API's default order, so (as the other eAccounting sources) every
    change carries ``since`` and the last one the newest ``ModifiedUtc`` seen."""

    connector: EAccountingConnector
    field_map = {
        "number": "NumberAndNumberSeries + VoucherDate (yyyymmdd)",
        "entry_date": "VoucherDate",
        "description": "VoucherText",
        "lines.*.account": "Rows[].AccountNumber",
        "lines.*.debit": "Rows[].DebitAmount",
        "lines.*.credit": "Rows[].CreditAmount",
        "lines.*.description": "Rows[].TransactionText",
    }

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        api = conn.client
        wanted = frozenset(conn.settings.voucher_types)
        currency = await conn.currency()
        params = {"$filter": filter_since(since, "ModifiedUtc")} if since and since > MIN_CURSOR else {}
        floor = since or MIN_CURSOR
        newest = floor
        pending: Change | None = None
        async for data in api.pages("/v2/vouchers", what=f"vouchers changed since {since or 'the beginning'}", params=params):
            for item in data:
                try:
                    if item.get("ModifiedUtc"):
                        newest = max(newest, cursor_of(item["ModifiedUtc"]))
                except ValueError as exc:
                    conn.context.log.warning("eaccounting_bad_modified_utc", id=item.get("Id"), error=str(exc))
                if item.get("VoucherType") not in wanted:
                    continue
                if pending is not None:
                    yield pending
                pending = self.mapped(str(item.get("Id")), floor, functools.partial(api_to_journal_entry, item, currency=currency))
        if pending is not None:
            yield dataclasses.replace(pending, cursor=newest)
