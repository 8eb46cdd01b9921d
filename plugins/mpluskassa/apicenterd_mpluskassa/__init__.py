"""apicenterd connector for MplusKASSA through the MplusQapi (SOAP): products, stock per branch, relations, till orders."""

from .connector import MplusKassaConnector

__all__ = ["MplusKassaConnector"]
