"""The dry run lists the records that would fail, with the reason, and its log lines say what
would happen ("would create record"), never "record created"."""

from __future__ import annotations

import json

import pytest
from structlog.testing import capture_logs
from test_orders import config, order, run, seed_products

from apicenterd import cli

pytestmark = pytest.mark.anyio


async def test_a_dry_run_keeps_the_would_fail_records_and_logs_would(tmp_path, registry, memory):
    seed_products("A")
    memory.orders["1001"] = order("1001")
    memory.orders["1002"] = order("1002", country="DE")  # no tax code for DE: would fail
    resolved = config(tmp_path, registry, options={"tax_codes": {"NL": {"21": "H"}}})
    with capture_logs() as logs:
        result, engine, _ = await run(resolved, tmp_path, dry_run=True)
    assert result.counts["created"] == 1 and result.counts["failed"] == 1
    ((flow, source_id, key, reason),) = result.failures
    assert (flow, source_id, key) == ("orders", "1002", "1002") and "'DE'" in reason
    events = [e["event"] for e in logs]
    assert "would create customer" in events and "would create order" in events and "record would fail" in events
    assert not {"record created", "order created", "customer created", "record failed"} & set(events)
    # a real run says what happened
    with capture_logs() as logs:
        await run(resolved, tmp_path)
    events = [e["event"] for e in logs]
    assert "order created" in events and "record failed" in events and "would create order" not in events


def test_flows_run_dry_run_prints_what_would_fail_and_why(tmp_path, registry, memory, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    seed_products("A")
    memory.orders["1001"] = order("1001")
    memory.orders["1002"] = order("1002", country="DE")
    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text(
        f"""
[state]
path = "{tmp_path / 'state.db'}"
[connections.src]
connector = "memsource"
[connections.dst]
connector = "memtarget"
[flows.orders]
source = "src"
target = "dst"
entity = "orders"
interval = "1m"
options = {{ tax_codes = {{ NL = {{ "21" = "H" }} }} }}
target_settings = {{ branch_id = "B1" }}
""",
        encoding="utf-8",
    )
    code = cli.main(["flows", "run", "orders", "--dry-run", "--config", str(cfg)])
    out = capsys.readouterr().out
    assert code == cli.EXIT_RECORDS_FAILED, out
    lines = out.splitlines()
    (failed,) = [line for line in lines if line.startswith("would fail")]
    assert failed.startswith("would fail orders 1002 (source id 1002): ") and "'DE'" in failed
    assert "would create orders 1001" in lines
    assert lines[-1].startswith("dry run of flow orders: ok: created 1") and "failed 1" in lines[-1]
    code = cli.main(["flows", "run", "orders", "--dry-run", "--json", "--config", str(cfg)])
    body = json.loads(capsys.readouterr().out)
    ((failure),) = body["failures"]
    assert failure["source_id"] == "1002" and "'DE'" in failure["reason"] and body["failed"] == 1
    assert memory.target_orders == {}
