"""Run a flow in-process: once (:func:`run_once`), or until it settles (:func:`run_until_settled`, the
fault tests' loop). Each run is a fresh engine on the same state, as a restarted daemon would be."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from apicenterd.config import Config, resolve
from apicenterd.engine import Engine, RunResult
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

__all__ = ["resolved_config", "run_once", "run_until_settled"]


def resolved_config(
    folder: Path,
    connections: Mapping[str, tuple[str, Mapping[str, Any]]],
    flows: Mapping[str, Any],
    *,
    daemon: Mapping[str, Any] | None = None,
) -> Any:
    """The resolved config of ``connections`` (name → (connector, settings)) and ``flows`` (name → its
    table), the state in ``folder/state.db``; ``daemon`` defaults to warnings only, no metrics, a 5 s
    shutdown."""
    raw: dict[str, Any] = {
        "daemon": dict(daemon) if daemon is not None else {"log_level": "warning", "metrics_address": "", "shutdown_timeout": 5},
        "state": {"path": str(folder / "state.db")},
        "connections": {name: {"connector": connector, **settings} for name, (connector, settings) in connections.items()},
        "flows": flows,
    }
    return resolve(Config(**raw), load_registry(), folder / "apicenterd.toml")


async def run_once(
    resolved: Any,
    flow: str,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    retry_base_delay: float = 0.01,
    state_path: Path | None = None,
) -> RunResult:
    """Run flow ``flow`` of ``resolved`` once with a fresh engine on the state at ``state_path``
    (default: ``resolved.state_path``), the connections on ``transports`` (default: real HTTP);
    the engine and the store are closed whatever happens."""
    store = SQLiteStore(state_path if state_path is not None else resolved.state_path)
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=retry_base_delay, transports=transports)
    try:
        return await engine.run_flow(flow)
    finally:
        await engine.aclose()
        await store.close()


async def run_until_settled(
    resolved: Any, tmp_path: Path, transports: Mapping[str, httpx.AsyncBaseTransport], name: str, runs: int = 15
) -> list[tuple[str, dict[str, int]]]:
    """Run flow ``name`` of ``resolved`` (state in ``tmp_path/state.db``, the connections on
    ``transports``) until a run ends ok with nothing failed, at most ``runs`` times: the status and
    counts of every run; AssertionError naming them all (with each run's error) when it never settles."""
    history: list[tuple[str, dict[str, int]]] = []
    errors: list[str | None] = []
    for _ in range(runs):
        result = await run_once(resolved, name, transports=transports, retry_base_delay=0, state_path=tmp_path / "state.db")
        history.append((result.status, dict(result.counts)))
        errors.append(result.error)
        if result.status == "ok" and result.counts["failed"] == 0:
            return history
    raise AssertionError(f"{name} did not settle in {runs} runs: {list(zip(history, errors, strict=True))}")
