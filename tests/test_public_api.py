"""The public API has a fence around it: the export lists are pinned, and everything in them imports."""

from __future__ import annotations

import importlib

import pytest

import apicenterd
import apicenterd.kit
import apicenterd.testing

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
    "FixedWindow",
    "vendor_error",
    "Faults",
    "FaultInjector",
    "with_faults",
]


@pytest.mark.parametrize(
    "module, pinned",
    [(apicenterd, APICENTERD_ALL), (apicenterd.kit, KIT_ALL), (apicenterd.testing, TESTING_ALL)],
    ids=lambda v: getattr(v, "__name__", "")
)
def test_export_list_is_pinned(module, pinned):
    assert sorted(module.__all__) == sorted(pinned)
    assert len(module.__all__) == len(set(module.__all__)), "duplicate names in __all__"


@pytest.mark.parametrize("module_name", ["apicenterd", "apicenterd.kit", "apicenterd.testing"])
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
