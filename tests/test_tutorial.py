"""The README's plugin tutorial works as written: its code blocks are taken from README.md and run.

Each block of the tutorial follows a marker ``<!-- tutorial-file: PATH -->`` naming the file it
is; the README is the only copy. The package is not installed into the test environment: in
process, an ``*.dist-info`` folder written from the tutorial's pyproject.toml (what ``pip install``
would write) makes its entry point visible on ``sys.path``; its contract tests run in a throwaway
virtualenv it is really installed into.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import fakes
import pytest
import throwaway_venv

from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = re.compile(r"<!-- tutorial-file: (?P<path>\S+) -->\n```[a-z]*\n(?P<body>.*?)\n```", re.DOTALL)
FILES = {"apicenterd_csvproducts/__init__.py", "pyproject.toml", "apicenterd.toml", "tests/test_contract.py"}

pytestmark = pytest.mark.anyio


def tutorial_files() -> dict[str, str]:
    """Path -> content of every block the README marks as a tutorial file."""
    found: dict[str, str] = {}
    for match in MARKER.finditer(README.read_text(encoding="utf-8")):
        assert match["path"] not in found, f"README.md: tutorial file {match['path']} appears twice"
        found[match["path"]] = match["body"] + "\n"
    return found


def write_tutorial(root: Path) -> tuple[Path, Path]:
    """Write the tutorial's package under ``root/pkg`` and what installing it would add under ``root/site``."""
    pkg, site = root / "pkg", root / "site"
    for name, body in tutorial_files().items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(body, encoding="utf-8")
    project = tomllib.loads((pkg / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, points in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {target}" for name, target in points.items())
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return pkg, site


@pytest.fixture
def tutorial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The tutorial's plugin module, importable and its entry point visible (undone after the test)."""
    pkg, site = write_tutorial(tmp_path)
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    module = importlib.import_module("apicenterd_csvproducts")
    yield module
    sys.modules.pop("apicenterd_csvproducts", None)


def write_csv(path: Path, *rows: str) -> Path:
    path.write_text("sku,name,price,updated\n" + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def flow_config(tmp_path: Path, registry, csv: Path):
    """The README's flow snippet, its file path pointed at ``csv`` and its target at the memory target."""
    raw = tomllib.loads(tutorial_files()["apicenterd.toml"])
    raw["connections"]["shopfile"]["path"] = str(csv)
    raw["connections"]["eaccounting"] = {"connector": "memtarget"}
    raw["state"] = {"path": str(tmp_path / "state.db")}
    return resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")


async def run_flow(resolved, tmp_path: Path):
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0)
    try:
        return await engine.run_flow("products_from_csv")
    finally:
        await engine.aclose()
        await store.close()


def test_readme_holds_every_tutorial_file():
    assert set(tutorial_files()) == FILES


def test_tutorial_connector_is_about_forty_lines():
    code = [line for line in tutorial_files()["apicenterd_csvproducts/__init__.py"].splitlines() if line.strip()]
    assert len(code) <= 45, f"the tutorial's connector has {len(code)} lines"


def test_tutorial_connector_registers_through_its_entry_point(tutorial, monkeypatch):
    monkeypatch.setenv("APICENTERD_LOAD_PLUGINS", "csvproducts")
    registry = load_registry()
    assert registry.failures == []
    assert registry.connectors["csvproducts"] is tutorial.CsvConnector
    assert registry.origins["csvproducts"].distribution == "apicenterd-csvproducts"


async def test_flow_from_csv_creates_products_then_writes_nothing(tutorial, tmp_path, memory):
    csv = write_csv(tmp_path / "products.csv", "B-2,Cup,4.25,2026-03-02T09:00:00", "A-1,Mug,7.50,2026-03-01T10:00:00")
    registry = load_registry([("fakes", fakes), ("tutorial", tutorial)], entry_points=False)
    resolved = flow_config(tmp_path, registry, csv)

    first = await run_flow(resolved, tmp_path)
    assert first.status == "ok" and first.counts["created"] == 2, first.counts
    assert sorted((row["sku"], row["name"], str(row["price_excl_tax"])) for row in memory.target.values()) == [
        ("A-1", "Mug", "7.50"),
        ("B-2", "Cup", "4.25"),
    ]

    memory.calls.clear()
    second = await run_flow(resolved, tmp_path)
    assert second.counts["created"] == 0 and second.counts["updated"] == 0, second.counts
    assert memory.calls == []  # only the row at the cursor is read again, and it costs no call

    write_csv(csv, "B-2,Cup,4.25,2026-03-02T09:00:00", "A-1,Big mug,7.50,2026-03-03T08:00:00")
    third = await run_flow(resolved, tmp_path)
    assert third.counts["updated"] == 1 and third.counts["created"] == 0, third.counts
    assert {row["sku"]: row["name"] for row in memory.target.values()}["A-1"] == "Big mug"


async def test_a_row_that_is_no_product_fails_and_the_run_goes_on(tutorial, tmp_path, memory):
    csv = write_csv(tmp_path / "products.csv", "A-1,Mug,n/a,2026-03-01T10:00:00", "B-2,Cup,4.25,2026-03-02T09:00:00")
    registry = load_registry([("fakes", fakes), ("tutorial", tutorial)], entry_points=False)
    result = await run_flow(flow_config(tmp_path, registry, csv), tmp_path)
    assert result.counts["failed"] == 1 and result.counts["created"] == 1, result.counts
    assert [row["sku"] for row in memory.target.values()] == ["B-2"]


def test_tutorial_installs_and_its_contract_tests_pass(tmp_path):
    """``pip install -e .`` of the tutorial's package (into a throwaway virtualenv), then its contract
    tests, run by pytest as the plugin author would."""
    if not throwaway_venv.can_build_offline():
        pytest.fail("building the tutorial's package offline needs wheel or setuptools >= 70.1: pip install -e .[test]")
    pkg, _ = write_tutorial(tmp_path)
    python = throwaway_venv.make(tmp_path / "venv")
    env = {key: value for key, value in os.environ.items() if key not in ("APICENTERD_LOAD_PLUGINS", "VIRTUAL_ENV")}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *throwaway_venv.PIP_OFFLINE, "-e", str(pkg)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    proc = subprocess.run(
        [str(python), "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests"],
        cwd=pkg, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for test in (
        "test_declaration_is_valid",
        "test_is_registered_through_an_entry_point",
        "test_check_passes",
        "test_read_yields_canonical_records_in_cursor_order",
        "test_read_since_last_cursor_is_a_suffix",
    ):
        assert re.search(rf"::{test} PASSED", out), f"{test} did not pass:\n{out}"
    assert re.search(r"::test_create_then_find_by_key SKIPPED", out), out  # a source writes nothing
    assert not re.search(r"failed|error", out.strip().splitlines()[-1]), out
