"""apicenterd connector for the Visma eAccounting API v2 (products, stock, customers, orders and invoices)."""

from .connector import EAccountingConnector

__all__ = ["EAccountingConnector"]
