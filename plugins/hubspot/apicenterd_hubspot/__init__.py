"""apicenterd connector for the HubSpot CRM API (products, contacts and companies, deals with line items)."""

from .connector import HubSpotConnector, HubSpotSettings

__all__ = ["HubSpotConnector", "HubSpotSettings"]
