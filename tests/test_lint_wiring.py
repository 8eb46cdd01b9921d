"""scripts/test runs the static checks (scripts/lint: ruff, then mypy) before pytest, and a finding
fails the run before any test starts. Run on a copy of the scripts with stand-in tools, so the test
says how the scripts are wired, not whether today's code is clean (the CI run itself checks that)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the scripts are POSIX sh")


def tool(path: Path, name: str, code: int) -> None:
    """A stand-in for .venv/bin/NAME that logs its arguments and exits with ``code``."""
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "$(dirname "$0")/../calls"\nexit {code}\n')
    path.chmod(0o755)


def project(tmp_path: Path, *, ruff: int = 0, mypy: int = 0) -> Path:
    (tmp_path / "scripts").mkdir()
    for script in ("test", "lint", "ensure-venv"):
        shutil.copy2(ROOT / "scripts" / script, tmp_path / "scripts" / script)
    (tmp_path / "requirements-dev.txt").write_text("")
    (tmp_path / "apicenterd").mkdir()
    (tmp_path / "apicenterd" / "core.py").write_text("")
    (tmp_path / "apicenterd" / "engine.py").write_text("")  # pending: rewritten on another branch
    plugin = tmp_path / "plugins" / "demo" / "apicenterd_demo"
    plugin.mkdir(parents=True)
    (plugin / "client.py").write_text("")
    (plugin / "connector.py").write_text("")  # pending
    bin_ = tmp_path / ".venv" / "bin"
    bin_.mkdir(parents=True)
    tool(bin_ / "python", "python", 0)
    tool(bin_ / "promtool", "promtool", 0)
    tool(bin_ / "ruff", "ruff", ruff)
    tool(bin_ / "mypy", "mypy", mypy)
    return tmp_path


def run(root: Path, **env: str) -> tuple[int, list[str]]:
    environment = {"PATH": os.environ["PATH"], **env}
    result = subprocess.run(["sh", "scripts/test", "-q"], cwd=root, env=environment, capture_output=True, text=True, timeout=120)
    calls = (root / ".venv" / "calls").read_text().splitlines() if (root / ".venv" / "calls").exists() else []
    # leave out pip and ensure-venv's look at the interpreter (python -c ...)
    return result.returncode, [c for c in calls if not c.startswith(("python -m pip", "python -c"))]


def test_ruff_and_mypy_run_before_pytest(tmp_path):
    code, calls = run(project(tmp_path))
    assert code == 0
    assert [c.split()[0] for c in calls] == ["ruff", "mypy", "python"]
    assert calls[2] == "python -m pytest -q"
    # nothing is left pending: ruff checks the whole tree, mypy what pyproject.toml's [tool.mypy] `files` lists
    assert calls[0].split() == ["ruff", "check", "."]
    assert calls[1].split() == ["mypy"]


@pytest.mark.parametrize("failing", ["ruff", "mypy"])
def test_a_finding_fails_the_run_before_any_test(tmp_path, failing):
    code, calls = run(project(tmp_path, **{failing: 1}))
    assert code == 1
    assert [c.split()[0] for c in calls] == ["ruff", "mypy"], calls  # both report; no test runs


def test_skip_lint_is_for_developers_only(tmp_path):
    root = project(tmp_path, ruff=1)
    code, calls = run(root, SKIP_LINT="1")
    assert code == 0 and [c.split()[0] for c in calls] == ["python"]
    (root / ".venv" / "calls").unlink()
    code, calls = run(root, SKIP_LINT="1", CI="true")
    assert code == 1 and [c.split()[0] for c in calls] == ["ruff", "mypy"]  # both report, then the run fails
