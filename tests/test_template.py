"""apicenterd-plugin-template renders a connector package whose own tests pass, run by its CI command.

The rendered package is installed (``pip install -e``, through its ``scripts/test``) into a
throwaway virtualenv that sees this environment's packages through a ``.pth`` file: nothing is
installed into the environment running these tests, and nothing is fetched from an index.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import throwaway_venv

copier = pytest.importorskip("copier", reason="copier is in apicenterd's test extras: pip install -e .[test]")

TEMPLATE = Path(__file__).resolve().parent.parent / "apicenterd-plugin-template"
HAS_KIT = importlib.util.find_spec("apicenterd.kit") is not None
# TRANSITION: without the connector kit the template writes paging and error classification out


def render(destination: Path, **answers) -> Path:
    data = {"name": "acme_shop", "use_kit": HAS_KIT, **answers}
    copier.run_copy(str(TEMPLATE), str(destination), data=data, defaults=True, quiet=True, unsafe=False)
    return destination


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    return render(tmp_path / "apicenterd-acme_shop")


def test_template_renders_a_connector_package(rendered: Path):
    package = rendered / "apicenterd_acme_shop"
    for name in ("__init__.py", "plugin.py", "connector.py", "client.py", "mapping.py", "simulator.py", "py.typed"):
        assert (package / name).is_file(), name
    for name in ("tests/test_contract.py", "tests/test_connector.py", "README.md", ".copier-answers.yml"):
        assert (rendered / name).is_file(), name
    assert os.access(rendered / "scripts" / "test", os.X_OK), "scripts/test is not executable"
    project = tomllib.loads((rendered / "pyproject.toml").read_text())["project"]
    assert project["name"] == "apicenterd-acme_shop"
    assert project["entry-points"]["apicenterd.connectors"] == {"acme_shop": "apicenterd_acme_shop.plugin"}
    assert "@hookimpl" in (package / "plugin.py").read_text()
    connector = (package / "connector.py").read_text()
    assert 'name = "acme_shop"' in connector and "class AcmeShopConnector(Connector)" in connector
    assert "RateLimit(60, 60.0" in connector
    if HAS_KIT:
        assert "from apicenterd.kit import" in (package / "client.py").read_text()
    for path in rendered.rglob("*.py"):  # nothing left of the template language, and it is Python
        text = path.read_text()
        assert "{{" not in text and "{%" not in text, path
        compile(text, str(path), "exec")


def test_template_refuses_a_name_that_is_no_connector_name(tmp_path: Path):
    with pytest.raises(Exception, match="lower-case letters, digits and _"):
        render(tmp_path / "bad", name="Acme-Shop")
    assert not (tmp_path / "bad" / "pyproject.toml").exists()


def test_generated_tests_pass_through_its_ci_command(rendered: Path, tmp_path: Path):
    if not throwaway_venv.can_build_offline():
        pytest.fail("building the rendered package offline needs wheel or setuptools >= 70.1: pip install -e .[test]")
    venv = throwaway_venv.make(tmp_path / "venv").parent.parent
    # PYTHONPATH stays: the generated tests run on the apicenterd these tests run on
    env = {key: value for key, value in os.environ.items() if key not in ("APICENTERD_LOAD_PLUGINS", "VIRTUAL_ENV")}
    env.update(VENV=str(venv), PIP_OPTIONS=" ".join(throwaway_venv.PIP_OFFLINE), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [str(rendered / "scripts" / "test"), "-v", "-p", "no:cacheprovider"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for test in (
        "test_is_registered_through_an_entry_point",
        "test_check_passes",
        "test_read_yields_canonical_records_in_cursor_order",
        "test_create_then_find_by_key",
        "test_update_writes_only_the_given_fields",
        "test_reads_every_product_across_pages_in_cursor_order",
        "test_a_wrong_base_url_fails_the_run_not_each_record",
    ):
        assert re.search(rf"::{test} PASSED", out), f"{test} did not pass:\n{out}"
    summary = out.strip().splitlines()[-1]
    assert "passed" in summary and not re.search(r"failed|skipped|error", summary), summary
    assert not (rendered / ".venv").exists()  # it used the throwaway virtualenv it was given


@pytest.mark.parametrize("kit", [False, True] if HAS_KIT else [False])
def test_generated_package_passes_its_ruff_and_strict_mypy(tmp_path: Path, kit: bool):
    """The generated code is what a careful author would write: its own ruff rules and ``mypy --strict`` pass."""
    pytest.importorskip("mypy", reason="mypy is not installed")
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed next to this interpreter")
    rendered = render(tmp_path / "apicenterd-acme_shop", use_kit=kit)
    lint = subprocess.run([str(ruff), "check", "--no-cache", "."], cwd=rendered, capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    import apicenterd

    env = {**os.environ, "MYPYPATH": str(Path(apicenterd.__file__).resolve().parents[1])}
    types = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=rendered, env=env, capture_output=True, text=True, timeout=600,
    )
    assert types.returncode == 0, types.stdout + types.stderr
