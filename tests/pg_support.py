"""PostgreSQL for the state-store tests: one server (``APICENTERD_TEST_PG``, default
postgresql://postgres@127.0.0.1:5432/test, then the same as root), a schema of its own per test.

Without a reachable server these tests skip for a developer and fail with ``CI=true``
(``scripts/test`` starts the local cluster when it is installed)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

PG_MISSING = "PostgreSQL is not reachable (scripts/test starts the local cluster; or set APICENTERD_TEST_PG)"

_CANDIDATES = (
    [os.environ["APICENTERD_TEST_PG"]]
    if os.environ.get("APICENTERD_TEST_PG")
    else ["postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test"]
)
_found: list[str | None] = []


def server_url() -> str:
    """The URL of a server that answers; skips (fails with CI=true) if none does."""
    if not _found:
        url = None
        try:
            import psycopg
        except ImportError:
            psycopg = None  # type: ignore[assignment]
        if psycopg is not None:
            for candidate in _CANDIDATES:
                try:
                    with psycopg.connect(candidate, connect_timeout=10) as conn:
                        conn.execute("SELECT 1")
                except psycopg.Error:
                    continue
                url = candidate
                break
        _found.append(url)
    if _found[0] is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {PG_MISSING}; the PostgreSQL state tests must run in CI, not skip")
        pytest.skip(PG_MISSING)
    return _found[0]


def new_schema() -> str:
    """A fresh schema name (created by the store on open)."""
    return f"t_{uuid.uuid4().hex[:16]}"


def create_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')


def schema_url(url: str, schema: str) -> str:
    """``url`` with its search path set to ``schema`` (libpq's ``options``): a config's ``[state] url``
    that keeps a test's tables in a schema of their own."""
    return url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def state_url() -> Iterator[str]:
    """A config's ``[state] url`` on the test server, in a fresh schema of its own, dropped afterwards."""
    server = server_url()
    schema = new_schema()
    create_schema(server, schema)
    try:
        yield schema_url(server, schema)
    finally:
        drop_schema(server, schema)


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def raw(url: str, schema: str, query: str) -> list[tuple]:
    """Rows of ``query`` (statements; the last one's rows, if any) run in ``schema`` on a connection of its own."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        cur = conn.execute(query)
        return cur.fetchall() if cur.description is not None else []


class PrivateServer:
    """A PostgreSQL server of the test's own (``initdb`` into a temporary folder, a free port, its socket
    there), to stop and start in the middle of a test without touching the machine's shared cluster.

    Run as root, the server runs as the ``postgres`` user (PostgreSQL refuses root). Without the binaries
    :meth:`start` skips, and fails with ``CI=true``. ``url`` is ``postgresql://postgres@127.0.0.1:PORT/postgres``
    (trust)."""

    def __init__(self) -> None:
        import glob
        import tempfile

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        self._bin = os.path.dirname(bins[-1]) if bins else None
        self.folder = tempfile.mkdtemp(prefix="apicenterd-pg-")
        self.port = 0
        self.url = ""

    def _as_owner(self, *argv: str) -> list[str]:
        import shutil

        if os.getuid() != 0:
            return list(argv)
        runuser = shutil.which("runuser")
        return [runuser, "-u", "postgres", "--", *argv] if runuser else ["su", "postgres", "-c", " ".join(argv)]

    def _run(self, *argv: str) -> None:
        import subprocess

        done = subprocess.run(self._as_owner(*argv), capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stdout[-1500:]} {done.stderr[-1500:]}")

    def start(self) -> str:
        """initdb (the first time) and start; the URL."""
        import socket

        if self._bin is None:
            message = "PostgreSQL's server binaries (/usr/lib/postgresql/*/bin) are not installed"
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI=true: {message}; the PostgreSQL restart tests must run in CI, not skip")
            pytest.skip(message)
        data = os.path.join(self.folder, "data")
        if not os.path.isdir(data):
            if os.getuid() == 0:
                import shutil

                shutil.chown(self.folder, "postgres", "postgres")
            self._run(f"{self._bin}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync")
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
            self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run(
            f"{self._bin}/pg_ctl", "-D", data, "-w", "-t", "120", "-l", os.path.join(self.folder, "log"),
            "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start",
        )  # fmt: skip
        return self.url

    def stop(self) -> None:
        """Stop it now (``-m fast``: the open connections are cut, as in a restart or a failover)."""
        self._run(f"{self._bin}/pg_ctl", "-D", os.path.join(self.folder, "data"), "-w", "-t", "120", "-m", "fast", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop it (if running) and delete its folder."""
        import shutil

        if self._bin is not None and os.path.exists(os.path.join(self.folder, "data", "postmaster.pid")):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
