"""A circuit breaker per connection: stop calling a vendor that keeps failing, probe, resume."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .errors import CircuitOpen
from .observe import metrics
from .observe.logs import get_logger

__all__ = ["CircuitBreaker", "CLOSED", "OPEN", "HALF_OPEN"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive failures → half-open after
    ``recovery_timeout`` seconds, when exactly one probe call goes through → closed when it
    succeeds, open again when it fails.

    While open (and while the probe is out), :meth:`admit` raises :class:`CircuitOpen`.
    The opening is logged once and the recovery once, however many probes fail in between;
    the gauge ``apicenterd_circuit_open{connection}`` is 1 from opening to recovery.
    """

    def __init__(
        self,
        connection: str,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        log: Any = None,
    ):
        if failure_threshold < 1 or recovery_timeout <= 0:
            raise ValueError(
                f"circuit breaker needs failure_threshold >= 1 and recovery_timeout > 0, "
                f"got {failure_threshold} and {recovery_timeout}"
            )
        self.connection = connection
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self._clock = clock
        self._log = log if log is not None else get_logger(connection=connection)
        self.state = CLOSED
        self.failures = 0  # consecutive
        self._opened_at = 0.0  # when this outage began (for the recovery log)
        self._retry_at = 0.0  # when the next probe may go
        self._probe_out = False
        self._last_error = ""
        metrics.circuit_open.labels(connection).set(0)

    @property
    def last_error(self) -> str:
        """What the last failed call died of."""
        return self._last_error

    def _refuse(self) -> CircuitOpen:
        wait = max(0.0, self._retry_at - self._clock())
        return CircuitOpen(
            f"connection {self.connection!r}: circuit open after {self.failure_threshold} consecutive failures "
            f"(last: {self._last_error}); next probe in {wait:.1f}s",
            retry_in=wait,
        )

    def check(self) -> None:
        """Raise :class:`CircuitOpen` if a call now would be refused; change nothing."""
        if self.state == CLOSED:
            return
        if self._probe_out or self._clock() < self._retry_at:
            raise self._refuse()

    def admit(self) -> bool:
        """Let a call through or raise :class:`CircuitOpen`; True when the call is the probe
        (its outcome must be reported: :meth:`success`, :meth:`failure` or :meth:`abandon`)."""
        if self.state == CLOSED:
            return False
        self.check()
        self.state = HALF_OPEN
        self._probe_out = True
        return True

    def success(self) -> None:
        """A call got an answer (2xx–4xx): the vendor is up."""
        self.failures = 0
        if self.state != CLOSED:
            self.state = CLOSED
            self._probe_out = False
            metrics.circuit_open.labels(self.connection).set(0)
            self._log.info(
                "circuit closed: connection recovered",
                circuit="closed",
                open_seconds=round(self._clock() - self._opened_at, 3),
            )

    def failure(self, error: str = "") -> None:
        """A call failed (5xx, timeout, connection error)."""
        self._last_error = error or self._last_error
        now = self._clock()
        if self.state == CLOSED:
            self.failures += 1
            if self.failures >= self.failure_threshold:
                self.state = OPEN
                self._opened_at = now
                self._retry_at = now + self.recovery_timeout
                metrics.circuit_open.labels(self.connection).set(1)
                self._log.warning(
                    "circuit opened: calls to the connection fail fast until a probe succeeds",
                    circuit="open",
                    failures=self.failures,
                    retry_in=self.recovery_timeout,
                    error=self._last_error,
                )
            return
        # a failed probe (or a call that was already in flight when the circuit opened)
        self.failures += 1
        if self.state == HALF_OPEN:
            self.state = OPEN
            self._probe_out = False
            self._retry_at = now + self.recovery_timeout
            self._log.debug("circuit probe failed", circuit="open", retry_in=self.recovery_timeout, error=self._last_error)

    def abandon(self) -> None:
        """The probe was cancelled before it got an outcome: let the next call probe instead."""
        if self.state == HALF_OPEN:
            self._probe_out = False
