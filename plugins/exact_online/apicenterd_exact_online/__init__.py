"""apicenterd connector for Exact Online (REST API, OData v2)."""

from .connector import ExactOnlineConnector, ExactOnlineSettings

__all__ = ["ExactOnlineConnector", "ExactOnlineSettings"]
