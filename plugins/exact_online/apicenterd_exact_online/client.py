"""The Exact Online REST API over HTTP: the division, OData v2 paging, the day's budget, errors sorted.

Exact Online answers OData v2 JSON under ``/api/v1/{division}/``: a list is
``{"d": {"results": [...], "__next": url}}``, a single object ``{"d": {...}}``, an error
``{"error": {"code": "", "message": {"lang": "", "value": "..."}}}``. Every answer carries the
day's budget (``X-RateLimit-Limit/Remaining/Reset``, reset in epoch milliseconds) and, under
the minutely limit, ``X-RateLimit-Minutely-*``; the minutely window is kept by the daemon's
limiter (:data:`RATE_LIMITS`), the day by :class:`DayBudget` here: a spent day is a
:class:`~apicenterd.RateLimited` until the reset, without a call. Exact blocks an app for an
hour after 10 failed calls (400/401/403/404) on one endpoint in an hour; :class:`ErrorGuard`
stops calling an endpoint well before that.
"""

from __future__ import annotations

import collections
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from apicenterd import ConnectorError, FatalError, RateLimit, RateLimited, RateLimitHeaders, error_for_status
from apicenterd.kit import Page, paginate_odata

__all__ = [
    "DAILY",
    "MINUTELY",
    "RATE_LIMITS",
    "DayBudget",
    "ErrorGuard",
    "ExactClient",
    "endpoint_of",
    "error_from",
    "exact_message",
    "guid_key",
    "odata_date",
    "odata_string",
    "parse_odata_date",
]

MINUTELY = RateLimitHeaders(
    remaining="X-RateLimit-Minutely-Remaining",
    reset="X-RateLimit-Minutely-Reset",
    reset_unit="epoch_ms",
    limit="X-RateLimit-Minutely-Limit",
)
"""Exact's minutely limit headers [3rd: picqer Connection.php; shared/api-specs README §2]."""
DAILY = RateLimitHeaders(remaining="X-RateLimit-Remaining", reset="X-RateLimit-Reset", reset_unit="epoch_ms", limit="X-RateLimit-Limit")
"""Exact's daily limit headers (same source)."""


def _api_call(request: httpx.Request) -> str | None:
    """The rate limits count the REST API's calls (one bucket), not the OAuth2 token endpoint's."""
    return None if request.url.path.startswith("/api/oauth2/") else ""


RATE_LIMITS = (
    RateLimit(60, 60.0, name="minutely", headers=MINUTELY, key=_api_call),
    RateLimit(5000, 86400.0, name="daily", headers=DAILY, key=_api_call),
)
"""60 calls a minute and 5,000 a day per company and app: one connection is one company and app.
The day's is a day budget the flows share by priority (see apicenterd.budget). The token endpoint
is not counted (a refresh every 9.5 minutes would spend ~150 calls a day)."""

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_IS_GUID = re.compile(_GUID)
_KEY = re.compile(r"\(guid'" + _GUID + r"'\)")
_DATE = re.compile(r"^/Date\((-?\d+)(?:[+-]\d{4})?\)/$")
ERROR_STATUSES = frozenset({400, 401, 403, 404})
"""The failed calls Exact counts toward its 10-errors-an-hour app block."""


def odata_string(value: str) -> str:
    """An OData string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def guid_key(guid: str) -> str:
    """The OData key segment ``(guid'...')``; ValueError for what is not a GUID."""
    if not isinstance(guid, str) or not _IS_GUID.fullmatch(guid):
        raise ValueError(f"not an Exact Online id (a GUID): {guid!r:.60}")
    return f"(guid'{guid}')"


def odata_date(value: date | datetime) -> str:
    """A date as Exact accepts it in a body (ISO 8601)."""
    return value.isoformat()


def parse_odata_date(value: Any) -> datetime | None:
    """``/Date(1325376000000)/`` (OData v2, milliseconds since 1970, UTC) or ISO 8601 as a datetime; None for None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        match = _DATE.match(value.strip())
        if match:
            return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=timezone.utc)
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    raise ValueError(f"not an OData date: {value!r:.40}")


def endpoint_of(url: httpx.URL | str) -> str:
    """The endpoint a call counts against: the path without its ``(guid'...')`` key or query."""
    path = urlsplit(str(url)).path
    return _KEY.sub("", path).rstrip("/") or "/"


def exact_message(response: httpx.Response) -> tuple[str, str | None]:
    """Exact's error ``message.value`` and ``code`` (``{"error": {"code", "message": {"lang", "value"}}}``),
    else the body's start, else the reason phrase."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = error.get("message")
        text = message.get("value") if isinstance(message, dict) else message
        code = error.get("code")
        if isinstance(text, str) and text.strip():
            return text.strip(), (str(code) if code not in (None, "") else None)
    text = response.text.strip()[:200] if response.content else ""
    return text or response.reason_phrase or f"HTTP {response.status_code}", None


def _reset_in(response: httpx.Response, header: str, now: float) -> float | None:
    try:
        reset_ms = float(response.headers[header])
    except (KeyError, ValueError):
        return None
    return max(0.0, reset_ms / 1000 - now)


def error_from(response: httpx.Response, what: str, *, now: float | None = None) -> ConnectorError:
    """The apicenterd error for Exact's failed answer: 401/403 AuthError, 429 RateLimited (until the
    minutely or daily reset), 5xx RetryableError, 400 RecordError with Exact's message, 404 on
    a key (``(guid'...')``) RecordError, on a collection FatalError (the URL or division is wrong)."""
    text, code = exact_message(response)
    path = response.request.url.path
    detail = f"{what}: Exact Online: {text} (HTTP {response.status_code} {response.request.method} {path})"
    if response.status_code == 429:
        clock = time.time() if now is None else now
        daily_left = response.headers.get("X-RateLimit-Remaining")
        header = "X-RateLimit-Reset" if daily_left is not None and daily_left.strip() == "0" else "X-RateLimit-Minutely-Reset"
        return RateLimited(detail, retry_after=_reset_in(response, header, clock), status=429, vendor_code=code)
    not_found: Literal["record", "config"] = "record" if _KEY.search(path) else "config"
    return error_for_status(response, detail, vendor_code=code, not_found=not_found)


@dataclass
class DayBudget:
    """The day's calls Exact says are left (``X-RateLimit-Remaining``) and when they reset."""

    reserve: int = 0
    remaining: int | None = None
    limit: int | None = None
    reset_at: float | None = None  # epoch seconds

    def observe(self, response: httpx.Response) -> None:
        """Take the budget from an answer's headers (absent or unreadable headers change nothing)."""
        try:
            remaining = int(response.headers["X-RateLimit-Remaining"])
            reset_at = float(response.headers["X-RateLimit-Reset"]) / 1000
        except (KeyError, ValueError):
            return
        self.remaining, self.reset_at = remaining, reset_at
        try:
            self.limit = int(response.headers["X-RateLimit-Limit"])
        except (KeyError, ValueError):
            pass

    def spent(self, now: float) -> float | None:
        """Seconds until the reset when no call may go (``reserve`` or fewer left), else None."""
        if self.remaining is None or self.reset_at is None or self.reset_at <= now:
            return None
        return self.reset_at - now if self.remaining <= self.reserve else None


class ErrorGuard:
    """Stops calling an endpoint that failed ``limit`` times within the hour (Exact blocks the app
    key for an hour after 10 such errors on one endpoint); calls to it raise FatalError naming the
    last error until the oldest of those errors is an hour old."""

    WINDOW = 3600.0

    def __init__(self, limit: int = 5, clock: Callable[[], float] = time.time):
        if limit < 1:
            raise ValueError(f"error limit must be at least 1, got {limit}")
        self.limit, self.clock = limit, clock
        self._errors: dict[str, collections.deque[tuple[float, str]]] = {}

    def _recent(self, endpoint: str) -> collections.deque[tuple[float, str]]:
        errors = self._errors.setdefault(endpoint, collections.deque())
        now = self.clock()
        while errors and errors[0][0] <= now - self.WINDOW:
            errors.popleft()
        return errors

    def check(self, method: str, endpoint: str) -> None:
        """FatalError when ``endpoint`` has failed too often this hour."""
        key = f"{method} {endpoint}"
        errors = self._recent(key)
        if len(errors) >= self.limit:
            wait = errors[0][0] + self.WINDOW - self.clock()
            raise FatalError(
                f"{key}: stopped calling Exact Online for {wait / 60:.0f} min after {len(errors)} failed calls this hour "
                f"(Exact blocks the app for an hour after 10); last error: {errors[-1][1]}"
            )

    def failed(self, method: str, endpoint: str, message: str) -> None:
        """Count a 400/401/403/404 answer."""
        self._recent(f"{method} {endpoint}").append((self.clock(), message[:300]))


def _decode(response: httpx.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (date, datetime)):
        return odata_date(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


class ExactClient:
    """Calls Exact Online's REST API for one division through the connection's HTTP client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        division: int | None = None,
        reserve: int = 0,
        error_limit: int = 5,
        clock: Callable[[], float] = time.time,
    ):
        self.http = http
        self._division = division
        self.budget = DayBudget(reserve=reserve)
        self.errors = ErrorGuard(error_limit, clock)
        self.clock = clock
        self.calls = 0

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    async def division(self) -> int:
        """The configured division, else ``CurrentDivision`` of ``/api/v1/current/Me`` (asked once)."""
        if self._division is None:
            body = await self.request("GET", "/api/v1/current/Me", what="current division", params={"$select": "CurrentDivision"})
            items = _results(body, "current/Me")
            division = items[0].get("CurrentDivision") if items else None
            if not isinstance(division, int) or isinstance(division, bool):
                raise FatalError(f"current/Me: no CurrentDivision in Exact's answer ({str(body)[:120]}); set division")
            self._division = division
        return self._division

    async def url(self, resource: str) -> str:
        """``/api/v1/{division}/{resource}``."""
        return f"/api/v1/{await self.division()}/{resource}"

    async def request(self, method: str, url: str, *, what: str, params: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        """One call: the day's budget and the error guard first, then the answer's JSON (None for 204)."""
        now = self.clock()
        wait = self.budget.spent(now)
        if wait is not None:
            raise RateLimited(
                f"{what}: Exact Online's daily limit is spent ({self.budget.remaining} of {self.budget.limit or 5000} calls left, "
                f"reserve {self.budget.reserve}); the connection waits {wait / 3600:.1f} h for the reset",
                retry_after=wait,
            )
        endpoint = endpoint_of(url)
        self.errors.check(method, endpoint)
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, default=_encode).encode()
        self.calls += 1
        response = await self.http.request(method, url, params=params, content=content, headers=headers)
        self.budget.observe(response)
        if not response.is_success:
            error = error_from(response, what, now=self.clock())
            if response.status_code in ERROR_STATUSES:
                self.errors.failed(method, endpoint, str(error))
            raise error
        if response.status_code == 204 or not response.content:
            return None
        try:
            return _decode(response)
        except ValueError as exc:
            raise FatalError(f"{what}: Exact Online's answer is not JSON ({exc}): {response.text[:120]!r}") from None

    async def pages(
        self,
        resource: str,
        *,
        select: Sequence[str],
        what: str,
        filter: str | None = None,
        top: int | None = None,
        orderby: str | None = None,
        expand: str | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Each page of a list, following ``d.__next`` (loops are FatalError). ``$select`` is
        always sent: Exact requires it on the bulk and sync endpoints and it saves transfer everywhere."""
        if not select:
            raise ValueError(f"{resource}: $select must name the fields to read")
        first = await self.url(resource)
        params: dict[str, Any] = {"$select": ",".join(select)}
        if filter:
            params["$filter"] = filter
        if top:
            params["$top"] = top
        if orderby:
            params["$orderby"] = orderby
        if expand:
            params["$expand"] = expand
        base = urlsplit(str(self.http.base_url))

        async def fetch(link: str | None) -> Page[dict[str, Any]]:
            if link is None:
                body = await self.request("GET", first, what=what, params=params)
            else:
                target = urlsplit(link)
                if target.netloc and (target.scheme, target.netloc) != (base.scheme, base.netloc):
                    raise FatalError(f"{what}: Exact's __next link leaves {base.netloc}: {link[:120]}")
                body = await self.request("GET", link, what=what)
            items = _results(body, resource)
            d = body["d"] if isinstance(body.get("d"), dict) else {}
            return Page(items, next=d.get("__next") or None)

        async for items in paginate_odata(fetch, endpoint=f"{what}: GET {first}"):
            yield list(items)

    async def count(self, resource: str, *, filter: str, what: str) -> int | None:
        """``GET {resource}/$count?$filter=...``: how many items match (OData v2's ``$count``: a plain
        number); None when the answer is not a count."""
        body = await self.request("GET", f"{await self.url(resource)}/$count", what=what, params={"$filter": filter})
        return body if isinstance(body, int) and not isinstance(body, bool) and body >= 0 else None

    async def first(self, resource: str, *, select: Sequence[str], filter: str, what: str) -> list[dict[str, Any]]:
        """The first page of a filtered list (a look-up by key expects one or none)."""
        async for items in self.pages(resource, select=select, filter=filter, what=what):
            return items
        return []  # pragma: no cover - pages() yields at least once

    async def create(self, resource: str, body: Mapping[str, Any], *, what: str, key: str = "ID") -> dict[str, Any]:
        """POST a new object; the object Exact answered (``d``), its ``key`` checked."""
        answer = await self.request("POST", await self.url(resource), what=what, body=dict(body))
        d = answer.get("d") if isinstance(answer, dict) else None
        if not isinstance(d, dict) or not d.get(key):
            raise FatalError(f"{what}: Exact Online confirmed the create but its answer has no {key}")
        return d

    async def update(self, resource: str, guid: str, body: Mapping[str, Any], *, what: str) -> None:
        """PUT the properties in ``body`` (Exact changes only those; it answers 204)."""
        await self.request("PUT", await self.url(resource) + guid_key(guid), what=what, body=dict(body))

    async def delete(self, resource: str, guid: str, *, what: str) -> None:
        """DELETE one object (Exact answers 204)."""
        await self.request("DELETE", await self.url(resource) + guid_key(guid), what=what)


def _results(body: Any, resource: str) -> list[dict[str, Any]]:
    """The ``d.results`` of a list answer (``d`` as a list also taken); FatalError otherwise."""
    d = body.get("d") if isinstance(body, dict) else None
    items = d.get("results") if isinstance(d, dict) else d
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        shape = sorted(body)[:6] if isinstance(body, dict) else type(body).__name__
        raise FatalError(f"{resource}: expected Exact's list answer {{'d': {{'results': [...]}}}}, got {shape}")
    return items
