"""Run a flow in-process until it settles: the fault tests' loop (each run a fresh engine on the same
state, as a restarted daemon would be)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from apicenterd.engine import Engine
from apicenterd.state import SQLiteStore

__all__ = ["run_until_settled"]


async def run_until_settled(
    resolved: Any, tmp_path: Path, transports: Mapping[str, httpx.AsyncBaseTransport], name: str, runs: int = 15
) -> list[tuple[str, dict[str, int]]]:
    """Run flow ``name`` of ``resolved`` (state in ``tmp_path/state.db``, the connections on
    ``transports``) until a run ends ok with nothing failed, at most ``runs`` times: the status and
    counts of every run; AssertionError naming them all when it never settles."""
    history: list[tuple[str, dict[str, int]]] = []
    for _ in range(runs):
        store = SQLiteStore(tmp_path / "state.db")
        await store.open()
        engine = Engine(resolved, store, retry_base_delay=0, transports=transports)
        try:
            result = await engine.run_flow(name)
        finally:
            await engine.aclose()
            await store.close()
        history.append((result.status, dict(result.counts)))
        if result.status == "ok" and result.counts["failed"] == 0:
            return history
    raise AssertionError(f"{name} did not settle in {runs} runs: {history}")
