"""The admin server inside the real daemon: it listens when ``[admin] token`` is set, answers
readiness, reloads through the API like SIGHUP, and a port in use is a clear error naming the setting."""

from __future__ import annotations

import socket

import anyio
import httpx
import pytest
from test_daemon import until, write_config

from apicenterd.config import load
from apicenterd.daemon import Daemon
from apicenterd.errors import ConfigError

pytestmark = pytest.mark.anyio

TOKEN = "daemon-admin-token-0123"
ADMIN = f'[admin]\naddress = "127.0.0.1:0"\ntoken = "{TOKEN}"\n'


async def test_daemon_serves_the_admin_api_and_reloads_through_it(tmp_path, registry):
    path = write_config(tmp_path, extra=ADMIN)
    good = path.read_text()
    daemon = Daemon(path, registry, load(path, registry))
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(lambda: daemon.admin is not None and daemon.engine is not None and daemon.engine.last_result is not None)
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(base_url=daemon.admin.url, headers=auth) as client:
                assert (await client.get("/readyz")).json() == {"ready": True, "reason": "running"}
                flows = (await client.get("/api/v1/flows")).json()["flows"]
                assert [(f["name"], f["state"]) for f in flows] == [("products", "ok")]

                path.write_text(good.replace("[flows.products]", "[flows.renamed]"))
                r = await client.post("/api/v1/reload")
                assert r.json() == {"result": "applied", "reason": None}
                assert [f["name"] for f in (await client.get("/api/v1/flows")).json()["flows"]] == ["renamed"]

                path.write_text(good.replace('source = "src"', 'source = "nope"'))
                r = await client.post("/api/v1/reload")
                assert r.status_code == 409 and r.json()["result"] == "refused" and "nope" in r.json()["reason"]
                assert [f["name"] for f in (await client.get("/api/v1/flows")).json()["flows"]] == ["renamed"]
            daemon.stop()


async def test_admin_port_in_use_is_a_config_error_naming_the_setting(tmp_path, registry):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(tmp_path, extra=ADMIN.replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        daemon = Daemon(path, registry, load(path, registry))
        with pytest.raises(ConfigError, match=rf"admin.address: cannot listen on 127.0.0.1:{port}: Address already in use"):
            await daemon.run()


def test_run_exits_78_naming_the_setting_when_the_admin_port_is_taken(tmp_path, registry, monkeypatch, capsys):
    from apicenterd import cli

    monkeypatch.setattr(cli, "_registry", lambda: registry)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(tmp_path, extra=ADMIN.replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        assert cli.main(["run", "--config", str(path)]) == cli.EXIT_CONFIG == 78
    assert f"admin.address: cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
