"""etc/quickbooks-mpluskassa.example.toml passes `apicenterd check`; the demo config passes it too
and its flows run between the simulators as `apicenterd demo` serves them (both seeded), a
second round writing nothing."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import httpx
import pytest

from apicenterd import cli
from apicenterd.cli.demo import _sources
from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

ETC = Path(__file__).resolve().parents[3] / "etc"
EXAMPLE = ETC / "quickbooks-mpluskassa.example.toml"
DEMO = ETC / "quickbooks-mpluskassa.demo.toml"


@pytest.fixture
def clean_demo_env(monkeypatch):
    for var in [v for v in os.environ if v.startswith("DEMO_")]:
        monkeypatch.delenv(var)


def test_the_example_config_passes_check_and_shows_its_mappings(tmp_path, monkeypatch, capsys):
    for name in ("quickbooks_client_secret", "mplus_secret"):
        (tmp_path / name).write_text("secret\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("QBO_CLIENT_ID", "qbo-client")
    assert cli.main(["check", "--config", str(EXAMPLE)]) == 0, capsys.readouterr().err
    assert "4 flows" in capsys.readouterr().out
    assert cli.main(["flows", "mapping", "products_to_till", "--config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "articleNumber" in out and "Sku" in out


def test_the_example_names_a_missing_credential(tmp_path, monkeypatch, capsys):
    (tmp_path / "quickbooks_client_secret").write_text("secret\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("QBO_CLIENT_ID", "qbo-client")
    assert cli.main(["check", "--config", str(EXAMPLE)]) == 2
    assert "connections.till.secret" in capsys.readouterr().err


def test_the_demo_config_passes_check(clean_demo_env, capsys):
    cli._demo_credentials(DEMO, cli._registry())
    assert cli.main(["check", "--config", str(DEMO)]) == 0, capsys.readouterr().err
    assert "3 flows" in capsys.readouterr().out


@pytest.mark.anyio
async def test_the_demo_flows_run_between_the_simulators_as_the_demo_serves_them(tmp_path, clean_demo_env):
    registry = load_registry()
    cli._demo_credentials(DEMO, registry)
    raw = tomllib.loads(DEMO.read_text(encoding="utf-8"))
    raw["state"]["path"] = str(tmp_path / "state.db")
    raw["daemon"]["metrics_address"] = ""
    resolved = resolve(Config(**raw), registry, DEMO)
    sources = _sources(resolved)
    assert sources == {"quickbooks", "till"}  # both are read from: the demo seeds both
    apps = {name: conn.connector.simulator(seed=1, records=20 if name in sources else 0) for name, conn in resolved.connections.items()}
    transports = {name: httpx.ASGITransport(app=app) for name, app in apps.items()}

    async def round_of_runs() -> dict[str, dict]:
        counts = {}
        for flow in ("products_to_till", "customers_to_quickbooks", "orders_to_quickbooks"):
            store = SQLiteStore(tmp_path / "state.db")
            await store.open()
            engine = Engine(resolved, store, retry_base_delay=0, transports=transports)
            try:
                result = await engine.run_flow(flow)
            finally:
                await engine.aclose()
                await store.close()
            assert result.status == "ok" and result.counts["failed"] == 0, (flow, result.counts, result.error)
            counts[flow] = dict(result.counts)
        return counts

    first = await round_of_runs()
    assert all(c["created"] > 0 for c in first.values()), first
    qbo = apps["quickbooks"].state.sim
    assert len(qbo.store["SalesReceipt"]) == first["orders_to_quickbooks"]["created"]
    # the till's own articles the orders flow added to QuickBooks come back to the till once (prices
    # recomputed from the net price, to the cent); nothing is created twice, and then nothing changes
    second = await round_of_runs()
    assert all(c["created"] == 0 for c in second.values()), second
    assert second["products_to_till"]["updated"] <= first["products_to_till"]["created"], second
    third = await round_of_runs()
    assert all(c["created"] == 0 and c["updated"] == 0 for c in third.values()), third
