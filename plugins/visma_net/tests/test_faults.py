"""The fault test: 5xx, 429 with Retry-After and timeouts injected into Visma.net while eAccounting's
sales bookings and orders go in; every flow ends with each record there once. A timeout is a
request the simulator holds until the client gives up (it waits for the disconnect, no timer);
a "lost answer" is a create applied in Visma.net whose 201 never reaches the connector."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_visma_net import VismaNetConnector

from apicenterd.config import load
from apicenterd.registry import load_registry
from apicenterd.testing import serve_app
from apicenterd.testing.settle import run_once

pytestmark = pytest.mark.anyio


class Stall:
    """ASGI middleware: the next ``n`` requests ``method path-suffix`` get no answer until the client
    disconnects (a timeout); with ``apply``, the request is handled first and only its answer is lost."""

    def __init__(self, app: Any):
        self.app, self.state = app, app.state
        self.plan: list[tuple[str, str, bool]] = []
        self.stalled = 0

    def arm(self, method: str, suffix: str, *, times: int = 1, apply: bool = False) -> None:
        self.plan += [(method, suffix, apply)] * times

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        match = None
        if scope["type"] == "http":
            match = next((p for p in self.plan if p[0] == scope["method"] and scope["path"].rstrip("/").endswith(p[1])), None)
        if match is None:
            return await self.app(scope, receive, send)
        self.plan.remove(match)
        self.stalled += 1
        first = await receive()
        body = first.get("body", b"")
        if match[2]:

            async def replay() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def drop(message: Any) -> None:
                pass

            await self.app(scope, replay, drop)
        while (await receive())["type"] != "http.disconnect":
            pass


@pytest.fixture
def faulty(tmp_path, write_pair_config):
    """``start(flows)``: eAccounting with 4 booked invoices, Visma.net behind :class:`Stall`, the
    Visma.net connection's timeout 1 s; returns (ea_app, stall, resolved)."""

    def start(flows: dict[str, dict[str, Any]]):
        ea_app = EAccountingConnector.simulator(seed=5, records=3, customers=2)
        sim = ea_app.state.sim
        customer = next(iter(sim.customers.values()))
        articles = sorted(sim.articles.values(), key=lambda a: a["Number"])
        for i in range(4):
            rows = [{"ArticleId": articles[i % 3]["Id"], "Quantity": 1, "UnitPrice": 10 + i}]
            sim.documents.write_invoice({"CustomerId": customer["Id"], "EuThirdParty": False, "RotReducedInvoicingType": 0, "Rows": rows})
        stall = Stall(VismaNetConnector.simulator(seed=5))
        ea_url = stack.enter_context(serve_app(ea_app))
        vn_url = stack.enter_context(serve_app(stall))
        path = write_pair_config(tmp_path, ea_url, vn_url, flows)
        text = path.read_text().replace('connector = "visma_net"\n', 'connector = "visma_net"\ntimeout = 1.0\n', 1)
        path.write_text(text)
        return ea_app, stall, load(path, load_registry())

    with contextlib.ExitStack() as stack:
        yield start


BOOKINGS = {"bookings": {"source": "eaccounting", "target": "vismanet", "entity": "journal", "interval": "1h"}}


def references(sim: Any) -> list[str]:
    return sorted(line["referenceNumber"] for b in sim.journal.values() for line in b["journalTransactionLines"][:1])


FAULTS = {
    "502 twice": lambda sim, stall: sim.fail_next(502, {"message": "Bad Gateway"}, times=2, path_prefix="/v1/journaltransaction"),
    "500 with Visma.net's body": lambda sim, stall: sim.fail_next(
        500, {"ExceptionType": "IPPException", "ExceptionMessage": "Internal error"}, times=1, path_prefix="/v1/journaltransaction"
    ),
    "429 with Retry-After": lambda sim, stall: sim.fail_next(
        429, {"message": "Too many requests"}, times=1, path_prefix="/v1/journaltransaction", headers={"Retry-After": "1"}
    ),
    "look-ups time out twice": lambda sim, stall: stall.arm("GET", "/journaltransaction", times=2),
    "a create times out before it is applied": lambda sim, stall: stall.arm("POST", "/journaltransaction"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_faults_on_bookings_are_retried_and_each_sale_is_booked_once(faulty, fault):
    ea, stall, resolved = faulty(BOOKINGS)
    sim = stall.state.sim
    FAULTS[fault](sim, stall)
    result = await run_once(resolved, "bookings")
    assert result.status == "ok" and result.counts["created"] == 4 and result.counts["failed"] == 0, (result.counts, result.error)
    assert not stall.plan and len(sim.faults) == 0  # every fault was met
    assert len(references(sim)) == 4 and references(sim) == sorted(set(references(sim)))


async def test_a_booking_whose_answer_is_lost_is_found_and_not_booked_again(faulty):
    ea, stall, resolved = faulty(BOOKINGS)
    sim = stall.state.sim
    stall.arm("POST", "/journaltransaction", apply=True)  # applied in Visma.net, the 201 lost: a timeout
    first = await run_once(resolved, "bookings")
    second = await run_once(resolved, "bookings")
    assert stall.stalled == 1
    assert len(sim.journal) == 4, references(sim)  # the lost one is there once
    assert references(sim) == sorted(set(references(sim)))
    assert first.counts["failed"] + second.counts["failed"] == 0, (first.counts, second.counts)
