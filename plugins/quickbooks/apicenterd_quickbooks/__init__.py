"""apicenterd connector for QuickBooks Online (Accounting API v3): items, stock, customers, invoices and sales receipts."""

from .connector import QuickBooksConnector

__all__ = ["QuickBooksConnector"]
