"""Entry point module: registers the CCV SalesPOS connector with apicenterd."""

from apicenterd import hookimpl

from .connector import CCVSalesPOSConnector


@hookimpl
def register_connectors(register):
    """Register :class:`CCVSalesPOSConnector`."""
    register(CCVSalesPOSConnector)
