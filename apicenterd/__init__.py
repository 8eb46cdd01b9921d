"""apicenterd: a self-hosted integration daemon. This module is the public API for plugins.

Plugins import only from here (and :mod:`apicenterd.testing` in their tests and
simulators); everything else in the package is internal and may change.
"""

from .errors import (
    ApicenterError,
    AuthError,
    CircuitOpen,
    ConfigError,
    ConnectorError,
    FatalError,
    PluginError,
    RateLimited,
    RecordError,
    ResponseTooLarge,
    RetryableError,
)
from .http import error_for_status, json_body, parse_retry_after
from .model import (
    Address,
    Attribute,
    Contact,
    Customer,
    Entity,
    Invoice,
    InvoiceLine,
    JournalEntry,
    JournalLine,
    Order,
    OrderLine,
    Product,
    Record,
    Shipment,
    StockLevel,
)
from .oauth import OAuth2RefreshAuth
from .plugin import (
    DOCUMENT_TYPES,
    Change,
    ConnectionContext,
    Connector,
    ConnectorSettings,
    DocumentRequest,
    DocumentSink,
    Found,
    RateLimit,
    RateLimitHeaders,
    Sink,
    Source,
    TokenStore,
    hookimpl,
    hookspec,
)
from .webhooks import WebhookEvent, WebhookRejected

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # plugin API
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
    "OAuth2RefreshAuth",
    "error_for_status",
    "json_body",
    "parse_retry_after",
    "WebhookEvent",
    "WebhookRejected",
    # errors
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
    # canonical model
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
