"""schedule: intervals and cron expressions."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from apicenterd.schedule import Schedule, parse_interval


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("2d", 172800),
        ("250ms", 0.25),
        ("1.5h", 5400),
        ("5M", 300),
        ("90", 90),
        (90, 90),
        (0.5, 0.5),
    ],
)
def test_interval(text, seconds):
    assert parse_interval(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text, words",
    [
        ("0s", "longer than zero"),
        (0, "longer than zero"),
        (-5, "longer than zero"),
        ("-5", "longer than zero"),
        ("abc", "is not a duration"),
        ("5 minutes", "is not a duration"),
        ("m5", "is not a duration"),
        ("1h30", "is not a duration"),
        ("", "is empty"),
        (True, "must be a duration"),
        (False, "must be a duration"),
        (float("nan"), "is not a duration"),
        (float("inf"), "is not a duration"),
        ("inf", "is not a duration"),
        ("nan", "is not a duration"),
    ],
)
def test_bad_interval(text, words):
    with pytest.raises(ValueError, match=words):
        parse_interval(text)


def test_schedule_interval_and_next():
    schedule = Schedule.parse("1h30m", None)
    assert schedule.interval == 5400 and schedule.cron is None
    assert schedule.next_after(1000.0) == 6400.0
    assert schedule.describe() == "every 5400s"


@pytest.mark.parametrize("cron", ["*/5 * * * *", "0 3 * * 1-5", "15,45 8-18 * * *"])
def test_valid_cron(cron):
    schedule = Schedule.parse(None, cron)
    assert schedule.cron == cron and schedule.interval is None
    assert schedule.describe() == f"cron {cron}"


@pytest.mark.parametrize("cron", ["", "not cron", "61 * * * *", "* * *", "* 25 * * *", "*/0 * * * *"])
def test_invalid_cron(cron):
    with pytest.raises(ValueError, match="is not valid"):
        Schedule.parse(None, cron)


@pytest.mark.parametrize(
    "cron, after, expected",
    [
        ("*/5 * * * *", datetime(2026, 1, 1, 10, 2, 30, tzinfo=timezone.utc), datetime(2026, 1, 1, 10, 5, tzinfo=timezone.utc)),
        ("*/5 * * * *", datetime(2026, 1, 1, 10, 5, tzinfo=timezone.utc), datetime(2026, 1, 1, 10, 10, tzinfo=timezone.utc)),  # strictly after
        ("0 3 * * *", datetime(2026, 1, 1, 3, 0, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, 3, 0, tzinfo=timezone.utc)),
        ("0 9 * * 1", datetime(2026, 3, 4, 12, 0, tzinfo=timezone.utc), datetime(2026, 3, 9, 9, 0, tzinfo=timezone.utc)),  # next Monday
    ],
)
def test_cron_next_after_is_utc(cron, after, expected):
    schedule = Schedule.parse(None, cron)
    assert schedule.next_after(after.timestamp()) == expected.timestamp()


@pytest.mark.parametrize("interval, cron", [(None, None), ("5m", "*/5 * * * *")])
def test_exactly_one_of_interval_and_cron(interval, cron):
    with pytest.raises(ValueError, match="exactly one"):
        Schedule.parse(interval, cron)


# -- bounds and crons that never fire (issue 9) --------------------------------------------------


@pytest.mark.parametrize("interval", ["0.5s", "250ms", 0.999, 1e-7, "366d", 365 * 86400 + 1, 1e300])
def test_interval_out_of_bounds(interval):
    with pytest.raises(ValueError, match=r"must be between 1s and 365d"):
        Schedule.parse(interval, None)


@pytest.mark.parametrize("interval, seconds", [("1s", 1), (1, 1), ("365d", 365 * 86400), ("1000ms", 1)])
def test_interval_bounds_are_inclusive(interval, seconds):
    assert Schedule.parse(interval, None).interval == seconds


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 11 *", "0 0 1 1 * 0 1999"])
def test_cron_that_never_fires(cron):
    with pytest.raises(ValueError, match=r"never fires"):
        Schedule.parse(None, cron)


@pytest.mark.parametrize("cron", ["0 0 29 2 *", "0 0 31 2 1", "0 0 L 2 *", "@yearly"])
def test_cron_that_fires_rarely_or_by_weekday(cron):
    assert Schedule.parse(None, cron).cron == cron
