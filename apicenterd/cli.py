"""The ``apicenterd`` command line: run, reload, check, plugins, flows, runs, audit, simulate, demo."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio

from . import __version__, fieldpath
from .config import Resolved, load
from .errors import EXIT_STATE, ConfigError, ConnectorError, PluginError, RecordError, StateError
from .observe import logs
from .registry import Registry, load_registry
from .state.lock import FlowBusy, LockError, StoreBusy

__all__ = ["main", "terminal_safe"]

DEFAULT_CONFIG = "/etc/apicenterd/apicenterd.toml"
EXIT_USAGE = 2
EXIT_BUSY = 75
"""The state store or the flow is in use by another process (EX_TEMPFAIL: try again later): a second
daemon on one state store, or ``flows run`` / ``dlq replay --no-wait`` while the flow runs elsewhere."""


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        default=os.environ.get("APICENTERD_CONFIG", DEFAULT_CONFIG),
        help=f"the TOML configuration (default: $APICENTERD_CONFIG or {DEFAULT_CONFIG})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="apicenterd",
        description="Self-hosted integration daemon.",
        epilog=f"Exit status: 0 done, 1 something failed, {EXIT_USAGE} wrong command line or configuration, "
        f"{EXIT_STATE} the state file cannot be used (disk full, damaged, read-only, deleted).",
    )
    parser.add_argument("--version", action="version", version=f"apicenterd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon (foreground; systemd Type=notify)")
    _config_arg(p)

    p = sub.add_parser(
        "reload",
        help="make the running daemon reload its configuration; exit 0 if it applied it, 1 if it refused (systemd ExecReload=)",
    )
    _config_arg(p)
    p.add_argument("--pid", type=_positive_int, help="the daemon's process id (default: the holder of the daemon lock)")
    p.add_argument(
        "--timeout", type=_positive_float, default=60.0, help="seconds to wait for the daemon's answer (default: 60)"
    )

    p = sub.add_parser("check", help="validate the configuration and print every mistake with its path")
    _config_arg(p)

    p = sub.add_parser("plugins", help="list installed connectors")
    p.add_argument("--json", action="store_true", help="print JSON")

    flows = sub.add_parser("flows", help="list flows, or run one now")
    fsub = flows.add_subparsers(dest="flows_command", metavar="ACTION")
    p = fsub.add_parser("list", help="list the configured flows")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p = fsub.add_parser("run", help="run one flow once, now, and print what it did")
    p.add_argument("name", help="the flow's name")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="print counts as JSON")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="read, map and look up for real; print what would be written; write nothing (never waits for a running flow)",
    )
    _no_wait_arg(p)
    p = fsub.add_parser("mapping", help="print a flow's whole mapping: source field → canonical → target field")
    p.add_argument("name", help="the flow's name")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("runs", help="show recent runs from the state store")
    _config_arg(p)
    p.add_argument("--flow", help="only this flow")
    p.add_argument("--limit", type=_positive_int, default=20)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("audit", help="show the per-record audit trail")
    _config_arg(p)
    p.add_argument("--flow", help="only this flow")
    p.add_argument("--source-id", help="only this source record")
    p.add_argument("--run", type=_id, help="only this run id")
    p.add_argument("--limit", type=_positive_int, default=50)
    p.add_argument("--json", action="store_true", help="print JSON")

    state = sub.add_parser("state", help="the state store: retention purge")
    ssub = state.add_subparsers(dest="state_command", metavar="ACTION")
    p = ssub.add_parser(
        "purge",
        help="now, what the daemon does hourly: delete audit entries, runs and settled dead letters past their "
        "retention; remove the record of open dead letters past theirs (after an alert)",
    )
    _config_arg(p)

    p = sub.add_parser("auth", help="(re-)authorise an OAuth2 connection and store its tokens")
    p.add_argument("connection", help="the connection's name in the config")
    _config_arg(p)
    p.add_argument("--redirect-uri", default="http://127.0.0.1:8765/callback", help="the redirect URI registered for the app")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--code",
        help="the whole URL the consent page redirected to (its state is checked), or a bare code with --state",
    )
    group.add_argument(
        "--refresh-token",
        metavar="-",
        help="store a refresh token as the connection's newest, read from standard input ('-'); "
        "a token on the command line is refused (other users see it in ps)",
    )
    group.add_argument("--refresh-token-file", metavar="PATH", help="store the refresh token in this file as the connection's newest")
    p.add_argument("--state", help="with a bare --code: the state parameter of the redirected URL")

    dlq = sub.add_parser("dlq", help="the dead-letter queue: list, show, replay or discard failed records")
    dsub = dlq.add_subparsers(dest="dlq_command", metavar="ACTION")
    p = dsub.add_parser("list", help="list dead letters")
    _config_arg(p)
    p.add_argument("--flow", help="only this flow")
    p.add_argument("--error", help="only those whose error contains this text")
    p.add_argument("--status", choices=["open", "resolved", "discarded", "any"], default="open")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = dsub.add_parser("show", help="one dead letter with its payload")
    p.add_argument("id", type=_id)
    _config_arg(p)
    for action, text in (("replay", "take dead letters through the flow again"), ("discard", "give up on dead letters")):
        p = dsub.add_parser(action, help=text)
        p.add_argument("ids", nargs="*", type=_id, metavar="ID")
        _config_arg(p)
        p.add_argument("--flow", help="every open dead letter of this flow")
        p.add_argument("--error", help="every open dead letter whose error contains this text")
        p.add_argument("--all", action="store_true", help="every open dead letter")
        p.add_argument("--json", action="store_true", help="print JSON")
        if action == "replay":
            _no_wait_arg(p)

    p = sub.add_parser("simulate", help="serve one connector's vendor simulator on loopback")
    p.add_argument("connector", help="connector name, e.g. eaccounting")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, help="default: the connector's own port")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--records", type=_non_negative_int, default=0, help="how many records to seed")
    p.add_argument("--no-rate-limit", action="store_true", help="answer every request (benchmarks); default: the vendor's limit")

    p = sub.add_parser("demo", help="start the bundled simulators and run the daemon on etc/demo.toml")
    p.add_argument("--config", default="etc/demo.toml", help="demo configuration (default: etc/demo.toml)")
    p.add_argument("--records", type=_non_negative_int, default=50, help="products to seed in the source")
    p.add_argument("--keep-state", action="store_true", help="keep the demo state database from a previous run")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    return parser


def _no_wait_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help=f"if the flow is running in another process (the daemon, another command), exit {EXIT_BUSY} at once "
        "instead of waiting for it to finish",
    )


def _tell_waiting(flow: str, holder: dict[str, Any]) -> None:
    """Say once, on stderr, why a command waits: the flow runs in another process."""
    from .state.lock import describe_holder

    print(f"apicenterd: flow {flow} is running in {describe_holder(holder)}; waiting for it to finish", file=sys.stderr, flush=True)


SQLITE_MAX_INT = 2**63 - 1
"""The largest integer SQLite stores; a larger id or limit is refused before it reaches SQLite
(which raises OverflowError for it)."""


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    if value > SQLITE_MAX_INT:
        raise argparse.ArgumentTypeError(f"too large (at most {SQLITE_MAX_INT}): {text!r}")
    return value


def _id(text: str) -> int:
    """A row id (dead letter, run): a whole number from 1 to SQLite's largest integer."""
    value = _non_negative_int(text)
    if not 1 <= value <= SQLITE_MAX_INT:
        raise argparse.ArgumentTypeError(f"not an id (from 1 to at most {SQLITE_MAX_INT}): {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return value


class Usage(Exception):
    """A mistake in the command line or configuration: message, then exit status 2."""


def _registry() -> Registry:
    registry = load_registry()
    for plugin, reason in registry.failures:
        print(f"apicenterd: warning: plugin {plugin!r} skipped: {reason}", file=sys.stderr)
    return registry


def _load(path: str, registry: Registry) -> Resolved:
    try:
        return load(path, registry)
    except ConfigError as exc:
        raise Usage("\n".join(f"{path}: {p}" if not p.startswith(str(path)) else p for p in exc.problems)) from None


def _escape_table() -> dict[int, str]:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    table = {c: named.get(chr(c), f"\\x{c:02x}") for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
    # line/paragraph separators, and bidi controls that reorder what is shown ("Trojan Source")
    for c in (0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C, 0xFEFF):
        table[c] = f"\\u{c:04x}"
    return table


_ESCAPES = _escape_table()


def terminal_safe(value: Any) -> str:
    """``value`` as text that is safe in a terminal line or table cell: newlines, tabs, carriage
    returns, NUL, ESC (ANSI sequences), DEL, the other C0/C1 controls, Unicode line and paragraph
    separators and bidi controls are shown escaped (``\\n``, ``\\x1b``, ``\\u2028``), so vendor
    data can neither forge a row nor drive the terminal. ``None`` is the empty string."""
    return "" if value is None else str(value).translate(_ESCAPES)


def _print_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    cells = [list(map(terminal_safe, header))] + [[terminal_safe(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


def _ts(value: float | None) -> str:
    return datetime.fromtimestamp(value, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def cmd_plugins(args: argparse.Namespace) -> int:
    """List connectors with their distribution and capabilities."""
    registry = _registry()
    items: list[dict[str, Any]] = [
        {
            "name": name,
            "title": cls.title,
            "distribution": registry.origins[name].distribution,
            "version": registry.origins[name].version,
            "reads": sorted(map(str, cls.reads)),
            "writes": sorted(map(str, cls.writes)),
            "simulator": cls.simulator() is not None if cls.default_port else False,
        }
        for name, cls in sorted(registry.connectors.items())
    ]
    if args.json:
        print(json.dumps({"connectors": items, "failures": [{"plugin": p, "reason": r} for p, r in registry.failures]}, indent=2))
    else:
        _print_table(
            [(i["name"], i["distribution"], i["version"], ",".join(i["reads"]), ",".join(i["writes"])) for i in items],
            ("NAME", "DISTRIBUTION", "VERSION", "READS", "WRITES"),
        )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the configuration."""
    resolved = _load(args.config, _registry())
    print(
        f"{args.config}: OK ({len(resolved.connections)} connections, {len(resolved.flows)} flows, "
        f"state in {resolved.state_path})"
    )
    return 0


def cmd_flows_list(args: argparse.Namespace) -> int:
    """List configured flows."""
    resolved = _load(args.config, _registry())
    items = [
        {
            "name": f.name,
            "entity": str(f.entity),
            "source": f.source,
            "target": f.target,
            "schedule": f.schedule.describe(),
            "enabled": f.enabled,
        }
        for f in resolved.flows.values()
    ]
    if args.json:
        print(json.dumps(items, indent=2))
    else:
        _print_table(
            [(i["name"], i["entity"], i["source"], i["target"], i["schedule"], "yes" if i["enabled"] else "no") for i in items],
            ("NAME", "ENTITY", "SOURCE", "TARGET", "SCHEDULE", "ENABLED"),
        )
    return 0


async def _with_store(resolved: Resolved, fn):
    from .state import SQLiteStore

    store = SQLiteStore(resolved.state_path)
    await store.open()
    try:
        return await fn(store)
    finally:
        await store.close()


def cmd_flows_run(args: argparse.Namespace) -> int:
    """Run one flow once and print the counts. Exit 0 if the run was ok, 1 if it failed, and
    128 + the signal's number (130 SIGINT, 143 SIGTERM) if a signal stopped it."""
    from .engine import COUNT_KEYS, Engine, RunResult

    resolved = _load(args.config, _registry())
    if args.name not in resolved.flows:
        raise Usage(f"no flow named {args.name!r} (defined: {', '.join(sorted(resolved.flows)) or 'none'})")
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
                    result = await engine.run_flow(args.name, trigger="cli")
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
        if args.json:
            print(json.dumps({**result.as_dict(), "dry_run": True, "plans": [p.__dict__ for p in plans]}, default=str))
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
            counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
            print(terminal_safe(f"dry run of flow {result.flow}: {result.status}: {counts}; nothing was written"))
        return 0 if result.status == "ok" else stopped_code if result.status == "stopped" else 1
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
        error = f" ({result.error})" if result.error else ""
        print(terminal_safe(f"flow {result.flow} run {result.run_id}: {result.status}: {counts}{error}"))
    return 0 if result.status == "ok" else stopped_code if result.status == "stopped" else 1


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


def mapping_rows(resolved: Resolved, name: str) -> list[dict[str, str]]:
    """The rows ``flows mapping`` prints: each canonical field, where it comes from and goes to."""
    from .model import RECORD_TYPES, Entity

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
    resolved = _load(args.config, _registry())
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


def cmd_runs(args: argparse.Namespace) -> int:
    """Show recent runs."""
    resolved = _load(args.config, _registry())
    runs = anyio.run(_with_store, resolved, lambda s: s.runs(args.flow, args.limit))
    if args.json:
        print(json.dumps([r.__dict__ | {"counts": dict(r.counts)} for r in runs], indent=2))
        return 0
    _print_table(
        [
            (r.id, r.flow, r.trigger, _ts(r.started_at), r.status, " ".join(f"{k}={v}" for k, v in r.counts.items() if v), r.error)
            for r in runs
        ],
        ("RUN", "FLOW", "TRIGGER", "STARTED", "STATUS", "COUNTS", "ERROR"),
    )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Show the audit trail."""
    resolved = _load(args.config, _registry())
    entries = anyio.run(
        _with_store, resolved, lambda s: s.audit(flow=args.flow, source_id=args.source_id, run_id=args.run, limit=args.limit)
    )
    if args.json:
        print(json.dumps([e.__dict__ for e in entries], indent=2))
        return 0
    _print_table(
        [(_ts(e.at), e.flow, e.run_id, e.source_id, e.key, e.action, e.target_id, e.reason) for e in entries],
        ("AT", "FLOW", "RUN", "SOURCE ID", "KEY", "ACTION", "TARGET ID", "REASON"),
    )
    return 0


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
    from .engine import Engine

    if args.dlq_command is None:
        raise Usage("dlq: say list, show, replay or discard")
    resolved = _load(args.config, _registry())
    if args.dlq_command == "list":
        status = None if args.status == "any" else args.status
        letters = anyio.run(_with_store, resolved, lambda s: s.dead_letters(flow=args.flow, error=args.error, status=status))
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
    if args.dlq_command == "show":
        letters = anyio.run(_with_store, resolved, lambda s: s.dead_letters(ids=[args.id], status=None))
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
        selected, outcome = anyio.run(_with_store, resolved, act)
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


AUTH_STATE_TTL = 3600.0
"""Seconds a consent URL's ``state`` stays valid for ``auth --code``."""


def _auth_state_file(resolved: Resolved) -> Path:
    """Where ``auth`` keeps the ``state`` of the consent URLs it printed (0600, beside the state db)."""
    return Path(f"{resolved.state_path}.auth-state")


def _read_auth_states(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise Usage(f"{path}: cannot read the pending authorisations ({exc}); delete it and run `apicenterd auth` again") from None
    return data if isinstance(data, dict) else {}


def _write_auth_states(path: Path, states: dict[str, Any]) -> None:
    """Replace ``path`` atomically with ``states``, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(states, out)
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _read_refresh_token(args: argparse.Namespace) -> str:
    """The refresh token from ``--refresh-token -`` (stdin) or ``--refresh-token-file``; a literal
    token on the command line is refused: every user on the host sees it in ``ps``, and it stays in
    the shell's history."""
    if args.refresh_token_file is not None:
        try:
            token = Path(args.refresh_token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise Usage(f"--refresh-token-file: cannot read {args.refresh_token_file}: {getattr(exc, 'strerror', None) or exc}") from None
        where = args.refresh_token_file
    elif args.refresh_token == "-":  # noqa: S105 - "-" means standard input, not a token
        if sys.stdin is None:
            raise Usage("--refresh-token -: there is no standard input to read the token from")
        if sys.stdin.isatty():
            import getpass

            token = getpass.getpass("refresh token (not shown): ").strip()
        else:
            token = sys.stdin.read().strip()
        where = "standard input"
    else:
        raise Usage(
            "--refresh-token: a token on the command line is refused: other users see it in `ps` and it stays in your "
            "shell history. Pipe it in with `--refresh-token -` (e.g. `apicenterd auth CONNECTION --refresh-token - "
            "< token.txt`), or use `--refresh-token-file PATH`"
        )
    if not token:
        raise Usage(f"--refresh-token: {where} holds no token")
    if any(c.isspace() for c in token):
        raise Usage(f"--refresh-token: what {where} holds is not one token (it contains whitespace)")
    return token


def _check_auth_state(args: argparse.Namespace, resolved: Resolved, given: str | None) -> dict[str, Any]:
    """The ``state`` that came back with the code must be the one ``auth`` printed for this
    connection, less than :data:`AUTH_STATE_TTL` ago; else a Usage error (nothing is stored).
    Returns the pending request (``state``, ``expires_at``, ``redirect_uri``)."""
    import hmac

    if not given:
        raise Usage(
            "the code cannot be checked against the consent request: pass the whole URL the consent page redirected "
            "to (--code 'http://...?code=...&state=...'), or the bare code with --state and that URL's state parameter"
        )
    pending = _read_auth_states(_auth_state_file(resolved)).get(args.connection)
    again = f"run `apicenterd auth {args.connection}` for a new consent URL"
    if not isinstance(pending, dict) or not isinstance(pending.get("state"), str):
        raise Usage(f"no consent URL is pending for connection {args.connection!r} (or it was used already): {again}")
    if not hmac.compare_digest(pending["state"].encode(), given.encode()):
        raise Usage(
            f"the state in the redirect does not match the consent URL printed for {args.connection!r}: this code was not "
            f"requested by that URL (a forged or stale link?); nothing was stored; {again}"
        )
    if time.time() > float(pending.get("expires_at") or 0):
        raise Usage(
            f"the consent URL for {args.connection!r} expired (valid {AUTH_STATE_TTL / 60:.0f} minutes); nothing was stored; {again}"
        )
    return pending


def _forget_auth_state(resolved: Resolved, connection: str) -> None:
    path = _auth_state_file(resolved)
    states = _read_auth_states(path)
    if states.pop(connection, None) is not None:
        _write_auth_states(path, states)


def cmd_auth(args: argparse.Namespace) -> int:
    """Authorise an OAuth2 connection: print the consent URL (its state remembered), or exchange a
    code whose state matches, or store a refresh token read from stdin or a file."""
    import functools
    import secrets as pysecrets
    import urllib.parse

    from .kit import authorize_url, exchange_code

    resolved = _load(args.config, _registry())
    conn = resolved.connections.get(args.connection)
    if conn is None:
        raise Usage(f"no connection named {args.connection!r} (defined: {', '.join(sorted(resolved.connections)) or 'none'})")
    settings: Any = conn.settings  # any settings model with the three fields checked here (e.g. kit.OAuth2Settings)
    needed = [f for f in ("token_url", "client_id", "client_secret") if not getattr(settings, f, None)]
    if needed:
        raise Usage(f"connection {args.connection!r} ({conn.connector.name}) is not OAuth2: it has no {', '.join(needed)}")

    async def save(tokens) -> None:
        from .engine import StateTokenStore
        from .tokencrypt import TokenCipher

        cipher = TokenCipher(resolved.token_key) if resolved.token_key else None
        await _with_store(resolved, lambda store: StateTokenStore(store, args.connection, cipher).save(tokens))

    if args.refresh_token is not None or args.refresh_token_file is not None:
        token = _read_refresh_token(args)
        logs.redactor.learn(f"auth:{args.connection}", [token])
        anyio.run(save, {"refresh_token": token, "access_token": "", "expires_at": 0})
        print(f"stored a new refresh token for {args.connection!r}; reload the daemon (systemctl reload apicenterd)")
        return 0
    if not args.code:
        if args.state:
            raise Usage("--state goes with --code (the bare code from the redirected URL)")
        base = getattr(settings, "authorize_url", None) or conn.connector.oauth_authorize_url
        if not base:
            raise Usage(
                f"connector {conn.connector.name!r} declares no authorize URL; get a refresh token and pass it with "
                "--refresh-token - (standard input) or --refresh-token-file PATH"
            )
        state = pysecrets.token_hex(24)  # hex: never starts with "-", so `--state VALUE` always parses
        path = _auth_state_file(resolved)
        states = {k: v for k, v in _read_auth_states(path).items() if isinstance(v, dict) and float(v.get("expires_at") or 0) > time.time()}
        states[args.connection] = {"state": state, "expires_at": time.time() + AUTH_STATE_TTL, "redirect_uri": args.redirect_uri}
        try:
            _write_auth_states(path, states)
        except OSError as exc:
            raise Usage(f"cannot remember the consent request in {path}: {exc.strerror or exc}") from None
        consent = authorize_url(
            base,
            client_id=settings.client_id,
            redirect_uri=args.redirect_uri,
            scopes=getattr(settings, "scopes", None) or conn.connector.oauth_scopes,
            state=state,
        )
        print("Open this URL, sign in and consent; then, within the hour, run this command again with")
        print("--code and the whole URL you were redirected to (its state is checked):\n")
        print(consent)
        return 0
    code, state = args.code, args.state
    if code.startswith(("http://", "https://")):
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(code).query)
        if "error" in params:
            description = params.get("error_description", [""])[0]
            raise Usage(terminal_safe(f"the consent page answered error {params['error'][0]!r}: {description}"))
        if "code" not in params:
            raise Usage(terminal_safe(f"the URL has no code parameter: {code}"))
        in_url = params.get("state", [None])[0]
        if state is not None and in_url is not None and state != in_url:
            raise Usage("--state differs from the state in the URL; pass only the URL")
        code, state = params["code"][0], in_url or state
    pending = _check_auth_state(args, resolved, state)
    # the token request must name the redirect URI the consent URL named
    remembered = pending.get("redirect_uri")
    redirect_uri = remembered if isinstance(remembered, str) else args.redirect_uri
    try:
        tokens = anyio.run(
            functools.partial(
                exchange_code,
                settings.token_url,
                client_id=settings.client_id,
                client_secret=settings.client_secret,
                code=code,
                redirect_uri=redirect_uri,
            )
        )
    except ConnectorError as exc:
        print(terminal_safe(f"apicenterd: {logs.redactor.scrub(str(exc))}"), file=sys.stderr)
        return 1
    logs.redactor.learn_tokens(f"auth:{args.connection}", tokens)
    anyio.run(save, tokens)
    _forget_auth_state(resolved, args.connection)  # a state is good for one code
    print(f"authorised {args.connection!r}; tokens stored in {resolved.state_path}; reload the daemon (systemctl reload apicenterd)")
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    """State store maintenance."""
    from .daemon import purge
    from .observe.alerts import Alerter

    if args.state_command != "purge":
        raise Usage("state: say purge")
    resolved = _load(args.config, _registry())
    logs.configure(resolved.config.daemon.log_level, stream="stderr")
    alerter = Alerter(resolved.config.alerts)
    async def purge_and_alert(store):
        try:
            return await purge(store, resolved.config.state, alerter=alerter)
        finally:
            await alerter.flush()  # bounded: alerts.flush_timeout

    done = anyio.run(_with_store, resolved, purge_and_alert)
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


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM."""
    from .daemon import Daemon

    registry = _registry()
    resolved = _load(args.config, registry)
    logs.configure(resolved.config.daemon.log_level)
    anyio.run(Daemon(Path(args.config), registry, resolved).run)
    return 0


def _reload_state_path(config: str) -> tuple[Path | None, str | None]:
    """The state path the daemon of ``config`` uses (where its reload status lies), or None and
    why not. Only the file's shape is read, so a file the daemon would refuse still gives it;
    a file that cannot be parsed at all falls back to $APICENTERD_STATE__PATH (as the unit sets)."""
    from .config import read_config

    base = Path(config).resolve().parent
    try:
        path, problem = read_config(config).state.path, None
    except Exception as exc:  # noqa: BLE001 - whatever the file makes the parser raise: the daemon would refuse it too
        problem = "; ".join(exc.problems) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
        env = next((v for k, v in os.environ.items() if k.upper() == "APICENTERD_STATE__PATH"), None)
        if not env:
            return None, problem
        path = Path(env)
    return (path if path.is_absolute() else (base / path).resolve()), problem


def _daemon_pid(state_path: Path | None, problem: str | None) -> int:
    """The pid of the daemon holding ``state_path``'s daemon lock."""
    if state_path is None:
        raise Usage(f"reload: cannot find the daemon: the configuration cannot be read ({problem}); pass --pid PID")
    try:
        from .state.lock import daemon_lock_holder  # the daemon lock
    except ImportError:
        raise Usage("reload: this version cannot look up the daemon's pid; pass --pid PID (under systemd: --pid $MAINPID)") from None
    holder = daemon_lock_holder(state_path)
    pid = holder.get("pid") if isinstance(holder, dict) else None
    if not isinstance(pid, int) or pid <= 0:
        raise Usage(f"reload: no daemon holds the lock of {state_path}: is it running? (or pass --pid PID)")
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def cmd_reload(args: argparse.Namespace) -> int:
    """Send the daemon SIGHUP and report its answer: 0 applied, 1 refused (reason on stderr) or no answer."""
    from .daemon import read_reload_status, reload_status_path

    state_path, problem = _reload_state_path(args.config)
    pid = args.pid if args.pid is not None else _daemon_pid(state_path, problem)
    status_path = reload_status_path(state_path) if state_path is not None else None
    before = (read_reload_status(status_path) or {}).get("generation", 0) if status_path is not None else 0
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        print(f"apicenterd: reload: no process {pid}: is the daemon running?", file=sys.stderr)
        return 1
    except PermissionError:
        print(f"apicenterd: reload: not allowed to signal process {pid} (run as the daemon's user or root)", file=sys.stderr)
        return 1
    if status_path is None:
        print(
            f"apicenterd: reload: {args.config} cannot be read ({problem}); the daemon was signalled and keeps its "
            "old configuration (set APICENTERD_STATE__PATH to see its answer)",
            file=sys.stderr,
        )
        return 1
    deadline = time.monotonic() + args.timeout
    while True:
        status = read_reload_status(status_path)
        if status is not None and status["generation"] > before and status.get("pid") == pid:
            break
        if not _alive(pid):
            print(f"apicenterd: reload: the daemon (pid {pid}) exited during the reload; see its log", file=sys.stderr)
            return 1
        if time.monotonic() > deadline:
            print(f"apicenterd: reload: no answer from the daemon (pid {pid}) within {args.timeout:g} s; see its log", file=sys.stderr)
            return 1
        time.sleep(0.1)
    if status.get("result") == "applied":
        print(f"apicenterd: configuration reloaded (daemon pid {pid})")
        return 0
    print(f"apicenterd: reload refused, the daemon keeps its previous configuration: {status.get('reason')}", file=sys.stderr)
    return 1


def _simulator_app(registry: Registry, name: str, seed: int, records: int, **options: Any):
    try:
        cls = registry.connector(name)
    except PluginError as exc:
        raise Usage(str(exc)) from None
    app = cls.simulator(seed=seed, records=records, **options)
    if app is None:
        raise Usage(f"connector {name!r} has no simulator")
    return cls, app


def cmd_simulate(args: argparse.Namespace) -> int:
    """Serve a simulator in the foreground."""
    import uvicorn

    options = {"rate_limit": 0} if args.no_rate_limit else {}
    cls, app = _simulator_app(_registry(), args.connector, args.seed, args.records, **options)
    port = args.port if args.port is not None else (cls.default_port or 0)
    print(f"{cls.title or cls.name} simulator on http://{args.host}:{port} (seed {args.seed}, {args.records} records)", flush=True)
    uvicorn.run(app, host=args.host, port=port, log_level="warning", access_log=False)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the simulators the demo config points at, then the daemon."""
    import signal
    import threading

    from .daemon import Daemon
    from .testing import serve_app

    registry = _registry()
    config_path = Path(args.config)
    if not config_path.exists():
        raise Usage(f"{config_path}: no such file (run the demo from the repository root, or pass --config)")
    _demo_credentials(config_path, registry)
    resolved = _load(str(config_path), registry)
    if not args.keep_state:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(str(resolved.state_path) + suffix).unlink()
    logs.configure(resolved.config.daemon.log_level)
    with contextlib.ExitStack() as stack:
        for name, conn in resolved.connections.items():
            base = conn.settings.base_url
            port = int(base.rsplit(":", 1)[1].split("/")[0])
            _, app = _simulator_app(registry, conn.connector.name, 1, args.records if name in _sources(resolved) else 0)
            url = stack.enter_context(serve_app(app, port=port))
            print(f"demo: {conn.connector.title} simulator for connection {name!r} on {url}", file=sys.stderr)
        metrics_at = resolved.config.daemon.metrics_address
        print(
            f"demo: daemon on {config_path}; logs are the JSON lines below; metrics at http://{metrics_at}/metrics; "
            "Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        if args.duration:
            timer = threading.Timer(args.duration, lambda: os.kill(os.getpid(), signal.SIGTERM))
            timer.daemon = True
            timer.start()
        anyio.run(Daemon(config_path, registry, resolved).run)
    return 0


def _demo_credentials(config_path: Path, registry: Registry) -> None:
    """Set the environment variables the demo config refers to ({ env = "X" }) to the values
    each connector's simulator accepts (``Connector.demo_settings``), unless already set."""
    import tomllib

    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise Usage(f"{config_path}: {exc}") from None
    for table in (raw.get("connections") or {}).values():
        cls = registry.connectors.get(table.get("connector", ""))
        if cls is None or "base_url" not in table:
            continue
        demo = cls.demo_settings(table["base_url"])
        for key, value in table.items():
            if isinstance(value, dict) and set(value) == {"env"} and key in demo:
                os.environ.setdefault(value["env"], str(demo[key]))


def _sources(resolved: Resolved) -> set[str]:
    """Connections that only feed flows: the demo seeds records there and starts targets empty."""
    return {f.source for f in resolved.flows.values()} - {f.target for f in resolved.flows.values()}


COMMANDS = {
    "run": cmd_run,
    "reload": cmd_reload,
    "check": cmd_check,
    "plugins": cmd_plugins,
    "runs": cmd_runs,
    "audit": cmd_audit,
    "simulate": cmd_simulate,
    "demo": cmd_demo,
    "dlq": cmd_dlq,
    "auth": cmd_auth,
    "state": cmd_state,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``apicenterd`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "flows":
            if args.flows_command is None:
                parser.parse_args(["flows", "--help"])
            return {"list": cmd_flows_list, "run": cmd_flows_run, "mapping": cmd_flows_mapping}[args.flows_command](args)
        return COMMANDS[args.command](args)
    except Usage as exc:
        print(f"apicenterd: {exc}" if "\n" not in str(exc) else str(exc), file=sys.stderr)
        return EXIT_USAGE
    except LockError as exc:
        hint = "; not waiting for it (--no-wait)" if isinstance(exc, FlowBusy) else ""
        print(f"apicenterd: {exc}{hint}", file=sys.stderr)
        return EXIT_BUSY if isinstance(exc, StoreBusy) else 1
    except StateError as exc:  # the state file is full, damaged, read-only or gone: say which and what to do
        print(f"apicenterd: {exc}", file=sys.stderr)
        return EXIT_STATE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `apicenterd ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
