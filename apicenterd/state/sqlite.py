"""The embedded SQLite state store (the default)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from . import lock
from .base import AuditEntry, DeadLetter, Link, Run

__all__ = ["SQLiteStore", "MIGRATIONS"]

T = TypeVar("T")

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE cursors (
        flow TEXT PRIMARY KEY,
        cursor TEXT,
        updated_at REAL NOT NULL
    );
    CREATE TABLE links (
        source TEXT NOT NULL,
        entity TEXT NOT NULL,
        source_id TEXT NOT NULL,
        target TEXT NOT NULL,
        target_id TEXT NOT NULL,
        hash TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (source, entity, source_id, target)
    );
    CREATE INDEX links_by_target ON links (target, entity, target_id);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        flow TEXT NOT NULL,
        trigger TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        status TEXT NOT NULL,
        counts TEXT NOT NULL DEFAULT '{}',
        error TEXT
    );
    CREATE INDEX runs_by_flow ON runs (flow, id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        flow TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        entity TEXT NOT NULL,
        source_id TEXT NOT NULL,
        target_id TEXT,
        key TEXT,
        action TEXT NOT NULL,
        reason TEXT,
        at REAL NOT NULL
    );
    CREATE INDEX audit_by_flow ON audit (flow, id);
    CREATE INDEX audit_by_source ON audit (source_id);
    CREATE INDEX audit_by_at ON audit (at);
    CREATE TABLE tokens (
        connection TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # 2: the dead-letter queue
    """
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        flow TEXT NOT NULL,
        entity TEXT NOT NULL,
        source_id TEXT NOT NULL,
        key TEXT,
        payload TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        first_failed_at REAL NOT NULL,
        last_failed_at REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        UNIQUE (flow, source_id)
    );
    CREATE INDEX dead_letters_by_status ON dead_letters (status, flow);
    """,
    # 3: a vendor's 429 pause per connection, so a restart does not call before it is over
    """
    CREATE TABLE rate_limit_pauses (
        connection TEXT PRIMARY KEY,
        paused_until REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
]
"""Schema migrations, oldest first; the schema version is how many have been applied."""


class SQLiteStore:
    """State in one SQLite file (WAL mode). Calls run in a worker thread, one at a time.

    Durability: ``synchronous=NORMAL`` survives a killed process (SIGKILL) at every
    commit; token writes switch to ``FULL`` so a rotated refresh token also survives
    a power cut.
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(1)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                if self._db is None:
                    raise RuntimeError("state store is not open")
                return fn(self._db)

        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    async def open(self) -> None:
        """Open (creating if needed) the database and apply pending migrations."""
        if self._db is not None:
            return

        def connect() -> sqlite3.Connection:
            create_private(self.path)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA foreign_keys=ON")
                migrate(db)
            except BaseException:
                db.close()  # a refused or failed migration must not leave the file open
                raise
            return db

        self._db = await anyio.to_thread.run_sync(connect)

    def flow_lock(
        self,
        flow: str,
        *,
        holder: str = "apicenterd",
        wait: bool = True,
        on_wait: Callable[[dict[str, Any]], None] | None = None,
    ) -> AbstractAsyncContextManager[None]:
        """Hold ``flow``'s lock across processes: a lock file in ``<state>.locks/`` (see
        :mod:`apicenterd.state.lock`); raises :class:`~apicenterd.state.lock.FlowBusy` if held and
        ``wait`` is false, else calls ``on_wait(holder)`` once and waits."""
        return lock.flow_lock(self.path, flow, holder=holder, wait=wait, on_wait=on_wait)

    async def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            db, self._db = self._db, None
            await anyio.to_thread.run_sync(db.close)

    async def schema_version(self) -> int:
        """How many migrations the database has."""
        return await self._run(lambda db: db.execute("PRAGMA user_version").fetchone()[0])

    async def get_cursor(self, flow: str) -> str | None:
        """The flow's cursor."""
        row = await self._run(lambda db: db.execute("SELECT cursor FROM cursors WHERE flow=?", (flow,)).fetchone())
        return row[0] if row else None

    async def set_cursor(self, flow: str, cursor: str | None) -> None:
        """Set or reset the flow's cursor."""
        now = self._clock()

        def write(db: sqlite3.Connection) -> None:
            if cursor is None:
                db.execute("DELETE FROM cursors WHERE flow=?", (flow,))
            else:
                db.execute(
                    "INSERT INTO cursors (flow, cursor, updated_at) VALUES (?,?,?) "
                    "ON CONFLICT (flow) DO UPDATE SET cursor=excluded.cursor, updated_at=excluded.updated_at",
                    (flow, cursor, now),
                )

        await self._run(write)

    async def get_link(self, source: str, entity: str, source_id: str, target: str) -> Link | None:
        """The link of one source record to one target."""
        row = await self._run(
            lambda db: db.execute(
                "SELECT source, entity, source_id, target, target_id, hash, updated_at FROM links "
                "WHERE source=? AND entity=? AND source_id=? AND target=?",
                (source, entity, source_id, target),
            ).fetchone()
        )
        return Link(*row) if row else None

    async def links(self, source: str, entity: str, target: str) -> Sequence[Link]:
        """Every link between two connections for one entity."""
        rows = await self._run(
            lambda db: db.execute(
                "SELECT source, entity, source_id, target, target_id, hash, updated_at FROM links "
                "WHERE source=? AND entity=? AND target=? ORDER BY source_id",
                (source, entity, target),
            ).fetchall()
        )
        return [Link(*r) for r in rows]

    async def settle(
        self, audit: AuditEntry, *, link: Link | None = None, cursor: str | None = None, payload: str | None = None
    ) -> None:
        """Write audit entry, link and cursor in one transaction. A ``failed`` entry with its record's
        ``payload`` goes to the dead-letter queue (attempts counted); any other outcome for the same
        record resolves its open dead letter."""
        now = self._clock()

        def write(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                if audit.action == "failed" and payload is not None:
                    db.execute(
                        "INSERT INTO dead_letters (flow, entity, source_id, key, payload, error, attempts, "
                        "first_failed_at, last_failed_at, status) VALUES (?,?,?,?,?,?,1,?,?,'open') "
                        "ON CONFLICT (flow, source_id) DO UPDATE SET payload=excluded.payload, error=excluded.error, "
                        "key=excluded.key, attempts=dead_letters.attempts + 1, last_failed_at=excluded.last_failed_at, "
                        "status='open'",
                        (audit.flow, audit.entity, audit.source_id, audit.key, payload, audit.reason or "", now, now),
                    )
                elif audit.action != "failed":
                    db.execute(
                        "UPDATE dead_letters SET status='resolved' WHERE flow=? AND source_id=? AND status='open'",
                        (audit.flow, audit.source_id),
                    )
                db.execute(
                    "INSERT INTO audit (flow, run_id, entity, source_id, target_id, key, action, reason, at) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        audit.flow,
                        audit.run_id,
                        audit.entity,
                        audit.source_id,
                        audit.target_id,
                        audit.key,
                        audit.action,
                        audit.reason,
                        audit.at or now,
                    ),
                )
                if link is not None:
                    db.execute(
                        "INSERT INTO links (source, entity, source_id, target, target_id, hash, updated_at) "
                        "VALUES (?,?,?,?,?,?,?) ON CONFLICT (source, entity, source_id, target) DO UPDATE SET "
                        "target_id=excluded.target_id, hash=excluded.hash, updated_at=excluded.updated_at",
                        (link.source, link.entity, link.source_id, link.target, link.target_id, link.hash, now),
                    )
                if cursor is not None:
                    db.execute(
                        "INSERT INTO cursors (flow, cursor, updated_at) VALUES (?,?,?) ON CONFLICT (flow) "
                        "DO UPDATE SET cursor=excluded.cursor, updated_at=excluded.updated_at",
                        (audit.flow, cursor, now),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        await self._run(write)

    async def dead_letters(
        self, *, flow: str | None = None, status: str | None = "open", error: str | None = None, ids: Sequence[int] | None = None, limit: int = 1000
    ) -> Sequence[DeadLetter]:
        """Dead letters matching every condition (``error``: a substring), oldest first."""
        where, args = [], []
        for column, value in (("flow", flow), ("status", status)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        if error is not None:
            where.append("instr(lower(error), lower(?)) > 0")
            args.append(error)
        if ids is not None:
            where.append(f"id IN ({','.join('?' * len(ids))})" if ids else "0")
            args.extend(ids)
        sql = (
            "SELECT id, flow, entity, source_id, key, payload, error, attempts, first_failed_at, last_failed_at, status "
            "FROM dead_letters"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id LIMIT ?"
        rows = await self._run(lambda db: db.execute(sql, (*args, limit)).fetchall())
        return [DeadLetter(*r) for r in rows]

    async def open_dead_letter(self, flow: str, source_id: str) -> DeadLetter | None:
        """The open dead letter of one source record, if it has one."""
        rows = await self._run(
            lambda db: db.execute(
                "SELECT id, flow, entity, source_id, key, payload, error, attempts, first_failed_at, last_failed_at, status "
                "FROM dead_letters WHERE flow=? AND source_id=? AND status='open'",
                (flow, source_id),
            ).fetchall()
        )
        return DeadLetter(*rows[0]) if rows else None

    async def set_dead_letter_status(self, ids: Sequence[int], status: str) -> int:
        """Mark dead letters ``discarded`` (or ``open`` / ``resolved``); how many changed."""
        if not ids:
            return 0
        return await self._run(
            lambda db: db.execute(
                f"UPDATE dead_letters SET status=? WHERE id IN ({','.join('?' * len(ids))})", (status, *ids)
            ).rowcount
        )

    async def purge_dead_letters(self, older_than: float) -> int:
        """Delete resolved or discarded dead letters, and open ones, last failed before ``older_than``."""
        return await self._run(
            lambda db: db.execute("DELETE FROM dead_letters WHERE last_failed_at < ?", (older_than,)).rowcount
        )

    async def start_run(self, flow: str, trigger: str = "schedule") -> int:
        """Open a run."""
        now = self._clock()
        return await self._run(
            lambda db: db.execute(
                "INSERT INTO runs (flow, trigger, started_at, status) VALUES (?,?,?, 'running')", (flow, trigger, now)
            ).lastrowid
        )

    async def finish_run(self, run_id: int, status: str, counts: Mapping[str, int], error: str | None = None) -> None:
        """Close a run."""
        now = self._clock()
        await self._run(
            lambda db: db.execute(
                "UPDATE runs SET finished_at=?, status=?, counts=?, error=? WHERE id=?",
                (now, status, json.dumps(dict(counts)), error, run_id),
            )
        )

    async def runs(self, flow: str | None = None, limit: int = 20) -> Sequence[Run]:
        """Newest runs first."""
        sql = "SELECT id, flow, started_at, finished_at, status, counts, error, trigger FROM runs"
        args: tuple[Any, ...] = ()
        if flow is not None:
            sql += " WHERE flow=?"
            args = (flow,)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = await self._run(lambda db: db.execute(sql, (*args, limit)).fetchall())
        return [Run(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7]) for r in rows]

    async def audit(
        self, *, flow: str | None = None, source_id: str | None = None, run_id: int | None = None, limit: int = 100
    ) -> Sequence[AuditEntry]:
        """Audit entries matching every given condition, newest first."""
        where, args = [], []
        for column, value in (("flow", flow), ("source_id", source_id), ("run_id", run_id)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        sql = "SELECT flow, run_id, entity, source_id, action, target_id, key, reason, at, id FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = await self._run(lambda db: db.execute(sql, (*args, limit)).fetchall())
        return [AuditEntry(*r) for r in rows]

    async def load_tokens(self, connection: str) -> dict[str, Any] | None:
        """The saved tokens."""
        row = await self._run(
            lambda db: db.execute("SELECT data FROM tokens WHERE connection=?", (connection,)).fetchone()
        )
        return json.loads(row[0]) if row else None

    async def save_tokens(self, connection: str, tokens: Mapping[str, Any]) -> None:
        """Save tokens with a full fsync before returning."""
        now = self._clock()
        data = json.dumps(dict(tokens))

        def write(db: sqlite3.Connection) -> None:
            db.execute("PRAGMA synchronous=FULL")
            try:
                db.execute(
                    "INSERT INTO tokens (connection, data, updated_at) VALUES (?,?,?) ON CONFLICT (connection) "
                    "DO UPDATE SET data=excluded.data, updated_at=excluded.updated_at",
                    (connection, data, now),
                )
            finally:
                db.execute("PRAGMA synchronous=NORMAL")

        await self._run(write)

    async def purge_audit(self, older_than: float) -> int:
        """Delete old audit entries."""
        return await self._run(lambda db: db.execute("DELETE FROM audit WHERE at < ?", (older_than,)).rowcount)

    async def load_pause(self, connection: str) -> float | None:
        """Until when (Unix time) the vendor paused ``connection``, as last saved; None if never."""
        row = await self._run(
            lambda db: db.execute("SELECT paused_until FROM rate_limit_pauses WHERE connection=?", (connection,)).fetchone()
        )
        return float(row[0]) if row else None

    async def save_pause(self, connection: str, until: float) -> None:
        """Keep until when (Unix time) the vendor paused ``connection`` (a 429's Retry-After)."""
        now = self._clock()
        await self._run(
            lambda db: db.execute(
                "INSERT INTO rate_limit_pauses (connection, paused_until, updated_at) VALUES (?,?,?) "
                "ON CONFLICT (connection) DO UPDATE SET paused_until=excluded.paused_until, updated_at=excluded.updated_at",
                (connection, until, now),
            )
        )


def create_private(path: Path) -> None:
    """Create the database file 0600 (its folder 0700 if missing) before SQLite opens it: SQLite
    gives its ``-wal`` and ``-shm`` the database file's mode. An existing database of ours that
    others may read (an older apicenterd made it 0644) is narrowed to 0600, with its -wal and -shm."""
    lock.make_private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            try:
                st = file.stat()
                if st.st_uid == os.geteuid() and st.st_mode & 0o077:
                    os.chmod(file, 0o600)
            except OSError:  # not there, or not ours: SQLite will say what is wrong
                continue
        return
    os.close(fd)


def migrate(db: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Apply the migrations the database does not have yet, each in its own transaction."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise RuntimeError(
            f"state database schema version {version} is newer than this apicenterd knows ({len(migrations)}); "
            "upgrade apicenterd"
        )
    for number, script in enumerate(migrations[version:], start=version + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return len(migrations)
