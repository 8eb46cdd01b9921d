"""Fixtures for end-to-end tests: the real connectors and their simulators, a config file between them."""

from __future__ import annotations

import contextlib

import pytest

ccv = pytest.importorskip("apicenterd_ccv_salespos")
eacc = pytest.importorskip("apicenterd_eaccounting")

import pg_support  # noqa: E402
from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector  # noqa: E402
from apicenterd_eaccounting.connector import EAccountingConnector  # noqa: E402
from e2e_support import write_config  # noqa: E402

from apicenterd.config import load  # noqa: E402
from apicenterd.registry import load_registry  # noqa: E402
from apicenterd.testing import serve_app  # noqa: E402


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def registry():
    return load_registry()


@pytest.fixture
def simulators():
    """Both simulators served on loopback ports; yields (ccv_app, eacc_app, ccv_url, eacc_url)."""

    def start(*, products: int = 20, ccv_options: dict | None = None, eacc_options: dict | None = None):
        ccv_app = CCVSalesPOSConnector.simulator(seed=7, records=products, **(ccv_options or {}))
        eacc_app = EAccountingConnector.simulator(seed=7, records=0, **(eacc_options or {}))
        ccv_url = stack.enter_context(serve_app(ccv_app))
        eacc_url = stack.enter_context(serve_app(eacc_app))
        return ccv_app, eacc_app, ccv_url, eacc_url

    with contextlib.ExitStack() as stack:
        yield start


@pytest.fixture(params=["sqlite", "postgresql"])
def state_backend(request):
    """The state store of the test's config, both ways: ``None`` (the SQLite file beside it) and a PostgreSQL
    URL whose search path is a schema of the test's own (dropped after). Without PostgreSQL the second
    skips, and fails with CI=true (tests/pg_support.py). Only the tests that prove state behaviour ask for it."""
    if request.param == "sqlite":
        yield None
        return
    with pg_support.state_url() as url:
        yield url


@pytest.fixture
def config(request, tmp_path, registry):
    """Write and resolve a config for the given simulator URLs (the state as ``state_backend`` says, when the
    test asks for it; else SQLite)."""
    state_url = request.getfixturevalue("state_backend") if "state_backend" in request.fixturenames else None

    def make(ccv_url: str, eacc_url: str, **kw):
        kw.setdefault("state_url", state_url)
        path = write_config(tmp_path, ccv_url, eacc_url, **kw)
        return path, load(path, registry)

    return make
