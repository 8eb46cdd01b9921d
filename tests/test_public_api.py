"""The public API has a fence around it: the export lists are pinned, and everything in them imports."""

from __future__ import annotations

import importlib

import pytest

import apicenterd
import apicenterd.kit
import apicenterd.testing
import apicenterd.testing.sim

# A change to either list is a change to the plugin API: update it here on purpose.
APICENTERD_ALL = [
    "__version__",
    "hookimpl",
    "hookspec",
    "Connector",
    "ConnectorSettings",
    "ConnectionContext",
    "TokenStore",
    "RateLimit",
    "RateLimitHeaders",
    "Change",
    "Found",
    "Source",
    "Sink",
    "DocumentSink",
    "DocumentRequest",
    "DOCUMENT_TYPES",
    "WebhookRequest",
    "WebhookEvent",
    "OAuth2RefreshAuth",
    "error_for_status",
    "json_body",
    "parse_retry_after",
    "ApicenterError",
    "ConfigError",
    "PluginError",
    "ConnectorError",
    "RetryableError",
    "RateLimited",
    "CircuitOpen",
    "AuthError",
    "FatalError",
    "ResponseTooLarge",
    "RecordError",
    "WebhookRejected",
    "Entity",
    "Record",
    "Address",
    "Contact",
    "Customer",
    "Attribute",
    "Product",
    "StockLevel",
    "Order",
    "OrderLine",
    "Invoice",
    "InvoiceLine",
    "Shipment",
    "JournalEntry",
    "JournalLine",
]

KIT_ALL = [
    "DEFAULT_MAX_PAGES",
    "Page",
    "PageGuard",
    "each_item",
    "link_header_next",
    "odata_page",
    "paginate_cursor",
    "paginate_next_link",
    "paginate_odata",
    "paginate_offset",
    "paginate_page_number",
    "OAuth2RefreshAuth",
    "OAuth2Settings",
    "authorize_url",
    "exchange_code",
    "RateLimit",
    "RateLimitHeaders",
    "DEFAULT_MAX_FILTER_LENGTH",
    "chunks",
    "odata_or_filters",
    "odata_string",
    "classify",
    "error_for_status",
    "json_body",
    "not_found_by_path",
    "parse_retry_after",
    "raise_for_response",
    "vendor_message",
]

TESTING_ALL = [
    "MemoryTokenStore",
    "connect",
    "make_context",
    "serve_app",
    "serve_apps",
    "FixedWindow",
    "vendor_error",
    "Faults",
    "FaultInjector",
    "with_faults",
]

# The simulator toolkit (apicenterd.testing.sim): what a connector's simulator is built from.
SIM_ALL = [
    "VendorError", "VendorSim", "Gate", "BearerAuth", "RateLimitGate", "RequestLog", "TokenServer",
    "Collection", "LazyCollection", "LazyWindow", "IntIds", "GuidIds", "ChangeClock",
    "json_response", "read_json", "int_param", "offset_page", "page_number", "odata_page", "cursor_page",
    "seeded", "seed_options", "retry_after", "OffsetPage", "Window", "NumberedPage",
]


@pytest.mark.parametrize(
    "module, pinned",
    [(apicenterd, APICENTERD_ALL), (apicenterd.kit, KIT_ALL), (apicenterd.testing, TESTING_ALL), (apicenterd.testing.sim, SIM_ALL)],
    ids=lambda v: getattr(v, "__name__", "")
)
def test_export_list_is_pinned(module, pinned):
    assert sorted(module.__all__) == sorted(pinned)
    assert len(module.__all__) == len(set(module.__all__)), "duplicate names in __all__"


@pytest.mark.parametrize("module_name", ["apicenterd", "apicenterd.kit", "apicenterd.testing", "apicenterd.testing.sim"])
def test_everything_exported_is_importable(module_name):
    module = importlib.import_module(module_name)
    namespace: dict = {}
    exec(f"from {module_name} import *", namespace)  # noqa: S102 - the star import itself is under test
    for name in module.__all__:
        assert getattr(module, name, None) is not None, f"{module_name}.{name} is missing"
        if name != "__version__":
            assert name in namespace, f"`from {module_name} import *` does not give {name}"


def test_version_matches_distribution():
    from importlib.metadata import version

    assert apicenterd.__version__ == version("apicenterd")


def test_errors_exported_are_the_hierarchy():
    assert issubclass(apicenterd.RateLimited, apicenterd.RetryableError)
    assert issubclass(apicenterd.CircuitOpen, apicenterd.RetryableError)
    assert issubclass(apicenterd.ResponseTooLarge, apicenterd.FatalError)  # never retried
    for name in ("RetryableError", "AuthError", "FatalError", "RecordError"):
        assert issubclass(getattr(apicenterd, name), apicenterd.ConnectorError)
    for name in ("ConfigError", "PluginError", "ConnectorError"):
        assert issubclass(getattr(apicenterd, name), apicenterd.ApicenterError)


def test_kit_shares_the_core_objects():
    """The kit re-exports, it does not copy: one class for one thing."""
    assert apicenterd.kit.OAuth2RefreshAuth is apicenterd.OAuth2RefreshAuth
    assert apicenterd.kit.RateLimit is apicenterd.RateLimit
    assert apicenterd.kit.error_for_status is apicenterd.error_for_status
    assert issubclass(apicenterd.kit.OAuth2Settings, apicenterd.ConnectorSettings)


def test_package_ships_py_typed():
    """Type checkers read the package's annotations (PEP 561): the marker is in the package and declared as data."""
    import pathlib
    import tomllib

    root = pathlib.Path(apicenterd.__file__).parent
    assert (root / "py.typed").is_file()
    pyproject = tomllib.loads((root.parent / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["apicenterd"]


# The plugin surface: what a connector author implements. A change here is an API change.
SURFACE = {
    "Source": {"changes"},
    "Sink": {"find", "create", "update"},
    "DocumentSink": {"find", "create"},
}


@pytest.mark.parametrize("name", sorted(SURFACE))
def test_abstract_methods_are_pinned(name):
    cls = getattr(apicenterd, name)
    assert set(cls.__abstractmethods__) == SURFACE[name]


def test_document_request_fields_are_pinned():
    import dataclasses

    fields = [f.name for f in dataclasses.fields(apicenterd.DocumentRequest)]
    assert fields == ["record", "kind", "customer", "articles", "settings"]
    assert [f.name for f in dataclasses.fields(apicenterd.Found)] == ["id", "record", "vendor"]
    assert apicenterd.DOCUMENT_TYPES == ("quote", "order", "invoice_draft", "invoice")


STRICT_MODULES = ["plugin", "flowrun", "orders", "compare", "dryrun", "registry", "context"]


def test_plugin_surface_is_strictly_typed():
    """mypy --strict finds nothing in the plugin surface and the record path (so it can tell a
    plugin author precisely what is missing or wrong)."""
    import os
    import pathlib

    try:
        from mypy import api
    except ImportError:  # pragma: no cover - mypy is in the [test] extra
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: mypy is not installed; the typing test must run in CI, not skip")
        pytest.skip("mypy is not installed (pip install -e .[test])")
    root = pathlib.Path(apicenterd.__file__).parent
    files = [str(root / f"{name}.py") for name in STRICT_MODULES]
    out, err, status = api.run(["--strict", "--ignore-missing-imports", "--follow-imports=silent", "--cache-dir=/dev/null", *files])
    assert status == 0, out + err


def test_sniffio_is_a_declared_dependency():
    """httpcore asks for sniffio on every request; a missing module costs a failed import (a
    sys.path search) each time. It must come with apicenterd, not by chance."""
    import importlib.metadata
    import importlib.util

    requires = importlib.metadata.requires("apicenterd") or []
    assert any(r.split(">")[0].split("=")[0].strip() == "sniffio" for r in requires)
    assert importlib.util.find_spec("sniffio") is not None
