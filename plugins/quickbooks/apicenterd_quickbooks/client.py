"""The QuickBooks Online Accounting API v3 over HTTP: the query language with STARTPOSITION/MAXRESULTS
paging, change data capture, batches of up to 30 operations, and Intuit's ``Fault`` bodies (JSON or
XML) sorted into the error classes the runner acts on, with the ``intuit_tid`` of every failure."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import anyio
import httpx

from apicenterd import AuthError, ConnectorError, FatalError, RateLimited, RecordError, RetryableError, parse_retry_after

__all__ = [
    "BATCH_MAX",
    "QUERY_MAX",
    "QBOError",
    "QBOClient",
    "StaleObject",
    "Fault",
    "fault_of",
    "error_from",
    "query_string",
    "verify_webhook",
]

QUERY_MAX = 1000
"""MAXRESULTS at most (Intuit: 1000)."""
BATCH_MAX = 30
"""Operations per batch request at most (shared/api-specs README §4: use 30)."""
THROTTLE_WAIT = 60.0
"""Seconds to wait after a ThrottleExceeded without Retry-After (Intuit: wait 60 s)."""

THROTTLE_CODE = "3001"
STALE_CODE = "5010"
DUPLICATE_NAME_CODE = "6240"
DUPLICATE_DOC_NUMBER_CODE = "6140"
AUTH_CODES = frozenset({"100", "3100", "3200", "120"})
_NS = "{http://schema.intuit.com/finance/v3}"


@dataclasses.dataclass(frozen=True)
class FaultError:
    """One ``Fault.Error`` item."""

    code: str
    message: str
    detail: str = ""
    element: str = ""

    def text(self) -> str:
        parts = [f"error {self.code}" if self.code else "error", self.message]
        if self.detail and self.detail != self.message:
            parts.append(self.detail)
        if self.element:
            parts.append(f"(element {self.element})")
        return ": ".join(parts[:2]) + ("; " + "; ".join(parts[2:]) if parts[2:] else "")


@dataclasses.dataclass(frozen=True)
class Fault:
    """A ``Fault`` body: its ``type`` (ValidationFault, SystemFault, AuthenticationFault, SERVICE, ...) and errors."""

    type: str
    errors: tuple[FaultError, ...]

    @property
    def codes(self) -> set[str]:
        return {e.code for e in self.errors}

    def text(self) -> str:
        return f"{self.type or 'Fault'}: " + " | ".join(e.text() for e in self.errors)


class QBOError(RecordError):
    """A record-level fault (ValidationFault and the like), with the fault kept for callers."""

    def __init__(self, message: str, *, fault: Fault | None = None, status: int | None = None):
        code = next(iter(sorted(fault.codes)), None) if fault else None
        super().__init__(message, status=status, vendor_code=code)
        self.fault = fault


class StaleObject(QBOError):
    """Error 5010: the SyncToken sent is not the object's current one (someone else changed it)."""


def _fault_from_json(body: Any) -> Fault | None:
    if not isinstance(body, Mapping):
        return None
    fault = body.get("Fault") if "Fault" in body else body.get("fault")
    if not isinstance(fault, Mapping):
        return None
    raw = fault.get("Error") or fault.get("error") or []
    if isinstance(raw, Mapping):
        raw = [raw]
    errors = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, Mapping):
            errors.append(
                FaultError(
                    code=str(item.get("code") or item.get("Code") or ""),
                    message=str(item.get("Message") or item.get("message") or "").strip(),
                    detail=str(item.get("Detail") or item.get("detail") or "").strip(),
                    element=str(item.get("element") or ""),
                )
            )
    return Fault(type=str(fault.get("type") or ""), errors=tuple(errors))


def _fault_from_xml(root: ET.Element) -> Fault | None:
    node = root if root.tag in (f"{_NS}Fault", "Fault") else root.find(f"{_NS}Fault")
    if node is None:
        node = root.find("Fault")
    if node is None:
        return None
    errors = []
    for item in node:
        if item.tag.rsplit("}", 1)[-1] != "Error":
            continue

        def child(name: str, item: ET.Element = item) -> str:
            found = item.find(f"{_NS}{name}")
            if found is None:
                found = item.find(name)
            return (found.text or "").strip() if found is not None else ""

        errors.append(
            FaultError(code=item.get("code", ""), message=child("Message"), detail=child("Detail"), element=item.get("element", ""))
        )
    return Fault(type=node.get("type", ""), errors=tuple(errors))


def fault_of(response: httpx.Response | bytes) -> Fault | None:
    """The ``Fault`` of an error body, JSON (``{"Fault": {"Error": [...], "type": ...}}``) or XML
    (``<IntuitResponse><Fault type=...><Error code=...>``); None when the body holds none."""
    content = response.content if isinstance(response, httpx.Response) else response
    text = content.lstrip()
    if text.startswith(b"<"):
        try:
            return _fault_from_xml(ET.fromstring(text))  # noqa: S314 - a vendor's answer over TLS; no entities are resolved by ElementTree
        except ET.ParseError:
            return None
    try:
        return _fault_from_json(json.loads(content))
    except ValueError:
        return None


def intuit_tid(response: httpx.Response) -> str | None:
    """Intuit's transaction id of an answer (quote it to Intuit support)."""
    return response.headers.get("intuit_tid") or response.headers.get("intuit-tid")


def error_from(response: httpx.Response, what: str) -> ConnectorError:
    """The apicenterd error for a failed QuickBooks answer.

    * 429, or a Fault with code 3001 (ThrottleExceeded; older answers send it with 403) →
      :class:`RateLimited`, waiting ``Retry-After`` or 60 s;
    * 401, an AuthenticationFault or codes 100/120/3100/3200 → :class:`AuthError`;
    * 5xx, 408, SystemFault code 10000 → :class:`RetryableError`;
    * 5010 (stale SyncToken) → :class:`StaleObject`; other faults → :class:`QBOError` (one record).
    """
    fault = fault_of(response)
    status = response.status_code
    tid = intuit_tid(response)
    where = f"HTTP {status} {response.request.method} {response.request.url.path}" + (f", intuit_tid {tid}" if tid else "")
    detail = fault.text() if fault and fault.errors else (response.text[:200].strip() or response.reason_phrase)
    text = f"{what}: QuickBooks {detail} ({where})"
    codes = fault.codes if fault else set()
    if status == 429 or THROTTLE_CODE in codes or "ThrottleExceeded" in detail:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        return RateLimited(text, retry_after=THROTTLE_WAIT if wait is None else wait, status=status, vendor_code=THROTTLE_CODE)
    if status == 401 or (fault and fault.type.lower().startswith("authentication")) or codes & AUTH_CODES:
        return AuthError(text, status=status, vendor_code=next(iter(sorted(codes)), None))
    if status >= 500 or status in (408, 425) or "10000" in codes:
        return RetryableError(text, status=status, vendor_code=next(iter(sorted(codes)), None))
    if status == 403:
        return AuthError(text, status=status, vendor_code=next(iter(sorted(codes)), None))
    if STALE_CODE in codes:
        return StaleObject(text, fault=fault, status=status)
    return QBOError(text, fault=fault, status=status)


def query_string(value: str) -> str:
    """A string literal of the query language: single-quoted, quotes escaped with a backslash."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _decode(response: httpx.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


@dataclasses.dataclass(frozen=True)
class BatchResult:
    """One ``BatchItemResponse``: the entity written, or the fault of that operation."""

    bid: str
    entity: dict[str, Any] | None
    fault: Fault | None


class QBOClient:
    """Calls ``/v3/company/{realmId}/...`` through an (authenticated, rate-limited) httpx client,
    at most ``concurrency`` requests at once (Intuit: 10 concurrent per realm and app)."""

    def __init__(self, http: httpx.AsyncClient, *, realm_id: str, minorversion: int, concurrency: int = 10, log: Any = None):
        self.http = http
        self.realm_id = realm_id
        self.minorversion = minorversion
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.log = log

    async def aclose(self) -> None:
        await self.http.aclose()

    def path(self, resource: str) -> str:
        return f"/v3/company/{self.realm_id}/{resource}"

    async def request(
        self, method: str, resource: str, *, what: str, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> dict[str, Any]:
        """One request (``minorversion`` added); the JSON object answered, or the classified error."""
        query = {**(params or {}), "minorversion": str(self.minorversion)}
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, default=_encode).encode()
        async with self.limiter:
            response = await self.http.request(method, self.path(resource), params=query, content=content, headers=headers)
        if not response.is_success:
            error = error_from(response, what)
            if self.log is not None:
                self.log.warning(
                    "quickbooks_error", what=what, status=response.status_code, intuit_tid=intuit_tid(response), error=str(error)
                )
            raise error
        try:
            answer = _decode(response)
        except ValueError as exc:
            raise FatalError(f"{what}: QuickBooks answered no JSON ({exc}); body starts {response.text[:120]!r}") from None
        if not isinstance(answer, dict):
            raise FatalError(f"{what}: QuickBooks answered {type(answer).__name__}, not an object")
        fault = _fault_from_json(answer)
        if fault is not None and fault.errors:  # a 200 that carries a Fault
            raise QBOError(f"{what}: QuickBooks {fault.text()} (intuit_tid {intuit_tid(response)})", fault=fault, status=200)
        return answer

    async def query(self, statement: str, *, entity: str, what: str, page_size: int = QUERY_MAX) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of ``statement`` (``SELECT * FROM Item WHERE ...`` without paging clauses) by
        ``STARTPOSITION``/``MAXRESULTS`` (1-based; a page shorter than asked is the last)."""
        if not 1 <= page_size <= QUERY_MAX:
            raise ValueError(f"page_size must be 1..{QUERY_MAX}, got {page_size}")
        start = 1
        seen_first: set[str] = set()
        while True:
            sql = f"{statement} STARTPOSITION {start} MAXRESULTS {page_size}"
            answer = await self.request("GET", "query", what=f"{what} (from {start})", params={"query": sql})
            response = answer.get("QueryResponse")
            if not isinstance(response, dict):
                raise FatalError(f"{what}: the query answer has no QueryResponse object")
            items = response.get(entity, [])
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise FatalError(f"{what}: QueryResponse.{entity} is not a list of objects")
            first = str(items[0].get("Id")) if items else None
            if first is not None:
                if first in seen_first:
                    raise FatalError(f"{what}: STARTPOSITION {start} repeated a page already read (Id {first}); stopped")
                seen_first.add(first)
            yield items
            if len(items) < page_size:
                return
            start += page_size

    async def cdc(self, entities: Sequence[str], changed_since: str, *, what: str) -> dict[str, list[dict[str, Any]]]:
        """``GET cdc?entities=...&changedSince=...``: per entity, the changed objects (deleted ones
        carry ``status: "Deleted"``)."""
        answer = await self.request("GET", "cdc", what=what, params={"entities": ",".join(entities), "changedSince": changed_since})
        out: dict[str, list[dict[str, Any]]] = {e: [] for e in entities}
        blocks = answer.get("CDCResponse")
        if not isinstance(blocks, list):
            raise FatalError(f"{what}: the cdc answer has no CDCResponse list")
        for block in blocks:
            for response in (block or {}).get("QueryResponse") or []:
                for entity in entities:
                    items = (response or {}).get(entity)
                    if isinstance(items, list):
                        out[entity].extend(i for i in items if isinstance(i, dict))
        return out

    async def batch(self, operations: Sequence[dict[str, Any]], *, what: str) -> dict[str, BatchResult]:
        """Send ``operations`` (``{"bId", "operation", <Entity>: {...}}``) in batches of at most
        :data:`BATCH_MAX`; every operation's result or fault by its ``bId``. A bId the answer
        leaves out is a :class:`RetryableError` for the caller to see (never silently lost)."""
        results: dict[str, BatchResult] = {}
        for start in range(0, len(operations), BATCH_MAX):
            chunk = list(operations[start : start + BATCH_MAX])
            answer = await self.request("POST", "batch", what=f"{what} ({len(chunk)} operations)", body={"BatchItemRequest": chunk})
            items = answer.get("BatchItemResponse")
            if not isinstance(items, list):
                raise FatalError(f"{what}: the batch answer has no BatchItemResponse list")
            for item in items:
                if not isinstance(item, dict) or "bId" not in item:
                    continue
                bid = str(item["bId"])
                fault = _fault_from_json(item)
                entity = next((v for k, v in item.items() if k not in ("bId", "Fault") and isinstance(v, dict)), None)
                results[bid] = BatchResult(bid, entity, fault)
        return results


def verify_webhook(verifier_token: str, raw_body: bytes, signature: str | None) -> bool:
    """Whether a webhook POST is Intuit's: header ``intuit-signature`` equals
    ``base64(HMAC-SHA256(verifier_token, raw body))`` (compared in constant time)."""
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(verifier_token.encode(), raw_body, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, signature.strip())
