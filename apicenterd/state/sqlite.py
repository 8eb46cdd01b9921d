"""The embedded SQLite state store (the default)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pwd
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ..errors import StateError
from . import lock
from .base import AuditEntry, DeadLetter, Link, Run, Settlement
from .settling import AUDIT_INSERT, CURSOR_UPSERT, LETTER_FAILED, LETTER_RESOLVED, LINK_UPSERT, settle_rows

__all__ = ["SQLiteStore", "MIGRATIONS", "state_error"]

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
    # 4: retention: an open dead letter past its retention keeps its row but loses its record
    # (payload NULL, purged_at set); warned_at: its owner was told before; finished runs expire
    """
    CREATE TABLE dead_letters_v3 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        flow TEXT NOT NULL,
        entity TEXT NOT NULL,
        source_id TEXT NOT NULL,
        key TEXT,
        payload TEXT,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        first_failed_at REAL NOT NULL,
        last_failed_at REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        purged_at REAL,
        warned_at REAL,
        UNIQUE (flow, source_id)
    );
    INSERT INTO dead_letters_v3 (id, flow, entity, source_id, key, payload, error, attempts, first_failed_at,
        last_failed_at, status)
        SELECT id, flow, entity, source_id, key, payload, error, attempts, first_failed_at, last_failed_at, status
        FROM dead_letters;
    DROP TABLE dead_letters;
    ALTER TABLE dead_letters_v3 RENAME TO dead_letters;
    CREATE INDEX dead_letters_by_status ON dead_letters (status, flow);
    CREATE INDEX dead_letters_by_failed ON dead_letters (last_failed_at);
    CREATE INDEX runs_by_finished ON runs (finished_at);
    """,
    # 5: what each write sent to the target (audit.diff, JSON), and a running run's progress
    """
    ALTER TABLE audit ADD COLUMN diff TEXT;
    ALTER TABLE runs ADD COLUMN progress TEXT;
    """,
]
"""Schema migrations, oldest first; the schema version is how many have been applied."""


_IN_CHUNK = 500
"""Source ids per ``IN (...)`` of a batch look-up (SQLite allows 32,766 parameters; smaller keeps each query short)."""

_LETTER_COLUMNS = (
    "id, flow, entity, source_id, key, payload, error, attempts, first_failed_at, last_failed_at, status, purged_at"
)


class SQLiteStore:
    """State in one SQLite file (WAL mode), one call at a time.

    The record path's calls (a batch's links and dead letters, a settle, the cursor, a run's row)
    run on the event loop: each is a few statements on a local file with no fsync, cheaper than
    the hop to a worker thread it used to take (four per record). What may wait — another process
    holding the write lock, a WAL checkpoint (the fsync), a purge, a listing, a backup — runs in a
    worker thread: an inline call that finds the database locked is rolled back and done again
    there with the full busy timeout, and the WAL is checkpointed there every
    :attr:`CHECKPOINT_CHANGES` rows written on the loop.

    Durability: ``synchronous=NORMAL`` survives a killed process (SIGKILL) at every
    commit; token writes switch to ``FULL`` so a rotated refresh token also survives
    a power cut.
    """

    BUSY_TIMEOUT_MS = 30_000
    """How long a call in the worker thread waits for another process's write lock."""
    CHECKPOINT_CHANGES = 5_000
    """Rows written on the event loop between two WAL checkpoints (done in the worker thread)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(1)
        self._identity: tuple[int, int] | None = None
        """(st_dev, st_ino) of the file opened: a path that no longer leads there was deleted or replaced."""
        self._unchecked = 0
        """Rows written on the event loop since the last checkpoint."""

    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, inline: bool = False) -> T:
        """Call ``fn`` with the connection: in a worker thread, or with ``inline`` on the event loop
        (for short calls that either do all or nothing: one statement, or one transaction begun
        with ``BEGIN IMMEDIATE``), falling back to the thread if the database is locked."""
        if inline and self._limiter.borrowed_tokens == 0 and self._lock.acquire(blocking=False):
            try:
                db = self._db
                if db is None:
                    raise RuntimeError("state store is not open")
                with _translated(self.path):
                    try:
                        changes = db.total_changes
                        result = fn(db)
                    except sqlite3.OperationalError as exc:
                        if not _is_busy(exc):
                            raise
                        _rollback(db)  # nothing of it stays: done again below, waiting for the lock
                        done: tuple[T] | None = None
                    else:
                        done = (result,)
                        self._unchecked += db.total_changes - changes
            finally:
                self._lock.release()
            if done is not None:
                if self._unchecked >= self.CHECKPOINT_CHANGES:  # move the WAL's pages home, off the loop
                    self._unchecked = 0
                    await self._run(lambda db: db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
                return done[0]

        def call() -> T:
            with self._lock:
                db = self._db
                if db is None:
                    raise RuntimeError("state store is not open")
                with _translated(self.path):
                    db.execute(f"PRAGMA busy_timeout={self.BUSY_TIMEOUT_MS}")
                    try:
                        return fn(db)
                    finally:
                        with contextlib.suppress(sqlite3.Error):
                            db.execute("PRAGMA busy_timeout=0")

        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    async def _fetchall(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """The rows of one query, run on the event loop (see :meth:`_run`)."""
        rows: list[Any] = await self._run(lambda db: db.execute(sql, params).fetchall(), inline=True)
        return rows

    async def open(self) -> None:
        """Open (creating if needed) the database and apply pending migrations."""
        if self._db is not None:
            return

        def connect() -> sqlite3.Connection:
            create_private(self.path)
            db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=self.BUSY_TIMEOUT_MS / 1000
            )
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                # checkpoints (the fsync) are the worker thread's, never a commit's on the loop
                db.execute("PRAGMA wal_autocheckpoint=0")
                db.execute("PRAGMA foreign_keys=ON")
                check_integrity(db, self.path)
                migrate(db)
            except BaseException:
                db.close()  # a refused or failed migration must not leave the file open
                raise
            return db

        with _translated(self.path):
            db = await anyio.to_thread.run_sync(connect)
            db.execute("PRAGMA busy_timeout=0")  # an inline call never waits on the loop (see _run)
            self._db = db
            stat = self.path.stat()
            self._identity = (stat.st_dev, stat.st_ino)

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

    async def stored_schema_version(self) -> int:
        """How many migrations the file has, read without opening the store (nothing applied); 0 if
        there is no file yet (``apicenterd state migrate`` says what it changes)."""
        def read() -> int:
            if not Path(self.path).exists():
                return 0
            db = sqlite3.connect(f"file:{Path(self.path).resolve()}?mode=ro", uri=True)
            try:
                return int(db.execute("PRAGMA user_version").fetchone()[0])
            finally:
                db.close()

        return await anyio.to_thread.run_sync(read)

    async def schema_version(self) -> int:
        """How many migrations the database has."""
        return await self._run(lambda db: db.execute("PRAGMA user_version").fetchone()[0])

    async def get_cursor(self, flow: str) -> str | None:
        """The flow's cursor."""
        row = await self._run(lambda db: db.execute("SELECT cursor FROM cursors WHERE flow=?", (flow,)).fetchone(), inline=True)
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

        await self._run(write, inline=True)

    async def get_link(self, source: str, entity: str, source_id: str, target: str) -> Link | None:
        """The link of one source record to one target."""
        row = await self._run(
            lambda db: db.execute(
                "SELECT source, entity, source_id, target, target_id, hash, updated_at FROM links "
                "WHERE source=? AND entity=? AND source_id=? AND target=?",
                (source, entity, source_id, target),
            ).fetchone(),
            inline=True,
        )
        return Link(*row) if row else None

    async def get_links(self, source: str, entity: str, source_ids: Sequence[str], target: str) -> dict[str, Link]:
        """The links of several source records to one target, by source id (one query a batch)."""
        found: dict[str, Link] = {}
        ids = list(dict.fromkeys(source_ids))
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            rows = await self._fetchall(
                "SELECT source, entity, source_id, target, target_id, hash, updated_at FROM links "
                f"WHERE source=? AND entity=? AND target=? AND source_id IN ({','.join('?' * len(chunk))})",
                (source, entity, target, *chunk),
            )
            found.update((row[2], Link(*row)) for row in rows)
        return found

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
        await self.settle_many(audit.flow, (Settlement(audit, link, payload),), cursor=cursor)

    async def settle_many(self, flow: str, settlements: Sequence[Settlement], *, cursor: str | None = None) -> None:
        """Settle several records of ``flow`` and set its cursor in one transaction (see :meth:`settle`):
        one commit for a whole batch, its rows written with one statement per table."""
        now = self._clock()
        letters, audits, links = settle_rows(flow, settlements, now)
        if not (letters or audits or links or cursor is not None):
            return

        def write(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                for failed, row in letters:  # in order: a record may fail, then settle, in one batch
                    db.execute(LETTER_FAILED if failed else LETTER_RESOLVED, row)
                if audits:
                    db.executemany(AUDIT_INSERT, audits)
                if links:
                    db.executemany(LINK_UPSERT, links)
                if cursor is not None:
                    db.execute(CURSOR_UPSERT, (flow, cursor, now))
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise

        await self._run(write, inline=True)

    async def dead_letters(
        self,
        *,
        flow: str | None = None,
        status: str | None = "open",
        error: str | None = None,
        ids: Sequence[int] | None = None,
        limit: int = 1000,
    ) -> Sequence[DeadLetter]:
        """Dead letters matching every condition (``error``: a substring), oldest first."""
        where: list[str] = []
        args: list[object] = []
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
        sql = f"SELECT {_LETTER_COLUMNS} FROM dead_letters"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id LIMIT ?"
        rows = await self._run(lambda db: db.execute(sql, (*args, limit)).fetchall())
        return [DeadLetter(*r) for r in rows]

    async def open_dead_letter(self, flow: str, source_id: str) -> DeadLetter | None:
        """The open dead letter of one source record, if it has one."""
        rows = await self._run(
            lambda db: db.execute(
                f"SELECT {_LETTER_COLUMNS} FROM dead_letters WHERE flow=? AND source_id=? AND status='open'",
                (flow, source_id),
            ).fetchall(),
            inline=True,
        )
        return DeadLetter(*rows[0]) if rows else None

    async def open_dead_letters(self, flow: str, source_ids: Sequence[str]) -> dict[str, DeadLetter]:
        """The open dead letters of several source records of ``flow``, by source id (one query a batch)."""
        found: dict[str, DeadLetter] = {}
        ids = list(dict.fromkeys(source_ids))
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            rows = await self._fetchall(
                f"SELECT {_LETTER_COLUMNS} FROM dead_letters WHERE flow=? AND status='open' "
                f"AND source_id IN ({','.join('?' * len(chunk))})",
                (flow, *chunk),
            )
            found.update((row[3], DeadLetter(*row)) for row in rows)
        return found

    async def set_dead_letter_status(self, ids: Sequence[int], status: str) -> int:
        """Mark dead letters ``discarded`` (or ``open`` / ``resolved``); how many changed."""
        if not ids:
            return 0
        return await self._run(
            lambda db: db.execute(
                f"UPDATE dead_letters SET status=? WHERE id IN ({','.join('?' * len(ids))})", (status, *ids)
            ).rowcount
        )

    async def purge_dead_letters(self, older_than: float) -> tuple[int, int]:
        """Past retention (last failed before ``older_than``): delete resolved and discarded dead letters;
        keep open ones, but without their record (payload and key: personal data), so an unresolved
        failure never disappears unseen. (deleted, open ones whose record was removed)."""
        now = self._clock()

        def write(db: sqlite3.Connection) -> tuple[int, int]:
            with _erasing(db):
                return erase(db)

        def erase(db: sqlite3.Connection) -> tuple[int, int]:
            db.execute("BEGIN IMMEDIATE")
            try:
                deleted = db.execute(
                    "DELETE FROM dead_letters WHERE status != 'open' AND last_failed_at < ?", (older_than,)
                ).rowcount
                stripped = db.execute(
                    "UPDATE dead_letters SET payload=NULL, key=NULL, purged_at=? "
                    "WHERE status = 'open' AND purged_at IS NULL AND last_failed_at < ?",
                    (now, older_than),
                ).rowcount
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
            return deleted, stripped

        return await self._run(write)

    async def warn_dead_letters(self, older_than: float) -> dict[str, int]:
        """Open dead letters, record still kept, last failed before ``older_than`` and not counted here
        before: mark them, and say how many per flow (their owner is warned once that they lose their
        record soon; failing again starts their retention, and a warning, anew)."""
        now = self._clock()

        def write(db: sqlite3.Connection) -> dict[str, int]:
            where = "status = 'open' AND purged_at IS NULL AND warned_at IS NULL AND last_failed_at < ?"
            db.execute("BEGIN IMMEDIATE")
            try:
                counts = dict(
                    db.execute(
                        f"SELECT flow, count(*) FROM dead_letters WHERE {where} GROUP BY flow ORDER BY flow", (older_than,)
                    ).fetchall()
                )
                db.execute(f"UPDATE dead_letters SET warned_at=? WHERE {where}", (now, older_than))
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
            return counts

        return await self._run(write)

    async def start_run(self, flow: str, trigger: str = "schedule") -> int:
        """Open a run (after checking that the state file is still the one opened)."""
        await self.check_file()
        now = self._clock()

        def insert(db: sqlite3.Connection) -> int:
            run_id = db.execute(
                "INSERT INTO runs (flow, trigger, started_at, status) VALUES (?,?,?, 'running')", (flow, trigger, now)
            ).lastrowid
            assert run_id is not None  # an INSERT sets it
            return run_id

        return await self._run(insert, inline=True)

    async def finish_run(self, run_id: int, status: str, counts: Mapping[str, int], error: str | None = None) -> None:
        """Close a run."""
        now = self._clock()
        await self._run(
            lambda db: db.execute(
                "UPDATE runs SET finished_at=?, status=?, counts=?, error=? WHERE id=?",
                (now, status, json.dumps(dict(counts)), error, run_id),
            ),
            inline=True,
        )

    async def run_progress(self, run_id: int, counts: Mapping[str, int], progress: Mapping[str, Any]) -> None:
        """Save a running run's counts and progress (a run already finished is left alone)."""
        await self._run(
            lambda db: db.execute(
                "UPDATE runs SET counts=?, progress=? WHERE id=? AND status='running'",
                (json.dumps(dict(counts)), json.dumps(dict(progress)), run_id),
            ),
            inline=True,
        )

    async def purge_runs(self, older_than: float) -> int:
        """Delete runs that finished before ``older_than`` (never one still running)."""
        return await self._run(
            lambda db: db.execute(
                "DELETE FROM runs WHERE finished_at IS NOT NULL AND finished_at < ? AND status != 'running'", (older_than,)
            ).rowcount
        )

    async def runs(self, flow: str | None = None, limit: int = 20) -> Sequence[Run]:
        """Newest runs first."""
        sql = "SELECT id, flow, started_at, finished_at, status, counts, error, trigger, progress FROM runs"
        args: tuple[Any, ...] = ()
        if flow is not None:
            sql += " WHERE flow=?"
            args = (flow,)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = await self._run(lambda db: db.execute(sql, (*args, limit)).fetchall())
        return [Run(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], json.loads(r[8]) if r[8] else None) for r in rows]

    async def audit(
        self, *, flow: str | None = None, source_id: str | None = None, run_id: int | None = None, limit: int = 100
    ) -> Sequence[AuditEntry]:
        """Audit entries matching every given condition, newest first."""
        where, args = [], []
        for column, value in (("flow", flow), ("source_id", source_id), ("run_id", run_id)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        sql = "SELECT flow, run_id, entity, source_id, action, target_id, key, reason, at, id, diff FROM audit"
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
        def erase(db: sqlite3.Connection) -> int:
            with _erasing(db):
                return db.execute("DELETE FROM audit WHERE at < ?", (older_than,)).rowcount

        return await self._run(erase)

    async def check_file(self) -> None:
        """StateError if the state file was deleted or replaced since :meth:`open`: SQLite would go on
        writing to the open (deleted) file, and everything in it would be lost at exit."""
        if self._identity is None:
            return
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            what = "was deleted" if self.path.parent.exists() else f"was deleted (with its folder {self.path.parent})"
        except OSError as exc:
            raise state_error(self.path, exc) or StateError(str(exc), path=str(self.path)) from exc
        else:
            if (stat.st_dev, stat.st_ino) == self._identity:
                return
            what = "was replaced by another file"
        raise StateError(lost_message(self.path, what), path=str(self.path), cause="deleted" if "deleted" in what else "replaced")

    async def save_copy(self, destination: str | Path) -> None:
        """Write a consistent copy of the open database to ``destination`` (a new file), e.g. to rescue
        a state file that was deleted while open."""
        await self._run(lambda db: db.execute("VACUUM INTO ?", (str(destination),)))

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
            _rollback(db)
            raise
    return len(migrations)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` says another connection holds a lock the statement needs (SQLITE_BUSY / LOCKED)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back the open transaction, if there still is one. SQLite rolls back by itself on some
    errors (a full disk, an I/O error); a ROLLBACK then fails with "cannot rollback - no transaction
    is active", which must not replace the error that caused it."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


@contextlib.contextmanager
def _erasing(db: sqlite3.Connection) -> Iterator[None]:
    """Overwrite what is deleted with zeros (``secure_delete``): purged personal data must not stay
    readable in the file's free pages."""
    db.execute("PRAGMA secure_delete=ON")
    try:
        yield
    finally:
        db.execute("PRAGMA secure_delete=OFF")


def _user() -> str:
    """The user apicenterd runs as, for messages about permissions."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a systemd DynamicUser= without an NSS module, a container
        return f"uid {os.geteuid()}"


_DAMAGED = (
    "stop apicenterd, move the file aside (mv {path} {path}.damaged; also its -wal and -shm files) and restore "
    "it from a backup; or start without it: apicenterd creates a new state file, and looks records up by key "
    "before it creates anything, so nothing is duplicated (every record is read and compared once more)"
)


def state_error(path: Path, exc: BaseException) -> StateError | None:
    """The :class:`StateError` that explains ``exc`` (an ``sqlite3.Error`` or ``OSError`` about the state
    file at ``path``) to an operator: the file, the cause, what to do. None for errors that are not the
    file's condition (a constraint violated, an SQL mistake: bugs, raised as they are)."""
    detail = str(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
    user, folder = _user(), path.parent
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    number = exc.errno if isinstance(exc, OSError) else None
    if code == getattr(sqlite3, "SQLITE_READONLY_DBMOVED", 1032):
        return StateError(lost_message(path, f"was moved or deleted ({detail})"), path=str(path), cause="deleted")
    if primary == sqlite3.SQLITE_FULL or number == errno.ENOSPC:
        return StateError(
            f"state file {path}: the disk is full ({detail}). Free space on the file system that holds {folder} "
            f"(df -h {folder}); nothing is lost: a record whose outcome could not be saved is read again in the next run",
            path=str(path),
            cause="full",
        )
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StateError(
            f"state file {path} is damaged ({detail}): " + _DAMAGED.format(path=path), path=str(path), cause="damaged"
        )
    if primary == sqlite3.SQLITE_READONLY or number in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StateError(
            f"state file {path} cannot be written by user {user} ({detail}). Make the file, its -wal and -shm files "
            f"and the folder {folder} writable for {user} (e.g. chown -R {user} {folder}), and check that the "
            "file system is not mounted read-only",
            path=str(path),
            cause="readonly",
        )
    if primary == sqlite3.SQLITE_CANTOPEN or isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError)):
        return StateError(
            f"cannot open state file {path} ({detail}). The folder {folder} must exist or be creatable, be a folder "
            f"and be writable by user {user}; [state] path must name a file, not a folder",
            path=str(path),
            cause="cannot_open",
        )
    if primary == sqlite3.SQLITE_IOERR or isinstance(exc, OSError):
        return StateError(
            f"state file {path}: input/output error ({detail}). Check the disk (dmesg, df -h {folder}) and that the "
            "file was not removed or truncated while apicenterd ran; if it is damaged: " + _DAMAGED.format(path=path),
            path=str(path),
            cause="io",
        )
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StateError(
            f"state file {path} is locked by another process ({detail}). Stop the other process that has it open "
            f"(fuser {path}), e.g. a second apicenterd or an sqlite3 shell in a transaction",
            path=str(path),
            cause="locked",
        )
    return None


def lost_message(path: Path, what: str) -> str:
    """What to say when the state file was deleted or replaced under a running apicenterd."""
    return (
        f"state file {path} {what} while apicenterd had it open: the links, cursors and tokens in it, and all it "
        f"wrote since, would be lost. apicenterd stops. Restore the file from a backup, or start anew "
        "without it: apicenterd then creates a new state file and looks records up by key before it creates "
        "anything, so nothing is duplicated (every record is read and compared once more; an OAuth connection "
        "whose refresh token rotated since its configured one needs apicenterd auth again)"
    )


@contextlib.contextmanager
def _translated(path: Path) -> Iterator[None]:
    """Raise what goes wrong with the state file as a :class:`StateError` (the original is its cause)."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        error = state_error(path, exc)
        if error is None:
            raise
        raise error from exc


def check_integrity(db: sqlite3.Connection, path: Path) -> None:
    """``PRAGMA quick_check``: a truncated or corrupted file is refused at open, not half-way through a run."""
    problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
    if problems != ["ok"]:
        raise StateError(
            f"state file {path} is damaged (integrity check: {'; '.join(problems[:3])}): " + _DAMAGED.format(path=path),
            path=str(path),
            cause="damaged",
        )
