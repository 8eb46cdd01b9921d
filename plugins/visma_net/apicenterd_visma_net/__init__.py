"""apicenterd connector for the Visma.net ERP API (customers, inventory items, stock, sales orders, journal transactions)."""

from .connector import VismaNetConnector

__all__ = ["VismaNetConnector"]
