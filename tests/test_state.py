"""state.sqlite: migrations, cursors, links, atomic settle, runs, audit, tokens, purge."""

from __future__ import annotations

import sqlite3

import pg_support
import pytest

from apicenterd.state import AuditEntry, Link, Settlement, SQLiteStore
from apicenterd.state.sqlite import MIGRATIONS, migrate

pytestmark = pytest.mark.anyio


class Clock:
    """A settable clock for created/updated times."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
async def sqlite_store(tmp_path, clock):
    s = SQLiteStore(tmp_path / "state" / "apicenterd.db", clock=clock)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request, tmp_path, clock):
    """The store under test, once per backend: SQLite in a temporary file, PostgreSQL in a schema of its own."""
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "state" / "apicenterd.db", clock=clock)
        await s.open()
        try:
            yield s
        finally:
            await s.close()
        return
    from apicenterd.state.postgres import PostgresStore

    url, schema = pg_support.server_url(), pg_support.new_schema()
    s = PostgresStore(url, schema=schema, clock=clock)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
        pg_support.drop_schema(url, schema)


async def raw_rows(store, query: str) -> list[tuple]:
    """Rows of ``query`` read straight from the store's database, past its methods."""
    if isinstance(store, SQLiteStore):
        return await store._run(lambda db: db.execute(query).fetchall())
    return pg_support.raw(store.url, store.schema, query)


def tables(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def entry(source_id: str = "S1", **kw) -> AuditEntry:
    data = {"flow": "f", "run_id": 1, "entity": "products", "source_id": source_id, "action": "created"}
    data.update(kw)
    return AuditEntry(**data)


def link(source_id: str = "S1", target_id: str = "T1", hash: str = "h1") -> Link:
    return Link("src", "products", source_id, "dst", target_id, hash)


# --- migrations -----------------------------------------------------------------------------------


async def test_empty_file_gets_every_migration(tmp_path, sqlite_store):
    store = sqlite_store
    assert await store.schema_version() == len(MIGRATIONS)
    assert {"cursors", "links", "runs", "audit", "tokens"} <= tables(store.path)
    assert store.path.parent.is_dir()  # the folder was created


async def test_reopening_applies_nothing(tmp_path):
    path = tmp_path / "s.db"
    first = SQLiteStore(path)
    await first.open()
    await first.set_cursor("f", "c1")
    await first.close()
    with sqlite3.connect(path) as db:
        assert migrate(db) == len(MIGRATIONS)  # nothing pending: no CREATE TABLE runs again
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    again = SQLiteStore(path)
    await again.open()
    try:
        assert await again.schema_version() == len(MIGRATIONS)
        assert await again.get_cursor("f") == "c1"
    finally:
        await again.close()


async def test_newer_database_is_refused(tmp_path):
    path = tmp_path / "s.db"
    newer = len(MIGRATIONS) + 3
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={newer}")
    store = SQLiteStore(path)
    with pytest.raises(RuntimeError) as info:
        await store.open()
    message = str(info.value)
    assert f"schema version {newer} is newer" in message and "upgrade apicenterd" in message
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_cursor("f")
    with sqlite3.connect(path) as db:  # untouched
        assert db.execute("PRAGMA user_version").fetchone()[0] == newer
        assert db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_failing_migration_rolls_back_whole(tmp_path):
    path = tmp_path / "s.db"
    migrations = [*MIGRATIONS, "CREATE TABLE half_done (x TEXT); INSERT INTO no_such_table VALUES (1)"]
    db = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
            migrate(db, migrations)
        # the earlier migrations stay (each has its own transaction), the failed one left nothing
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert "half_done" not in tables(path)
        assert "links" in tables(path)
        assert not db.in_transaction
        # fixed, it applies
        migrations[-1] = "CREATE TABLE half_done (x TEXT)"
        assert migrate(db, migrations) == len(MIGRATIONS) + 1
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1
    finally:
        db.close()


# --- cursors and links ------------------------------------------------------------------------------


async def test_cursors(store):
    assert await store.get_cursor("f") is None
    await store.set_cursor("f", "2026-01-01")
    await store.set_cursor("g", "other")
    await store.set_cursor("f", "2026-01-02")
    assert await store.get_cursor("f") == "2026-01-02"
    await store.set_cursor("f", None)
    assert await store.get_cursor("f") is None
    assert await store.get_cursor("g") == "other"


async def test_links_upsert_and_hash(store, clock):
    assert await store.get_link("src", "products", "S1", "dst") is None
    await store.settle(entry(), link=link(hash="h1"))
    first = await store.get_link("src", "products", "S1", "dst")
    assert (first.target_id, first.hash, first.updated_at) == ("T1", "h1", clock.now)
    clock.now += 10
    await store.settle(entry(action="updated"), link=link(hash="h2"))
    second = await store.get_link("src", "products", "S1", "dst")
    assert (second.target_id, second.hash, second.updated_at) == ("T1", "h2", clock.now)
    # links are per source, entity and target
    assert await store.get_link("src", "products", "S1", "elsewhere") is None
    assert await store.get_link("src", "stock", "S1", "dst") is None
    await store.settle(entry("S2"), link=link("S2", "T2"))
    assert [lk.source_id for lk in await store.links("src", "products", "dst")] == ["S1", "S2"]


async def test_settle_writes_audit_link_and_cursor(store, clock):
    run = await store.start_run("f")
    await store.settle(entry(run_id=run, target_id="T1", key="SKU1"), link=link(), cursor="c1")
    assert await store.get_cursor("f") == "c1"
    assert (await store.get_link("src", "products", "S1", "dst")).target_id == "T1"
    [audit] = await store.audit(flow="f")
    assert (audit.run_id, audit.source_id, audit.action, audit.target_id, audit.key, audit.at) == (
        run,
        "S1",
        "created",
        "T1",
        "SKU1",
        clock.now,
    )
    # without link and cursor: only the audit entry
    await store.settle(entry("S9", action="failed", reason="name too long"))
    assert await store.get_cursor("f") == "c1"
    assert await store.get_link("src", "products", "S9", "dst") is None
    assert (await store.audit(source_id="S9"))[0].reason == "name too long"


@pytest.mark.parametrize(
    "broken",
    [
        {"link": Link("src", "products", "S1", "dst", None, "h")},  # NOT NULL fails after the audit row
        {"link": link(), "cursor": {"not": "bindable"}},  # fails after audit and link
    ],
    ids=["link-fails", "cursor-fails"],
)
async def test_settle_is_atomic(store, broken):
    await store.set_cursor("f", "before")
    import psycopg

    with pytest.raises((sqlite3.Error, TypeError, psycopg.Error)):
        await store.settle(entry(), **broken)
    assert await store.audit() == []
    assert await store.get_link("src", "products", "S1", "dst") is None
    assert await store.get_cursor("f") == "before"
    # and the store is still usable
    await store.settle(entry(), link=link(), cursor="after")
    assert await store.get_cursor("f") == "after"
    assert len(await store.audit()) == 1


async def test_settle_many_writes_a_batch_in_order_with_one_cursor(store, clock):
    run = await store.start_run("f")
    await store.settle(entry("S3", run_id=run, action="failed", reason="old"), payload='{"n": 0}')
    batch = [
        Settlement(entry("S1", run_id=run, target_id="T1", key="K1"), link("S1", "T1")),
        Settlement(entry("S2", run_id=run, action="failed", reason="too long"), payload='{"n": 2}'),
        Settlement(entry("S2", run_id=run, action="updated", target_id="T2"), link("S2", "T2", "h2")),  # S2 fails, then settles
        Settlement(entry("S3", run_id=run, action="failed", reason="still"), payload='{"n": 3}'),  # counted again
        Settlement(entry("S4", run_id=run, action="skipped", reason="filtered out")),
        Settlement(entry("S1", run_id=run, action="updated", target_id="T1"), link("S1", "T1", "h9")),  # later link wins
        Settlement(entry("S5", run_id=run, action="created", target_id="T5"), link("S5", "T5")),
        Settlement(entry("S5", run_id=run, action="failed", reason="now broken"), payload='{"n": 5}'),  # settles, then fails
    ]
    await store.settle_many("f", batch, cursor="c8")
    assert await store.get_cursor("f") == "c8"
    audit = list(reversed(await store.audit(flow="f")))[1:]  # oldest first, less the first failure
    assert [(a.source_id, a.action, a.reason) for a in audit] == [
        (s.audit.source_id, s.audit.action, s.audit.reason) for s in batch
    ]
    assert all(a.run_id == run and a.at == clock.now for a in audit)
    links = await store.get_links("src", "products", ["S1", "S2", "S3", "S4", "S5"], "dst")
    assert {k: (v.target_id, v.hash) for k, v in links.items()} == {"S1": ("T1", "h9"), "S2": ("T2", "h2"), "S5": ("T5", "h1")}
    letters = await store.open_dead_letters("f", ["S1", "S2", "S3", "S4", "S5"])
    assert {k: (v.error, v.payload, v.attempts) for k, v in letters.items()} == {
        "S3": ("still", '{"n": 3}', 2),
        "S5": ("now broken", '{"n": 5}', 1),
    }
    # nothing settled but the cursor (records that needed no write): the cursor moves alone
    await store.settle_many("f", [], cursor="c9")
    assert await store.get_cursor("f") == "c9"
    await store.settle_many("f", [])
    assert await store.get_cursor("f") == "c9"
    assert len(await store.audit(flow="f")) == len(batch) + 1


async def test_settle_many_is_all_or_nothing(store):
    await store.set_cursor("f", "before")
    import psycopg

    batch = [
        Settlement(entry("S1"), link("S1", "T1")),
        Settlement(entry("S2", action="failed", reason="no"), payload="{}"),
        Settlement(entry("S3"), Link("src", "products", "S3", "dst", None, "h")),  # NOT NULL fails after the others
    ]
    with pytest.raises((sqlite3.Error, psycopg.Error)):
        await store.settle_many("f", batch, cursor="after")
    assert await store.audit() == []
    assert await store.get_links("src", "products", ["S1", "S2", "S3"], "dst") == {}
    assert await store.open_dead_letters("f", ["S2"]) == {}
    assert await store.get_cursor("f") == "before"
    with pytest.raises(ValueError, match="flow 'g'.*flow 'f'"):  # a record of another flow: refused, nothing written
        await store.settle_many("f", [Settlement(entry("S1")), Settlement(entry("S2", flow="g"))], cursor="after")
    assert await store.audit() == []
    await store.settle_many("f", batch[:2], cursor="after")  # and the store is still usable
    assert await store.get_cursor("f") == "after"
    assert len(await store.audit()) == 2


# --- runs and audit ---------------------------------------------------------------------------------


async def test_runs(store, clock):
    a = await store.start_run("a")
    clock.now += 5
    b = await store.start_run("b", trigger="webhook")
    await store.finish_run(a, "ok", {"created": 2, "failed": 0})
    clock.now += 1
    await store.finish_run(b, "failed", {}, error="boom")
    runs = await store.runs()
    assert [r.id for r in runs] == [b, a]  # newest first
    run_b, run_a = runs
    assert (run_a.flow, run_a.status, dict(run_a.counts), run_a.trigger) == ("a", "ok", {"created": 2, "failed": 0}, "schedule")
    assert run_a.finished_at - run_a.started_at == 5
    assert (run_b.status, run_b.error, run_b.trigger) == ("failed", "boom", "webhook")
    assert [r.id for r in await store.runs("a")] == [a]
    assert len(await store.runs(limit=1)) == 1
    running = await store.start_run("a")
    assert (await store.runs("a"))[0].id == running and (await store.runs("a"))[0].finished_at is None


async def test_audit_filters(store):
    await store.settle(entry("S1", flow="f", run_id=1))
    await store.settle(entry("S2", flow="f", run_id=1))
    await store.settle(entry("S1", flow="g", run_id=2))
    await store.settle(entry("S1", flow="f", run_id=3))
    assert [(e.flow, e.run_id) for e in await store.audit()] == [("f", 3), ("g", 2), ("f", 1), ("f", 1)]
    assert [e.source_id for e in await store.audit(flow="f")] == ["S1", "S2", "S1"]
    assert [e.flow for e in await store.audit(source_id="S1")] == ["f", "g", "f"]
    assert [e.source_id for e in await store.audit(run_id=1)] == ["S2", "S1"]
    assert [e.run_id for e in await store.audit(flow="f", source_id="S1")] == [3, 1]
    assert len(await store.audit(limit=2)) == 2
    ids = [e.id for e in await store.audit()]
    assert ids == sorted(ids, reverse=True) and None not in ids


async def test_tokens_survive_reopen(tmp_path):
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    await store.open()
    assert await store.load_tokens("eacc") is None
    await store.save_tokens("eacc", {"access_token": "a1", "refresh_token": "r1", "expires_at": 12.5})
    await store.save_tokens("eacc", {"access_token": "a2", "refresh_token": "r2", "expires_at": 99.0})
    await store.save_tokens("other", {"access_token": "x"})
    await store.close()
    again = SQLiteStore(path)
    await again.open()
    try:
        assert await again.load_tokens("eacc") == {"access_token": "a2", "refresh_token": "r2", "expires_at": 99.0}
        assert await again.load_tokens("other") == {"access_token": "x"}
        # back to the everyday durability level after a token write
        assert await again._run(lambda db: db.execute("PRAGMA synchronous").fetchone()[0]) == 1
    finally:
        await again.close()


async def test_purge_audit(store, clock):
    for i, at in enumerate((100.0, 200.0, 300.0)):
        await store.settle(entry(f"S{i}", at=at))
    assert await store.purge_audit(200.0) == 1  # strictly older only
    assert sorted(e.source_id for e in await store.audit()) == ["S1", "S2"]
    assert await store.purge_audit(1000.0) == 2
    assert await store.audit() == []
    assert await store.purge_audit(1000.0) == 0


async def test_closed_store_refuses(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_cursor("f")
    await store.open()
    await store.open()  # idempotent
    await store.close()
    await store.close()


# --- retention ----------------------------------------------------------------------------------------


async def test_purge_runs_deletes_finished_runs_never_a_running_one(store, clock):
    old = await store.start_run("f")
    await store.finish_run(old, "ok", {})
    stuck = await store.start_run("f")  # started as long ago, still running
    clock.now += 100
    recent = await store.start_run("f")
    await store.finish_run(recent, "failed", {}, error="boom")
    assert await store.purge_runs(clock.now - 50) == 1
    assert sorted(r.id for r in await store.runs()) == [stuck, recent]
    assert await store.purge_runs(clock.now + 1) == 1
    assert [r.id for r in await store.runs()] == [stuck]


async def test_a_purged_dead_letter_failing_again_gets_its_record_back_and_a_new_warning(store, clock):
    failed = entry("S1", action="failed", key="jan@example.com", reason="rejected")
    await store.settle(failed, payload='{"email": "jan@example.com"}')
    clock.now += 10
    assert await store.warn_dead_letters(clock.now) == {"f": 1}
    assert await store.warn_dead_letters(clock.now) == {}  # counted once
    assert await store.purge_dead_letters(clock.now) == (0, 1)
    assert await store.purge_dead_letters(clock.now) == (0, 0)
    (letter,) = await store.dead_letters()
    assert (letter.payload, letter.key, letter.purged_at, letter.status) == (None, None, clock.now, "open")
    assert await store.open_dead_letter("f", "S1") == letter
    # the personal data is gone from the file, not only from the answers
    assert await raw_rows(store, "SELECT payload, key FROM dead_letters") == [(None, None)]

    clock.now += 10
    await store.settle(failed, payload='{"email": "jan@example.com"}')  # read and failed again
    (letter,) = await store.dead_letters()
    assert (letter.payload, letter.key, letter.purged, letter.attempts) == ('{"email": "jan@example.com"}', "jan@example.com", False, 2)
    assert await store.warn_dead_letters(clock.now + 1) == {"f": 1}  # a new retention, a new warning


async def test_migration_3_keeps_existing_dead_letters(tmp_path):
    path = tmp_path / "s.db"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, MIGRATIONS[:2])
    db.execute(
        "INSERT INTO dead_letters (flow, entity, source_id, key, payload, error, first_failed_at, last_failed_at) "
        "VALUES ('f', 'products', 'S1', 'K1', '{}', 'boom', 1, 2)"
    )
    db.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        (letter,) = await store.dead_letters()
        assert (letter.id, letter.source_id, letter.key, letter.payload, letter.error, letter.purged_at) == (1, "S1", "K1", "{}", "boom", None)
        await store.settle(entry("S2", action="failed"), payload="{}")
        assert [d.id for d in await store.dead_letters()] == [1, 2]
    finally:
        await store.close()


async def test_purged_personal_data_is_not_left_in_the_file(sqlite_store, clock):
    store = sqlite_store
    secret = "jan.jansen.private@example.com"
    for i in range(50):
        await store.settle(entry(f"S{i}", action="failed", key=secret, reason="rejected"), payload=f'{{"email": "{secret}", "n": {i}}}')
    await store.settle(entry("A1", key=secret, at=clock.now - 10))
    await store._run(lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    assert secret.encode() in store.path.read_bytes()
    assert await store.purge_dead_letters(clock.now + 1) == (0, 50)
    assert await store.purge_audit(clock.now + 1) == 51
    await store._run(lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    assert secret.encode() not in store.path.read_bytes()


def test_the_state_store_protocol_is_complete():
    """Every store method the engine, daemon and CLI call is in the StateStore protocol (a second
    backend implements the protocol), and SQLiteStore implements all of it; no dead open_store."""
    import re
    from pathlib import Path

    import apicenterd.state
    from apicenterd.state import SQLiteStore, StateStore

    root = Path(apicenterd.state.__file__).parent.parent
    called = set()
    for path in [root / "engine.py", root / "daemon.py", root / "orders.py", *sorted((root / "cli").glob("*.py"))]:
        called |= set(re.findall(r"\bstore\.(\w+)\(", path.read_text()))
    protocol = {n for n in dir(StateStore) if not n.startswith("_")}
    assert called - protocol == set()
    assert protocol - {n for n in dir(SQLiteStore) if not n.startswith("_")} == set()
    from apicenterd.state.postgres import PostgresStore

    assert protocol - {n for n in dir(PostgresStore) if not n.startswith("_")} == set()
    assert {"purge_dead_letters", "save_copy"} <= protocol
    assert not hasattr(apicenterd.state, "open_store")


# --- the record path: batch look-ups, calls on the event loop ------------------------------------


async def test_get_links_reads_a_batch_in_chunks(store):
    for n in range(1203):
        if n % 3:
            await store.settle(entry(f"S{n}"), link=link(f"S{n}", f"T{n}", f"h{n}"))
    asked = [f"S{n}" for n in range(1203)] + ["S1", "nope"]
    found = await store.get_links("src", "products", asked, "dst")
    assert set(found) == {f"S{n}" for n in range(1203) if n % 3}
    assert found["S1202"] == await store.get_link("src", "products", "S1202", "dst")
    assert await store.get_links("src", "products", ["S1"], "other") == {}
    assert await store.get_links("src", "products", [], "dst") == {}


async def test_open_dead_letters_reads_a_batch(store):
    for n in range(700):
        await store.settle(entry(f"S{n}", action="failed", reason="no"), payload="{}")
    await store.settle(entry("S5", action="created"))  # resolves S5's
    found = await store.open_dead_letters("f", [f"S{n}" for n in range(0, 700, 5)] + ["S1"])
    assert set(found) == {f"S{n}" for n in range(0, 700, 5) if n != 5} | {"S1"}
    assert found["S10"] == await store.open_dead_letter("f", "S10")
    assert await store.open_dead_letters("other", ["S1"]) == {}


async def test_record_path_calls_take_no_thread_and_the_wal_is_checkpointed_off_the_loop(sqlite_store, monkeypatch):
    store = sqlite_store
    import anyio.to_thread

    from apicenterd.state import sqlite as module

    hops: list[str] = []
    real = anyio.to_thread.run_sync

    async def counting(fn, *args, **kwargs):
        hops.append(getattr(fn, "__qualname__", "?"))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(module.anyio.to_thread, "run_sync", counting)
    store.CHECKPOINT_CHANGES = 10
    run_id = await store.start_run("f")
    for n in range(4):  # 3 rows a settle (audit, link, cursor): the 4th passes 10
        await store.get_links("src", "products", [f"S{n}"], "dst")
        await store.open_dead_letters("f", [f"S{n}"])
        await store.settle(entry(f"S{n}"), link=link(f"S{n}"), cursor=f"c{n}")
    await store.set_cursor("f", "c9")
    await store.finish_run(run_id, "ok", {"created": 4})
    assert len(hops) == 1  # the checkpoint
    assert await store.get_cursor("f") == "c9"


async def test_a_record_path_call_that_finds_the_database_locked_waits_in_a_thread(sqlite_store):
    store = sqlite_store
    import anyio

    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process writing
        other.execute("INSERT INTO cursors (flow, cursor, updated_at) VALUES ('g', 'x', 0)")
        result: list[str] = []

        async def settle() -> None:
            await store.settle(entry("S1"), link=link("S1"), cursor="c1")
            result.append("settled")

        async with anyio.create_task_group() as tg:
            tg.start_soon(settle)
            while store._limiter.borrowed_tokens == 0:  # it went to the worker thread: the loop is free
                await anyio.sleep(0.01)
            assert result == []
            other.execute("COMMIT")
        assert result == ["settled"]
        assert await store.get_cursor("f") == "c1"
        assert await store.get_cursor("g") == "x"
        assert (await store.get_link("src", "products", "S1", "dst")).target_id == "T1"
    finally:
        other.close()
