"""An in-memory QuickBooks Online company on the simulator toolkit: OAuth2 with rotating refresh
tokens, the query language (the subset the connector and common clients use), CDC, sparse updates
with SyncToken checks (5010 stale object), duplicate names (6240), batches (≤ 30 operations, a
Fault per item), ``minorversion`` required, 500 requests a minute per realm and 40 batches a minute
(429 with Fault 3001 ThrottleExceeded), and ``intuit_tid`` on every answer."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
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
    Collection,
    IntIds,
    RateLimitGate,
    TokenServer,
    VendorError,
    VendorSim,
    json_response,
    read_json,
    seeded,
)

__all__ = ["QuickBooksSim", "create_app", "DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET", "DEMO_REALM", "demo_refresh_token"]

DEMO_CLIENT_ID = "qbo-demo-client"
DEMO_CLIENT_SECRET = "qbo-demo-secret"
DEMO_REALM = "9130350000000001"
_SIGNING_KEY = b"apicenterd-quickbooks-sim"
NAME_MAX = 100
_CHECK_FIELDS = "Check the fields with accounts, customers, items, vendors or employees."
ENTITIES = ("Item", "Customer", "Invoice", "SalesReceipt", "Estimate")


def demo_refresh_token() -> str:
    return TokenServer(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, signing_key=_SIGNING_KEY).demo_refresh_token()


def fault(status: int, code: str, message: str, detail: str = "", *, kind: str = "ValidationFault", element: str = "") -> VendorError:
    exc = VendorError(status, code, message)
    exc.detail, exc.kind, exc.element = detail or message, kind, element  # type: ignore[attr-defined]
    return exc


def fault_body(exc: VendorError) -> dict[str, Any]:
    error = {"Message": exc.message, "Detail": getattr(exc, "detail", exc.message), "code": str(exc.code)}
    if getattr(exc, "element", ""):
        error["element"] = exc.element  # type: ignore[attr-defined]
    return {"Error": [error], "type": getattr(exc, "kind", "ValidationFault")}


_CONDITION = re.compile(
    r"\s*([A-Za-z][\w.]*)\s*(=|>=|<=|>|<|IN|LIKE)\s*(\((?:[^()']|'(?:[^'\\]|\\.)*')*\)|'(?:[^'\\]|\\.)*'|\w+)\s*", re.IGNORECASE
)
_QUERY = re.compile(
    r"^\s*SELECT\s+(\*|COUNT\(\*\))\s+FROM\s+(\w+)(?:\s+WHERE\s+(.*?))?(?:\s+ORDERBY\s+([\w.]+)(?:\s+(ASC|DESC))?)?"
    r"(?:\s+STARTPOSITION\s+(-?\d+))?(?:\s+MAXRESULTS\s+(-?\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'|(\w+)")


def _literal(text: str) -> Any:
    m = _LITERAL.fullmatch(text.strip())
    if not m:
        raise fault(400, "4000", "Error parsing query", f"QueryParserError: Encountered {text!r}")
    if m.group(1) is not None:
        return re.sub(r"\\(.)", r"\1", m.group(1))
    word = m.group(2)
    return {"true": True, "false": False}.get(word.lower(), word)


def _field(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if isinstance(value, dict) and "Address" in value:
        value = value["Address"]
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    return value


def _compare(value: Any, op: str, want: Any) -> bool:
    if op == "IN":
        return any(_compare(value, "=", w) for w in want)
    if op == "LIKE":
        pattern = "^" + re.escape(str(want)).replace("%", ".*") + "$"
        return value is not None and re.match(pattern, str(value), re.IGNORECASE) is not None
    if value is None:
        return False
    if op == "=":
        # string comparisons ignore case (QuickBooks' query language; [unverified] beyond names)
        return str(value).lower() == str(want).lower() if not isinstance(want, bool) else value is want
    a, b = str(value), str(want)
    if a[:4].isdigit() and "T" in a and b[:4].isdigit():  # times: compare as times
        a_t, b_t = datetime.fromisoformat(a), datetime.fromisoformat(b.replace("Z", "+00:00"))
        return {">=": a_t >= b_t, "<=": a_t <= b_t, ">": a_t > b_t, "<": a_t < b_t}[op]
    return {">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b}[op]


def _matcher(name: str, op: str, want: Any) -> tuple[int, Callable[[dict[str, Any]], bool]]:
    """A condition as (order, test): ``IN`` / ``=`` on strings by set membership (what :func:`_compare`
    decides, without a scan of the list per row), first; the rest as :func:`_compare` has it."""
    wants = want if op == "IN" else [want] if op == "=" else None
    if wants is not None and not any(isinstance(w, bool) for w in wants):
        wanted = {str(w).lower() for w in wants}
        return 0, lambda o: (v := _field(o, name)) is not None and str(v).lower() in wanted
    return 1, lambda o: _compare(_field(o, name), op, want)


class QuickBooksSim(VendorSim):
    """One realm's data and rules."""

    def __init__(self, *, seed: int = 1, records: int = 0, rate_limit: int = 500, batch_limit: int = 40, ttl: float = 3600.0):
        super().__init__()
        self.realm = DEMO_REALM
        self.oauth = TokenServer(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, signing_key=_SIGNING_KEY, ttl=ttl)
        self.clock = ChangeClock(truncate=True)
        throttled = lambda wait, gate: fault(  # noqa: E731
            429,
            "3001",
            "message=ThrottleExceeded; errorCode=003001; statusCode=429",
            "The request limit was reached.  Try again later",
            kind="SERVICE",
        )
        self.gates = [
            BearerAuth(
                self.oauth.valid,
                lambda: fault(
                    401, "3200", "message=AuthenticationFailed; errorCode=003200; statusCode=401", "Token expired", kind="AUTHENTICATION"
                ),
            ),
            RateLimitGate(rate_limit, 60.0, throttled),
            RateLimitGate(batch_limit, 60.0, throttled, applies=lambda r: r.url.path.endswith("/batch")),
            self.fault_gate,
        ]
        self.store: dict[str, Collection] = {e: Collection(IntIds()) for e in ENTITIES}
        self.names: dict[str, dict[str, int]] = {"Item": {}, "Customer": {}}  # lower-cased name -> Id (unique names)
        self.deleted: list[dict[str, Any]] = []
        rng = seeded(seed, "quickbooks")
        for n in range(records):
            self.write(
                "Item",
                "create",
                {
                    "Name": f"Product {n + 1}",
                    "Sku": f"SKU-{n + 1:05d}",
                    "Type": "NonInventory",
                    "UnitPrice": Decimal(rng.randint(100, 99999)) / 100,
                    "IncomeAccountRef": {"value": "1", "name": "Sales"},
                },
            )

    def error_response(self, exc: VendorError) -> Response:
        return json_response(
            {"Fault": fault_body(exc), "time": self.stamp()}, exc.status, {"intuit_tid": uuid.uuid4().hex, **(exc.headers or {})}
        )

    def after(self, request: Request, response: Response) -> Response:
        response.headers["intuit_tid"] = uuid.uuid4().hex
        return response

    async def before(self, request: Request) -> None:
        realm = request.path_params.get("realm")
        if realm is not None and realm != self.realm:
            raise fault(
                403,
                "3100",
                "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
                f"realm {realm}",
                kind="AUTHENTICATION",
            )
        mv = request.query_params.get("minorversion")
        if mv is not None and not mv.isdigit():
            raise fault(400, "4001", "Invalid minorversion", f"minorversion {mv!r} is not a number")

    def stamp(self) -> str:
        return self.clock.now().astimezone(timezone(timedelta(hours=-7))).isoformat(timespec="seconds")

    # -- the rules -----------------------------------------------------------------------------

    def _check(self, entity: str, obj: dict[str, Any], own_id: Any = None) -> None:
        if entity in ("Item", "Customer"):
            name_field = "Name" if entity == "Item" else "DisplayName"
            name = obj.get(name_field)
            if not name:
                raise fault(
                    400,
                    "2020",
                    "Required param missing, need to supply the required value for the API",
                    f"Required parameter {name_field} is missing in the request",
                    element=name_field,
                )
            if len(str(name)) > NAME_MAX:
                raise fault(400, "2050", "Length exceeds limit", f"Length of the field exceeds {NAME_MAX} chars", element=name_field)
            other_id = self.names[entity].get(str(name).lower())
            if other_id is not None and other_id != own_id:
                raise fault(
                    400,
                    "6240",
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : Another {entity.lower()} is already using this name. "
                    "Please use a different name.",
                )
        if entity == "Item":
            kind = obj.get("Type", "NonInventory")
            if kind not in ("Inventory", "NonInventory", "Service", "Category", "Group"):
                raise fault(400, "2010", "Request has invalid or unsupported property", f"Type {kind!r}", element="Type")
            if kind in ("Inventory", "NonInventory", "Service") and not obj.get("IncomeAccountRef"):
                raise fault(
                    400,
                    "6000",
                    "A business validation error has occurred while processing your request",
                    "Business Validation Error: You must select an income account for this item.",
                )
            if kind == "Inventory":
                for need in ("ExpenseAccountRef", "AssetAccountRef", "InvStartDate"):
                    if not obj.get(need):
                        raise fault(
                            400,
                            "2020",
                            "Required param missing, need to supply the required value for the API",
                            f"Required parameter {need} is missing in the request",
                            element=need,
                        )
            if obj.get("QtyOnHand") is not None and not obj.get("TrackQtyOnHand"):
                raise fault(
                    400,
                    "6000",
                    "A business validation error has occurred while processing your request",
                    "QtyOnHand is only for items that track quantity",
                )
        if entity in ("Invoice", "SalesReceipt", "Estimate"):
            if not _field(obj, "CustomerRef"):
                raise fault(
                    400,
                    "2020",
                    "Required param missing, need to supply the required value for the API",
                    "Required parameter CustomerRef is missing in the request",
                    element="CustomerRef",
                )
            lines = obj.get("Line")
            if not isinstance(lines, list) or not lines:
                raise fault(
                    400,
                    "2020",
                    "Required param missing, need to supply the required value for the API",
                    "Required parameter Line is missing in the request",
                    element="Line",
                )
            for line in lines:
                ref = _field(line, "SalesItemLineDetail.ItemRef")
                if ref not in (None, "SHIPPING_ITEM_ID") and int(ref) not in self.store["Item"]:
                    raise fault(
                        400,
                        "2500",
                        "Invalid Reference Id",
                        f"Invalid Reference Id : Something you're trying to use has been made inactive. {_CHECK_FIELDS}: Item {ref}",
                    )
            number = obj.get("DocNumber")
            if number and any(o.get("DocNumber") == number for i, o in self.store[entity].items() if i != own_id):
                raise fault(
                    400,
                    "6140",
                    "Duplicate Document Number Error",
                    "Duplicate Document Number Error : You must specify a different number. "
                    f"This number has already been used. DocNumber={number}",
                )
            if len(str(obj.get("DocNumber") or "")) > 21:
                raise fault(400, "2050", "Length exceeds limit", "Length of the field exceeds 21 chars", element="DocNumber")

    def _name_index(self, entity: str, old: dict[str, Any] | None, new: dict[str, Any] | None, obj_id: int) -> None:
        names = self.names.get(entity)
        if names is None:
            return
        field = "Name" if entity == "Item" else "DisplayName"
        if old is not None and names.get(str(old.get(field, "")).lower()) == obj_id:
            del names[str(old.get(field, "")).lower()]
        if new is not None and new.get(field):
            names[str(new[field]).lower()] = obj_id

    def write(self, entity: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        coll = self.store[entity]
        now = self.stamp()
        if operation == "create":
            if "Id" in body or "SyncToken" in body:
                raise fault(400, "2010", "Request has invalid or unsupported property", "Id and SyncToken are read-only on create")
            obj = {k: v for k, v in body.items() if k not in ("sparse", "MetaData", "domain")}
            if entity in ("Item", "Customer"):  # name lists have Active; transactions do not (Finance.xsd)
                obj.setdefault("Active", True)
            if entity == "Item":
                obj.setdefault("Type", "NonInventory")
                obj.setdefault("TrackQtyOnHand", obj.get("Type") == "Inventory")
            if entity == "Customer":
                obj.setdefault(
                    "DisplayName", obj.get("CompanyName") or " ".join(p for p in (obj.get("GivenName"), obj.get("FamilyName")) if p)
                )
            self._check(entity, obj)
            new_id = coll.next_id()
            obj.update(Id=str(new_id), SyncToken="0", domain="QBO", sparse=False, MetaData={"CreateTime": now, "LastUpdatedTime": now})
            coll[new_id] = obj
            self._name_index(entity, None, obj, new_id)
            return obj
        if operation == "update":
            raw_id = str(body.get("Id") or "")
            if not raw_id.isdigit() or int(raw_id) not in coll:
                raise fault(
                    400,
                    "610",
                    "Object Not Found",
                    f"Object Not Found : Something you're trying to use has been made inactive. {_CHECK_FIELDS} {entity} {raw_id}",
                )
            current = coll[int(raw_id)]
            if "SyncToken" not in body:
                raise fault(
                    400,
                    "2020",
                    "Required param missing, need to supply the required value for the API",
                    "Required parameter SyncToken is missing in the request",
                    element="SyncToken",
                )
            if str(body["SyncToken"]) != current["SyncToken"]:
                raise fault(
                    400,
                    "5010",
                    "Stale Object Error",
                    f"Stale Object Error : You and {uuid.uuid4().hex[:6]} were working on this at the same time. "
                    f"{uuid.uuid4().hex[:6]} finished before you did, so your work was not saved.",
                )
            changes = {k: v for k, v in body.items() if k not in ("Id", "SyncToken", "sparse", "MetaData", "domain")}
            updated = (
                {**current, **changes}
                if body.get("sparse")
                else {**{k: current[k] for k in ("Id", "SyncToken", "MetaData", "domain", "sparse")}, **changes}
            )
            self._check(entity, updated, own_id=int(raw_id))
            updated["SyncToken"] = str(int(current["SyncToken"]) + 1)
            updated["MetaData"] = {**current["MetaData"], "LastUpdatedTime": now}
            coll[int(raw_id)] = updated
            self._name_index(entity, current, updated, int(raw_id))
            return updated
        if operation == "delete":
            raw_id = str(body.get("Id") or "")
            if not raw_id.isdigit() or int(raw_id) not in coll:
                raise fault(400, "610", "Object Not Found", f"Object Not Found: {entity} {raw_id}")
            gone = coll.pop(int(raw_id))
            self._name_index(entity, gone, None, int(raw_id))
            self.deleted.append({"entity": entity, "Id": gone["Id"], "status": "Deleted", "MetaData": {"LastUpdatedTime": now}})
            return {"Id": gone["Id"], "status": "Deleted", "domain": "QBO"}
        raise fault(400, "2010", "Request has invalid or unsupported property", f"operation {operation!r}")

    def query(self, sql: str) -> dict[str, Any]:
        m = _QUERY.match(sql)
        if not m:
            raise fault(400, "4000", "Error parsing query", f"QueryParserError: Encountered an unexpected token in {sql[:80]!r}")
        select, entity, where, order, direction, start, size = m.groups()
        if entity not in self.store:
            raise fault(400, "4000", "Error parsing query", f"QueryParserError: Invalid entity {entity!r}")
        start_n, size_n = int(start or 1), int(size or 100)
        if start_n < 1:
            raise fault(400, "4001", "Invalid query", f"QueryValidationError: value {start_n} is too small. Min allowed value is 1")
        if not 1 <= size_n <= 1000:
            raise fault(400, "4001", "Invalid query", f"QueryValidationError: value {size_n} is out of range. Allowed 1..1000")
        conditions = []
        for part in re.split(r"\s+AND\s+", where or "", flags=re.IGNORECASE) if where else []:
            c = _CONDITION.fullmatch(part)
            if not c:
                raise fault(400, "4000", "Error parsing query", f"QueryParserError: Encountered {part[:60]!r}")
            name, op, value = c.group(1), c.group(2).upper(), c.group(3)
            want = [_literal(v) for v in re.findall(r"'(?:[^'\\]|\\.)*'|\w+", value[1:-1])] if op == "IN" else _literal(value)
            conditions.append((name, op, want))
        if entity in ("Item", "Customer") and not any(name == "Active" for name, _, _ in conditions):
            conditions.append(("Active", "IN", [True]))
        tests = sorted((_matcher(n, op, w) for n, op, w in conditions), key=lambda t: t[0])  # the selective ones first
        rows = [o for o in self.store[entity].values() if all(test(o) for _, test in tests)]
        key = order or "Id"
        rows.sort(key=lambda o: int(o["Id"]) if key == "Id" else str(_field(o, key) or ""), reverse=(direction or "").upper() == "DESC")
        if select.upper().startswith("COUNT"):
            return {"QueryResponse": {"totalCount": len(rows)}, "time": self.stamp()}
        window = rows[start_n - 1 : start_n - 1 + size_n]
        body: dict[str, Any] = {"startPosition": start_n, "maxResults": len(window)}
        if window:
            body[entity] = window
        return {"QueryResponse": body, "time": self.stamp()}


# -- routes ------------------------------------------------------------------------------------

_PATHS = {e.lower(): e for e in ENTITIES}


def _entity(request: Request) -> str:
    entity = _PATHS.get(request.path_params["entity"])
    if entity is None:
        raise fault(400, "2010", "Request has invalid or unsupported property", f"unsupported entity {request.path_params['entity']!r}")
    return entity


def _bad_body() -> VendorError:
    return fault(400, "2500", "Request has invalid or unsupported property", "The request body could not be parsed as JSON")


@VendorSim.api
async def query(sim: VendorSim, request: Request) -> Response:
    assert isinstance(sim, QuickBooksSim)
    sql = request.query_params.get("query")
    if not sql:
        raise fault(400, "4000", "Error parsing query", "QueryParserError: no query")
    return json_response(sim.query(sql))


@VendorSim.api
async def entity_create(sim: VendorSim, request: Request) -> Response:
    assert isinstance(sim, QuickBooksSim)
    entity = _entity(request)
    body = await read_json(request, _bad_body)
    if not isinstance(body, dict):
        raise _bad_body()
    operation = request.query_params.get("operation") or ("update" if "Id" in body else "create")
    obj = sim.write(entity, operation, body)
    return json_response({entity: obj, "time": sim.stamp()})


@VendorSim.api
async def entity_read(sim: VendorSim, request: Request) -> Response:
    assert isinstance(sim, QuickBooksSim)
    entity = _entity(request)
    raw = request.path_params["id"]
    obj = sim.store[entity].get(int(raw)) if raw.isdigit() else None
    if obj is None:
        raise fault(400, "610", "Object Not Found", f"Object Not Found : {entity} {raw}")
    return json_response({entity: obj, "time": sim.stamp()})


@VendorSim.api
async def company_info(sim: VendorSim, request: Request) -> Response:
    assert isinstance(sim, QuickBooksSim)
    return json_response(
        {"CompanyInfo": {"Id": "1", "SyncToken": "0", "CompanyName": "Sandbox Company", "Country": "US"}, "time": sim.stamp()}
    )


@VendorSim.api
async def cdc(sim: VendorSim, request: Request) -> Response:
    assert isinstance(sim, QuickBooksSim)
    entities = [e for e in (request.query_params.get("entities") or "").split(",") if e]
    since = request.query_params.get("changedSince")
    if not entities or not since:
        raise fault(
            400, "2020", "Required param missing, need to supply the required value for the API", "entities and changedSince are required"
        )
    try:
        when = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise fault(400, "2500", "Invalid date", f"changedSince {since!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if when < sim.clock.now() - timedelta(days=30):
        raise fault(400, "2500", "Invalid Date/Time", "changedSince may be at most 30 days back")
    responses = []
    for entity in entities:
        if entity not in sim.store:
            raise fault(400, "2500", "Invalid entity", f"cdc entity {entity!r}")
        rows = [o for o in sim.store[entity].values() if datetime.fromisoformat(o["MetaData"]["LastUpdatedTime"]) >= when]
        rows += [
            {k: v for k, v in d.items() if k != "entity"}
            for d in sim.deleted
            if d["entity"] == entity and datetime.fromisoformat(d["MetaData"]["LastUpdatedTime"]) >= when
        ]
        responses.append({entity: rows, "startPosition": 1, "maxResults": len(rows)} if rows else {})
    return json_response({"CDCResponse": [{"QueryResponse": responses}], "time": sim.stamp()})


@VendorSim.api
async def batch(sim: VendorSim, request: Request) -> Response:
    assert isinstance(sim, QuickBooksSim)
    body = await read_json(request, _bad_body)
    items = body.get("BatchItemRequest") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise fault(400, "2020", "Required param missing, need to supply the required value for the API", "BatchItemRequest is missing")
    if len(items) > 30:
        raise fault(
            400, "2050", "Length exceeds limit", f"Batch has {len(items)} items; at most 30 are allowed", element="BatchItemRequest"
        )
    out = []
    for item in items:
        bid = str(item.get("bId") or "")
        try:
            if "Query" in item:
                out.append({"bId": bid, **sim.query(item["Query"])})
                continue
            entity = next((k for k in item if k in sim.store), None)
            if entity is None:
                raise fault(400, "2010", "Request has invalid or unsupported property", "no entity in batch item")
            obj = sim.write(entity, str(item.get("operation") or "create"), item[entity])
            out.append({"bId": bid, entity: obj})
        except VendorError as exc:
            out.append({"bId": bid, "Fault": fault_body(exc)})
    return json_response({"BatchItemResponse": out, "time": sim.stamp()})


def create_app(*, seed: int = 1, records: int = 0, **options: Any) -> Starlette:
    sim = QuickBooksSim(seed=seed, records=records, **options)

    async def token(request: Request) -> Response:
        assert sim.oauth is not None
        return await sim.oauth.endpoint(request)

    base = "/v3/company/{realm}"
    app = Starlette(
        routes=[
            Route("/oauth2/v1/tokens/bearer", token, methods=["POST"]),
            Route(f"{base}/query", query, methods=["GET", "POST"]),
            Route(f"{base}/cdc", cdc, methods=["GET"]),
            Route(f"{base}/batch", batch, methods=["POST"]),
            Route(f"{base}/companyinfo/{{id}}", company_info, methods=["GET"]),
            Route(f"{base}/{{entity:str}}", entity_create, methods=["POST"]),
            Route(f"{base}/{{entity:str}}/{{id}}", entity_read, methods=["GET"]),
        ]
    )
    app.state.sim = sim
    return app
