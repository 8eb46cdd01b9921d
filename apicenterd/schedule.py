"""Flow schedules: a fixed interval ("30s", "5m", "1h30m") or a cron expression."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import datetime, timezone

__all__ = ["Schedule", "parse_interval", "MIN_INTERVAL", "MAX_INTERVAL"]

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_interval(text: str | int | float) -> float:
    """Seconds in an interval like ``90``, ``"30s"``, ``"5m"`` or ``"1h30m"``; ValueError if unreadable."""
    if isinstance(text, bool):
        raise ValueError(f"interval must be a duration like '30s' or '5m', got {text!r}")
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        compact = text.replace(" ", "").lower()
        if not compact:
            raise ValueError("interval is empty; use a duration like '30s' or '5m'")
        pos, seconds = 0, 0.0
        for match in _INTERVAL_RE.finditer(compact):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(compact):
            try:
                seconds, pos = float(compact), len(compact)
            except ValueError:
                raise ValueError(f"interval {text!r} is not a duration like '30s', '5m' or '1h30m'") from None
    if not math.isfinite(seconds):  # TOML has nan and inf, and float() reads them too
        raise ValueError(f"interval {text!r} is not a duration like '30s', '5m' or '1h30m'")
    if seconds <= 0:
        raise ValueError(f"interval {text!r} must be longer than zero")
    return seconds


MIN_INTERVAL = 1.0
"""The shortest flow interval, in seconds: a shorter one only makes a flow run back to back."""
MAX_INTERVAL = 365 * 86400.0
"""The longest flow interval, in seconds (a year)."""
CRON_HORIZON_YEARS = 10
"""A cron expression must fire within this many years (29 February comes back within 8)."""


def _check_cron_fires(cron: str) -> None:
    """ValueError if ``cron`` never fires, e.g. ``0 0 31 2 *`` (31 February)."""
    from croniter import CroniterBadDateError, croniter

    try:
        croniter(cron, datetime.now(timezone.utc), max_years_between_matches=CRON_HORIZON_YEARS).get_next(float)
    except (CroniterBadDateError, ValueError, OverflowError):
        raise ValueError(
            f"cron expression {cron!r} never fires (no time matches it in the next {CRON_HORIZON_YEARS} years; "
            "e.g. 30 or 31 February)"
        ) from None


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When a flow runs: every ``interval`` seconds, or at the times of ``cron`` (UTC)."""

    interval: float | None = None
    cron: str | None = None

    @classmethod
    def parse(cls, interval: str | int | float | None, cron: str | None) -> Schedule:
        """A Schedule from a flow's ``interval`` or ``cron`` setting (exactly one); ValueError otherwise."""
        if (interval is None) == (cron is None):
            raise ValueError("give exactly one of 'interval' (e.g. \"5m\") or 'cron' (e.g. \"*/5 * * * *\")")
        if cron is not None:
            from croniter import croniter

            if not croniter.is_valid(cron):
                raise ValueError(f"cron expression {cron!r} is not valid (five fields: minute hour day month weekday)")
            _check_cron_fires(cron)
            return cls(cron=cron)
        assert interval is not None  # exactly one of the two (checked above)
        seconds = parse_interval(interval)
        if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
            raise ValueError(
                f"interval {interval!r}{f' ({seconds:g} seconds)' if isinstance(interval, str) else ''} "
                f"must be between {MIN_INTERVAL:g}s and {MAX_INTERVAL / 86400:g}d"
            )
        return cls(interval=seconds)

    def next_after(self, when: float) -> float:
        """The Unix time of the first run after ``when``."""
        if self.interval is not None:
            return when + self.interval
        from croniter import croniter

        assert self.cron is not None  # a Schedule has an interval or a cron
        start = datetime.fromtimestamp(when, tz=timezone.utc)
        return croniter(self.cron, start).get_next(float)

    def describe(self) -> str:
        """``every 30s`` or ``cron */5 * * * *``."""
        if self.interval is not None:
            return f"every {self.interval:g}s"
        return f"cron {self.cron}"
