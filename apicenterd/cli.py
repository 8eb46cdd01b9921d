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

from . import __version__
from .config import Resolved, load
from .errors import ConfigError, PluginError, RecordError
from .observe import logs
from .registry import Registry, load_registry

__all__ = ["main"]

DEFAULT_CONFIG = "/etc/apicenterd/apicenterd.toml"
EXIT_USAGE = 2


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        default=os.environ.get("APICENTERD_CONFIG", DEFAULT_CONFIG),
        help=f"the TOML configuration (default: $APICENTERD_CONFIG or {DEFAULT_CONFIG})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="apicenterd", description="Self-hosted integration daemon.")
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
        "--dry-run", action="store_true", help="read, map and look up for real; print what would be written; write nothing"
    )
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
    p.add_argument("--run", type=_positive_int, help="only this run id")
    p.add_argument("--limit", type=_positive_int, default=50)
    p.add_argument("--json", action="store_true", help="print JSON")

    state = sub.add_parser("state", help="the state store: retention purge")
    ssub = state.add_subparsers(dest="state_command", metavar="ACTION")
    p = ssub.add_parser("purge", help="delete audit entries and dead letters past their retention now")
    _config_arg(p)

    p = sub.add_parser("auth", help="(re-)authorise an OAuth2 connection and store its tokens")
    p.add_argument("connection", help="the connection's name in the config")
    _config_arg(p)
    p.add_argument("--redirect-uri", default="http://127.0.0.1:8765/callback", help="the redirect URI registered for the app")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--code", help="the authorization code (or the whole redirected URL) from the consent page")
    group.add_argument("--refresh-token", help="store this refresh token as the connection's newest")

    dlq = sub.add_parser("dlq", help="the dead-letter queue: list, show, replay or discard failed records")
    dsub = dlq.add_subparsers(dest="dlq_command", metavar="ACTION")
    p = dsub.add_parser("list", help="list dead letters")
    _config_arg(p)
    p.add_argument("--flow", help="only this flow")
    p.add_argument("--error", help="only those whose error contains this text")
    p.add_argument("--status", choices=["open", "resolved", "discarded", "any"], default="open")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = dsub.add_parser("show", help="one dead letter with its payload")
    p.add_argument("id", type=_positive_int)
    _config_arg(p)
    for action, text in (("replay", "take dead letters through the flow again"), ("discard", "give up on dead letters")):
        p = dsub.add_parser(action, help=text)
        p.add_argument("ids", nargs="*", type=_positive_int, metavar="ID")
        _config_arg(p)
        p.add_argument("--flow", help="every open dead letter of this flow")
        p.add_argument("--error", help="every open dead letter whose error contains this text")
        p.add_argument("--all", action="store_true", help="every open dead letter")
        p.add_argument("--json", action="store_true", help="print JSON")

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


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
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


def _print_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    cells = [list(map(str, header))] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def _ts(value: float | None) -> str:
    return datetime.fromtimestamp(value, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def cmd_plugins(args: argparse.Namespace) -> int:
    """List connectors with their distribution and capabilities."""
    registry = _registry()
    items = [
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
        engine = Engine(resolved, store, dry_run=args.dry_run)
        engine_box.append(engine)
        result = None
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(_stop_on_signals, engine, tg.cancel_scope, signals)
                result = await engine.run_flow(args.name, trigger="cli")
                tg.cancel_scope.cancel()
        finally:
            await engine.aclose()
            await engine.alerter.flush()  # bounded: alerts.flush_timeout
        return result or engine.last_result or RunResult(args.name, 0, dict.fromkeys(COUNT_KEYS, 0), "stopped", "stopped before the run began")

    result = anyio.run(_with_store, resolved, go)
    stopped_code = 128 + signals[0] if signals else 1
    if args.dry_run:
        plans = engine_box[0].plans
        if args.json:
            print(json.dumps({**result.as_dict(), "dry_run": True, "plans": [p.__dict__ for p in plans]}, default=str))
        else:
            for plan in plans:
                where = f" {plan.target_id}" if plan.target_id else ""
                print(f"would {plan.op} {plan.entity} {plan.key}{where}")
                for field, change in plan.diff.items():
                    if plan.op == "create":
                        print(f"  + {field}: {json.dumps(change['to'], default=str)}")
                    else:
                        print(f"  ~ {field}: {json.dumps(change['from'], default=str)} -> {json.dumps(change['to'], default=str)}")
            counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
            print(f"dry run of flow {result.flow}: {result.status}: {counts}; nothing was written")
        return 0 if result.status == "ok" else stopped_code if result.status == "stopped" else 1
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
        print(f"flow {result.flow} run {result.run_id}: {result.status}: {counts}" + (f" ({result.error})" if result.error else ""))
    return 0 if result.status == "ok" else stopped_code if result.status == "stopped" else 1


async def _stop_on_signals(engine, scope: anyio.CancelScope, seen: list[int], *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
    """SIGTERM or SIGINT: the run stops between records (recorded ``stopped`` with its counts); a
    second one cuts it off at once (still recorded ``stopped``)."""
    log = logs.get_logger()
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
    for path in _field_paths(record_type):
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


def _field_paths(model, prefix: str = "", depth: int = 0) -> list[str]:
    import typing

    from pydantic import BaseModel

    paths = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        inner = info.annotation
        is_union = typing.get_origin(inner) in (typing.Union, getattr(__import__("types"), "UnionType", None))
        args = [a for a in typing.get_args(inner) if a is not type(None)] if is_union else [inner]
        nested = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        seq = next((typing.get_args(a)[0] for a in args if typing.get_origin(a) is tuple and typing.get_args(a)), None)
        if isinstance(seq, type) and issubclass(seq, BaseModel) and depth < 2:
            paths.extend(_field_paths(seq, f"{path}.*.", depth + 1))
        elif nested is not None and depth < 2:
            paths.extend(_field_paths(nested, f"{path}.", depth + 1))
        else:
            paths.append(path)
    return paths


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
    print(f"flow {flow.name}: {flow.entity} from {flow.source} to {flow.target}")
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
        return await store.dead_letters(
            flow=args.flow, error=args.error, ids=args.ids or None, status="open", limit=100_000
        )

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
            [(d.id, d.flow, d.source_id, d.key, d.attempts, _ts(d.last_failed_at), d.status, d.error[:100]) for d in letters],
            ("ID", "FLOW", "SOURCE ID", "KEY", "ATTEMPTS", "LAST FAILED", "STATUS", "ERROR"),
        )
        return 0
    if args.dlq_command == "show":
        letters = anyio.run(_with_store, resolved, lambda s: s.dead_letters(ids=[args.id], status=None))
        if not letters:
            raise Usage(f"no dead letter {args.id}")
        d = letters[0]
        print(json.dumps({**d.__dict__, "payload": json.loads(d.payload)}, indent=2, default=str))
        return 0

    logs.configure(resolved.config.daemon.log_level, stream="stderr")

    async def act(store):
        letters = await _selected_letters(args, store)
        if args.dlq_command == "discard":
            return len(letters), await store.set_dead_letter_status([d.id for d in letters], "discarded")
        engine = Engine(resolved, store)
        try:
            return len(letters), await engine.replay(letters)
        finally:
            await engine.aclose()
            await engine.alerter.flush()  # bounded: alerts.flush_timeout

    try:
        selected, outcome = anyio.run(_with_store, resolved, act)
    except RecordError as exc:
        print(f"apicenterd: {exc}", file=sys.stderr)
        return 1
    if args.dlq_command == "discard":
        print(json.dumps({"discarded": outcome}) if args.json else f"discarded {outcome} dead letters")
        return 0
    if args.json:
        print(json.dumps({"replayed": selected, **outcome}))
    else:
        print(f"replayed {selected} dead letters: " + ", ".join(f"{k} {v}" for k, v in outcome.items()))
    return 0 if outcome.get("failed", 0) == 0 else 1


def cmd_auth(args: argparse.Namespace) -> int:
    """Authorise an OAuth2 connection: print the consent URL, or exchange a code, or store a token."""
    import secrets as pysecrets
    import urllib.parse

    import httpx

    resolved = _load(args.config, _registry())
    conn = resolved.connections.get(args.connection)
    if conn is None:
        raise Usage(f"no connection named {args.connection!r} (defined: {', '.join(sorted(resolved.connections)) or 'none'})")
    settings = conn.settings
    needed = [f for f in ("token_url", "client_id", "client_secret") if not getattr(settings, f, None)]
    if needed:
        raise Usage(f"connection {args.connection!r} ({conn.connector.name}) is not OAuth2: it has no {', '.join(needed)}")

    def secret(value) -> str:
        return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)

    async def save(tokens) -> None:
        await _with_store(resolved, lambda store: store.save_tokens(args.connection, tokens))

    if args.refresh_token:
        anyio.run(save, {"refresh_token": args.refresh_token, "access_token": "", "expires_at": 0})
        print(f"stored a new refresh token for {args.connection!r}; reload the daemon (systemctl reload apicenterd)")
        return 0
    if not args.code:
        base = conn.connector.oauth_authorize_url
        if not base:
            raise Usage(f"connector {conn.connector.name!r} declares no authorize URL; get a refresh token and pass --refresh-token")
        query = {
            "client_id": settings.client_id,
            "redirect_uri": args.redirect_uri,
            "response_type": "code",
            "scope": " ".join(conn.connector.oauth_scopes),
            "state": pysecrets.token_urlsafe(16),
        }
        print("Open this URL, sign in and consent; then run this command again with --code and the code")
        print("(or the whole URL you were redirected to):\n")
        print(f"{base}?{urllib.parse.urlencode(query)}")
        return 0
    code = args.code
    if code.startswith("http"):
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(code).query)
        if "code" not in params:
            raise Usage(f"the URL has no code parameter: {code}")
        code = params["code"][0]
    try:
        response = httpx.post(
            settings.token_url,
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": args.redirect_uri},
            auth=(settings.client_id, secret(settings.client_secret)),
            timeout=30,
        )
    except httpx.HTTPError as exc:
        print(f"apicenterd: token request to {settings.token_url} failed: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"apicenterd: the vendor refused the code: HTTP {response.status_code} {response.text[:200]}", file=sys.stderr)
        return 1
    body = response.json()
    if not body.get("refresh_token"):
        print("apicenterd: the token response has no refresh_token (was offline access requested?)", file=sys.stderr)
        return 1
    tokens = {
        "access_token": body.get("access_token", ""),
        "refresh_token": body["refresh_token"],
        "expires_at": time.time() + float(body.get("expires_in") or 3600),
        "token_type": body.get("token_type", "Bearer"),
    }
    anyio.run(save, tokens)
    print(f"authorised {args.connection!r}; tokens stored in {resolved.state_path}; reload the daemon (systemctl reload apicenterd)")
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    """State store maintenance."""
    from .daemon import purge

    if args.state_command != "purge":
        raise Usage("state: say purge")
    resolved = _load(args.config, _registry())
    audit, letters = anyio.run(_with_store, resolved, lambda s: purge(s, resolved.config.state))
    print(f"purged {audit} audit entries and {letters} dead letters past their retention")
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
    except Exception as exc:  # whatever the file makes the parser raise: the daemon would refuse it too
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
        from .state.lock import daemon_lock_holder  # type: ignore[import-not-found]  # the daemon lock
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
    for name, table in (raw.get("connections") or {}).items():
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
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `apicenterd ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
