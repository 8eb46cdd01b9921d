"""PostgreSQL for the state-store tests: one server (``APICENTERD_TEST_PG``, default
postgresql://postgres@127.0.0.1:5432/test, then the same as root), a schema of its own per test.

Without a reachable server these tests skip for a developer and fail with ``CI=true``
(``scripts/test`` starts the local cluster when it is installed)."""

from __future__ import annotations

import os
import uuid

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
