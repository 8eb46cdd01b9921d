"""The example and demo configs of the eAccounting ⇄ Visma.net pair pass `apicenterd check`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from apicenterd import cli

ETC = Path(__file__).resolve().parents[3] / "etc"


@pytest.mark.parametrize("name", ["eaccounting-vismanet.example.toml", "eaccounting-vismanet.demo.toml"])
def test_config_passes_check(capsys, monkeypatch, name):
    for var in ("EACCOUNTING_CLIENT_ID", "EACCOUNTING_CLIENT_SECRET", "EACCOUNTING_REFRESH_TOKEN",
                "VISMANET_CLIENT_ID", "VISMANET_CLIENT_SECRET", "VISMANET_TENANT_ID"):  # fmt: skip
        monkeypatch.setenv(var, os.environ.get(var, "set-by-the-test"))
    for var in [v for v in os.environ if v.startswith("DEMO_")]:
        monkeypatch.delenv(var)
    cli._demo_credentials(ETC / name, cli._registry())
    code = cli.main(["check", "--config", str(ETC / name)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
