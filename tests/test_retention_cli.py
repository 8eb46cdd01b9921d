"""``state purge`` and the ``dlq`` commands with dead letters past their retention."""

from __future__ import annotations

import json
import time

import anyio
import pytest

from apicenterd.cli import main
from apicenterd.daemon import DAY
from apicenterd.state import AuditEntry, SQLiteStore


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def seed(path, days_ago: float, source_id: str, *, run: bool = False) -> None:
    """A failed record of flow ``products``, last failed ``days_ago`` days ago (and a run finished then)."""
    store = SQLiteStore(path, clock=lambda: time.time() - days_ago * DAY)
    await store.open()
    try:
        if run:
            await store.finish_run(await store.start_run("products"), "ok", {})
        failed = AuditEntry("products", 1, "products", source_id, "failed", key=f"{source_id.lower()}@example.com", reason="rejected")
        await store.settle(failed, payload=json.dumps({"sku": source_id, "name": "Jan Jansen"}))
    finally:
        await store.close()


def test_state_purge_prints_every_count_and_dlq_says_a_purged_letter_cannot_be_replayed(tmp_path, capsys):
    pytest.importorskip("apicenterd_eaccounting")
    from e2e_support import write_config

    config = str(write_config(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9"))
    state = tmp_path / "state.db"

    async def prepare():
        await seed(state, 100, "OLD", run=True)  # resolved later: deleted
        await seed(state, 40, "S1")  # open, past 30 days: keeps its row, loses its record
        await seed(state, 28, "S2")  # open, 2 days before: warned
        store = SQLiteStore(state)
        await store.open()
        await store.set_dead_letter_status([1], "resolved")
        await store.close()

    anyio.run(prepare)

    code, out, err = run_cli(capsys, "state", "purge", "--config", config)
    assert code == 0, err
    assert "deleted 1 audit entries older than 90 days" in out  # OLD's
    assert "deleted 1 runs finished more than 90 days ago" in out
    assert "deleted 1 resolved or discarded dead letters, and removed the record of 1 open ones" in out
    assert "alerted: 2 open dead letters of flow products" in out
    assert '"kind": "dead_letters_expiring"' in err  # the alert, logged (no channel configured)

    code, out, err = run_cli(capsys, "dlq", "list", "--config", config)
    assert code == 0
    rows = {line.split()[2]: line for line in out.splitlines()[1:]}
    assert "[purged]" in rows["S1"] and "s2@example.com" in rows["S2"]

    code, out, err = run_cli(capsys, "dlq", "show", "2", "--config", config)
    shown = json.loads(out)
    assert code == 0 and shown["payload"] is None and shown["key"] is None and shown["purged_at"]
    assert "cannot be replayed" in shown["note"] and "apicenterd dlq discard 2" in shown["note"]
    assert "Jan Jansen" not in out + err

    code, out, err = run_cli(capsys, "dlq", "replay", "2", "--config", config)
    assert code == 1 and "Traceback" not in err
    assert "not replayed: dead letter(s) 2: their record was removed after 30 days" in err
    assert "apicenterd dlq discard 2" in err and "replayed 0 dead letters" in out

    code, out, err = run_cli(capsys, "dlq", "discard", "2", "--config", config)
    assert code == 0 and "discarded 1 dead letters" in out
