"""The daemon's HTTP side: the admin API, the dashboard page and vendor webhooks, on one server
(``[admin]``; see the README's "Operate" section)."""

from __future__ import annotations

from .app import API, build_app
from .backend import Backend, Debouncer, NotReady
from .openapi import openapi
from .server import AdminServer, bind

__all__ = ["API", "AdminServer", "Backend", "Debouncer", "NotReady", "bind", "build_app", "openapi"]
