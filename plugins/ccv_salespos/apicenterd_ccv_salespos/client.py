"""The CCV Shop REST API client: endpoints, HMAC request signing, start/size paging, status → errors."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from apicenterd import ConnectorError, FatalError, RateLimited, json_body
from apicenterd.kit import Page, classify, each_item, not_found_by_path, paginate_next_link

__all__ = [
    "API_PREFIX",
    "WEBSHOP_MEDIA_TYPE",
    "SALESPOS_MEDIA_TYPE",
    "MAX_PAGE_SIZE",
    "signature",
    "format_x_date",
    "resource_of",
    "not_found_means",
    "CCVAuth",
    "error_from_response",
    "CCVClient",
]

API_PREFIX = "/api/rest/v1/"
WEBSHOP_MEDIA_TYPE = "application/vnd.verto.webshop+json"
SALESPOS_MEDIA_TYPE = "application/vnd.verto.salespos+json"
MAX_PAGE_SIZE = 250
"""Largest ``size`` per page (one source, LOW-MED confidence)."""


def signature(private_key: str, public_key: str, method: str, uri: str, body: bytes | str, x_date: str) -> str:
    """Lowercase hex HMAC-SHA512 of ``public|METHOD|uri|body|x-date`` keyed with the private key."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    message = f"{public_key}|{method.upper()}|{uri}|".encode() + body + f"|{x_date}".encode()
    return hmac.new(private_key.encode("utf-8"), message, hashlib.sha512).hexdigest()


def format_x_date(moment: datetime) -> str:
    """The ``x-date`` header value: ISO-8601 UTC as PHP's ``date('c')`` writes it."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def resource_of(path: str) -> str:
    """The resource a path addresses: its last non-numeric segment (``/orders/3/orderrows/`` → orderrows)."""
    segments = [s for s in path.split("/") if s]
    for segment in reversed(segments):
        if not segment.isdigit():
            return segment
    return ""


def not_found_means(path: str) -> Literal["record", "config"]:
    """What a 404 on ``path`` means: a path with an id (``orders/3/``, ``orders/3/orderrows/``)
    names a record that is not there; one without (``products/``) must exist, so the
    configuration (``base_url``) is wrong."""
    return not_found_by_path(path)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class CCVAuth(httpx.Auth):
    """Signs each request with ``x-public``/``x-date``/``x-hash`` over the exact path+query and body sent,
    and checks the server's signature on every 2xx response."""

    requires_request_body = True
    requires_response_body = True

    def __init__(
        self,
        public_key: str,
        private_key: str,
        *,
        verify_responses: bool = True,
        clock: Callable[[], datetime] = _utcnow,
    ):
        self.public_key = public_key
        self._private_key = private_key
        self.verify_responses = verify_responses
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the signature headers, send, and verify the response signature."""
        uri = request.url.raw_path.decode("ascii")
        x_date = format_x_date(self._clock())
        request.headers["x-public"] = self.public_key
        request.headers["x-date"] = x_date
        request.headers["x-hash"] = signature(self._private_key, self.public_key, request.method, uri, request.content, x_date)
        response = yield request
        if self.verify_responses and response.is_success:
            self._verify(request.method, uri, response)

    def _verify(self, method: str, uri: str, response: httpx.Response) -> None:
        x_date, x_hash = response.headers.get("x-date"), response.headers.get("x-hash")
        where = f"{method} {uri}"
        if not x_date or not x_hash:
            raise FatalError(
                f"{where}: response is not signed (x-date/x-hash missing); "
                "set verify_response_signature = false only if this server never signs",
                status=response.status_code,
            )
        expected = signature(self._private_key, self.public_key, method, uri, response.content, x_date)
        if not hmac.compare_digest(expected, x_hash.lower()):
            raise FatalError(
                f"{where}: response signature (x-hash) does not match; wrong private key, or the response was altered",
                status=response.status_code,
            )


def _seconds_to_next_minute(now: datetime) -> float:
    return 60.0 - (now.second + now.microsecond / 1_000_000)


def _ccv_message(response: httpx.Response) -> tuple[str, str | None]:
    """CCV's ``developermessage`` and ``code`` from an error body (its reason phrase without one)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    code = message = None
    if isinstance(body, dict):
        code = None if body.get("code") is None else str(body["code"])
        message = body.get("developermessage")
    if message is None:
        message = response.text[:120] if body is None and response.content else response.reason_phrase
    return f"{message}" + (f" [CCV code {code}]" if code else ""), code


def error_from_response(
    response: httpx.Response,
    what: str,
    *,
    now: datetime | None = None,
    not_found: Literal["record", "config"] | None = None,
) -> ConnectorError:
    """The apicenterd error for a failed CCV response, with the vendor's ``code`` and ``developermessage``
    (classified by :func:`apicenterd.kit.classify`; a 404 as ``not_found`` says, by default
    :func:`not_found_means` of the request's path)."""
    if not_found is None:
        not_found = not_found_means(response.request.url.path)
    error = classify(response, what, not_found=not_found, message=_ccv_message)
    if error is None:  # a success is no error: the caller asked wrongly
        raise ValueError(f"{what}: HTTP {response.status_code} is not a failure")
    if isinstance(error, RateLimited) and error.retry_after is None:
        # no Retry-After from CCV (UNKNOWN whether it ever sends one): its windows are per minute
        error.retry_after = _seconds_to_next_minute(now or _utcnow())
    return error


class CCVClient:
    """The endpoints the connector uses, on top of an authenticated httpx client rooted at ``/api/rest/v1/``."""

    def __init__(self, http: httpx.AsyncClient, *, page_size: int = 100):
        self.http = http
        self.page_size = min(page_size, MAX_PAGE_SIZE)
        self._api_path = http.base_url.raw_path.decode("ascii")

    async def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        parse_float: Callable[[str], Any] = Decimal,
    ) -> Any:
        """Send one request; the parsed JSON body (None for an empty body; numbers with a fraction
        by ``parse_float``), or the classified error."""
        # timeouts and broken connections, also mid-body, arrive as RetryableError from the
        # daemon's transport (apicenterd.ConnectionContext.http_client)
        response = await self.http.request(method, url, params=params, json=json)
        if not response.is_success:
            raise error_from_response(response, what)
        if not response.content:
            return None
        return json_body(response, what, parse_float=parse_float)

    async def get_one(self, url: str, *, what: str) -> dict[str, Any]:
        """GET one resource and check it is a JSON object."""
        body = await self.request("GET", url, what=what)
        if not isinstance(body, dict):
            raise FatalError(f"{what}: expected a JSON object, got {type(body).__name__}")
        return body

    def _follow(self, link: str, what: str) -> str:
        """A ``next`` link as a URL relative to the API root: scheme and host stripped, path and query kept."""
        parts = urlsplit(link)
        if not parts.path.startswith(self._api_path):
            raise FatalError(f"{what}: next link {link!r} is outside the API root {self._api_path!r}")
        relative = parts.path[len(self._api_path):]
        return f"{relative}?{parts.query}" if parts.query else relative

    async def pages(
        self, url: str, *, what: str, params: dict[str, Any] | None = None, parse_float: Callable[[str], Any] = Decimal
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The pages of a collection: the first by ``start``/``size``, the rest by its ``next`` links
        (:func:`apicenterd.kit.paginate_next_link`: a link followed before is a loop)."""
        first = {**(params or {}), "start": 0, "size": self.page_size}

        async def fetch(link: str | None) -> Page[dict[str, Any]]:
            path, query = (url, first) if link is None else (self._follow(link, what), None)
            body = await self.request("GET", path, what=what, params=query, parse_float=parse_float)
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise FatalError(f"{what}: GET {url} did not return a collection ({{items: [...], next: ...}})")
            for item in body["items"]:
                if not isinstance(item, dict):
                    raise FatalError(f"{what}: GET {url} returned an item that is not an object: {item!r:.80}")
            return Page(body["items"], next=body.get("next") or None)

        async for items in paginate_next_link(fetch, endpoint=f"{what} (GET {url})"):
            yield list(items)

    def collection(
        self, url: str, *, what: str, params: dict[str, Any] | None = None, parse_float: Callable[[str], Any] = Decimal
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Every item of a collection, page by page (see :meth:`pages`)."""
        return each_item(self.pages(url, what=what, params=params, parse_float=parse_float))

    def products(
        self, *, orderby: str = "id", parse_float: Callable[[str], Any] = Decimal, **filters: Any
    ) -> AsyncGenerator[dict[str, Any], None]:
        """``GET /products/`` with ``orderby`` and list filters (e.g. ``productnumber``); ``parse_float=str``
        keeps numbers with a fraction as their text (for :func:`mapping.to_decimal`, which reads both)."""
        return self.collection("products/", what="products", params={"orderby": orderby, **filters}, parse_float=parse_float)

    def orders(self, **filters: Any) -> AsyncGenerator[dict[str, Any], None]:
        """``GET /orders/`` with list filters (``status``, ``is_completed``, ...)."""
        return self.collection("orders/", what="orders", params=filters)

    def order_rows(self, order_id: int | str) -> AsyncGenerator[dict[str, Any], None]:
        """``GET /orders/:id/orderrows/``."""
        return self.collection(f"orders/{order_id}/orderrows/", what=f"order {order_id} rows")

    async def order(self, order_id: int | str) -> dict[str, Any]:
        """``GET /orders/:id/``."""
        return await self.get_one(f"orders/{order_id}/", what=f"order {order_id}")

    async def patch_order(self, order_id: int | str, body: dict[str, Any]) -> None:
        """``PATCH /orders/:id/`` (204): status, track & trace, ``mail``, ``note``."""
        await self.request("PATCH", f"orders/{order_id}/", what=f"order {order_id}", json=body)
