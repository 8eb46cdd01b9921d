"""Progress of a long run: records done, rate and an estimate of what is left (where the source
says how much there is), in ``apicenterd runs``, the metrics, the log and the admin API."""

from __future__ import annotations

import anyio
import pytest
from fakes import MemorySource, product
from prometheus_client import REGISTRY
from structlog.testing import capture_logs
from test_cli import memory_products_config

from apicenterd import cli
from apicenterd.config import load
from apicenterd.engine import Engine
from apicenterd.kit import Page, paginate_page_number
from apicenterd.observe.alerts import Alerter
from apicenterd.plugin import Change
from apicenterd.progress import Progress, note_page, running
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_estimates_from_a_total_or_from_pages():
    clock = Clock()
    by_total = Progress(counts={"created": 0}, started=clock.now, clock=clock)
    assert by_total.remaining_seconds() is None  # nothing done yet
    with running(by_total):
        note_page(25, total=100, listing="GET /products")
        note_page(25, total=999, listing="GET /orders/1/lines")  # another listing on the way: ignored
    by_total.counts["created"] = 25
    clock.now += 10
    assert by_total.rate() == 2.5 and by_total.expected() == 100
    assert by_total.remaining_seconds() == pytest.approx(30)  # 75 more at 2.5/s

    by_pages = Progress(counts={"created": 0}, started=clock.now, clock=clock)
    with running(by_pages):
        note_page(50, total_pages=8, listing="GET /v2/articles")
        note_page(50, total_pages=8, listing="GET /v2/articles")
    by_pages.counts["created"] = 100
    clock.now += 20
    assert by_pages.expected() == 400 and by_pages.remaining_seconds() == pytest.approx(60)
    unknown = Progress(counts={"created": 5}, started=clock.now - 1, clock=clock)
    assert unknown.remaining_seconds() is None and unknown.as_dict()["total"] is None
    note_page(10, total=10)  # no run current: nothing happens, nothing breaks


async def test_the_kit_paginators_report_pages_to_the_run():
    async def fetch(number: int) -> Page[int]:
        return Page(list(range(number * 10, number * 10 + 10)), total_pages=3, number=number)

    progress = Progress()
    with running(progress):
        pages = [items async for items in paginate_page_number(fetch, endpoint="GET /items")]
    assert len(pages) == 3 and progress.pages == 3 and progress.total_pages == 3 and progress.expected() == 30


async def test_a_long_run_shows_its_progress_while_it_runs(tmp_path, registry, memory, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    halfway = anyio.Event()
    proceed = anyio.Event()

    async def read(self, entity, since):
        for page in range(4):
            note_page(10, total=40, listing="GET /products")
            for i in range(10):
                n = page * 10 + i
                yield Change(f"P{n:02d}", product(f"P{n:02d}"), f"{n:04d}")
            if page == 1:
                halfway.set()
                await proceed.wait()

    monkeypatch.setattr(MemorySource, "read", read)
    config = memory_products_config(tmp_path)
    resolved = load(config, registry)
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved, store, batch_size=10, alerter=Alerter())
    engine.progress_save_seconds = 0  # every batch
    engine.progress_log_seconds = 0
    try:
        with capture_logs() as logs:
            async with anyio.create_task_group() as tg:
                tg.start_soon(engine.run_flow, "products")
                try:
                    await check(store, engine, config, halfway, capsys)
                finally:
                    proceed.set()
        (run,) = await store.runs()
        assert run.status == "ok" and run.counts["created"] == 40
        assert REGISTRY.get_sample_value("apicenterd_run_records", {"flow": "products"}) == 0
        assert REGISTRY.get_sample_value("apicenterd_run_remaining_seconds", {"flow": "products"}) == 0
        progress_lines = [e for e in logs if e["event"] == "run progress"]
        assert progress_lines and progress_lines[0]["done"] == 10 and progress_lines[0]["total"] == 40
        assert progress_lines[-1]["done"] == 40
    finally:
        await engine.aclose()
        await store.close()


async def check(store, engine, config, halfway, capsys) -> None:
    """While the run waits halfway: its progress is saved, exported, and shown by ``runs``."""
    with anyio.fail_after(30):
        await halfway.wait()
        while not (await store.runs()) or (await store.runs())[0].progress is None:
            await anyio.sleep(0.02)
    (run,) = await store.runs()
    assert run.status == "running" and run.counts["created"] == 20
    assert run.progress["done"] == 20 and run.progress["total"] == 40
    assert run.progress["remaining_seconds"] is not None and run.progress["rate_per_second"] > 0
    assert REGISTRY.get_sample_value("apicenterd_run_records", {"flow": "products"}) == 20
    assert REGISTRY.get_sample_value("apicenterd_run_remaining_seconds", {"flow": "products"}) >= 0
    view = engine.running["products"].progress.as_dict()
    assert view["done"] == 20 and view["total"] == 40
    code = await anyio.to_thread.run_sync(cli.main, ["runs", "--config", str(config), "--local"])
    out = capsys.readouterr().out
    assert code == 0
    line = next(li for li in out.splitlines() if "running" in li)
    assert "created=20" in line and "20 done" in line and "left (of 40)" in line
