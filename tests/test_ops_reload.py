"""A reload (SIGHUP, ``apicenterd reload``) applies what can change live — the log level at once,
alert settings, retention — and says clearly which changed settings need a restart."""

from __future__ import annotations

import io
import json

import anyio
import pytest
import structlog
from test_daemon import until, write_config

from apicenterd.config import load
from apicenterd.daemon import Daemon, changed_settings, read_reload_status, reload_status_path
from apicenterd.observe import logs

pytestmark = pytest.mark.anyio


@pytest.fixture
def lines():
    stream = io.StringIO()
    logs.configure("info", stream=stream)
    yield stream
    structlog.reset_defaults()


def events(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_changed_settings_sorts_live_from_restart(tmp_path, registry):
    path = write_config(tmp_path)
    old = load(path, registry)
    text = path.read_text()
    path.write_text(
        text.replace('metrics_address = ""', 'metrics_address = "127.0.0.1:9999"\nlog_level = "debug"')
        .replace("stall_timeout = 1", "stall_timeout = 5")
        .replace('path = "state.db"', 'path = "other.db"\naudit_retention_days = 7')
        + '\n[alerts]\nwebhook_url = "https://hooks.example.test/x"\n'
    )
    live, restart = changed_settings(old, load(path, registry))
    assert sorted(live) == ["alerts.webhook_url", "daemon.log_level", "daemon.stall_timeout", "state.audit_retention_days"]
    assert sorted(restart) == ["daemon.metrics_address", "state.path"]
    assert changed_settings(old, old) == ([], [])


async def test_a_reload_applies_the_log_level_and_alerts_and_names_what_needs_a_restart(tmp_path, registry, lines):
    path = write_config(tmp_path)
    good = path.read_text()
    daemon = Daemon(path, registry, load(path, registry))
    status_path = reload_status_path(tmp_path / "state.db")
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(lambda: daemon.engine is not None and daemon.engine.last_result is not None)
            daemon.log.debug("probe before")  # info: not written
            path.write_text(
                good.replace('metrics_address = ""', 'metrics_address = "127.0.0.1:0"\nlog_level = "debug"').replace(
                    'path = "state.db"', 'path = "state.db"\naudit_retention_days = 7'
                )
                + '\n[alerts]\nwebhook_url = "https://hooks.example.test/x"\n'
            )
            result, reason = await daemon.reload_and_wait()
            assert result == "applied"
            assert reason is not None and "daemon.metrics_address" in reason and "next restart" in reason
            assert "log_level" not in reason and "alerts" not in reason
            status = read_reload_status(status_path)
            assert status is not None and status["result"] == "applied" and status["reason"] == reason
            # applied: the log level at once, for loggers the daemon keeps across reloads too
            daemon.log.debug("probe after")
            daemon.engine.log.debug("engine probe")
            assert daemon.alerter.config.webhook_url == "https://hooks.example.test/x"
            assert daemon.resolved.config.state.audit_retention_days == 7
            daemon.stop()
    written = events(lines)
    names = [e["event"] for e in written]
    assert "probe before" not in names and "probe after" in names and "engine probe" in names
    (warning,) = [e for e in written if e["event"].startswith("reload: some changed settings need a restart")]
    assert warning["restart_needed"] == ["daemon.metrics_address"] and warning["level"] == "warning"
    (done,) = [e for e in written if e["event"] == "configuration reloaded"]
    assert sorted(done["settings_applied"]) == ["alerts.webhook_url", "daemon.log_level", "state.audit_retention_days"]
