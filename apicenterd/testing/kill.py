"""The kill test kit: SIGKILL an ``apicenterd flows run`` at a vendor call the test names, restart it,
and check that nothing is duplicated or missing.

:class:`KillAtCall` wraps a simulator (an ASGI app served with :func:`~apicenterd.testing.serve_app`)
and SIGKILLs the armed process at its ``n``-th request that a predicate picks, in one of three
phases:

``before``    the simulator never sees the request (the process dies, the write never happened);
``applied``   the simulator applied it, the answer is held and the process dies before it reads it
              (the write the process never heard of: the restart must find it, not write it again);
``answered``  right after the answer (the write is done and answered but not settled).

No timers: the kill happens at the call, whatever the machine's load. :func:`flows_run` starts the
CLI, :func:`killed_runs` goes through a list of kills, :func:`write_config` writes a config file::

    switch = KillAtCall(target_app, match=lambda method, path, body: method == "POST" and path.endswith("/Items"))
    with serve_app(source_app) as source_url, serve_app(switch) as target_url:
        config = write_config(tmp_path, {"src": ("vendor_a", {...}), "dst": ("vendor_b", {...})}, {"products": {...}})
        killed_runs(switch, config, "products", [("before", 3), ("applied", 2), ("answered", 4)])
        final = flows_run(config, "products")
        final.communicate(timeout=300)  # read its output while it runs (never .wait() on its pipes)
        assert final.returncode == 0
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

__all__ = ["PHASES", "KillAtCall", "flows_run", "killed_runs", "toml_value", "write_config"]

PHASES = ("before", "applied", "answered")
"""When a kill falls: before the simulator sees the request, after it applied it (answer held), after the answer."""

Match = Callable[[str, str, bytes], bool]
"""(method, path, body) → whether a request counts towards the armed kill."""


class KillAtCall:
    """ASGI middleware: SIGKILLs the armed process at its ``n``-th request that ``match`` picks, in ``phase``.

    ``match`` may be given here (for every kill) or to :meth:`arm` (for one). ``fired`` lists the
    phases of the kills that happened, in order. ``app.state`` is the simulator's.
    """

    def __init__(self, app: Any, match: Match | None = None) -> None:
        self.app = app
        self.state = app.state
        self.match = match
        self._lock = threading.Lock()
        self._plan: tuple[Match, str, int] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._calls = 0
        self.fired: list[str] = []

    def arm(self, phase: str, n: int, match: Match | None = None) -> None:
        """Kill at the ``n``-th matching request (counted from now), in ``phase``."""
        if phase not in PHASES:
            raise ValueError(f"phase {phase!r} is not one of {', '.join(PHASES)}")
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        chosen = match or self.match
        if chosen is None:
            raise ValueError("no match: give one to KillAtCall() or to arm()")
        with self._lock:
            self._plan, self._proc, self._calls = (chosen, phase, n), None, 0

    def target(self, proc: subprocess.Popen[bytes]) -> None:
        """The process to kill."""
        with self._lock:
            self._proc = proc

    def disarm(self) -> None:
        """No more kills until the next :meth:`arm`."""
        with self._lock:
            self._plan = None

    def _due(self, method: str, path: str, body: bytes) -> str | None:
        with self._lock:
            if self._plan is None:
                return None
            match, phase, n = self._plan
            if not match(method, path, body):
                return None
            self._calls += 1
            if self._calls != n:
                return None
            self._plan = None  # once
            return phase

    async def _kill(self, phase: str) -> None:
        proc = None
        for _ in range(3000):  # Popen returned long before the process makes its first call; be sure
            with self._lock:
                proc = self._proc
            if proc is not None:
                break
            await anyio.sleep(0.01)
        assert proc is not None, "the armed process was never named (KillAtCall.target)"
        with self._lock:
            self.fired.append(phase)
        proc.kill()
        await anyio.to_thread.run_sync(proc.wait)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        phase = self._due(scope["method"], scope["path"], body)
        try:
            if phase is None:
                await self.app(scope, replay, send)
            elif phase == "before":
                await self._kill(phase)
                await send({"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"6")]})
                await send({"type": "http.response.body", "body": b"killed"})
            elif phase == "applied":
                held: list[Any] = []

                async def hold(message: Any) -> None:
                    held.append(message)

                await self.app(scope, replay, hold)
                await self._kill(phase)
                for message in held:
                    await send(message)
            else:
                await self.app(scope, replay, send)
                await self._kill(phase)
        except OSError:  # the killed process's connection is gone: expected
            pass
        except Exception as exc:  # starlette's ClientDisconnect, without importing starlette here
            if type(exc).__name__ != "ClientDisconnect":
                raise


def flows_run(config: Path, flow: str, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``apicenterd flows run FLOW --config CONFIG --json ARGS`` in a new process (this interpreter)."""
    return subprocess.Popen(  # noqa: S603 - this interpreter, the test's own arguments
        [sys.executable, "-m", "apicenterd.cli", "flows", "run", flow, "--config", str(config), "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def killed_runs(
    switch: KillAtCall,
    config: Path,
    flow: str,
    kills: Iterable[tuple[str, int]],
    match: Match | None = None,
    *,
    timeout: float = 300,
    after: Callable[[str, int], None] | None = None,
) -> None:
    """For each (phase, n) of ``kills``: run ``flow`` and SIGKILL it at its ``n``-th matching call,
    then call ``after(phase, n)`` if given (to check what the killed run left); AssertionError when
    a run ended otherwise (it finished before the n-th call: the test's numbers do not fit its data)."""
    for phase, n in kills:
        switch.arm(phase, n, match)
        proc = flows_run(config, flow)
        switch.target(proc)
        try:
            # read its output while waiting: a run that logs more than a pipe holds (64 KiB) before
            # its n-th call would otherwise block on writing, and never reach the call
            _, err = proc.communicate(timeout=timeout)
            returncode = proc.returncode
        finally:
            switch.disarm()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert returncode == -signal.SIGKILL, f"{flow} was not killed at call {n} ({phase}): exit {returncode}: {err.decode()[-2000:]}"
        if after is not None:
            after(phase, n)


def toml_value(value: Any) -> str:
    """``value`` as TOML (strings, numbers, booleans, lists and inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def write_config(
    folder: Path,
    connections: Mapping[str, tuple[str, Mapping[str, Any]]],
    flows: Mapping[str, Mapping[str, Any]],
    *,
    daemon: Mapping[str, Any] | None = None,
) -> Path:
    """``folder/apicenterd.toml`` with the state in ``folder/state.db``, ``connections`` (name →
    (connector, settings)) and ``flows`` (name → its table); the path."""
    lines = ["[daemon]", 'metrics_address = ""']
    lines += [f"{key} = {toml_value(value)}" for key, value in (daemon or {}).items()]
    lines += ["", "[state]", f"path = {json.dumps(str(folder / 'state.db'))}", ""]
    for name, (connector, settings) in connections.items():
        lines += [f"[connections.{name}]", f"connector = {json.dumps(connector)}"]
        lines += [f"{key} = {toml_value(value)}" for key, value in settings.items()]
        lines.append("")
    for name, table in flows.items():
        lines.append(f"[flows.{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
        lines.append("")
    path = folder / "apicenterd.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path

