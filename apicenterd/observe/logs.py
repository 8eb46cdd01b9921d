"""structlog set up for JSON lines on stdout, with every known secret redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

import structlog

__all__ = ["configure", "Redactor", "redactor", "get_logger"]

REDACTED = "[redacted]"
SENSITIVE_KEYS = frozenset(
    {"password", "secret", "private_key", "client_secret", "access_token", "refresh_token", "authorization", "token"}
)


class Redactor:
    """Replaces every registered secret value, and values of sensitive keys, in log events."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        """Register secret values to hide wherever they appear (values under 4 characters are ignored)."""
        self._secrets.update(v for v in values if v and len(v) >= 4)

    def scrub(self, value: Any) -> Any:
        """``value`` with every secret replaced, recursively through dicts, lists and strings."""
        if isinstance(value, str):
            # longest first: a secret that contains another must not be left half-replaced
            for secret in sorted(self._secrets, key=len, reverse=True):
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: (REDACTED if str(k).lower() in SENSITIVE_KEYS else self.scrub(v)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.scrub(v) for v in value)
        if isinstance(value, BaseException):
            return self.scrub(f"{type(value).__name__}: {value}")
        return value

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        return self.scrub(event)


redactor = Redactor()
"""The process-wide redactor; config loading registers every resolved secret here."""


class _Late:
    """A file-like that writes to ``sys.<name>`` as it is at the time of writing (so a replaced
    stdout/stderr — a test's capture, a daemon's redirect — is followed, never a closed one)."""

    def __init__(self, name: str):
        self._name = name

    def write(self, text: str) -> int:
        return getattr(sys, self._name).write(text)

    def flush(self) -> None:
        getattr(sys, self._name).flush()


def configure(level: str = "info", stream: Any = None) -> None:
    """Send JSON lines to ``stream`` (default ``"stdout"``; ``"stderr"``; or a file) at ``level``,
    redacting secrets last of all."""
    if stream is None or isinstance(stream, str):
        stream = _Late(stream or "stdout")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r} (use debug, info, warning, error)")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            structlog.processors.JSONRenderer(sort_keys=False, default=str),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> Any:
    """A structlog logger with ``bound`` context."""
    return structlog.get_logger("apicenterd").bind(**bound)
