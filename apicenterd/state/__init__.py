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
    "DaemonLock",
    "DaemonRunning",
    "FlowBusy",
    "LockError",
    "StoreBusy",
    "daemon_lock_holder",
]

