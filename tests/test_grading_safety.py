"""Grading is boxed by default, in both paths: without a working bubblewrap, `attn-course
grade` and plain `nbgrader autograde` refuse (exit 2, one paragraph, nobody scored) unless the
instructor opts in to grading unboxed, explicitly.

A machine without bubblewrap is simulated by a PATH without it (the grader looks `bwrap` up
on PATH, as it looks up `prlimit`); bubblewrap that cannot create its namespaces (a container,
a hub pod) by a `bwrap` that fails as the real one does there."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from grading_fixtures import (
    ATTN_COURSE,
    BIN,
    TINY,
    _env,
    fill,
    make_course,
    read_csv,
    release_of,
    solutions_of,
    write_submission,
)

pytestmark = pytest.mark.grading

# (how bubblewrap fails on the machine, what the refusal says of it)
MACHINES = [
    ("missing", "bubblewrap (`bwrap`) is not installed"),
    ("broken", "cannot create its namespaces here"),
]
NO_USERNS = (
    "bwrap: No permissions to creating new namespace, likely because the kernel does not "
    "allow non-privileged user namespaces."
)


def _machine(tmp_path: Path, bwrap: str) -> dict[str, str]:
    """The environment of a grader on a machine whose bubblewrap is ``missing`` or
    ``broken``: a PATH holding the tools grading uses, and a failing bwrap or none."""
    tools = tmp_path / "machine-bin"
    tools.mkdir()
    for name in ("prlimit", "setpriv", "env", "sh"):
        (tools / name).symlink_to(shutil.which(name))
    if bwrap == "broken":
        script = tools / "bwrap"
        script.write_text(f"#!/bin/sh\necho '{NO_USERNS}' >&2\nexit 1\n")
        script.chmod(0o755)
    env = _env()
    env["PATH"] = f"{tools}{os.pathsep}{BIN}"
    return env


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The tiny course with one correct submission (full marks are 3)."""
    course = make_course(tmp_path_factory.mktemp("safety") / "course")
    with (course / "nbgrader_config.py").open("a") as fh:  # the course's plugin, as ours has
        fh.write("from attn_course.grading import configure\nconfigure(c)\n")
    rel, sol = release_of(course, TINY), solutions_of(course, TINY)
    write_submission(course / "submitted", "ann", TINY, fill(rel, sol))
    return course


def _paragraph_ok(err: str, reason: str) -> None:
    assert "Student code would run without its box" in err, err[-3000:]
    assert reason in err, err[-3000:]
    assert "read and write every file" in err
    assert "sudo apt-get install bubblewrap" in err
    assert "--unboxed" in err and "c.GradingExecute.boxed = False" in err


def _grade(course, env, out, *extra):
    return subprocess.run(
        [str(ATTN_COURSE), "grade", TINY, str(course / "submitted"), "--no-progress",
         "--jobs", "1", "--out", str(out), "--db", f"sqlite:///{out / 'gb.db'}", *extra],
        cwd=course, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip


@pytest.mark.parametrize(("bwrap", "reason"), MACHINES)
def test_attn_course_grade_refuses_without_the_box_and_grades_when_told(
    course, tmp_path, bwrap, reason
):
    env = _machine(tmp_path, bwrap)
    out = tmp_path / "out"
    refused = _grade(course, env, out)
    assert refused.returncode == 2, refused.stderr[-3000:]
    _paragraph_ok(refused.stderr, reason)
    if bwrap == "broken":
        assert NO_USERNS in refused.stderr  # bubblewrap's own words, as it said them
    assert not (out / "gb.db").exists() and not (out / "grades.csv").exists()  # nobody scored

    opted_in = _grade(course, env, out, "--unboxed")
    assert opted_in.returncode == 0, opted_in.stderr[-3000:]
    assert read_csv(out / "grades.csv")["ann"]["score"] == "3"
    assert "kernels ran unboxed, as asked" in opted_in.stdout
    assert "read and write every file" in opted_in.stdout


def _autograde(course, env, db, *extra):
    return subprocess.run(
        [str(BIN / "nbgrader"), "autograde", TINY, "--force", f"--db={db}", *extra],
        cwd=course, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip


@pytest.mark.parametrize(("bwrap", "reason"), MACHINES)
def test_plain_nbgrader_refuses_the_same_way(course, tmp_path, bwrap, reason):
    from nbgrader.api import Gradebook, MissingEntry

    env = _machine(tmp_path, bwrap)
    db = f"sqlite:///{tmp_path / 'plain.db'}"
    subprocess.run(
        [str(BIN / "nbgrader"), "generate_assignment", TINY, "--force", f"--db={db}"],
        cwd=course, check=True, capture_output=True, env=_env(),
    )  # fmt: skip
    refused = _autograde(course, env, db)
    assert refused.returncode == 2, refused.stderr[-3000:]
    _paragraph_ok(refused.stderr, reason)
    assert "before any student was scored" in refused.stderr
    with Gradebook(db) as gb, pytest.raises(MissingEntry):
        gb.find_submission(TINY, "ann")

    opted_in = _autograde(course, env, db, "--GradingExecute.boxed=False")
    assert opted_in.returncode == 0, opted_in.stderr[-3000:]
    with Gradebook(db) as gb:
        assert gb.find_submission(TINY, "ann").score == 3.0
