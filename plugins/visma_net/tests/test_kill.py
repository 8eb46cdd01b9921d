"""SIGKILL the `flows run` process in the middle of eAccounting → Visma.net products (and of sales
bookings → journal transactions), restart, and nothing is duplicated or missing. The kill is placed by the Visma.net simulator's middleware at the
n-th ``POST inventory`` (before it is applied, or applied but before the 201 is sent: the create
the process never heard of), never on a timer. Ephemeral ports only."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sized
from pathlib import Path

import pytest
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_visma_net import VismaNetConnector

from apicenterd.testing import serve_app
from apicenterd.testing.kill import KillAtCall, flows_run, killed_runs

pytestmark = pytest.mark.slow

ITEMS = 30
KILLS = (("before", 3), ("applied", 2), ("applied", 4))


def _creates(suffix: str):
    """A ``POST`` to a path ending in ``suffix`` (``/inventory``, ``/journaltransaction``)."""
    return lambda method, path, body: method == "POST" and path.rstrip("/").endswith(suffix)


def killed_then_finished(switch: KillAtCall, config: Path, flow: str, suffix: str, created: Callable[[], Sized], total: int) -> None:
    """``flow`` SIGKILLed at each of KILLS (at its n-th create, its store ``created`` growing by at
    most n and never complete), then run to its end."""
    for phase, n in KILLS:
        before = len(created())
        killed_runs(switch, config, flow, [(phase, n)], _creates(suffix), timeout=120)
        assert 0 <= len(created()) - before <= n and len(created()) < total
    final = flows_run(config, flow)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()[-6000:]


def test_sigkill_mid_run_then_restart_leaves_no_duplicate_and_no_gap(tmp_path, write_pair_config):
    ea_app = EAccountingConnector.simulator(seed=5, records=ITEMS, rate_limit=0)
    vn_app = VismaNetConnector.simulator(seed=5)
    switch = KillAtCall(vn_app)
    sim = vn_app.state.sim
    with contextlib.ExitStack() as stack:
        ea_url = stack.enter_context(serve_app(ea_app))
        vn_url = stack.enter_context(serve_app(switch))
        flows = {"products": {"source": "eaccounting", "target": "vismanet", "entity": "products", "interval": "1h"}}
        config = write_pair_config(tmp_path, ea_url, vn_url, flows)
        killed_then_finished(switch, config, "products", "/inventory", lambda: sim.inventory, ITEMS)
    numbers = {a["Number"] for a in ea_app.state.sim.articles.values()}
    assert set(sim.inventory) == numbers  # none missing; the store is keyed by number, so a second create was refused
    # a create killed "before" never reached the simulator; one killed "applied" was applied once and
    # found by the next run: a second POST for any item (refused as existing) would make this more
    posts = [r for r in sim.requests if r[0] == "POST"]
    assert len(posts) == ITEMS, "a create was sent twice for an item that existed"


BOOKINGS = 12


def test_sigkill_mid_bookings_then_restart_books_each_sale_once(tmp_path, write_pair_config):
    from apicenterd_eaccounting.sim_vouchers import RECEIVABLES_ACCOUNT, VAT_ACCOUNT

    ea_app = EAccountingConnector.simulator(seed=5, records=4, customers=3, rate_limit=0)
    ea = ea_app.state.sim
    customers, articles = list(ea.customers.values()), list(ea.articles.values())
    for i in range(BOOKINGS):
        rows = [{"ArticleId": articles[i % len(articles)]["Id"], "Quantity": 1, "UnitPrice": 10 + i}]
        ea.documents.write_invoice(
            {"CustomerId": customers[i % len(customers)]["Id"], "EuThirdParty": False, "RotReducedInvoicingType": 0, "Rows": rows}
        )
    vn_app = VismaNetConnector.simulator(seed=5)
    switch = KillAtCall(vn_app)
    sim = vn_app.state.sim
    with contextlib.ExitStack() as stack:
        ea_url = stack.enter_context(serve_app(ea_app))
        vn_url = stack.enter_context(serve_app(switch))
        flows = {"bookings": {"source": "eaccounting", "target": "vismanet", "entity": "journal", "interval": "1h"}}
        config = write_pair_config(tmp_path, ea_url, vn_url, flows)
        killed_then_finished(switch, config, "bookings", "/journaltransaction", lambda: sim.journal, BOOKINGS)
    references = [{line["referenceNumber"] for line in batch["journalTransactionLines"]} for batch in sim.journal.values()]
    assert all(len(refs) == 1 for refs in references)
    booked = sorted(refs.pop() for refs in references)
    wanted = sorted(f"{v['NumberAndNumberSeries']}-{v['VoucherDate'][:10].replace('-', '')}" for v in ea.vouchers.store.values())
    assert booked == wanted  # each sale once: none missing, none twice
    assert {RECEIVABLES_ACCOUNT, VAT_ACCOUNT} <= {
        int(line["accountNumber"]) for batch in sim.journal.values() for line in batch["journalTransactionLines"]
    }
