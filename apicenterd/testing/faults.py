"""Fault injection for any ASGI simulator: 5xx, timeouts, dropped connections, 429 bursts, bad JSON, slowness.

Wrap a simulator from the outside; its state stays where it was (``app.state.sim``)::

    from apicenterd.testing import Faults, serve_app, with_faults

    app = with_faults(EAccountingConnector.simulator(), Faults.mixed(0.2, seed=7, timeout_delay=0.5))
    with serve_app(app) as url:
        ...                       # a connection with timeout = 0.3 talks to url
    app.counts                    # Counter({"drop": 4, "error": 3, ...})

Each request the filter lets through gets at most one fault, drawn from a seeded RNG, so a
seed and the same sequence of requests give the same faults. The kinds (``counts`` keys):

* ``error``     a 500, 502 or 503 with a plain-text body, *before* the request reaches the app;
* ``timeout``   the app applies the request, then the answer is held ``timeout_delay`` seconds
  (served: sent late, after the client gave up; in-process: ``httpx.ReadTimeout`` is raised);
* ``drop``      the app applies the request, then the client sees a broken connection (served:
  the headers declare the whole body, half of it is sent and the connection is closed;
  in-process: ``httpx.RemoteProtocolError`` is raised) — the create the client never heard of;
* ``burst``     ``burst_length`` consecutive requests answered 429 with ``Retry-After`` (each
  429 counts one), before the app;
* ``malformed`` a 2xx answer to a GET whose body is cut in half (never on writes, so it is not
  also a lost write);
* ``slow``      the request is held ``slow_delay`` seconds, then answered normally.

Scripted faults come first: ``injector.fail_next(503, body, times=2, path_prefix="/v2/")``
answers the next matching requests with that status and body (a dict: JSON, a str: HTML, None:
``{}``), whatever the draw. A :class:`FaultQueue` is the same switch without the middleware;
the simulator toolkit (:mod:`apicenterd.testing.sim`) puts one in every simulator's gate chain.

Paths outside ``path_prefix``, methods outside ``methods``, and the OAuth token endpoint
(a path with a ``token`` or ``tokens`` segment, unless ``token_endpoint=True``) pass
untouched. Injectors stack: wrap one in another for different faults on different requests.
"""

from __future__ import annotations

import collections
import contextvars
import dataclasses
import json
import logging
import random
from collections.abc import Awaitable, Callable, MutableMapping
from decimal import Decimal
from typing import Any

import anyio
import httpx

__all__ = ["Faults", "FaultInjector", "FaultQueue", "with_faults", "KINDS"]

KINDS = ("error", "timeout", "drop", "burst", "malformed", "slow")
"""The fault kinds, in the order a draw walks them."""

TOKEN_SEGMENTS = frozenset({"token", "tokens"})
"""A path with one of these segments is an OAuth token endpoint (``/connect/token``,
``/oauth2/token``, ``/oauth2/v1/tokens/bearer``)."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}

# Set inside a request whose connection the injector breaks on purpose: uvicorn then logs
# "returned without completing response" in the same task; that line is expected, not news.
_breaking: contextvars.ContextVar[bool] = contextvars.ContextVar("apicenterd_faults_breaking", default=False)


class _QuietBrokenOnPurpose(logging.Filter):
    """Drops uvicorn's error line for a connection the injector broke on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _breaking.get()


_QUIET = _QuietBrokenOnPurpose()


@dataclasses.dataclass(frozen=True)
class Faults:
    """What to inject: each kind's probability per request (their sum at most 1) and its knobs."""

    error: float = 0.0
    timeout: float = 0.0
    drop: float = 0.0
    burst: float = 0.0
    malformed: float = 0.0
    slow: float = 0.0
    seed: int = 0
    statuses: tuple[int, ...] = (500, 502, 503)
    """The 5xx statuses an ``error`` picks from."""
    burst_length: int = 3
    """How many consecutive requests one 429 burst answers."""
    retry_after: str = "1"
    """The ``Retry-After`` header of a 429."""
    timeout_delay: float = 1.0
    """Seconds a ``timeout`` holds the answer: set it above the client's timeout."""
    slow_delay: float = 0.05
    """Seconds a ``slow`` request is held before it is answered."""
    path_prefix: str | tuple[str, ...] | None = None
    """Only paths starting with this (or one of these) get faults; None: every path."""
    token_endpoint: bool = False
    """Whether the OAuth token endpoint gets faults too."""
    methods: tuple[str, ...] | None = None
    """Only requests with these methods get faults (e.g. ``("GET",)``); None: every method."""

    def __post_init__(self) -> None:
        rates = {kind: getattr(self, kind) for kind in KINDS}
        bad = {kind: rate for kind, rate in rates.items() if not 0.0 <= rate <= 1.0}
        if bad:
            raise ValueError(f"fault rates must be between 0 and 1, got {bad}")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {sum(rates.values()):.3f}, more than 1: {rates}")
        if self.burst_length < 1:
            raise ValueError(f"burst_length must be at least 1, got {self.burst_length}")
        if not self.statuses or any(not 500 <= s <= 599 for s in self.statuses):
            raise ValueError(f"statuses must be 5xx, got {self.statuses}")

    @classmethod
    def mixed(cls, total: float, **options: Any) -> Faults:
        """Every kind at an equal share of ``total`` (e.g. 0.2: each kind 1/30 of the requests)."""
        share = total / len(KINDS)
        rates: dict[str, Any] = dict.fromkeys(KINDS, share)
        return cls(**rates, **options)

    @property
    def total(self) -> float:
        """The share of requests that get some fault."""
        return sum(getattr(self, kind) for kind in KINDS)

    def applies_to(self, path: str, method: str = "GET") -> bool:
        """Whether a ``method`` request to ``path`` may get a fault (prefix, methods, token endpoint)."""
        if self.methods is not None and method.upper() not in self.methods:
            return False
        if not self.token_endpoint and TOKEN_SEGMENTS & set(path.split("/")):
            return False
        if self.path_prefix is None:
            return True
        prefixes = (self.path_prefix,) if isinstance(self.path_prefix, str) else self.path_prefix
        return any(path.startswith(p) for p in prefixes)


class FaultQueue:
    """Scripted one-shot faults: the next matching requests get a given status and body.

    The one fault switch of the simulators (``sim.fail_next``) and of :class:`FaultInjector`.
    """

    def __init__(self) -> None:
        self._queue: list[tuple[str | None, int, Any, dict[str, str] | None]] = []

    def fail_next(
        self, status: int, body: Any = None, *, times: int = 1, path_prefix: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``times`` requests (under ``path_prefix``) with ``status`` and ``body``
        (a dict or list: JSON; a str: HTML; None: ``{}``)."""
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        self._queue.extend([(path_prefix, status, body, headers)] * times)

    def __len__(self) -> int:
        return len(self._queue)

    def clear(self) -> None:
        """Drop every scripted fault not used yet."""
        self._queue.clear()

    def take(self, path: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        """The first scripted fault for ``path`` (removed from the queue) as (status, body, headers), or None."""
        for n, (prefix, status, body, headers) in enumerate(self._queue):
            if prefix is None or path.startswith(prefix):
                del self._queue[n]
                if isinstance(body, str):
                    raw, media = body.encode(), b"text/html; charset=utf-8"
                else:
                    raw, media = json.dumps(body if body is not None else {}, default=_number).encode(), b"application/json"
                extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
                return status, raw, [(b"content-type", media), *extra]
        return None

    def response(self, path: str) -> Any:
        """:meth:`take` as a Starlette Response, or None."""
        taken = self.take(path)
        if taken is None:
            return None
        from starlette.responses import Response

        status, raw, headers = taken
        return Response(raw, status_code=status, headers={k.decode(): v.decode() for k, v in headers})


def _number(value: Any) -> Any:
    """Decimals in a scripted JSON body, as numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class _Captured:
    """The response an app sent, held back instead of sent."""

    def __init__(self) -> None:
        self.start: Message | None = None
        self.body = bytearray()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = dict(message)
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    @property
    def status(self) -> int:
        return int(self.start["status"]) if self.start is not None else 500

    def headers(self, *, drop: tuple[bytes, ...] = (b"content-length",)) -> list[tuple[bytes, bytes]]:
        raw = self.start.get("headers", []) if self.start is not None else []
        return [(bytes(k), bytes(v)) for k, v in raw if bytes(k).lower() not in drop]


class FaultInjector:
    """ASGI middleware around ``app`` that injects :class:`Faults` (see the module docstring).

    ``in_process=True`` when the app is called through ``httpx.ASGITransport`` (which has no
    timeouts and no socket): timeouts and drops then raise the httpx error the client would
    have seen. Served (uvicorn, :func:`~apicenterd.testing.serve_app`), they happen on the wire.

    ``counts`` counts what was injected per kind; ``injected`` lists ``(kind, method, path)``;
    ``seen`` counts the requests the filter let through. Assign ``faults`` (or set
    ``enabled = False``) to change course mid-test. ``state`` is the wrapped app's state.
    """

    def __init__(self, app: Any, faults: Faults, *, in_process: bool = False):
        self.app = app
        self.in_process = in_process
        self.enabled = True
        self.counts: collections.Counter[str] = collections.Counter()
        self.injected: list[tuple[str, str, str]] = []
        self.seen = 0
        self._burst_left = 0
        self.scripted = FaultQueue()
        self.faults = faults
        logging.getLogger("uvicorn.error").addFilter(_QUIET)

    @property
    def faults(self) -> Faults:
        """The faults injected from now on (assigning one restarts the RNG from its seed)."""
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._faults = faults
        self._rng = random.Random(faults.seed)
        self._burst_left = 0

    def fail_next(
        self, status: int, body: Any = None, *, times: int = 1, path_prefix: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """Script the next ``times`` answers (see :meth:`FaultQueue.fail_next`); they come before any draw."""
        self.scripted.fail_next(status, body, times=times, path_prefix=path_prefix, headers=headers)

    @property
    def state(self) -> Any:
        """The wrapped app's ``state`` (where the simulators keep ``sim``)."""
        return self.app.state

    def _draw(self, method: str) -> str | None:
        """The fault for this request, or None."""
        if self._burst_left > 0:
            self._burst_left -= 1
            return "burst"
        roll = self._rng.random()
        for kind in KINDS:
            roll -= getattr(self._faults, kind)
            if roll < 0:
                if kind == "malformed" and method != "GET":
                    return None  # a bad body on a write would also lose the write's answer
                if kind == "burst":
                    self._burst_left = self._faults.burst_length - 1
                return kind
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled or not self._faults.applies_to(scope["path"], scope["method"]):
            await self.app(scope, receive, send)
            return
        self.seen += 1
        method = scope["method"]
        scripted = self.scripted.take(scope["path"])
        if scripted is not None:
            self.counts["scripted"] += 1
            self.injected.append(("scripted", method, scope["path"]))
            await _respond(send, scripted[0], scripted[2], scripted[1])
            return
        kind = self._draw(method)
        if kind is None:
            await self.app(scope, receive, send)
            return
        self.counts[kind] += 1
        self.injected.append((kind, method, scope["path"]))
        faults = self._faults
        if kind == "error":
            await _plain(send, self._rng.choice(faults.statuses))
        elif kind == "burst":
            await _plain(send, 429, [(b"retry-after", faults.retry_after.encode())])
        elif kind == "slow":
            await anyio.sleep(faults.slow_delay)
            await self.app(scope, receive, send)
        else:
            captured = _Captured()
            await self.app(scope, receive, captured.send)  # applied, whatever the client hears
            if kind == "malformed":
                await self._malformed(send, captured)
            elif kind == "timeout":
                await self._timeout(send, captured, method, scope["path"])
            else:
                await self._drop(send, captured, method, scope["path"])

    async def _malformed(self, send: Send, captured: _Captured) -> None:
        body = bytes(captured.body)
        if 200 <= captured.status < 300 and body:
            body = body[: len(body) // 2]
        await _respond(send, captured.status, captured.headers(), body)

    async def _timeout(self, send: Send, captured: _Captured, method: str, path: str) -> None:
        await anyio.sleep(self._faults.timeout_delay)
        if self.in_process:
            raise httpx.ReadTimeout(f"injected timeout: {method} {path} was applied, its answer held back")
        # served: answered late; uvicorn drops what it is sent once the client has hung up
        await _respond(send, captured.status, captured.headers(), bytes(captured.body))

    async def _drop(self, send: Send, captured: _Captured, method: str, path: str) -> None:
        if self.in_process:
            raise httpx.RemoteProtocolError(f"injected drop: {method} {path} was applied, then the connection broke")
        body = bytes(captured.body)
        status = captured.status
        if status in (204, 304) or status < 200:
            status = 200  # a status that may carry a body, so a body can be promised and not delivered
        declared = len(body) + 16
        _breaking.set(True)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*captured.headers(), (b"content-length", str(declared).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        # returning now, response incomplete: the server closes the connection mid-body


def with_faults(app: Any, faults: Faults, *, in_process: bool = False) -> FaultInjector:
    """``app`` (any ASGI simulator) wrapped in a :class:`FaultInjector` injecting ``faults``."""
    return FaultInjector(app, faults, in_process=in_process)


async def _plain(send: Send, status: int, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = f"{status} {_REASONS.get(status, 'Error')} (injected fault)\n".encode()
    await _respond(send, status, [(b"content-type", b"text/plain; charset=utf-8"), *(headers or [])], body)


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    if status >= 200 and status not in (204, 304):  # these carry no body, nor its length
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
