"""One run of one flow: everything the record path needs, in one object instead of parameters
threaded through the engine's helpers."""

from __future__ import annotations

import contextvars
import dataclasses
import functools
from typing import TYPE_CHECKING, Any

from .errors import ConnectorError
from .plugin import Connector, Found
from .progress import Progress
from .state.base import DeadLetter, Link, Settlement

if TYPE_CHECKING:  # pragma: no cover
    from .config import Flow

__all__ = ["COUNT_KEYS", "FlowRun", "GaveUp", "FAILURES_KEPT"]

_RECORD_WRITES: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar("apicenterd_record_writes", default=None)

COUNT_KEYS = ("created", "updated", "unchanged", "waiting", "skipped", "failed")
"""What a run counts. ``waiting``: a record that failed before, unchanged since, whose retry
waits out its backoff (its dead letter is open)."""

FAILURES_KEPT = 200
"""Failed records a run keeps (source id, key, reason) for its alert; the rest are counted only."""


class GaveUp(Exception):
    """A call to a connection failed for good (its retries spent, its credentials refused, its
    circuit open): the run stops. ``error`` is the vendor's error, ``connection`` the connection
    whose call it was (the one to pause on an AuthError)."""

    def __init__(self, error: ConnectorError, connection: str):
        super().__init__(str(error))
        self.error = error
        self.connection = connection


@dataclasses.dataclass
class FlowRun:
    """One run of ``flow``: its id, its connections, its logger and counts, and its own batch
    look-up (what the target's ``find_many`` returned for the batch in hand), so concurrent
    runs of different flows never see or clear each other's."""

    flow: Flow
    run_id: int
    source: Connector
    target: Connector
    log: Any
    counts: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    replay: bool = False
    looked_up: dict[str, Found | None] = dataclasses.field(default_factory=dict)
    """Key -> what the batch look-up found (None: not in the target); a key not here was not looked up."""
    links: dict[str, Link | None] = dataclasses.field(default_factory=dict)
    """Source id -> its link to the target, read for the batch in hand in one query (None: not
    linked); kept up to date as the batch settles. An id not here was not read."""
    letters: dict[str, DeadLetter | None] = dataclasses.field(default_factory=dict)
    """Source id -> its open dead letter, read for the batch in hand in one query (None: none).
    An id not here was not read (or failed again in this batch)."""
    pending_cursor: str | None = None
    """The cursor of the records settled but not saved yet: saved with the next settle or, with
    :attr:`settling`, at the end of the batch. A crash before that reads them again, harmlessly
    (a record whose write was confirmed but not settled is found by its key, never written twice)."""
    settling: list[Settlement] | None = None
    """The batch's settled records (audit entry, link, dead letter) not written yet: the engine
    writes them, with :attr:`pending_cursor`, in one transaction at the end of the batch (or
    when the run stops mid-batch). None: every settle is written at once (orders, replays)."""
    failures: list[tuple[str, str, str, str]] = dataclasses.field(default_factory=list)
    """(flow, source id, key, reason) of the first :data:`FAILURES_KEPT` failed records."""
    deferred: list[Any] | None = None
    """While a batch's creates are collected (the target creates in batches): per change, in order,
    the coroutine function that settles it once the creates are confirmed; None otherwise."""
    pending: list[Any] = dataclasses.field(default_factory=list)
    """The creates collected for the batch in hand: (key, record, holder of the outcome)."""
    pending_updates: list[Any] = dataclasses.field(default_factory=list)
    """The updates collected for the batch in hand (the target updates in batches): (key,
    (target_id, record, fields), holder of the outcome)."""

    pending_documents: list[Any] = dataclasses.field(default_factory=list)
    """The documents collected for the batch in hand (the document sink creates in batches):
    (order number, DocumentRequest, holder of the outcome)."""
    config_since: float = 0.0
    """Since when (Unix time) the flow's configuration is as it is now: a record that failed
    before that is tried again at once, not after its dead letter's pause (see Engine._config_since)."""
    pending_debtors: dict[str, Any] = dataclasses.field(default_factory=dict)
    """For an order flow whose documents and customers the target creates in batches: key -> the
    debtor (Customer) to create before the batch's documents (its orders hold a placeholder id)."""
    order_lookups: dict[tuple[Any, str], Found | None] = dataclasses.field(default_factory=dict)
    """For an order flow: (entity, key) -> the debtor or article the batch's look-up found (None:
    not in the target), kept up to date as the order process creates them."""

    def in_flight(self) -> list[tuple[str, dict[str, Any]]]:
        """(key, holder of the outcome) of the creates, updates and documents collected for the batch in hand."""
        return [(key, holder) for key, _, holder in (*self.pending, *self.pending_updates, *self.pending_documents)]

    @functools.cached_property
    def update_existing(self) -> bool:
        """The flow's ``update_existing`` option (read once a run, not dumped per record)."""
        return bool(self.flow.options.model_dump().get("update_existing", True))
    progress: Progress = dataclasses.field(default_factory=Progress)
    """Records done, rate and what the source said of the total (see :mod:`apicenterd.progress`)."""
    progress_saved: float = 0.0
    progress_logged: float = 0.0
    """Monotonic times the progress was last saved to the run's row and logged."""

    def __post_init__(self) -> None:
        self.progress.counts = self.counts
        self.progress_saved = self.progress_logged = self.progress.started

    @property
    def writes(self) -> list[dict[str, Any]]:
        """What the record in hand sent to the target so far (op, entity, target id, field diff): taken
        into its audit entry when it is settled. Kept per task (a context variable), so the records
        of one batch in flight together never mix their writes."""
        writes = _RECORD_WRITES.get()
        if writes is None:
            writes = []
            _RECORD_WRITES.set(writes)
        return writes

    @writes.setter
    def writes(self, value: list[dict[str, Any]]) -> None:
        _RECORD_WRITES.set(value)

    @property
    def name(self) -> str:
        """The flow's name."""
        return self.flow.name

    def count(self, action: str) -> None:
        """Count one settled record."""
        self.counts[action] += 1

    def failed(self, source_id: str, key: str, reason: str) -> None:
        """Note a failed record for the run's alert (at most :data:`FAILURES_KEPT` are kept)."""
        if len(self.failures) < FAILURES_KEPT:
            self.failures.append((self.flow.name, source_id, key, reason))
