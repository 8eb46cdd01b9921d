"""Tests that need a tool or the vendor references skip for a developer without them, and fail
in CI (``CI=true``), so a CI machine never passes by skipping them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "promtool": ("tests/test_observability_files.py", "promtool_checks_rules", "promtool is not installed"),
    "ccv spec": ("plugins/ccv_salespos/tests/test_simulator_conformance.py", "product_keys_are_the_documented", "CCV-SHOP-API.md"),
    "chromium": ("tests/test_dashboard_browser.py", "replays_its_dead_letter", "Chromium or the playwright package is missing"),
    "eaccounting spec": ("plugins/eaccounting/tests/test_conformance.py", "every_simulated_route", "swagger not found"),
    "postgresql": ("tests/test_state_postgres.py", "reopening_keeps_the_data", "PostgreSQL is not reachable"),
    "visma.net spec": ("plugins/visma_net/tests/test_conformance.py", "every_simulated_route", "swagger not found"),
}


def run_without(tmp_path: Path, test_file: str, selector: str, ci: str | None) -> subprocess.CompletedProcess:
    """Run one test with no promtool on PATH, the vendor references pointed at an empty folder and
    PostgreSQL looked for where none listens."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(tmp_path / "bin")  # python is started by its full path; promtool is not found
    env["APICENTERD_API_SPECS"] = str(tmp_path / "no-specs")
    env.pop("APICENTERD_CHROMIUM", None)
    env["APICENTERD_TEST_PG"] = "postgresql://nobody@127.0.0.1:1/test"  # no server listens on port 1
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider", test_file, "-k", selector],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_missing_tool_or_spec_skips_with_a_reason_for_a_developer(tmp_path, case):
    test_file, selector, reason = CASES[case]
    result = run_without(tmp_path, test_file, selector, None)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "skipped" in out and reason in out and "failed" not in out, out


@pytest.mark.parametrize("case", list(CASES))
def test_missing_tool_or_spec_fails_in_ci(tmp_path, case):
    test_file, selector, reason = CASES[case]
    result = run_without(tmp_path, test_file, selector, "true")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "CI=true" in out and reason in out and "skipped" not in out, out
