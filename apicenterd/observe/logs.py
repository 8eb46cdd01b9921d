"""structlog set up for JSON lines on stdout, with every known secret redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import structlog

__all__ = ["configure", "Redactor", "redactor", "error_text", "get_logger"]

REDACTED = "[redacted]"
SENSITIVE_KEYS = frozenset(
    {"password", "secret", "private_key", "client_secret", "access_token", "refresh_token", "authorization", "token"}
)


LEARNED_PER_GROUP = 8
"""Run-time secrets kept per group (e.g. one OAuth connection's last four token pairs): a token
retired by a rotation may still be echoed by a request in flight, but the list must not grow
with every refresh for as long as the daemon runs."""


class Redactor:
    """Replaces every registered secret value, and values of sensitive keys, in log events.

    Two kinds of secrets: configured ones (:meth:`add`, kept for the process's life) and the
    ones learned at run time (:meth:`learn`: access and refresh tokens, in named groups that
    keep only their newest :data:`LEARNED_PER_GROUP` values).
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._learned: dict[str, list[str]] = {}
        self._ordered: list[str] | None = []

    def add(self, values: Iterable[str]) -> None:
        """Register secret values to hide wherever they appear (values under 4 characters are ignored)."""
        self._secrets.update(v for v in values if isinstance(v, str) and len(v) >= 4)
        self._ordered = None

    def learn(self, group: str, values: Iterable[Any]) -> None:
        """Register secrets learned at run time (tokens) under ``group``; the group keeps its
        newest :data:`LEARNED_PER_GROUP` values, older ones are forgotten."""
        kept = self._learned.setdefault(group, [])
        for value in values:
            if not isinstance(value, str) or len(value) < 4:
                continue
            if value in kept:
                kept.remove(value)
            kept.append(value)
        del kept[:-LEARNED_PER_GROUP]
        self._ordered = None

    def learn_tokens(self, group: str, tokens: Mapping[str, Any] | None) -> None:
        """:meth:`learn` every token in a token set (``access_token``, ``refresh_token``,
        ``id_token``, ... — any ``*token`` key but ``token_type``)."""
        if not tokens:
            return
        self.learn(
            group,
            (v for k, v in tokens.items() if str(k).lower().endswith("token") and str(k).lower() != "token_type"),
        )

    def _secrets_longest_first(self) -> list[str]:
        ordered = self._ordered
        if ordered is None:
            every = set(self._secrets)
            for values in list(self._learned.values()):
                every.update(values)
            # longest first: a secret that contains another must not be left half-replaced
            ordered = self._ordered = sorted(every, key=len, reverse=True)
        return ordered

    def scrub(self, value: Any) -> Any:
        """``value`` with every secret replaced, recursively through dicts, lists and strings."""
        if isinstance(value, str):
            for secret in self._secrets_longest_first():
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

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        return self.scrub(event)


redactor = Redactor()
"""The process-wide redactor; config loading registers every resolved secret here, and the token
stores and OAuth every token they learn."""


def error_text(exc: BaseException, prefix: str = "") -> str:
    """``"<prefix>ExceptionType: message"`` with every known secret redacted: the one way an
    exception becomes text that is stored (``runs.error``), alerted or printed."""
    return redactor.scrub(f"{prefix}{type(exc).__name__}: {exc}")


class _Late:
    """A file-like that writes to ``sys.<name>`` as it is at the time of writing (so a replaced
    stdout/stderr — a test's capture, a daemon's redirect — is followed, never a closed one)."""

    def __init__(self, name: str):
        self._name = name

    def write(self, text: str) -> int:
        return getattr(sys, self._name).write(text)

    def flush(self) -> None:
        getattr(sys, self._name).flush()


_stream: Any = None
"""Where :func:`configure` last sent the lines (:func:`set_level` keeps it)."""


def set_level(level: str) -> None:
    """Change the level of the lines written from now on (a reload's ``daemon.log_level``), to the
    same stream; loggers bound before keep the level they were bound at (bind them again)."""
    configure(level, _stream)


def configure(level: str = "info", stream: Any = None) -> None:
    """Send JSON lines to ``stream`` (default ``"stdout"``; ``"stderr"``; or a file) at ``level``,
    redacting secrets last of all."""
    global _stream
    if stream is None or isinstance(stream, str):
        stream = _Late(stream or "stdout")
    _stream = stream
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
