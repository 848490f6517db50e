"""Shared fixtures. Tests never need an activated virtualenv: this interpreter's bin/
goes first on PATH, so nbgrader finds alembic and Jupyter starts this environment's kernel."""

import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest

# Headless plotting for this process only. Not through MPLBACKEND: kernels started by the
# tests (the book build, nbgrader) would inherit it and draw no inline figures.
matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def built_book() -> Path:
    """Build the book exactly as `make book` does (warnings are errors, every chapter
    executed, cached in _build/.jupyter_cache) and return the HTML folder.

    Tests using it should be marked ``@pytest.mark.xdist_group("book")`` so that one
    worker builds it once."""
    proc = subprocess.run(
        [str(BIN / "jupyter-book"), "build", str(ROOT), "-W", "-n", "--keep-going"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    log = proc.stdout + proc.stderr
    (ROOT / "_build").mkdir(exist_ok=True)
    (ROOT / "_build" / "test-build.log").write_text(log)
    assert proc.returncode == 0, (
        f"the book build failed (log in _build/test-build.log):\n{log[-6000:]}"
    )
    return ROOT / "_build" / "html"
