"""``apicenterd simulate`` prints the connection table its simulator accepts (the connector's
``demo_settings``), and that table, pasted into a configuration, runs a flow against the simulator."""

from __future__ import annotations

import tomllib

from apicenterd import cli
from apicenterd.cli.demo import demo_connection
from apicenterd.registry import load_registry
from apicenterd.testing import serve_app


def test_every_bundled_simulators_table_is_valid_toml_with_the_demo_credentials():
    registry = load_registry()
    for name, connector in registry.connectors.items():
        table = tomllib.loads(demo_connection(connector, "http://127.0.0.1:8799"))["connections"][name]
        assert table["connector"] == name
        assert {k: v for k, v in table.items() if k != "connector"} == connector.demo_settings("http://127.0.0.1:8799")


def test_the_printed_tables_run_a_flow_against_the_simulators(tmp_path, capsys):
    registry = load_registry()
    ccv, eacc = registry.connector("ccv_salespos"), registry.connector("eaccounting")
    with serve_app(ccv.simulator(seed=1, records=5)) as ccv_url, serve_app(eacc.simulator(seed=1, records=0)) as eacc_url:
        config = tmp_path / "apicenterd.toml"
        config.write_text(
            f"""
[daemon]
metrics_address = ""
[state]
path = "state.db"

{demo_connection(ccv, ccv_url)}

{demo_connection(eacc, eacc_url)}

[flows.products]
source = "ccv_salespos"
target = "eaccounting"
entity = "products"
interval = "5m"
""",
            encoding="utf-8",
        )
        assert cli.main(["check", "--config", str(config)]) == 0
        code = cli.main(["flows", "run", "products", "--config", str(config), "--local"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "flow products run 1: ok: created 5" in out
