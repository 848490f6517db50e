"""The README's `jupyter lab` command, run as written: no "course directory root is not a
subdirectory" error from nbgrader's server extension. A real Jupyter server on 127.0.0.1,
stopped as soon as it has finished starting (bounded wait)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from grading_fixtures import _free_port

pytestmark = pytest.mark.nbgrader  # loads nbgrader's server extensions

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _readme_command() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"`(\.venv/bin/jupyter lab [^`]+)`", readme).group(1)
    return shlex.split(command)


def test_the_readmes_jupyter_lab_command_starts_without_the_root_error(tmp_path):
    argv = _readme_command()
    copy = re.search(r"`(mkdir -p work && cp [^`]+)`", (ROOT / "README.md").read_text())
    made = not (ROOT / argv[-1]).exists()
    subprocess.run(copy.group(1), shell=True, cwd=ROOT, check=True)  # the README's step first
    try:
        _start_lab(argv, tmp_path)
    finally:
        if made:
            (ROOT / argv[-1]).unlink()


def _start_lab(argv: list[str], tmp_path: Path) -> None:
    assert Path(ROOT / argv[-1]).is_file()  # the notebook it opens exists
    log = tmp_path / "lab.log"
    extra = [
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={_free_port()}",
        "--ServerApp.port_retries=0",
    ]
    if os.geteuid() == 0:  # a root container; a student's machine needs nothing extra
        extra.append("--allow-root")
    assert argv[:2] == [".venv/bin/jupyter", "lab"]
    cmd = [str(BIN / "jupyter"), "lab", *argv[2:-1], *extra, argv[-1]]
    with log.open("w") as out:
        server = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")},
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and "http://127.0.0.1:" not in log.read_text():
                assert server.poll() is None, log.read_text()
                time.sleep(0.5)
        finally:
            server.terminate()
            server.wait(timeout=30)
    text = log.read_text()
    assert "http://127.0.0.1:" in text, text  # it did start
    assert "nbgrader" in text.lower()  # nbgrader's extensions were loaded, so could complain
    assert "not a subdirectory" not in text, text
