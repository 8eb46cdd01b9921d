"""The command line: exit statuses, messages, JSON output."""

from __future__ import annotations

import json

import pytest

import apicenterd
from apicenterd import cli


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert apicenterd.__version__ in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nonsense"], "invalid choice"),
        (["runs", "--limit", "zero"], "not a whole number"),
        (["runs", "--limit", "0"], "must be at least 1"),
        (["simulate", "eaccounting", "--port", "70000"], "not a TCP port"),
        (["flows", "run"], "the following arguments are required: name"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_no_command_prints_help_and_exits_2(capsys):
    code, _, err = run_cli(capsys)
    assert code == 2 and "COMMAND" in err


def test_plugins_json_lists_bundled_connectors(capsys):
    pytest.importorskip("apicenterd_eaccounting")
    code, out, _ = run_cli(capsys, "plugins", "--json")
    assert code == 0
    data = json.loads(out)
    by_name = {c["name"]: c for c in data["connectors"]}
    assert by_name["eaccounting"]["distribution"] == "apicenterd-eaccounting"
    assert "products" in by_name["eaccounting"]["writes"]
    assert "products" in by_name["ccv_salespos"]["reads"]


def test_check_reports_every_mistake_with_its_path_and_exits_2(capsys, tmp_path):
    pytest.importorskip("apicenterd_eaccounting")
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        """
[connections.salespos]
connector = "ccv_salespos"
base_url = "http://127.0.0.1:1"
public_key = "p"
private_key = { env = "APICENTERD_TEST_UNSET_VARIABLE" }

[connections.eaccounting]
connector = "eaccounting"
base_url = "http://127.0.0.1:2"
client_id = "x"
client_secret = "y"
colour = "blue"

[flows.products_to_eaccounting]
source = "salespos"
target = "eacc"
entity = "products"
interval = "5 minutes"
""",
        encoding="utf-8",
    )
    code, out, err = run_cli(capsys, "check", "--config", str(cfg))
    assert code == 2 and out == ""
    assert 'flows.products_to_eaccounting.target: connection "eacc" is not defined (defined: eaccounting, salespos)' in err
    assert "connections.salespos.private_key: environment variable APICENTERD_TEST_UNSET_VARIABLE is not set" in err
    assert "connections.eaccounting.colour: unknown setting" in err
    assert "flows.products_to_eaccounting.interval:" in err
    assert "Traceback" not in err


def test_check_demo_config_passes(capsys, monkeypatch):
    pytest.importorskip("apicenterd_eaccounting")
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    registry = cli._registry()
    cli._demo_credentials(root / "etc" / "demo.toml", registry)
    code, out, err = run_cli(capsys, "check", "--config", str(root / "etc" / "demo.toml"))
    assert code == 0, err
    assert "3 flows" in out


def test_example_config_passes_check_with_credentials(capsys, monkeypatch, tmp_path):
    pytest.importorskip("apicenterd_eaccounting")
    from pathlib import Path

    for name in ("ccv_private_key", "eaccounting_client_secret", "eaccounting_refresh_token"):
        (tmp_path / name).write_text(f"secret-{name}\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    example = Path(__file__).resolve().parents[1] / "etc" / "apicenterd.example.toml"
    code, out, err = run_cli(capsys, "check", "--config", str(example))
    assert code == 0, err


def test_flows_run_unknown_flow(capsys):
    pytest.importorskip("apicenterd_eaccounting")
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cli._demo_credentials(root / "etc" / "demo.toml", cli._registry())
    code, _, err = run_cli(capsys, "flows", "run", "nope", "--config", str(root / "etc" / "demo.toml"))
    assert code == 2
    assert "no flow named 'nope' (defined: orders_to_eaccounting, products_to_eaccounting, stock_to_eaccounting)" in err


def test_simulate_unknown_connector(capsys):
    code, _, err = run_cli(capsys, "simulate", "nosuch")
    assert code == 2 and "no connector named 'nosuch'" in err


def test_orders_example_config_passes_check(capsys):
    pytest.importorskip("apicenterd_eaccounting")
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cli._demo_credentials(root / "etc" / "demo.toml", cli._registry())
    code, out, err = run_cli(capsys, "check", "--config", str(root / "etc" / "orders.example.toml"))
    assert code == 0, err
    code, out, err = run_cli(capsys, "flows", "mapping", "orders_to_eaccounting", "--config", str(root / "etc" / "orders.example.toml"))
    assert code == 0 and "reference" in out and "prefix('POS-')" in out


def test_reload_without_a_pid_it_can_find_asks_for_one(capsys, tmp_path):
    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text('[state]\npath = "state.db"\n')
    code, _, err = run_cli(capsys, "reload", "--config", str(cfg))
    assert code == 2 and "--pid" in err  # no daemon lock to read it from (or no daemon holds it)


def test_reload_of_a_process_that_is_gone_fails_with_a_message(capsys, tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text('[state]\npath = "state.db"\n')
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    code, _, err = run_cli(capsys, "reload", "--config", str(cfg), "--pid", str(gone.pid))
    assert code == 1 and f"no process {gone.pid}" in err


def test_reload_timeout_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reload", "--timeout", "0"])
    assert exc.value.code == 2 and "positive number of seconds" in capsys.readouterr().err


@pytest.mark.anyio
async def test_flows_run_first_signal_stops_between_records_second_cuts_off():
    import os
    import signal

    import anyio

    class Engine:
        stopped = 0

        def stop(self):
            self.stopped += 1

    engine, seen = Engine(), []
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            await tg.start(cli._stop_on_signals, engine, tg.cancel_scope, seen)
            os.kill(os.getpid(), signal.SIGTERM)
            while not engine.stopped:
                await anyio.sleep(0.01)
            assert not tg.cancel_scope.cancel_called  # the run goes on to the end of its record
            os.kill(os.getpid(), signal.SIGINT)
            await anyio.sleep_forever()  # cancelled by the second signal
    assert seen == [signal.SIGTERM, signal.SIGINT] and engine.stopped == 1
