"""Sales bookings: the vouchers of booked invoices as journal entries (source), the simulator's
vouchers against the swagger, the mapping's errors."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import jsonschema
import pytest
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_eaccounting.sim_vouchers import RECEIVABLES_ACCOUNT, VAT_ACCOUNT, VOUCHER_RULES
from apicenterd_eaccounting.voucher_source import api_to_journal_entry, entry_number
from pydantic import ValidationError

from apicenterd import Entity, RecordError
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio


def nullable(node):
    """A copy of a swagger schema with null allowed wherever a type is given (ASP.NET writes unset properties as null)."""
    if isinstance(node, list):
        return [nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: nullable(v) for k, v in node.items()}
    if isinstance(node.get("type"), str):
        out["type"] = [node["type"], "null"]
        if "enum" in node:
            out["enum"] = [*node["enum"], None]
    return out


@pytest.fixture
def app():
    """Three articles, two customers (1: company, 2: private person)."""
    return EAccountingConnector.simulator(seed=11, records=3, customers=2)


def book_invoice(sim, *, credit: bool = False, quantity: int = 2) -> dict:
    """Book an invoice for the company customer with two articles at different VAT rates, as a user does."""
    customer = next(c["Id"] for c in sim.customers.values() if not c["IsPrivatePerson"])
    articles = sorted(sim.articles.values(), key=lambda a: a["Number"])
    rows = [{"ArticleId": a["Id"], "Quantity": quantity, "UnitPrice": 10 + n} for n, a in enumerate(articles[:2])]
    body = {"CustomerId": customer, "EuThirdParty": False, "RotReducedInvoicingType": 0, "Rows": rows, "InvoiceDate": "2024-05-01"}
    if credit:
        body["IsCreditInvoice"] = True
    return sim.documents.write_invoice(body)


async def read_all(conn, since=None):
    return [change async for change in conn.read(Entity.JOURNAL, since)]


async def test_a_booked_invoice_is_read_as_a_balanced_journal_entry_and_manual_vouchers_are_not(app, settings):
    sim = app.state.sim
    invoice = book_invoice(sim)
    sim.vouchers.write_manual(
        {
            "VoucherDate": "2024-05-02",
            "VoucherText": "Rent",
            "Rows": [{"AccountNumber": 5010, "DebitAmount": 100}, {"AccountNumber": 1930, "CreditAmount": 100}],
        }
    )
    async with connect(EAccountingConnector, settings, app=app) as conn:
        changes = await read_all(conn)
    assert [c.source_id for c in changes] == [invoice["VoucherId"]]
    entry = changes[0].record
    assert entry.number == f"{invoice['VoucherNumber'].replace(' ', '')}-20240501"
    assert entry.entry_date == date(2024, 5, 1) and entry.currency == "EUR"
    debit = sum(line.debit for line in entry.lines)
    assert debit == sum(line.credit for line in entry.lines) == Decimal(str(invoice["TotalAmount"]))
    by_account = {line.account: line for line in entry.lines}
    assert by_account[str(RECEIVABLES_ACCOUNT)].debit == Decimal(str(invoice["TotalAmount"]))
    assert by_account[str(VAT_ACCOUNT)].credit == Decimal(str(invoice["TotalVatAmount"]))
    assert len(entry.lines) == 4  # receivables, two revenue accounts (21 % and 9 % codings), VAT


async def test_a_credit_invoice_books_the_other_way_and_a_read_since_the_cursor_finds_it(app, settings):
    sim = app.state.sim
    book_invoice(sim)
    async with connect(EAccountingConnector, settings, app=app) as conn:
        first = await read_all(conn)
        cursor = first[-1].cursor
        credit = book_invoice(sim, credit=True, quantity=1)
        again = await read_all(conn, cursor)
    assert credit["VoucherId"] in [c.source_id for c in again]
    # (the first may come again: the filter is floored to the second, and the engine skips what did not change)
    assert again[-1].cursor > cursor
    assert sim.requests[-1] == ("GET", "/v2/vouchers")
    entry = next(c.record for c in again if c.source_id == credit["VoucherId"])
    receivable = next(line for line in entry.lines if line.account == str(RECEIVABLES_ACCOUNT))
    assert receivable.credit == abs(Decimal(str(credit["TotalAmount"]))) and receivable.debit == 0


async def test_voucher_types_choose_what_is_read(app, settings):
    sim = app.state.sim
    book_invoice(sim)
    sim.vouchers.write_manual(
        {
            "VoucherDate": "2024-05-02",
            "VoucherText": "Cash sale",
            "Rows": [{"AccountNumber": 1910, "DebitAmount": 5}, {"AccountNumber": 3001, "CreditAmount": 5}],
        }
    )
    async with connect(EAccountingConnector, {**settings, "voucher_types": [2]}, app=app) as conn:
        changes = await read_all(conn)
    assert [c.record.description for c in changes] == ["Cash sale"]


def test_an_unknown_voucher_type_is_named(settings):
    with pytest.raises(ValidationError, match="unknown VoucherType 99"):
        EAccountingConnector.Settings.model_validate({**settings, "voucher_types": [14, 99]})


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"NumberAndNumberSeries": None}, "no NumberAndNumberSeries"),
        ({"VoucherDate": "May 1st"}, "VoucherDate: 'May 1st' is not a date"),
        ({"Rows": []}, "no Rows"),
        ({"Rows": [{"DebitAmount": 5}]}, r"Rows\[0\]: no AccountNumber"),
        ({"Rows": [{"AccountNumber": 1510, "DebitAmount": "lots"}]}, r"Rows\[0\].DebitAmount: 'lots' is not an amount"),
        ({"Rows": [{"AccountNumber": 1510, "DebitAmount": 0, "CreditAmount": 0}]}, "every row is zero"),
    ],
)
def test_a_voucher_that_cannot_be_read_is_a_record_error_naming_the_field(change, error):
    voucher = {"Id": "v-1", "NumberAndNumberSeries": "F 7", "VoucherDate": "2024-01-05T00:00:00", "VoucherText": "x",
               "Rows": [{"AccountNumber": 1510, "DebitAmount": 5}, {"AccountNumber": 3001, "CreditAmount": 5}]}  # fmt: skip
    voucher.update(change)
    with pytest.raises(RecordError, match=error):
        api_to_journal_entry(voucher, currency="EUR")


def test_the_entry_number_is_the_voucher_number_and_its_date_and_negative_amounts_change_sides():
    voucher = {"Id": "v-1", "NumberAndNumberSeries": "F 7", "VoucherDate": "2024-01-05T00:00:00", "VoucherText": "x",
               "Rows": [{"AccountNumber": 1510, "DebitAmount": -5}, {"AccountNumber": 3001, "DebitAmount": 5}]}  # fmt: skip
    assert entry_number(voucher) == "F7-20240105"
    entry = api_to_journal_entry(voucher, currency="SEK")
    assert [(line.account, line.debit, line.credit) for line in entry.lines] == [("1510", 0, 5), ("3001", 5, 0)]


async def test_the_voucher_list_validates_against_the_swagger(app, authorised, swagger):
    sim = app.state.sim
    book_invoice(sim)
    client = await authorised(app)
    try:
        response = await client.get("/v2/vouchers", params={"$filter": "ModifiedUtc ge 2000-01-01T00:00:00Z"})
    finally:
        await client.aclose()
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["Data"]) == 1
    schema = swagger["paths"]["/v2/vouchers"]["get"]["responses"]["200"]["schema"]
    jsonschema.Draft4Validator({**nullable(schema), "definitions": nullable(swagger["definitions"])}).validate(body)
    assert set(VOUCHER_RULES) == set(swagger["definitions"]["VoucherApi"]["properties"]) - {"Attachments"}
    row_props = set(swagger["definitions"]["VoucherRowApi"]["properties"])
    assert all(set(row) == row_props for row in body["Data"][0]["Rows"])
