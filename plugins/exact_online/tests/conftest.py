"""Shared fixtures of the Exact Online connector tests: the simulator, its settings, the spec files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from apicenterd_exact_online import ExactOnlineConnector

SPEC_DIR = Path(os.environ.get("APICENTERD_API_SPECS") or Path(__file__).resolve().parents[3] / ".." / "shared" / "api-specs")
"""The vendor references: ``$APICENTERD_API_SPECS``, else ``shared/api-specs`` next to the repository."""
EXACT = SPEC_DIR / "exact_online"


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


@pytest.fixture
def app():
    """A fresh simulator with three items."""
    return ExactOnlineConnector.simulator(seed=3, records=3)


@pytest.fixture
def sim(app):
    """The simulator's state object."""
    return app.state.sim


@pytest.fixture
def settings() -> dict:
    """Connection settings that work against the simulator."""
    return ExactOnlineConnector.demo_settings("http://exact.test")


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    """shared/api-specs/exact_online (fails in CI, skips elsewhere, when it is not next to the repo)."""
    if not (EXACT / "ExactOnline.Client.Models.xml").is_file():
        missing = f"Exact Online specs not found at {EXACT} (shared/api-specs next to the repo, or APICENTERD_API_SPECS)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true: {missing}")
        pytest.skip(missing)
    return EXACT
