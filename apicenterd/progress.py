"""Progress of a run in flight: records done, rate, and an estimate of what is left where the
source says how much there is (a total of records, or of pages, as its paging answers tell).

The engine makes one :class:`Progress` per run and sets it as the current one for the run's task
(:func:`running`); the kit's paginators report what each page tells through :func:`note_page`, so
a connector built on them gives an estimate without doing anything. A hand-written source can call
:func:`note_page` (or set :attr:`Progress.total`) itself."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Progress", "current", "note_page", "running"]

_current: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("apicenterd_progress", default=None)


@dataclasses.dataclass
class Progress:
    """One run's progress. ``done``: records settled (the sum of ``counts``); ``total``: records the source says the read
    has (None: unknown); ``pages`` read so far and ``total_pages`` the source announced."""

    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    """The run's counts per action (kept up to date by the run): their sum is what is done."""
    started: float = dataclasses.field(default_factory=time.monotonic)
    total: int | None = None
    pages: int = 0
    total_pages: int | None = None
    items: int = 0
    """Items on the pages read so far (pages × their size, for an estimate by pages)."""
    listing: str | None = None
    """The listing (endpoint) the counts are of: the first one read; pages of other listings the
    source reads on the way (an order's lines, a look-up) do not count."""
    clock: Callable[[], float] = dataclasses.field(default=time.monotonic, repr=False)

    @property
    def done(self) -> int:
        """Records settled so far."""
        return sum(self.counts.values())

    def elapsed(self) -> float:
        """Seconds since the run began."""
        return max(self.clock() - self.started, 0.0)

    def rate(self) -> float:
        """Records settled per second so far."""
        elapsed = self.elapsed()
        return self.done / elapsed if elapsed > 0 else 0.0

    def expected(self) -> int | None:
        """How many records the read will have, as far as the source said: its total, or the pages
        it announced times the items per page so far; None when it did not say."""
        if self.total is not None:
            return max(self.total, self.done)
        if self.total_pages is not None and self.pages > 0:
            per_page = self.items / self.pages
            return max(round(per_page * self.total_pages), self.done)
        return None

    def remaining_seconds(self) -> float | None:
        """An estimate of the seconds left at the rate so far; None when the total is unknown (or no
        record is done yet)."""
        expected = self.expected()
        rate = self.rate()
        if expected is None or rate <= 0:
            return None
        return max(expected - self.done, 0) / rate

    def as_dict(self) -> dict[str, Any]:
        """For the run's row, the admin API and the logs."""
        remaining = self.remaining_seconds()
        return {
            "done": self.done,
            "rate_per_second": round(self.rate(), 2),
            "elapsed_seconds": round(self.elapsed(), 1),
            "total": self.expected(),
            "pages": self.pages,
            "total_pages": self.total_pages,
            "remaining_seconds": round(remaining, 1) if remaining is not None else None,
        }


def current() -> Progress | None:
    """The progress of the run the current task is doing, if any."""
    return _current.get()


@contextlib.contextmanager
def running(progress: Progress) -> Iterator[Progress]:
    """Make ``progress`` the current one while the ``with`` body runs (the engine, around a run)."""
    token = _current.set(progress)
    try:
        yield progress
    finally:
        _current.reset(token)


def note_page(items: int, *, total: int | None = None, total_pages: int | None = None, listing: str = "") -> None:
    """Tell the current run's progress that a page of ``items`` was read from ``listing`` (its
    endpoint), and what the vendor said of the whole listing (``total`` records, ``total_pages``
    pages). Only the first listing of a run counts; nothing when no run is current."""
    progress = _current.get()
    if progress is None:
        return
    if progress.listing is None:
        progress.listing = listing
    elif progress.listing != listing:
        return
    progress.pages += 1
    progress.items += items
    if total is not None and total >= 0:
        progress.total = total
    if total_pages is not None and total_pages >= 0:
        progress.total_pages = total_pages
