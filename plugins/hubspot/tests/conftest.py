"""Shared fixtures of the HubSpot connector tests: the simulator, its settings, the OpenAPI files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from apicenterd_hubspot import HubSpotConnector

SPEC_DIR = Path(os.environ.get("APICENTERD_API_SPECS") or Path(__file__).resolve().parents[3] / ".." / "shared" / "api-specs")
"""The vendor references: ``$APICENTERD_API_SPECS``, else ``shared/api-specs`` next to the repository."""
HUBSPOT = SPEC_DIR / "hubspot"


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


@pytest.fixture
def app():
    """A fresh simulator with no objects."""
    return HubSpotConnector.simulator(seed=3)


@pytest.fixture
def sim(app):
    """The simulator's state object."""
    return app.state.sim


@pytest.fixture
def settings() -> dict:
    """Private-app settings that work against the simulator."""
    return HubSpotConnector.demo_settings("http://hubspot.test")


def load_spec(name: str) -> dict:
    """One of HubSpot's OpenAPI files (skips when the shared spec folder is not next to the repo; fails under CI)."""
    path = HUBSPOT / f"{name}.json"
    if not path.is_file():
        missing = f"HubSpot spec not found at {path} (the shared/api-specs folder sits next to the repo; or set APICENTERD_API_SPECS)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true: {missing}; the conformance tests must run in CI, not skip")
        pytest.skip(missing)
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def hubspot_spec():
    """``hubspot_spec(name)``: one of HubSpot's OpenAPI files (see :func:`load_spec`)."""
    return load_spec
