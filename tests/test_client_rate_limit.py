"""``client_rate_limit = false``: a connection without its connector's declared client-side rate
limit — validated, warned about by ``apicenterd check`` and when the connection opens."""

from __future__ import annotations

import types

import fakes
import pytest
from structlog.testing import capture_logs

from apicenterd import RateLimit, cli, hookimpl
from apicenterd.config import load
from apicenterd.engine import Engine
from apicenterd.errors import ConfigError
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore


class LimitedTarget(fakes.MemoryTarget):
    """The memory target, declaring a vendor limit like a real connector."""

    name = "limitedtarget"
    rate_limits = (RateLimit(5, 60.0, name="minutely"),)


plugin = types.ModuleType("limited_plugin")


@hookimpl
def register_connectors(register):
    register(fakes.MemorySource)
    register(LimitedTarget)


plugin.register_connectors = register_connectors  # type: ignore[attr-defined]


@pytest.fixture
def limited_registry():
    fakes.MemoryStore.reset()
    return load_registry([("limited_plugin", plugin)], entry_points=False)


def write(tmp_path, setting: str = "") -> str:
    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text(
        f"""
[state]
path = "{tmp_path / "state.db"}"

[connections.src]
connector = "memsource"

[connections.dst]
connector = "limitedtarget"
{setting}

[flows.products]
source = "src"
target = "dst"
entity = "products"
interval = "1m"
""",
        encoding="utf-8",
    )
    return str(cfg)


@pytest.mark.parametrize("value", ['"maybe"', "2", "0", '"off"', "[]"])
def test_a_value_that_is_not_true_or_false_is_a_config_error_naming_the_setting(tmp_path, limited_registry, value):
    with pytest.raises(ConfigError) as exc:
        load(write(tmp_path, f"client_rate_limit = {value}"), limited_registry)
    text = "; ".join(exc.value.problems)
    assert "connections.dst.client_rate_limit" in text and "true or false" in text, text


def test_check_warns_that_the_limit_is_off(tmp_path, capsys, monkeypatch, limited_registry):
    monkeypatch.setattr(cli, "_registry", lambda: limited_registry)
    cfg = write(tmp_path, "client_rate_limit = false")
    assert cli.main(["check", "--config", cfg]) == 0
    out, err = capsys.readouterr()
    assert "OK" in out
    assert "warning: connections.dst.client_rate_limit = false" in err and "5 calls / 60 s (minutely)" in err, err
    # on (the default, or said so): no warning
    for setting in ("", "client_rate_limit = true"):
        assert cli.main(["check", "--config", write(tmp_path, setting)]) == 0
        assert "warning" not in capsys.readouterr().err


def test_an_environment_override_turns_it_off(tmp_path, monkeypatch, limited_registry):
    monkeypatch.setenv("APICENTERD_CONNECTIONS__DST__CLIENT_RATE_LIMIT", "false")
    resolved = load(write(tmp_path), limited_registry)
    assert resolved.connections["dst"].settings.client_rate_limit is False


@pytest.mark.anyio
@pytest.mark.parametrize("off", [False, True])
async def test_the_engine_opens_the_connection_without_the_declared_limit_and_says_so(tmp_path, limited_registry, off):
    resolved = load(write(tmp_path, "client_rate_limit = false" if off else ""), limited_registry)
    store = SQLiteStore(resolved.state_path)
    await store.open()
    try:
        with capture_logs() as logs:
            engine = Engine(resolved, store)
            try:
                await engine.open()
                limits = engine.connectors["dst"].context.limiters.limits
            finally:
                await engine.aclose()
    finally:
        await store.close()
    warnings = [e for e in logs if e["log_level"] == "warning" and "client-side rate limit off" in e["event"]]
    if off:
        assert limits == () and len(warnings) == 1 and warnings[0]["connection"] == "dst"
    else:
        assert limits == LimitedTarget.rate_limits and not warnings
    # the source declares nothing: never warned about
    assert not any(e.get("connection") == "src" for e in warnings)


