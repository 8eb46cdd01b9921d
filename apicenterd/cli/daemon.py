"""The daemon commands: run, reload, check, plugins."""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from .. import cli as _cli
from ..errors import ConfigError
from ..observe import logs
from . import Usage, _load, _print_table, _with_store, terminal_safe


def cmd_plugins(args: argparse.Namespace) -> int:
    """List connectors with their distribution and capabilities."""
    registry = _cli._registry()
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
    from ..engine import describe_limits

    resolved = _load(args.config, _cli._registry())
    for name, conn in sorted(resolved.connections.items()):
        if conn.connector.rate_limits and not getattr(conn.settings, "client_rate_limit", True):
            print(
                f"{args.config}: warning: connections.{name}.client_rate_limit = false: the {conn.connector.name} "
                f"connector's rate limit ({describe_limits(conn.connector.rate_limits)}) is off; "
                "only the vendor's 429s will slow this connection down",
                file=sys.stderr,
            )
    print(
        f"{args.config}: OK ({len(resolved.connections)} connections, {len(resolved.flows)} flows, "
        f"state in {resolved.state_where})"
    )
    return _check_connections(resolved, args.timeout) if args.connect else 0


def _check_connections(resolved: Any, timeout: float) -> int:
    """``check --connect``: each connection opened and its ``check()`` called, a line each; 1 if any failed."""
    from ..engine import Engine
    from ..observe.logs import error_text
    from ..plugin import Connector

    logs.configure(resolved.config.daemon.log_level, stream="stderr")
    failed: list[str] = []

    async def go(store: Any) -> None:
        engine = Engine(resolved, store)
        try:
            for name in sorted(resolved.connections):
                cls = resolved.connections[name].connector
                if cls.check is not Connector.check:
                    how = ""
                elif cls.sources:
                    how = f" (read one {sorted(map(str, cls.sources))[0]} record: the connector declares no check)"
                else:
                    print(f"connection {name} ({cls.name}): not checked: the connector declares no check and reads nothing")
                    continue
                started = time.perf_counter()
                try:
                    with anyio.fail_after(timeout):
                        await engine.open([name])
                        await engine.connectors[name].check()
                except TimeoutError:
                    problem = f"no answer within {timeout:g} s (--timeout)"
                except Exception as exc:  # noqa: BLE001 - whatever the call raised is this connection's failure, said
                    problem = error_text(exc)
                else:
                    print(f"connection {name} ({cls.name}): ok in {time.perf_counter() - started:.2f} s{how}", flush=True)
                    continue
                failed.append(name)
                print(terminal_safe(f"connection {name} ({cls.name}): FAILED: {logs.redactor.scrub(problem)}"), flush=True)
        finally:
            await engine.aclose()

    # a PostgreSQL schema is neither created nor migrated by a check (a newer apicenterd checking its
    # config during a rolling upgrade must not migrate the database under the daemons still running)
    anyio.run(functools.partial(_with_store, migrate=False), resolved, go)
    if failed:
        total = len(resolved.connections)
        print(f"apicenterd: check --connect: {len(failed)} of {total} connections failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM."""
    from ..daemon import Daemon
    from ..errors import StateError

    registry = _cli._registry()
    try:
        resolved = _load(args.config, registry)
    except Usage as exc:  # the daemon cannot start with this file: EXIT_CONFIG, on which systemd does not restart
        raise _cli.CannotStart(str(exc)) from None
    logs.configure(resolved.config.daemon.log_level)
    try:
        anyio.run(Daemon(Path(args.config), registry, resolved).run)
    except ConfigError as exc:  # found only when starting, e.g. the admin or metrics address is in use
        for problem in exc.problems:
            print(f"apicenterd: {args.config}: {problem}", file=sys.stderr)
        return _cli.EXIT_CONFIG
    except StateError as exc:
        if resolved.config.state.url and exc.cause in ("cannot_open", "io"):
            # PostgreSQL unreachable or restarting: not the operator's to fix on this machine; exit 1 so
            # that systemd starts the daemon again (Restart=on-failure) until the server is back
            print(f"apicenterd: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


def _reload_state_path(config: str) -> tuple[Path | None, str | None]:
    """The state path the daemon of ``config`` uses (where its reload status lies), or None and
    why not. Only the file's shape is read, so a file the daemon would refuse still gives it;
    a file that cannot be parsed at all falls back to $APICENTERD_STATE__PATH (as the unit sets)."""
    from ..config import read_config

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
        from ..state.lock import daemon_lock_holder  # the daemon lock
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


def _reload_through_admin(config: str) -> int | None:
    """Reload through the daemon's admin API when ``[admin]`` is set and it answers; None otherwise
    (then the daemon is signalled). Only ``[admin]`` is read: the rest of the file may be broken."""
    from .remote import find_daemon

    daemon = find_daemon(config)
    if daemon is None:
        return None
    status, body = daemon.call("POST", "/api/v1/reload", read_timeout=180.0)
    if status == 200 and body.get("result") == "applied":
        print(f"apicenterd: configuration reloaded (admin API {daemon.url})")
        if body.get("reason"):  # changed settings a reload cannot apply
            print(f"apicenterd: warning: {body['reason']}", file=sys.stderr)
        return 0
    reason = body.get("reason") or body.get("error")
    print(f"apicenterd: reload refused, the daemon keeps its previous configuration: {reason}", file=sys.stderr)
    return 1


def cmd_reload(args: argparse.Namespace) -> int:
    """Send the daemon SIGHUP and report its answer: 0 applied, 1 refused (reason on stderr) or no answer."""
    from ..daemon import read_reload_status, reload_status_path

    if args.pid is None:
        answer = _reload_through_admin(args.config)
        if answer is not None:
            return answer
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
        if status.get("reason"):  # changed settings a reload cannot apply
            print(f"apicenterd: warning: {status['reason']}", file=sys.stderr)
        return 0
    print(f"apicenterd: reload refused, the daemon keeps its previous configuration: {status.get('reason')}", file=sys.stderr)
    return 1
