"""`attn-course check`: a student's self-check prints per-part results in words."""

from __future__ import annotations

import subprocess

import nbformat
import pytest
from grading_fixtures import BIN, TINY, _env, fill, make_course, release_of, solutions_of

pytestmark = [pytest.mark.nbgrader]


@pytest.fixture(scope="session")
def course(tmp_path_factory):
    return make_course(tmp_path_factory.mktemp("check") / "course")


def release_of_named(course, assignment):
    return nbformat.read(course / "exercises" / assignment / f"{assignment}.ipynb", as_version=4)


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
    assert proc.returncode == 2 and "not a notebook" in proc.stderr and proc.stdout == ""


# --- a check inside the notebook it checks (or inside grading) refuses in one line ------------

INNER_CHECK = (
    "from attn_course.grading.selfcheck import check\n"
    "r = check('mine.ipynb', timeout=20)\n"
    "open('inner.txt', 'a').write(repr(r) + '\\n')"
)


def _with_inner_check(course):
    nb = fill(release_of(course, TINY), solutions_of(course, TINY))
    nb.cells.append(nbformat.v4.new_code_cell(INNER_CHECK))
    return nb


def test_a_check_inside_the_checked_notebook_refuses_instead_of_recursing(course, tmp_path):
    nbformat.write(_with_inner_check(course), tmp_path / "mine.ipynb")
    proc = _check(tmp_path / "mine.ipynb")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 of 2 test cells pass" in proc.stdout
    # the notebook ran once: its check cell ran once, refused, and returned None
    assert (tmp_path / "inner.txt").read_text() == "None\n"
    assert "timed out" not in proc.stdout


def test_the_refusal_is_one_clear_line(course, tmp_path):
    nb = _with_inner_check(course)
    nbformat.write(nb, tmp_path / "mine.ipynb")
    proc = subprocess.run(
        [
            str(BIN / "jupyter"),
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--stdout",
            str(tmp_path / "mine.ipynb"),
        ],
        capture_output=True,
        text=True,
        env={**_env(), "ATTN_COURSE_CHECK": "1"},
        cwd=tmp_path,
        timeout=300,
    )
    executed = nbformat.reads(proc.stdout, as_version=4)
    text = "".join(o.get("text", "") for o in executed.cells[-1].outputs)
    assert text.count("\n") == 1 and text.startswith("check() does nothing here:")
    assert "attn-course check NOTEBOOK" in text


@pytest.mark.parametrize("command", ["validate", "autograde"])
def test_plain_nbgrader_grading_a_notebook_with_a_check_cell(course, tmp_path, command):
    """nbgrader sets NBGRADER_EXECUTION for its kernels: the handed-in check cell refuses."""
    nb = _with_inner_check(course)
    if command == "validate":
        nbformat.write(nb, tmp_path / "mine.ipynb")
        proc = subprocess.run(
            [str(BIN / "nbgrader"), "validate", str(tmp_path / "mine.ipynb")],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=tmp_path,
            timeout=300,
        )
        inner = tmp_path / "inner.txt"
    else:
        sub = course / "submitted" / "dora" / TINY
        sub.mkdir(parents=True, exist_ok=True)
        nb.cells[-1].source = INNER_CHECK.replace("mine.ipynb", f"{TINY}.ipynb")
        nbformat.write(nb, sub / f"{TINY}.ipynb")
        db = f"--db=sqlite:///{tmp_path / 'gb.db'}"
        setup = [str(BIN / "nbgrader"), "generate_assignment", TINY, "--force", db]
        subprocess.run(setup, capture_output=True, env=_env(), cwd=course, check=True)
        proc = subprocess.run(
            [
                str(BIN / "nbgrader"),
                "autograde",
                TINY,
                "--force",
                db,
            ],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=course,
            timeout=300,
        )
        inner = course / "autograded" / "dora" / TINY / "inner.txt"
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Kernel died" not in proc.stdout + proc.stderr
    assert "Timeout" not in proc.stdout + proc.stderr
    assert inner.read_text() == "None\n"


# --- the check applies the grading guard ---------------------------------------------------


def test_the_check_undoes_monkeypatching_like_grading(course, tmp_path):
    cheat = (
        "def add(a, b):\n    return a - b\n"
        "np.isclose = lambda a, b, **kw: np.ones(np.broadcast(a, b).shape, dtype=bool)"
    )
    answers = {**solutions_of(course, TINY), "add": cheat}
    nbformat.write(fill(release_of(course, TINY), answers), tmp_path / "mine.ipynb")
    proc = _check(tmp_path / "mine.ipynb")
    assert proc.returncode == 1, proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if "test_add" in ln)
    assert "FAILED" in line and "add(1, 2) is wrong" in line
    assert "numpy.isclose" in proc.stdout and "flags it for review" in proc.stdout


# --- a function that raises: the message in the check names call, shapes and hint ------------


def test_a_missing_transpose_reads_as_words_in_the_check(tmp_path):
    course = make_course(tmp_path / "c03", with_03=True)
    release = release_of_named(course, "03_query_key_value")
    answers = {**solutions_of(course, "03_query_key_value")}
    answers["dot_score"] = "def dot_score(query, keys):\n    return query @ keys"
    nbformat.write(fill(release, answers), tmp_path / "03_query_key_value.ipynb")
    proc = _check(tmp_path / "03_query_key_value.ipynb")
    line = next(ln for ln in proc.stdout.splitlines() if "test_dot_score " in ln + " ")
    assert "FAILED" in line
    assert "dot_score(q, K) could not be computed: dot_score raised ValueError" in line
    assert "query of shape (1, 2) and keys of shape (3, 2)" in line
    assert line.rstrip().endswith("Entry [i, j] is the dot product of query i with key j.")


def _replace_test_add(nb):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "test_add":
            cell.source = "print('all good')"  # the test replaced: it would always pass
    return nb


def test_an_edited_test_cell_fails_when_the_released_one_is_not_at_hand(course, tmp_path):
    answers = {**solutions_of(course, TINY), "add": "def add(a, b):\n    return a - b"}
    nb = _replace_test_add(fill(release_of(course, TINY), answers))
    nbformat.write(nb, tmp_path / "mine.ipynb")
    proc = _check(tmp_path / "mine.ipynb")
    assert proc.returncode == 1, proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if "test_add" in ln)
    assert "FAILED" in line and "this test cell was edited" in line and "restores" in line


def test_an_edited_test_cell_is_run_as_released(course, tmp_path):
    """A student working in a copy inside a clone of the course: the check finds the
    released notebook (exercises/tiny/tiny.ipynb) and runs its test, as grading will."""
    answers = {**solutions_of(course, TINY), "add": "def add(a, b):\n    return a - b"}
    nb = _replace_test_add(fill(release_of(course, TINY), answers))
    mine = course / "work" / f"{TINY}.ipynb"
    mine.parent.mkdir(exist_ok=True)
    nbformat.write(nb, mine)
    proc = _check(mine)
    assert proc.returncode == 1, proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if "test_add" in ln)
    assert "FAILED" in line and "add(1, 2) is wrong" in line  # the released test, run
    assert "Note: test_add was edited; the check ran the released test instead" in proc.stdout
    # with the answer right, the released test passes
    right = fill(release_of(course, TINY), solutions_of(course, TINY))
    nbformat.write(_replace_test_add(right), mine)
    assert _check(mine).returncode == 0


def test_check_from_a_notebook_leaves_no_stray_output(course, tmp_path):
    from attn_course.grading.selfcheck import check

    nbformat.write(release_of(course, TINY), tmp_path / "mine.ipynb")
    assert check(tmp_path / "mine.ipynb", timeout=20) is None  # no `Out: False` below it


# --- a cell that kills the kernel, or runs past the time limit -------------------------------


def test_a_killing_cell_and_an_endless_one_cost_only_themselves(tmp_path):
    """As in grading: the cell that kills the kernel is skipped in a fresh kernel, the one
    past the per-cell limit is interrupted; the test cell after them still runs and passes."""
    test = {"nbgrader": {"grade": True, "solution": False, "grade_id": "t", "points": 1}}
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("x = 1"),
            nbformat.v4.new_code_cell("import os\nos._exit(1)"),
            nbformat.v4.new_code_cell("while True:\n    pass"),
            nbformat.v4.new_code_cell("assert x == 1, 'x was lost'", metadata=test),
        ]
    )
    nbformat.write(nb, tmp_path / "k.ipynb")
    proc = subprocess.run(
        [str(BIN / "attn-course"), "check", str(tmp_path / "k.ipynb"), "--timeout", "3"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 of 1 test cells pass" in proc.stdout
    assert "Note: cell 2 killed the kernel." in proc.stdout
    assert "Note: cell 3 timed out." in proc.stdout
