"""The state store commands: runs, audit, dlq, state purge."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any

import anyio

from .. import cli as _cli
from ..errors import RecordError
from ..observe import logs
from . import Usage, _load, _load_readonly, _print_table, _require_state, _tell_waiting, _ts, _with_store, terminal_safe


async def _read_store(resolved, fn):
    """``fn(store)`` on the state store that must already be there (see ``_with_store(create=False)``)."""
    return await _with_store(resolved, fn, create=False)


def cmd_runs(args: argparse.Namespace) -> int:
    """Show recent runs: from the running daemon's admin API, or the state store."""
    from ..state import Run
    from .remote import find_daemon

    daemon = find_daemon(args.config, local=args.local)
    if daemon is not None:
        _status, body = daemon.call("GET", "/api/v1/runs", params={"flow": args.flow, "limit": args.limit})
        runs = [Run(**r) for r in body["runs"]]
    else:
        resolved = _load_readonly(args.config, _cli._registry())
        runs = anyio.run(_read_store, resolved, lambda s: s.runs(args.flow, args.limit))
    if args.json:
        print(json.dumps([r.__dict__ | {"counts": dict(r.counts)} for r in runs], indent=2))
        return 0
    _print_table(
        [
            (
                r.id,
                r.flow,
                r.trigger,
                _ts(r.started_at),
                r.status,
                " ".join(f"{k}={v}" for k, v in r.counts.items() if v),
                progress_text(r.progress) if r.status == "running" else "",
                r.error,
            )
            for r in runs
        ],
        ("RUN", "FLOW", "TRIGGER", "STARTED", "STATUS", "COUNTS", "PROGRESS", "ERROR"),
    )
    return 0


def progress_text(progress) -> str:
    """A running run's progress for people: ``1200 done, 35.2/s, about 4m left (of 9600)``; ``starting``
    before it saved any."""
    if not progress:
        return "starting"
    text = f"{progress.get('done', 0)} done, {progress.get('rate_per_second', 0):g}/s"
    remaining, total = progress.get("remaining_seconds"), progress.get("total")
    if remaining is not None:
        text += f", about {_duration(remaining)} left"
    if total is not None:
        text += f" (of {total})"
    elif progress.get("pages"):
        text += f" ({progress['pages']} pages read; the source gives no total)"
    return text


def _duration(seconds: float) -> str:
    """``45s``, ``4m``, ``2h10m``."""
    whole = max(round(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"


def cmd_audit(args: argparse.Namespace) -> int:
    """Show the audit trail."""
    resolved = _load_readonly(args.config, _cli._registry())
    entries = anyio.run(
        _read_store, resolved, lambda s: s.audit(flow=args.flow, source_id=args.source_id, run_id=args.run, limit=args.limit)
    )
    if args.json:
        print(json.dumps([{k: v for k, v in e.__dict__.items() if k != "diff"} | {"writes": e.writes()} for e in entries], indent=2))
        return 0
    _print_table(
        [(_ts(e.at), e.flow, e.run_id, e.source_id, e.key, e.action, e.target_id, written_summary(e.writes()), e.reason) for e in entries],
        ("AT", "FLOW", "RUN", "SOURCE ID", "KEY", "ACTION", "TARGET ID", "WRITTEN", "REASON"),
    )
    if args.diff:
        for e in entries:
            for line in diff_lines(e):
                print(terminal_safe(line))
    return 0


def written_summary(writes: list[dict]) -> str:
    """What an entry wrote, in one cell: ``update customers 8d88 (name, email); create orders 17 (9 fields)``."""
    parts = []
    for w in writes:
        fields = list(w.get("fields") or {})
        what = ", ".join(fields) if 0 < len(fields) <= 3 else f"{len(fields)} fields"
        parts.append(f"{w.get('op')} {w.get('entity')} {w.get('target_id') or ''} ({what})".replace("  ", " "))
    return "; ".join(parts)


def diff_lines(e) -> list[str]:
    """An entry's writes, field by field: ``~ name: "Old" -> "New"`` (an update whose old value was
    read), ``= name: "New"`` (written; the target's old value was not read), ``+ name: "New"`` (created)."""
    writes = e.writes()
    if not writes:
        return []
    lines = [f"{e.flow} run {e.run_id} {e.entity} {e.source_id} ({e.key}): {e.action}"]
    for w in writes:
        lines.append(f"  {w.get('op')} {w.get('entity')} {w.get('target_id') or ''}".rstrip())
        for field, change in (w.get("fields") or {}).items():
            new = json.dumps(change.get("to"), default=str)
            if "from" in change:
                lines.append(f"    ~ {field}: {json.dumps(change['from'], default=str)} -> {new}")
            else:
                lines.append(f"    {'+' if w.get('op') == 'create' else '='} {field}: {new}")
    return lines


def _selected_letters(args: argparse.Namespace, store):
    if not (args.ids or args.flow or args.error or args.all):
        raise Usage(f"dlq {args.dlq_command}: name dead letters by ID, or give --flow, --error or --all")

    async def select():
        letters = await store.dead_letters(
            flow=args.flow, error=args.error, ids=args.ids or None, status="open", limit=100_000
        )
        missing = sorted(set(args.ids) - {d.id for d in letters})
        if missing:  # refuse the whole command: a typo must not act on the other ids alone
            which = "" if not (args.flow or args.error) else " matching --flow/--error"
            raise Usage(
                f"dlq {args.dlq_command}: no open dead letter{which} with id{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(str, missing))} "
                "(see apicenterd dlq list --status any); nothing done"
            )
        return letters

    return select()


def cmd_dlq(args: argparse.Namespace) -> int:
    """The dead-letter queue commands."""
    from ..engine import Engine

    if args.dlq_command is None:
        raise Usage("dlq: say list, show, replay or discard")
    from ..state import DeadLetter
    from .remote import find_daemon

    remote_capable = args.dlq_command == "list" or (args.dlq_command == "replay" and not args.no_wait)
    daemon = find_daemon(args.config, local=args.local) if remote_capable else None
    if daemon is not None and args.dlq_command == "replay":
        return _remote_replay(args, daemon)
    if daemon is not None and args.dlq_command == "list":
        _code, body = daemon.call("GET", "/api/v1/dead-letters", params={"flow": args.flow, "error": args.error, "status": args.status})
        letters: Any = [DeadLetter(payload=None, **d) for d in body["dead_letters"]]
        return _print_letters(args, letters)
    if args.dlq_command == "replay":  # acts through the flows: their connections' secrets, and only theirs
        resolved = _load_readonly(args.config, _cli._registry())
        _require_state(resolved)
        flows = [args.flow] if args.flow in resolved.flows else list(resolved.flows)
        needed = {c for f in flows for c in (resolved.flows[f].source, resolved.flows[f].target)}
        resolved = _load(args.config, _cli._registry(), secrets_of=needed)
    else:
        resolved = _load_readonly(args.config, _cli._registry())
    if args.dlq_command == "list":
        status = None if args.status == "any" else args.status
        letters = anyio.run(_read_store, resolved, lambda s: s.dead_letters(flow=args.flow, error=args.error, status=status))
        return _print_letters(args, letters)
    if args.dlq_command == "show":
        letters = anyio.run(_read_store, resolved, lambda s: s.dead_letters(ids=[args.id], status=None))
        if not letters:
            raise Usage(f"no dead letter {args.id}")
        d = letters[0]
        if d.purged:
            note = (
                f"its record (payload and key) was removed on {_ts(d.purged_at)}, "
                f"{resolved.config.state.dead_letter_retention_days} days after it last failed "
                "([state] dead_letter_retention_days): it cannot be replayed. Discard it "
                f"(apicenterd dlq discard {d.id}); the source record is taken again when it next changes there"
            )
            print(json.dumps({**d.__dict__, "note": note}, indent=2, default=str))
            print(f"apicenterd: dead letter {d.id}: {note}", file=sys.stderr)
            return 0
        print(json.dumps({**d.__dict__, "payload": json.loads(d.payload)}, indent=2, default=str))
        return 0

    logs.configure(resolved.config.daemon.log_level, stream="stderr")

    purged: list[int] = []

    async def act(store):
        letters = await _selected_letters(args, store)
        if args.dlq_command == "discard":
            return len(letters), await store.set_dead_letter_status([d.id for d in letters], "discarded")
        purged.extend(d.id for d in letters if d.purged)  # their record is gone: nothing to replay
        letters = [d for d in letters if not d.purged]
        engine = Engine(resolved, store, wait_for_flow=not args.no_wait, on_flow_wait=_tell_waiting)
        try:
            return len(letters), await engine.replay(letters)
        finally:
            await engine.aclose()
            await engine.alerter.flush()  # bounded: alerts.flush_timeout

    try:
        selected, outcome = anyio.run(_read_store, resolved, act)
    except RecordError as exc:
        print(f"apicenterd: {terminal_safe(exc)}", file=sys.stderr)
        return 1
    if args.dlq_command == "discard":
        print(json.dumps({"discarded": outcome}) if args.json else f"discarded {outcome} dead letters")
        return 0
    if purged:
        ids = " ".join(map(str, purged))
        print(
            f"apicenterd: not replayed: dead letter(s) {ids}: their record was removed after "
            f"{resolved.config.state.dead_letter_retention_days} days ([state] dead_letter_retention_days); "
            f"discard them (apicenterd dlq discard {ids}); the source records are taken again when they next change there",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps({"replayed": selected, **outcome, "not_replayed_purged": purged}))
    else:
        print(f"replayed {selected} dead letters: " + ", ".join(f"{k} {v}" for k, v in outcome.items()))
    return 0 if outcome.get("failed", 0) == 0 and not purged else 1


def _print_letters(args: argparse.Namespace, letters: Any) -> int:
    """``dlq list``'s output."""
    if args.json:
        print(json.dumps([{k: v for k, v in d.__dict__.items() if k != "payload"} for d in letters], indent=2))
        return 0
    _print_table(
        [
            (d.id, d.flow, d.source_id, "[purged]" if d.purged else d.key, d.attempts, _ts(d.last_failed_at), d.status, d.error[:100])
            for d in letters
        ],
        ("ID", "FLOW", "SOURCE ID", "KEY", "ATTEMPTS", "LAST FAILED", "STATUS", "ERROR"),
    )
    return 0


def _remote_replay(args: argparse.Namespace, daemon) -> int:
    """``dlq replay`` through the running daemon (the same path, in its process)."""
    if not (args.ids or args.flow or args.error or args.all):
        raise Usage("dlq replay: name dead letters by ID, or give --flow, --error or --all")
    selection = {"ids": args.ids or [], "flow": args.flow, "error": args.error, "all": args.all}
    status, body = daemon.call("POST", "/api/v1/dead-letters/replay", json={k: v for k, v in selection.items() if v}, read_timeout=None)
    if status == 404 and body.get("missing"):
        raise Usage(f"{body['error']} (see apicenterd dlq list --status any)")
    if status != 200:
        print(f"apicenterd: {terminal_safe(body.get('error'))}", file=sys.stderr)
        return 1
    outcome, purged = body["counts"], body["not_replayed_purged"]
    if purged:
        ids = " ".join(map(str, purged))
        print(f"apicenterd: not replayed: dead letter(s) {ids}: their record was removed (retention); discard them "
              f"(apicenterd dlq discard {ids})", file=sys.stderr)  # fmt: skip
    if args.json:
        print(json.dumps({"replayed": body["replayed"], **outcome, "not_replayed_purged": purged}))
    else:
        print(f"replayed {body['replayed']} dead letters (through the daemon): " + ", ".join(f"{k} {v}" for k, v in outcome.items()))
    return 0 if outcome.get("failed", 0) == 0 and not purged else 1


def cmd_state(args: argparse.Namespace) -> int:
    """State store maintenance."""
    from ..daemon import purge
    from ..observe.alerts import Alerter

    if args.state_command == "migrate":
        return _migrate(args)
    if args.state_command != "purge":
        raise Usage("state: say purge or migrate")
    resolved = _load_readonly(args.config, _cli._registry())
    logs.configure(resolved.config.daemon.log_level, stream="stderr")
    alerter = Alerter(resolved.config.alerts)
    async def purge_and_alert(store):
        try:
            return await purge(store, resolved.config.state, alerter=alerter)
        finally:
            await alerter.flush()  # bounded: alerts.flush_timeout

    done = anyio.run(_read_store, resolved, purge_and_alert)
    state = resolved.config.state
    print(f"deleted {done.audit_entries} audit entries older than {state.audit_retention_days} days")
    print(f"deleted {done.runs} runs finished more than {state.runs_retention_days} days ago")
    print(
        f"deleted {done.dead_letters} resolved or discarded dead letters, and removed the record of "
        f"{done.dead_letter_records} open ones (still listed: apicenterd dlq list), last failed more than "
        f"{state.dead_letter_retention_days} days ago"
    )
    for flow, count in sorted(done.warned.items()):
        print(f"alerted: {count} open dead letters of flow {flow} lose their record soon (or now)")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    """Apply the pending schema migrations of the configured state store."""
    from ..state import store_for

    resolved = _load(args.config, _cli._registry())
    store = store_for(resolved.config.state.url, resolved.state_path)
    where = getattr(store, "where", str(resolved.state_path))

    async def before_and_after() -> tuple[int, int]:
        before = await store.stored_schema_version()
        await store.open()  # applies what is pending (one process at a time); refuses a newer database
        try:
            return before, await store.schema_version()
        finally:
            await store.close()

    try:
        before, after = anyio.run(before_and_after)
    except RuntimeError as exc:  # a database newer than this apicenterd
        print(f"apicenterd: {where}: {exc}", file=sys.stderr)
        return 1
    if before == after:
        print(f"{where}: schema version {after}, up to date")
    else:
        print(f"{where}: schema version {before} -> {after}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The daemons on the state store and what they run; with PostgreSQL the jobs waiting too."""
    from ..errors import StateError
    from ..state.postgres import redact_url

    resolved = _load(args.config, _cli._registry())
    state = resolved.config.state
    if not state.url:
        return _sqlite_status(args, resolved)
    import psycopg

    from ..cluster import cluster_status

    url = state.url

    async def read(_store: Any):  # opened first: the job engine's tables are there (migrated)
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                return await cluster_status(conn, state.worker_stall_seconds)
        except psycopg.Error as exc:
            raise StateError(
                f"PostgreSQL state {redact_url(url)}: the job queue cannot be read ({exc})", path=redact_url(url), cause="io"
            ) from exc

    status = anyio.run(functools.partial(_with_store, migrate=False), resolved, read)
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
        return 0
    alive = sum(d.alive for d in status.daemons)
    print(f"daemons: {alive} alive of {len(status.daemons)} (a daemon silent for {state.worker_stall_seconds:g} s is taken for dead)")
    _print_table(
        [
            (
                d.name or f"worker {d.worker_id}",
                "alive" if d.alive else "SILENT",
                f"{d.heartbeat_age:g} s ago",
                _ts(d.started_at),
                ", ".join(d.running) or "-",
            )
            for d in status.daemons
        ],
        ("DAEMON", "STATE", "HEARTBEAT", "STARTED", "RUNNING"),
    )
    due = [w for w in status.waiting if w.overdue > 0]
    print(f"\njobs waiting: {len(status.waiting)} ({len(due)} due, waiting for a free daemon or for their flow's run to end)")
    _print_table(
        [(w.flow, _ts(w.due), f"{w.overdue:g} s overdue" if w.overdue else "not yet due") for w in status.waiting],
        ("FLOW", "DUE", "STATE"),
    )
    if status.stalled:
        print(f"\nstalled (on a silent daemon; the next live daemon's check queues them again): {', '.join(status.stalled)}")
    return 0


def _sqlite_status(args: argparse.Namespace, resolved: Any) -> int:
    from ..state import daemon_lock_holder
    from ..state.lock import describe_holder

    holder = daemon_lock_holder(resolved.state_path)
    runs = [r for r in anyio.run(_with_store, resolved, lambda s: s.runs(None, 200)) if r.status == "running"]
    if args.json:
        print(json.dumps({"daemon": holder, "running": [r.flow for r in runs]}, indent=2))
        return 0
    print(f"state: {resolved.state_path} (SQLite: one daemon; flows are scheduled in its process)")
    print(f"daemon: {describe_holder(holder, always_host=True) if holder else 'none running'}")
    print(f"running: {', '.join(r.flow for r in runs) or '-'}")
    return 0
