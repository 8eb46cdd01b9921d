"""An address in use (metrics, a simulator's port) stops the command with a line naming the setting
and exit status 78 (EX_CONFIG), on which the systemd unit does not restart; never a traceback."""

from __future__ import annotations

import configparser
import socket
from pathlib import Path

import pytest
from test_daemon import write_config

from apicenterd import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def taken():
    """A port something listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_run_exits_78_naming_metrics_address_when_its_port_is_taken(tmp_path, registry, monkeypatch, capsys, taken):
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('metrics_address = ""', f'metrics_address = "127.0.0.1:{taken}"'))
    assert cli.main(["run", "--config", str(path)]) == cli.EXIT_CONFIG == 78
    err = capsys.readouterr().err
    assert f"daemon.metrics_address: cannot listen on 127.0.0.1:{taken}: Address already in use" in err
    assert "Traceback" not in err


def test_run_exits_78_on_a_configuration_mistake(tmp_path, registry, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('source = "src"', 'source = "gone"'))
    assert cli.main(["run", "--config", str(path)]) == 78
    assert 'flows.products.source: connection "gone" is not defined' in capsys.readouterr().err
    assert cli.main(["check", "--config", str(path)]) == 2  # check keeps its status: 2, a mistake in the file


def test_simulate_exits_78_naming_the_port_when_it_is_taken(capsys, taken):
    pytest.importorskip("apicenterd_eaccounting")
    assert cli.main(["simulate", "eaccounting", "--port", str(taken)]) == 78
    err = capsys.readouterr().err
    assert f"apicenterd: --port: cannot listen on 127.0.0.1:{taken}: Address already in use" in err and "Traceback" not in err


def test_demo_exits_78_naming_the_connection_whose_simulator_port_is_taken(tmp_path, capsys, taken):
    pytest.importorskip("apicenterd_ccv_salespos")
    demo = (ROOT / "etc" / "demo.toml").read_text(encoding="utf-8")
    config = tmp_path / "demo.toml"
    config.write_text(demo.replace("127.0.0.1:8701", f"127.0.0.1:{taken}").replace("../state/demo.db", "demo.db"), encoding="utf-8")
    assert f"127.0.0.1:{taken}" in config.read_text()
    assert cli.main(["demo", "--config", str(config), "--duration", "1"]) == 78
    err = capsys.readouterr().err
    assert f"connections.salespos.base_url (the demo's ccv_salespos simulator): cannot listen on 127.0.0.1:{taken}" in err
    assert "Traceback" not in err


def test_the_unit_does_not_restart_on_a_configuration_it_cannot_start_with():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((ROOT / "systemd" / "apicenterd.service").read_text(encoding="utf-8"))
    prevented = unit["Service"]["RestartPreventExitStatus"].split()
    assert str(cli.EXIT_CONFIG) in prevented and "74" in prevented
