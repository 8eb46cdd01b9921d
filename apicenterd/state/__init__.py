"""The state store: cursors, id links, OAuth tokens, run history and the per-record audit trail."""

from .base import AuditEntry, DeadLetter, Link, Run, StateStore
from .lock import DaemonLock, DaemonRunning, FlowBusy, LockError, StoreBusy, daemon_lock_holder
from .sqlite import SQLiteStore

__all__ = [
    "AuditEntry",
    "DeadLetter",
    "Link",
    "Run",
    "StateStore",
    "SQLiteStore",
    "open_store",
    "DaemonLock",
    "DaemonRunning",
    "FlowBusy",
    "LockError",
    "StoreBusy",
    "daemon_lock_holder",
]


def open_store(config, base_path=None) -> StateStore:
    """The store the ``[state]`` table asks for (only SQLite for now)."""
    path = config.path
    if base_path is not None and not path.is_absolute():
        path = base_path / path
    return SQLiteStore(path)
