"""The Visma.net ERP API over HTTP: Visma Connect tokens, pageNumber/pageSize paging,
``lastModifiedDateTime`` deltas, 201 + ``Location`` creates, errors sorted for the runner."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import anyio
import httpx

from apicenterd import AuthError, ConnectorError, FatalError, RateLimited, RecordError, RetryableError, parse_retry_after
from apicenterd.kit import Page, error_for_status, paginate_page_number

__all__ = [
    "OPERATION_SCOPES",
    "SERVICE_API",
    "INTERACTIVE_API",
    "ClientCredentialsAuth",
    "scope_for",
    "scopes_for",
    "VismaNetClient",
    "cursor_of",
    "error_from",
    "id_from_location",
    "since_params",
    "vendor_time",
]

TOKEN_MARGIN = 60.0
"""Seconds before its expiry an access token is replaced (a request in flight must not outlive it)."""
DEFAULT_TOKEN_TTL = 3600.0
"""Seconds an access token is taken to live when the token answer does not say (unverified: about 1 h)."""


SERVICE_API = "vismanet_erp_service_api"
INTERACTIVE_API = "vismanet_erp_interactive_api"

OPERATION_SCOPES: dict[str, str] = {"GET": "read", "POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}
"""The one table of HTTP method (operation) → Visma Connect scope suffix (``<api>:<suffix>``).
Every scope the connector asks for, and every "missing scope" message, is derived from it."""


def scope_for(method: str, api: str) -> str:
    """The scope ``api`` (``vismanet_erp_service_api`` or ``..._interactive_api``) needs for ``method``."""
    return f"{api}:{OPERATION_SCOPES.get(method.upper(), 'read')}"


def scopes_for(methods: Any, api: str) -> tuple[str, ...]:
    """The scopes for the operations ``methods``, once each, in the order read, create, update, delete."""
    return _ordered({scope_for(m, api) for m in methods}, api)


def _ordered(scopes: Any, api: str) -> tuple[str, ...]:
    order = dict.fromkeys(f"{api}:{suffix}" for suffix in OPERATION_SCOPES.values())
    return tuple(s for s in order if s in scopes)


class ClientCredentialsAuth(httpx.Auth):
    """Visma Connect client credentials for a *service* app: ``grant_type=client_credentials`` with
    the ``tenant_id`` of the company and the scopes; no refresh token, so a new access token is
    asked for when the last one is about to expire (or the API answers 401 once).

    ``scopes`` None: the scopes follow the use. The first token asks only for the scope of the
    first call's operation (:data:`OPERATION_SCOPES`); a call needing a scope the token was not
    asked with gets a new token asking for both. A connection only read from never asks for more
    than ``:read``."""

    requires_response_body = True

    def __init__(
        self,
        *,
        token_client: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        tenant_id: str,
        scopes: tuple[str, ...] | None,
        clock: Callable[[], float] = time.time,
        api: str = SERVICE_API,
    ):
        self._client, self._url = token_client, token_url
        self.api, self.fixed = api, scopes is not None
        self.wanted: tuple[str, ...] = tuple(scopes or ())
        self.asked: tuple[str, ...] = ()  # the scopes the current token was asked with
        self.granted: frozenset[str] | None = None  # the token answer's ``scope`` (None: it did not say)
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "tenant_id": tenant_id,
        }
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = anyio.Lock()
        self.token_requests = 0

    async def _fresh(self, *, stale: str | None = None, need: str | None = None) -> str:
        async with self._lock:  # one token request for all concurrent calls
            if need is not None and not self.fixed and need not in self.wanted:
                self.wanted = _ordered({*self.wanted, need}, self.api)
            if (
                self._token
                and self._token != stale
                and set(self.wanted) <= set(self.asked)
                and self._clock() < self._expires_at - TOKEN_MARGIN
            ):
                return self._token
            self.token_requests += 1
            asked = self.wanted
            try:
                response = await self._client.post(
                    self._url, data={**self._form, "scope": " ".join(asked)}, headers={"Accept": "application/json"}
                )
            except httpx.HTTPError as exc:
                raise RetryableError(f"Visma Connect token request to {self._url} failed: {type(exc).__name__}") from None
            if response.status_code >= 500 or response.status_code == 429:
                raise RetryableError(f"Visma Connect token endpoint answered HTTP {response.status_code}", status=response.status_code)
            body = _json_or_none(response)
            if response.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
                error = body.get("error") if isinstance(body, dict) else None
                raise AuthError(
                    f"Visma Connect refused the client credentials (tenant {self._form['tenant_id']!r}): HTTP "
                    f"{response.status_code} {error or response.text[:120]!r}; check client_id, client_secret, tenant_id "
                    f"and that the service app is approved for this tenant with the scopes {' '.join(asked)}",
                    status=response.status_code,
                    vendor_code=str(error) if error else None,
                    reauthorize=False,  # client credentials: the settings or the portal are the fix, not `apicenterd auth`
                )
            try:
                ttl = float(body.get("expires_in") or DEFAULT_TOKEN_TTL)
            except (TypeError, ValueError):
                ttl = DEFAULT_TOKEN_TTL
            self._token, self.asked = body["access_token"], asked
            granted = body.get("scope")
            self.granted = frozenset(granted.split()) if isinstance(granted, str) else None
            self._expires_at = self._clock() + (ttl if 0 < ttl < 1e9 else DEFAULT_TOKEN_TTL)
            return self._token

    async def async_auth_flow(self, request: httpx.Request) -> Any:
        token = await self._fresh(need=scope_for(request.method, self.api))
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {await self._fresh(stale=token)}"
            yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("ClientCredentialsAuth is async only")


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError:
        return None


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)  # amounts are quantized before; up to 1e13 they round-trip exactly
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


# -- time ------------------------------------------------------------------------------------


def vendor_time(value: Any, zone: ZoneInfo) -> datetime:
    """A Visma.net timestamp as an aware UTC datetime: one without an offset is in the company's
    time zone ``zone`` (the 2017 swagger types them date-time but the API sends no zone)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected an ISO-8601 time, got {value!r:.40}")
    when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.astimezone(timezone.utc)


def cursor_of(value: Any, zone: ZoneInfo) -> str:
    """A ``lastModifiedDateTime`` as a cursor that sorts like the instant it names (UTC)."""
    return vendor_time(value, zone).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def since_params(cursor: str, zone: ZoneInfo) -> dict[str, str]:
    """The delta parameters for "changed at or after ``cursor``": ``lastModifiedDateTime`` in the
    company's local time, in one of the formats the spec accepts (``yyyy-MM-ddTHH:mm:ss.FFF``),
    with ``lastModifiedDateTimeCondition=>=`` (ties are read again; the engine skips them)."""
    when = datetime.strptime(cursor, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).astimezone(zone)
    when = when.replace(microsecond=(when.microsecond // 1000) * 1000)  # floor: nothing on the boundary is missed
    return {
        "lastModifiedDateTime": f"{when.year:04d}-" + when.strftime("%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}",
        "lastModifiedDateTimeCondition": ">=",
    }


# -- errors ---------------------------------------------------------------------------------


def _message(body: Any) -> tuple[str, str | None]:
    """Visma.net's error body ``{"ExceptionType", "ExceptionMessage", "ExceptionFaultCode",
    "ExceptionMessageID", "ExceptionDetails"}`` (also ``{"message": ...}`` from the gateway)."""
    if isinstance(body, dict):
        message = body.get("ExceptionMessage") or body.get("message") or body.get("Message") or body.get("error_description")
        code = body.get("ExceptionFaultCode") or body.get("code") or body.get("error")
        if message:
            text = str(message).strip()
            details = body.get("ExceptionDetails")
            if isinstance(details, str) and details.strip() and details.strip() != text:
                text = f"{text} ({details.strip()[:200]})"
            if body.get("ExceptionMessageID"):
                text = f"{text} [ExceptionMessageID {body['ExceptionMessageID']}]"
            return text, str(code) if code is not None else None
    return "", None


def _reset_seconds(response: httpx.Response) -> float | None:
    """Seconds until the window resets, from ``X-RateLimit-Reset`` (seconds; a Unix time read
    against the answer's ``Date``/the clock)."""
    raw = response.headers.get("X-RateLimit-Reset")
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    if value is None or not 0 <= value < float("inf"):
        return None
    if value > 1e9:  # a Unix time
        value = max(0.0, value - time.time())
    return value


def error_from(response: httpx.Response, what: str) -> ConnectorError:
    """The apicenterd error for a failed Visma.net answer: 401/403 AuthError, 429 RateLimited (its
    ``Retry-After``, else ``X-RateLimit-Reset``), 5xx RetryableError, 400/404/409/422 RecordError
    with the vendor's message; a 404 on a collection path (no id) is a FatalError (``base_url``)."""
    body = _json_or_none(response)
    message, code = _message(body)
    detail = f"Visma.net: {message}" if message else (
        f"Visma.net answered {response.text[:200]!r}" if response.text else "Visma.net sent no body"
    )
    text = f"{what}: {detail}"
    if response.status_code == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        return RateLimited(
            f"{text} (HTTP 429 {response.request.method} {response.request.url.path})",
            retry_after=wait if wait is not None else _reset_seconds(response),
            status=429,
            vendor_code=code,
        )
    path = response.request.url.path.rstrip("/")
    collection = path.rsplit("/", 1)[-1].lower() in COLLECTIONS
    return error_for_status(response, text, vendor_code=code, not_found="config" if collection else "record")


COLLECTIONS = frozenset(
    {"customer", "inventory", "salesorder", "salesorderbasic", "customerinvoice", "journaltransaction", "inventorysummary"}
)


def id_from_location(location: str | None, what: str) -> str:
    """The new record's id: the last path segment of the 201's ``Location``."""
    if not location:
        raise FatalError(f"{what}: Visma.net confirmed the create (201) without a Location header")
    segment = location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    if not segment:
        raise FatalError(f"{what}: no id in the Location {location!r}")
    return unquote(segment)


# -- the client -------------------------------------------------------------------------------


class VismaNetClient:
    """Calls the Visma.net ERP API (``{base_url}{api_path}/...``) through an authenticated, rate-limited httpx client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_path: str,
        page_size: int = 100,
        forbidden: Callable[[str, httpx.Response, str], ConnectorError | None] | None = None,
    ):
        self.http, self.api_path, self.page_size = http, api_path.rstrip("/"), page_size
        self.forbidden = forbidden
        """``forbidden(method, response, what)``: the error for a 403 that is a missing scope (None: not one)."""

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    def url(self, path: str) -> str:
        """``path`` (``customer/10001``) under the API root."""
        return f"{self.api_path}/{path.lstrip('/')}"

    async def send(
        self, method: str, path: str, *, what: str, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> httpx.Response:
        """One call; the response when it succeeded, else the classified error."""
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, default=_encode).encode()
        response = await self.http.request(method, self.url(path), params=params, content=content, headers=headers)
        if not response.is_success:
            if response.status_code == 403 and self.forbidden is not None:
                scope_error = self.forbidden(method, response, what)
                if scope_error is not None:
                    raise scope_error
            raise error_from(response, what)
        return response

    async def get(self, path: str, *, what: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET and decode (numbers as Decimal)."""
        response = await self.send("GET", path, what=what, params=params)
        body = _json_or_none(response)
        if body is None:
            raise FatalError(f"{what}: GET {self.url(path)} did not answer JSON; body starts {response.text[:120]!r}")
        return body

    async def get_or_none(self, path: str, *, what: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET one record; None when Visma.net answers 404 (it is not there)."""
        try:
            return await self.get(path, what=what, params=params)
        except RecordError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, path: str, body: Any, *, what: str) -> str:
        """POST ``body``; Visma.net answers 201 with the new record's URL in ``Location``: its id."""
        response = await self.send("POST", path, what=what, body=body)
        return id_from_location(response.headers.get("Location"), what)

    async def update(self, path: str, body: Any, *, what: str) -> None:
        """PUT ``body`` (only the wrapped fields it holds change; 204)."""
        await self.send("PUT", path, what=what, body=body)

    async def pages(
        self, path: str, *, what: str, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Each page of a list (``pageNumber`` from 1, ``pageSize``): an array of records, each with
        ``metadata: {totalCount, maxPageSize}`` in the current API. The read ends at an empty or
        short page (shorter than the page size, or than ``maxPageSize`` when the server caps the
        size asked for) or when ``totalCount`` records were read; a repeated page is a loop."""
        size = self.page_size
        seen = 0

        async def fetch(number: int) -> Page[dict[str, Any]]:
            nonlocal seen
            body = await self.get(path, what=f"{what} (page {number})", params={**(params or {}), "pageNumber": number, "pageSize": size})
            if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
                raise FatalError(f"{what}: GET {self.url(path)} page {number} is not a list of records ({type(body).__name__})")
            seen += len(body)
            meta = body[0].get("metadata") if body else None
            cap = size
            total = None
            if isinstance(meta, dict):
                if isinstance(meta.get("maxPageSize"), int) and meta["maxPageSize"] > 0:
                    cap = min(size, meta["maxPageSize"])
                if isinstance(meta.get("totalCount"), int):
                    total = meta["totalCount"]
            more = bool(body) and len(body) >= cap and (total is None or seen < total)
            return Page(body, more=more)

        async for data in paginate_page_number(fetch, endpoint=f"{what}: GET {self.url(path)}", key=_identity):
            yield list(data)


def _identity(item: dict[str, Any]) -> Any:
    for key in ("number", "inventoryNumber", "orderNo", "batchNumber", "referenceNumber", "internalId", "inventoryId"):
        if item.get(key) is not None:
            return (key, str(item[key]))
    return json.dumps(item, sort_keys=True, default=str)
