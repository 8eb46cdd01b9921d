"""etc/mpluskassa.example.toml passes `apicenterd check` and shows its mappings."""

from __future__ import annotations

from pathlib import Path

from apicenterd import cli

EXAMPLE = Path(__file__).resolve().parents[3] / "etc" / "mpluskassa.example.toml"
DEMO_VARIABLES = (
    "DEMO_CCV_PUBLIC_KEY",
    "DEMO_CCV_PRIVATE_KEY",
    "DEMO_EACCOUNTING_CLIENT_ID",
    "DEMO_EACCOUNTING_CLIENT_SECRET",
    "DEMO_EACCOUNTING_REFRESH_TOKEN",
)


def demo_variables(monkeypatch) -> None:
    for name in DEMO_VARIABLES:
        monkeypatch.setenv(name, f"value-of-{name.lower()}")


def test_the_example_config_passes_check(capsys, monkeypatch):
    demo_variables(monkeypatch)
    monkeypatch.setenv("MPLUS_SECRET", "example-secret")
    assert cli.main(["check", "--config", str(EXAMPLE)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert cli.main(["flows", "mapping", "products_to_till", "--config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "articleNumber" in out and "priceIncl" in out


def test_a_missing_secret_is_named(capsys, monkeypatch):
    demo_variables(monkeypatch)
    monkeypatch.delenv("MPLUS_SECRET", raising=False)
    assert cli.main(["check", "--config", str(EXAMPLE)]) == 2
    assert "connections.till.secret: environment variable MPLUS_SECRET is not set" in capsys.readouterr().err
