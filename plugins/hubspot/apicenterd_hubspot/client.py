"""HTTP access to the HubSpot CRM API: error bodies, batches of 100 with 207 multi-status,
search with ``after`` cursors and its 10,000-result window, associations v4, unique properties.

Everything here is one vendor detail each; the connector turns records into properties.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import httpx

from apicenterd import FatalError, RateLimited, RecordError, json_body
from apicenterd.kit import PageGuard, chunks, classify

__all__ = [
    "BATCH_SIZE",
    "SEARCH_PAGE",
    "SEARCH_WINDOW",
    "BatchOutcome",
    "HubSpotClient",
    "hubspot_message",
    "modified_property",
    "ms_to_cursor",
    "cursor_to_ms",
]

BATCH_SIZE = 100
"""Inputs per batch call (HubSpot refuses more)."""
SEARCH_PAGE = 200
"""Results per search page (the search API's maximum)."""
SEARCH_WINDOW = 10_000
"""Results one search query can page through; past it HubSpot answers 400, so the read starts
a new query from the last modification stamp it saw."""
DAILY_WAIT = 3600.0
"""Seconds to pause after a 429 of the daily limit (capped by the connection's retry_after_cap)."""
SECONDLY_WAIT = 10.0
"""Seconds to pause after a 429 of the ten-second (or secondly) limit without a Retry-After."""


def modified_property(object_type: str) -> str:
    """The property holding an object's last modification: ``lastmodifieddate`` for contacts,
    ``hs_lastmodifieddate`` for every other CRM object."""
    return "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"


def ms_to_cursor(ms: int) -> str:
    """A cursor (UTC ISO 8601 with milliseconds, sorts as text) for epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def cursor_to_ms(cursor: str) -> int:
    """Epoch milliseconds of a cursor or a HubSpot datetime value (ISO 8601, or epoch ms digits)."""
    if cursor.isdigit():
        return int(cursor)
    stamp = datetime.fromisoformat(cursor.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return int(stamp.timestamp() * 1000)


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def hubspot_message(response: httpx.Response) -> tuple[str, str | None]:
    """HubSpot's error body (``status``, ``message``, ``correlationId``, ``category``,
    ``subCategory``, ``errors[].message``) as one message naming the category and the
    correlationId (what HubSpot support asks for), and the category as the vendor code."""
    body = _body(response)
    message = str(body.get("message") or "").strip() or response.reason_phrase or f"HTTP {response.status_code}"
    details = [str(e.get("message")) for e in body.get("errors") or () if isinstance(e, dict) and e.get("message")]
    if details and details[0] not in message:
        message = f"{message} ({'; '.join(details[:3])})"
    category = body.get("category") if isinstance(body.get("category"), str) else None
    tags = [t for t in (category, body.get("subCategory") if isinstance(body.get("subCategory"), str) else None) if t]
    if body.get("correlationId"):
        tags.append(f"correlationId {body['correlationId']}")
    return (f"{message} [{', '.join(tags)}]" if tags else message), category


@dataclasses.dataclass
class BatchOutcome:
    """What a batch call did, per input key: the object it wrote or read, or the error for that input."""

    results: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)


def _error_keys(error: Mapping[str, Any]) -> list[str]:
    context = error.get("context")
    if not isinstance(context, Mapping):
        return []
    keys: list[str] = []
    for name in ("ids", "objectWriteTraceId", "objectWriteTraceIds", "id"):
        value = context.get(name)
        if isinstance(value, list):
            keys += [str(v) for v in value]
        elif isinstance(value, str):
            keys.append(value)
    return keys


def _error_text(error: Mapping[str, Any]) -> str:
    text = str(error.get("message") or "the batch refused this input")
    category = error.get("category")
    return f"{text} [{category}]" if category else text


class HubSpotClient:
    """One HubSpot account through an httpx client made by the daemon's context."""

    def __init__(self, http: httpx.AsyncClient, log: Any):
        self.http = http
        self.log = log

    # -- one call ---------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        ok: Iterable[int] = (),
        not_found: str = "record",
    ) -> httpx.Response:
        """Send one request; a failure raises the classified error (its correlationId logged)."""
        response = await self.http.request(method, path, json=json, params=params)
        if response.is_success or response.status_code in ok:
            return response
        if response.status_code == 404 and not_found == "none":
            return response
        body = _body(response)
        if body.get("correlationId"):
            self.log.warning(
                "hubspot_error",
                what=what,
                status=response.status_code,
                category=body.get("category"),
                correlationId=body.get("correlationId"),
                message=str(body.get("message") or "")[:300],
            )
        error = classify(response, what, not_found="config" if not_found == "config" else "record", message=hubspot_message)
        assert error is not None
        if isinstance(error, RateLimited) and error.retry_after is None:
            policy = str(body.get("policyName") or "")
            error.retry_after = DAILY_WAIT if policy.upper().startswith("DAILY") else SECONDLY_WAIT
        raise error

    async def json(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """:meth:`call` and its JSON body (FatalError when it is not JSON)."""
        response = await self.call(method, path, what, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return json_body(response, what)

    # -- batches ----------------------------------------------------------------------------

    async def batch(
        self,
        object_type: str,
        operation: str,
        inputs: Sequence[Mapping[str, Any]],
        keys: Sequence[str],
        *,
        what: str,
        result_key: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> BatchOutcome:
        """``POST /crm/v3/objects/{type}/batch/{operation}`` in chunks of :data:`BATCH_SIZE`.

        ``keys[n]`` names ``inputs[n]`` in the outcome. A result is matched to its input by
        ``result_key`` (a property of the result, e.g. the unique property), else by its
        ``objectWriteTraceId`` (set on every write input), else by position when the answer has
        exactly one result per input. A 207 answer's errors fail only the inputs their
        ``context`` names (``ids``, ``objectWriteTraceId``); an error naming none fails every
        input of its chunk that got no result. A refused chunk (4xx) fails its inputs, not the others.
        """
        if len(inputs) != len(keys):
            raise ValueError("batch: one key per input")
        outcome = BatchOutcome()
        path = f"/crm/v3/objects/{object_type}/batch/{operation}"
        writes = operation in ("create", "update", "upsert")
        for chunk in chunks(list(zip(keys, inputs, strict=True)), BATCH_SIZE):
            body_inputs = []
            for trace, item in chunk:
                entry = {**item, "objectWriteTraceId": trace} if writes else dict(item)
                if operation == "create":
                    entry.setdefault("associations", [])
                body_inputs.append(entry)
            try:
                answer = await self.json("POST", path, f"{what} ({len(chunk)} in a batch)", json={**(extra or {}), "inputs": body_inputs})
            except RecordError as exc:
                for refused, _ in chunk:
                    outcome.errors[refused] = str(exc)
                continue
            if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
                raise FatalError(f"{what}: {path} answered without a results list")
            chunk_keys = [k for k, _ in chunk]
            by_trace = {k: k for k in chunk_keys}
            by_folded = {k.casefold(): k for k in reversed(chunk_keys)} if result_key else {}  # the first of equal keys
            results = [r for r in answer["results"] if isinstance(r, dict)]
            unmatched: list[dict[str, Any]] = []
            for result in results:
                props = result.get("properties") or {}
                key: str | None = None
                if result_key and props.get(result_key) is not None:
                    key = by_folded.get(str(props[result_key]).casefold())
                if key is None and result.get("objectWriteTraceId") in by_trace:
                    key = str(result["objectWriteTraceId"])
                if key is None:
                    unmatched.append(result)
                else:
                    outcome.results[key] = result
            if unmatched and len(results) == len(chunk) and not answer.get("errors"):
                for key, result in zip(chunk_keys, results, strict=True):
                    outcome.results.setdefault(key, result)
            errors = [e for e in answer.get("errors") or () if isinstance(e, dict)]
            for error in errors:
                named = [k for k in _error_keys(error) if k in by_trace]
                text = _error_text(error)
                if not named:
                    named = [k for k in chunk_keys if k not in outcome.results]
                for key in named:
                    if key not in outcome.results:
                        outcome.errors.setdefault(key, text)
            if errors and writes:
                self.log.info("hubspot_batch_partial", what=what, failed=sum(1 for k in chunk_keys if k in outcome.errors))
        return outcome

    async def read_by(
        self, object_type: str, id_property: str | None, ids: Sequence[str], properties: Sequence[str], *, what: str
    ) -> dict[str, dict[str, Any]]:
        """Objects by id (``id_property`` None) or by a unique property, in batches of 100; missing
        ones (HubSpot's 207 ``OBJECT_NOT_FOUND``) are left out. Keys as given."""
        ids = list(dict.fromkeys(i for i in ids if i))
        if not ids:
            return {}
        extra: dict[str, Any] = {"properties": list(properties), "propertiesWithHistory": []}
        if id_property:
            extra["idProperty"] = id_property
        outcome = await self.batch(object_type, "read", [{"id": i} for i in ids], ids, what=what, result_key=id_property, extra=extra)
        if not id_property:  # results by hs_object_id
            found = {}
            for result in outcome.results.values():
                found[str(result.get("id"))] = result
            outcome.results = {i: found[i] for i in ids if i in found}
        return outcome.results

    # -- search -----------------------------------------------------------------------------

    async def search_page(self, object_type: str, body: Mapping[str, Any], what: str) -> tuple[list[dict[str, Any]], str | None, int]:
        """One page of ``POST /crm/v3/objects/{type}/search``: results, the ``after`` cursor, the total."""
        answer = await self.json("POST", f"/crm/v3/objects/{object_type}/search", what, json=dict(body))
        if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
            raise FatalError(f"{what}: the search answered without a results list")
        after = ((answer.get("paging") or {}).get("next") or {}).get("after")
        total = answer.get("total")
        return answer["results"], (str(after) if after else None), int(total) if isinstance(total, int) else 0

    async def modified_since(
        self,
        object_type: str,
        since_ms: int | None,
        properties: Sequence[str],
        *,
        what: str,
        filters: Sequence[Mapping[str, Any]] = (),
    ) -> AsyncIterator[dict[str, Any]]:
        """Every object (matching ``filters``) modified at or after ``since_ms``, oldest first.

        Sorted by the modification stamp ascending, paged by ``after`` up to the search window
        (10,000 results); then a new query from the last stamp seen (objects with that stamp
        seen already are not yielded twice). A window that ends on one stamp throughout (more
        than 10,000 objects changed in the same millisecond) cannot be read past: FatalError.
        """
        stamp_property = modified_property(object_type)
        floor = since_ms
        seen_at_floor: set[str] = set()
        guard = PageGuard(f"POST /crm/v3/objects/{object_type}/search")
        while True:
            group = [dict(f) for f in filters]
            if floor is not None:
                group.append({"propertyName": stamp_property, "operator": "GTE", "value": str(floor)})
            body: dict[str, Any] = {
                "filterGroups": [{"filters": group}] if group else [],
                "sorts": [{"propertyName": stamp_property, "direction": "ASCENDING"}],
                "properties": sorted({*properties, stamp_property}),
                "limit": SEARCH_PAGE,
            }
            after: str | None = None
            read = 0
            last_floor = floor
            newest: int | None = floor
            at_newest: set[str] = set(seen_at_floor)
            while True:
                page_body = {**body, **({"after": after} if after else {})}
                results, after, _ = await self.search_page(object_type, page_body, what)
                guard.page([r.get("id") for r in results])
                read += len(results)
                for item in results:
                    item_id = str(item.get("id"))
                    stamp = _stamp_ms(item, stamp_property)
                    if stamp is not None and floor is not None and stamp == floor and item_id in seen_at_floor:
                        continue
                    if stamp is not None and (newest is None or stamp > newest):
                        newest, at_newest = stamp, set()
                    if stamp is not None and stamp == newest:
                        at_newest.add(item_id)
                    yield item
                if not after:
                    return
                if read + SEARCH_PAGE > SEARCH_WINDOW:
                    break  # the next page would pass the window: query again from the newest stamp
            if newest is None or (newest == last_floor and at_newest <= seen_at_floor):
                raise FatalError(
                    f"{what}: more than {SEARCH_WINDOW} objects share the modification stamp {newest}; the search API cannot page past them"
                )
            floor, seen_at_floor = newest, at_newest

    # -- associations v4 --------------------------------------------------------------------

    async def associated(self, from_type: str, to_type: str, ids: Sequence[str], *, what: str) -> dict[str, list[str]]:
        """``POST /crm/v4/associations/{from}/{to}/batch/read``: per id, the ids associated (in batches of 100)."""
        found: dict[str, list[str]] = {}
        for chunk in chunks(list(dict.fromkeys(ids)), BATCH_SIZE):
            response = await self.call(
                "POST",
                f"/crm/v4/associations/{from_type}/{to_type}/batch/read",
                what,
                json={"inputs": [{"id": i} for i in chunk]},
                ok=(207,),
            )
            answer = json_body(response, what)
            for result in (answer or {}).get("results") or ():
                source = str((result.get("from") or {}).get("id"))
                found[source] = [str(t.get("toObjectId")) for t in result.get("to") or () if t.get("toObjectId") is not None]
        return found

    async def associate(self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]], type_id: int, *, what: str) -> None:
        """``POST /crm/v4/associations/{from}/{to}/batch/create`` (HUBSPOT_DEFINED ``type_id``), 100 a call."""
        for chunk in chunks(list(pairs), BATCH_SIZE):
            inputs = [
                {"from": {"id": a}, "to": {"id": b}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}
                for a, b in chunk
            ]
            response = await self.call(
                "POST", f"/crm/v4/associations/{from_type}/{to_type}/batch/create", what, json={"inputs": inputs}, ok=(207,)
            )
            if response.status_code == 207:
                errors = (json_body(response, what) or {}).get("errors") or []
                if errors:
                    raise RecordError(f"{what}: {_error_text(errors[0])}")

    # -- properties -------------------------------------------------------------------------

    async def ensure_property(self, object_type: str, name: str, label: str, *, create: bool, setting: str = "customer_properties") -> None:
        """Make sure ``object_type`` has the property ``name`` (any type; created as a single-line
        text property when missing and allowed, else a FatalError naming it)."""
        await self._ensure_text_property(
            object_type,
            name,
            label,
            create=create,
            unique=False,
            missing="create it in HubSpot, or set create_properties = true",
            description=f"Written by apicenterd ({setting})",
        )

    async def ensure_unique_property(self, object_type: str, name: str, label: str, *, create: bool) -> None:
        """Make sure ``object_type`` has the unique text property ``name`` (create it when allowed).

        A property that exists without ``hasUniqueValue`` is a FatalError (look-ups by it would
        not be safe: HubSpot can hold the same value twice)."""
        await self._ensure_text_property(
            object_type,
            name,
            label,
            create=create,
            unique=True,
            missing="create it as a unique single-line text property, or set create_properties = true",
            description="Written by apicenterd: the record's key in the other system (unique)",
        )

    async def _ensure_text_property(
        self, object_type: str, name: str, label: str, *, create: bool, unique: bool, missing: str, description: str
    ) -> None:
        """Make sure ``object_type`` has the property ``name`` (``unique``: with ``hasUniqueValue``);
        when missing, create it as a single-line text property if ``create``, else a FatalError
        saying ``missing`` (what to do)."""
        what = f"{object_type} property {name!r}"
        response = await self.call("GET", f"/crm/v3/properties/{object_type}/{name}", what, not_found="none")
        if response.status_code == 200:
            if unique and not (json_body(response, what) or {}).get("hasUniqueValue"):
                raise FatalError(
                    f"{what} exists but is not unique (hasUniqueValue false); HubSpot cannot make it unique later: "
                    "configure another property name"
                )
            return
        if not create:
            raise FatalError(f"{what} does not exist; {missing}")
        body: dict[str, Any] = {"name": name, "label": label, "type": "string", "fieldType": "text", "groupName": _group(object_type)}
        if unique:
            body["hasUniqueValue"] = True
        body["description"] = description
        await self.call("POST", f"/crm/v3/properties/{object_type}", what, json=body)
        self.log.info("hubspot_property_created", object_type=object_type, property=name)


def _group(object_type: str) -> str:
    """The default property group of ``object_type`` (where created properties go)."""
    if object_type == "line_items":
        return "lineiteminformation"
    return {"contacts": "contactinformation", "companies": "companyinformation", "deals": "dealinformation"}.get(
        object_type, f"{object_type.rstrip('s')}information"
    )


def _stamp_ms(item: Mapping[str, Any], stamp_property: str) -> int | None:
    value = (item.get("properties") or {}).get(stamp_property) or item.get("updatedAt")
    if not value:
        return None
    try:
        return cursor_to_ms(str(value))
    except ValueError:
        return None
