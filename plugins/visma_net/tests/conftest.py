"""Shared fixtures of the Visma.net connector tests: the simulator, its settings, the swagger."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_visma_net import VismaNetConnector

SPEC_DIR = Path(os.environ.get("APICENTERD_API_SPECS") or Path(__file__).resolve().parents[3] / ".." / "shared" / "api-specs")
"""The vendor references: ``$APICENTERD_API_SPECS``, else ``shared/api-specs`` next to the repository."""
SWAGGER = SPEC_DIR / "visma_net" / "visma-net-api-v6.11-swagger.json"


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


@pytest.fixture
def app():
    """A fresh simulator with three items and three customers."""
    return VismaNetConnector.simulator(seed=7, records=3)


@pytest.fixture
def sim(app):
    """The simulator's state object."""
    return app.state.sim


@pytest.fixture
def settings() -> dict:
    """Connection settings that work against the simulator (a service app)."""
    return VismaNetConnector.demo_settings("http://visma-net.test")


@pytest.fixture(scope="session")
def swagger() -> dict:
    """The vendor's 2017 swagger (skips when the shared spec folder is not next to the repo; fails in CI)."""
    if not SWAGGER.is_file():
        missing = f"Visma.net swagger not found at {SWAGGER} (shared/api-specs next to the repo, or set APICENTERD_API_SPECS)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true: {missing}; the conformance tests must run in CI, not skip")
        pytest.skip(missing)
    return json.loads(SWAGGER.read_text())


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml(v)}' for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(
    tmp_path: Path, ea_url: str, vn_url: str, flows: dict[str, dict[str, Any]], vn_settings: dict[str, Any] | None = None
) -> Path:
    """A config with both connections (``vn_settings`` added to Visma.net's) and ``flows`` (name → keys;
    ``options``/``target_settings`` as tables, ``map`` as an inline array of rules)."""
    lines = ["[daemon]", 'metrics_address = ""', "", "[state]", 'path = "state.db"', ""]
    for name, cls, url in (("eaccounting", EAccountingConnector, ea_url), ("vismanet", VismaNetConnector, vn_url)):
        lines += [f"[connections.{name}]", f'connector = "{cls.name}"']
        extra = vn_settings or {} if cls is VismaNetConnector else {}
        lines += [f"{k} = {_toml(v)}" for k, v in {**cls.demo_settings(url), **extra}.items()]
        lines.append("")
    for name, flow in flows.items():
        flow = dict(flow)
        tables = {k: flow.pop(k) for k in ("options", "target_settings") if k in flow}
        lines.append(f"[flows.{name}]")
        lines += [f"{k} = {_toml(v)}" for k, v in flow.items()]
        for table, values in tables.items():
            lines.append(f"[flows.{name}.{table}]")
            lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
        lines.append("")
    path = tmp_path / "apicenterd.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def write_pair_config():
    """``write_pair_config(tmp_path, ea_url, vn_url, flows)``: a config file for the eAccounting ⇄ Visma.net pair."""
    return write_config
