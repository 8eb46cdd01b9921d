"""Serving the admin application inside the daemon's event loop with uvicorn."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import anyio
import uvicorn

from ..errors import ConfigError

__all__ = ["AdminServer", "bind"]

STOP_SECONDS = 5.0
"""How long a stopping daemon waits for admin requests in flight."""


def bind(address: str) -> socket.socket:
    """A listening socket on ``host:port``; ConfigError naming ``admin.address`` if it cannot be had."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, int(port)), family=family, reuse_port=False)
    except OSError as exc:
        raise ConfigError([f"admin.address: cannot listen on {address}: {exc.strerror or exc}"]) from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the daemon owns SIGTERM, SIGINT and SIGHUP."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AdminServer:
    """The admin application on an already bound socket, until :meth:`stop`."""

    def __init__(self, app: Any, sock: socket.socket):
        self.sock = sock
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off")
        self._server = _Server(config)
        self.stopped = anyio.Event()

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until stopped."""
        task_status.started()
        try:
            await self._server.serve(sockets=[self.sock])
        finally:
            self.sock.close()
            self.stopped.set()

    async def stop(self) -> None:
        """Stop taking requests; wait (at most STOP_SECONDS) for those in flight."""
        self._server.should_exit = True
        with anyio.move_on_after(STOP_SECONDS, shield=True):
            await self.stopped.wait()
