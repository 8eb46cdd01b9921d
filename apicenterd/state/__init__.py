"""The state store: cursors, id links, OAuth tokens, run history and the per-record audit trail."""

from pathlib import Path

from .base import AuditEntry, DeadLetter, Link, Run, Settlement, StateStore
from .lock import DaemonLock, DaemonRunning, FlowBusy, LockError, StoreBusy, daemon_lock_holder
from .sqlite import SQLiteStore


def store_for(url: str | None, path: str | Path) -> StateStore:
    """The state store a config names: PostgreSQL at ``url`` (``[state] url``) if set, else the SQLite
    file at ``path``. psycopg is imported only for PostgreSQL."""
    if url:
        from .postgres import PostgresStore

        return PostgresStore(url)
    return SQLiteStore(path)

__all__ = [
    "AuditEntry",
    "DeadLetter",
    "Link",
    "Run",
    "Settlement",
    "StateStore",
    "SQLiteStore",
    "DaemonLock",
    "DaemonRunning",
    "FlowBusy",
    "LockError",
    "StoreBusy",
    "daemon_lock_holder",
    "store_for",
]

