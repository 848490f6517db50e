"""Every assignment in solutions/, through the real nbgrader, with real kernels:

- the instructor version passes ``nbgrader validate``;
- the student version fails ``nbgrader validate --invert`` on every graded cell;
- exercises/ is exactly what ``nbgrader generate_assignment`` makes from solutions/;
- notebooks are stored without outputs;
- ``nbgrader autograde`` gives the solutions full marks and the untouched exercises zero.

A new assignment is covered by adding its folder to solutions/: nothing to register.
"""

import filecmp
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from make_exercises import (  # the authoring script (scripts/ is on sys.path: conftest)
    RELEASE,
    ROOT,
    SOURCE,
    assignments,
    generate,
    make_course,
    nbgrader_env,
)
from nbgrader.api import Gradebook

pytestmark = pytest.mark.nbgrader

ASSIGNMENTS = assignments()


def notebooks(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.ipynb"))


def nbgrader(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=cwd,
        env=nbgrader_env(),
        capture_output=True,
        text=True,
    )


def graded_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return [
        c["metadata"]["nbgrader"]["grade_id"]
        for c in nb["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
        and c["cell_type"] == "code"
        and not c["metadata"]["nbgrader"].get("solution")
    ]


def test_there_are_assignments():
    assert "03_query_key_value" in ASSIGNMENTS


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_notebooks_are_stored_without_outputs(assignment):
    for folder in (SOURCE, RELEASE):
        for path in notebooks(folder / assignment):
            nb = json.loads(path.read_text())
            with_output = [
                i
                for i, c in enumerate(nb["cells"])
                if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"] is not None)
            ]
            assert not with_output, f"{path.relative_to(ROOT)}: cells {with_output} have outputs"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercises_are_in_sync_with_solutions(assignment, tmp_path):
    fresh = generate(assignment, tmp_path)
    committed = RELEASE / assignment
    assert committed.is_dir(), f"exercises/{assignment} is missing: run `make exercises`"
    cmp = filecmp.dircmp(fresh, committed)
    stale = cmp.left_only + cmp.right_only + cmp.diff_files
    assert not stale, (
        f"exercises/{assignment} differs from what nbgrader generates from "
        f"solutions/{assignment} ({stale}): run `make exercises` and commit the result"
    )
    for path in notebooks(committed):
        text = path.read_text()
        assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solutions_pass_nbgrader_validate(assignment):
    for path in notebooks(SOURCE / assignment):
        proc = nbgrader("validate", str(path), cwd=ROOT)
        assert "Success! Your notebook passes all the tests." in proc.stdout, (
            proc.stdout + proc.stderr
        )


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_exercises_fail_every_graded_cell(assignment):
    for path in notebooks(RELEASE / assignment):
        assert graded_cells(path), f"{path.name} has no graded test cells"
        proc = nbgrader("validate", "--invert", str(path), cwd=ROOT)
        assert "Success! The notebook does not pass any tests." in proc.stdout, (
            proc.stdout + proc.stderr
        )


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_autograde_gives_solutions_full_marks_and_exercises_zero(assignment, tmp_path):
    course = make_course(tmp_path, assignment)
    submissions = {"solution_student": SOURCE / assignment, "blank_student": RELEASE / assignment}
    for student, folder in submissions.items():
        shutil.copytree(folder, course / "submitted" / student / assignment)
    proc = nbgrader("autograde", assignment, "--create", cwd=course)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        full = gb.find_submission(assignment, "solution_student")
        blank = gb.find_submission(assignment, "blank_student")
        assert full.max_score > 0
        assert full.score == full.max_score, (
            f"solutions scored {full.score}/{full.max_score}:\n{proc.stdout}{proc.stderr}"
        )
        assert blank.score == 0, f"untouched exercises scored {blank.score}/{blank.max_score}"
