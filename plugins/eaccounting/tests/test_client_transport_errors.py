"""A connection that breaks while the answer's body is read is a RetryableError, not an httpx exception.

Found by fault injection: the transport classifies failures up to the response headers;
a drop after them (the simulator created the article, half the body came) used to escape
as ``httpx.RemoteProtocolError`` and end the run as an internal error.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from apicenterd_eaccounting import EAccountingConnector

from apicenterd import Entity, Product, RetryableError
from apicenterd.testing import Faults, connect, serve_app, with_faults

pytestmark = pytest.mark.anyio


async def test_a_create_whose_answer_is_dropped_is_retryable_and_was_applied():
    app = with_faults(EAccountingConnector.simulator(seed=1, rate_limit=0), Faults(drop=1.0, path_prefix="/v2/articles"))
    product = Product(sku="DROP-1", name="Dropped answer", price_excl_tax=Decimal("1.00"), price_incl_tax=Decimal("1.21"), tax_rate=Decimal(21))
    with serve_app(app) as url:
        async with connect(EAccountingConnector, {**EAccountingConnector.demo_settings(url), "timeout": 2.0}) as conn:
            with pytest.raises(RetryableError, match="RemoteProtocolError|ReadError"):
                await conn.create(Entity.PRODUCTS, conn.normalize(Entity.PRODUCTS, product))
    assert app.counts["drop"] == 1
    assert app.state.sim.article_by_number("DROP-1") is not None  # applied: a retry must look before it creates


async def test_a_timeout_is_retryable():
    app = with_faults(EAccountingConnector.simulator(seed=1, rate_limit=0), Faults(timeout=1.0, timeout_delay=0.5, path_prefix="/v2/"))
    with serve_app(app) as url:
        async with connect(EAccountingConnector, {**EAccountingConnector.demo_settings(url), "timeout": 0.1}) as conn:
            with pytest.raises(RetryableError, match="timed out"):
                await conn.find(Entity.PRODUCTS, "NOPE")
