"""Resync: `flows run NAME --full` reads every record (the cursor ignored for that run) and
`flows reset NAME` forgets the cursor; links stay, so nothing is created twice. Locally, and
through the running daemon's admin API."""

from __future__ import annotations

import json
import sqlite3

import anyio
import fakes
import pytest
from test_admin_cli import ADMIN, run_cli
from test_daemon import until, write_config

from apicenterd import cli
from apicenterd.config import load
from apicenterd.daemon import Daemon


def cursor(tmp_path, flow="products"):
    db = sqlite3.connect(tmp_path / "state.db")
    try:
        row = db.execute("SELECT cursor FROM cursors WHERE flow=?", (flow,)).fetchone()
    finally:
        db.close()
    return row[0] if row else None


def target_skus() -> list[str]:
    return sorted(r["sku"] for r in fakes.MemoryStore.target.values())


def cli_run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_full_run_and_reset_on_the_state_store(tmp_path, registry, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    config = str(write_config(tmp_path))
    fakes.MemoryStore.put(fakes.product("A"), "5")
    code, out, err = cli_run(capsys, "flows", "run", "products", "--config", config)
    assert code == 0 and "created 1" in out, err
    assert cursor(tmp_path) == "5"
    fakes.MemoryStore.put(fakes.product("B"), "3")  # changed "before" the cursor: an incremental run misses it
    code, out, _ = cli_run(capsys, "flows", "run", "products", "--config", config)
    assert code == 0 and "created 0" in out and target_skus() == ["A"]
    code, out, err = cli_run(capsys, "flows", "run", "products", "--full", "--config", config, "--json")
    assert code == 0, err
    counts = json.loads(out)
    assert counts["created"] == 1 and counts["unchanged"] == 1  # A was linked: no second create
    assert target_skus() == ["A", "B"]

    code, out, err = cli_run(capsys, "flows", "reset", "products", "--config", config)
    assert code == 0 and 'cursor "5" forgotten; links kept' in out, err
    assert cursor(tmp_path) is None
    code, out, _ = cli_run(capsys, "flows", "run", "products", "--config", config, "--json")
    assert json.loads(out)["unchanged"] == 2 and json.loads(out)["created"] == 0
    code, _, err = cli_run(capsys, "flows", "reset", "nope", "--config", config)
    assert code == 2 and "no flow named 'nope' (defined: products)" in err


def test_reset_refuses_a_missing_state_file(tmp_path, registry, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    config = str(write_config(tmp_path))
    code, _, err = cli_run(capsys, "flows", "reset", "products", "--config", config)
    assert code == 2 and "does not exist" in err and not (tmp_path / "state.db").exists()


@pytest.mark.anyio
async def test_full_run_and_reset_through_the_daemon(tmp_path, registry, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    fakes.MemoryStore.put(fakes.product("A"), "5")
    path = write_config(tmp_path, extra=ADMIN)
    config = str(path)
    daemon = Daemon(path, registry, load(path, registry))
    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(lambda: daemon.admin is not None and daemon.engine is not None and daemon.engine.last_result is not None
                        and not daemon.engine.running)  # fmt: skip
            monkeypatch.setenv("APICENTERD_ADMIN_URL", daemon.admin.url)
            fakes.MemoryStore.put(fakes.product("B"), "3")
            code, out, err = await run_cli(capsys, "flows", "run", "products", "--full", "--config", config)
            assert code == 0 and "(in the daemon): ok" in out and "created 1" in out and "unchanged 1" in out, err
            code, out, err = await run_cli(capsys, "flows", "reset", "products", "--config", config)
            assert code == 0 and "(in the daemon)" in out and 'cursor "5" forgotten' in out, err
            assert await daemon.engine.store.get_cursor("products") is None
            code, _, err = await run_cli(capsys, "flows", "reset", "nope", "--config", config)
            assert code == 2 and "nope" in err
            daemon.stop()
    assert target_skus() == ["A", "B"]
