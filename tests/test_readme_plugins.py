"""The README's ``apicenterd plugins`` sample is what the command prints with the bundled connectors
installed (as ``requirements-dev.txt`` installs them): regenerate it when a connector changes."""

from __future__ import annotations

from pathlib import Path

from apicenterd import cli

README = Path(__file__).resolve().parents[1] / "README.md"
PROMPT = "$ apicenterd plugins\n"


def readme_sample() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("```text\n" + PROMPT) + len("```text\n" + PROMPT)
    return text[start : text.index("```\n", start)]


def test_the_readme_plugins_sample_is_the_commands_output(capsys, monkeypatch):
    monkeypatch.delenv("APICENTERD_LOAD_PLUGINS", raising=False)
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert readme_sample() == out, (
        "README.md's `apicenterd plugins` sample is out of date; replace the lines after `$ apicenterd plugins` with:\n" + out
    )

