"""Shared fixtures of the eAccounting connector tests: the simulator, its settings, the swagger."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_eaccounting.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, demo_refresh_token

SPEC_DIR = Path(os.environ.get("APICENTERD_API_SPECS") or Path(__file__).resolve().parents[3] / ".." / "shared" / "api-specs")
"""The vendor references: ``$APICENTERD_API_SPECS``, else ``shared/api-specs`` next to the repository."""
SWAGGER = SPEC_DIR / "eaccounting" / "eaccounting-api-v2-swagger.json"


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


@pytest.fixture
def app():
    """A fresh simulator with no articles."""
    return EAccountingConnector.simulator(seed=7)


@pytest.fixture
def sim(app):
    """The simulator's state object."""
    return app.state.sim


@pytest.fixture
def settings() -> dict:
    """Connection settings that work against the simulator."""
    return EAccountingConnector.demo_settings("http://eaccounting.test")


@pytest.fixture(scope="session")
def swagger() -> dict:
    """The vendor's swagger (skips when the shared spec folder is not next to the repo)."""
    if not SWAGGER.is_file():
        missing = f"eAccounting swagger not found at {SWAGGER} (the shared/api-specs folder sits next to the repo; or set APICENTERD_API_SPECS)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true: {missing}; the conformance tests must run in CI, not skip")
        pytest.skip(missing)
    return json.loads(SWAGGER.read_text())


@pytest.fixture
def authorised():
    """``await authorised(app)``: an httpx client for the simulator in-process, with a fresh access token."""
    return _authorised_client


async def _authorised_client(app) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://eaccounting.test")
    response = await client.post(
        "/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": demo_refresh_token()},
        auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
    )
    response.raise_for_status()
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return client
