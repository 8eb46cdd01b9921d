"""The admin API's OpenAPI 3.1 description, maintained by hand next to :mod:`.app`. The tests check
every answer the API gives against it (``tests/test_admin_api.py``), so the two cannot drift apart."""

from __future__ import annotations

from typing import Any

from .. import __version__

__all__ = ["openapi"]

_NUM = {"type": "number"}
_STR = {"type": "string"}
_INT = {"type": "integer"}
_TIME = {"type": ["number", "null"], "description": "Unix time (seconds)"}
_NSTR = {"type": ["string", "null"]}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required if required is not None else list(props),
        "additionalProperties": False,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}, "description": "records per action"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {"error": _STR, "missing": {"type": "array", "items": _INT}},
        "required": ["error"],
        "additionalProperties": False,
    },
    "Run": _obj(
        {
            "id": _INT,
            "flow": _STR,
            "trigger": {"type": "string", "description": "schedule, cli, replay, api, webhook"},
            "started_at": _NUM,
            "finished_at": _TIME,
            "status": {"type": "string", "enum": ["running", "ok", "failed", "stopped", "deferred"]},
            "counts": COUNTS,
            "error": _NSTR,
            "progress": {"oneOf": [_ref("RunProgress"), {"type": "null"}], "description": "of a running run; null otherwise"},
        }
    ),
    "RunResult": {
        "type": "object",
        "properties": {
            "flow": _STR,
            "run_id": _INT,
            "status": {"type": "string", "enum": ["ok", "failed", "stopped", "deferred"]},
            "error": _NSTR,
            "duration_seconds": _NUM,
        },
        "required": ["flow", "run_id", "status", "error", "duration_seconds"],
        "additionalProperties": {"type": "integer"},
    },
    "Progress": _obj(
        {
            "run_id": _INT,
            "done": _INT,
            "counts": COUNTS,
            "rate_per_second": _NUM,
            "elapsed_seconds": _NUM,
            "total": {
                "type": ["integer", "null"],
                "description": "records the read has, as far as the source said (a total, or pages × items per page)",
            },
            "pages": _INT,
            "total_pages": {"type": ["integer", "null"]},
            "remaining_seconds": {"type": ["number", "null"], "description": "estimate at the rate so far; null when the total is unknown"},
        }
    ),
    "RunProgress": {
        "type": "object",
        "description": "a running run's progress as last saved (every few seconds)",
        "properties": {
            "done": _INT,
            "rate_per_second": _NUM,
            "elapsed_seconds": _NUM,
            "total": {"type": ["integer", "null"]},
            "pages": _INT,
            "total_pages": {"type": ["integer", "null"]},
            "remaining_seconds": {"type": ["number", "null"]},
        },
    },
    "Flow": _obj(
        {
            "name": _STR,
            "entity": _STR,
            "source": _STR,
            "target": _STR,
            "schedule": _STR,
            "enabled": {"type": "boolean"},
            "state": {
                "type": "string",
                "enum": ["ok", "failing", "paused", "waiting", "running", "idle", "disabled"],
                "description": "paused: a connection's credentials were rejected; waiting: a connection's rate limit holds "
                "its calls (a vendor pause, a full window, a spent day budget); failing: the last run failed, records "
                "failed, or a circuit breaker is open",
            },
            "reason": _NSTR,
            "cursor": _NSTR,
            "last_run": {"oneOf": [_ref("Run"), {"type": "null"}], "description": "the last finished run"},
            "next_run_at": _TIME,
            "progress": {"oneOf": [_ref("Progress"), {"type": "null"}], "description": "the run in progress"},
            "open_dead_letters": _INT,
            "waiting_until": _TIME,
            "paused_connections": {
                "type": "array",
                "items": _STR,
                "description": "the flow's connections paused because their credentials were rejected: "
                "`apicenterd auth CONNECTION`, then reload",
            },
            "budget": {
                "oneOf": [
                    _obj(
                        {
                            "connections": {"type": "array", "items": _STR},
                            "priority": _INT,
                            "calls_left": _INT,
                            "deferred": {"type": "boolean"},
                            "resume_at": _TIME,
                            "backlog": {"type": ["integer", "null"]},
                            "expected_completion": _TIME,
                        }
                    ),
                    {"type": "null"},
                ],
                "description": "on a connection with a day budget (null: none): its priority, the calls left in "
                "the day (the smallest), whether its last run was deferred, when it goes on, the records its "
                "source still has (when it can tell) and when it is expected to be done at its share",
            },
        },
        required=[
            "name", "entity", "source", "target", "schedule", "enabled", "state", "reason", "cursor", "last_run",
            "next_run_at", "progress", "open_dead_letters", "waiting_until", "paused_connections",
        ],  # fmt: skip
    ),
    "AuditEntry": _obj(
        {
            "id": {"type": ["integer", "null"]},
            "flow": _STR,
            "run_id": _INT,
            "entity": _STR,
            "source_id": _STR,
            "action": _STR,
            "target_id": _NSTR,
            "key": _NSTR,
            "reason": _NSTR,
            "at": _NUM,
            "writes": {
                "type": "array",
                "description": "what went to the target for this record: one item per write (the record, and in an "
                "order's case its debtor and missing products), each with the field diff (from: the target's value "
                "before, where it was read; to: what was written)",
                "items": {
                    "type": "object",
                    "properties": {
                        "op": {"type": "string", "enum": ["create", "update"]},
                        "entity": _STR,
                        "target_id": _NSTR,
                        "fields": {"type": "object", "additionalProperties": {"type": "object"}},
                    },
                    "required": ["op", "entity", "target_id", "fields"],
                },
            },
        }
    ),
    "DeadLetter": {
        "type": "object",
        "properties": {
            "id": _INT,
            "flow": _STR,
            "entity": _STR,
            "source_id": _STR,
            "key": _NSTR,
            "error": _STR,
            "attempts": _INT,
            "first_failed_at": _NUM,
            "last_failed_at": _NUM,
            "status": {"type": "string", "enum": ["open", "resolved", "discarded"]},
            "purged_at": _TIME,
            "payload": {"type": ["object", "null"], "description": "the failed record (only in GET /dead-letters/{id}); null once purged"},
        },
        "required": [
            "id",
            "flow",
            "entity",
            "source_id",
            "key",
            "error",
            "attempts",
            "first_failed_at",
            "last_failed_at",
            "status",
            "purged_at",
        ],
        "additionalProperties": False,
    },
    "Selection": {
        "type": "object",
        "properties": {
            "ids": {"type": "array", "items": {"type": "integer", "minimum": 1}},
            "flow": _STR,
            "error": {"type": "string", "description": "every open dead letter whose error contains this text"},
            "all": {"type": "boolean"},
        },
        "additionalProperties": False,
        "description": "which open dead letters: by ids, or all of a flow, with an error text, or all",
    },
    "Diff": {
        "type": "object",
        "properties": {
            "op": {"type": "string", "enum": ["create", "update"]},
            "target_id": _NSTR,
            "key": _STR,
            "fields": {"type": "object", "additionalProperties": _obj({"from": {}, "to": {}})},
            "error": _STR,
        },
        "additionalProperties": False,
    },
    "Record": _obj(
        {
            "flow": _STR,
            "source": _STR,
            "target": _STR,
            "entity": _STR,
            "source_id": _STR,
            "link": {"oneOf": [_obj({"target_id": _STR, "updated_at": _NUM}), {"type": "null"}]},
            "audit": {"type": "array", "items": _ref("AuditEntry")},
            "dead_letter": {"oneOf": [_ref("DeadLetter"), {"type": "null"}]},
            "diff": {
                "oneOf": [_ref("Diff"), {"type": "null"}],
                "description": "for a record in the dead-letter queue: what its failed version would write to the target now",
            },
        }
    ),
    "Connection": _obj(
        {
            "name": _STR,
            "connector": _STR,
            "paused": {"type": "boolean"},
            "paused_reason": _NSTR,
            "rate_limited_until": _TIME,
            "circuit_open": {"type": "boolean"},
            "circuit_error": _NSTR,
            "webhooks": {"type": "boolean", "description": "whether the connector takes webhooks on /webhooks/{name}"},
        }
    ),
}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERR = _json(_ref("Error"), "an error naming what is wrong")
AUTH = {"401": _json(_ref("Error"), "no or a wrong token"), "503": _json(_ref("Error"), "the daemon is starting, reloading or stopping")}


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _p(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or _STR}


def _op(
    summary: str, responses: dict[str, Any], *, params: list[Any] | None = None, body: dict[str, Any] | None = None, auth: bool = True
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**responses, **(AUTH if auth else {})}}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    if not auth:
        op["security"] = []
    return op


PATHS: dict[str, Any] = {
    "/healthz": {
        "get": _op(
            "Liveness: the process answers",
            {"200": _json(_obj({"status": {"const": "ok"}, "version": _STR, "uptime_seconds": _NUM}))},
            auth=False,
        )
    },
    "/readyz": {
        "get": _op(
            "Readiness: the flows are served and the state file is usable",
            {
                "200": _json(_obj({"ready": {"type": "boolean"}, "reason": _STR})),
                "503": _json(_obj({"ready": {"type": "boolean"}, "reason": _STR}), "not ready, and why"),
            },
            auth=False,
        )
    },
    "/api/v1/flows": {
        "get": _op(
            "Every flow with its state, last and next run, progress and open dead letters",
            {"200": _json(_obj({"flows": {"type": "array", "items": _ref("Flow")}}))},
        )
    },
    "/api/v1/flows/{name}": {"get": _op("One flow", {"200": _json(_ref("Flow")), "404": ERR}, params=[_p("name")])},
    "/api/v1/flows/{name}/run": {
        "post": _op(
            "Run the flow now: at once in the background (202), or with wait=true when it is done, with its counts",
            {
                "200": _json(_ref("RunResult")),
                "202": _json(_obj({"flow": _STR, "started": {"type": "boolean"}})),
                "400": ERR,
                "404": ERR,
                "409": ERR,
                "500": ERR,
            },
            params=[_p("name")],
            body={
                "type": "object",
                "properties": {
                    "wait": {"type": "boolean"},
                    "full": {"type": "boolean", "description": "read everything, the cursor ignored for this run (links stay)"},
                },
                "additionalProperties": False,
            },
        )
    },
    "/api/v1/flows/{name}/reset": {
        "post": _op(
            "Forget the flow's cursor (its links stay, so nothing is created twice); the next run reads everything",
            {"200": _json(_obj({"flow": _STR, "cursor_was": _NSTR, "cursor": {"type": "null"}})), "404": ERR},
            params=[_p("name")],
        )
    },
    "/api/v1/runs": {
        "get": _op(
            "Recent runs, newest first",
            {"200": _json(_obj({"runs": {"type": "array", "items": _ref("Run")}})), "400": ERR},
            params=[_q("flow", _STR, "only this flow"), _q("limit", _INT, "at most this many (20)")],
        )
    },
    "/api/v1/audit": {
        "get": _op(
            "The audit trail, newest first",
            {"200": _json(_obj({"entries": {"type": "array", "items": _ref("AuditEntry")}})), "400": ERR},
            params=[
                _q("flow", _STR, "only this flow"),
                _q("source_id", _STR, "only this source record"),
                _q("run", _INT, "only this run"),
                _q("limit", _INT, "at most this many (100)"),
            ],
        )
    },
    "/api/v1/records/{flow}/{source_id}": {
        "get": _op(
            "One record's story: audit trail, link, dead letter and field diff",
            {"200": _json(_ref("Record")), "404": ERR},
            params=[_p("flow"), _p("source_id"), _q("diff", {"enum": ["0", "1"]}, "0: no look-up in the target for the diff")],
        )
    },
    "/api/v1/dead-letters": {
        "get": _op(
            "Dead letters",
            {"200": _json(_obj({"dead_letters": {"type": "array", "items": _ref("DeadLetter")}})), "400": ERR},
            params=[
                _q("flow", _STR, "only this flow"),
                _q("error", _STR, "only those whose error contains this text"),
                _q("status", {"enum": ["open", "resolved", "discarded", "any"]}, "open (default)"),
                _q("limit", _INT, "at most this many (1000)"),
            ],
        )
    },
    "/api/v1/dead-letters/{id}": {
        "get": _op("One dead letter with its record", {"200": _json(_ref("DeadLetter")), "404": ERR}, params=[_p("id", _INT)])
    },
    "/api/v1/dead-letters/replay": {
        "post": _op(
            "Take open dead letters through their flow again (the same idempotent path)",
            {
                "200": _json(_obj({"replayed": _INT, "counts": COUNTS, "not_replayed_purged": {"type": "array", "items": _INT}})),
                "400": ERR,
                "404": ERR,
                "409": ERR,
            },
            body=_ref("Selection"),
        )
    },
    "/api/v1/dead-letters/discard": {
        "post": _op(
            "Give up on open dead letters", {"200": _json(_obj({"discarded": _INT})), "400": ERR, "404": ERR}, body=_ref("Selection")
        )
    },
    "/api/v1/connections": {
        "get": _op(
            "Connections with their pause, rate-limit and circuit state",
            {"200": _json(_obj({"connections": {"type": "array", "items": _ref("Connection")}}))},
        )
    },
    "/api/v1/daemons": {
        "get": _op(
            "The daemons sharing the state (PostgreSQL: every one; SQLite: this one), what each runs, and the runs waiting",
            {
                "200": _json(
                    _obj(
                        {
                            "mode": {"enum": ["sqlite", "postgresql"]},
                            "this_daemon": _STR,
                            "daemons": {
                                "type": "array",
                                "items": _obj(
                                    {
                                        "worker_id": {"type": ["integer", "null"]},
                                        "name": _NSTR,
                                        "started_at": {"type": ["number", "null"]},
                                        "heartbeat_age": _NUM,
                                        "alive": {"type": "boolean"},
                                        "running": {"type": "array", "items": _STR},
                                    },
                                    ["worker_id", "name", "alive", "running"],
                                ),
                            },
                            "waiting": {
                                "type": "array",
                                "items": _obj({"flow": _STR, "due": _NUM, "overdue": _NUM}, ["flow", "due", "overdue"]),
                            },
                            "stalled": {"type": "array", "items": _STR},
                        },
                        ["mode", "this_daemon", "daemons", "waiting", "stalled"],
                    )
                ),
                "503": ERR,
            },
        )
    },
    "/api/v1/reload": {
        "post": _op(
            "Reload the configuration file (as SIGHUP): applied, or refused with the reason (the old one keeps running)",
            {
                "200": _json(
                    _obj(
                        {
                            "result": {"const": "applied"},
                            "reason": {
                                "type": ["string", "null"],
                                "description": "changed settings the reload could not apply (they need a restart), if any",
                            },
                        }
                    )
                ),
                "409": _json(_obj({"result": {"const": "refused"}, "reason": _STR})),
            },
        )
    },
    "/api/v1/chart": {
        "get": _op(
            "Records written or failed per flow over time (from the run history), for the dashboard's chart",
            {
                "200": _json(
                    _obj(
                        {
                            "start": _NUM,
                            "bucket_seconds": _NUM,
                            "series": {"type": "object", "additionalProperties": {"type": "array", "items": _INT}},
                        }
                    )
                ),
                "400": ERR,
            },
            params=[_q("hours", _INT, "how far back (24)"), _q("buckets", _INT, "how many slices (24)")],
        )
    },
    "/webhooks/{connection}": {
        "post": _op(
            "A vendor's webhook for a connection: verified by its connector, answered at once; runs the flows that read "
            "what it announces (debounced). Never writes to a target by itself.",
            {
                "202": _json(_obj({"accepted": _INT, "flows": {"type": "array", "items": _STR}})),
                "400": _json(_ref("Error"), "malformed"),
                "401": _json(_ref("Error"), "not verified (no or a wrong signature)"),
                "404": _json(_ref("Error"), "no such connection, or its connector takes no webhooks"),
                "413": _json(_ref("Error"), "larger than [admin] max_webhook_bytes"),
                "503": _json(_ref("Error"), "the daemon is not ready; the vendor should retry"),
            },
            params=[_p("connection")],
            auth=False,
        )
    },
}


def openapi() -> dict[str, Any]:
    """The OpenAPI document (a new dict each call)."""
    import copy

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "apicenterd admin API",
            "version": __version__,
            "description": "The daemon's admin API. Send the [admin] token as 'Authorization: Bearer <token>'. "
            "Bound to loopback by default; put a TLS reverse proxy in front to reach it from elsewhere.",
        },
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
        "paths": copy.deepcopy(PATHS),
    }
