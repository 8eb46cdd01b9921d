"""Replaying dead letters: the same idempotent path again, as a run of its own per flow."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .errors import ConnectorError, RecordError
from .flowrun import COUNT_KEYS, FlowRun, GaveUp
from .model import RECORD_TYPES, Entity
from .observe.logs import error_text
from .plugin import Change, Connector
from .state import DeadLetter, StateStore

if TYPE_CHECKING:  # pragma: no cover
    from .config import Resolved

__all__ = ["Replaying"]


class Replaying:
    """Dead-letter replay (a mixin of :class:`~apicenterd.engine.Engine`)."""

    resolved: Resolved
    store: StateStore
    connectors: dict[str, Connector]
    log: Any

    def _exclusive(self, name: str, trigger: str) -> contextlib.AbstractAsyncContextManager[bool]:  # pragma: no cover
        raise NotImplementedError

    async def open(self, names: list[str] | None = None) -> None:  # pragma: no cover - the engine's
        raise NotImplementedError

    async def _process(self, run: FlowRun, change: Change) -> str:  # pragma: no cover - the engine's
        raise NotImplementedError

    async def replay(self, letters: Sequence[DeadLetter]) -> dict[str, int]:
        """Take dead letters through the same idempotent path again; counts per action."""
        counts = dict.fromkeys(COUNT_KEYS, 0)
        purged = [letter.id for letter in letters if letter.payload is None]
        if purged:
            raise RecordError(
                f"dead letter(s) {', '.join(map(str, purged))}: their record was removed after "
                "[state] dead_letter_retention_days; they cannot be replayed, only discarded"
            )
        by_flow: dict[str, list[DeadLetter]] = {}
        for letter in letters:
            by_flow.setdefault(letter.flow, []).append(letter)
        for name, items in by_flow.items():
            flow = self.resolved.flows.get(name)
            if flow is None:
                raise RecordError(f"dead letters of flow {name!r}, which the configuration no longer has")
            async with self._exclusive(name, "replay") as acquired:
                if not acquired:  # stopped while waiting for another process's run
                    break
                await self.open([flow.source, flow.target])
                run_id = await self.store.start_run(name, "replay")
                run = FlowRun(
                    flow,
                    run_id,
                    self.connectors[flow.source],
                    self.connectors[flow.target],
                    self.log.bind(flow=name, run=run_id, entity=str(flow.entity)),
                    replay=True,
                )
                status, error = "ok", None
                try:
                    for letter in items:
                        assert letter.payload is not None
                        record = RECORD_TYPES[Entity(letter.entity)].model_validate_json(letter.payload)
                        action = await self._process(run, Change(letter.source_id, record, None))
                        run.count(action)
                        run.log.info("dead letter replayed", dead_letter=letter.id, source_id=letter.source_id, action=action)
                except (ConnectorError, GaveUp) as exc:
                    status, error = "failed", error_text(exc.error if isinstance(exc, GaveUp) else exc)
                    run.log.error("replay stopped", error=error)
                finally:
                    with anyio.CancelScope(shield=True):
                        await self.store.finish_run(run_id, status, run.counts, error)
                for k, v in run.counts.items():
                    counts[k] += v
                if error:
                    raise RecordError(f"replay of flow {name!r} stopped: {error}")
        return counts
