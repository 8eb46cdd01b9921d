"""Shared fixtures of the Visma.net connector tests: the simulator, its settings, the swagger."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from apicenterd_visma_net import VismaNetConnector

SPEC_DIR = Path(os.environ.get("APICENTERD_API_SPECS") or Path(__file__).resolve().parents[3] / ".." / "shared" / "api-specs")
"""The vendor references: ``$APICENTERD_API_SPECS``, else ``shared/api-specs`` next to the repository."""
SWAGGER = SPEC_DIR / "visma_net" / "visma-net-api-v6.11-swagger.json"


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


@pytest.fixture
def app():
    """A fresh simulator with three items and three customers."""
    return VismaNetConnector.simulator(seed=7, records=3)


@pytest.fixture
def sim(app):
    """The simulator's state object."""
    return app.state.sim


@pytest.fixture
def settings() -> dict:
    """Connection settings that work against the simulator (a service app)."""
    return VismaNetConnector.demo_settings("http://visma-net.test")


@pytest.fixture(scope="session")
def swagger() -> dict:
    """The vendor's 2017 swagger (skips when the shared spec folder is not next to the repo; fails in CI)."""
    if not SWAGGER.is_file():
        missing = f"Visma.net swagger not found at {SWAGGER} (shared/api-specs next to the repo, or set APICENTERD_API_SPECS)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true: {missing}; the conformance tests must run in CI, not skip")
        pytest.skip(missing)
    return json.loads(SWAGGER.read_text())
