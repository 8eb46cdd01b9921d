"""Shared fixtures of the Exact Online connector tests: the simulator, its settings, the spec files."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from apicenterd_exact_online import ExactOnlineConnector

from apicenterd.testing import serve_apps

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


@pytest.fixture
def serve_eacc_exact():
    """``serve_eacc_exact(seed, records, customers)``: an eAccounting simulator with ``records``
    articles and ``customers`` customers, and an empty Exact Online one, both served on loopback
    until the test ends: ``(eacc_app, exact_app, eacc_url, exact_url)``."""
    with contextlib.ExitStack() as stack:

        def start(seed: int, records: int, customers: int):
            eaccounting = pytest.importorskip("apicenterd_eaccounting")
            eacc_app = eaccounting.EAccountingConnector.simulator(seed=seed, records=records, customers=customers)
            exact_app = ExactOnlineConnector.simulator(seed=seed, records=0)
            eacc_url, exact_url = stack.enter_context(serve_apps(eacc_app, exact_app))
            return eacc_app, exact_app, eacc_url, exact_url

        yield start
