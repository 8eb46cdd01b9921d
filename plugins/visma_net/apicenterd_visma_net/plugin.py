"""Entry point module: registers the Visma.net connector with apicenterd."""

from apicenterd import hookimpl

from .connector import VismaNetConnector


@hookimpl
def register_connectors(register):
    """Register :class:`VismaNetConnector`."""
    register(VismaNetConnector)
