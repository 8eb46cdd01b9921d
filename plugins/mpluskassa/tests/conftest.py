"""Shared fixtures of the MplusKASSA connector tests: the WSDL, its schema, a validating simulator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from apicenterd_mpluskassa import MplusKassaConnector
from apicenterd_mpluskassa.schema import load_schema

SPEC_DIR = Path(os.environ.get("APICENTERD_API_SPECS") or Path(__file__).resolve().parents[3] / ".." / "shared" / "api-specs")
"""The vendor references: ``$APICENTERD_API_SPECS``, else ``shared/api-specs`` next to the repository."""
WSDL = SPEC_DIR / "mpluskassa" / "mplusqapi.wsdl"
URL = "http://mplus.test:34343"


def wsdl_path() -> Path:
    """The vendor's WSDL; skips (fails in CI) when the shared spec folder is not next to the repo."""
    if not WSDL.is_file():
        missing = f"MplusQapi WSDL not found at {WSDL} (shared/api-specs next to the repo, or set APICENTERD_API_SPECS)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true: {missing}; the conformance tests must run in CI, not skip")
        pytest.skip(missing)
    return WSDL


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


@pytest.fixture(scope="session")
def wsdl() -> Path:
    """The vendor's WSDL file."""
    return wsdl_path()


@pytest.fixture(scope="session")
def schema(wsdl):
    """The WSDL's schema, compiled offline."""
    return load_schema(wsdl)


@pytest.fixture
def app(wsdl):
    """A simulator validating every request against the WSDL: three articles, two relations, two till orders."""
    return MplusKassaConnector.simulator(seed=3, records=3, relations=2, orders=2, wsdl=wsdl)


@pytest.fixture
def sim(app):
    """The simulator's state object."""
    return app.state.sim


@pytest.fixture
def settings() -> dict:
    """Connection settings that work against the simulator."""
    return MplusKassaConnector.demo_settings(URL)
