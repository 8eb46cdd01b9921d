"""The ``apicenterd`` command line: run, reload, check, plugins, flows, runs, audit, simulate, demo."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Collection, Sequence
from datetime import datetime, timezone
from typing import Any

from .. import __version__
from ..config import Resolved, load
from ..errors import EXIT_STATE, ConfigError, StateError
from ..registry import Registry, load_registry
from ..state.lock import FlowBusy, LockError, StoreBusy

__all__ = ["main", "terminal_safe"]

DEFAULT_CONFIG = "/etc/apicenterd/apicenterd.toml"
EXIT_USAGE = 2
EXIT_RECORDS_FAILED = 3
"""``flows run`` ran to its end but records failed in it (they are in the dead-letter queue)."""
EXIT_DEFERRED = 4
"""``flows run`` stopped because the flow's share of a connection's day budget is spent (``deferred``):
what it did is settled, and it goes on from there after the vendor's reset."""
EXIT_CONFIG = 78
"""The daemon (or a simulator) cannot start with this configuration on this host (EX_CONFIG): a mistake
in the file, or an address it must listen on (``[admin] address``, ``daemon.metrics_address``, a
simulator's port) is in use. The systemd unit does not restart on it (``RestartPreventExitStatus=``)."""
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
        f"{EXIT_STATE} the state file cannot be used (disk full, damaged, read-only, deleted), "
        f"{EXIT_CONFIG} run, simulate or demo cannot start with this configuration here (a mistake in the file, or "
        "[admin] address, daemon.metrics_address or a simulator's port in use). "
        "With [admin] configured, runs, dlq list, dlq replay, flows run, flows reset and reload go through the running daemon's "
        "admin API ([admin] address and token, a credential read from /etc/apicenterd/credentials outside systemd; "
        "$APICENTERD_ADMIN_URL, $APICENTERD_ADMIN_TOKEN override them); "
        "--local, or no daemon answering, works on the state store.",
    )
    parser.add_argument("--version", action="version", version=f"apicenterd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="run the daemon (foreground; systemd Type=notify); with [admin]: the admin API, dashboard and webhooks",
    )
    _config_arg(p)

    p = sub.add_parser(
        "reload",
        help="make the running daemon reload its configuration; exit 0 if it applied it, 1 if it refused (systemd ExecReload=)",
    )
    _config_arg(p)
    p.add_argument(
        "--pid",
        type=_positive_int,
        help="signal this process (SIGHUP) instead of asking the admin API ([admin]); default: the admin API when it "
        "answers, else the holder of the daemon lock",
    )
    p.add_argument(
        "--timeout", type=_positive_float, default=60.0, help="seconds to wait for the daemon's answer (default: 60)"
    )

    p = sub.add_parser(
        "check",
        help="validate the configuration and print every mistake with its path; --connect: and call each connection once",
        epilog="exit status: 0 all good; 2 the configuration has mistakes; 1 (--connect) a connection failed its call",
    )
    _config_arg(p)
    p.add_argument(
        "--connect",
        action="store_true",
        help="also open each connection and make its one cheap call (the connector's check: credentials, host, "
        "account), a line per connection; tokens are those of the state store, as the daemon's",
    )
    p.add_argument(
        "--timeout", type=_positive_float, default=60.0, help="with --connect: seconds each connection may take (default: 60)"
    )

    p = sub.add_parser("plugins", help="list installed connectors")
    p.add_argument("--json", action="store_true", help="print JSON")

    flows = sub.add_parser("flows", help="list flows, run one now, or reset one's cursor (resync)")
    fsub = flows.add_subparsers(dest="flows_command", metavar="ACTION")
    p = fsub.add_parser("list", help="list the configured flows (with each one's state, when the daemon answers)")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    _local_arg(p)
    p = fsub.add_parser(
        "run",
        help="run one flow once, now, and print what it did",
        epilog=f"exit status: 0 ok; 1 the run failed; {EXIT_RECORDS_FAILED} the run went through but records failed "
        f"(see apicenterd dlq list); {EXIT_DEFERRED} deferred: its share of the day budget is spent (it goes on after "
        f"the reset); {EXIT_BUSY} the flow runs elsewhere (--no-wait); 130/143 stopped by SIGINT/SIGTERM",
    )
    p.add_argument("name", help="the flow's name")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="print counts as JSON")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="read, map and look up for real; print what would be written; write nothing (never waits for a running flow)",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="read every record, as if the flow had never run (its cursor ignored for this run; links stay, so "
        "records that did not change cost no write)",
    )
    _no_wait_arg(p)
    _local_arg(p)
    p = fsub.add_parser(
        "reset",
        help="forget the flow's cursor (links stay: nothing is written twice); its next run reads everything",
        epilog="Through the running daemon when its admin API answers ([admin]), else on the state store; waits for a "
        "run of the flow in progress.",
    )
    p.add_argument("name", help="the flow's name")
    _config_arg(p)
    _local_arg(p)
    p = fsub.add_parser("mapping", help="print a flow's whole mapping: source field → canonical → target field")
    p.add_argument("name", help="the flow's name")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("runs", help="show recent runs (from the running daemon, or the state store)")
    _config_arg(p)
    p.add_argument("--flow", help="only this flow")
    p.add_argument("--limit", type=_positive_int, default=20)
    p.add_argument("--json", action="store_true", help="print JSON")
    _local_arg(p)

    p = sub.add_parser("audit", help="show the per-record audit trail")
    _config_arg(p)
    p.add_argument("--flow", help="only this flow")
    p.add_argument("--source-id", help="only this source record")
    p.add_argument("--run", type=_id, help="only this run id")
    p.add_argument("--limit", type=_positive_int, default=50)
    p.add_argument("--json", action="store_true", help="print JSON (each entry with its writes and field diffs)")
    p.add_argument("--diff", action="store_true", help="under each entry, the fields it wrote to the target (old -> new)")

    p = sub.add_parser(
        "status",
        help="the daemons on the state store (PostgreSQL: every daemon, alive or not, what each runs, and the flows' "
        "jobs waiting; SQLite: the one daemon and its runs in progress)",
    )
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")

    state = sub.add_parser("state", help="the state store: retention purge, schema migrations")
    ssub = state.add_subparsers(dest="state_command", metavar="ACTION")
    p = ssub.add_parser(
        "migrate",
        help="apply the state store's pending schema migrations now (a daemon also does it at start); print the "
        "schema version before and after",
    )
    _config_arg(p)
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
    _local_arg(p)
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
            _local_arg(p)

    p = sub.add_parser("simulate", help="serve one connector's vendor simulator on loopback")
    p.add_argument("connector", help="connector name, e.g. eaccounting")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, help="default: the connector's own port")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--records", type=_non_negative_int, default=0, help="how many records to seed")
    p.add_argument("--no-rate-limit", action="store_true", help="answer every request (benchmarks); default: the vendor's limit")

    p = sub.add_parser("demo", help="start the bundled simulators and run the daemon on etc/demo.toml")
    p.add_argument("--config", default="etc/demo.toml", help="demo configuration (default: etc/demo.toml)")
    p.add_argument("--records", type=_non_negative_int, default=50, help="records to seed in each simulator a flow reads from")
    p.add_argument("--keep-state", action="store_true", help="keep the demo state database from a previous run")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    return parser


def _local_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--local",
        action="store_true",
        help="work on the state store directly even when the daemon's admin API answers ([admin]; by default "
        "this command goes through the running daemon)",
    )


def _no_wait_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help=f"if the flow is running in another process (the daemon, another command), exit {EXIT_BUSY} at once "
        "instead of waiting for it to finish",
    )


def _tell_waiting(flow: str, holder: dict[str, Any]) -> None:
    """Say once, on stderr, why a command waits: the flow runs in another process."""
    from ..state.lock import describe_holder

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


class CannotStart(Exception):
    """``run``, ``simulate`` or ``demo`` cannot start with this configuration here (a mistake in it, or an
    address in use): message, then :data:`EXIT_CONFIG`, on which systemd does not restart."""


def listen(host: str, port: int, setting: str) -> Any:
    """A listening TCP socket on ``host:port``; :class:`CannotStart` naming ``setting`` when it cannot be had."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, reuse_port=False)
    except OSError as exc:
        raise CannotStart(f"{setting}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _registry() -> Registry:
    registry = load_registry()
    for plugin, reason in registry.failures:
        print(f"apicenterd: warning: plugin {plugin!r} skipped: {reason}", file=sys.stderr)
    return registry


def _load(path: str, registry: Registry, *, secrets_of: bool | Collection[str] = True, leave_out: Collection[str] = ()) -> Resolved:
    """The configuration, resolved; Usage listing every mistake. ``secrets_of``/``leave_out``: see
    :func:`apicenterd.config.resolve` (read-only commands resolve no secret; a command acting on one
    flow or connection resolves only those)."""
    try:
        return load(path, registry, secrets_of=secrets_of, leave_out=leave_out)
    except ConfigError as exc:
        raise Usage("\n".join(_where(path, p) for p in exc.problems)) from None


def _where(path: str, problem: str) -> str:
    """``problem`` prefixed with the file it is in, unless it names its origin (the file, or the environment)."""
    return problem if problem.startswith((str(path), "environment")) else f"{path}: {problem}"


def _load_readonly(path: str, registry: Registry) -> Resolved:
    """The configuration for a command that reads the state store or the file only: no secret is read."""
    return _load(path, registry, secrets_of=False)


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


async def _with_store(resolved: Resolved, fn, *, create: bool = True, migrate: bool | None = None):
    """``fn(store)`` on the configured state store, opened for it. ``create=False`` (commands that read
    or tidy the state): a SQLite file that is not there is a Usage error naming the path, not a new
    empty database. ``migrate=False`` (the default with ``create=False``): a PostgreSQL schema is not
    created nor migrated; one older or newer than this apicenterd is a StateError saying so."""
    from ..state import store_for

    if not create:
        _require_state(resolved)
    if migrate is None:
        migrate = create
    store = store_for(resolved.config.state.url, resolved.state_path)
    if resolved.config.state.url and not migrate:
        await store.open(migrate=False)  # type: ignore[call-arg]
    else:
        await store.open()
    try:
        return await fn(store)
    finally:
        await store.close()


def _require_state(resolved: Resolved) -> None:
    """Usage naming the path when the SQLite state file is not there (a wrong path or config)."""
    if not resolved.config.state.url and not os.path.lexists(resolved.state_path):
        raise Usage(_no_state_file(resolved))


def _no_state_file(resolved: Resolved) -> str:
    env = next((k for k in os.environ if k.upper() == "APICENTERD_STATE__PATH"), None)
    origin = f"${env} = {os.environ[env]}" if env else f"[state] path in {resolved.path}"
    return (
        f"state file {resolved.state_path} does not exist ({origin}): is it the daemon's configuration "
        "(--config, $APICENTERD_CONFIG) and path? The daemon creates the file when it first starts; nothing was created"
    )


# The commands, one module per group; imported last, as they use the helpers above (and look up
# _registry here at call time, so a test can replace it). The names tests use are re-exported.
from .auth import cmd_auth  # noqa: E402
from .daemon import cmd_check, cmd_plugins, cmd_reload, cmd_run  # noqa: E402
from .demo import _demo_credentials as _demo_credentials  # noqa: E402
from .demo import cmd_demo, cmd_simulate  # noqa: E402
from .flows import _stop_on_signals as _stop_on_signals  # noqa: E402
from .flows import cmd_flows_list, cmd_flows_mapping, cmd_flows_reset, cmd_flows_run  # noqa: E402
from .flows import mapping_rows as mapping_rows  # noqa: E402
from .state import cmd_audit, cmd_dlq, cmd_runs, cmd_state, cmd_status  # noqa: E402

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
    "status": cmd_status,
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
            commands = {"list": cmd_flows_list, "run": cmd_flows_run, "reset": cmd_flows_reset, "mapping": cmd_flows_mapping}
            return commands[args.flows_command](args)
        return COMMANDS[args.command](args)
    except Usage as exc:
        print(f"apicenterd: {exc}" if "\n" not in str(exc) else str(exc), file=sys.stderr)
        return EXIT_USAGE
    except CannotStart as exc:
        print(f"apicenterd: {exc}" if "\n" not in str(exc) else str(exc), file=sys.stderr)
        return EXIT_CONFIG
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
