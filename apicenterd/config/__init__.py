"""The configuration: one TOML file, ``APICENTERD_*`` environment overrides, secrets by reference.

Loading happens in two steps. :func:`read_config` parses TOML and environment into
:class:`Config` (shape errors). :func:`resolve` then checks what needs the plugins —
connectors exist, their settings validate, flows name defined connections whose
connectors read and write that entity — and resolves secret references. Every
mistake is collected and raised together as :class:`~apicenterd.errors.ConfigError`,
each as ``path: message``.
"""

from __future__ import annotations

from .resolve import Connection, Flow, Resolved, load, read_config, resolve
from .schema import AdminConfig, Config, ConnectionConfig, DaemonConfig, FlowConfig, StateConfig
from .secrets import MAX_SECRET_BYTES as MAX_SECRET_BYTES
from .secrets import _secret_values as _secret_values

__all__ = [
    "AdminConfig",
    "DaemonConfig",
    "StateConfig",
    "ConnectionConfig",
    "FlowConfig",
    "Config",
    "Connection",
    "Flow",
    "Resolved",
    "read_config",
    "resolve",
    "load",
]
