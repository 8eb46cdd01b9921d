"""What every state store offers, whatever database is behind it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Link", "AuditEntry", "DeadLetter", "Run", "Settlement", "StateStore", "ACTIONS"]

ACTIONS = ("created", "updated", "unchanged", "skipped", "failed")
"""What can happen to a record in a run."""


@dataclasses.dataclass(frozen=True)
class Link:
    """Source record ↔ target record, and the hash of what was last written to the target."""

    source: str
    entity: str
    source_id: str
    target: str
    target_id: str
    hash: str
    updated_at: float = 0.0


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    """One record's fate in one run."""

    flow: str
    run_id: int
    entity: str
    source_id: str
    action: str
    target_id: str | None = None
    key: str | None = None
    reason: str | None = None
    at: float = 0.0
    id: int | None = None
    diff: str | None = None
    """What was written to the target for this record, as JSON: a list of writes, each ``{"op":
    "create"|"update", "entity", "target_id", "fields": {field: {"from": old, "to": new}}}`` (``from``
    left out where the target's value was not read). None when nothing was written."""

    def writes(self) -> list[dict[str, Any]]:
        """:attr:`diff` parsed (empty when nothing was written, or it cannot be read)."""
        import json

        try:
            data = json.loads(self.diff) if self.diff else []
        except ValueError:
            return []
        return data if isinstance(data, list) else []


@dataclasses.dataclass(frozen=True)
class Settlement:
    """One record's outcome as :meth:`StateStore.settle_many` writes it: its audit entry, its new
    link (if any) and, for a failed record, its ``payload`` (it enters the dead-letter queue)."""

    audit: AuditEntry
    link: Link | None = None
    payload: str | None = None


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """A record that failed, with what is needed to replay it. An open letter past its retention keeps
    its row but not its record: ``payload`` and ``key`` are None and ``purged_at`` says when."""

    id: int
    flow: str
    entity: str
    source_id: str
    key: str | None
    payload: str | None
    error: str
    attempts: int
    first_failed_at: float
    last_failed_at: float
    status: str
    purged_at: float | None = None

    @property
    def purged(self) -> bool:
        """Its record was removed (retention): it cannot be replayed, only discarded."""
        return self.purged_at is not None


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a flow."""

    id: int
    flow: str
    started_at: float
    finished_at: float | None
    status: str
    counts: Mapping[str, int]
    error: str | None = None
    trigger: str = "schedule"
    progress: Mapping[str, Any] | None = None
    """Of a run in progress, as last saved: ``done`` (records settled), ``rate_per_second``,
    ``elapsed_seconds``, ``total`` / ``pages`` / ``total_pages`` where the source says, and
    ``remaining_seconds`` (an estimate; None when unknown). Counts are saved with it."""
    daemon: str | None = None
    """The daemon that ran it (``host:pid``; PostgreSQL state, where several share the work)."""


class StateStore(Protocol):
    """The interface the engine uses: :class:`~apicenterd.state.SQLiteStore` (the default) and
    :class:`~apicenterd.state.postgres.PostgresStore` (``[state] url``).

    ``settle`` is the one write that matters for correctness: the link, the audit entry
    and the cursor of one record are written in one transaction, so after a crash either
    all of them are there or none.
    """

    async def open(self) -> None:
        """Connect and bring the schema to the newest version."""

    async def close(self) -> None:
        """Disconnect."""

    def flow_lock(
        self,
        flow: str,
        *,
        holder: str = "apicenterd",
        wait: bool = True,
        on_wait: Callable[[dict[str, Any]], None] | None = None,
    ) -> AbstractAsyncContextManager[None]:
        """Hold ``flow``'s lock while the ``async with`` body runs, so a flow never runs twice at once
        across every process on this store (daemon, ``flows run``, ``dlq replay``). If another holds it:
        raise :class:`~apicenterd.state.lock.FlowBusy` (naming the holder) when ``wait`` is false, else
        call ``on_wait`` once with what is known of the holder (``pid``, ``holder``, ``host``,
        ``started_at``) and wait, cancellably. SQLite: lock files; PostgreSQL: advisory locks."""

    async def schema_version(self) -> int:
        """The schema version in the database."""

    async def stored_schema_version(self) -> int:
        """The schema version in the database, read without opening the store (no migration applied);
        0 for a store never used (``apicenterd state migrate`` says what it changes)."""

    async def get_cursor(self, flow: str) -> str | None:
        """The flow's cursor, None before its first settled record."""

    async def set_cursor(self, flow: str, cursor: str | None) -> None:
        """Set (or with None, reset) the flow's cursor."""

    async def get_link(self, source: str, entity: str, source_id: str, target: str) -> Link | None:
        """The link of a source record to ``target``, if it was written there before."""

    async def get_links(self, source: str, entity: str, source_ids: Sequence[str], target: str) -> dict[str, Link]:
        """The links of several source records to ``target``, by source id (those without one left out)."""

    async def settle(
        self, audit: AuditEntry, *, link: Link | None = None, cursor: str | None = None, payload: str | None = None
    ) -> None:
        """Record a record's outcome, its link and the flow's new cursor in one transaction; a failed
        record with its ``payload`` enters the dead-letter queue, a settled one leaves it."""

    async def settle_many(self, flow: str, settlements: Sequence[Settlement], *, cursor: str | None = None) -> None:
        """Settle several records of ``flow`` (in order) and set its ``cursor`` (when given) in one
        transaction, each as :meth:`settle` would: all of it is written, or none. The engine settles
        a batch with one call; the cursor it gives never passes a record not in this call or before."""

    async def dead_letters(
        self,
        *,
        flow: str | None = None,
        status: str | None = "open",
        error: str | None = None,
        ids: Sequence[int] | None = None,
        limit: int = 1000,
    ) -> Sequence[DeadLetter]:
        """Dead letters matching every condition."""

    async def open_dead_letter(self, flow: str, source_id: str) -> DeadLetter | None:
        """The open dead letter of one source record."""

    async def open_dead_letters(self, flow: str, source_ids: Sequence[str]) -> dict[str, DeadLetter]:
        """The open dead letters of several source records of ``flow``, by source id."""

    async def set_dead_letter_status(self, ids: Sequence[int], status: str) -> int:
        """Change dead letters' status."""

    async def start_run(self, flow: str, trigger: str = "schedule") -> int:
        """Open a run; its id."""

    async def finish_run(self, run_id: int, status: str, counts: Mapping[str, int], error: str | None = None) -> None:
        """Close a run with its outcome."""

    async def run_progress(self, run_id: int, counts: Mapping[str, int], progress: Mapping[str, Any]) -> None:
        """Save the counts and progress of a run still running (``runs`` shows them while it runs)."""

    async def runs(self, flow: str | None = None, limit: int = 20) -> Sequence[Run]:
        """The newest runs, newest first."""

    async def audit(
        self, *, flow: str | None = None, source_id: str | None = None, run_id: int | None = None, limit: int = 100
    ) -> Sequence[AuditEntry]:
        """Audit entries, newest first."""

    async def load_tokens(self, connection: str) -> dict[str, Any] | None:
        """A connection's saved OAuth tokens."""

    async def save_tokens(self, connection: str, tokens: Mapping[str, Any]) -> None:
        """Persist a connection's tokens durably (fsync) before returning."""

    async def purge_audit(self, older_than: float) -> int:
        """Delete audit entries from before the Unix time ``older_than``; how many."""

    async def load_pause(self, connection: str) -> float | None:
        """Until when (Unix time) a vendor's 429 paused ``connection``, as last saved; None if never."""

    async def save_pause(self, connection: str, until: float) -> None:
        """Keep until when (Unix time) a vendor's 429 paused ``connection``."""

    async def purge_dead_letters(self, older_than: float) -> tuple[int, int]:
        """Dead letters last failed before ``older_than``: delete the resolved and discarded ones, remove
        the record (payload, key) from the open ones; (deleted, records removed)."""

    async def warn_dead_letters(self, older_than: float) -> dict[str, int]:
        """Mark open dead letters with their record, last failed before ``older_than``, not marked
        before; how many per flow."""

    async def purge_runs(self, older_than: float) -> int:
        """Delete runs finished before ``older_than``; how many."""

    async def check_file(self) -> None:
        """Raise :class:`~apicenterd.errors.StateError` if the state is gone (e.g. its file was deleted)."""

    async def save_copy(self, destination: str | Path) -> None:
        """Write a consistent copy of the open state to ``destination`` (a new file)."""
