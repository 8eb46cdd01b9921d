"""The flow commands: flows list, flows run, flows mapping."""

from __future__ import annotations

import argparse
import functools
import json
import signal
import sys
from typing import Any

import anyio

from .. import cli as _cli
from .. import fieldpath
from ..config import Resolved
from ..observe import logs
from . import EXIT_DEFERRED, EXIT_RECORDS_FAILED, Usage, _load, _load_readonly, _print_table, _tell_waiting, _with_store, terminal_safe


def cmd_flows_list(args: argparse.Namespace) -> int:
    """List configured flows. A flow on a connection with a day budget (Exact Online's 5,000 calls
    a day) also shows its priority and, from its latest run in the state store, whether it is
    deferred: the calls left, when it goes on, and when it is expected to be done."""
    resolved = _load_readonly(args.config, _cli._registry())
    budgeted = _day_budget_flows(resolved)
    latest = _latest_runs(resolved, budgeted) if budgeted else {}
    items: list[dict[str, Any]] = [
        {
            "name": f.name,
            "entity": str(f.entity),
            "source": f.source,
            "target": f.target,
            "schedule": f.schedule.describe(),
            "enabled": f.enabled,
            "priority": f.priority,
            **({"budget": _budget_view(latest.get(f.name))} if f.name in budgeted else {}),
        }
        for f in resolved.flows.values()
    ]
    states = _daemon_states(args)
    if states is not None:  # the running daemon says how each flow is: ok, failing, paused, waiting, running
        for item in items:
            view = states.get(item["name"], {})
            item.update(
                state=view.get("state", "unknown"),
                reason=view.get("reason"),
                paused_connections=view.get("paused_connections") or [],
                progress=view.get("progress"),
            )
    if args.json:
        print(json.dumps(items, indent=2))
    elif states is None and budgeted:
        _print_table(
            [
                (
                    i["name"], i["entity"], i["source"], i["target"], i["schedule"], "yes" if i["enabled"] else "no",
                    str(i["priority"]) if "budget" in i else "", _budget_text(i.get("budget")),
                )
                for i in items
            ],
            ("NAME", "ENTITY", "SOURCE", "TARGET", "SCHEDULE", "ENABLED", "PRIORITY", "DAY BUDGET"),
        )
    elif states is None:
        _print_table(
            [(i["name"], i["entity"], i["source"], i["target"], i["schedule"], "yes" if i["enabled"] else "no") for i in items],
            ("NAME", "ENTITY", "SOURCE", "TARGET", "SCHEDULE", "ENABLED"),
        )
    else:
        _print_table(
            [(i["name"], i["entity"], i["source"], i["target"], i["schedule"], i["state"], i["reason"] or "") for i in items],
            ("NAME", "ENTITY", "SOURCE", "TARGET", "SCHEDULE", "STATE", "REASON"),
        )
        paused = sorted({c for i in items for c in i["paused_connections"]})
        for connection in paused:
            print(terminal_safe(f"connection {connection} is paused: run apicenterd auth {connection} --config {args.config}, then reload"))
    return 0


def _daemon_states(args: argparse.Namespace) -> dict[str, dict[str, Any]] | None:
    """Each flow's view from the running daemon's admin API (state, reason, progress), or None when
    no daemon answers (the list then shows the configuration only)."""
    from .remote import find_daemon

    daemon = find_daemon(args.config, local=getattr(args, "local", False))
    if daemon is None:
        return None
    status, body = daemon.call("GET", "/api/v1/flows")
    if status != 200 or not isinstance(body.get("flows"), list):
        return None
    return {f["name"]: f for f in body["flows"] if isinstance(f, dict) and "name" in f}


def _day_budget_flows(resolved: Resolved) -> set[str]:
    """The flows that use a connection whose connector declares a day limit."""
    from ..budget import is_day_limit

    budgeted = {name for name, conn in resolved.connections.items() if any(is_day_limit(lim) for lim in conn.connector.rate_limits)}
    return {f.name for f in resolved.flows.values() if f.source in budgeted or f.target in budgeted}


def _latest_runs(resolved: Resolved, flows: set[str]) -> dict:
    """Each flow's latest finished run, from the state store when there is one (none: nothing)."""
    if resolved.config.state.url is None and not resolved.state_path.exists():
        return {}

    async def read(store):
        latest = {}
        for name in sorted(flows):
            runs = [r for r in await store.runs(name, limit=5) if r.finished_at is not None]
            if runs:
                latest[name] = runs[0]
        return latest

    try:
        result: dict = anyio.run(functools.partial(_with_store, migrate=False), resolved, read)
    except Exception as exc:  # noqa: BLE001 - the list does not need the state; say why the column is empty
        print(f"apicenterd: day budgets not shown: the state store cannot be read: {exc}", file=sys.stderr)
        return {}
    return result


def _budget_view(run) -> dict | None:
    """What the latest run says about the flow's share of the day budget (None: no run yet)."""
    if run is None:
        return None
    view: dict = {"last_run": run.status, "deferred": run.status == "deferred"}
    counts = run.counts
    if run.status == "deferred":
        view["calls_left"] = counts.get("budget_left")
        view["resumes_at"] = _cli._ts(counts.get("resume_at"))
        view["expected_completion"] = _cli._ts(counts.get("complete_at")) or None
    return view


def _budget_text(view: dict | None) -> str:
    if view is None:
        return "no run yet"
    if not view["deferred"]:
        return f"last run {view['last_run']}"
    done = f", done ~{view['expected_completion']}" if view.get("expected_completion") else ""
    return f"deferred: {view['calls_left']} calls left, resumes {view['resumes_at']}{done}"


def cmd_flows_run(args: argparse.Namespace) -> int:
    """Run one flow once and print the counts. Exit 0 if the run was ok, 1 if it failed,
    :data:`EXIT_RECORDS_FAILED` (3) if it ran to its end but records failed in it (they are in
    the dead-letter queue; with ``--dry-run``: they would fail), :data:`EXIT_DEFERRED` (4) if its
    share of a day budget is spent (it goes on from where it stopped after the reset), and 128 + the signal's number
    (130 SIGINT, 143 SIGTERM) if a signal stopped it."""
    from ..engine import COUNT_KEYS, Engine, RunResult

    if not args.dry_run and not args.no_wait:
        from .remote import find_daemon

        daemon = find_daemon(args.config, local=args.local)
        if daemon is not None:
            return _remote_run(args, daemon)
    resolved = _load_readonly(args.config, _cli._registry())
    if args.name not in resolved.flows:
        raise Usage(f"no flow named {args.name!r} (defined: {', '.join(sorted(resolved.flows)) or 'none'})")
    flow = resolved.flows[args.name]
    resolved = _load(args.config, _cli._registry(), secrets_of={flow.source, flow.target})  # its two connections only
    logs.configure(resolved.config.daemon.log_level, stream="stderr")

    engine_box: list[Engine] = []
    signals: list[int] = []

    async def go(store):
        engine = Engine(resolved, store, dry_run=args.dry_run, wait_for_flow=not args.no_wait, on_flow_wait=_tell_waiting)
        engine_box.append(engine)
        result = None
        try:
            error: Exception | None = None
            async with anyio.create_task_group() as tg:
                await tg.start(_stop_on_signals, engine, tg.cancel_scope, signals)
                try:
                    result = await engine.run_flow(args.name, trigger="cli", full=args.full)
                except Exception as exc:  # noqa: BLE001 - raised as it is (FlowBusy, StateError...), not in a group
                    error = exc
                tg.cancel_scope.cancel()
            if error is not None:
                raise error
        finally:
            await engine.aclose()
            await engine.alerter.flush()  # bounded: alerts.flush_timeout
        stopped = RunResult(args.name, 0, dict.fromkeys(COUNT_KEYS, 0), "stopped", "stopped before the run began")
        return result or engine.last_result or stopped

    result = anyio.run(_with_store, resolved, go)
    stopped_code = 128 + signals[0] if signals else 1
    if args.dry_run:
        plans = engine_box[0].plans
        failures = [{"source_id": sid, "key": key, "reason": reason} for _flow, sid, key, reason in result.failures]
        if args.json:
            answer = {**result.as_dict(), "dry_run": True, "plans": [p.__dict__ for p in plans], "failures": failures}
            print(json.dumps(answer, default=str))
        else:
            for plan in plans:
                where = f" {plan.target_id}" if plan.target_id else ""
                print(terminal_safe(f"would {plan.op} {plan.entity} {plan.key}{where}"))
                for field, change in plan.diff.items():
                    if plan.op == "create":
                        print(terminal_safe(f"  + {field}: {json.dumps(change['to'], default=str)}"))
                    else:
                        before, after = json.dumps(change["from"], default=str), json.dumps(change["to"], default=str)
                        print(terminal_safe(f"  ~ {field}: {before} -> {after}"))
            entity = resolved.flows[args.name].entity
            for failure in failures:  # what would go to the dead-letter queue, and why
                print(terminal_safe(f"would fail {entity} {failure['key']} (source id {failure['source_id']}): {failure['reason']}"))
            more = result.counts.get("failed", 0) - len(failures)
            if more > 0:
                print(terminal_safe(f"... and {more} more that would fail"))
            counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
            error = f" ({result.error})" if result.error else ""
            print(terminal_safe(f"dry run of flow {result.flow}: {result.status}: {counts}{error}; nothing was written"))
        return _exit_code(result, stopped_code)
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
        error = f" ({result.error})" if result.error else ""
        print(terminal_safe(f"flow {result.flow} run {result.run_id}: {result.status}: {counts}{error}"))
    return _exit_code(result, stopped_code)


def _exit_code(result, stopped_code: int) -> int:
    """0 ok; 1 the run failed; ``stopped_code`` a signal stopped it; 3 ok but records failed; 4
    deferred by the day budget."""
    if result.status == "stopped":
        return stopped_code
    return _status_code(result.flow, result.status, result.error, result.counts)


def _status_code(flow: str, status: str, error: str | None, counts: dict) -> int:
    """The exit status of a finished run (local or in the daemon); a deferred run says why on stderr."""
    if status == "deferred":
        resumes = _cli._ts(counts.get("resume_at"))
        done = _cli._ts(counts.get("complete_at"))
        print(
            terminal_safe(
                f"apicenterd: flow {flow} deferred: its share of the day budget is spent; what it did is kept and it "
                f"goes on from where it stopped{f' at {resumes}' if resumes else ' after the reset'}"
                f"{f' (expected done ~{done})' if done else ''}: {error or 'no reason given'}"
            ),
            file=sys.stderr,
        )
        return EXIT_DEFERRED
    if status != "ok":
        return 1
    return EXIT_RECORDS_FAILED if counts.get("failed", 0) else 0


def _remote_run(args: argparse.Namespace, daemon) -> int:
    """``flows run`` in the running daemon (its connections, limits and lock); prints what the local run prints."""
    from urllib.parse import quote

    request = {"wait": True, **({"full": True} if args.full else {})}
    status, body = daemon.call("POST", f"/api/v1/flows/{quote(args.name, safe='')}/run", json=request, read_timeout=None)
    if status == 404:
        raise Usage(body.get("error", f"no flow named {args.name!r}"))
    if status != 200:
        print(f"apicenterd: flow {args.name}: {terminal_safe(body.get('error'))}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(body))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in body.items() if k not in ("flow", "run_id", "status", "error", "duration_seconds"))
        error = f" ({body['error']})" if body.get("error") else ""
        print(terminal_safe(f"flow {body['flow']} run {body['run_id']} (in the daemon): {body['status']}: {counts}{error}"))
    return _status_code(body["flow"], body["status"], body.get("error"), body)


async def _stop_on_signals(engine, scope: anyio.CancelScope, seen: list[int], *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
    """SIGTERM or SIGINT: the run stops between records (recorded ``stopped`` with its counts); a
    second one cuts it off at once (still recorded ``stopped``). Off the main thread (the CLI
    called from a program's worker thread) signals are not ours to take: none are handled."""
    import threading

    log = logs.get_logger()
    if threading.current_thread() is not threading.main_thread():
        task_status.started()
        return
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as received:
        task_status.started()
        async for signum in received:
            seen.append(signum)
            name = signal.Signals(signum).name
            if len(seen) == 1:
                log.warning("signal received: stopping the run after the record in flight (send it again to stop at once)", signal=name)
                engine.stop()
            else:
                log.warning("second signal: cutting the run off now", signal=name)
                scope.cancel()


def cmd_flows_reset(args: argparse.Namespace) -> int:
    """Forget a flow's cursor (links stay): through the running daemon, or on the state store."""
    from urllib.parse import quote

    from ..engine import Engine
    from .remote import find_daemon

    daemon = find_daemon(args.config, local=args.local)
    if daemon is not None:
        status, body = daemon.call("POST", f"/api/v1/flows/{quote(args.name, safe='')}/reset")
        if status == 404:
            raise Usage(body.get("error", f"no flow named {args.name!r}"))
        if status != 200:
            print(f"apicenterd: flow {args.name}: {terminal_safe(body.get('error'))}", file=sys.stderr)
            return 1
        was, where = body.get("cursor_was"), " (in the daemon)"
    else:
        resolved = _load_readonly(args.config, _cli._registry())
        if args.name not in resolved.flows:
            raise Usage(f"no flow named {args.name!r} (defined: {', '.join(sorted(resolved.flows)) or 'none'})")
        logs.configure(resolved.config.daemon.log_level, stream="stderr")

        async def reset(store):
            engine = Engine(resolved, store, on_flow_wait=_tell_waiting)
            try:
                before = await store.get_cursor(args.name)
                return before, await engine.reset_cursor(args.name)
            finally:
                await engine.aclose()

        was, done = anyio.run(functools.partial(_with_store, create=False), resolved, reset)
        if not done:
            return 1
        where = ""
    before = f"cursor {json.dumps(was)}" if was is not None else "no cursor (it had not settled a read yet)"
    print(terminal_safe(f"flow {args.name}{where}: {before} forgotten; links kept: its next run reads every record "
                        "and writes only those that differ from what was written"))  # fmt: skip
    return 0


def mapping_rows(resolved: Resolved, name: str) -> list[dict[str, str]]:
    """The rows ``flows mapping`` prints: each canonical field, where it comes from and goes to."""
    from ..model import RECORD_TYPES, Entity

    flow = resolved.flows[name]
    source = resolved.connections[flow.source].connector
    target = resolved.connections[flow.target].connector
    record_type = RECORD_TYPES[flow.entity]
    written = target.written_fields.get(flow.entity)
    overrides = {r.field: r for r in flow.rules}
    rows = []
    for path in fieldpath.paths(record_type):
        top = path.split(".")[0]
        rule = overrides.get(path)
        debtor_fields = target.written_fields.get(Entity.CUSTOMERS)
        if top == "customer" and flow.entity in (Entity.ORDERS, Entity.INVOICES):
            sub = path.split(".")[1]
            stored = debtor_fields is None or sub in debtor_fields
            policy = "to the debtor (customers)" if stored else "not stored by target"
        elif written is not None and top not in written and rule is None:
            policy = "not stored by target"
        elif top in flow.create_only_fields:
            policy = "create only"
        else:
            policy = "create + update"
        if policy == "create + update" and flow.entity in (Entity.ORDERS, Entity.INVOICES):
            policy = "on create (documents are never updated)"
        rows.append(
            {
                "field": path,
                "source": source.field_map.get(flow.entity, {}).get(path, ""),
                "rule": rule.describe() if rule else "(default: same field)",
                "target": target.field_map.get(flow.entity, {}).get(path, ""),
                "policy": policy,
            }
        )
    for path, rule in overrides.items():
        if not any(r["field"] == path for r in rows):
            rows.append({"field": path, "source": "", "rule": rule.describe(), "target": "", "policy": "create + update"})
    return rows


def cmd_flows_mapping(args: argparse.Namespace) -> int:
    """Print a flow's mapping."""
    resolved = _load_readonly(args.config, _cli._registry())
    if args.name not in resolved.flows:
        raise Usage(f"no flow named {args.name!r} (defined: {', '.join(sorted(resolved.flows)) or 'none'})")
    rows = mapping_rows(resolved, args.name)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    flow = resolved.flows[args.name]
    print(terminal_safe(f"flow {flow.name}: {flow.entity} from {flow.source} to {flow.target}"))
    _print_table(
        [(r["source"], r["field"], r["rule"], r["target"], r["policy"]) for r in rows],
        ("SOURCE FIELD", "CANONICAL FIELD", "RULE", "TARGET FIELD", "WRITTEN"),
    )
    return 0
