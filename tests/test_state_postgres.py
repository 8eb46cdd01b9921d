"""state.postgres: what the shared state-store tests (tests/test_state.py, run on both backends) do not
cover: its migrations and version table, advisory flow locks, the state check, the config's url."""

from __future__ import annotations

import contextlib
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.abc
import pg_support
import psycopg
import pytest

from apicenterd.config.resolve import read_config
from apicenterd.errors import ConfigError, StateError
from apicenterd.state import AuditEntry, FlowBusy, Link, SQLiteStore, store_for
from apicenterd.state.postgres import MIGRATIONS, PostgresStore, migrate, redact_url

pytestmark = pytest.mark.anyio


@pytest.fixture
def pg():
    """(server url, a fresh schema name); the schema is dropped afterwards."""
    url, schema = pg_support.server_url(), pg_support.new_schema()
    try:
        yield url, schema
    finally:
        pg_support.drop_schema(url, schema)


@pytest.fixture
async def store(pg):
    url, schema = pg
    s = PostgresStore(url, schema=schema)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def tables(url: str, schema: str) -> set[str]:
    rows = pg_support.raw(url, "public", f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}'")  # noqa: S608 - a schema name of our own
    return {r[0] for r in rows}


# --- migrations -----------------------------------------------------------------------------------


async def test_an_empty_schema_gets_every_migration_and_a_version_table(pg, store):
    url, schema = pg
    assert await store.schema_version() == len(MIGRATIONS)
    assert {"schema_version", "cursors", "links", "runs", "audit", "tokens", "dead_letters", "rate_limit_pauses"} <= tables(url, schema)
    assert pg_support.raw(url, schema, "SELECT version FROM schema_version") == [(len(MIGRATIONS),)]


async def test_reopening_keeps_the_data_and_applies_nothing(pg):
    url, schema = pg
    first = PostgresStore(url, schema=schema)
    await first.open()
    await first.set_cursor("f", "c1")
    await first.save_tokens("eacc", {"access_token": "a1", "refresh_token": "r1", "expires_at": 12.5})
    await first.save_tokens("eacc", {"access_token": "a2", "refresh_token": "r2", "expires_at": 99.0})
    await first.close()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f'SET search_path TO "{schema}"')
        assert await migrate(conn) == len(MIGRATIONS)  # nothing pending: no CREATE TABLE runs again
    again = PostgresStore(url, schema=schema)
    await again.open()
    try:
        assert await again.get_cursor("f") == "c1"
        assert await again.load_tokens("eacc") == {"access_token": "a2", "refresh_token": "r2", "expires_at": 99.0}
        assert pg_support.raw(url, schema, "SELECT count(*) FROM schema_version") == [(1,)]
    finally:
        await again.close()


async def test_a_database_newer_than_the_code_is_refused_and_left_untouched(pg):
    url, schema = pg
    newer = len(MIGRATIONS) + 3
    pg_support.raw(url, "public", f'CREATE SCHEMA "{schema}"; SET search_path TO "{schema}"; '  # noqa: S608
                   f"CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES ({newer})")  # fmt: skip
    store = PostgresStore(url, schema=schema)
    with pytest.raises(RuntimeError) as info:
        await store.open()
    message = str(info.value)
    assert f"schema version {newer} is newer" in message and "upgrade apicenterd" in message
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_cursor("f")
    assert tables(url, schema) == {"schema_version"}
    assert pg_support.raw(url, schema, "SELECT version FROM schema_version") == [(newer,)]


async def test_a_failing_migration_rolls_back_whole_and_applies_once_fixed(pg):
    url, schema = pg
    migrations = [*MIGRATIONS, "CREATE TABLE half_done (x TEXT); INSERT INTO no_such_table VALUES (1)"]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        with pytest.raises(psycopg.errors.UndefinedTable, match="no_such_table"):
            await migrate(conn, migrations)
        assert "half_done" not in tables(url, schema) and "links" in tables(url, schema)
        assert pg_support.raw(url, schema, "SELECT version FROM schema_version") == [(len(MIGRATIONS),)]
        migrations[-1] = "CREATE TABLE half_done (x TEXT)"
        assert await migrate(conn, migrations) == len(MIGRATIONS) + 1
    assert "half_done" in tables(url, schema)
    assert pg_support.raw(url, schema, "SELECT version FROM schema_version") == [(len(MIGRATIONS) + 1,)]


async def test_two_processes_migrating_at_once_apply_each_migration_once(pg):
    url, schema = pg
    stores = [PostgresStore(url, schema=schema) for _ in range(3)]
    async with anyio.create_task_group() as tg:
        for s in stores:
            tg.start_soon(s.open)
    try:
        assert [await s.schema_version() for s in stores] == [len(MIGRATIONS)] * 3
    finally:
        for s in stores:
            await s.close()


async def test_closed_store_refuses_and_open_close_are_idempotent(pg):
    url, schema = pg
    store = PostgresStore(url, schema=schema)
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_cursor("f")
    await store.open()
    await store.open()
    await store.close()
    await store.close()


async def test_an_unreachable_server_is_a_state_error_naming_it_without_the_password():
    store = PostgresStore("postgresql://apicenterd:s3cret@127.0.0.1:1/apicenterd?connect_timeout=5")
    with pytest.raises(StateError) as info:
        await store.open()
    message = str(info.value)
    assert "postgresql://apicenterd:***@127.0.0.1:1/apicenterd" in message and "s3cret" not in message
    assert "server is running" in message and info.value.cause == "cannot_open"


def test_bad_urls_and_schema_names_are_refused():
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        PostgresStore("mysql://root@localhost/db")
    with pytest.raises(ValueError, match="lowercase SQL name"):
        PostgresStore("postgresql://localhost/db", schema='x"; DROP TABLE links; --')
    assert redact_url("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"


# --- flow locks: advisory locks -------------------------------------------------------------------


async def test_a_held_flow_lock_is_busy_for_another_store_naming_its_holder(pg, store):
    other = PostgresStore(*pg[:1], schema=pg[1])
    await other.open()
    try:
        async with store.flow_lock("orders", holder="daemon"):
            with pytest.raises(FlowBusy) as info:
                async with other.flow_lock("orders", wait=False):
                    pytest.fail("two holders of one flow lock")
            assert info.value.holder["holder"] == "daemon" and info.value.holder["flow"] == "orders"
            assert "pid" in str(info.value)
            async with other.flow_lock("products", wait=False):  # another flow: its own lock
                pass
        async with other.flow_lock("orders", wait=False):  # released on exit
            assert pg_support.raw(pg[0], pg[1], "SELECT flow FROM flow_lock_holders") == [("orders",)]
        assert pg_support.raw(pg[0], pg[1], "SELECT flow FROM flow_lock_holders") == []
    finally:
        await other.close()


async def test_a_waiting_flow_lock_is_told_once_and_runs_after_the_holder(store):
    order: list[str] = []
    told: list[dict] = []
    holding = anyio.Event()
    release = anyio.Event()

    async def first() -> None:
        async with store.flow_lock("orders", holder="first"):
            holding.set()
            await release.wait()
            order.append("first done")

    async def second() -> None:
        await holding.wait()
        async with store.flow_lock("orders", holder="second", on_wait=told.append):
            order.append("second runs")

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        tg.start_soon(second)
        while not told:  # the second found it held and said so
            await anyio.sleep(0.01)
        assert order == []
        release.set()
    assert order == ["first done", "second runs"]
    assert len(told) == 1 and told[0]["holder"] == "first"


async def test_a_waiting_flow_lock_can_be_cancelled(store):
    async with store.flow_lock("orders"):
        with anyio.move_on_after(0.3) as scope:
            async with store.flow_lock("orders"):
                pytest.fail("taken while held")
        assert scope.cancelled_caught
    async with store.flow_lock("orders", wait=False):  # nothing left behind
        pass


async def test_the_lock_of_a_killed_session_is_released(pg, store):
    url, schema = pg
    async with store.flow_lock("orders", holder="doomed"):
        (pid,) = pg_support.raw(url, schema, "SELECT backend_pid FROM flow_lock_holders WHERE flow = 'orders'")[0]
        pg_support.raw(url, schema, f"SELECT pg_terminate_backend({pid})")  # as if its machine died
        async with store.flow_lock("orders", wait=False, holder="next"):
            assert "next" in pg_support.raw(url, schema, "SELECT holder FROM flow_lock_holders")[0][0]


async def test_locks_in_two_schemas_do_not_collide(pg, store):
    url, _ = pg
    schema = pg_support.new_schema()
    elsewhere = PostgresStore(url, schema=schema)
    await elsewhere.open()
    try:
        async with store.flow_lock("orders"), elsewhere.flow_lock("orders", wait=False):
            pass
    finally:
        await elsewhere.close()
        pg_support.drop_schema(url, schema)


# --- the state check, copies ------------------------------------------------------------------------


async def test_check_file_says_when_the_tables_are_gone(pg, store):
    await store.check_file()
    pg_support.drop_schema(*pg)
    with pytest.raises(StateError) as info:
        await store.check_file()
    assert info.value.cause == "deleted" and "tables are gone" in str(info.value)


async def test_save_copy_points_to_pg_dump(store, tmp_path):
    with pytest.raises(StateError, match="pg_dump"):
        await store.save_copy(tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


# --- choosing the backend: [state] url --------------------------------------------------------------


def write_config(tmp_path, state: str):
    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text(f"[state]\n{state}\n", encoding="utf-8")
    return cfg


def test_the_state_url_chooses_postgresql_and_sqlite_stays_the_default(tmp_path):
    assert read_config(write_config(tmp_path, "")).state.url is None
    assert isinstance(store_for(None, tmp_path / "s.db"), SQLiteStore)
    url = "postgresql://apicenterd@127.0.0.1:5432/apicenterd"
    assert read_config(write_config(tmp_path, f'url = "{url}"')).state.url == url
    chosen = store_for(url, tmp_path / "s.db")
    assert isinstance(chosen, PostgresStore) and chosen.url == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite:///var/lib/apicenterd.db", "scheme 'sqlite' is not supported"),
        ("127.0.0.1:5432/apicenterd", "is not supported"),
        ("postgresql://apicenterd@127.0.0.1:5432", "names no database"),
        ("postgresql://apicenterd@127.0.0.1:port/db", "is not a URL"),
    ],
)
def test_a_bad_state_url_is_refused_naming_the_setting(tmp_path, url, says):
    with pytest.raises(ConfigError) as info:
        read_config(write_config(tmp_path, f'url = "{url}"'))
    assert "state.url" in str(info.value) and says in str(info.value)


def test_flows_run_and_the_dead_letter_queue_work_on_a_postgresql_state_url(tmp_path, capsys, registry, memory, monkeypatch, pg):
    """The CLI takes the state from [state] url: a run's links, dead letters and runs land in PostgreSQL
    (in the schema the URL's search_path names), no SQLite file is made, and a second run reads them back."""
    from fakes import product

    from apicenterd import cli

    url, schema = pg
    pg_support.raw(url, "public", f'CREATE SCHEMA "{schema}"')
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    memory.put(product("GOOD"), "1")
    memory.put(product("BAD"), "2")
    memory.fail_create.add("BAD")
    state_url = f"{url}?options=-csearch_path%3D{schema}"
    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text(
        f"""
[state]
url = "{state_url}"

[connections.src]
connector = "memsource"

[connections.dst]
connector = "memtarget"

[flows.products]
source = "src"
target = "dst"
entity = "products"
interval = "1m"
""",
        encoding="utf-8",
    )

    def run(*argv: str) -> tuple[int, str]:
        code = cli.main([*argv, "--config", str(cfg)])
        return code, capsys.readouterr().out

    code, out = run("flows", "run", "products")
    assert code == cli.EXIT_RECORDS_FAILED and "created 1" in out and "failed 1" in out
    assert pg_support.raw(url, schema, "SELECT source_id FROM links") == [("GOOD",)]
    assert pg_support.raw(url, schema, "SELECT source_id, status FROM dead_letters") == [("BAD", "open")]
    code, out = run("dlq", "list")
    assert code == 0 and "BAD" in out
    code, out = run("flows", "run", "products")  # past the cursor only BAD is read again: it waits out its backoff
    assert code == 0 and "created 0" in out and "waiting 1" in out and "failed 0" in out
    code, out = run("runs")
    assert code == 0 and out.count("products") == 2
    assert not list(tmp_path.glob("*.db*"))


# --- the server drops connections (a restart) -------------------------------------------------------


def with_name(url: str, name: str) -> str:
    """``url`` with an application_name, so a test can find (and end) only its own connections."""
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def terminate(url: str, name: str) -> int:
    rows = pg_support.raw(
        url, "public", f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}'"  # noqa: S608
    )
    return len(rows)


async def test_connections_the_server_dropped_are_replaced_and_nothing_settled_is_lost(pg):
    url, schema = pg
    store = PostgresStore(with_name(url, schema), schema=schema)
    await store.open()
    try:
        await store.settle(AuditEntry("f", 1, "products", "S1", "created"), link=Link("src", "products", "S1", "dst", "T1", "h"), cursor="c1")
        assert terminate(url, schema) >= 1  # as a server restart does
        assert await store.get_cursor("f") == "c1"  # a fresh connection, transparently
        await store.settle(AuditEntry("f", 1, "products", "S2", "created"), cursor="c2")
        assert [e.source_id for e in await store.audit()] == ["S2", "S1"]
    finally:
        await store.close()


async def test_a_server_gone_in_a_call_is_a_state_error_saying_nothing_settled_is_lost(pg):
    """A proxy in front of the server stops: the pool cannot get a connection (short timeout)."""
    url, schema = pg
    parts = urlsplit(url)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    open_ = True

    async def forward(client: anyio.abc.SocketStream) -> None:
        if not open_:
            await client.aclose()
            return
        async with client, await anyio.connect_tcp(parts.hostname or "127.0.0.1", parts.port or 5432) as server:

            async def pump(a, b) -> None:
                with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    async for chunk in a:
                        await b.send(chunk)
                with contextlib.suppress(Exception):
                    await b.aclose()

            async with anyio.create_task_group() as tg:
                tg.start_soon(pump, client, server)
                tg.start_soon(pump, server, client)

    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, forward)
        store = PostgresStore(with_name(proxied, schema), schema=schema, timeout=3)
        await store.open()
        try:
            await store.set_cursor("f", "c1")
            open_ = False  # the server is gone: no new connection gets through
            terminate(url, schema)
            with pytest.raises(StateError) as info:
                await store.get_cursor("f")
            message = str(info.value)
            assert info.value.cause == "io" and "cannot be used" in message and "read again in the next run" in message
        finally:
            await store.close()
            tg.cancel_scope.cancel()


def test_check_says_where_the_state_is_without_the_password(tmp_path, capsys):
    from apicenterd import cli

    cfg = write_config(tmp_path, 'url = "postgresql://apicenterd:s3cret@db.example.com:5432/apicenterd"')
    assert cli.main(["check", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "state in postgresql://apicenterd:***@db.example.com:5432/apicenterd" in out and "s3cret" not in out


async def test_flow_locks_reuse_their_sessions_and_hand_them_back_holding_no_lock(pg, store):
    """A flow lock's session comes from a pool (no new connection per run) and goes back to it with
    every advisory lock released, also when the run holding it was cancelled."""
    backends = []
    for _ in range(10):
        async with store.flow_lock("orders"):
            backends.append(pg_support.raw(pg[0], pg[1], "SELECT backend_pid FROM flow_lock_holders WHERE flow='orders'")[0][0])
    assert len(set(backends)) <= 2, backends  # a session or two, used again (one per run before)

    with anyio.CancelScope() as scope:
        async with store.flow_lock("orders"):
            scope.cancel()
            await anyio.sleep(10)
    held = pg_support.raw(pg[0], pg[1], "SELECT pid FROM pg_locks WHERE locktype='advisory'")
    assert not {pid for (pid,) in held} & set(backends), held
    other = PostgresStore(*pg[:1], schema=pg[1])
    await other.open()
    try:
        async with other.flow_lock("orders", wait=False):  # free for anyone
            pass
    finally:
        await other.close()
