"""The same grades in every layout an instructor has, through both paths.

Each layout is built for real: a virtual environment (its dependencies are this
environment's site-packages, added by a ``.pth`` line, so nothing is downloaded) with
``attn_course`` installed by pip as that layout installs it, and a course folder. In each,
`attn-course grade` and plain `nbgrader autograde` (the course's plugin) grade the
instructor's solution of assignment 03 full marks and the blank exercise zero, unflagged.

- ``readme``: a clone with its ``.venv`` inside, an editable install of the clone;
- ``shared``: an environment outside the course folder with a regular install, the course
  folder elsewhere (a hub, a grading server);
- ``fork``: an editable install of another folder, and a course folder holding its own copy
  of the package that differs: both paths grade with the course folder's copy (its checks
  word an unanswered part differently), and `attn-course grade` says so.

Finally, a kernel that cannot import ``attn_course`` (a package folder the grading uid may
not read) stops both paths with exit status 2 before any student is scored."""

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from grading_fixtures import ROOT, _env, fill, read_csv, release_of, solutions_of, write_submission

pytestmark = pytest.mark.grading

A = "03_query_key_value"
NOT_WRITTEN = "is not written yet"  # the checks' words (tracebacks.py) for an unanswered part
MARK = "is not written yet (the fork's words)"


def _clone(dest: Path, package: bool = True) -> Path:
    """A course folder like the repository (assignment 03 only), with or without the
    package and its pyproject.toml."""
    dest.mkdir(parents=True)
    for name in ("nbgrader_config.py", "README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, dest / name)
    for kind in ("solutions", "exercises"):
        shutil.copytree(ROOT / kind / A, dest / kind / A)
    if package:
        shutil.copytree(ROOT / "attn_course", dest / "attn_course",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    return dest


def _venv(dest: Path, install: list[str]) -> Path:
    """A virtualenv at ``dest`` whose dependencies are this environment's, with
    ``pip install --no-deps --no-build-isolation *install`` (pip of this environment)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    py = dest / "bin" / "python"
    sp = Path(
        subprocess.check_output(
            [str(py), "-c", "import site; print(site.getsitepackages()[0])"], text=True
        ).strip()
    )  # noqa: E501
    (sp / "course-deps.pth").write_text(site.getsitepackages()[0] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet",
         "--disable-pip-version-check", "--no-deps", "--no-build-isolation", *install],
        check=True, capture_output=True,
    )  # fmt: skip
    return dest / "bin"


def _env_of(bindir: Path) -> dict[str, str]:
    env = _env()
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    env.pop("PYTHONPATH", None)
    return env


def _class(course: Path, where: Path) -> Path:
    rel = release_of(course, A)
    write_submission(where, "sol", A, fill(rel, solutions_of(course, A)))
    write_submission(where, "blank", A, rel)
    return where


def _attn_course_grade(bindir: Path, course: Path, subs: Path, out: Path, db: Path):
    return subprocess.run(
        [str(bindir / "attn-course"), "grade", A, str(subs), "--no-progress", "--jobs", "1",
         "--out", str(out), "--db", f"sqlite:///{db}"],
        cwd=course, capture_output=True, text=True, env=_env_of(bindir), timeout=900,
    )  # fmt: skip


def _both_paths(course: Path, bindir: Path, tmp: Path):
    """(attn-course grade's process, grades.csv rows, plain nbgrader's scores, the
    autograded notebooks' text of each path)."""
    env = _env_of(bindir)
    subs = _class(course, tmp / "subs")
    out = tmp / "out"
    grade = _attn_course_grade(bindir, course, subs, out, tmp / "grade.db")
    assert grade.returncode == 0, grade.stdout[-2000:] + grade.stderr[-3000:]
    rows = read_csv(out / "grades.csv")
    shutil.copytree(subs, course / "submitted")
    db = f"sqlite:///{tmp / 'plain.db'}"
    for cmd in (["generate_assignment", A, "--force"], ["autograde", A, "--force"]):
        plain = subprocess.run(
            [str(bindir / "python"), "-m", "nbgrader", *cmd, f"--db={db}"],
            cwd=course, capture_output=True, text=True, env=env, timeout=900,
        )  # fmt: skip
        assert plain.returncode == 0, plain.stderr[-3000:]
    from nbgrader.api import Gradebook

    with Gradebook(db) as gb:
        scores = {
            s: (gb.find_submission(A, s).score, gb.find_submission(A, s).max_score,
                any(nb.flagged for nb in gb.find_submission(A, s).notebooks))
            for s in ("sol", "blank")
        }  # fmt: skip
    texts = {  # the blank exercise's autograded notebook: the checks' messages
        "grade": (out / "autograded" / "blank" / A / f"{A}.ipynb").read_text(),
        "plain": (course / "autograded" / "blank" / A / f"{A}.ipynb").read_text(),
    }
    return grade, rows, scores, texts


def _full_and_zero(rows, scores) -> None:
    sol, blank = rows["sol"], rows["blank"]
    assert float(sol["score"]) == float(sol["max_score"]) > 0 and not sol["flagged"], sol
    assert float(blank["score"]) == 0 and not blank["flagged"], blank
    assert scores["sol"] == (float(sol["max_score"]), float(sol["max_score"]), False)
    assert scores["blank"] == (0.0, float(sol["max_score"]), False)


def test_a_clone_with_its_venv_inside(tmp_path):
    clone = _clone(tmp_path / "clone")
    bindir = _venv(clone / ".venv", ["-e", str(clone)])
    grade, rows, scores, texts = _both_paths(clone, bindir, tmp_path)
    _full_and_zero(rows, scores)
    assert all(NOT_WRITTEN in t and "ModuleNotFoundError" not in t for t in texts.values())


def test_a_shared_environment_outside_the_course_folder(tmp_path):
    source = _clone(tmp_path / "source")
    bindir = _venv(tmp_path / "srv" / "env", [str(source)])  # a regular (wheel) install
    shutil.rmtree(source)  # the environment holds its own copy; nothing else is left
    course = _clone(tmp_path / "srv" / "course", package=False)
    grade, rows, scores, texts = _both_paths(course, bindir, tmp_path)
    _full_and_zero(rows, scores)
    assert "not the environment's install" not in grade.stdout


def test_a_fork_graded_with_an_environment_installed_from_elsewhere(tmp_path):
    public = _clone(tmp_path / "public")
    bindir = _venv(tmp_path / "env", ["-e", str(public)])
    fork = _clone(tmp_path / "fork")
    # the fork's copy differs from the environment's, in the module that words the checks' error
    words = fork / "attn_course" / "tracebacks.py"
    words.write_text(words.read_text().replace(NOT_WRITTEN, MARK))
    grade, rows, scores, texts = _both_paths(fork, bindir, tmp_path)
    _full_and_zero(rows, scores)
    for path, text in texts.items():
        assert MARK in text, f"{path}: the kernel did not import the course folder's copy"
    assert f"grading used attn_course from {fork / 'attn_course'}" in grade.stdout, grade.stdout
    assert str(public / "attn_course") in grade.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="the grading uid switch happens only as root")
def test_a_kernel_that_cannot_import_attn_course_is_a_setup_error(tmp_path):
    bindir = _venv(tmp_path / "env", ["-e", str(_clone(tmp_path / "public"))])
    fork = _clone(tmp_path / "fork")
    (fork / "attn_course").chmod(0o700)  # checked out with umask 077: the grading uid is shut out
    env = _env_of(bindir)
    subs = _class(fork, tmp_path / "subs")
    out = tmp_path / "out"
    grade = _attn_course_grade(bindir, fork, subs, out, tmp_path / "grade.db")
    assert grade.returncode == 2, grade.stdout[-2000:] + grade.stderr[-3000:]
    assert "the grading kernel cannot import attn_course" in grade.stderr, grade.stderr[-3000:]
    assert not (tmp_path / "grade.db").exists() and not (out / "grades.csv").exists()
    shutil.copytree(subs, fork / "submitted")
    db = f"sqlite:///{tmp_path / 'plain.db'}"
    subprocess.run([str(bindir / "python"), "-m", "nbgrader", "generate_assignment", A,
                    "--force", f"--db={db}"], cwd=fork, check=True, capture_output=True, env=env)  # fmt: skip  # noqa: E501
    plain = subprocess.run(
        [str(bindir / "python"), "-m", "nbgrader", "autograde", A, "--force", f"--db={db}"],
        cwd=fork, capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert plain.returncode == 2, plain.stderr[-3000:]
    assert "the grading kernel cannot import attn_course" in plain.stderr
    from nbgrader.api import Gradebook

    with Gradebook(db) as gb:
        assert gb.find_assignment(A).submissions == []
