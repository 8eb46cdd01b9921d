"""CCV SalesPOS webhooks through the daemon: the connection subscribes at the (simulated) shop, a
webhook to /webhooks/<connection> runs the products flow, which reads through the signed API."""

from __future__ import annotations

import json

import anyio
import fakes
import httpx
import pytest
from apicenterd_ccv_salespos import CCVSalesPOSConnector
from test_daemon import until

from apicenterd.config import load
from apicenterd.daemon import Daemon
from apicenterd.registry import load_registry
from apicenterd.testing import serve_app

pytestmark = pytest.mark.anyio
TOKEN = "ccv-webhook-token-012345"


async def test_a_ccv_webhook_runs_the_flow_that_reads_what_changed(tmp_path):
    fakes.MemoryStore.reset()
    registry = load_registry([("fakes", fakes)], entry_points=True)
    app = CCVSalesPOSConnector.simulator(seed=3, records=4)
    with serve_app(app) as shop:
        demo = CCVSalesPOSConnector.demo_settings(shop)
        path = tmp_path / "apicenterd.toml"
        path.write_text(
            f"""
[daemon]
metrics_address = ""
shutdown_timeout = 1

[state]
path = "state.db"

[admin]
address = "127.0.0.1:0"
token = "{TOKEN}"
webhook_debounce_seconds = 0

[connections.pos]
connector = "ccv_salespos"
base_url = "{shop}"
public_key = "{demo["public_key"]}"
private_key = "{demo["private_key"]}"
webhook_url = "https://apicenterd.example.com/webhooks/pos"
webhook_events = ["orders.created", "products.updated"]

[connections.dst]
connector = "memtarget"

[flows.products]
source = "pos"
target = "dst"
entity = "products"
interval = "1h"
""",
            encoding="utf-8",
        )
        daemon = Daemon(path, registry, load(path, registry))
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(daemon.run)
                await until(lambda: daemon.backend is not None and daemon.engine is not None
                            and daemon.engine.last_result is not None and not daemon.engine.running)  # fmt: skip
                assert sorted(w["address"] for w in app.state.sim.webhooks.values()) == [
                    "https://apicenterd.example.com/webhooks/pos?event=orders.created",
                    "https://apicenterd.example.com/webhooks/pos?event=products.updated",
                ]
                assert len(fakes.MemoryStore.target) == 4
                product = next(iter(app.state.sim.products.values()))
                app.state.sim.update_product(product["id"], name="Renamed by the shop")
                runs = daemon.backend.background_runs
                async with httpx.AsyncClient(base_url=daemon.admin.url) as client:
                    body = json.dumps({"id": product["id"], "href": f"{shop}/api/rest/v1/products/{product['id']}"})
                    r = await client.post("/webhooks/pos?event=products.updated", content=body)
                    assert r.status_code == 202 and r.json() == {"accepted": 2, "flows": ["products"]}
                    await until(lambda: daemon.backend.background_runs > runs)
                    listed = await client.get("/api/v1/runs", headers={"Authorization": f"Bearer {TOKEN}"})
                    newest = listed.json()["runs"][0]
                    assert (newest["trigger"], newest["status"], newest["counts"]["updated"]) == ("webhook", "ok", 1)
                assert "Renamed by the shop" in {r["name"] for r in fakes.MemoryStore.target.values()}
                daemon.stop()
