"""`apicenterd check --connect`: each connection's one cheap call (Connector.check), against every
bundled connector's simulator; a line per connection, exit 1 when one fails."""

from __future__ import annotations

import contextlib
import socket

from e2e_support import _toml_value

from apicenterd import cli
from apicenterd.errors import RetryableError
from apicenterd.registry import load_registry
from apicenterd.testing import serve_app

BUNDLED = ("ccv_salespos", "eaccounting", "exact_online", "hubspot", "mpluskassa", "quickbooks", "visma_net")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def write(tmp_path, tables: dict[str, tuple[str, dict]]):
    lines = ['[daemon]\nmetrics_address = ""\n\n[state]\npath = "state.db"\n']
    for name, (connector, settings) in tables.items():
        lines.append(f"[connections.{name}]\nconnector = {_toml_value(connector)}")
        lines += [f"{k} = {_toml_value(v)}" for k, v in settings.items()]
        lines.append("")
    path = tmp_path / "apicenterd.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return str(path)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_connect_calls_every_bundled_connector_against_its_simulator(tmp_path, capsys):
    registry = load_registry()
    missing = [n for n in BUNDLED if n not in registry.connectors]
    assert not missing, f"bundled connectors not installed: {missing} (pip install -r requirements-dev.txt)"
    with contextlib.ExitStack() as stack:
        tables = {}
        for name in BUNDLED:
            cls = registry.connectors[name]
            url = stack.enter_context(serve_app(cls.simulator(seed=1, records=3)))
            tables[name] = (name, cls.demo_settings(url))
        config = write(tmp_path, tables)
        code, out, err = run_cli(capsys, "check", "--connect", "--config", config)
        assert code == 0, out + err
        lines = [line for line in out.splitlines() if line.startswith("connection ")]
        assert len(lines) == len(BUNDLED), out
        for name in BUNDLED:
            assert f"connection {name} ({name}): ok in " in out, out
        assert "declares no check" not in out  # every bundled connector has its own

        # a wrong secret on one, nothing listening for another: their lines say why, the others stay ok
        # (fresh simulators and state: the first check rotated the demo refresh tokens, as the vendors do)
        again = tmp_path / "again"
        again.mkdir()
        tables = {}
        for name in ("eaccounting", "hubspot"):
            cls = registry.connectors[name]
            tables[name] = (name, cls.demo_settings(stack.enter_context(serve_app(cls.simulator(seed=1)))))
        tables["eaccounting"][1]["client_secret"] = "not-the-secret"
        ccv = registry.connectors["ccv_salespos"].demo_settings(f"http://127.0.0.1:{closed_port()}")
        config = write(again, {**tables, "ccv_salespos": ("ccv_salespos", ccv)})
        code, out, err = run_cli(capsys, "check", "--connect", "--timeout", "60", "--config", config)
    assert code == 1, out + err
    assert "connection eaccounting (eaccounting): FAILED: " in out and "not-the-secret" not in out + err
    assert "connection ccv_salespos (ccv_salespos): FAILED: " in out
    assert "connection hubspot (hubspot): ok in " in out
    assert "2 of 3 connections failed: ccv_salespos, eaccounting" in err
    assert "Traceback" not in out + err


def test_check_without_connect_calls_nothing(tmp_path, capsys):
    config = write(tmp_path, {"ccv": ("ccv_salespos", {"base_url": f"http://127.0.0.1:{closed_port()}",
                                                        "public_key": "p", "private_key": "k"})})  # fmt: skip
    code, out, err = run_cli(capsys, "check", "--config", config)
    assert code == 0 and "connection " not in out, err


def test_the_default_check_reads_one_record(registry, tmp_path, capsys, monkeypatch):
    """A connector that declares no check: its first readable entity, one record; a write-only one is said not checked."""
    import fakes

    monkeypatch.setattr(cli, "_registry", lambda: registry)
    fakes.MemoryStore.put(fakes.product("A"), "1")
    config = write(tmp_path, {"src": ("memsource", {}), "dst": ("memtarget", {})})
    code, out, err = run_cli(capsys, "check", "--connect", "--config", config)
    assert code == 0, err
    assert "connection src (memsource): ok in" in out and "read one" in out and "declares no check" in out
    assert "connection dst (memtarget): not checked" in out
    async def unreachable(self, entity, since):
        raise RetryableError("source went away")
        yield  # an async generator

    monkeypatch.setattr(registry.connectors["memsource"], "_read", unreachable)
    code, out, _ = run_cli(capsys, "check", "--connect", "--config", config)
    assert code == 1 and "connection src (memsource): FAILED: " in out and "source went away" in out


def test_the_hubspot_check_writes_nothing(tmp_path, capsys):
    """Its check reads the SKU property; before, it created the three unique properties it was missing."""
    import httpx

    registry = load_registry()
    cls = registry.connectors["hubspot"]
    with serve_app(cls.simulator(seed=1)) as url:
        settings = cls.demo_settings(url)
        config = write(tmp_path, {"hubspot": ("hubspot", settings)})
        code, out, err = run_cli(capsys, "check", "--connect", "--config", config)
        assert code == 0 and "connection hubspot (hubspot): ok in " in out, out + err
        headers = {"Authorization": f"Bearer {settings['access_token']}"}
        for kind in ("products", "deals", "line_items"):
            answer = httpx.get(f"{url}/crm/v3/properties/{kind}", headers=headers, timeout=30)
            assert answer.status_code == 200 and not any(p["name"].startswith("apicenterd_") for p in answer.json()["results"])
        config = write(tmp_path, {"hubspot": ("hubspot", {**settings, "create_properties": False})})
        code, out, _ = run_cli(capsys, "check", "--connect", "--config", config)
    assert code == 1 and "products property 'apicenterd_sku' does not exist" in out
