"""The simulator commands: simulate, demo."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio

from .. import cli as _cli
from ..config import Resolved
from ..errors import ConfigError, PluginError
from ..observe import logs
from ..registry import Registry
from . import Usage, _load


def _simulator_app(registry: Registry, name: str, seed: int, records: int = 0, **options: Any):
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
    cls, app = _simulator_app(_cli._registry(), args.connector, args.seed, args.records, **options)
    port = args.port if args.port is not None else (cls.default_port or 0)
    setting = "--port" if args.port is not None else f"the {cls.name} simulator's port ({port}; choose another with --port)"
    sock = _cli.listen(args.host, port, setting)
    port = sock.getsockname()[1]
    print(f"{cls.title or cls.name} simulator on http://{args.host}:{port} (seed {args.seed}, {args.records} records)", flush=True)
    if port:
        print(demo_connection(cls, f"http://{args.host}:{port}"), flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    return 0


def demo_connection(cls: Any, base_url: str) -> str:
    """The ``[connections.NAME]`` table that works against ``cls``'s simulator at ``base_url``: its
    connector's ``demo_settings`` (the credentials the simulator accepts), as TOML to paste."""
    lines = [
        "# the settings this simulator accepts (the connector's demo_settings), for `apicenterd run` against it:",
        f"[connections.{cls.name}]",
        f"connector = {_toml(cls.name)}",
    ]
    lines += [f"{key} = {_toml(value)}" for key, value in cls.demo_settings(base_url).items()]
    return "\n".join(lines)


def _toml(value: Any) -> str:
    """``value`` as a TOML value (strings, numbers, booleans, lists and inline tables)."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the simulators the demo config points at, then the daemon."""
    import threading

    from ..daemon import Daemon
    from ..testing import serve_app

    registry = _cli._registry()
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
            setting = f"{config_path}: connections.{name}.base_url (the demo's {conn.connector.name} simulator)"
            sock = _cli.listen("127.0.0.1", port, setting)
            app = demo_simulator(registry, resolved, name, args.records)
            url = stack.enter_context(serve_app(app, sock=sock))
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
        try:
            anyio.run(Daemon(config_path, registry, resolved).run)
        except ConfigError as exc:  # e.g. daemon.metrics_address in use
            raise _cli.CannotStart("\n".join(f"apicenterd: {config_path}: {p}" for p in exc.problems)) from None
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


def demo_simulator(registry: Registry, resolved: Resolved, name: str, records: int) -> Any:
    """The simulator the demo serves for connection ``name``: seeded with ``records`` of every
    entity some flow reads from it (products, and customers and orders where its connector's
    ``simulator_seeds`` says how: :func:`apicenterd.testing.sim.seed_options`); a connection that
    is only written to starts empty (a pair with flows both ways, such as QuickBooks ⇄
    MplusKASSA, gets both seeded)."""
    from ..testing.sim import seed_options

    cls = resolved.connections[name].connector
    entities = _read_entities(resolved, name)
    options = seed_options(cls.simulator_seeds, entities, records if entities else 0)
    _, app = _simulator_app(registry, cls.name, 1, **options)
    return app


def _sources(resolved: Resolved) -> set[str]:
    """Connections that some flow reads from: the demo seeds those (:func:`demo_simulator`)."""
    return {f.source for f in resolved.flows.values()}


def _read_entities(resolved: Resolved, name: str) -> set[str]:
    """The entities the flows read from connection ``name`` (an invoices flow made from orders reads orders)."""
    entities: set[str] = set()
    for flow in resolved.flows.values():
        if flow.source != name:
            continue
        entities.add(str(flow.read_entity or flow.entity))
        source_entity = getattr(flow.options, "source_entity", None)
        if source_entity:
            entities.add(str(source_entity))
    return entities
