"""Entry point module: registers the Exact Online connector with apicenterd."""

from apicenterd import hookimpl

from .connector import ExactOnlineConnector


@hookimpl
def register_connectors(register):
    """Register :class:`ExactOnlineConnector`."""
    register(ExactOnlineConnector)
