"""The simulator toolkit: the plumbing every vendor simulator shares, so a simulator is its vendor's rules.

A simulator is a Starlette app whose state object (``app.state.sim``) subclasses
:class:`VendorSim`. Its routes are wrapped by :meth:`VendorSim.api`, which runs the request
through the gate chain and turns a raised :class:`VendorError` into the vendor's error body::

    from apicenterd.testing.sim import BearerAuth, RateLimitGate, TokenServer, VendorError, VendorSim, page_number

    class ShopSim(VendorSim):
        def __init__(self, *, seed=1, records=0, rate_limit=100):
            super().__init__()
            self.oauth = TokenServer("demo", "demo-secret", signing_key=b"shop-sim")
            self.gates = [BearerAuth(self.oauth.valid, lambda: VendorError(401, "AUTH", "bad token")),
                          RateLimitGate(rate_limit, 60.0, lambda wait: VendorError(429, "LIMIT", "slow down")),
                          self.fault_gate]
            self.products = Collection(IntIds(1000))
            ...

        def error_response(self, exc):                       # the vendor's error shape
            return json_response({"code": exc.code, "message": exc.message}, exc.status, exc.headers)

    async def products(sim, request):
        items, meta = page_number(list(sim.products.values()), request.query_params, page="page", size="per_page")
        return json_response({"data": items, "meta": meta})

    app = Starlette(routes=[Route("/oauth/token", sim.oauth.endpoint, methods=["POST"]),
                            Route("/v1/products", sim.api(products), methods=["GET"])])
    app.state.sim = sim

What it gives:

* a **request log** (:class:`RequestLog`: ``sim.requests``, ``sim.count(...)``, ``sim.reset_counts()``);
* a **gate chain**: :class:`BearerAuth`, :class:`RateLimitGate` (a fixed window per key, the
  vendor's error and headers by hook), and the fault gate: the same :class:`FaultQueue` as
  :class:`~apicenterd.testing.FaultInjector` (``sim.fail_next(503, body, path_prefix=...)``);
  wrap the app in :func:`~apicenterd.testing.with_faults` for random 5xx, drops and timeouts;
* **vendor-error translation**: handlers raise :class:`VendorError`, ``error_response`` renders it;
* an **in-memory store** (:class:`Collection`; :class:`LazyCollection` for a million seeded
  records made when asked for) with id sequences (:class:`IntIds`, :class:`GuidIds`)
  and unique indexes, and a :class:`ChangeClock` for modification stamps that never go back;
* **paging**: :func:`offset_page` (start/size with first/previous/next links), :func:`page_number`
  (page/size with totals), :func:`odata_page` (``$top``/``$skip`` with ``__next`` and
  ``$skiptoken``), :func:`cursor_page` (``after``);
* a **rotating-refresh-token OAuth2 token endpoint** (:class:`TokenServer`);
* **seeding**: :class:`GuidIds` and :func:`seeded` give the same data for the same seed;
  :func:`seed_options` turns "seed N records of these entities" into a simulator's options
  (a connector names them in ``simulator_seeds``: entity -> the ``simulator()`` option), so the
  demo seeds customers and orders as well as products where a simulator can.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import inspect
import json
import math
import random
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .faults import FaultQueue
from .simulator import FixedWindow

__all__ = [
    "VendorError",
    "VendorSim",
    "Gate",
    "BearerAuth",
    "RateLimitGate",
    "RequestLog",
    "TokenServer",
    "Collection",
    "LazyCollection",
    "LazyWindow",
    "IntIds",
    "GuidIds",
    "ChangeClock",
    "json_response",
    "read_json",
    "int_param",
    "offset_page",
    "page_number",
    "odata_page",
    "cursor_page",
    "seeded",
    "seed_options",
    "retry_after",
    "OffsetPage",
    "Window",
    "NumberedPage",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Handler = Callable[[Any, Request], Awaitable[Response]]


# -- errors and JSON ---------------------------------------------------------------------


class VendorError(Exception):
    """Raised by a gate or handler: the request the vendor would refuse.

    ``code`` is the vendor's error code (any type); ``headers`` go on the answer (e.g.
    ``Retry-After``). :meth:`VendorSim.error_response` turns it into the vendor's body.
    """

    def __init__(self, status: int, code: Any, message: str, *, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class _JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        """Compact JSON; Decimals as numbers, datetimes as ISO 8601."""
        return json.dumps(content, default=_json_default, ensure_ascii=False, separators=(",", ":")).encode()


def json_response(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON answer (Decimals as numbers, as .NET and Java vendors send them)."""
    return _JSON(content, status_code=status, headers=dict(headers) if headers else None)


async def read_json(request: Request, error: Callable[[], VendorError], *, decimals: bool = True, empty: Any = ...) -> Any:
    """The request body as JSON (floats as Decimal when ``decimals``); ``error()`` is raised if it is not.

    ``empty``: what an empty body is (by default it is an error like any non-JSON body).
    """
    raw = await request.body()
    if not raw and empty is not ...:
        return empty
    try:
        return json.loads(raw, parse_float=Decimal if decimals else float)
    except ValueError:
        raise error() from None


# -- the request log -----------------------------------------------------------------------


class RequestLog(list[tuple[str, str]]):
    """The ``(method, target)`` of each API call received, oldest first (``maxlen``: keep only the last N).

    A list, so a test compares it with one; ``total`` counts every call, also those that
    fell off the front of a bounded log.
    """

    def __init__(self, maxlen: int | None = None):
        super().__init__()
        self.maxlen = maxlen
        self.total = 0

    def clear(self) -> None:
        """Forget every logged call, and the total."""
        super().clear()
        self.total = 0

    def record(self, method: str, target: str) -> None:
        """Log one call."""
        self.total += 1
        self.append((method, target))
        if self.maxlen is not None and len(self) > self.maxlen:
            del self[0]

    def matching(self, method: str | None = None, prefix: str = "") -> int:
        """Logged calls with ``method`` (None: any) whose target starts with ``prefix``."""
        return sum(1 for m, t in self if (method is None or m == method) and t.startswith(prefix))


# -- gates -----------------------------------------------------------------------------------


Gate = Callable[[Request], "Response | Awaitable[Response | None] | None"]
"""One step of the chain: raise :class:`VendorError` (or return a Response) to refuse, None to let
through; a gate may be a coroutine function (e.g. to check a signature over the body)."""


class BearerAuth:
    """The gate for ``Authorization: Bearer <token>``: ``valid(token)`` or ``refuse()`` is raised."""

    def __init__(self, valid: Callable[[str], bool], refuse: Callable[[], VendorError]):
        self.valid, self.refuse = valid, refuse

    def __call__(self, request: Request) -> None:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token or not self.valid(token):
            raise self.refuse()


class RateLimitGate:
    """A vendor's fixed-window limit: ``limit`` calls per ``key(request)`` each ``period`` seconds.

    Over the limit, ``refuse(wait_seconds, gate)`` is raised (the vendor's 429 body and headers).
    ``applies(request)``: which calls count (e.g. only GETs, for a vendor with a separate write limit).
    ``limit`` 0 turns the gate off. Several gates chain for several limits (per endpoint, total).
    """

    def __init__(
        self,
        limit: int,
        period: float,
        refuse: Callable[[float, RateLimitGate], VendorError],
        *,
        key: Callable[[Request], str] = lambda request: "",
        applies: Callable[[Request], bool] = lambda request: True,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.window = FixedWindow(limit, period, clock=clock)
        self.refuse, self.key, self.applies = refuse, key, applies

    @property
    def limit(self) -> int:
        """Calls allowed per window."""
        return self.window.limit

    def __call__(self, request: Request) -> None:
        if not self.applies(request):
            return
        wait = self.window.hit(self.key(request))
        if wait is not None:
            raise self.refuse(wait, self)


def retry_after(wait: float) -> str:
    """Whole seconds to wait, at least 1, as a ``Retry-After`` value."""
    return str(max(1, math.ceil(wait)))


# -- the simulator base ------------------------------------------------------------------------


class VendorSim:
    """The state of one simulated vendor account: request log, gate chain, fault switch, error hook.

    Subclasses set ``gates`` (the chain every :meth:`api` route passes, in order; include
    ``self.fault_gate`` where the vendor would fail) and override :meth:`error_response`
    (the vendor's error body) and, when needed, :meth:`target` (what the log records),
    :meth:`before` and :meth:`after` (e.g. response signing).
    """

    oauth: TokenServer | None = None
    """The vendor's token endpoint, if it has OAuth (mount ``oauth.endpoint`` as a route)."""

    def __init__(self, *, log_size: int | None = None):
        self.requests = RequestLog(log_size)
        self.faults = FaultQueue()
        self.gates: list[Gate] = [self.fault_gate]

    # hooks

    def error_response(self, exc: VendorError) -> Response:
        """The vendor's answer to ``exc``; override with the vendor's error shape."""
        return json_response({"code": exc.code, "message": exc.message}, exc.status, exc.headers)

    def target(self, request: Request) -> str:
        """What the request log records of a call (default: the path)."""
        return request.url.path

    async def before(self, request: Request) -> None:
        """Called first on every API call (after it is logged); e.g. to read and check the body."""

    def after(self, request: Request, response: Response) -> Response:
        """Called with every answer the handler gave (not refusals); e.g. to sign it."""
        return response

    # the fault switch and the log, for tests

    def fail_next(
        self, status: int, body: Any = None, *, times: int = 1, path_prefix: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``times`` API calls (under ``path_prefix``) with ``status`` and ``body``
        (a dict: JSON; a str: HTML), once the calls pass the gates before the fault gate."""
        self.faults.fail_next(status, body, times=times, path_prefix=path_prefix, headers=headers)

    def fault_gate(self, request: Request) -> Response | None:
        """The gate that answers the scripted faults (see :meth:`fail_next`)."""
        return self.faults.response(request.url.path)

    @property
    def request_count(self) -> int:
        """API calls received (token calls not included); assign 0 to restart the count."""
        return self.requests.total

    @request_count.setter
    def request_count(self, value: int) -> None:
        self.requests.total = value

    def count(self, method: str | None = None, path_prefix: str = "") -> int:
        """Logged API calls with ``method`` whose target starts with ``path_prefix``."""
        return self.requests.matching(method, path_prefix)

    def reset_counts(self) -> None:
        """Forget the calls received so far (data stays)."""
        self.requests.clear()
        if self.oauth is not None:
            self.oauth.token_requests = 0

    @property
    def token_requests(self) -> int:
        """Calls to the token endpoint."""
        return self.oauth.token_requests if self.oauth is not None else 0

    def expire_access_tokens(self) -> None:
        """Make every issued access token expired, as if their lifetime had passed."""
        if self.oauth is not None:
            self.oauth.expire_access_tokens()

    # the route wrapper

    @staticmethod
    def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """``handler(sim, request)`` behind the log, the gate chain and the error translation
        of the app's ``state.sim`` (usable as a decorator on module-level handlers)."""

        async def endpoint(request: Request) -> Response:
            sim: VendorSim = request.app.state.sim
            return await sim.handle(request, handler)

        endpoint.__name__ = getattr(handler, "__name__", "endpoint")
        endpoint.__doc__ = handler.__doc__
        return endpoint

    async def handle(self, request: Request, handler: Handler) -> Response:
        """Log, gate, run ``handler``; a :class:`VendorError` anywhere becomes :meth:`error_response`."""
        self.requests.record(request.method, self.target(request))
        try:
            await self.before(request)
            for gate in self.gates:
                refused = gate(request)
                if inspect.isawaitable(refused):
                    refused = await refused
                if refused is not None:
                    return refused
            response = await handler(self, request)
        except VendorError as exc:
            return self.error_response(exc)
        return self.after(request, response)


# -- OAuth2 -----------------------------------------------------------------------------------


class TokenServer:
    """An OAuth2 token endpoint with expiring access tokens and rotating, single-use refresh tokens.

    Grants: ``refresh_token`` (each refresh token works once; the answer carries a new one) and
    ``authorization_code`` (codes from :meth:`issue_code`). Client authentication by HTTP
    Basic (``client_secret_basic``) or, with ``client_auth="post"``, form fields. Refresh
    tokens are HMAC-signed with ``signing_key`` so :meth:`demo_refresh_token` is stable
    across runs (a demo config can carry it).
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        signing_key: bytes,
        ttl: float = 3600.0,
        scope: str = "",
        client_auth: str = "basic",
        access_prefix: str = "at.",
        clock: Callable[[], float] = time.time,
    ):
        if client_auth not in ("basic", "post"):
            raise ValueError(f"client_auth must be 'basic' or 'post', got {client_auth!r}")
        self.client_id, self.client_secret = client_id, client_secret
        self.signing_key, self.ttl, self.scope = signing_key, ttl, scope
        self.client_auth, self.access_prefix, self.clock = client_auth, access_prefix, clock
        self.access_tokens: dict[str, float] = {}
        self.used_refresh_tokens: set[str] = set()
        self.codes: set[str] = set()
        self.token_requests = 0

    def _signed(self, nonce: str) -> str:
        mac = hmac.new(self.signing_key, nonce.encode(), hashlib.sha256).hexdigest()[:32]
        return f"rt.{nonce}.{mac}"

    def _signature_ok(self, token: str) -> bool:
        parts = token.split(".")
        return len(parts) == 3 and parts[0] == "rt" and hmac.compare_digest(self._signed(parts[1]), token)

    def demo_refresh_token(self) -> str:
        """The refresh token a fresh server accepts (once: it rotates)."""
        return self._signed("demo")

    def issue_code(self) -> str:
        """An authorization code for the ``authorization_code`` grant (single use)."""
        code = "code." + uuid.uuid4().hex
        self.codes.add(code)
        return code

    def valid(self, access_token: str) -> bool:
        """Whether ``access_token`` was issued here and has not expired."""
        return self.access_tokens.get(access_token, 0.0) > self.clock()

    def expire_access_tokens(self) -> None:
        """Make every issued access token expired, as if their lifetime had passed."""
        for token in self.access_tokens:
            self.access_tokens[token] = 0.0

    def _client(self, request: Request, form: Mapping[str, str]) -> tuple[str, str]:
        if self.client_auth == "post":
            return form.get("client_id", ""), form.get("client_secret", "")
        try:
            scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            return "", ""
        return (client_id, secret) if scheme.lower() == "basic" else ("", "")

    async def endpoint(self, request: Request) -> Response:
        """POST token endpoint (mount it as a route)."""
        self.token_requests += 1
        # parsed by hand: Starlette's request.form() needs python-multipart
        form = {k: v[-1] for k, v in urllib.parse.parse_qs((await request.body()).decode()).items()}
        if self._client(request, form) != (self.client_id, self.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = form.get("grant_type")
        if grant == "refresh_token":
            refresh = form.get("refresh_token", "")
            if not self._signature_ok(refresh) or refresh in self.used_refresh_tokens:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            self.used_refresh_tokens.add(refresh)
        elif grant == "authorization_code":
            code = form.get("code", "")
            if code not in self.codes:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            self.codes.discard(code)
        else:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        access = self.access_prefix + uuid.uuid4().hex
        self.access_tokens[access] = self.clock() + self.ttl
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.ttl),
            "refresh_token": self._signed(uuid.uuid4().hex),
        }
        if self.scope:
            body["scope"] = self.scope
        return JSONResponse(body, headers={"Cache-Control": "no-store"})


# -- the store ---------------------------------------------------------------------------------


class IntIds:
    """Integer ids counting up from ``after`` + 1."""

    def __init__(self, after: int = 0):
        self.last = after

    def __call__(self) -> int:
        self.last += 1
        return self.last


class GuidIds:
    """Version-4 GUIDs drawn from ``rng`` (a seed or a Random): the same sequence for the same seed."""

    def __init__(self, rng: int | random.Random = 1):
        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)

    def __call__(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


class Collection(dict[Any, Any]):
    """An in-memory collection ``id -> item`` with an id sequence and unique, case-folded indexes.

    ``unique`` names the fields whose values must be unique (compared case-insensitively,
    as most vendors do); :meth:`find` looks one up by index, :meth:`check_unique` raises
    ``conflict(field, value)`` when another item has it.
    """

    def __init__(self, ids: Callable[[], Any], *, unique: Iterable[str] = (), conflict: Callable[[str, Any], VendorError] | None = None):
        super().__init__()
        self.next_id = ids
        self._indexes: dict[str, dict[str, Any]] = {field: {} for field in unique}
        self._conflict = conflict

    @staticmethod
    def _fold(value: Any) -> str:
        return str(value).casefold()

    def __setitem__(self, item_id: Any, item: Any) -> None:
        previous = self.get(item_id)
        for field, index in self._indexes.items():
            if previous is not None and previous.get(field) is not None:
                index.pop(self._fold(previous[field]), None)
            if item.get(field) is not None:
                index[self._fold(item[field])] = item_id
        super().__setitem__(item_id, item)

    def __delitem__(self, item_id: Any) -> None:
        item = self[item_id]
        for field, index in self._indexes.items():
            if item.get(field) is not None:
                index.pop(self._fold(item[field]), None)
        super().__delitem__(item_id)

    def pop(self, item_id: Any, *default: Any) -> Any:
        """Remove and return the item (indexes follow)."""
        if item_id not in self:
            if default:
                return default[0]
            raise KeyError(item_id)
        item = self[item_id]
        del self[item_id]
        return item

    def clear(self) -> None:
        """Remove every item (indexes follow)."""
        super().clear()
        for index in self._indexes.values():
            index.clear()

    def add(self, item: dict[str, Any], *, id_field: str = "Id") -> dict[str, Any]:
        """Store ``item`` under a new id (set in ``item[id_field]``); returns it."""
        item_id = self.next_id()
        item[id_field] = item_id
        self[item_id] = item
        return item

    def find(self, field: str, value: Any) -> Any:
        """The item whose unique ``field`` is ``value`` (case-insensitive), or None."""
        if field not in self._indexes:
            raise KeyError(f"{field!r} is not indexed; unique fields: {sorted(self._indexes)}")
        item_id = self._indexes[field].get(self._fold(value))
        return self.get(item_id) if item_id is not None else None

    def check_unique(self, field: str, value: Any, own_id: Any = None) -> None:
        """Raise the conflict error if an item other than ``own_id`` has ``value`` in ``field``."""
        if value is None:
            return
        if field in self._indexes:
            found_id = self._indexes[field].get(self._fold(value))
            clash = found_id is not None and found_id != own_id
        else:
            clash = any(i != own_id and self._fold(item.get(field) or "") == self._fold(value) for i, item in self.items())
        if clash:
            if self._conflict is None:
                raise VendorError(409, "conflict", f"{field} {value!r} already exists")
            raise self._conflict(field, value)


class LazyCollection(MutableMapping[int, dict[str, Any]]):
    """Seeded items ``first`` .. ``first + count - 1`` made by ``make(id)`` when asked for (a million
    records for a benchmark cost a few MB): an item written (``items[id] = ...``) or deleted is
    remembered. Lists are paged from a cached order of ids (:meth:`window`). ``key(field, id)``
    gives an unchanged item's sort key without making it (raise KeyError to make it instead);
    ``id_ordered``: the fields by which the seeded items already are in id order. Change
    items by assigning them: a dict read from here and changed in place is not kept."""

    def __init__(
        self,
        first: int,
        count: int,
        make: Callable[[int], dict[str, Any]],
        key: Callable[[str, int], Any],
        *,
        id_ordered: Iterable[str] = ("id",),
    ):
        self._first, self._count, self._make, self._key = first, count, make, key
        self._id_ordered = frozenset(id_ordered)
        self._written: dict[int, dict[str, Any]] = {}
        self._deleted: set[int] = set()
        self._orders: dict[tuple[str, bool], tuple[int, Any]] = {}
        self.version = 0

    def _seeded(self, pid: Any) -> bool:
        return isinstance(pid, int) and self._first <= pid < self._first + self._count and pid not in self._deleted

    def __getitem__(self, pid: int) -> dict[str, Any]:
        if pid in self._written:
            return self._written[pid]
        if self._seeded(pid):
            return self._make(pid)
        raise KeyError(pid)

    def __contains__(self, pid: object) -> bool:
        return pid in self._written or self._seeded(pid)

    def __setitem__(self, pid: int, product: dict[str, Any]) -> None:
        self._written[pid] = product
        self._deleted.discard(pid)
        self.version += 1

    def __delitem__(self, pid: int) -> None:
        if pid not in self:
            raise KeyError(pid)
        self._written.pop(pid, None)
        if self._first <= pid < self._first + self._count:
            self._deleted.add(pid)
        self.version += 1

    def __iter__(self) -> Iterator[int]:
        for pid in range(self._first, self._first + self._count):
            if pid not in self._deleted:
                yield pid
        yield from sorted(pid for pid in self._written if not self._first <= pid < self._first + self._count)

    def __len__(self) -> int:
        extra = sum(1 for pid in self._written if not self._first <= pid < self._first + self._count)
        return self._count - len(self._deleted) + extra

    def order(self, field: str, desc: bool) -> Any:
        """Ids sorted by ``field`` (ties in id order), as a sequence."""
        seeded = range(self._first, self._first + self._count)
        if not self._written and not self._deleted and field in self._id_ordered:
            return seeded[::-1] if desc else seeded  # generated in that order
        cached = self._orders.get((field, desc))
        if cached is not None and cached[0] == self.version:
            return cached[1]

        def key(pid: int) -> Any:
            if pid in self._written:
                value = self._written[pid].get(field)
            else:
                try:
                    value = self._key(field, pid)
                except KeyError:
                    value = self._make(pid).get(field)
            return (value is None, value)

        order = sorted(self, key=key, reverse=desc)  # iterated in id order; a reversed sort keeps ties so
        self._orders[(field, desc)] = (self.version, order)
        return order


    def window(self, field: str, desc: bool = False) -> LazyWindow:
        """The items sorted by ``field``, to slice a page from (made only for that page)."""
        return LazyWindow(self.order(field, desc), self)


class LazyWindow:
    """The items of an ordered id sequence, sliced like a list (a :class:`Window` for :func:`offset_page`)."""

    def __init__(self, ids: Any, products: LazyCollection):
        self._ids, self._products = ids, products

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, window: slice) -> list[dict[str, Any]]:
        return [self._products[pid] for pid in self._ids[window]]


class ChangeClock:
    """Modification stamps that never go back: each :meth:`now` is at least the last one.

    ``truncate``: cut to whole seconds (vendors with second resolution); ``tick``: how far
    a stamp moves past the last when the clock has not (``None``: it may equal it).
    """

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        *,
        start: datetime = datetime(2000, 1, 1, tzinfo=timezone.utc),
        tick: timedelta | None = None,
        truncate: bool = False,
    ):
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.last, self.tick, self.truncate = start, tick, truncate

    def now(self) -> datetime:
        """A stamp for a change made now."""
        now = self.clock()
        if self.truncate:
            now = now.replace(microsecond=0)
        if now <= self.last:
            now = self.last + self.tick if self.tick is not None else self.last
        self.last = now
        return now

    def seen(self, stamp: datetime) -> None:
        """Note a stamp given out some other way (seeded data), so later stamps come after it."""
        self.last = max(self.last, stamp)


def seed_options(seeds: Mapping[str, str], entities: Iterable[str], records: int) -> dict[str, int]:
    """The ``simulator()`` options that seed ``records`` records of each of ``entities``, from a
    connector's ``simulator_seeds`` (entity -> option, e.g. ``{"products": "records", "customers":
    "customers", "orders": "orders"}``). Without seeds (``{}``): ``{"records": records}``, what
    every simulator takes. ``records`` always comes back (0 when no entity asks for it), so a
    simulator is never seeded with what no flow reads; an entity the simulator cannot seed is left out."""
    if not seeds:
        return {"records": records}
    options = {"records": 0}
    for entity in entities:
        option = seeds.get(str(entity))
        if option is not None:
            options[option] = records
    return options


def seeded(seed: int, *salt: Hashable) -> random.Random:
    """A Random for ``seed`` (and ``salt``, e.g. a record id): the same numbers on every run and machine."""
    value = seed
    for part in salt:
        value = value * 1_000_003 + (part if isinstance(part, int) else int(hashlib.sha256(str(part).encode()).hexdigest()[:12], 16))
    return random.Random(value)


# -- paging ------------------------------------------------------------------------------------


def int_param(query: Mapping[str, str], name: str, default: int, error: Callable[[str], VendorError], *, minimum: int = 0) -> int:
    """Query parameter ``name`` as an int (``default`` when absent); ``error(message)`` when it is not one."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise error(f"Parameter '{name}' must be an integer") from None
    if value < minimum:
        raise error(f"Parameter '{name}' must be {minimum} or more")
    return value


def _with(url: str, **params: Any) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    query.update({k: str(v) for k, v in params.items()})
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


@dataclasses.dataclass(frozen=True)
class OffsetPage(Generic[T]):
    """One offset page: its items and the first/previous/next links (None at an end)."""

    items: list[T]
    start: int
    size: int
    first: str
    previous: str | None
    next: str | None


class Window(Protocol[T_co]):
    """What offset paging slices: a sequence, or anything with a length and slices (a lazy listing)."""

    def __len__(self) -> int: ...

    def __getitem__(self, window: slice, /) -> Sequence[T_co]: ...


def offset_page(
    items: Window[T], url: str, start: int, size: int, *, start_name: str = "start", size_name: str = "size"
) -> OffsetPage[T]:
    """``items[start:start + size]`` with links on ``url`` (other query parameters kept)."""

    def link(at: int) -> str:
        return _with(url, **{start_name: at, size_name: size})

    return OffsetPage(
        items=list(items[start : start + size]),
        start=start,
        size=size,
        first=link(0),
        previous=link(max(start - size, 0)) if start > 0 else None,
        next=link(start + size) if start + size < len(items) else None,
    )


@dataclasses.dataclass(frozen=True)
class NumberedPage(Generic[T]):
    """One numbered page (1-based) and the totals vendors report with it."""

    items: list[T]
    page: int
    size: int
    total_pages: int
    total: int


def page_number(items: Sequence[T], page: int, size: int) -> NumberedPage[T]:
    """Page ``page`` (1-based) of ``items`` at ``size`` a page, with the totals."""
    if page < 1 or size < 1:
        raise ValueError(f"page and size must be 1 or more, got {page}, {size}")
    total = len(items)
    return NumberedPage(list(items[(page - 1) * size : page * size]), page, size, math.ceil(total / size), total)


def odata_page(items: Sequence[T], url: str, skip: int, top: int, *, token: Callable[[int], str] = str) -> tuple[list[T], str | None]:
    """OData v2/v3 server-driven paging: the items from ``skip`` (at most ``top``) and the
    ``__next`` link carrying ``$skiptoken`` (``token(offset)``; None on the last page)."""
    window = list(items[skip : skip + top])
    if skip + top >= len(items):
        return window, None
    return window, _with(url, **{"$skiptoken": token(skip + top)})


def cursor_page(items: Sequence[T], after: str | None, limit: int, key: Callable[[T], str]) -> tuple[list[T], str | None]:
    """Cursor paging (``?after=``): the ``limit`` items after the one whose ``key`` is ``after``
    (items in key order), and the cursor of the next page (None on the last)."""
    start = 0
    if after is not None:
        start = next((n + 1 for n, item in enumerate(items) if key(item) == after), len(items))
    window = list(items[start : start + limit])
    more = start + limit < len(items)
    return window, (key(window[-1]) if more and window else None)

