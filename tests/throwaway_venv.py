"""A throwaway virtualenv for tests that install a package (the tutorial's, a rendered template's)
without touching the environment running the tests and without an index."""

from __future__ import annotations

import importlib.util
import re
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

PIP_OFFLINE = ("--no-deps", "--no-build-isolation", "--no-index")
"""pip options for installing into it: everything else comes from the parent environment."""


def can_build_offline() -> bool:
    """Whether pip can build a setuptools package here without an index (setuptools >= 70.1, or wheel)."""
    import setuptools

    version = tuple(int(part) for part in re.findall(r"\d+", setuptools.__version__)[:2])
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def make(path: Path) -> Path:
    """A virtualenv at ``path`` without packages of its own that sees this interpreter's (pip,
    apicenterd, pytest) through a ``.pth`` file; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], *site.getsitepackages()])
    lines = [f"import site; site.addsitedir({directory!r})" for directory in ours if Path(directory).is_dir()]
    (Path(purelib) / "_apicenterd_parent.pth").write_text("\n".join(lines) + "\n")
    return python
