"""The MplusQapi over HTTP: one SOAP call per request, faults and result codes sorted for the runner.

Authentication is ``ident`` and ``secret`` as URL query parameters on every call (the vendor's
way, see the README); the daemon's HTTP client never logs a query, and every error here names
the operation, never the URL. Calls are bounded by the connection's ``max_concurrency``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal

import anyio
import httpx

from apicenterd import (
    AuthError,
    ConnectorError,
    FatalError,
    RateLimited,
    RecordError,
    RetryableError,
    error_for_status,
    parse_retry_after,
)
from apicenterd.kit import PageGuard

from . import soap

__all__ = ["MplusClient", "fault_error", "result_error", "SYNC_MARKER_WIDTH", "cursor_of", "marker_of"]

SYNC_MARKER_WIDTH = 20
"""Digits of a sync-marker cursor (zero-padded so cursors sort as the numbers do; an xsd:long fits)."""

RESPONSE_NAMES = {"findOrder": "GetOrderResponse"}
"""Operations whose answer element is not ``<operation>Response`` (case aside), as the WSDL names them."""

_AUTH_WORDS = re.compile(r"\b(auth\w*|ident|secret|credential\w*|unauthori[sz]ed|forbidden|access denied|permission)\b", re.I)
_BAD_REQUEST_WORDS = re.compile(
    r"valid|constraint|not expected|expected|required|unknown element|missing|malformed|data type|not found|no such", re.I
)


def cursor_of(marker: int) -> str:
    """A sync marker as a cursor that sorts like the number."""
    return str(max(marker, 0)).zfill(SYNC_MARKER_WIDTH)


def marker_of(cursor: str | None) -> int | None:
    """The sync marker in a cursor (None: from the beginning); FatalError for a cursor that is not one."""
    if cursor is None or cursor == "":
        return None
    if not cursor.isdigit():
        raise FatalError(f"the stored cursor {cursor!r:.40} is not a MplusKASSA sync marker (digits only)")
    return int(cursor)


def fault_error(fault: soap.SoapFault, what: str, *, status: int | None, record: bool) -> ConnectorError:
    """The error for a SOAP fault: a rejected ident/secret → AuthError; a ``Client`` fault or a
    ``Server`` fault saying the request is invalid → RecordError for a write of one record
    (``record``), FatalError for a read (the connector's request is wrong: every run would fail
    the same way); any other ``Server`` fault → RetryableError."""
    text = f"{what}: MplusKASSA SOAP fault {fault.code}: {fault.message}" + (f" ({fault.detail[:200]})" if fault.detail else "")
    if status in (401, 403) or _AUTH_WORDS.search(fault.message):
        return AuthError(f"{text}; check the connection's ident and secret", status=status, vendor_code=fault.code)
    client_side = fault.code.lower() in ("client", "sender", "versionmismatch", "mustunderstand")
    if client_side or _BAD_REQUEST_WORDS.search(fault.message):
        if record:
            return RecordError(text, status=status, vendor_code=fault.code)
        return FatalError(text, status=status, vendor_code=fault.code)
    return RetryableError(text, status=status, vendor_code=fault.code)


def result_error(result: str | None, message: str | None, what: str) -> RecordError:
    """The RecordError for a result code other than OK, with the vendor's ``errorMessage``."""
    detail = f": {message.strip()}" if message and message.strip() else ""
    return RecordError(f"{what}: MplusKASSA answered {result or '(no result)'}{detail}", vendor_code=result)


class MplusClient:
    """Calls MplusQapi operations through the connection's (rate-limited) httpx client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        ident: str,
        secret: str,
        max_concurrency: int = 2,
        soap_action: Literal["operation", "empty"] = "operation",
    ):
        self.http = http
        self._params = {"ident": ident, "secret": secret}
        self._limiter = anyio.CapacityLimiter(max_concurrency)
        self._soap_action = soap_action
        self.calls = 0

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    async def call(self, operation: str, body: Mapping[str, Any] | None = None, *, what: str, record: bool = False) -> dict[str, Any]:
        """Send ``operation`` with ``body``; the answer's content as a dict. ``record``: the call
        writes one record, so a fault about the request is a RecordError (else FatalError)."""
        content = soap.envelope(operation, body or {})
        action = operation if self._soap_action == "operation" else ""
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"', "Accept": "text/xml"}
        async with self._limiter:
            self.calls += 1
            # timeouts and lost connections arrive as RetryableError from the daemon's transport
            response = await self.http.post("/", params=self._params, content=content, headers=headers)
        return self._answer(response, operation, what=what, record=record)

    def _answer(self, response: httpx.Response, operation: str, *, what: str, record: bool) -> dict[str, Any]:
        status = response.status_code
        if status == 429:
            raise RateLimited(
                f"{what}: MplusKASSA answered 429 Too Many Requests ({operation})",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                status=status,
            )
        try:
            name, content = soap.read_envelope(response.content)
        except soap.SoapFault as fault:
            raise fault_error(fault, what, status=status, record=record) from None
        except soap.SoapError as exc:
            if status in (401, 403):
                raise AuthError(f"{what}: MplusKASSA refused the ident/secret (HTTP {status}, {operation})", status=status) from None
            if not response.is_success:
                raise error_for_status(
                    response,
                    f"{what}: MplusKASSA answered HTTP {status} without a SOAP envelope ({exc})",
                    not_found="config",
                ) from None
            raise FatalError(f"{what}: {operation}: {exc}; the answer starts {response.text[:120]!r}", status=status) from None
        if status in (401, 403):
            raise AuthError(f"{what}: MplusKASSA refused the ident/secret (HTTP {status}, {operation})", status=status)
        if not response.is_success:
            raise error_for_status(response, f"{what}: MplusKASSA answered HTTP {status} ({operation})", not_found="config")
        expected = RESPONSE_NAMES.get(operation, f"{operation}Response")
        if name.lower() != expected.lower():
            raise FatalError(f"{what}: {operation} was answered with {name!r}, expected {expected}")
        return content

    async def sync_pages(
        self,
        operation: str,
        body: Callable[[int | None, int], Mapping[str, Any]],
        *,
        container: str,
        item: str,
        since: int | None,
        limit: int,
        what: str,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of a "changes since sync marker" listing: ``body(marker, limit)`` asks for the
        items after ``marker`` (None: from the beginning), ``container``/``item`` name the list in
        the answer. Each page is sorted by ``syncMarker``; the next asks after the highest
        marker seen; a short page ends the listing. A marker that does not advance is a loop
        (FatalError), as is an item without a ``syncMarker``."""
        guard = PageGuard(f"{what}: {operation}", key=lambda entry: entry.get("syncMarker"))
        marker = since
        while True:
            answer = await self.call(operation, body(marker, limit), what=f"{what} after sync marker {marker or 0}")
            items = [i for i in soap.many(soap.one(answer, container) if container else answer, item) if isinstance(i, dict)]
            try:
                items.sort(key=lambda entry: _marker(entry))
            except ValueError as exc:
                raise FatalError(f"{what}: {operation}: {exc}") from None
            guard.page(items)
            yield items
            if len(items) < limit:
                return
            highest = _marker(items[-1])
            if marker is not None and highest <= marker:
                raise FatalError(f"{what}: {operation}: the sync marker does not advance past {marker}; stopped rather than read forever")
            marker = highest


def _marker(item: Mapping[str, Any]) -> int:
    value = soap.to_int(item, "syncMarker")
    if value is None:
        raise ValueError("an item has no syncMarker")
    return value
