"""The dashboard page in a real browser (Playwright driving the system's Chromium): it loads, shows a
failing flow and its dead letter with the reason, a record's audit trail and field diff, and its
Replay button replays the dead letter and the page shows it resolved.

Needs the ``playwright`` package (requirements-dev) and Chromium from the distribution
(``apt-get install chromium``; ``scripts/test`` installs it when run as root). Without them the test
skips for a developer and fails with ``CI=true``. Set ``APICENTERD_DASHBOARD_SCREENSHOT=PATH`` to
save a screenshot of the page (``scripts/dashboard-screenshot`` makes ``docs/dashboard.png``).
"""

from __future__ import annotations

import os
import shutil
from decimal import Decimal

import anyio
import fakes
import pytest
from fakes import product
from test_daemon import until

from apicenterd.cluster import daemon_name
from apicenterd.config import load
from apicenterd.daemon import Daemon

pytestmark = pytest.mark.anyio

TOKEN = "dashboard-token-0123456789"
BROWSER_MISSING = "Chromium or the playwright package is missing (apt-get install chromium; pip install -r requirements-dev.txt)"
TIMEOUT_MS = 60_000  # a loaded CI machine: generous, and only ever reached when something is wrong


def chromium() -> str:
    """The system Chromium; skips for a developer without it, fails in CI (``CI=true``)."""
    path = os.environ.get("APICENTERD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true: {BROWSER_MISSING}; the dashboard's browser test must run in CI, not skip")
        pytest.skip(BROWSER_MISSING)
    return path


CONFIG = f"""
[daemon]
metrics_address = ""
shutdown_timeout = 2

[state]
path = "state.db"

[admin]
address = "127.0.0.1:0"
token = "{TOKEN}"

[connections.shop]
connector = "memsource"

[connections.books]
connector = "memtarget"

[flows.products_to_books]
source = "shop"
target = "books"
entity = "products"
interval = "15m"
"""


async def test_dashboard_shows_the_failing_flow_and_replays_its_dead_letter(tmp_path, registry):
    executable = chromium()
    from playwright.async_api import async_playwright

    memory = fakes.MemoryStore
    for i, sku in enumerate(["CHAIR-01", "DESK-02", "LAMP-03", "SHELF-04"]):
        memory.put(product(sku, name=sku.split("-")[0].title(), price_excl_tax=Decimal(20 + 5 * i)), f"2026-12-04T09:0{i}:00Z")
    memory.fail_create.add("LAMP-03")  # the target refuses it: "name too long"
    path = tmp_path / "apicenterd.toml"
    path.write_text(CONFIG, encoding="utf-8")
    daemon = Daemon(path, registry, load(path, registry))
    with anyio.fail_after(180):
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(
                lambda: (
                    daemon.admin is not None
                    and daemon.engine is not None
                    and daemon.engine.last_result is not None
                    and not daemon.engine.running
                )  # the first run is over
            )
            assert daemon.engine.last_result.counts["failed"] == 1
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
                try:
                    page = await browser.new_page(viewport={"width": 1280, "height": 900})
                    page.set_default_timeout(TIMEOUT_MS)
                    errors: list[str] = []
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    await page.goto(daemon.admin.url + "/")
                    await page.fill("#token", TOKEN)
                    await page.click("#login-form button")

                    flow = page.locator('#flow-rows tr[data-flow="products_to_books"]')
                    await flow.and_(page.locator('[data-state="failing"]')).wait_for()
                    assert "1 record(s) failed" in await flow.inner_text()
                    letter = page.locator("#letter-rows tr").first
                    await letter.wait_for()
                    text = await letter.inner_text()
                    assert "LAMP-03" in text and "name too long" in text

                    # the record's story: its audit trail and what it would write (the field diff)
                    await letter.locator("a.link").click()
                    await page.locator("#record:not(.hidden)").wait_for()
                    assert "failed" in await page.locator("#audit-rows").inner_text()
                    diff = await page.locator("#diff-rows").inner_text()
                    assert "sku" in diff and '"LAMP-03"' in diff
                    await page.locator("#chart svg polyline").first.wait_for()
                    # the daemons sharing the state: with SQLite, this one, alive, and nothing waiting
                    me = page.locator(f'#daemon-rows tr[data-daemon="{daemon_name()}"][data-alive="yes"]')
                    await me.wait_for()
                    assert "alive" in await me.inner_text()
                    assert "SQLite" in await page.locator("#daemons-mode").inner_text()
                    assert "No job waits" in await page.locator("#daemon-queue").inner_text()
                    # PostgreSQL's shape (the admin API's GET /api/v1/daemons, tests/test_admin_api.py): a
                    # silent daemon, a stalled flow and a job waiting, drawn as the page draws them
                    await page.evaluate(
                        """renderDaemons({mode: "postgresql", this_daemon: "a:1", stalled: ["orders"],
                            waiting: [{flow: "products", due: 0, overdue: 125}],
                            daemons: [{worker_id: 1, name: "a:1", started_at: 1, heartbeat_age: 2, alive: true, running: []},
                                      {worker_id: 2, name: "b:2", started_at: 1, heartbeat_age: 95, alive: false, running: ["orders"]}]})"""
                    )
                    silent = await page.locator('#daemon-rows tr[data-daemon="b:2"][data-alive="no"]').inner_text()
                    assert "silent" in silent and "1m ago" in silent and "orders (stalled)" in silent
                    queue = await page.locator("#daemon-queue").inner_text()
                    assert "products (2m overdue)" in queue and "Stalled" in queue and "orders" in queue
                    shot = os.environ.get("APICENTERD_DASHBOARD_SCREENSHOT")
                    if shot:
                        await page.screenshot(path=shot, full_page=True)

                    memory.fail_create.clear()  # the cause is fixed: replay
                    await letter.locator("button", has_text="Replay").click()
                    await page.locator("#notice", has_text="resolved").wait_for()
                    await page.locator("#no-letters:not(.hidden)").wait_for()
                    await flow.and_(page.locator('[data-state="ok"]')).wait_for()
                    # what went to the target: the replayed record's audit entry with the fields it wrote
                    await page.evaluate("showRecord('products_to_books', 'LAMP-03')")
                    created = page.locator("#audit-rows tr", has_text="created")
                    await created.wait_for()
                    written = await created.inner_text()
                    assert "create products" in written and 'sku: "LAMP-03"' in written and 'name: "Lamp"' in written
                    assert errors == []
                finally:
                    await browser.close()
            assert sorted(r["sku"] for r in memory.target.values()) == ["CHAIR-01", "DESK-02", "LAMP-03", "SHELF-04"]
            daemon.stop()
