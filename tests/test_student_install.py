"""A student's install, as the README's Students section makes it: the package installed by
pip from this checkout (what ``pip install "attn-course @ git+URL"`` builds: pyproject.toml,
README.md, attn_course/) into a fresh virtualenv outside the course folder. There, every
assignment's public tests pass with the instructor's answers filled in, through the
student's own ``attn-course check``; a wrong answer and an edited test cell fail; and the
instructor's stack (torch, nbgrader, Dask, jupyter-book) is not installed.

pip runs with this machine's configuration (its index, find-links and wheel cache): about
1 to 1.5 min for the install, 30 s for the notebooks, on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from grading_fixtures import fill, release_of, solutions_of

pytestmark = [pytest.mark.install]

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (ROOT / "exercises").iterdir() if p.is_dir())
NOT_FOR_STUDENTS = ("torch", "nbgrader", "dask", "distributed", "jupyter_book", "psycopg")


def _env(venv: Path) -> dict[str, str]:
    """A student's shell: the virtualenv's bin/ first, nothing of the course's environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    return env


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    """A student's folder (outside the course) with ``.venv``: the student install."""
    home = tmp_path_factory.mktemp("student")
    assert ROOT not in home.parents
    src = home / "download" / "attn-course"  # what pip builds from a git URL
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "attn_course", src / "attn_course", ignore=shutil.ignore_patterns("__pycache__")
    )
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(home / ".venv")], check=True, timeout=120)
    proc = subprocess.run(
        [str(home / ".venv/bin/python"), "-m", "pip", "install", "--quiet", str(src)],
        capture_output=True,
        text=True,
        env=_env(home / ".venv"),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return home


def test_the_instructors_stack_is_not_installed(student):
    code = (
        "import importlib.util as u\n"
        f"print(*[m for m in {NOT_FOR_STUDENTS!r} if u.find_spec(m) is not None])\n"
        "import attn_course.checks, attn_course.grading.cli, attn_course.grading.selfcheck\n"
        "import notebook, jupyterlab, nbclient\n"  # Jupyter, to work in the notebooks
    )
    proc = subprocess.run(
        [str(student / ".venv/bin/python"), "-c", code],
        capture_output=True,
        text=True,
        env=_env(student / ".venv"),
        cwd=student,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []
    # the command students are told to run, and Jupyter's own
    for command in (["attn-course", "check", "--help"], ["jupyter", "lab", "--version"]):
        run = subprocess.run(
            [str(student / ".venv/bin" / command[0]), *command[1:]],
            capture_output=True,
            text=True,
            env=_env(student / ".venv"),
            timeout=120,
        )
        assert run.returncode == 0, run.stderr


def _check(student: Path, notebook: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(student / ".venv/bin/attn-course"), "check", notebook],
        capture_output=True,
        text=True,
        env=_env(student / ".venv"),
        cwd=student,
        timeout=600,
    )


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_public_test_passes_with_the_answers(student, assignment):
    nb = fill(release_of(ROOT, assignment), solutions_of(ROOT, assignment))
    graded = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    tests = sum(1 for m in graded if m.get("grade") and not m.get("solution"))
    assert tests >= 3
    (student / "work").mkdir(exist_ok=True)
    nbformat.write(nb, student / "work" / f"{assignment}.ipynb")
    proc = _check(student, f"work/{assignment}.ipynb")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{tests} of {tests} test cells pass" in proc.stdout, proc.stdout
    assert "FAILED" not in proc.stdout


def test_a_wrong_answer_and_an_edited_test_fail_there(student):
    name = "03_query_key_value"
    answers = solutions_of(ROOT, name)
    answers["dot_score"] = "def dot_score(query, keys):\n    return query @ keys"
    nb = fill(release_of(ROOT, name), answers)
    edited = next(
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_attention"
    )
    edited.source = "print('all good')"
    (student / "mine").mkdir(exist_ok=True)
    nbformat.write(nb, student / "mine" / f"{name}.ipynb")
    proc = _check(student, f"mine/{name}.ipynb")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    dot = next(ln for ln in lines if "test_dot_score " in ln + " ")
    assert "FAILED" in dot and "query of shape (1, 2) and keys of shape (3, 2)" in dot
    soft = next(ln for ln in lines if "test_attention " in ln + " ")
    assert "FAILED" in soft and "this test cell was edited" in soft


def test_a_chinese_notebook_speaks_chinese_there(student):
    """The compiled catalogs are package data: the Chinese notebook's tests and the check
    speak Chinese in a student's install (no babel there, only Python's gettext)."""
    name = "03_query_key_value"
    release = nbformat.read(ROOT / "exercises" / name / "zh_CN" / f"{name}.ipynb", as_version=4)
    answers = solutions_of(ROOT, name)
    answers["dot_score"] = "def dot_score(query, keys):\n    return query @ keys"
    (student / "zh").mkdir(exist_ok=True)
    nbformat.write(fill(release, answers), student / "zh" / f"{name}.ipynb")
    proc = _check(student, f"zh/{name}.ipynb")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    dot = next(ln for ln in proc.stdout.splitlines() if "test_dot_score " in ln + " ")
    assert "未通过" in dot
    assert "调用时的参数：query 的形状为 (1, 2) 和 keys 的形状为 (3, 2)。" in dot
    assert "个测试单元格中有" in proc.stdout
