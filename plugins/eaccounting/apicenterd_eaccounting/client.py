"""The eAccounting API v2 over HTTP: JSON with exact decimals, OData paging, errors sorted for the runner."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal

import httpx

from apicenterd import ConnectorError, FatalError, RateLimited, error_for_status, parse_retry_after
from apicenterd.kit import Page, not_found_by_path, odata_or_filters, odata_string, paginate_page_number

__all__ = [
    "EAccountingClient",
    "endpoint_key",
    "not_found_means",
    "odata_string",
    "error_from",
    "retry_after_seconds",
    "cursor_of",
    "filter_since",
]

_GUID = re.compile(r"/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?=/|$)")
_IS_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?) second", re.IGNORECASE)
_FIELD = re.compile(r"(?:^|;)\s*([A-Za-z][\w.\[\]]*)\s*:|\bThe field (\w+)\b")

MAX_KEYS_PER_FILTER = 25
"""Keys per ``or`` filter at most (besides the URL length the kit keeps under its maximum)."""

RATE_LIMIT_CODE = 4010
VALIDATION_CODE = 2000


def endpoint_key(request: httpx.Request) -> str:
    """The endpoint eAccounting counts a request against: its path with ids collapsed
    (``/v2/articles/<guid>`` → ``/v2/articles``)."""
    path = _GUID.sub("", request.url.path).rstrip("/")
    return path.lower() or "/"


def not_found_means(path: str) -> Literal["record", "config"]:
    """What a 404 on ``path`` means: a path with an id (``/v2/articles/<guid>``) names a record
    that is not there; one without (``/v2/articles``, ``/v2/companysettings``) must exist, so
    the configuration (``base_url``) is wrong."""
    return not_found_by_path(path, is_id=lambda segment: _IS_GUID.fullmatch(segment) is not None)


def _parse_time(value: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 time, got {value!r:.40}")
    when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    # eAccounting's *Utc fields may come without an offset; they are UTC by name
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def cursor_of(changed_utc: str) -> str:
    """A ``ChangedUtc`` value as a cursor string that sorts like the time it names."""
    return _parse_time(changed_utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def filter_since(cursor: str, field: str = "ChangedUtc") -> str:
    """The ``$filter`` for records changed at or after ``cursor`` (floored to the second, so
    nothing on the boundary is missed; the engine skips what it already has)."""
    when = _parse_time(cursor).replace(microsecond=0)
    # the year zero-padded: strftime's %Y gives "1" for year 1 (the floor cursor after a run that
    # settled nothing past its start), which the API cannot read
    return f"{field} ge {when.year:04d}-{when.strftime('%m-%dT%H:%M:%SZ')}"


def retry_after_seconds(response: httpx.Response, message: str) -> float | None:
    """Seconds to wait after a 429: ``Retry-After`` if sent, else "Try again in N seconds" from the body."""
    header = parse_retry_after(response.headers.get("Retry-After"))
    if header is not None:
        return header
    match = _TRY_AGAIN.search(message or "")
    return parse_retry_after(match.group(1)) if match else None


def _decode(response: httpx.Response) -> Any:
    """JSON with every non-integer number as Decimal (money never passes through float)."""
    return json.loads(response.content, parse_float=Decimal)


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        # callers quantize to cents first; 2-decimal amounts below 1e13 round-trip exactly
        return float(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def error_from(
    response: httpx.Response, what: str, *, not_found: Literal["record", "config"] | None = None
) -> ConnectorError:
    """The apicenterd error for a failed response, with eAccounting's ErrorCode, message and ErrorId
    (a 404 as ``not_found`` says, by default :func:`not_found_means` of the request's path)."""
    try:
        body = _decode(response)
    except ValueError:
        body = None
    if isinstance(body, Mapping) and ("ErrorCode" in body or "DeveloperErrorMessage" in body):
        code = body.get("ErrorCode")
        message = str(body.get("DeveloperErrorMessage") or "").strip()
        detail = f"eAccounting error {code}: {message}" if code is not None else f"eAccounting: {message}"
        if body.get("ErrorId"):
            detail += f" (ErrorId {body['ErrorId']})"
    else:
        code, message = None, ""
        detail = f"eAccounting answered {response.text[:200]!r}" if response.text else "eAccounting sent no body"
    vendor_code = str(code) if code is not None else None
    text = f"{what}: {detail}"
    if response.status_code == 429 or code == RATE_LIMIT_CODE:
        return RateLimited(
            f"{text} (HTTP {response.status_code} {response.request.method} {response.request.url.path})",
            retry_after=retry_after_seconds(response, message),
            status=response.status_code,
            vendor_code=vendor_code,
        )
    if response.status_code == 400 and message:
        names = {next(g for g in m.groups() if g) for m in _FIELD.finditer(message)}
        # "Rows[0].Quantity: The field Quantity ..." names one property, not two
        fields = sorted(n for n in names if not any(other.endswith(f".{n}") for other in names))
        if fields:
            text = f"{what}: eAccounting rejected {', '.join(fields)} ({detail})"
    if not_found is None:
        not_found = not_found_means(response.request.url.path)
    return error_for_status(response, text, vendor_code=vendor_code, not_found=not_found)


class EAccountingClient:
    """Calls the eAccounting API v2 through an (authenticated, rate-limited) httpx client."""

    def __init__(self, http: httpx.AsyncClient, *, page_size: int = 100):
        self.http = http
        self.page_size = page_size

    async def aclose(self) -> None:
        """Close the underlying HTTP client."""
        await self.http.aclose()

    async def request(
        self, method: str, path: str, *, what: str, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Any:
        """Send one request; the decoded JSON body, or the error for a failed response."""
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, default=_encode).encode()
        # timeouts and broken connections, also mid-body, arrive as RetryableError from the
        # daemon's transport (apicenterd.ConnectionContext.http_client)
        response = await self.http.request(method, path, params=params, content=content, headers=headers)
        if not response.is_success:
            raise error_from(response, what)
        try:
            return _decode(response)
        except ValueError as exc:
            raise FatalError(
                f"{what}: response is not JSON ({exc}); body starts {response.text[:120]!r} "
                f"(HTTP {response.status_code} {method} {path})",
                status=response.status_code,
            ) from None

    async def get(self, path: str, *, what: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path``."""
        return await self.request("GET", path, what=what, params=params)

    async def post(self, path: str, body: Any, *, what: str) -> Any:
        """POST ``body`` to ``path``."""
        return await self.request("POST", path, what=what, body=body)

    async def put(self, path: str, body: Any, *, what: str) -> Any:
        """PUT ``body`` to ``path``."""
        return await self.request("PUT", path, what=what, body=body)

    async def get_object(self, path: str, *, what: str) -> dict[str, Any]:
        """GET a single object; FatalError if the answer is not one."""
        body = await self.get(path, what=what)
        if not isinstance(body, dict):
            raise FatalError(f"{what}: expected a JSON object from GET {path}, got {type(body).__name__}")
        return body

    async def pages(
        self, path: str, *, what: str, params: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield the ``Data`` of each page of a paginated list, following ``Meta.TotalNumberOfPages``
        (:func:`apicenterd.kit.paginate_page_number`: a page that repeats the previous one's
        items, or a ``CurrentPage`` that does not advance, is a loop: FatalError)."""
        size = page_size or self.page_size

        async def fetch(page: int) -> Page[dict[str, Any]]:
            query = {**(params or {}), "$page": page, "$pagesize": size}
            body = await self.get(path, what=f"{what} (page {page})", params=query)
            meta, data = self._envelope(body, f"{what} (page {page})")
            total = meta.get("TotalNumberOfPages")
            if not isinstance(total, int) or isinstance(total, bool):
                raise FatalError(f"{what}: GET {path} page {page} has no Meta.TotalNumberOfPages")
            current = meta.get("CurrentPage")
            number = current if isinstance(current, int) and not isinstance(current, bool) else None
            return Page(data, total_pages=total, number=number)

        async for data in paginate_page_number(fetch, endpoint=f"{what}: GET {path}", key=lambda item: item.get("Id")):
            yield list(data)

    async def all(self, path: str, *, what: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a paginated list."""
        items: list[dict[str, Any]] = []
        async for data in self.pages(path, what=what, params=params):
            items.extend(data)
        return items

    async def first(self, path: str, odata_filter: str, *, what: str) -> list[dict[str, Any]]:
        """The first page of items matching ``odata_filter`` (lookups by a key expect one or none)."""
        async for data in self.pages(path, what=what, params={"$filter": odata_filter}):
            return data
        return []  # pragma: no cover - pages() always yields at least once

    async def matching(
        self, path: str, field: str, keys: Sequence[str], *, what: str, max_keys: int = MAX_KEYS_PER_FILTER
    ) -> dict[str, dict[str, Any]]:
        """The items of list ``path`` whose ``field`` equals one of ``keys`` exactly, by key: one
        call per :func:`apicenterd.kit.odata_or_filters` filter (``or`` in ``$filter`` is
        documented by Visma, unverified against the live API). Keys without a match are absent."""
        found: dict[str, dict[str, Any]] = {}
        for expression, covered in odata_or_filters(field, keys, max_keys=max_keys):
            wanted = set(covered)
            async for data in self.pages(path, what=f"{len(covered)} {what} by {field}", params={"$filter": expression}):
                for item in data:
                    value = item.get(field)
                    if isinstance(value, str) and value in wanted:  # exact matches only (the server may ignore case)
                        found[value] = item
        return found

    @staticmethod
    def _envelope(body: Any, what: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if not isinstance(body, dict) or not isinstance(body.get("Meta"), dict) or not isinstance(body.get("Data"), list):
            shape = sorted(body) if isinstance(body, dict) else type(body).__name__
            raise FatalError(f"{what}: expected a {{Meta, Data}} page, got {shape}")
        if not all(isinstance(item, dict) for item in body["Data"]):
            raise FatalError(f"{what}: Data holds something other than objects")
        return body["Meta"], body["Data"]
