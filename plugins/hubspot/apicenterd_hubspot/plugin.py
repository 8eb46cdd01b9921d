"""Entry point module: registers the HubSpot connector with apicenterd."""

from apicenterd import hookimpl

from .connector import HubSpotConnector


@hookimpl
def register_connectors(register):
    """Register :class:`HubSpotConnector`."""
    register(HubSpotConnector)
