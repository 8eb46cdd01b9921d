"""``apicenterd state migrate`` upgrades a state store written by the previous release (both backends),
keeps what it holds, and says what it did; ``apicenterd status`` on a store no daemon uses."""

from __future__ import annotations

import json
import sqlite3

import anyio
import pg_support
import psycopg
import pytest

from apicenterd.cli import main
from apicenterd.state import SQLiteStore
from apicenterd.state import sqlite as sqlite_state
from apicenterd.state.postgres import MIGRATIONS, PostgresStore, migrate

pytest.importorskip("apicenterd_eaccounting")
from e2e_support import write_config


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _config(tmp_path, url: str | None = None) -> str:
    path = write_config(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")
    if url is not None:
        path.write_text(path.read_text().replace('path = "state.db"', f'path = "state.db"\nurl = "{url}"'))
    return str(path)


def test_sqlite_state_of_the_previous_release_is_migrated_and_keeps_its_cursor(tmp_path, capsys):
    config = _config(tmp_path)
    state = tmp_path / "state.db"
    previous = len(sqlite_state.MIGRATIONS) - 1
    with sqlite3.connect(state) as db:
        sqlite_state.migrate(db, sqlite_state.MIGRATIONS[:previous])
        db.execute("INSERT INTO cursors (flow, cursor, updated_at) VALUES ('products', 'c-41', 1.0)")
    code, out, err = run_cli(capsys, "state", "migrate", "--config", config)
    assert code == 0, err
    assert f"schema version {previous} -> {len(sqlite_state.MIGRATIONS)}" in out
    code, out, _ = run_cli(capsys, "state", "migrate", "--config", config)
    assert code == 0 and f"schema version {len(sqlite_state.MIGRATIONS)}, up to date" in out

    async def cursor():
        store = SQLiteStore(state)
        await store.open()
        try:
            return await store.get_cursor("products")
        finally:
            await store.close()

    assert anyio.run(cursor) == "c-41"


def test_sqlite_state_newer_than_the_code_is_refused_by_migrate(tmp_path, capsys):
    config = _config(tmp_path)
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute(f"PRAGMA user_version={len(sqlite_state.MIGRATIONS) + 1}")
    code, _out, err = run_cli(capsys, "state", "migrate", "--config", config)
    assert code == 1 and "is newer than this apicenterd knows" in err and "upgrade apicenterd" in err


@pytest.fixture
def pg_url():
    """A URL whose search_path is a fresh schema of its own (created here, dropped afterwards)."""
    server, schema = pg_support.server_url(), pg_support.new_schema()
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{server}?options=-csearch_path%3D{schema}", server, schema
    finally:
        pg_support.drop_schema(server, schema)


def test_postgres_state_of_the_previous_release_gets_the_job_engine_and_keeps_its_runs(tmp_path, capsys, pg_url):
    url, server, schema = pg_url
    config = _config(tmp_path, url)

    async def previous_release():  # the schema of the release before the job engine (migration 1 only)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            assert await migrate(conn, MIGRATIONS[:1]) == 1
            await conn.execute("INSERT INTO cursors (flow, cursor, updated_at) VALUES ('products', 'c-7', 1.0)")
            await conn.execute(
                "INSERT INTO runs (flow, trigger, started_at, finished_at, status, counts) VALUES ('products', 'schedule', 1, 2, 'ok', '{}')"
            )

    anyio.run(previous_release)
    for command in (["runs"], ["audit"], ["dlq", "list"], ["status"], ["check", "--connect"]):  # read-only: they migrate nothing
        code, _out, err = run_cli(capsys, *command, "--config", config)
        assert code != 0 and "schema version 1, older than this apicenterd's" in err and "apicenterd state migrate" in err, command
    assert pg_support.raw(server, schema, "SELECT version FROM schema_version") == [(1,)]
    code, out, err = run_cli(capsys, "state", "migrate", "--config", config)
    assert code == 0, err
    assert f"schema version 1 -> {len(MIGRATIONS)}" in out and "postgresql://" in out
    tables = {r[0] for r in pg_support.raw(server, schema, f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}'")}  # noqa: S608
    assert {"procrastinate_jobs", "procrastinate_workers", "daemons", "runs", "cursors"} <= tables
    code, out, _ = run_cli(capsys, "state", "migrate", "--config", config)
    assert code == 0 and "up to date" in out

    async def kept():
        store = PostgresStore(url)
        await store.open()
        try:
            return await store.get_cursor("products"), await store.runs()
        finally:
            await store.close()

    cursor, runs = anyio.run(kept)
    assert cursor == "c-7"
    assert [(r.flow, r.status, r.daemon) for r in runs] == [("products", "ok", None)]

    code, out, err = run_cli(capsys, "status", "--json", "--config", config)
    assert code == 0, err
    assert json.loads(out) == {"daemons": [], "waiting": [], "stalled": []}
    code, out, _ = run_cli(capsys, "status", "--config", config)
    assert code == 0 and "daemons: 0 alive of 0" in out and "jobs waiting: 0" in out


def test_postgres_state_newer_than_the_code_is_refused_by_migrate(tmp_path, capsys, pg_url):
    url, server, schema = pg_url
    pg_support.raw(server, schema, f"CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES ({len(MIGRATIONS) + 1})")  # noqa: S608 - a number of ours
    code, _out, err = run_cli(capsys, "state", "migrate", "--config", _config(tmp_path, url))
    assert code == 1 and "is newer than this apicenterd knows" in err


def test_status_of_sqlite_state_names_no_daemon_when_none_runs(tmp_path, capsys):
    code, out, err = run_cli(capsys, "status", "--config", _config(tmp_path))
    assert code == 0, err
    assert "SQLite: one daemon" in out and "daemon: none running" in out
