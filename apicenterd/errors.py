"""The error hierarchy, sorted by what the runner must do about each error.

::

    ApicenterError
    ├── ConfigError            the configuration is wrong; nothing runs until it is fixed
    ├── PluginError            a plugin failed to load or declares nonsense; it is skipped
    ├── StateError             the state file cannot be used (disk full, damaged, read-only, deleted)
    ├── WebhookRejected        a webhook that is unsigned, wrongly signed or malformed: answered 4xx, counted
    └── ConnectorError         raised by connectors while talking to a vendor
        ├── RetryableError     timeouts, dropped connections, 5xx: retry with backoff
        │   ├── RateLimited    429: wait ``retry_after`` seconds, then retry
        │   └── CircuitOpen    the connection kept failing; calls fail fast until a probe succeeds
        ├── AuthError          credentials rejected: refresh once, then pause the connection and alert
        ├── FatalError         the contract is broken (unexpected response shape): stop this run
        │   └── ResponseTooLarge   a body over the connection's max_response_bytes: not retried
        └── RecordError        this record cannot be written (validation, missing SKU): record it, go on

Connectors translate vendor responses into these; the engine decides what to do.
"""

from __future__ import annotations

import math

from .observe.logs import redactor

__all__ = [
    "ApicenterError",
    "ConfigError",
    "PluginError",
    "StateError",
    "WebhookRejected",
    "EXIT_STATE",
    "ConnectorError",
    "RetryableError",
    "RateLimited",
    "CircuitOpen",
    "AuthError",
    "FatalError",
    "ResponseTooLarge",
    "RecordError",
]

EXIT_STATE = 74
"""Exit status when the state file cannot be used (``EX_IOERR`` of sysexits.h); the systemd unit
does not restart on it (``RestartPreventExitStatus=74``): an operator has to look first."""

RETRY_AFTER_CAP = 3600.0
"""No vendor gets to park a connection for more than an hour with one 429."""


class ApicenterError(Exception):
    """Base of every error apicenterd raises on purpose."""


class WebhookRejected(ApicenterError):
    """A connector refuses a webhook: ``reason`` says why (shown to the sender and counted).
    ``malformed`` (400): the body or URL cannot be understood; otherwise (401) the request is not
    proven to come from the vendor (no or a wrong signature)."""

    def __init__(self, reason: str, *, malformed: bool = False):
        self.reason = reason
        self.malformed = malformed
        super().__init__(reason)


class ConfigError(ApicenterError):
    """The configuration is invalid; ``problems`` lists each mistake as ``path: message``."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class PluginError(ApicenterError):
    """A plugin could not be loaded or declares something invalid."""


class StateError(ApicenterError):
    """The state file cannot be read or written. The message names the file, the cause and what to do.

    ``path`` is the state file; ``cause`` a short tag: ``full``, ``damaged``, ``readonly``,
    ``cannot_open``, ``io``, ``locked``, ``deleted`` or ``replaced``.
    """

    def __init__(self, message: str, *, path: str = "", cause: str = ""):
        super().__init__(message)
        self.path = path
        self.cause = cause


class ConnectorError(ApicenterError):
    """An error while talking to a vendor's API.

    ``status`` is the HTTP status if there was one; ``vendor_code`` the vendor's own error
    code (e.g. eAccounting ``4010``, CCV ``429.10``). Every known secret (configured, or a
    token learned at run time) is redacted from ``message`` when the error is made: a vendor
    body that echoes the request's ``Authorization`` header never carries the live token on.
    """

    def __init__(self, message: str, *, status: int | None = None, vendor_code: str | None = None):
        super().__init__(redactor.scrub(message) if isinstance(message, str) else message)
        self.status = status
        self.vendor_code = vendor_code


class RetryableError(ConnectorError):
    """A transient failure: the same request may succeed later."""


class RateLimited(RetryableError):
    """The vendor said to slow down; wait ``retry_after`` seconds (None: unknown) before retrying.

    ``retry_after`` is kept between 0 and :data:`RETRY_AFTER_CAP` however it is set (a header,
    a number read from an error body, an assignment later on); NaN counts as unknown.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = None, vendor_code: str | None = None
    ) -> None:
        super().__init__(message, status=status, vendor_code=vendor_code)
        self.retry_after = retry_after

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait, capped; None when the vendor did not say."""
        return self._retry_after

    @retry_after.setter
    def retry_after(self, value: float | None) -> None:
        if value is None or math.isnan(value):
            self._retry_after = None
        else:
            self._retry_after = min(max(float(value), 0.0), RETRY_AFTER_CAP)


class BudgetSpent(RateLimited):
    """A flow's share of its connection's day budget is spent (see :mod:`apicenterd.budget`): the
    run stops between records, what it settled stays, and the flow resumes from its cursor when
    the budget allows again. ``flow`` is the flow, ``resume_at`` the Unix time it may spend again,
    ``left`` the calls left in the day, ``reserved`` those kept for flows of a higher priority.
    The engine never retries it; a connector that handles :class:`RateLimited` sees a wait."""

    def __init__(
        self,
        message: str,
        *,
        connection: str,
        flow: str,
        resume_at: float,
        left: int,
        reserved: int,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.connection = connection
        self.flow = flow
        self.resume_at = resume_at
        self.left = left
        self.reserved = reserved


class CircuitOpen(RetryableError):
    """Calls to this connection fail fast: it failed repeatedly, and no probe has succeeded yet.

    ``retry_in`` is the number of seconds until the next probe call is let through.
    """

    def __init__(self, message: str, *, retry_in: float = 0.0, status: int | None = None, vendor_code: str | None = None) -> None:
        super().__init__(message, status=status, vendor_code=vendor_code)
        self.retry_in = retry_in


class AuthError(ConnectorError):
    """Credentials were rejected, or a refresh token is no longer valid.

    ``reauthorize`` says whether ``apicenterd auth CONNECTION`` (a user's consent again) is the fix
    (the default). A connector sets it False where it is not, e.g. a service app (client
    credentials) that lacks a scope or whose credentials are refused: its message then names the
    fix, and the engine's paused-connection message and alert carry that instead of ``apicenterd auth``."""

    def __init__(self, message: str, *, status: int | None = None, vendor_code: str | None = None, reauthorize: bool = True) -> None:
        super().__init__(message, status=status, vendor_code=vendor_code)
        self.reauthorize = reauthorize


def pause_fix(connection: str, exc: BaseException | None = None) -> str:
    """What the operator does about ``connection`` paused by the AuthError ``exc``: re-authorise it,
    or (``exc.reauthorize`` False) what the error's message says, then reload the daemon."""
    if exc is not None and not getattr(exc, "reauthorize", True):
        return "fix what the reason says (re-authorising does not help), then systemctl reload apicenterd"
    return f"apicenterd auth {connection} --config FILE, then systemctl reload apicenterd"


class FatalError(ConnectorError):
    """The vendor answered in a way the connector cannot make sense of; stop the run."""


class ResponseTooLarge(FatalError):
    """A response body is larger than the connection's ``max_response_bytes``: the request fails
    (reading more, or asking again, would only download the same flood). ``limit`` is the cap,
    ``received`` the body bytes read before giving up, ``declared`` the Content-Length if any."""

    def __init__(
        self,
        message: str,
        *,
        limit: int,
        received: int = 0,
        declared: int | None = None,
        status: int | None = None,
        vendor_code: str | None = None,
    ) -> None:
        super().__init__(message, status=status, vendor_code=vendor_code)
        self.limit = limit
        self.received = received
        self.declared = declared


class RecordError(ConnectorError):
    """This one record cannot be read or written; the run goes on with the next."""
