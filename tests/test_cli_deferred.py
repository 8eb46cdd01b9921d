"""``flows run`` of a run deferred by its share of a day budget: exit status 4 and why, on stderr."""

from __future__ import annotations

import json

import fakes
from test_cli import memory_products_config, run_cli

from apicenterd import cli
from apicenterd.cli.flows import _status_code
from apicenterd.errors import BudgetSpent

RESUME = 1_900_000_000  # 2030-03-17T17:46:40Z


def _spend_after(first: int):
    """A ``_read`` that yields ``first`` products, then finds the flow's share of the day spent."""
    original = fakes.MemorySource._read

    async def read(self, entity, since):
        n = 0
        async for change in original(self, entity, since):
            if n == first:
                raise BudgetSpent(
                    "connection 'src': flow 'products' has spent its share of the day budget",
                    connection="src",
                    flow="products",
                    resume_at=RESUME,
                    left=3,
                    reserved=0,
                )
            n += 1
            yield change

    return read


def test_flows_run_exits_4_and_says_why_when_the_day_budget_deferred_it(tmp_path, capsys, registry, memory, monkeypatch):
    from fakes import product

    monkeypatch.setattr(cli, "_registry", lambda: registry)
    for n, sku in enumerate(("A", "B", "C")):
        memory.put(product(sku), str(n))
    monkeypatch.setattr(fakes.MemorySource, "_read", _spend_after(1))
    cfg = memory_products_config(tmp_path)
    assert cli.EXIT_DEFERRED == 4
    code, out, err = run_cli(capsys, "flows", "run", "products", "--json", "--config", str(cfg))
    result = json.loads(out)
    assert code == cli.EXIT_DEFERRED, (out, err)
    assert result["status"] == "deferred" and result["created"] == 1  # what it did before is kept
    assert "flow products deferred" in err and "share of the day budget" in err and "2030-03-17T17:46:40Z" in err
    # the next day it goes on from where it stopped and ends ok
    monkeypatch.undo()
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    code, out, err = run_cli(capsys, "flows", "run", "products", "--json", "--config", str(cfg))
    result = json.loads(out)
    assert code == 0 and result["status"] == "ok" and result["created"] == 2, (out, err)


def test_the_exit_status_of_a_run_in_the_daemon_tells_deferred_from_failed(capsys):
    body = {"failed": 0, "created": 4, "resume_at": RESUME, "complete_at": RESUME + 86400}
    assert _status_code("items", "deferred", "spent", body) == cli.EXIT_DEFERRED
    err = capsys.readouterr().err
    assert "flow items deferred" in err and "expected done ~2030-03-18T17:46:40Z" in err and "spent" in err
    assert _status_code("items", "failed", "boom", {"failed": 0}) == 1
    assert _status_code("items", "ok", None, {"failed": 2}) == cli.EXIT_RECORDS_FAILED
    assert _status_code("items", "ok", None, {"failed": 0}) == 0
    assert capsys.readouterr().err == ""
