"""The test kit for connector authors: simulator helpers, fault injection, a test context, and contract tests.

Part of the public API, like :mod:`apicenterd` itself. The simulator toolkit (gate chain,
vendor errors, request log, stores, paging, OAuth token endpoint) is :mod:`apicenterd.testing.sim`.
"""

from ..context import MemoryTokenStore
from .connect import connect, make_context
from .faults import FaultInjector, Faults, with_faults
from .simulator import FixedWindow, serve_app, serve_apps, vendor_error

__all__ = [
    "MemoryTokenStore",
    "connect",
    "make_context",
    "serve_app",
    "serve_apps",
    "FixedWindow",
    "vendor_error",
    "Faults",
    "FaultInjector",
    "with_faults",
]
