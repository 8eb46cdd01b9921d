"""apicenterd connector for CCV SalesPOS, spoken to through the CCV Shop REST API."""

from .connector import CCVSalesPOSConnector

__all__ = ["CCVSalesPOSConnector"]
