"""Locks between processes sharing one SQLite state store: one daemon per store, one run per flow.

Both are ``flock(2)`` locks on small files beside the database, so the kernel drops them when
the holder exits or is killed: there is never a stale lock to clean up.

- ``<state>.lock``: held by ``apicenterd run`` for its whole life. It holds JSON naming the
  holder: ``{"pid": int, "host": str, "started_at": float, "argv": [...]}``.
- ``<state>.locks/<flow>.lock``: held while a flow runs (daemon schedule, ``flows run``,
  ``dlq replay``); the same JSON plus ``"flow"`` and ``"holder"`` (``daemon``, ``flows run``,
  ``dlq replay``).

The files are created 0600 and the ``.locks`` folder 0700. A process running as root (e.g.
``sudo apicenterd flows run``) hands a file it creates to the owner of the database, so the
daemon's user can still open it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio

__all__ = [
    "LockError",
    "StoreBusy",
    "DaemonRunning",
    "FlowBusy",
    "DaemonLock",
    "daemon_lock_path",
    "daemon_lock_holder",
    "flow_lock_path",
    "flow_lock_holder",
    "flow_lock",
    "describe_holder",
]

POLL_INTERVAL = 0.1
"""Seconds between two tries of a held flow lock."""

_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")


class LockError(Exception):
    """A lock file of the state store could not be created or locked (permissions, a file system
    without locks); the message names the file and the reason."""


class StoreBusy(LockError):
    """Another process holds a lock of the state store; ``holder`` is its JSON (may be empty)."""

    def __init__(self, message: str, holder: Mapping[str, Any] | None):
        super().__init__(message)
        self.holder = dict(holder or {})


class DaemonRunning(StoreBusy):
    """A second daemon on a state store that a daemon already serves."""


class FlowBusy(StoreBusy):
    """A flow is running in another process (or another run in this one) and the caller would not wait."""


# ------------------------------------------------------------------------- files


def daemon_lock_path(state_path: str | Path) -> Path:
    """``state.db`` → ``state.db.lock``."""
    return Path(str(state_path) + ".lock")


def flow_lock_path(state_path: str | Path, flow: str) -> Path:
    """The lock file of one flow: ``state.db.locks/<flow>.lock``. A name with characters other than
    letters, digits, ``_`` and ``-`` gets them replaced and a hash of the real name appended after
    a dot (which no plain name has), so two flows never share a file."""
    name = flow
    if not _SAFE_NAME.fullmatch(flow):
        digest = hashlib.sha256(flow.encode()).hexdigest()[:12]
        name = re.sub(r"[^A-Za-z0-9_-]", "_", flow)[:60] + "." + digest
    return Path(str(state_path) + ".locks") / f"{name}.lock"


def _owner_of(path: Path) -> tuple[int, int] | None:
    """Who owns the database (or its folder): a file root creates is handed to them."""
    for candidate in (path, path.parent):
        with contextlib.suppress(OSError):
            st = candidate.stat()
            return st.st_uid, st.st_gid
    return None


def make_private_dirs(folder: Path, owner_of: Path | None = None) -> None:
    """Create ``folder`` and its missing parents 0700; folders that exist are left as they are. Run
    as root, a folder it creates goes to the owner of ``owner_of`` (the database), if given."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        _give_to_owner(path, owner_of)


def _give_to_owner(path: Path | int, owner_of: Path | None) -> None:
    """Run as root: hand ``path`` (or a descriptor) to the database's owner, so the daemon's user
    can still open what ``sudo apicenterd flows run`` created."""
    if owner_of is None or os.geteuid() != 0:
        return
    owner = _owner_of(owner_of)
    if owner is None or owner == (0, 0):
        return
    with contextlib.suppress(OSError):
        if isinstance(path, int):
            os.fchown(path, *owner)
        else:
            os.chown(path, *owner)


def _open_lock_file(path: Path, owner_of: Path) -> int:
    """Open (creating 0600) a lock file; root hands a new one to the database's owner."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)
    _give_to_owner(fd, owner_of)
    return fd


@contextlib.contextmanager
def _clear_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise LockError(f"cannot lock the state store: {path}: {exc.strerror or exc}") from exc


def _try_flock(fd: int, path: Path) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise LockError(f"cannot lock the state store: {path}: {exc.strerror or exc}") from exc
    return True


def _write_holder(fd: int, info: Mapping[str, Any]) -> None:
    data = json.dumps(dict(info), separators=(",", ":")).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _holder_info(**extra: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time(), "argv": list(sys.argv), **extra}


def _read_holder(path: Path) -> dict[str, Any] | None:
    """The JSON in a lock file while someone holds the lock; None if the lock is free (or the file
    does not exist). The probe takes a shared lock for an instant, never the exclusive one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        for _ in range(50):
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
                return None
            raw = os.pread(fd, 65536, 0)
            try:
                info = json.loads(raw)
            except ValueError:  # taken an instant ago; its holder is writing its name
                time.sleep(0.01)
                continue
            if isinstance(info, dict):
                return info
        return {}
    finally:
        os.close(fd)


def daemon_lock_holder(state_path: str | Path) -> dict[str, Any] | None:
    """The daemon serving the state store at ``state_path``: ``{"pid", "host", "started_at",
    "argv"}`` while one runs, None when none does. (``apicenterd reload`` finds its pid here.)"""
    return _read_holder(daemon_lock_path(state_path))


def flow_lock_holder(state_path: str | Path, flow: str) -> dict[str, Any] | None:
    """Who runs ``flow`` now (``pid``, ``host``, ``holder``, ...), None if nobody does."""
    return _read_holder(flow_lock_path(state_path, flow))


def describe_holder(info: Mapping[str, Any] | None, *, always_host: bool = False) -> str:
    """``pid 1234 (daemon) on host x since 2026-12-04T10:00:00Z``; what is known of a holder (the
    host only if it is not this one, unless ``always_host``)."""
    if not info or not info.get("pid"):
        return "another process"
    text = f"pid {info['pid']}"
    if info.get("holder"):
        text += f" ({info['holder']})"
    if info.get("host") and (always_host or info.get("host") != socket.gethostname()):
        text += f" on host {info['host']}"
    if info.get("started_at"):
        with contextlib.suppress(TypeError, ValueError, OverflowError, OSError):
            text += " since " + datetime.fromtimestamp(float(info["started_at"]), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return text


# ------------------------------------------------------------------------- the daemon lock


class DaemonLock:
    """The lock ``apicenterd run`` holds for its life: one daemon per state store.

    ``acquire()`` raises :class:`DaemonRunning` naming the holder when another daemon has it.
    """

    def __init__(self, state_path: str | Path):
        self.state_path = Path(state_path)
        self.path = daemon_lock_path(state_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting, or raise :class:`DaemonRunning` (:class:`LockError` if the
        lock file cannot be made or locked at all)."""
        with _clear_errors(self.path):
            make_private_dirs(self.path.parent)
            fd = _open_lock_file(self.path, self.state_path)
        try:
            # a reader probing with a shared lock holds it for an instant: try again briefly
            deadline = time.monotonic() + 2.0
            while not _try_flock(fd, self.path):
                holder = daemon_lock_holder(self.state_path)
                if holder is not None or time.monotonic() > deadline:
                    raise DaemonRunning(self._busy_message(holder), holder)
                time.sleep(0.02)
            _write_holder(fd, _holder_info())
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Let go (the kernel also does when the process ends)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _busy_message(self, holder: Mapping[str, Any] | None) -> str:
        who = describe_holder(holder, always_host=True)
        if who != "another process":
            who = "the daemon " + who
        argv = (holder or {}).get("argv")
        command = f" ({' '.join(map(str, argv))})" if argv else ""
        return (
            f"state store {self.state_path} is in use by {who}{command}; one daemon per state store "
            f"(lock file {self.path})"
        )


# ------------------------------------------------------------------------- flow locks


@contextlib.asynccontextmanager
async def flow_lock(
    state_path: str | Path,
    flow: str,
    *,
    holder: str = "apicenterd",
    wait: bool = True,
    on_wait: Callable[[dict[str, Any]], None] | None = None,
    poll: float = POLL_INTERVAL,
) -> AsyncIterator[None]:
    """Hold ``flow``'s lock file while the body runs. If another process (or another store in this
    one) holds it: raise :class:`FlowBusy` when ``wait`` is false, else call ``on_wait`` once with the
    holder's JSON and try again every ``poll`` seconds (cancellable)."""
    path = flow_lock_path(state_path, flow)
    state_path = Path(state_path)
    with _clear_errors(path):
        make_private_dirs(path.parent, owner_of=state_path)
        fd = _open_lock_file(path, state_path)
    try:
        told = False
        while not _try_flock(fd, path):
            info = _read_holder(path)
            if info is None:  # let go between our two looks
                await anyio.sleep(0.01)
                continue
            if not wait:
                raise FlowBusy(f"flow {flow} is running in {describe_holder(info)}", info)
            if not told:
                told = True
                if on_wait is not None:
                    on_wait(info)
            await anyio.sleep(poll)
        _write_holder(fd, _holder_info(flow=flow, holder=holder))
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
