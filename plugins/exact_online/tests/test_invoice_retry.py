"""A direct invoice is created, then processed (``PrintedSalesInvoices``): when the processing fails
after the create, a later run finds the open invoice and processes it, never making a second one."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest
from apicenterd_exact_online import ExactOnlineConnector
from apicenterd_exact_online.simulator import DIVISION

from apicenterd.config import Config
from apicenterd.config.resolve import resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore
from apicenterd.testing import serve_app

eaccounting = pytest.importorskip("apicenterd_eaccounting")
EAccountingConnector = eaccounting.EAccountingConnector

pytestmark = pytest.mark.anyio

PRINTED = f"/api/v1/{DIVISION}/salesinvoice/PrintedSalesInvoices"
INVOICES = f"/api/v1/{DIVISION}/salesinvoice/SalesInvoices"


@pytest.fixture
def servers():
    eacc_app = EAccountingConnector.simulator(seed=21, records=4, customers=2)
    exact_app = ExactOnlineConnector.simulator(seed=21, records=0)
    with contextlib.ExitStack() as stack:
        yield eacc_app, exact_app, stack.enter_context(serve_app(eacc_app)), stack.enter_context(serve_app(exact_app))


def _resolved(tmp_path, eacc_url, exact_url, process=True):
    options = {"source_entity": "invoices", "missing_products": "create", "revenue_accounts": {"default": "8000"}}
    raw = {
        "daemon": {"log_level": "warning", "metrics_address": "", "shutdown_timeout": 5},
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {
            "eaccounting": {"connector": "eaccounting", **EAccountingConnector.demo_settings(eacc_url)},
            "exact": {"connector": "exact_online", **ExactOnlineConnector.demo_settings(exact_url)},
        },
        "flows": {
            "invoices": {
                "source": "eaccounting",
                "target": "exact",
                "entity": "invoices",
                "interval": "1h",
                "options": options,
                "target_settings": {"type": "direct", "process": process},
            }
        },
    }
    return resolve(Config(**raw), load_registry(), tmp_path / "apicenterd.toml")


async def _run(resolved):
    store = SQLiteStore(resolved.state_path)
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0.01)
    try:
        return await engine.run_flow("invoices")
    finally:
        await engine.aclose()
        await store.close()


def _dead_letters(resolved) -> list[str]:
    with sqlite3.connect(resolved.state_path) as db:
        return [str(row[0]) for row in db.execute("SELECT error FROM dead_letters")]


def _backoff_over(resolved) -> None:
    """The failed record's retry pause is over (as if a day went by)."""
    with sqlite3.connect(resolved.state_path) as db:
        db.execute("UPDATE dead_letters SET last_failed_at = last_failed_at - 86400")


def _posts(sim, path) -> int:
    return sum(1 for method, target in sim.requests if method == "POST" and target == path)


def _book(eacc):
    company = next(c for c in eacc.customers.values() if not c["IsPrivatePerson"])
    article = next(iter(eacc.articles.values()))
    rows = [{"ArticleId": article["Id"], "Quantity": 2, "UnitPrice": 10}]
    return eacc.documents.write_invoice(
        {"CustomerId": company["Id"], "EuThirdParty": False, "RotReducedInvoicingType": 0, "Rows": rows, "InvoiceDate": "2026-05-01"}
    )


async def test_an_invoice_whose_processing_failed_is_processed_by_the_next_run_not_made_again(tmp_path, servers):
    eacc_app, exact_app, eacc_url, exact_url = servers
    eacc, sim = eacc_app.state.sim, exact_app.state.sim
    source = _book(eacc)
    resolved = _resolved(tmp_path, eacc_url, exact_url)
    error = {"error": {"code": "", "message": {"lang": "", "value": "The period is closed"}}}
    sim.fail_next(400, error, times=20, path_prefix=PRINTED)  # between the create and the processing

    first = await _run(resolved)
    assert first.status == "ok", first.error
    assert first.counts["failed"] == 1 and first.counts["created"] == 0, first.counts
    looked_up = [t for m, t in sim.requests if m == "GET" and t == INVOICES]
    assert len(looked_up) == 1  # find() looked; create() used what it saw
    (invoice,) = sim.data["salesinvoice/SalesInvoices"].values()
    assert invoice["YourRef"] == str(source["InvoiceNumber"]) and invoice["Status"] != 50
    (dead,) = _dead_letters(resolved)
    assert invoice["InvoiceID"] in dead and "not processed" in dead, dead

    sim.faults.clear()
    _backoff_over(resolved)
    second = await _run(resolved)
    assert second.status == "ok", second.error
    assert second.counts["failed"] == 0 and second.counts["created"] == 1, second.counts
    assert list(sim.data["salesinvoice/SalesInvoices"]) == [invoice["InvoiceID"]]  # the same one, processed
    assert invoice["Status"] == 50 and invoice["InvoiceDate"].startswith("2026-05-01")
    assert _posts(sim, INVOICES) == 1

    sim.requests.clear()
    third = await _run(resolved)
    assert third.status == "ok" and third.counts["created"] == 0 and third.counts["failed"] == 0, third.counts
    assert [r for r in sim.requests if r[0] in ("POST", "PUT")] == []


async def test_an_open_invoice_of_a_flow_that_does_not_process_is_taken_not_made_again(tmp_path, servers):
    eacc_app, exact_app, eacc_url, exact_url = servers
    eacc, sim = eacc_app.state.sim, exact_app.state.sim
    _book(eacc)
    resolved = _resolved(tmp_path, eacc_url, exact_url, process=False)
    assert (await _run(resolved)).counts["created"] == 1
    with sqlite3.connect(resolved.state_path) as db:  # links and cursors lost (a restored state)
        db.execute("DELETE FROM links")
        db.execute("DELETE FROM cursors")
    again = await _run(resolved)
    assert again.status == "ok" and again.counts["failed"] == 0, again.counts
    assert len(sim.data["salesinvoice/SalesInvoices"]) == 1 and _posts(sim, INVOICES) == 1
    assert _posts(sim, PRINTED) == 0 and next(iter(sim.data["salesinvoice/SalesInvoices"].values()))["Status"] != 50


async def test_processing_down_for_a_while_is_retried_on_the_same_invoice(tmp_path, servers):
    """5xx on the processing: retried (each retry takes the invoice already made), then the run
    fails as an outage; the next run processes that same invoice."""
    eacc_app, exact_app, eacc_url, exact_url = servers
    eacc, sim = eacc_app.state.sim, exact_app.state.sim
    _book(eacc)
    resolved = _resolved(tmp_path, eacc_url, exact_url)
    sim.fail_next(503, {"error": {"code": "", "message": {"lang": "", "value": "Service unavailable"}}}, times=50, path_prefix=PRINTED)
    first = await _run(resolved)
    assert first.status == "failed" and "PrintedSalesInvoices" in (first.error or ""), first.error
    assert _posts(sim, PRINTED) > 1  # retried ...
    assert _posts(sim, INVOICES) == 1  # ... on the one invoice
    (invoice,) = sim.data["salesinvoice/SalesInvoices"].values()
    assert invoice["Status"] != 50

    sim.faults.clear()
    second = await _run(resolved)
    assert second.status == "ok" and second.counts["created"] == 1 and second.counts["failed"] == 0, (second.error, second.counts)
    assert list(sim.data["salesinvoice/SalesInvoices"].values()) == [invoice] and invoice["Status"] == 50
    assert _posts(sim, INVOICES) == 1
