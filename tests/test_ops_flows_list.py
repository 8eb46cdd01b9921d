"""``flows list`` shows each flow's state from the running daemon, so a paused connection's flows
are visibly paused (with the command that un-pauses them), not silently stopped."""

from __future__ import annotations

import json

import anyio
import fakes
import pytest
from test_admin_cli import ADMIN, run_cli
from test_daemon import until, write_config

from apicenterd import cli
from apicenterd.config import load
from apicenterd.daemon import Daemon

pytestmark = pytest.mark.anyio


async def test_flows_list_shows_a_paused_flow_with_its_reason(tmp_path, registry, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    fakes.MemoryStore.put(fakes.product("A"), "1")
    path = write_config(tmp_path, extra=ADMIN)
    config = str(path)
    daemon = Daemon(path, registry, load(path, registry))
    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(lambda: daemon.admin is not None and daemon.engine is not None and daemon.engine.last_result is not None
                        and not daemon.engine.running)  # fmt: skip
            monkeypatch.setenv("APICENTERD_ADMIN_URL", daemon.admin.url)
            code, out, _ = await run_cli(capsys, "flows", "list", "--config", config)
            assert code == 0 and "STATE" in out
            row = next(line for line in out.splitlines() if line.startswith("products"))
            assert row.split()[6] == "ok"

            daemon.engine.paused["dst"] = "the refresh token was rejected (invalid_grant)"
            code, out, _ = await run_cli(capsys, "flows", "list", "--config", config)
            assert code == 0
            row = next(line for line in out.splitlines() if line.startswith("products"))
            assert row.split()[6] == "paused" and "invalid_grant" in row
            assert f"connection dst is paused: run apicenterd auth dst --config {config}, then reload" in out
            code, out, _ = await run_cli(capsys, "flows", "list", "--config", config, "--json")
            (item,) = json.loads(out)
            assert item["state"] == "paused" and item["paused_connections"] == ["dst"]

            code, out, _ = await run_cli(capsys, "flows", "list", "--config", config, "--local")
            assert code == 0 and "SCHEDULE" in out and "STATE" not in out  # the configuration only
            daemon.stop()
