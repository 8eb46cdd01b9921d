"""The admin API, the dashboard page and the webhook receiver: one Starlette application.

Every ``/api/v1`` route wants ``Authorization: Bearer <[admin] token>`` (compared in constant
time). ``/healthz``, ``/readyz``, ``/openapi.json`` and the dashboard page (which holds no data:
it asks for the token and calls the API) are open; ``/webhooks/<connection>`` is for vendors
and checked by the connector's :meth:`~apicenterd.plugin.Connector.webhook`.
"""

from __future__ import annotations

import hmac
import time
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..errors import ApicenterError, RecordError, WebhookRejected, pause_fix
from ..observe import metrics
from ..observe.logs import error_text, redactor
from ..plugin import WebhookRequest
from ..state import AuditEntry, DeadLetter, Run
from .backend import Backend, NotReady
from .openapi import openapi

__all__ = ["build_app", "API"]

API = "/api/v1"
MAX_JSON_BYTES = 64 * 1024
"""A request body to the admin API larger than this is refused (it takes ids and names only)."""


class Problem(Exception):
    """An answer other than 2xx: ``status`` and a message naming what is wrong."""

    def __init__(self, status: int, message: str, **extra: Any):
        self.status, self.message, self.extra = status, message, extra
        super().__init__(message)


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


def _run(r: Run) -> dict[str, Any]:
    return {
        "id": r.id,
        "flow": r.flow,
        "trigger": r.trigger,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "status": r.status,
        "counts": dict(r.counts),
        "error": r.error,
        "progress": dict(r.progress) if r.progress is not None and r.status == "running" else None,
    }


def _entry(e: AuditEntry) -> dict[str, Any]:
    """An audit entry, with what it wrote to the target (``writes``: op, entity, target id, field diff)."""
    out = {k: v for k, v in e.__dict__.items() if k != "diff"}
    out["writes"] = e.writes()
    return out


def _letter(d: DeadLetter, *, payload: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": d.id,
        "flow": d.flow,
        "entity": d.entity,
        "source_id": d.source_id,
        "key": d.key,
        "error": d.error,
        "attempts": d.attempts,
        "first_failed_at": d.first_failed_at,
        "last_failed_at": d.last_failed_at,
        "status": d.status,
        "purged_at": d.purged_at,
    }
    if payload:
        import json

        out["payload"] = json.loads(d.payload) if d.payload is not None else None
    return out


def _int(request: Request, name: str, default: int | None = None, *, maximum: int = 10_000) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise Problem(400, f"query parameter {name}: expected a whole number from 1 to {maximum}, got {text[:40]!r}")
    return int(text)


async def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object (empty if no body); 400 naming the problem otherwise."""
    raw = await request.body()
    if len(raw) > MAX_JSON_BYTES:
        raise Problem(413, f"request body larger than {MAX_JSON_BYTES} bytes")
    if not raw.strip():
        return {}
    import json

    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise Problem(400, f"request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Problem(400, f"request body: expected a JSON object, got {type(data).__name__}")
    return data


def build_app(backend: Backend, token: str) -> Starlette:
    """The ASGI application of one daemon; ``token`` guards ``/api/v1``."""
    expected = token.encode("utf-8")

    def authorised(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise Problem(401, "send the admin token as 'Authorization: Bearer <token>' ([admin] token)")
        if not hmac.compare_digest(given.strip().encode("utf-8"), expected):
            raise Problem(401, "wrong admin token")

    def route(path: str, methods: list[str], *, auth: bool = True):
        def wrap(fn):
            async def endpoint(request: Request) -> Response:
                try:
                    if auth:
                        authorised(request)
                    result = await fn(request)
                except Problem as exc:
                    result = _json({"error": exc.message, **exc.extra}, exc.status)
                except NotReady as exc:
                    result = _json({"error": str(exc)}, 503)
                if result.status_code == 401:
                    result.headers["WWW-Authenticate"] = 'Bearer realm="apicenterd"'
                return result

            routes.append(Route(path, endpoint, methods=methods))
            return fn

        return wrap

    routes: list[Route] = []

    # ------------------------------------------------------------------ open

    @route("/healthz", ["GET"], auth=False)
    async def healthz(request: Request) -> Response:
        return _json({"status": "ok", "version": __version__, "uptime_seconds": round(time.time() - backend.started_at, 1)})

    @route("/readyz", ["GET"], auth=False)
    async def readyz(request: Request) -> Response:
        ready, reason = backend.ready()
        if ready:
            try:
                await backend.store.check_file()
            except ApicenterError as exc:
                ready, reason = False, f"state: {exc}"
        return _json({"ready": ready, "reason": reason}, 200 if ready else 503)

    @route("/openapi.json", ["GET"], auth=False)
    async def openapi_json(request: Request) -> Response:
        return _json(openapi())

    @route("/", ["GET"], auth=False)
    async def dashboard(request: Request) -> Response:
        page = resources.files("apicenterd.admin").joinpath("static/dashboard.html").read_text(encoding="utf-8")
        return HTMLResponse(
            page,
            headers={
                # the page is self-contained: nothing from elsewhere, no inline handlers from data
                "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            },
        )

    # ------------------------------------------------------------------ flows

    async def flow_view(name: str, now: float) -> dict[str, Any]:
        resolved, store = backend.resolved, backend.store
        flow = resolved.flows[name]
        engine = backend.engine
        last = next(iter(await store.runs(name, 1)), None)
        finished = next((r for r in await store.runs(name, 10) if r.status != "running"), None)
        open_letters = len(await store.dead_letters(flow=name, status="open", limit=100_000))
        running = engine.running.get(name)
        paused = {c: engine.paused[c] for c in (flow.source, flow.target) if c in engine.paused}
        waits = {}
        for c in (flow.source, flow.target):
            until = await store.load_pause(c)  # a vendor's pause, kept across restarts
            live = engine.connectors.get(c)
            limiters = getattr(live.context, "limiters", None) if live is not None else None  # the daemon's Context
            if limiters is not None:  # and what its limiters hold now: a full window, a spent (day) budget
                until = max(until or 0.0, now + limiters.wait_remaining())
            if until is not None and until > now + 1:
                waits[c] = until
        budget_wait = engine.budget_wait(name) if hasattr(engine, "budget_wait") else 0.0
        budget_until = now + budget_wait if budget_wait > 1 else None  # its share of a day budget is spent
        progress = None
        if running is not None and last is not None and last.status == "running":
            if running.progress is not None:
                measured = running.progress.as_dict()
            else:  # pragma: no cover - a run in progress has its Progress
                done = sum(running.counts.values())
                elapsed = max(now - last.started_at, 1e-6)
                measured = {"done": done, "rate_per_second": round(done / elapsed, 2), "elapsed_seconds": round(elapsed, 1),
                            "total": None, "pages": 0, "total_pages": None, "remaining_seconds": None}  # fmt: skip
            progress = {"run_id": last.id, "counts": dict(running.counts), **measured}
        if not flow.enabled:
            state, reason = "disabled", "enabled = false"
        elif paused:
            state, reason = "paused", "; ".join(f"connection {c}: {r}" for c, r in paused.items())
        elif waits or budget_until is not None:
            state = "waiting"
            reasons = [f"connection {c}: waiting {until - now:.0f} s more for the vendor's rate limit" for c, until in waits.items()]
            if budget_until is not None:
                reasons.append(f"its share of the day budget is spent: goes on in {budget_wait:.0f} s (after the vendor's reset)")
            reason = "; ".join(reasons)
        elif progress is not None:
            state, reason = "running", None
        elif circuits := {c: e for c in (flow.source, flow.target) if (e := _open_circuit(engine, c)) is not None}:
            state = "failing"
            reason = "; ".join(f"connection {c}: circuit breaker open ({e or 'repeated failures'})" for c, e in circuits.items())
        elif finished is None:
            state, reason = "idle", "not run yet"
        elif finished.status == "failed" or finished.counts.get("failed", 0) > 0:
            state = "failing"
            reason = finished.error or f"{finished.counts.get('failed', 0)} record(s) failed in run {finished.id}"
        else:
            state, reason = "ok", None
        next_run = None
        if flow.enabled and state != "paused":
            next_run = flow.schedule.next_after(last.started_at) if last is not None else now
        return {
            "name": name,
            "entity": str(flow.entity),
            "source": flow.source,
            "target": flow.target,
            "schedule": flow.schedule.describe(),
            "enabled": flow.enabled,
            "state": state,
            "reason": redactor.scrub(reason) if reason else None,
            "cursor": await store.get_cursor(name),
            "last_run": _run(finished) if finished is not None else None,
            "next_run_at": next_run,
            "progress": progress,
            "open_dead_letters": open_letters,
            "waiting_until": max([*waits.values(), *([budget_until] if budget_until is not None else [])], default=None),
            "paused_connections": sorted(paused),
            "budget": _budget_view(engine, flow, finished),
        }

    def _budget_view(engine: Any, flow: Any, finished: Any) -> dict[str, Any] | None:
        """The flow's share of its connections' day budgets (None: it uses none)."""
        budgets = engine._budgets_of(flow) if hasattr(engine, "_budgets_of") else []
        if not budgets:
            return None
        deferred = finished is not None and finished.status == "deferred"
        counts = finished.counts if deferred else {}
        return {
            "connections": sorted(b.connection for b in budgets),
            "priority": flow.priority,
            "calls_left": min(b.left() for b in budgets),
            "deferred": deferred,
            "resume_at": counts.get("resume_at") or None,
            "backlog": counts.get("backlog"),
            "expected_completion": counts.get("complete_at") or None,
        }

    def known_flow(name: str) -> str:
        if name not in backend.resolved.flows:
            defined = ", ".join(sorted(backend.resolved.flows)) or "none"
            raise Problem(404, f"no flow named {name!r} (defined: {defined})")
        return name

    @route(f"{API}/flows", ["GET"])
    async def flows(request: Request) -> Response:
        now = time.time()
        return _json({"flows": [await flow_view(name, now) for name in backend.resolved.flows]})

    @route(f"{API}/flows/{{name}}", ["GET"])
    async def flow(request: Request) -> Response:
        return _json(await flow_view(known_flow(request.path_params["name"]), time.time()))

    @route(f"{API}/flows/{{name}}/run", ["POST"])
    async def run_flow(request: Request) -> Response:
        name = known_flow(request.path_params["name"])
        body = await _body(request)
        wait, full = body.get("wait", False), body.get("full", False)
        for key, value in (("wait", wait), ("full", full)):
            if not isinstance(value, bool):
                raise Problem(400, f"{key}: expected true or false, got {value!r:.40}")
        paused = backend.paused_connections(name)
        if paused:
            raise Problem(
                409,
                f"flow {name}: connection {', '.join(paused)} is paused (credentials rejected): "
                + (backend.engine.pause_fixes.get(paused[0]) or pause_fix(paused[0])),
            )
        if not wait:
            backend.start_run(name, "api", full=full)
            return _json({"flow": name, "started": True}, 202)
        try:
            result = await backend.run_flow(name, "api", full=full)
        except ApicenterError as exc:
            raise Problem(500, f"flow {name} could not run: {error_text(exc)}") from None
        return _json(result.as_dict())

    @route(f"{API}/flows/{{name}}/reset", ["POST"])
    async def reset(request: Request) -> Response:
        name = known_flow(request.path_params["name"])
        before = await backend.store.get_cursor(name)
        if not await backend.engine.reset_cursor(name):
            raise NotReady("the daemon is stopping")
        return _json({"flow": name, "cursor_was": before, "cursor": None})

    # ------------------------------------------------------------------ runs and audit

    @route(f"{API}/runs", ["GET"])
    async def runs(request: Request) -> Response:
        flow = request.query_params.get("flow") or None
        limit = _int(request, "limit", 20)
        assert limit is not None
        return _json({"runs": [_run(r) for r in await backend.store.runs(flow, limit)]})

    @route(f"{API}/audit", ["GET"])
    async def audit(request: Request) -> Response:
        entries = await backend.store.audit(
            flow=request.query_params.get("flow") or None,
            source_id=request.query_params.get("source_id") or None,
            run_id=_int(request, "run", None, maximum=2**63 - 1),
            limit=_int(request, "limit", 100) or 100,
        )
        return _json({"entries": [_entry(e) for e in entries]})

    @route(f"{API}/records/{{flow}}/{{source_id:path}}", ["GET"])
    async def record(request: Request) -> Response:
        """A record's story: every audit entry, its link in the target, its dead letter, and what
        its failed version would change in the target now (the field diff)."""
        name = known_flow(request.path_params["flow"])
        source_id = request.path_params["source_id"]
        flow = backend.resolved.flows[name]
        store = backend.store
        entries = await store.audit(flow=name, source_id=source_id, limit=_int(request, "limit", 100) or 100)
        link = await store.get_link(flow.source, str(flow.entity), source_id, flow.target)
        letters = await store.dead_letters(flow=name, status=None, limit=100_000)
        letter = next((d for d in sorted(letters, key=lambda d: -d.id) if d.source_id == source_id), None)
        if not entries and link is None and letter is None:
            raise Problem(404, f"flow {name} has no record {source_id!r} in its audit trail, links or dead letters")
        diff = None
        if letter is not None and letter.payload is not None and request.query_params.get("diff", "1") != "0":
            diff = await _diff(backend, name, letter)
        return _json(
            {
                "flow": name,
                "source": flow.source,
                "target": flow.target,
                "entity": str(flow.entity),
                "source_id": source_id,
                "link": None if link is None else {"target_id": link.target_id, "updated_at": link.updated_at},
                "audit": [_entry(e) for e in entries],
                "dead_letter": None if letter is None else _letter(letter, payload=True),
                "diff": diff,
            }
        )

    # ------------------------------------------------------------------ dead letters

    @route(f"{API}/dead-letters", ["GET"])
    async def dead_letters(request: Request) -> Response:
        status = request.query_params.get("status", "open")
        if status not in ("open", "resolved", "discarded", "any"):
            raise Problem(400, f"status: expected open, resolved, discarded or any, got {status[:40]!r}")
        letters = await backend.store.dead_letters(
            flow=request.query_params.get("flow") or None,
            error=request.query_params.get("error") or None,
            status=None if status == "any" else status,
            limit=_int(request, "limit", 1000, maximum=100_000) or 1000,
        )
        return _json({"dead_letters": [_letter(d) for d in letters]})

    @route(f"{API}/dead-letters/{{id:int}}", ["GET"])
    async def dead_letter(request: Request) -> Response:
        letters = await backend.store.dead_letters(ids=[request.path_params["id"]], status=None)
        if not letters:
            raise Problem(404, f"no dead letter {request.path_params['id']}")
        return _json(_letter(letters[0], payload=True))

    async def select(request: Request, action: str) -> list[DeadLetter]:
        body = await _body(request)
        unknown = sorted(set(body) - {"ids", "flow", "error", "all"})
        if unknown:
            raise Problem(400, f"{action}: unknown field(s) {', '.join(unknown)} (takes ids, flow, error, all)")
        ids, flow, error, every = body.get("ids") or [], body.get("flow"), body.get("error"), body.get("all", False)
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
            raise Problem(400, f"{action}: ids: expected a list of dead letter ids (whole numbers)")
        for field, value in (("flow", flow), ("error", error)):
            if value is not None and not isinstance(value, str):
                raise Problem(400, f"{action}: {field}: expected a string")
        if not isinstance(every, bool):
            raise Problem(400, f"{action}: all: expected true or false")
        if not (ids or flow or error or every):
            raise Problem(400, f"{action}: name dead letters by ids, or give flow, error or all")
        letters = list(await backend.store.dead_letters(flow=flow, error=error, ids=ids or None, status="open", limit=100_000))
        missing = sorted(set(ids) - {d.id for d in letters})
        if missing:  # refuse the whole request: a typo must not act on the other ids alone
            raise Problem(404, f"{action}: no open dead letter with id(s) {', '.join(map(str, missing))}; nothing done", missing=missing)
        return letters

    @route(f"{API}/dead-letters/replay", ["POST"])
    async def replay(request: Request) -> Response:
        letters = await select(request, "replay")
        purged = [d.id for d in letters if d.purged]
        letters = [d for d in letters if not d.purged]
        try:
            counts = await backend.engine.replay(letters) if letters else {}
        except RecordError as exc:
            raise Problem(409, str(exc)) from None
        return _json({"replayed": len(letters), "counts": counts, "not_replayed_purged": purged})

    @route(f"{API}/dead-letters/discard", ["POST"])
    async def discard(request: Request) -> Response:
        letters = await select(request, "discard")
        done = await backend.store.set_dead_letter_status([d.id for d in letters], "discarded")
        return _json({"discarded": done})

    # ------------------------------------------------------------------ connections and the daemon

    @route(f"{API}/connections", ["GET"])
    async def connections(request: Request) -> Response:
        engine, now = backend.engine, time.time()
        items = []
        for name, conn in backend.resolved.connections.items():
            until = await backend.store.load_pause(name)
            opened = engine.connectors.get(name)
            circuit_open, circuit_error = opened.context.circuit() if opened is not None else (False, "")
            items.append(
                {
                    "name": name,
                    "connector": conn.connector.name,
                    "paused": name in engine.paused,
                    "paused_reason": engine.paused.get(name),
                    "rate_limited_until": until if until is not None and until > now else None,
                    "circuit_open": circuit_open,
                    "circuit_error": circuit_error or None,
                    "webhooks": conn.connector.takes_webhooks(),
                }
            )
        return _json({"connections": items})

    @route(f"{API}/daemons", ["GET"])
    async def daemons(request: Request) -> Response:
        """The daemons sharing the state, what each runs, and the runs waiting for a free daemon."""
        try:
            return _json(await backend.daemons())
        except NotReady:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. PostgreSQL restarting: say so, the daemon goes on
            raise Problem(503, f"the job queue cannot be read now: {exc}") from None

    @route(f"{API}/reload", ["POST"])
    async def reload(request: Request) -> Response:
        result, reason = await backend.reload()
        return _json({"result": result, "reason": reason}, 200 if result == "applied" else 409)

    @route(f"{API}/chart", ["GET"])
    async def chart(request: Request) -> Response:
        """Records handled per flow over the last ``hours`` (from the run history), in ``buckets`` slices."""
        hours = _int(request, "hours", 24, maximum=24 * 90) or 24
        buckets = _int(request, "buckets", 24, maximum=500) or 24
        now = time.time()
        start = now - hours * 3600
        width = hours * 3600 / buckets
        series: dict[str, list[int]] = {name: [0] * buckets for name in backend.resolved.flows}
        for r in await backend.store.runs(None, 10_000):
            at = r.finished_at or r.started_at
            if at < start or r.flow not in series:
                continue
            i = min(int((at - start) // width), buckets - 1)
            series[r.flow][i] += sum(v for k, v in r.counts.items() if k != "unchanged")
        return _json({"start": start, "bucket_seconds": width, "series": series})

    # ------------------------------------------------------------------ webhooks

    async def webhook(request: Request) -> Response:
        name = request.path_params["connection"]
        conn = backend.resolved.connections.get(name)
        if conn is None or not conn.connector.takes_webhooks():
            metrics.webhooks.labels("", "unknown").inc()
            why = "no such connection" if conn is None else f"connector {conn.connector.name!r} takes no webhooks"
            return _json({"error": f"webhook for {name[:60]!r}: {why}"}, 404)
        limit = backend.resolved.config.admin.max_webhook_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            metrics.webhooks.labels(name, "too_large").inc()
            return _json({"error": f"webhook body larger than {limit} bytes ([admin] max_webhook_bytes)"}, 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                metrics.webhooks.labels(name, "too_large").inc()
                return _json({"error": f"webhook body larger than {limit} bytes ([admin] max_webhook_bytes)"}, 413)
        try:
            engine = backend.engine
            await engine.open([name])
        except NotReady as exc:
            metrics.webhooks.labels(name, "unavailable").inc()
            return _json({"error": str(exc)}, 503)
        except Exception as exc:  # noqa: BLE001 - the connection cannot open (e.g. a bad key): the vendor retries later
            metrics.webhooks.labels(name, "unavailable").inc()
            backend.log.error("webhook not taken: the connection cannot open", connection=name, error=error_text(exc))
            return _json({"error": f"connection {name} cannot open now"}, 503)
        wh = WebhookRequest(request.method, str(request.url), {k.lower(): v for k, v in request.headers.items()}, bytes(body))
        try:
            events = list(await engine.connectors[name].webhook(wh))
        except WebhookRejected as exc:
            result = "malformed" if exc.malformed else "unverified"
            metrics.webhooks.labels(name, result).inc()
            backend.log.warning("webhook rejected", connection=name, result=result, reason=exc.reason)
            return _json({"error": f"webhook rejected: {exc.reason}"}, 400 if exc.malformed else 401)
        entities = {e.entity for e in events}
        flows = [
            f.name for f in backend.resolved.flows.values() if f.enabled and f.source == name and (f.read_entity or f.entity) in entities
        ]
        scheduled = [f for f in flows if backend.debouncer.trigger(f)]
        metrics.webhooks.labels(name, "accepted").inc()
        (backend.log.info if scheduled else backend.log.debug)(  # a burst logs once, when it schedules runs
            "webhook accepted",
            connection=name,
            events=[e.kind or str(e.entity) for e in events][:20],
            flows=flows,
            scheduled=scheduled,
        )
        return _json({"accepted": len(events), "flows": flows}, 202)

    routes.append(Route("/webhooks/{connection}", webhook, methods=["POST"]))
    return Starlette(routes=routes)


def _open_circuit(engine: Any, connection: str) -> str | None:
    """The last error of ``connection``'s circuit breaker while it is open; None when closed (or not opened yet)."""
    opened = engine.connectors.get(connection)
    if opened is None:
        return None
    is_open, error = opened.context.circuit()
    return str(error) if is_open else None


async def _diff(backend: Backend, flow_name: str, letter: DeadLetter) -> dict[str, Any] | None:
    """What the failed record would change in the target now: the target's record looked up by key
    (one call) against the dead letter's record, field by field; None if it cannot be told."""
    from ..compare import differing_fields
    from ..dryrun import plan
    from ..model import RECORD_TYPES, Entity

    flow = backend.resolved.flows[flow_name]
    try:
        engine = backend.engine
        record = RECORD_TYPES[Entity(letter.entity)].model_validate_json(letter.payload or "")
        await engine.open([flow.target])
        target = engine.connectors[flow.target]
        fields = frozenset(target.written_fields.get(flow.entity) or type(record).model_fields)
        found = await target.find(flow.entity, record.key())
    except Exception as exc:  # noqa: BLE001 - a diff is a help, not a must: say why there is none
        return {"error": f"no diff: {error_text(exc)}"}
    if found is None or found.record is None:
        p = plan("create", str(flow.entity), None, record, fields, None)
    else:
        p = plan(
            "update",
            str(flow.entity),
            found.id,
            record,
            frozenset(differing_fields(record, found.record, fields)) or frozenset(),
            found.record,
        )
    return {"op": p.op, "target_id": p.target_id, "key": p.key, "fields": p.diff}
