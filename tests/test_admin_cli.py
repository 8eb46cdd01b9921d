"""The on-call commands go through the running daemon's admin API ([admin]) and fall back to the
state store when no daemon answers; a wrong token is a clear error."""

from __future__ import annotations

import json
import socket

import anyio
import fakes
import pytest
from test_daemon import until, write_config

from apicenterd import cli
from apicenterd.config import load
from apicenterd.daemon import Daemon

pytestmark = pytest.mark.anyio

TOKEN = "cli-admin-token-0123456"
ADMIN = f'[admin]\naddress = "127.0.0.1:0"\ntoken = "{TOKEN}"\n'


async def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """The CLI in a worker thread (it makes blocking calls to the daemon running in this loop)."""
    code = await anyio.to_thread.run_sync(cli.main, list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


async def test_on_call_commands_go_through_the_daemon(tmp_path, registry, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    fakes.MemoryStore.put(fakes.product("A"), "1")
    fakes.MemoryStore.put(fakes.product("B"), "2")
    fakes.MemoryStore.fail_create.add("B")
    path = write_config(tmp_path, extra=ADMIN)
    config = str(path)
    daemon = Daemon(path, registry, load(path, registry))
    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(lambda: daemon.admin is not None and daemon.engine is not None and daemon.engine.last_result is not None
                        and not daemon.engine.running)  # fmt: skip
            monkeypatch.setenv("APICENTERD_ADMIN_URL", daemon.admin.url)

            code, out, _ = await run_cli(capsys, "flows", "run", "products", "--config", config)
            assert code == 0 and "(in the daemon): ok" in out and "failed 0" in out  # B waits out its backoff
            code, out, _ = await run_cli(capsys, "runs", "--config", config, "--json")
            assert code == 0 and [r["trigger"] for r in json.loads(out)] == ["api", "schedule"]
            code, out, _ = await run_cli(capsys, "dlq", "list", "--config", config, "--json")
            (letter,) = json.loads(out)
            assert letter["source_id"] == "B" and "name too long" in letter["error"]

            code, _, err = await run_cli(capsys, "dlq", "replay", "999", "--config", config)
            assert code == 2 and "no open dead letter with id(s) 999" in err
            fakes.MemoryStore.fail_create.clear()
            code, out, _ = await run_cli(capsys, "dlq", "replay", str(letter["id"]), "--config", config)
            assert code == 0 and "through the daemon" in out and "created 1" in out

            code, out, _ = await run_cli(capsys, "reload", "--config", config)
            assert code == 0 and "configuration reloaded (admin API" in out
            good = path.read_text()
            path.write_text(good.replace('source = "src"', 'source = "gone"'))
            code, _, err = await run_cli(capsys, "reload", "--config", config)
            assert code == 1 and "reload refused" in err and "gone" in err
            path.write_text(good)

            monkeypatch.setenv("APICENTERD_ADMIN_TOKEN", "not-the-token-000000")
            code, _, err = await run_cli(capsys, "runs", "--config", config)
            assert code == 2 and "refused the token" in err and "APICENTERD_ADMIN_TOKEN" in err
            daemon.stop()


def test_without_a_daemon_the_commands_use_the_state_store(tmp_path, registry, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    fakes.MemoryStore.put(fakes.product("A"), "1")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("APICENTERD_ADMIN_URL", f"http://127.0.0.1:{port}")  # nothing listens there
    config = str(write_config(tmp_path, extra=ADMIN))
    assert cli.main(["flows", "run", "products", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "(in the daemon)" not in out and "created 1" in out
    assert cli.main(["runs", "--config", config, "--json"]) == 0
    assert [r["trigger"] for r in json.loads(capsys.readouterr().out)] == ["cli"]


def test_help_names_the_local_switch():
    parser = cli.build_parser()
    for argv in (["runs", "--local"], ["dlq", "list", "--local"], ["dlq", "replay", "--all", "--local"], ["flows", "run", "x", "--local"]):
        assert parser.parse_args(argv).local is True


async def test_under_systemd_credentials_the_commands_need_no_secret_but_the_admin_token(tmp_path, monkeypatch, capsys):
    """The daemon got its credentials from systemd; a shell has no $CREDENTIALS_DIRECTORY. The on-call
    commands read only [admin] and find the token where the unit loads it from."""
    from admin_support import registry_with_hooks

    registry = registry_with_hooks()
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "hook_secret").write_text("whsec-0123456789")
    (creds / "admin_token").write_text(TOKEN + "\n")
    path = tmp_path / "apicenterd.toml"
    path.write_text(
        """
[daemon]
metrics_address = ""
shutdown_timeout = 0.5

[state]
path = "state.db"

[admin]
address = "127.0.0.1:0"
token = { credential = "admin_token" }

[connections.src]
connector = "hooksource"
webhook_secret = { credential = "hook_secret" }

[connections.dst]
connector = "memtarget"

[flows.products]
source = "src"
target = "dst"
entity = "products"
interval = "1h"
""",
        encoding="utf-8",
    )
    fakes.MemoryStore.put(fakes.product("A"), "1")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))  # the daemon, as systemd starts it
    daemon = Daemon(path, registry, load(path, registry))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")  # the operator's shell
    config = str(path)
    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(lambda: daemon.admin is not None and daemon.engine is not None and daemon.engine.last_result is not None
                        and not daemon.engine.running)  # fmt: skip
            monkeypatch.setenv("APICENTERD_ADMIN_URL", daemon.admin.url)
            monkeypatch.setenv("APICENTERD_CREDENTIALS_DIR", str(tmp_path))  # no admin_token there
            code, out, err = await run_cli(capsys, "runs", "--config", config, "--json")
            # no token: the state store read directly, which needs no secret either
            assert code == 0 and [r["trigger"] for r in json.loads(out)] == ["schedule"], err
            monkeypatch.setenv("APICENTERD_CREDENTIALS_DIR", str(creds))  # stands for /etc/apicenterd/credentials
            code, out, err = await run_cli(capsys, "runs", "--config", config, "--json")
            assert code == 0, err
            assert [r["trigger"] for r in json.loads(out)] == ["schedule"]
            code, out, err = await run_cli(capsys, "flows", "run", "products", "--config", config)
            assert code == 0 and "(in the daemon): ok" in out, err
            code, _, err = await run_cli(capsys, "flows", "run", "nope", "--config", config)
            assert code == 2 and "no flow named 'nope' (defined: products)" in err
            code, out, _ = await run_cli(capsys, "dlq", "list", "--config", config)
            assert code == 0 and out.startswith("ID")
            daemon.stop()
