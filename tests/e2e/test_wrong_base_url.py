"""A wrong ``base_url`` is the configuration's failure, not each record's: the run fails once, clearly."""

from __future__ import annotations

import re

import pytest

from apicenterd.engine import Engine
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio


async def run(resolved, flow):
    store = SQLiteStore(resolved.state_path)
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0.01)
    try:
        result = await engine.run_flow(flow)
        dead = list(await store.dead_letters(flow=flow))
        return result, dead
    finally:
        await engine.aclose()
        await store.close()


def with_base_url(path, connection: str, base_url: str):
    """Rewrite the ``base_url`` of one connection in the config file (its token URL stays right)."""
    text = path.read_text(encoding="utf-8")
    section = text.index(f"[connections.{connection}]")
    head, tail = text[:section], text[section:]
    tail = re.sub(r'(?m)^base_url = ".*"$', f'base_url = "{base_url}"', tail, count=1)
    path.write_text(head + tail, encoding="utf-8")


async def test_a_target_base_url_that_404s_fails_the_run_without_dead_letters(simulators, config, registry):
    from apicenterd.config import load

    _, _, ccv_url, eacc_url = simulators(products=5)
    path, _ = config(ccv_url, eacc_url)
    with_base_url(path, "eaccounting", eacc_url.rstrip("/") + "/not-the-api")
    result, dead = await run(load(path, registry), "products")
    assert result.status == "failed"
    assert "404" in result.error and "/not-the-api/v2/articles" in result.error and "base_url" in result.error
    assert result.counts["failed"] == 0 and result.counts["created"] == 0
    assert dead == []


async def test_a_source_base_url_that_404s_fails_the_run_naming_the_url(simulators, config, registry):
    from apicenterd.config import load

    _, _, ccv_url, eacc_url = simulators(products=5)
    path, _ = config(ccv_url, eacc_url)
    with_base_url(path, "salespos", ccv_url.rstrip("/") + "/not-the-api")
    result, dead = await run(load(path, registry), "products")
    assert result.status == "failed"
    assert "404" in result.error and "/not-the-api/" in result.error and "base_url" in result.error
    assert dead == []


async def test_orders_to_a_target_base_url_that_404s_fail_the_run_not_each_order(simulators, config, registry):
    """Orders are looked up one by one (no batch look-up): each 404 used to dead-letter its order."""
    from e2e_support import _toml_value

    from apicenterd.config import load

    _, _, ccv_url, eacc_url = simulators(products=5)
    path, _ = config(ccv_url, eacc_url)
    options = {"document": "invoice_draft", "shipping_sku": "VERZEND", "discount_sku": "KORTING", "fee_sku": "TOESLAG"}
    lines = ["", "[flows.orders]", 'source = "salespos"', 'target = "eaccounting"', 'entity = "orders"', 'interval = "1h"']
    lines.append(f"options = {_toml_value(options)}")
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    with_base_url(path, "eaccounting", eacc_url.rstrip("/") + "/not-the-api")
    result, dead = await run(load(path, registry), "orders")
    assert result.status == "failed"
    assert "404" in result.error and "/not-the-api/v2/" in result.error and "base_url" in result.error
    assert result.counts["failed"] == 0
    assert dead == []
