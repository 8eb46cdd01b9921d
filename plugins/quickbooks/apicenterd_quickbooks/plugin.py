"""Entry point module: registers the QuickBooks Online connector with apicenterd."""

from apicenterd import hookimpl

from .connector import QuickBooksConnector


@hookimpl
def register_connectors(register):
    """Register :class:`QuickBooksConnector`."""
    register(QuickBooksConnector)
