"""`attn-course check`: a student's self-check prints per-part results in words."""

from __future__ import annotations

import subprocess

import nbformat
import pytest
from grading_fixtures import BIN, TINY, _env, fill, make_course, release_of, solutions_of

pytestmark = [pytest.mark.nbgrader, pytest.mark.xdist_group("grading")]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return make_course(tmp_path_factory.mktemp("check") / "course")


def _check(path):
    return subprocess.run(
        [str(BIN / "attn-course"), "check", str(path), "--timeout", "20"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )


def test_a_correct_notebook_passes(course, tmp_path):
    nb = fill(release_of(course, TINY), solutions_of(course, TINY))
    nbformat.write(nb, tmp_path / "mine.ipynb")
    proc = _check(tmp_path / "mine.ipynb")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "test_add" in proc.stdout and "test_double" in proc.stdout
    assert "2 of 2 test cells pass (3 of 3 points" in proc.stdout


def test_failures_say_which_part_and_why(course, tmp_path):
    answers = {**solutions_of(course, TINY), "add": "def add(a, b):\n    return a - b"}
    nbformat.write(fill(release_of(course, TINY), answers), tmp_path / "mine.ipynb")
    proc = _check(tmp_path / "mine.ipynb")
    assert proc.returncode == 1
    line = next(ln for ln in proc.stdout.splitlines() if "test_add" in ln)
    assert "FAILED" in line and "add(1, 2) is wrong" in line and "should be 3" in line
    assert "passed" in next(ln for ln in proc.stdout.splitlines() if "test_double" in ln)


def test_unanswered_parts_are_named(course, tmp_path):
    nbformat.write(release_of(course, TINY), tmp_path / "mine.ipynb")
    proc = _check(tmp_path / "mine.ipynb")
    assert proc.returncode == 1
    assert "not answered yet (add still raises NotImplementedError)" in proc.stdout


def test_not_a_notebook(tmp_path):
    (tmp_path / "broken.ipynb").write_text("{ not json")
    proc = _check(tmp_path / "broken.ipynb")
    assert proc.returncode == 2 and "not a notebook" in proc.stdout
