"""A state file that cannot be used: full disk, damaged, read-only, missing folder, deleted while open.
Each gives a StateError naming the file, the cause and what to do; the CLI prints it, never a traceback."""

from __future__ import annotations

import json
import os
import pwd
import random
import sqlite3

import pytest
from fakes import product
from test_engine import make_config

from apicenterd.cli import main
from apicenterd.engine import Engine
from apicenterd.errors import EXIT_STATE, StateError
from apicenterd.state import AuditEntry, Link, SQLiteStore

pytestmark = pytest.mark.anyio


def entry(source_id: str = "S1", **kw) -> AuditEntry:
    return AuditEntry(**{"flow": "f", "run_id": 1, "entity": "products", "source_id": source_id, "action": "created", **kw})


async def fill_up(store: SQLiteStore) -> None:
    """Let the file grow no more: SQLite's own SQLITE_FULL, as on a full disk."""
    await store._run(lambda db: db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}"))


async def unlimited(store: SQLiteStore) -> None:
    await store._run(lambda db: db.execute("PRAGMA max_page_count=1073741823"))


def valid_database(path) -> bytes:
    """The bytes of a real state file with some content, several pages long."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE filler (x TEXT)")
    db.executemany("INSERT INTO filler VALUES (?)", [("x" * 1000,)] * 200)
    db.commit()
    db.close()
    return path.read_bytes()


# --- disk full ----------------------------------------------------------------------------------------


async def test_disk_full_in_settle_names_the_cause_not_a_failed_rollback(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.set_cursor("f", "before")
        await fill_up(store)
        big = Link("src", "products", "S1", "dst", "T1", "h" * 20000)  # needs new pages
        with pytest.raises(StateError) as info:
            await store.settle(entry(reason="r" * 20000), link=big, cursor="after")
        message = str(info.value)
        assert f"state file {store.path}: the disk is full (database or disk is full)" in message
        assert "cannot rollback" not in message and "df -h" in message and "read again" in message
        assert info.value.cause == "full"
        await unlimited(store)  # space again: nothing half-written, the store goes on
        assert await store.get_cursor("f") == "before" and await store.audit() == []
        await store.settle(entry(), link=big, cursor="after")
        assert await store.get_cursor("f") == "after"
    finally:
        await store.close()


async def test_disk_full_during_a_run_fails_the_run_with_the_reason_and_loses_nothing(tmp_path, registry, memory):
    total = 300  # their audit rows and links need more pages than a new file has
    for i in range(total):
        memory.put(product(f"SKU{i:03}"), f"{i:05}")
    resolved = make_config(tmp_path, registry)
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        await fill_up(store)
        engine = Engine(resolved, store, retry_base_delay=0)
        try:
            result = await engine.run_flow("products")
        finally:
            await engine.aclose()
        assert result.status == "failed" and result.counts["created"] < total
        assert result.error.startswith(f"state file {store.path}: the disk is full (database or disk is full)")
        assert any(a.kind == "flow_failing" and "disk is full" in a.text for a in engine.alerter.sent)
        written = len(memory.target)
        # the batch whose settle found the disk full reached the target, its outcomes were not saved
        # (counted, then lost with the transaction); up to writes_in_flight more were in flight
        assert result.counts["created"] <= written <= result.counts["created"] + 4

        await unlimited(store)
        engine = Engine(resolved, store, retry_base_delay=0)
        try:
            again = await engine.run_flow("products")
        finally:
            await engine.aclose()
        assert again.status == "ok"
        # what reached the target before the disk filled is found by key and linked, not created twice
        assert len(memory.target) == total and again.counts["created"] == total - written
        assert len(await store.links("src", "products", "dst")) == total
    finally:
        await store.close()


# --- damaged files --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        lambda good: good[: len(good) // 2],  # truncated: a copy cut short
        lambda good: random.Random(1).randbytes(len(good)),  # not a database at all
        lambda good: b"\0" * 100 + good[100:],  # its header zeroed
        lambda good: good[:8192] + b"\xff" * 512 + good[8704:],  # a page overwritten: only an integrity check sees it
    ],
    ids=["truncated", "random-bytes", "zeroed-header", "corrupted-page"],
)
async def test_a_damaged_file_is_refused_at_open_with_what_to_do(tmp_path, damage):
    good = valid_database(tmp_path / "good.db")
    path = tmp_path / "state.db"
    path.write_bytes(damage(good))
    store = SQLiteStore(path)
    with pytest.raises(StateError) as info:
        await store.open()
    message = str(info.value)
    assert message.startswith(f"state file {path} is damaged (")
    assert f"mv {path} {path}.damaged" in message and "restore it from a backup" in message
    assert info.value.cause == "damaged" and info.value.path == str(path)
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_cursor("f")


def test_cli_prints_a_damaged_state_file_without_a_traceback(tmp_path, capsys):
    pytest.importorskip("apicenterd_eaccounting")
    from e2e_support import write_config

    config = write_config(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")
    state = tmp_path / "state.db"
    state.write_bytes(random.Random(2).randbytes(8192))
    for argv in (["runs"], ["audit"], ["dlq", "list"], ["state", "purge"], ["flows", "run", "products"], ["run"]):
        assert main([*argv, "--config", str(config)]) == EXIT_STATE
        out, err = capsys.readouterr()
        assert err.startswith(f"apicenterd: state file {state} is damaged (file is not a database)"), argv
        assert "Traceback" not in err + out
    # the daemon also logs it as JSON, and alerts
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(e["event"] == "state file cannot be used, stopping" and e["cause"] == "damaged" for e in events)
    assert any(e["event"] == "alert" and e["kind"] == "state_failed" for e in events)


# --- read-only, missing folder ----------------------------------------------------------------------


async def test_a_read_only_state_names_the_user_and_the_file(tmp_path):
    # Tests run as root, whom chmod does not stop; query_only makes SQLite itself refuse the write
    # with the same SQLITE_READONLY "attempt to write a readonly database" a read-only file gives.
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        await store._run(lambda db: db.execute("PRAGMA query_only=ON"))
        with pytest.raises(StateError) as info:
            await store.set_cursor("f", "c")
    finally:
        await store.close()
    user = pwd.getpwuid(os.geteuid()).pw_name
    message = str(info.value)
    assert message.startswith(f"state file {store.path} cannot be written by user {user} (attempt to write a readonly database)")
    assert f"chown -R {user} {tmp_path}" in message and info.value.cause == "readonly"


async def test_a_folder_without_write_permission_names_the_user(tmp_path, monkeypatch):
    # as root chmod 0500 stops nothing: the OS's answer to a non-root user is simulated
    from pathlib import Path

    def refused(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Path, "mkdir", refused)
    monkeypatch.setattr(os, "mkdir", refused)  # the store makes its folder 0700 with os.mkdir
    store = SQLiteStore(tmp_path / "state" / "s.db")
    with pytest.raises(StateError) as info:
        await store.open()
    user = pwd.getpwuid(os.geteuid()).pw_name
    assert str(info.value).startswith(f"state file {store.path} cannot be written by user {user} (Permission denied)")
    assert f"the folder {store.path.parent} writable for {user}" in str(info.value)


async def test_a_folder_that_cannot_be_made_is_named(tmp_path):
    (tmp_path / "taken").write_text("a file where the folder should be")
    store = SQLiteStore(tmp_path / "taken" / "state" / "s.db")
    with pytest.raises(StateError) as info:
        await store.open()
    message = str(info.value)
    assert message.startswith(f"cannot open state file {store.path} (") and f"folder {store.path.parent}" in message


async def test_a_folder_as_state_path_is_named(tmp_path):
    (tmp_path / "s.db").mkdir()
    with pytest.raises(StateError, match=r"cannot open state file .*s\.db \(unable to open database file\)"):
        await SQLiteStore(tmp_path / "s.db").open()


# --- deleted or replaced while open ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_a_deleted_or_replaced_file_is_noticed(tmp_path, how):
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.check_file()  # still the one opened
        run = await store.start_run("f")
        await store.finish_run(run, "ok", {})
        store.path.unlink()
        if how == "replaced":
            valid_database(store.path)
        with pytest.raises(StateError) as info:
            await store.check_file()
        message = str(info.value)
        assert message.startswith(f"state file {store.path} was {'deleted' if how == 'deleted' else 'replaced by another file'} while")
        assert "apicenterd stops" in message and "Restore the file from a backup" in message
        assert "looks records up by key" in message and info.value.cause == how
        with pytest.raises(StateError):  # no run starts on a lost file
            await store.start_run("f")
        # the open database can still be rescued into a new file
        await store.save_copy(tmp_path / "rescued.db")
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "rescued.db") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
