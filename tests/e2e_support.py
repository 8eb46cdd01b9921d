"""Helpers for end-to-end tests and benchmarks: a config file between the two bundled simulators."""

from __future__ import annotations

from pathlib import Path

from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector
from apicenterd_eaccounting.connector import EAccountingConnector


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(
    tmp_path: Path,
    ccv_url: str,
    eacc_url: str,
    *,
    products: dict | None = None,
    stock: dict | None = None,
    state_url: str | None = None,
) -> Path:
    """A config file with a products and a stock flow from the CCV simulator to the eAccounting one; the state
    in ``state.db`` beside it, or in PostgreSQL at ``state_url``."""
    state = [f"url = {_toml_value(state_url)}"] if state_url else ['path = "state.db"']
    lines = ["[daemon]", 'log_level = "info"', 'metrics_address = ""', "shutdown_timeout = 5", "", "[state]", *state, ""]
    for name, cls, url in (("salespos", CCVSalesPOSConnector, ccv_url), ("eaccounting", EAccountingConnector, eacc_url)):
        lines.append(f"[connections.{name}]")
        lines.append(f'connector = "{cls.name}"')
        for key, value in cls.demo_settings(url).items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    flows = {
        "products": {"entity": "products", "interval": "1h", **(products or {})},
        "stock": {"entity": "stock", "interval": "1h", **(stock or {})},
    }
    for name, flow in flows.items():
        lines.append(f"[flows.{name}]")
        lines.append('source = "salespos"')
        lines.append('target = "eaccounting"')
        for key, value in flow.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    path = tmp_path / "apicenterd.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
