"""A connection that breaks while the answer's body is read is a RetryableError, not an httpx exception.

Found by fault injection: a drop after the headers (the simulator applied the request, half
the body came) used to escape as ``httpx.RemoteProtocolError`` and end the run as an internal
error. The daemon's transport now reads the body inside its error handling.
"""

from __future__ import annotations

import pytest
from apicenterd_ccv_salespos import CCVSalesPOSConnector

from apicenterd import Entity, RetryableError
from apicenterd.testing import Faults, connect, serve_app, with_faults

pytestmark = pytest.mark.anyio


async def test_a_dropped_answer_is_retryable():
    app = with_faults(CCVSalesPOSConnector.simulator(seed=1, records=3, rate_limit=0), Faults(drop=1.0))
    with serve_app(app) as url:
        async with connect(CCVSalesPOSConnector, {**CCVSalesPOSConnector.demo_settings(url), "timeout": 2.0}) as conn:
            with pytest.raises(RetryableError, match="RemoteProtocolError|ReadError"):
                async for _ in conn.read(Entity.PRODUCTS, None):
                    pass
    assert app.counts["drop"] >= 1


async def test_a_timeout_is_retryable():
    app = with_faults(CCVSalesPOSConnector.simulator(seed=1, records=3, rate_limit=0), Faults(timeout=1.0, timeout_delay=0.5))
    with serve_app(app) as url:
        async with connect(CCVSalesPOSConnector, {**CCVSalesPOSConnector.demo_settings(url), "timeout": 0.1}) as conn:
            with pytest.raises(RetryableError, match="timed out"):
                async for _ in conn.read(Entity.PRODUCTS, None):
                    pass
