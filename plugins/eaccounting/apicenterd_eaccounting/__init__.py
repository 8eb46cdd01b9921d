"""apicenterd connector for the Visma eAccounting API v2 (products, stock and customers)."""

from .connector import EAccountingConnector

__all__ = ["EAccountingConnector"]
