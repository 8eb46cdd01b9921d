"""Entry point module: registers the eAccounting connector with apicenterd."""

from apicenterd import hookimpl

from .connector import EAccountingConnector


@hookimpl
def register_connectors(register):
    """Register :class:`EAccountingConnector`."""
    register(EAccountingConnector)
