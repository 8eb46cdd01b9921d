"""Batched documents: an order flow into a target whose document sink implements ``find_many`` and
``create_many`` looks a batch's orders, debtors and articles up in few calls, resolves each
order's debtor and articles, then creates the batch's documents together, settled in the
source's order; a document refused fails alone; a failed call is retried after a look-up by
number, so no order is created twice."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal

import fakes
import fakes_batch
import pytest

from apicenterd import Customer, Order, OrderLine
from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _no_refusals():
    fakes_batch.BatchDocumentTarget.refuse = set()
    fakes_batch.BatchDebtorTarget.refuse_debtors = set()
    yield
    fakes_batch.BatchDocumentTarget.refuse = set()
    fakes_batch.BatchDebtorTarget.refuse_debtors = set()


def order(number: int, email: str) -> Order:
    return Order(
        number=f"{number:04}",
        status="paid",
        created_at=datetime(2026, 11, 30, 12, tzinfo=timezone.utc),
        customer=Customer(kind="person", name=email.split("@")[0], email=email),
        lines=(OrderLine(sku="A", name="Product A", quantity=Decimal(2), unit_price=Decimal("12.10")),),
        total=Decimal("24.20"),
    )


def resolved(tmp_path, target="membatchdocs"):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": target}},
        "flows": {
            "orders": {
                "source": "src",
                "target": "dst",
                "entity": "orders",
                "interval": "1m",
                "options": {"missing_products": "create"},
                "target_settings": {"branch_id": "B1"},
            }
        },
    }
    registry = load_registry([("fakes", fakes), ("fakes_batch", fakes_batch)], entry_points=False)
    return resolve(Config(**raw), registry, tmp_path / "x.toml")


async def run(tmp_path, target="membatchdocs"):
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved(tmp_path, target), store, retry_base_delay=0)
    try:
        result = await engine.run_flow("orders")
        links = {n: await store.get_link("src", "orders", n, "dst") for n in fakes.MemoryStore.orders}
        return result, links, await store.get_cursor("orders")
    finally:
        await engine.aclose()
        await store.close()


def calls(memory, kind):
    return [c[1] for c in memory.calls if c[0] == kind]


def numbers_in_target(memory):
    return Counter(o.number for o in memory.target_orders.values())


async def test_a_batch_of_orders_is_looked_up_and_created_in_few_calls_each_once(tmp_path, memory):
    for n in range(150):
        memory.orders[f"{n:04}"] = order(n, f"buyer{n % 7}@example.com")
    result, links, cursor = await run(tmp_path)
    assert result.status == "ok" and result.counts["created"] == 150, result
    assert [len(c.split(",")) for c in calls(memory, "create_many_orders")] == [100, 50]
    assert len(calls(memory, "find_many_orders")) == 2 and len(calls(memory, "find_many_customers")) == 2
    assert calls(memory, "find") == [] and calls(memory, "find_many") == ["A", "A"]  # the article, once a batch
    assert Counter(c.email for c in memory.customers.values()) == Counter({f"buyer{n}@example.com": 1 for n in range(7)})
    assert len(memory.target) == 1  # the missing article created once, for the first order
    assert set(numbers_in_target(memory).values()) == {1} and len(numbers_in_target(memory)) == 150
    assert all(link is not None and memory.target_orders[link.target_id].number == number for number, link in links.items())
    assert cursor == "0149"
    assert all(o.customer_id is not None for o in memory.target_orders.values())
    memory.calls.clear()
    again, _, _ = await run(tmp_path)
    assert again.counts["skipped"] == 150 and again.counts["created"] == 0 and memory.calls == []  # linked: no call


async def test_a_document_the_target_refuses_fails_alone(tmp_path, memory):
    for n in range(5):
        memory.orders[f"{n:04}"] = order(n, "one@example.com")
    fakes_batch.BatchDocumentTarget.refuse = {"0002"}
    result, links, cursor = await run(tmp_path)
    assert result.counts["created"] == 4 and result.counts["failed"] == 1, result
    assert any(f[2] == "0002" and "refuses order 0002" in f[3] for f in result.failures)
    assert links["0002"] is None and all(links[f"{n:04}"] is not None for n in (0, 1, 3, 4))
    assert cursor == "0004"


async def test_a_call_that_fails_part_way_is_retried_after_a_look_up_by_number(tmp_path, memory):
    for n in range(6):
        memory.orders[f"{n:04}"] = order(n, "one@example.com")
    memory.flaky["0003"] = 1  # 0000..0002 are created, then the call fails (as if its answer was lost)
    result, links, _ = await run(tmp_path)
    assert result.status == "ok" and result.counts["created"] == 6, result
    assert set(numbers_in_target(memory).values()) == {1} and len(numbers_in_target(memory)) == 6
    assert calls(memory, "create_many_orders")[-1] == "0003,0004,0005"  # the retry sends only what the look-up did not find
    assert all(link is not None for link in links.values())


async def test_documents_that_fail_for_good_settle_nothing_and_the_next_run_links_them(tmp_path, memory):
    for n in range(6):
        memory.orders[f"{n:04}"] = order(n, "one@example.com")
    memory.flaky["0003"] = 10**6
    result, links, cursor = await run(tmp_path)
    assert result.status == "failed" and cursor is None and all(link is None for link in links.values())
    memory.flaky.clear()
    again, links, cursor = await run(tmp_path)
    assert again.status == "ok" and again.counts["created"] == 3 and again.counts["skipped"] == 3, again  # 0000..0002 found
    assert set(numbers_in_target(memory).values()) == {1} and len(numbers_in_target(memory)) == 6 and cursor == "0005"


async def test_new_debtors_of_a_batch_are_created_together_before_its_documents(tmp_path, memory):
    for n in range(150):
        memory.orders[f"{n:04}"] = order(n, f"buyer{n % 7}@example.com")
    result, links, _ = await run(tmp_path, "membatchdebtors")
    assert result.status == "ok" and result.counts["created"] == 150, result
    debtor_calls = calls(memory, "create_many_customers")
    assert len(debtor_calls) == 1 and sorted(debtor_calls[0].split(",")) == [f"buyer{n}@example.com" for n in range(7)]
    assert Counter(c.email for c in memory.customers.values()) == Counter({f"buyer{n}@example.com": 1 for n in range(7)})
    by_email = {c.email: tid for tid, c in memory.customers.items()}
    for number, link in links.items():  # each document names its own debtor's new id, not a placeholder
        document = memory.target_orders[link.target_id]
        assert document.customer_id == by_email[memory.orders[number].customer.email]
    memory.calls.clear()
    again, _, _ = await run(tmp_path, "membatchdebtors")
    assert again.counts["skipped"] == 150 and memory.calls == []


async def test_a_debtor_the_target_refuses_fails_only_its_orders(tmp_path, memory):
    for n in range(6):
        memory.orders[f"{n:04}"] = order(n, f"buyer{n % 3}@example.com")
    fakes_batch.BatchDebtorTarget.refuse_debtors = {"buyer1@example.com"}
    result, links, cursor = await run(tmp_path, "membatchdebtors")
    assert result.counts["created"] == 4 and result.counts["failed"] == 2, result
    failed = {f[2]: f[3] for f in result.failures}
    assert set(failed) == {"0001", "0004"} and all("refuses customer buyer1@example.com" in r for r in failed.values())
    assert links["0001"] is None and links["0004"] is None and cursor == "0005"
    assert sorted(c.email for c in memory.customers.values()) == ["buyer0@example.com", "buyer2@example.com"]


async def test_a_debtor_call_that_fails_part_way_is_retried_after_a_look_up_by_email(tmp_path, memory):
    for n in range(6):
        memory.orders[f"{n:04}"] = order(n, f"buyer{n}@example.com")
    memory.flaky["buyer3@example.com"] = 1  # buyer0..2 are created, then the call fails (its answer lost)
    result, links, _ = await run(tmp_path, "membatchdebtors")
    assert result.status == "ok" and result.counts["created"] == 6, result
    assert Counter(c.email for c in memory.customers.values()) == Counter({f"buyer{n}@example.com": 1 for n in range(6)})
    assert calls(memory, "create_many_customers")[-1] == "buyer3@example.com,buyer4@example.com,buyer5@example.com"
    assert all(link is not None for link in links.values())
