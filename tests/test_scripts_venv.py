"""scripts/demo and scripts/test start with scripts/ensure-venv: a .venv left by another Python (its
interpreter gone, an older version, no pip) is rebuilt with this machine's Python, a good one is kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import throwaway_venv

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "ensure-venv"

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the scripts are POSIX sh")


def ensure(venv: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["sh", str(SCRIPT), str(venv)], env=env, capture_output=True, text=True, timeout=600)


def works(venv: Path) -> bool:
    python = venv / "bin" / "python"
    check = "import sys, pip; sys.exit(sys.version_info < (3, 11))"
    return python.exists() and subprocess.run([str(python), "-c", check], capture_output=True, timeout=120).returncode == 0


def test_the_scripts_use_it():
    for script in ("demo", "test"):
        text = (ROOT / "scripts" / script).read_text(encoding="utf-8")
        assert "./scripts/ensure-venv .venv" in text and "[ -x .venv/bin/python ] ||" not in text


def test_a_venv_whose_python_is_gone_is_rebuilt(tmp_path):
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to("/usr/bin/python3.9-removed-by-an-upgrade")
    (venv / "stale-marker").write_text("")
    result = ensure(venv)
    assert result.returncode == 0, result.stderr
    assert "its python points to /usr/bin/python3.9-removed-by-an-upgrade, which is gone; rebuilding it" in result.stderr
    assert works(venv) and not (venv / "stale-marker").exists()


def test_a_venv_of_an_older_python_is_rebuilt_and_a_good_one_kept(tmp_path):
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    old = venv / "bin" / "python"
    # stands for a python3.9: the real interpreter reporting 3.9 to the code it is given with -c
    old.write_text("#!/bin/sh\n" + f'exec {sys.executable} -c "import sys; sys.version_info = (3, 9, 18, \\"final\\", 0); exec(sys.argv[1])" "$2"\n')
    old.chmod(0o755)
    shown = subprocess.run([str(old), "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, timeout=60)
    assert shown.stdout.strip() == "(3, 9)"
    result = ensure(venv)
    assert result.returncode == 0, result.stderr
    assert "its python is 3.9 (3.11 or newer needed); rebuilding it" in result.stderr
    assert works(venv)

    kept = tmp_path / "good"
    throwaway_venv.make(kept)  # pip through the parent environment
    (kept / "marker").write_text("")
    result = ensure(kept)
    assert result.returncode == 0 and result.stderr == "" and (kept / "marker").exists()
