"""Helpers for writing vendor simulators: serving on loopback, fixed-window rate limits, errors."""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["serve_app", "serve_apps", "FixedWindow", "vendor_error"]


@contextlib.contextmanager
def serve_app(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, timeout: float = 10.0, sock: socket.socket | None = None
) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn in a background thread; yields its base URL. ``sock``: a
    socket already listening (its address wins over ``host`` and ``port``), so that a port in use is
    found, and said, before anything starts."""
    import uvicorn

    if sock is not None:
        host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    target = server.run if sock is None else functools.partial(server.run, sockets=[sock])
    thread = threading.Thread(target=target, name=f"simulator:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"simulator did not start on {host}:{port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout)


class FixedWindow:
    """A vendor-style limiter: ``limit`` calls per key in each fixed window of ``period`` seconds.

    ``hit(key)`` returns None when the call is allowed, else the seconds until the window
    resets (what the vendor would tell the client to wait).
    """

    def __init__(self, limit: int, period: float = 60.0, *, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.period = period
        self._clock = clock
        self._windows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str = "") -> float | None:
        """Count one call under ``key``; None if allowed, else seconds until it would be."""
        if self.limit <= 0:
            return None
        now = self._clock()
        window = int(now // self.period)
        with self._lock:
            current, count = self._windows.get(key, (window, 0))
            if current != window:
                count = 0
            if count >= self.limit:
                return (window + 1) * self.period - now
            self._windows[key] = (window, count + 1)
        return None


@contextlib.contextmanager
def serve_apps(*apps: Any) -> Iterator[list[str]]:
    """Serve each ASGI app of ``apps`` as :func:`serve_app` does; yields their base URLs, in order."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(serve_app(app)) for app in apps]


def vendor_error(status: int, body: Any, headers: dict[str, str] | None = None):
    """A Starlette JSONResponse with ``status`` and the vendor-shaped error ``body``."""
    from starlette.responses import JSONResponse

    return JSONResponse(body, status_code=status, headers=headers)
