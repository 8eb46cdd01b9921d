"""Sales bookings end to end through the daemon's engine: eAccounting's vouchers of booked invoices
become Visma.net journal transactions ("verkoopboeking"), the accounts mapped by the flow's ``map``
rule, never booked twice: not on a second run, not when the links are lost (a crash between the
create and the link, a restored state file), not when a create's answer is lost."""

from __future__ import annotations

import contextlib
import sqlite3
from decimal import Decimal
from typing import Any

import pytest
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_visma_net import VismaNetConnector

from apicenterd.config import load
from apicenterd.registry import load_registry
from apicenterd.testing import serve_app
from apicenterd.testing.settle import run_once

pytestmark = pytest.mark.anyio

ACCOUNTS = {"1510": "1500", "2611": "2700", "3001": "3000", "3002": "3000", "3003": "3000", "3004": "3000", "3005": "3010"}
"""eAccounting's (simulated) accounts → Visma.net's chart: receivables, output VAT, revenue per coding."""


def writes(app: Any) -> list[tuple[str, str]]:
    return [r for r in app.state.sim.requests if r[0] in ("POST", "PUT", "PATCH", "DELETE")]


async def twice(resolved: Any, flow: str, target: Any) -> Any:
    """Run ``flow``; then again, which must write nothing to ``target``."""
    first = await run_once(resolved, flow)
    assert first.status == "ok", first.error
    assert first.counts["failed"] == 0, first.counts
    target.state.sim.requests.clear()
    second = await run_once(resolved, flow)
    assert second.status == "ok", second.error
    assert second.counts["created"] == 0 and second.counts["updated"] == 0, second.counts
    assert writes(target) == []
    return first


def bookings_flow(**extra: Any) -> dict[str, dict[str, Any]]:
    flow = {
        "source": "eaccounting",
        "target": "vismanet",
        "entity": "journal",
        "interval": "1h",
        "map": [{"field": "lines.*.account", "from": "lines.*.account", "map": ACCOUNTS}],
    }
    return {"bookings": {**flow, **extra}}


def book_invoices(sim: Any, n: int, *, credit_every: int = 0) -> list[dict[str, Any]]:
    """``n`` booked invoices for the seeded customers (every ``credit_every``-th a credit invoice)."""
    customers = sorted(sim.customers.values(), key=lambda c: c["CustomerNumber"])
    articles = sorted(sim.articles.values(), key=lambda a: a["Number"])
    invoices = []
    for i in range(n):
        rows = [{"ArticleId": articles[(i + k) % len(articles)]["Id"], "Quantity": 1 + k, "UnitPrice": 10 + i} for k in range(2)]
        body = {
            "CustomerId": customers[i % len(customers)]["Id"],
            "EuThirdParty": False,
            "RotReducedInvoicingType": 0,
            "Rows": rows,
            "InvoiceDate": f"2024-05-{1 + i % 28:02d}",
        }
        if credit_every and (i + 1) % credit_every == 0:
            body["IsCreditInvoice"] = True
        invoices.append(sim.documents.write_invoice(body))
    return invoices


@pytest.fixture
def bookings(tmp_path, write_pair_config):
    """``start(invoices, flows, vn=...)``: both simulators served, ``invoices`` booked in eAccounting
    (every third a credit invoice) and one manual voucher; returns (ea_app, vn_app, resolved)."""

    def start(invoices: int, flows: dict[str, dict[str, Any]], vn: dict | None = None):
        ea_app = EAccountingConnector.simulator(seed=5, records=4, customers=3)
        book_invoices(ea_app.state.sim, invoices, credit_every=3)
        ea_app.state.sim.vouchers.write_manual(
            {
                "VoucherDate": "2024-05-03",
                "VoucherText": "Rent",
                "Rows": [{"AccountNumber": 5010, "DebitAmount": 500}, {"AccountNumber": 1930, "CreditAmount": 500}],
            }
        )
        vn_app = VismaNetConnector.simulator(seed=5, accounts=tuple(sorted(set(ACCOUNTS.values()))), **(vn or {}))
        ea_url = stack.enter_context(serve_app(ea_app))
        vn_url = stack.enter_context(serve_app(vn_app))
        return ea_app, vn_app, load(write_pair_config(tmp_path, ea_url, vn_url, flows), load_registry())

    with contextlib.ExitStack() as stack:
        yield start


def booked(vn: Any) -> dict[str, list[dict[str, Any]]]:
    """Visma.net's journal transactions by the reference number on their lines."""
    out: dict[str, list[dict[str, Any]]] = {}
    for batch in vn.state.sim.journal.values():
        refs = {line["referenceNumber"] for line in batch["journalTransactionLines"]}
        assert len(refs) == 1, refs
        out.setdefault(refs.pop(), []).append(batch)
    return out


def expected(ea: Any) -> dict[str, tuple[Decimal, dict[str, Decimal]]]:
    """Per sales voucher (by entry number): its total and the net amount per mapped account, from eAccounting's store."""
    out = {}
    for voucher in ea.state.sim.vouchers.store.values():
        if voucher["VoucherType"] not in (14, 15):
            continue
        number = f"{voucher['NumberAndNumberSeries']}-{voucher['VoucherDate'][:10].replace('-', '')}"
        net: dict[str, Decimal] = {}
        for row in voucher["Rows"]:
            account = ACCOUNTS[str(row["AccountNumber"])]
            net[account] = net.get(account, Decimal(0)) + Decimal(str(row["DebitAmount"])) - Decimal(str(row["CreditAmount"]))
        out[number] = (sum(Decimal(str(r["DebitAmount"])) for r in voucher["Rows"]), net)
    return out


async def test_booked_sales_become_journal_transactions_once(bookings):
    ea, vn, resolved = bookings(7, bookings_flow())
    first = await twice(resolved, "bookings", vn)
    want = expected(ea)
    assert first.counts["created"] == len(want) == 7
    got = booked(vn)
    assert sorted(got) == sorted(want)  # the manual voucher (rent) is not a sale
    for number, batches in got.items():
        assert len(batches) == 1, f"{number} booked {len(batches)} times"
        lines = batches[0]["journalTransactionLines"]
        total = sum(Decimal(str(line["debitAmountInCurrency"])) for line in lines)
        net: dict[str, Decimal] = {}
        for line in lines:
            delta = Decimal(str(line["debitAmountInCurrency"])) - Decimal(str(line["creditAmountInCurrency"]))
            net[line["accountNumber"]] = net.get(line["accountNumber"], Decimal(0)) + delta
        assert (total, net) == want[number]
    assert any(net["1500"] < 0 for _, net in want.values())  # credit invoices are in it, booked the other way


async def test_lost_links_and_a_rerun_book_nothing_twice(bookings):
    ea, vn, resolved = bookings(4, bookings_flow())
    first = await run_once(resolved, "bookings")
    assert first.status == "ok" and first.counts["created"] == 4, first.counts
    # a crash between Visma.net's 201 and the link, for every entry: the links and cursors are gone
    # (the tokens stay: eAccounting's refresh token rotated)
    with sqlite3.connect(resolved.state_path) as db:
        assert db.execute("DELETE FROM links").rowcount == 4
        db.execute("DELETE FROM cursors")
    vn.state.sim.requests.clear()
    again = await run_once(resolved, "bookings")
    assert again.status == "ok" and again.counts["created"] == 0, again.counts
    assert again.counts["unchanged"] == 4 and again.counts["failed"] == 0, again.counts  # found by reference, linked
    assert writes(vn) == [] and all(len(b) == 1 for b in booked(vn).values())
    # a new booking is picked up on the next run, the others stay as they are
    book_invoices(ea.state.sim, 1)
    third = await run_once(resolved, "bookings")
    assert third.counts["created"] == 1 and len(booked(vn)) == 5 and all(len(b) == 1 for b in booked(vn).values())


async def test_an_account_the_map_lacks_is_a_record_error_naming_it(bookings):
    accounts = {k: v for k, v in ACCOUNTS.items() if k != "2611"}
    flows = bookings_flow(map=[{"field": "lines.*.account", "from": "lines.*.account", "map": accounts}])
    ea, vn, resolved = bookings(2, flows)
    result = await run_once(resolved, "bookings")
    assert result.counts["failed"] == 2 and result.counts["created"] == 0, result.counts  # both have VAT on 2611
    assert writes(vn) == []


async def test_without_a_map_visma_net_refuses_the_accounts_it_lacks_and_books_nothing(bookings):
    ea, vn, resolved = bookings(2, {"bookings": {k: v for k, v in bookings_flow()["bookings"].items() if k != "map"}})
    result = await run_once(resolved, "bookings")
    assert result.counts["failed"] == 2 and result.counts["created"] == 0, result.counts
    assert vn.state.sim.journal == {}


async def test_faults_are_retried_without_booking_twice(bookings):
    ea, vn, resolved = bookings(3, bookings_flow())
    sim = vn.state.sim
    sim.fail_next(503, times=2, path_prefix="/v1/journaltransaction")
    first = await run_once(resolved, "bookings")
    assert first.status == "ok" and first.counts["created"] == 3, (first.counts, first.error)
    assert all(len(b) == 1 for b in booked(vn).values()) and len(booked(vn)) == 3
