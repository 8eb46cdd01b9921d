"""The invoices and journal flows of etc/eaccounting-exact.example.toml, as written there, between the
eAccounting and Exact Online simulators: processed direct invoices with the example's VAT codes and
revenue accounts, vouchers as journal entries on the example's account map; a second run writes nothing."""

from __future__ import annotations

import contextlib
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest
from apicenterd_exact_online import ExactOnlineConnector

from apicenterd.config import Config
from apicenterd.config.resolve import resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore
from apicenterd.testing import serve_app

eaccounting = pytest.importorskip("apicenterd_eaccounting")
EAccountingConnector = eaccounting.EAccountingConnector

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[3] / "etc" / "eaccounting-exact.example.toml"


@pytest.fixture
def servers():
    eacc_app = EAccountingConnector.simulator(seed=5, records=6, customers=4)
    exact_app = ExactOnlineConnector.simulator(seed=5, records=0)
    with contextlib.ExitStack() as stack:
        yield eacc_app, exact_app, stack.enter_context(serve_app(eacc_app)), stack.enter_context(serve_app(exact_app))


def _example(tmp_path, eacc_url, exact_url):
    """The example as written, its connections pointed at the simulators (their demo credentials)."""
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert {"invoices_to_exact", "journal_to_exact"} <= set(raw["flows"])
    raw["daemon"] = {"log_level": "warning", "metrics_address": "", "shutdown_timeout": 5}
    raw["state"] = {"path": str(tmp_path / "state.db")}
    raw.pop("alerts", None)
    example_exact = raw["connections"]["exact"]
    raw["connections"] = {
        "eaccounting": {"connector": "eaccounting", **EAccountingConnector.demo_settings(eacc_url)},
        "exact": {
            **{k: v for k, v in example_exact.items() if k not in ("client_id", "client_secret", "refresh_token", "region")},
            **ExactOnlineConnector.demo_settings(exact_url),
        },
    }
    return resolve(Config(**raw), load_registry(), tmp_path / "apicenterd.toml"), raw


async def _run(resolved, flow):
    store = SQLiteStore(resolved.state_path)
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0.01)
    try:
        return await engine.run_flow(flow)
    finally:
        await engine.aclose()
        await store.close()


async def test_the_example_invoices_and_journal_flows_run_between_the_simulators(tmp_path, servers):
    eacc_app, exact_app, eacc_url, exact_url = servers
    eacc, sim = eacc_app.state.sim, exact_app.state.sim
    company = next(c for c in eacc.customers.values() if not c["IsPrivatePerson"])
    company["InvoiceCountryCode"] = "NL"
    articles = sorted(eacc.articles.values(), key=lambda a: a["Number"])
    rows = [{"ArticleId": a["Id"], "Quantity": 1 + n, "UnitPrice": 20} for n, a in enumerate(articles[:3])]
    booked = eacc.documents.write_invoice(
        {"CustomerId": company["Id"], "EuThirdParty": False, "RotReducedInvoicingType": 0, "Rows": rows, "InvoiceDate": "2026-05-04"}
    )
    resolved, raw = _example(tmp_path, eacc_url, exact_url)
    options = raw["flows"]["invoices_to_exact"]["options"]

    invoices = await _run(resolved, "invoices_to_exact")
    assert invoices.status == "ok", invoices.error
    assert invoices.counts["created"] == 1 and invoices.counts["failed"] == 0, invoices.counts
    (invoice,) = sim.data["salesinvoice/SalesInvoices"].values()
    assert invoice["YourRef"] == str(booked["InvoiceNumber"]) and invoice["Type"] == 8023 and invoice["Journal"] == "70"
    assert invoice["Status"] == 50 and invoice["InvoiceDate"].startswith("2026-05-04")  # target_settings: process = true
    gl = {gid: a["Code"] for gid, a in sim.data["financial/GLAccounts"].items()}
    items = {iid: i["Code"] for iid, i in sim.data["logistics/Items"].items()}
    for line in invoice["SalesInvoiceLines"]:
        article = next(a for a in articles if a["Number"] == items[line["Item"]])
        rate = format((eacc.codings[article["CodingId"]]["VatRatePercent"] * 100).normalize(), "f")
        assert line["VATCode"] == options["tax_codes"]["NL"].get(rate, options["tax_codes"]["NL"]["default"])
        assert gl[line["GLAccount"]] == options["revenue_accounts"]["NL"]

    journal = await _run(resolved, "journal_to_exact")
    assert journal.status == "ok", journal.error
    assert journal.counts["created"] == len(eacc.vouchers.store) >= 1 and journal.counts["failed"] == 0, journal.counts
    accounts = raw["flows"]["journal_to_exact"]["options"]["accounts"]
    for entry in sim.data["generaljournalentry/GeneralJournalEntries"].values():
        assert entry["JournalCode"] == raw["connections"]["exact"]["journal_code"]
        assert {gl[line["GLAccount"]] for line in entry["GeneralJournalEntryLines"]} <= set(accounts.values())
        assert sum(Decimal(str(line["AmountFC"])) for line in entry["GeneralJournalEntryLines"]) == 0

    sim.requests.clear()
    for flow in ("invoices_to_exact", "journal_to_exact"):
        again = await _run(resolved, flow)
        assert again.status == "ok" and again.counts["created"] == 0 and again.counts["failed"] == 0, (flow, again.counts)
    assert [r for r in sim.requests if r[0] in ("POST", "PUT", "DELETE")] == []


DEMO = EXAMPLE.with_name("eaccounting-exact.demo.toml")


async def test_the_demo_invoices_and_journal_flows_run_on_the_demo_seeded_simulators(tmp_path):
    """etc/eaccounting-exact.demo.toml's invoices and journal flows, on simulators seeded as
    `apicenterd demo` seeds them (served on free ports instead of :8702/:8703)."""
    from apicenterd.cli.demo import demo_simulator

    raw = tomllib.loads(DEMO.read_text(encoding="utf-8"))
    raw["daemon"] = {"log_level": "warning", "metrics_address": "", "shutdown_timeout": 5}
    raw["state"] = {"path": str(tmp_path / "state.db")}
    for name, cls in (("eaccounting", EAccountingConnector), ("exact", ExactOnlineConnector)):
        table = raw["connections"][name]
        raw["connections"][name] = {**{k: v for k, v in table.items() if not isinstance(v, dict)}, **cls.demo_settings(table["base_url"])}
        raw["connections"][name].pop("token_url", None)
    registry = load_registry()
    seeded = resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")
    eacc_app = demo_simulator(registry, seeded, "eaccounting", 2)
    exact_app = demo_simulator(registry, seeded, "exact", 2)
    assert eacc_app.state.sim.invoices, "the demo seeds eAccounting invoices for the invoices flow"
    with serve_app(eacc_app) as eacc_url, serve_app(exact_app) as exact_url:
        for name, cls, url in (("eaccounting", EAccountingConnector, eacc_url), ("exact", ExactOnlineConnector, exact_url)):
            raw["connections"][name].update(cls.demo_settings(url))
        resolved = resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")
        sim = exact_app.state.sim
        invoices = await _run(resolved, "invoices_to_exact")
        assert invoices.status == "ok" and invoices.counts["failed"] == 0, (invoices.error, invoices.counts)
        assert invoices.counts["created"] == len(eacc_app.state.sim.invoices) == len(sim.data["salesinvoice/SalesInvoices"])
        assert all(i["Status"] == 50 and i["Type"] == 8023 for i in sim.data["salesinvoice/SalesInvoices"].values())
        journal = await _run(resolved, "journal_to_exact")
        assert journal.status == "ok" and journal.counts["failed"] == 0, (journal.error, journal.counts)
        assert journal.counts["created"] == len(sim.data["generaljournalentry/GeneralJournalEntries"]) >= 1
