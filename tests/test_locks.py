"""Locks on the state store: one daemon per store, one run of a flow at a time across processes,
and state files private to their owner (0600 files, 0700 folder)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
from fakes import product
from test_engine import make_config

from apicenterd import cli
from apicenterd.engine import Engine
from apicenterd.state import DaemonLock, DaemonRunning, FlowBusy, SQLiteStore, daemon_lock_holder
from apicenterd.state.lock import flow_lock_holder, flow_lock_path

ROOT = Path(__file__).resolve().parents[1]

HOLDER = textwrap.dedent(
    """
    import sys, anyio
    from apicenterd.state import DaemonLock, SQLiteStore

    kind, path, flow = sys.argv[1:4]

    async def main():
        if kind == "daemon":
            with DaemonLock(path):
                print("held", flush=True)
                await anyio.sleep(3600)
        store = SQLiteStore(path)
        await store.open()
        async with store.flow_lock(flow, holder="flows run"):
            print("held", flush=True)
            await anyio.sleep(3600)

    anyio.run(main)
    """
)


@pytest.fixture
def holder_process():
    """Start a process that holds the daemon lock or a flow lock; kill every one at the end."""
    procs: list[subprocess.Popen] = []

    def start(kind: str, path: Path, flow: str = "") -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, kind, str(path), flow],
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        procs.append(proc)
        assert proc.stdout.readline() == b"held\n", "the holder process did not take its lock"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


# ------------------------------------------------------------------ one daemon per state store


def test_second_daemon_is_refused_naming_the_first_and_the_lock_goes_with_it(tmp_path):
    path = tmp_path / "state.db"
    assert daemon_lock_holder(path) is None
    first = DaemonLock(path)
    first.acquire()
    holder = daemon_lock_holder(path)
    assert holder is not None and holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert isinstance(holder["started_at"], float) and holder["argv"] == list(sys.argv)
    with pytest.raises(DaemonRunning) as refused:
        DaemonLock(path).acquire()
    message = str(refused.value)
    assert f"state store {path} is in use by the daemon pid {os.getpid()}" in message
    assert "one daemon per state store" in message and str(path) + ".lock" in message
    assert refused.value.holder["pid"] == os.getpid()
    first.release()
    assert daemon_lock_holder(path) is None
    with DaemonLock(path):  # free again
        assert daemon_lock_holder(path)["pid"] == os.getpid()


def test_daemon_lock_held_by_another_process_is_freed_when_it_is_killed(tmp_path, holder_process):
    path = tmp_path / "state.db"
    proc = holder_process("daemon", path)
    assert daemon_lock_holder(path)["pid"] == proc.pid
    with pytest.raises(DaemonRunning, match=f"pid {proc.pid}"):
        DaemonLock(path).acquire()
    kill(proc)
    assert daemon_lock_holder(path) is None  # no stale lock: the kernel let go
    with DaemonLock(path):
        assert daemon_lock_holder(path)["pid"] == os.getpid()


def test_a_look_at_the_holder_never_makes_a_starting_daemon_fail(tmp_path, monkeypatch):
    # daemon_lock_holder() probes with a shared lock for an instant; a daemon starting during
    # that instant tries again instead of reporting a holder that is not there
    import fcntl

    from apicenterd.state import lock as lock_module

    path = tmp_path / "state.db"
    with DaemonLock(path):
        pass
    fd = os.open(str(path) + ".lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a probe, frozen mid-look
        real = lock_module.daemon_lock_holder
        looks = []

        def look_then_probe_ends(state_path):
            looks.append(real(state_path))
            fcntl.flock(fd, fcntl.LOCK_UN)
            return looks[-1]

        monkeypatch.setattr(lock_module, "daemon_lock_holder", look_then_probe_ends)
        with DaemonLock(path):
            assert looks == [None]
            assert real(path)["pid"] == os.getpid()
    finally:
        os.close(fd)


def test_a_lock_held_by_something_else_is_refused_after_a_short_retry(tmp_path):
    import fcntl

    path = tmp_path / "state.db"
    with DaemonLock(path):
        pass
    fd = os.open(str(path) + ".lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # not a daemon: it wrote nothing
        with pytest.raises(DaemonRunning, match="in use by another process"):
            DaemonLock(path).acquire()
    finally:
        os.close(fd)


# ------------------------------------------------------------------ one run per flow


@pytest.mark.anyio
async def test_flow_lock_excludes_across_processes_and_is_freed_when_the_holder_is_killed(tmp_path, holder_process):
    path = tmp_path / "state.db"
    proc = holder_process("flow", path, "orders")
    store = SQLiteStore(path)
    await store.open()
    try:
        assert flow_lock_holder(path, "orders")["pid"] == proc.pid
        with pytest.raises(FlowBusy, match=rf"flow orders is running in pid {proc.pid} \(flows run\)") as busy:
            async with store.flow_lock("orders", wait=False):
                pytest.fail("took a flow lock another process holds")
        assert busy.value.holder["holder"] == "flows run" and busy.value.holder["flow"] == "orders"
        async with store.flow_lock("products", wait=False):  # other flows are free
            pass

        waits: list[dict] = []
        told = anyio.Event()
        acquired = anyio.Event()

        def on_wait(info):
            waits.append(info)
            told.set()

        async def waiter():
            async with store.flow_lock("orders", holder="dlq replay", on_wait=on_wait):
                assert flow_lock_holder(path, "orders")["holder"] == "dlq replay"
                acquired.set()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await told.wait()
                assert not acquired.is_set()
                kill(proc)
                await acquired.wait()
        assert [w["pid"] for w in waits] == [proc.pid]  # told once, however long it waited
        assert flow_lock_holder(path, "orders") is None
    finally:
        await store.close()


@pytest.mark.anyio
async def test_two_stores_in_one_process_exclude_each_other_and_waiting_is_cancellable(tmp_path):
    a, b = SQLiteStore(tmp_path / "state.db"), SQLiteStore(tmp_path / "state.db")
    async with a.flow_lock("orders", holder="daemon"):
        with pytest.raises(FlowBusy, match=rf"pid {os.getpid()} \(daemon\)"):
            async with b.flow_lock("orders", wait=False):
                pass
        with anyio.move_on_after(0.3) as scope:  # a cancelled wait gives up cleanly
            async with b.flow_lock("orders"):
                pytest.fail("took a held flow lock")
        assert scope.cancelled_caught
    async with b.flow_lock("orders", wait=False):  # released by the holder's exit
        pass


def test_flow_lock_files_have_safe_distinct_names(tmp_path):
    state = tmp_path / "state.db"
    names = ["orders", "a/b", "a_b", "../../etc/passwd", "ü", "x" * 300, ".", ""]
    paths = [flow_lock_path(state, n) for n in names]
    assert len(set(paths)) == len(names)
    for p in paths:
        assert p.parent == tmp_path / "state.db.locks" and p.name.endswith(".lock") and "/" not in p.name
        assert len(p.name) < 100
    assert paths[0].name == "orders.lock"


@pytest.mark.anyio
async def test_run_waits_for_the_flow_running_elsewhere_then_runs(tmp_path, registry, memory):
    for i in range(3):
        memory.put(product(f"SKU{i}"), f"2026-01-0{i + 1}")
    resolved = make_config(tmp_path, registry)
    other = SQLiteStore(tmp_path / "state.db")
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    waits: list[tuple[str, dict]] = []
    told = anyio.Event()

    def on_wait(flow, info):
        waits.append((flow, info))
        told.set()

    engine = Engine(resolved, store, retry_base_delay=0, on_flow_wait=on_wait)
    try:
        release = anyio.Event()
        results = []

        async def holder():
            async with other.flow_lock("products", holder="daemon"):
                await release.wait()

        async def run():
            results.append(await engine.run_flow("products", trigger="cli"))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(holder)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(run)
                await told.wait()
                assert memory.target == {} and await store.runs() == []  # nothing done while waiting
                release.set()
        (result,) = results
        assert result.status == "ok" and result.counts["created"] == 3
        assert waits[0][0] == "products" and waits[0][1]["holder"] == "daemon" and len(waits) == 1
    finally:
        await engine.aclose()
        await store.close()


@pytest.mark.anyio
async def test_stop_ends_a_wait_for_the_flow_at_once(tmp_path, registry, memory):
    memory.put(product("A"), "1")
    resolved = make_config(tmp_path, registry)
    other = SQLiteStore(tmp_path / "state.db")
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    told = anyio.Event()
    engine = Engine(resolved, store, retry_base_delay=0, on_flow_wait=lambda flow, info: told.set())
    try:
        async with other.flow_lock("products", holder="flows run"):
            results = []

            async def run():
                results.append(await engine.run_flow("products"))

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(run)
                    await told.wait()
                    engine.stop()
            (result,) = results
            assert result.status == "stopped" and memory.target == {}
            assert await store.runs() == []
    finally:
        await engine.aclose()
        await store.close()


@pytest.mark.anyio
async def test_replay_takes_the_flow_lock(tmp_path, registry, memory):
    memory.put(product("A"), "1")
    memory.fail_create.add("A")
    resolved = make_config(tmp_path, registry)
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0, wait_for_flow=False)
    try:
        await engine.run_flow("products")
        letters = await store.dead_letters()
        assert len(letters) == 1
        memory.fail_create.clear()
        async with SQLiteStore(tmp_path / "state.db").flow_lock("products", holder="daemon"):
            with pytest.raises(FlowBusy, match=r"\(daemon\)"):
                await engine.replay(letters)
            assert memory.target == {}
        assert (await engine.replay(letters))["created"] == 1
    finally:
        await engine.aclose()
        await store.close()


def write_cli_config(tmp_path: Path) -> Path:
    path = tmp_path / "apicenterd.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [state]
            path = "{tmp_path / 'state.db'}"
            [connections.src]
            connector = "memsource"
            [connections.dst]
            connector = "memtarget"
            [flows.products]
            source = "src"
            target = "dst"
            entity = "products"
            interval = "1m"
            """
        )
    )
    return path


def test_cli_no_wait_fails_at_once_naming_the_holder_and_dry_run_does_not_wait(tmp_path, registry, memory, monkeypatch, capsys):
    memory.put(product("A"), "1")
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    path = write_cli_config(tmp_path)

    async def held():
        async with SQLiteStore(tmp_path / "state.db").flow_lock("products", holder="daemon"):
            code = await anyio.to_thread.run_sync(cli.main, ["flows", "run", "products", "--config", str(path), "--no-wait"])
            dry = await anyio.to_thread.run_sync(cli.main, ["flows", "run", "products", "--config", str(path), "--dry-run"])
            return code, dry

    code, dry = anyio.run(held)
    err = capsys.readouterr().err
    assert code == cli.EXIT_BUSY == 75
    assert f"apicenterd: flow products is running in pid {os.getpid()} (daemon)" in err and "--no-wait" in err
    assert "Traceback" not in err
    assert dry == 0 and memory.target == {}  # a dry run writes nothing, so it need not wait
    assert cli.main(["flows", "run", "products", "--config", str(path), "--no-wait"]) == 0
    assert len(memory.target) == 1


# ------------------------------------------------------------------ file modes


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.anyio
async def test_state_files_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0)  # the worst case: nothing masked
    try:
        folder = tmp_path / "new" / "state"
        store = SQLiteStore(folder / "state.db")
        await store.open()
        try:
            await store.save_tokens("eaccounting", {"refresh_token": "secret"})
            db = folder / "state.db"
            wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
            assert wal.exists() and shm.exists()
            assert (mode(db), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
            assert mode(folder) == mode(folder.parent) == 0o700
            async with store.flow_lock("orders"):
                assert mode(flow_lock_path(db, "orders")) == 0o600
                assert mode(flow_lock_path(db, "orders").parent) == 0o700
            with DaemonLock(db):
                assert mode(Path(f"{db}.lock")) == 0o600
        finally:
            await store.close()
    finally:
        os.umask(old)


@pytest.mark.anyio
async def test_existing_folder_is_left_as_it_is(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o755)
    store = SQLiteStore(folder / "state.db")
    await store.open()
    await store.close()
    with DaemonLock(folder / "state.db"):
        pass
    assert mode(folder) == 0o755
    assert mode(folder / "state.db") == 0o600


@pytest.mark.anyio
async def test_an_old_world_readable_database_of_ours_is_narrowed_to_0600(tmp_path):
    db = tmp_path / "state.db"
    store = SQLiteStore(db)
    await store.open()
    await store.close()
    db.chmod(0o644)  # as an older apicenterd made it
    store = SQLiteStore(db)
    await store.open()
    try:
        await store.save_tokens("x", {"refresh_token": "secret"})
        assert mode(db) == mode(Path(f"{db}-wal")) == mode(Path(f"{db}-shm")) == 0o600
    finally:
        await store.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can create files for another user")
@pytest.mark.anyio
async def test_lock_files_root_creates_belong_to_the_owner_of_the_database(tmp_path):
    db = tmp_path / "state.db"
    store = SQLiteStore(db)
    await store.open()
    await store.close()
    os.chown(db, 4321, 4321)  # the daemon's user
    async with SQLiteStore(db).flow_lock("orders"):
        pass
    with DaemonLock(db):
        pass
    for path in (flow_lock_path(db, "orders"), flow_lock_path(db, "orders").parent, Path(f"{db}.lock")):
        assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4321), path


def test_a_lock_file_that_cannot_be_made_is_a_clear_error_naming_it(tmp_path):
    from apicenterd.state import LockError

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(LockError, match=rf"cannot lock the state store: {blocker}/state.db.lock: Not a directory"):
        DaemonLock(blocker / "state.db").acquire()

    async def go():
        async with SQLiteStore(blocker / "state.db").flow_lock("orders"):
            pass

    with pytest.raises(LockError, match=r"state.db.locks"):
        anyio.run(go)
