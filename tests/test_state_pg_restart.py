"""The PostgreSQL state store survives a restart of its server: the pool replaces the connections the
server cut, and a call whose connection is lost in it is done again on a new one (with backoff, a log
line saying so), so a daemon or a ``flows run`` goes on instead of failing.

The restarts are of a private server (tests/pg_support.py ``PrivateServer``), never the shared cluster."""

from __future__ import annotations

import anyio
import pg_support
import psycopg
import pytest
import structlog.testing

from apicenterd.errors import StateError
from apicenterd.state import AuditEntry, Link
from apicenterd.state.postgres import PostgresStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def server():
    private = pg_support.PrivateServer()
    try:
        private.start()
        yield private
    finally:
        private.close()


@pytest.fixture
async def shared_store():
    url = pg_support.server_url()
    schema = pg_support.new_schema()
    store = PostgresStore(url, schema=schema, timeout=30)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        pg_support.drop_schema(url, schema)


def _settle(store: PostgresStore, n: int):
    audit = AuditEntry("products", 1, "products", f"S{n}", "created")
    return store.settle(audit, link=Link("src", "products", f"S{n}", "dst", f"T{n}", "h"), cursor=f"c{n}")


async def test_the_store_goes_on_after_its_server_restarts(server):
    store = PostgresStore(server.url, min_size=2, max_size=4, timeout=60)
    await store.open()
    try:
        await _settle(store, 1)
        await anyio.to_thread.run_sync(server.restart)  # every pooled connection is cut
        await _settle(store, 2)
        assert await store.get_cursor("products") == "c2"

        # a call made while the server is down waits for it (the pool reconnects) and then succeeds
        await anyio.to_thread.run_sync(server.stop)
        done = anyio.Event()
        results: list[object] = []

        async def settle_while_down() -> None:
            await _settle(store, 3)
            results.append(await store.get_cursor("products"))
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(settle_while_down)
            await anyio.to_thread.run_sync(server.start)
            with anyio.fail_after(120):
                await done.wait()
        assert results == ["c3"]
        links = [await store.get_link("src", "products", f"S{n}", "dst") for n in (1, 2, 3)]
        assert [link.target_id if link else None for link in links] == ["T1", "T2", "T3"]
    finally:
        await store.close()


async def test_a_connection_lost_in_a_call_is_logged_and_the_call_done_again(shared_store):
    attempts: list[int] = []

    async def call(conn: psycopg.AsyncConnection) -> str:
        attempts.append(1)
        if len(attempts) == 1:  # the server cuts this connection in the middle of the call
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return (await (await conn.execute("SELECT 'again'")).fetchone())[0]

    with structlog.testing.capture_logs() as logs:
        assert await shared_store._with_conn("a test call", call) == "again"
    assert len(attempts) == 2
    events = [(e["event"], e.get("doing")) for e in logs]
    assert ("state_connection_lost", "a test call") in events
    assert ("state_reconnected", "a test call") in events
    lost = next(e for e in logs if e["event"] == "state_connection_lost")
    assert lost["log_level"] == "warning" and "reconnecting" in lost["message"]


async def test_a_settle_done_twice_is_one_link_and_one_cursor(shared_store):
    """What a settle run again after a lost commit does: the same link and cursor, not two."""
    await _settle(shared_store, 1)
    await _settle(shared_store, 1)
    rows = pg_support.raw(shared_store.url, shared_store.schema, "SELECT count(*) FROM links")
    assert rows == [(1,)]
    assert await shared_store.get_cursor("products") == "c1"


async def test_a_server_that_stays_away_is_a_state_error_after_the_timeout(server):
    store = PostgresStore(server.url, timeout=3)
    await store.open()
    try:
        await anyio.to_thread.run_sync(server.stop)
        with pytest.raises(StateError, match="PostgreSQL state .*(cannot be used|running and reachable)"):
            await store.get_cursor("products")
    finally:
        await store.close()


async def test_flow_locks_go_on_after_the_server_restarts(server):
    """The lock pool's idle session died with the server: the next flow lock takes a new one."""
    store = PostgresStore(server.url, timeout=60)
    await store.open()
    try:
        async with store.flow_lock("orders"):
            pass  # its session now idles in the lock pool
        await anyio.to_thread.run_sync(server.restart)
        async with store.flow_lock("orders", wait=False):
            holders = await store._fetchall("SELECT flow FROM flow_lock_holders")
        assert holders == [("orders",)]
    finally:
        await store.close()
