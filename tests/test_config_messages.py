"""`apicenterd check` messages a newcomer can act on: an environment override's mistake is said of the
variable, one mistake does not hide the others, a secret in an unknown form names the accepted ones,
and an interval without a unit is refused saying which units there are."""

from __future__ import annotations

import pytest
from test_config import GOOD, problems_of, reg, vault_toml, write  # noqa: F401 - reg is a fixture

from apicenterd import cli


def test_a_typo_in_an_environment_override_is_said_of_the_variable(tmp_path, reg, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("APICENTERD_DAEMON__LOG_LEVL", "debug")
    monkeypatch.setenv("APICENTERD_CONNECTIONS__SRC__BASE_URL", "not a url")
    text = GOOD.replace('path = "state.db"', 'path = "state.db"\nretention = 3')  # and one in the file
    problems = problems_of(tmp_path, text, reg)
    assert "environment APICENTERD_DAEMON__LOG_LEVL: daemon.log_levl: unknown setting" in problems
    assert "state.retention: unknown setting" in problems
    assert any(p.startswith("environment APICENTERD_CONNECTIONS__SRC__BASE_URL: connections.src.base_url: ") for p in problems)
    assert len(problems) == 3, problems

    monkeypatch.setattr(cli, "_registry", lambda: reg)
    code = cli.main(["check", "--config", str(tmp_path / "apicenterd.toml")])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert "environment APICENTERD_DAEMON__LOG_LEVL: daemon.log_levl: unknown setting" in err  # not "<file>: ..."
    assert f"{tmp_path / 'apicenterd.toml'}: state.retention: unknown setting" in err


def test_one_unknown_key_does_not_hide_the_other_mistakes(tmp_path, reg):  # noqa: F811
    text = GOOD.replace("[state]", 'colour = "blue"\n\n[state]')
    text = text.replace('interval = "1m"', 'interval = "1m"\nintervall = "2m"\ncreate_only_fields = ["nope"]')
    text += '\n[flows.orders]\nsource = "src"\ntarget = "nowhere"\nentity = "products"\ninterval = "5m"\n'
    text += '\n[flows.stock]\nsource = "src"\ntarget = "dst"\nentity = "stock"\ninterval = "5m"\noptions = { available = "guess" }\n'
    problems = problems_of(tmp_path, text, reg)
    assert {"colour: unknown setting", "flows.products.intervall: unknown setting"} <= set(problems)
    assert any(p.startswith('flows.orders.target: connection "nowhere" is not defined') for p in problems)
    assert any(p.startswith("flows.stock.options.available: ") for p in problems)
    assert any(p.startswith("flows.products.create_only_fields[0]: products have no field 'nope'") for p in problems)
    assert len(problems) == 5, problems  # and nothing made up by leaving the wrong settings out


def test_a_required_setting_that_is_wrong_is_said_once(tmp_path, reg):  # noqa: F811
    problems = problems_of(tmp_path, GOOD.replace('entity = "products"', 'entity = "gadgets"'), reg)
    assert len(problems) == 1 and problems[0].startswith("flows.products.entity: "), problems


@pytest.mark.parametrize("value", ['{ vault = "x" }', '{ secret = "x", env = "Y" }'])
def test_a_secret_in_an_unknown_form_names_the_accepted_ones(tmp_path, reg, value):  # noqa: F811
    problems = problems_of(tmp_path, vault_toml(value), reg)
    assert len(problems) == 1, problems
    assert problems[0].startswith("connections.v.api_key: expected a string, or a secret by reference: ")
    assert '{ env = "NAME" }, { file = "/path" } or { credential = "name" }' in problems[0]
    assert "Input should be a valid string" not in problems[0]


def test_an_interval_without_a_unit_is_refused(tmp_path, reg):  # noqa: F811
    problems = problems_of(tmp_path, GOOD.replace('interval = "1m"', "interval = 15"), reg)
    assert problems == ['flows.products.interval: 15 has no unit: write "15s" (seconds), "15m" (minutes) or "15h" (hours)']
