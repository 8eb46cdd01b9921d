"""Entry point module: registers the MplusKASSA connector with apicenterd."""

from apicenterd import hookimpl

from .connector import MplusKassaConnector


@hookimpl
def register_connectors(register):
    """Register :class:`MplusKassaConnector`."""
    register(MplusKassaConnector)
