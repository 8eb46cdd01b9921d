"""A HubSpot CRM simulator on the toolkit, after the vendor's OpenAPI files (crm-*-v3, associations v4,
properties v3, oauth v1): objects and their properties (unknown ones refused with
``PROPERTY_DOESNT_EXIST``, read-only ones refused), unique properties (409 / per-input errors),
batches of at most 100 with 207 multi-status, search (``after``, at most 200 a page, the
10,000-result window, its own per-second limit), associations v4, the ``X-HubSpot-RateLimit-*``
headers and the 429 body with ``policyName``, private-app and OAuth tokens (30 minutes), and
signed webhook deliveries (:meth:`HubSpotSim.webhook_request`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from apicenterd.testing.sim import (
    BearerAuth,
    ChangeClock,
    IntIds,
    RateLimitGate,
    TokenServer,
    VendorError,
    VendorSim,
    json_response,
    read_json,
    seeded,
)

from .webhooks import sign_v3

__all__ = ["DEMO_TOKEN", "CLIENT_ID", "CLIENT_SECRET", "HubSpotSim", "create_app", "STANDARD_PROPERTIES", "READ_ONLY"]

DEMO_TOKEN = "pat-na1-00000000-demo-0000-0000-000000000000"
CLIENT_ID = "hubspot-sim-client"
CLIENT_SECRET = "hubspot-sim-secret"
BATCH_LIMIT = 100
SEARCH_LIMIT = 200
SEARCH_WINDOW = 10_000

STANDARD_PROPERTIES: dict[str, dict[str, str]] = {
    "products": {"name": "string", "price": "number", "description": "string", "hs_sku": "string", "hs_cost_of_goods_sold": "number"},
    "contacts": {
        "email": "string",
        "firstname": "string",
        "lastname": "string",
        "phone": "string",
        "company": "string",
        "address": "string",
        "zip": "string",
        "city": "string",
        "country": "string",
        "associatedcompanyid": "number",
        "lifecyclestage": "enumeration",
    },
    "companies": {
        "name": "string",
        "phone": "string",
        "address": "string",
        "zip": "string",
        "city": "string",
        "country": "string",
        "domain": "string",
        "lifecyclestage": "enumeration",
    },
    "deals": {
        "dealname": "string",
        "amount": "number",
        "dealstage": "enumeration",
        "pipeline": "enumeration",
        "closedate": "datetime",
        "deal_currency_code": "enumeration",
        "description": "string",
    },
    "line_items": {
        "name": "string",
        "quantity": "number",
        "price": "number",
        "discount": "number",
        "hs_product_id": "number",
        "hs_sku": "string",
        "amount": "number",
    },
}
COMMON = {"hs_object_id": "number", "createdate": "datetime", "hs_lastmodifieddate": "datetime", "lastmodifieddate": "datetime"}
READ_ONLY = {"hs_object_id", "createdate", "hs_lastmodifieddate", "lastmodifieddate", "associatedcompanyid"}
READ_ONLY_BY_TYPE = {"line_items": {"amount"}}
OPTIONS = {
    ("deals", "pipeline"): {"default"},
    ("deals", "dealstage"): {
        "appointmentscheduled",
        "qualifiedtobuy",
        "presentationscheduled",
        "decisionmakerboughtin",
        "contractsent",
        "closedwon",
        "closedlost",
    },
    ("deals", "deal_currency_code"): {"EUR", "USD", "GBP", "SEK", "NOK", "DKK"},
    ("contacts", "lifecyclestage"): {
        "subscriber",
        "lead",
        "marketingqualifiedlead",
        "salesqualifiedlead",
        "opportunity",
        "customer",
        "evangelist",
        "other",
    },
}
OPTIONS[("companies", "lifecyclestage")] = OPTIONS[("contacts", "lifecyclestage")]  # the same stages on companies
ASSOCIATION_TYPES = {  # HubSpot-defined type ids: (from, to) -> {type id: inverse type id}
    ("contacts", "companies"): {1: 2, 279: 280},
    ("companies", "contacts"): {2: 1, 280: 279},
    ("deals", "contacts"): {3: 4},
    ("contacts", "deals"): {4: 3},
    ("deals", "companies"): {5: 6, 341: 342},
    ("companies", "deals"): {6: 5, 342: 341},
    ("deals", "line_items"): {19: 20},
    ("line_items", "deals"): {20: 19},
}
OBJECT_ID_START = {"products": 1_000_000, "contacts": 2_000_000, "companies": 3_000_000, "deals": 4_000_000, "line_items": 5_000_000}


def _iso(stamp: datetime) -> str:
    return stamp.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ms(value: str) -> int:
    if value.isdigit():
        return int(value)
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


class HubSpotSim(VendorSim):
    """One simulated HubSpot account."""

    def __init__(
        self,
        *,
        seed: int = 1,
        records: int = 0,
        rate_limit: int = 100,
        search_rate_limit: int = 5,
        daily_limit: int = 250_000,
        token_ttl: float = 1800.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
    ):
        super().__init__(log_size=50_000)
        self.seed = seed
        self.oauth = TokenServer(
            CLIENT_ID, CLIENT_SECRET, signing_key=b"hubspot-sim", ttl=token_ttl, client_auth="post", access_prefix="COi"
        )
        self.tokens = {DEMO_TOKEN}
        wall = now or (lambda: datetime.now(timezone.utc))
        # HubSpot stamps have millisecond resolution; each change gets its own millisecond here
        self.clock = ChangeClock(lambda: (t := wall()).replace(microsecond=t.microsecond // 1000 * 1000), tick=timedelta(milliseconds=1))
        self.ten_secondly = RateLimitGate(rate_limit, 10.0, self._limited("TEN_SECONDLY_ROLLING"), clock=clock)
        self.search_limit = RateLimitGate(
            search_rate_limit, 1.0, self._limited("SECONDLY"), applies=lambda r: r.url.path.endswith("/search"), clock=clock
        )
        self.daily_limit, self.daily_used = daily_limit, 0
        self.gates = [
            BearerAuth(self._token_ok, lambda: VendorError(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")),
            self._daily,
            self.ten_secondly,
            self.search_limit,
            self.fault_gate,
        ]
        self.properties: dict[str, dict[str, dict[str, Any]]] = {
            t: {n: {"name": n, "type": k, "hasUniqueValue": n == "email"} for n, k in {**COMMON, **props}.items()}
            for t, props in STANDARD_PROPERTIES.items()
        }
        self.objects: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in STANDARD_PROPERTIES}
        self.ids = {t: IntIds(start) for t, start in OBJECT_ID_START.items()}
        self.associations: dict[tuple[str, str], dict[str, dict[str, set[int]]]] = {}
        self._unique: dict[tuple[str, str], dict[str, str]] = {}  # (type, unique property) -> folded value -> id
        self.search_window = SEARCH_WINDOW
        for n in range(records):
            rng = seeded(seed, "product", n)
            self.create(
                "products", {"name": f"Product {n + 1}", "hs_sku": f"HS-{n + 1:05d}", "price": f"{rng.randint(100, 99_999) / 100:.2f}"}
            )

    # -- gates and errors ------------------------------------------------------------------

    def _token_ok(self, token: str) -> bool:
        return token in self.tokens or (self.oauth is not None and self.oauth.valid(token))

    def _limited(self, policy: str) -> Callable[[float, RateLimitGate], VendorError]:
        def refuse(wait: float, gate: RateLimitGate) -> VendorError:
            error = VendorError(429, "RATE_LIMITS", f"You have reached your {policy.lower()} limit.", headers=self._limit_headers(gate))
            error.policy = policy  # type: ignore[attr-defined]
            return error

        return refuse

    def _daily(self, request: Request) -> None:
        self.daily_used += 1
        if self.daily_used > self.daily_limit:
            error = VendorError(429, "RATE_LIMITS", "You have reached your daily limit.")
            error.policy = "DAILY"  # type: ignore[attr-defined]
            raise error

    def _limit_headers(self, gate: RateLimitGate) -> dict[str, str]:
        window = gate.window
        now = window._clock()
        current, count = window._windows.get("", (int(now // window.period), 0))
        used = count if current == int(now // window.period) else 0
        return {
            "X-HubSpot-RateLimit-Max": str(window.limit),
            "X-HubSpot-RateLimit-Remaining": str(max(0, window.limit - used)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(window.period * 1000)),
        }

    def error_response(self, exc: VendorError) -> Response:
        body: dict[str, Any] = {"status": "error", "message": exc.message, "correlationId": str(uuid.uuid4()), "category": exc.code}
        if getattr(exc, "policy", None):
            body["policyName"] = exc.policy  # type: ignore[attr-defined]
            body["errorType"] = "RATE_LIMIT"
        if getattr(exc, "context", None):
            body["context"] = exc.context  # type: ignore[attr-defined]
        return json_response(body, exc.status, exc.headers)

    def after(self, request: Request, response: Response) -> Response:
        response.headers.update(self._limit_headers(self.ten_secondly))
        auth = request.headers.get("Authorization", "")
        if auth[7:].strip() in self.tokens:  # the daily headers are not sent to OAuth apps
            response.headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            response.headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, self.daily_limit - self.daily_used))
        return response

    # -- the store ----------------------------------------------------------------------------

    def _type(self, object_type: str) -> str:
        if object_type not in self.objects:
            raise VendorError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")
        return object_type

    def check_properties(self, object_type: str, props: Mapping[str, Any], own_id: str | None = None) -> dict[str, str]:
        """The properties as stored, or the VendorError HubSpot would answer."""
        if not isinstance(props, Mapping):
            raise VendorError(400, "VALIDATION_ERROR", "Invalid input JSON: properties must be an object")
        known = self.properties[object_type]
        clean: dict[str, str] = {}
        for name, value in props.items():
            if name not in known:
                error = VendorError(
                    400,
                    "VALIDATION_ERROR",
                    _invalid(name, f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST"),
                )
                error.context = {"propertyName": [name]}  # type: ignore[attr-defined]
                raise error
            if name in READ_ONLY or name in READ_ONLY_BY_TYPE.get(object_type, ()):
                raise VendorError(
                    400,
                    "VALIDATION_ERROR",
                    _invalid(name, f'"{name}" is a read only property; its value cannot be set.', "READ_ONLY_VALUE"),
                )
            text = "" if value is None else _text(value)
            kind = known[name]["type"]
            if text and kind == "number":
                try:
                    Decimal(text)
                except ArithmeticError:
                    raise VendorError(
                        400,
                        "VALIDATION_ERROR",
                        _invalid(name, f"{text} was not a valid number.", "INVALID_DECIMAL"),
                    ) from None
            options = OPTIONS.get((object_type, name))
            if text and options is not None and text not in options:
                raise VendorError(
                    400,
                    "VALIDATION_ERROR",
                    _invalid(name, f"{text} was not one of the allowed options", "INVALID_OPTION"),
                )
            if text and known[name].get("hasUniqueValue"):
                other_id = self._index(object_type, name).get(text.casefold())
                if other_id is not None and other_id != own_id:
                    raise VendorError(409, "CONFLICT", f"A {object_type[:-1]} with {name} {text!r} already exists. Existing ID: {other_id}")
            clean[name] = text
        return clean

    def _index(self, object_type: str, name: str) -> dict[str, str]:
        """The unique property's index (built on first use)."""
        key = (object_type, name)
        if key not in self._unique:
            self._unique[key] = {
                str(o["properties"][name]).casefold(): i for i, o in self.objects[object_type].items() if o["properties"].get(name)
            }
        return self._unique[key]

    def _reindex(self, object_type: str, object_id: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        for (kind, name), index in self._unique.items():
            if kind != object_type:
                continue
            if before.get(name):
                index.pop(str(before[name]).casefold(), None)
            if after.get(name):
                index[str(after[name]).casefold()] = object_id

    def create(self, object_type: str, props: Mapping[str, Any], trace: str | None = None) -> dict[str, Any]:
        clean = self.check_properties(object_type, props)
        object_id = str(self.ids[object_type]())
        stamp = self.clock.now()
        item: dict[str, Any] = {"id": object_id, "properties": {}, "createdAt": _iso(stamp), "updatedAt": _iso(stamp), "archived": False}
        item["properties"].update(clean)
        item["properties"].update({"hs_object_id": object_id, "createdate": _iso(stamp)})
        self._touch(object_type, item, stamp)
        self.objects[object_type][object_id] = item
        self._reindex(object_type, object_id, {}, item["properties"])
        return item

    def _touch(self, object_type: str, item: dict[str, Any], stamp: datetime | None = None) -> None:
        stamp = stamp or self.clock.now()
        item["updatedAt"] = _iso(stamp)
        item["properties"]["hs_lastmodifieddate" if object_type != "contacts" else "lastmodifieddate"] = _iso(stamp)
        if object_type == "line_items":
            props = item["properties"]
            try:
                amount = Decimal(props.get("price") or 0) * Decimal(props.get("quantity") or 1) - Decimal(
                    props.get("discount") or 0
                ) * Decimal(props.get("quantity") or 1)
                props["amount"] = format(amount, "f")
            except ArithmeticError:
                pass

    def update(self, object_type: str, object_id: str, props: Mapping[str, Any]) -> dict[str, Any]:
        item = self.objects[object_type].get(object_id)
        if item is None:
            raise VendorError(404, "OBJECT_NOT_FOUND", f"resource not found: {object_type} {object_id}")
        before = dict(item["properties"])
        item["properties"].update(self.check_properties(object_type, props, own_id=object_id))
        self._reindex(object_type, object_id, before, item["properties"])
        self._touch(object_type, item)
        return item

    def by_property(self, object_type: str, name: str, value: str) -> dict[str, Any] | None:
        if name == "hs_object_id":
            return self.objects[object_type].get(value)
        if self.properties[object_type].get(name, {}).get("hasUniqueValue"):
            found = self._index(object_type, name).get(value.casefold())
            return self.objects[object_type].get(found) if found is not None else None
        return next(
            (o for o in self.objects[object_type].values() if str(o["properties"].get(name) or "").casefold() == value.casefold()), None
        )

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int) -> None:
        types = ASSOCIATION_TYPES.get((from_type, to_type))
        if types is None or type_id not in types:
            raise VendorError(400, "VALIDATION_ERROR", f"{type_id} is not a valid association type between {from_type} and {to_type}")
        if to_id not in self.objects[to_type]:
            raise VendorError(400, "VALIDATION_ERROR", f"No {to_type} with ID {to_id} exists")
        self.associations.setdefault((from_type, to_type), {}).setdefault(from_id, {}).setdefault(to_id, set()).add(type_id)
        self.associations.setdefault((to_type, from_type), {}).setdefault(to_id, {}).setdefault(from_id, set()).add(types[type_id])
        primary = {("contacts", "companies", 1): (from_id, to_id), ("companies", "contacts", 2): (to_id, from_id)}.get(
            (from_type, to_type, type_id)
        )
        if primary:
            self.objects["contacts"][primary[0]]["properties"]["associatedcompanyid"] = primary[1]

    def public(self, item: dict[str, Any], properties: list[str] | None) -> dict[str, Any]:
        default = {"hs_object_id", "createdate", "hs_lastmodifieddate", "lastmodifieddate"}
        wanted = set(properties) if properties else default | {"name", "email", "firstname", "lastname", "dealname", "amount"}
        props = {k: (v if v != "" else None) for k, v in item["properties"].items() if k in wanted}
        return {**{k: v for k, v in item.items() if k != "properties"}, "properties": props}

    # -- webhooks -------------------------------------------------------------------------------

    def webhook_request(
        self, url: str, events: list[dict[str, Any]], *, timestamp_ms: int | None = None, secret: str = CLIENT_SECRET
    ) -> tuple[bytes, dict[str, str]]:
        """A webhook delivery as HubSpot sends it: the JSON array of events and the v3 signature headers."""
        import json

        body = json.dumps(events, separators=(",", ":")).encode()
        stamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
        return body, {
            "Content-Type": "application/json",
            "X-HubSpot-Request-Timestamp": stamp,
            "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, body, stamp),
            "X-HubSpot-Signature-Version": "v3",
        }


def _invalid(name: str, message: str, error: str) -> str:
    """HubSpot's VALIDATION_ERROR message for one property value (its JSON list of checks)."""
    import json

    check = {"isValid": False, "message": message, "error": error, "name": name}
    return f"Property values were not valid: {json.dumps([check], separators=(',', ':'))}"


def _bad(message: str) -> VendorError:
    return VendorError(400, "VALIDATION_ERROR", message)


def _now_iso() -> str:
    return _iso(datetime.now(timezone.utc))


def _inputs(body: Any) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise _bad("Invalid input JSON: inputs is required")
    if len(body["inputs"]) > BATCH_LIMIT:
        raise _bad(f"Batch input limit exceeded: maximum {BATCH_LIMIT} inputs, got {len(body['inputs'])}")
    return body["inputs"]


def _batch_answer(results: list[dict[str, Any]], errors: list[dict[str, Any]], ok_status: int) -> Response:
    started = _now_iso()
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now_iso()}
    if errors:
        body["errors"] = errors
        body["numErrors"] = len(errors)
        return json_response(body, 207)
    return json_response(body, ok_status)


def _item_error(exc: VendorError, context: dict[str, list[str]]) -> dict[str, Any]:
    return {"status": "error", "category": exc.code, "message": exc.message, "context": context, "errors": [], "links": {}}


def _props_param(request: Request) -> list[str] | None:
    raw = request.query_params.getlist("properties")
    names = [p for value in raw for p in value.split(",") if p]
    return names or None


async def batch_op(sim: HubSpotSim, request: Request) -> Response:
    object_type = sim._type(request.path_params["object_type"])
    op = request.path_params["op"]
    body = await read_json(request, lambda: _bad("Invalid input JSON"), decimals=False)
    inputs = _inputs(body)
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    if op == "read":
        id_property = body.get("idProperty")
        if id_property and not sim.properties[object_type].get(id_property, {}).get("hasUniqueValue") and id_property != "hs_object_id":
            raise _bad(f"{id_property} is not a unique property of {object_type}")
        missing = []
        for entry in inputs:
            value = str((entry or {}).get("id") or "")
            item = sim.by_property(object_type, id_property, value) if id_property else sim.objects[object_type].get(value)
            if item is None:
                missing.append(value)
            else:
                results.append(sim.public(item, list(body.get("properties") or []) or None))
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {object_type[:-1].upper()} objects, they may be deleted or not exist. "
                    "Check that ids are valid.",
                    "context": {"ids": missing},
                    "errors": [],
                    "links": {},
                }
            )
        return _batch_answer(results, errors, 200)
    for entry in inputs:
        if not isinstance(entry, dict) or not isinstance(entry.get("properties"), dict):
            raise _bad("Invalid input JSON: every input needs properties")
        trace = entry.get("objectWriteTraceId")
        context = {"objectWriteTraceId": [trace]} if trace else {"ids": [str(entry.get("id") or "")]}
        try:
            if op == "create":
                item = sim.create(object_type, entry["properties"])
                for assoc in entry.get("associations") or ():
                    for spec in assoc.get("types") or ():
                        sim.associate(
                            object_type,
                            item["id"],
                            _to_type(sim, assoc["to"]["id"]),
                            str(assoc["to"]["id"]),
                            int(spec["associationTypeId"]),
                        )
                result = sim.public(item, list(entry["properties"]))
            elif op == "update":
                target = _resolve(sim, object_type, entry)
                result = sim.public(sim.update(object_type, target["id"], entry["properties"]), list(entry["properties"]))
            elif op == "upsert":
                id_property = entry.get("idProperty") or "hs_object_id"
                if id_property != "hs_object_id" and not sim.properties[object_type].get(id_property, {}).get("hasUniqueValue"):
                    raise _bad(f"{id_property} is not a unique property of {object_type}")
                existing = sim.by_property(object_type, id_property, str(entry.get("id") or ""))
                if existing is None:
                    props = {**entry["properties"], **({id_property: entry["id"]} if id_property != "hs_object_id" else {})}
                    item, new = sim.create(object_type, props), True
                else:
                    item, new = sim.update(object_type, existing["id"], entry["properties"]), False
                result = {**sim.public(item, [*entry["properties"], id_property]), "new": new}
            else:
                raise VendorError(404, "OBJECT_NOT_FOUND", f"no batch operation {op}")
        except VendorError as exc:
            if exc.status == 404 and op not in ("update",):
                raise
            errors.append(_item_error(exc, context))
            continue
        if trace:
            result["objectWriteTraceId"] = trace
        results.append(result)
    return _batch_answer(results, errors, 201 if op == "create" else 200)


def _resolve(sim: HubSpotSim, object_type: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    id_property = entry.get("idProperty")
    value = str(entry.get("id") or "")
    item = sim.by_property(object_type, id_property, value) if id_property else sim.objects[object_type].get(value)
    if item is None:
        raise VendorError(404, "OBJECT_NOT_FOUND", f"Object not found. objectId are usually numeric. ({value})")
    return item


def _to_type(sim: HubSpotSim, object_id: Any) -> str:
    for object_type, items in sim.objects.items():
        if str(object_id) in items:
            return object_type
    raise VendorError(400, "VALIDATION_ERROR", f"No object with ID {object_id} exists")


async def objects(sim: HubSpotSim, request: Request) -> Response:
    object_type = sim._type(request.path_params["object_type"])
    if request.method == "POST":
        body = await read_json(request, lambda: _bad("Invalid input JSON"), decimals=False)
        if not isinstance(body, dict):
            raise _bad("Invalid input JSON")
        item = sim.create(object_type, body.get("properties") or {})
        for assoc in body.get("associations") or ():
            to_id = str(((assoc or {}).get("to") or {}).get("id") or "")
            to_type = _to_type(sim, to_id)
            for spec in assoc.get("types") or ():
                sim.associate(object_type, item["id"], to_type, to_id, int(spec["associationTypeId"]))
        return json_response(sim.public(item, list(body.get("properties") or {})), 201)
    limit = int(request.query_params.get("limit") or 10)
    if not 1 <= limit <= 100:
        raise _bad("limit must be between 1 and 100")
    after = request.query_params.get("after")
    items = sorted(sim.objects[object_type].values(), key=lambda o: int(o["id"]))
    start = next((n for n, o in enumerate(items) if int(o["id"]) > int(after)), len(items)) if after else 0
    window = items[start : start + limit]
    body = {"results": [sim.public(o, _props_param(request)) for o in window]}
    if start + limit < len(items):
        body["paging"] = {"next": {"after": str(int(window[-1]["id"]) + 1), "link": ""}}
    return json_response(body)


async def one_object(sim: HubSpotSim, request: Request) -> Response:
    object_type = sim._type(request.path_params["object_type"])
    entry = {"id": request.path_params["object_id"], "idProperty": request.query_params.get("idProperty")}
    item = _resolve(sim, object_type, entry)
    if request.method == "PATCH":
        body = await read_json(request, lambda: _bad("Invalid input JSON"), decimals=False)
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            raise _bad("Invalid input JSON: properties is required")
        return json_response(sim.public(sim.update(object_type, item["id"], body["properties"]), list(body["properties"])))
    if request.method == "DELETE":
        sim._reindex(object_type, item["id"], item["properties"], {})
        del sim.objects[object_type][item["id"]]
        return Response(status_code=204)
    return json_response(sim.public(item, _props_param(request)))


OPERATORS: dict[str, Callable[[str, Any], bool]] = {}


def _matches(sim: HubSpotSim, object_type: str, item: dict[str, Any], flt: Mapping[str, Any]) -> bool:
    name, op = flt.get("propertyName"), flt.get("operator")
    if name not in sim.properties[object_type]:
        raise _bad(f"There was a problem with the request: property {name!r} does not exist")
    have = str(item["properties"].get(name) or "")
    kind = sim.properties[object_type][name]["type"]

    def key(value: str) -> Any:
        if kind == "datetime":
            return _ms(value) if value else 0
        if kind == "number":
            return Decimal(value) if value else Decimal(0)
        return value.casefold()

    value = str(flt.get("value") or "")
    if op == "EQ":
        return bool(have) and key(have) == key(value)
    if op == "NEQ":
        return not have or key(have) != key(value)
    if op in ("GT", "GTE", "LT", "LTE"):
        if not have:
            return False
        a, b = key(have), key(value)
        return {"GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b}[op]
    if op == "IN":
        return have.casefold() in {str(v).casefold() for v in flt.get("values") or ()}
    if op == "NOT_IN":
        return have.casefold() not in {str(v).casefold() for v in flt.get("values") or ()}
    if op == "HAS_PROPERTY":
        return bool(have)
    if op == "NOT_HAS_PROPERTY":
        return not have
    raise _bad(f"operator {op!r} is not supported")


async def search(sim: HubSpotSim, request: Request) -> Response:
    object_type = sim._type(request.path_params["object_type"])
    body = await read_json(request, lambda: _bad("Invalid input JSON"), decimals=False)
    if not isinstance(body, dict):
        raise _bad("Invalid input JSON")
    limit = body.get("limit", 10)
    if not isinstance(limit, int) or not 1 <= limit <= SEARCH_LIMIT:
        raise _bad(f"limit must be between 1 and {SEARCH_LIMIT}")
    after = body.get("after")
    offset = int(after) if after not in (None, "") and str(after).isdigit() else 0
    if after not in (None, "") and not str(after).isdigit():
        raise _bad(f"after {after!r} is not a valid paging cursor")
    if offset + limit > sim.search_window:
        raise _bad(
            f"The search API can page through at most {sim.search_window} results; narrow the query (offset {offset} + limit {limit})"
        )
    groups = body.get("filterGroups") or []
    if len(groups) > 5:
        raise _bad("Too many filter groups (at most 5)")
    items = [
        o
        for o in sim.objects[object_type].values()
        if not groups or any(all(_matches(sim, object_type, o, f) for f in g.get("filters") or ()) for g in groups)
    ]
    sorts = body.get("sorts") or []
    if sorts:
        sort = (
            sorts[0]
            if isinstance(sorts[0], dict)
            else {"propertyName": str(sorts[0]).lstrip("-"), "direction": "DESCENDING" if str(sorts[0]).startswith("-") else "ASCENDING"}
        )
        name = str(sort.get("propertyName"))
        kind = sim.properties[object_type].get(name, {}).get("type")
        items.sort(
            key=lambda o: (
                _ms(o["properties"].get(name) or "0") if kind == "datetime" else str(o["properties"].get(name) or ""),
                int(o["id"]),
            ),
            reverse=sort.get("direction") == "DESCENDING",
        )
    else:
        items.sort(key=lambda o: int(o["id"]))
    window = items[offset : offset + limit]
    answer: dict[str, Any] = {"total": len(items), "results": [sim.public(o, list(body.get("properties") or []) or None) for o in window]}
    if offset + limit < len(items):
        answer["paging"] = {"next": {"after": str(offset + limit)}}
    return json_response(answer)


async def assoc_batch(sim: HubSpotSim, request: Request) -> Response:
    from_type, to_type = sim._type(request.path_params["from_type"]), sim._type(request.path_params["to_type"])
    op = request.path_params["op"]
    body = await read_json(request, lambda: _bad("Invalid input JSON"), decimals=False)
    inputs = _inputs(body)
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    if op == "read":
        table = sim.associations.get((from_type, to_type), {})
        for entry in inputs:
            source = str((entry or {}).get("id") or "")
            targets = table.get(source)
            if not targets:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": f"No {to_type} is associated with {from_type} {source}.",
                        "context": {"fromObjectId": [source]},
                        "errors": [],
                        "links": {},
                    }
                )
                continue
            results.append(
                {
                    "from": {"id": source},
                    "to": [
                        {
                            "toObjectId": t,
                            "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": i, "label": None} for i in sorted(ids)],
                        }
                        for t, ids in targets.items()
                    ],
                }
            )
        return _batch_answer(results, errors, 200)
    for entry in inputs:
        try:
            source, target = str(entry["from"]["id"]), str(entry["to"]["id"])
            if source not in sim.objects[from_type]:
                raise VendorError(400, "VALIDATION_ERROR", f"No {from_type} with ID {source} exists")
            for spec in entry.get("types") or ():
                sim.associate(from_type, source, to_type, target, int(spec["associationTypeId"]))
            results.append(
                {
                    "fromObjectTypeId": from_type,
                    "fromObjectId": source,
                    "toObjectTypeId": to_type,
                    "toObjectId": target,
                    "labels": [],
                }
            )
        except (KeyError, TypeError, ValueError):
            raise _bad("Invalid input JSON: from, to and types are required") from None
        except VendorError as exc:
            errors.append(_item_error(exc, {"fromObjectId": [str(entry.get("from", {}).get("id"))]}))
    return _batch_answer(results, errors, 201)


async def properties(sim: HubSpotSim, request: Request) -> Response:
    object_type = sim._type(request.path_params["object_type"])
    name = request.path_params.get("name")
    if request.method == "GET" and name:
        prop = sim.properties[object_type].get(name)
        if prop is None:
            raise VendorError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name} for {object_type}")
        return json_response(_property(object_type, prop))
    if request.method == "GET":
        return json_response({"results": [_property(object_type, p) for p in sim.properties[object_type].values()]})
    body = await read_json(request, lambda: _bad("Invalid input JSON"), decimals=False)
    if not isinstance(body, dict):
        raise _bad("Invalid input JSON")
    missing = [f for f in ("name", "label", "type", "fieldType", "groupName") if not body.get(f)]
    if missing:
        raise _bad(f"Invalid input JSON: {', '.join(missing)} required")
    if body["name"] in sim.properties[object_type]:
        raise VendorError(409, "OBJECT_ALREADY_EXISTS", f"A property named '{body['name']}' already exists.")
    sim.properties[object_type][body["name"]] = {
        "name": body["name"],
        "type": body["type"],
        "hasUniqueValue": bool(body.get("hasUniqueValue")),
        "label": body["label"],
        "groupName": body["groupName"],
        "fieldType": body["fieldType"],
    }
    return json_response(_property(object_type, sim.properties[object_type][body["name"]]), 201)


def _property(object_type: str, prop: Mapping[str, Any]) -> dict[str, Any]:
    now = _now_iso()
    return {
        "name": prop["name"],
        "label": prop.get("label") or prop["name"],
        "type": prop["type"],
        "fieldType": prop.get("fieldType") or ("number" if prop["type"] == "number" else "text"),
        "groupName": prop.get("groupName") or f"{object_type[:-1]}information",
        "description": "",
        "options": [],
        "hasUniqueValue": bool(prop.get("hasUniqueValue")),
        "hidden": False,
        "formField": False,
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "modificationMetadata": {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": prop["name"] in READ_ONLY},
        "createdAt": now,
        "updatedAt": now,
    }


def create_app(*, seed: int = 1, records: int = 0, **options: Any) -> Starlette:
    """The simulator app (``app.state.sim`` is its :class:`HubSpotSim`)."""
    sim = HubSpotSim(seed=seed, records=records, **options)
    assert sim.oauth is not None
    app = Starlette(
        routes=[
            Route("/oauth/v1/token", sim.oauth.endpoint, methods=["POST"]),
            Route("/crm/v3/objects/{object_type}/batch/{op}", VendorSim.api(batch_op), methods=["POST"]),
            Route("/crm/v3/objects/{object_type}/search", VendorSim.api(search), methods=["POST"]),
            Route("/crm/v3/objects/{object_type}", VendorSim.api(objects), methods=["GET", "POST"]),
            Route("/crm/v3/objects/{object_type}/{object_id}", VendorSim.api(one_object), methods=["GET", "PATCH", "DELETE"]),
            Route("/crm/v4/associations/{from_type}/{to_type}/batch/{op}", VendorSim.api(assoc_batch), methods=["POST"]),
            Route("/crm/v3/properties/{object_type}", VendorSim.api(properties), methods=["GET", "POST"]),
            Route("/crm/v3/properties/{object_type}/{name}", VendorSim.api(properties), methods=["GET"]),
        ]
    )
    app.state.sim = sim
    return app
