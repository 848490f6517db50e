"""Every failure mode gets a grade and a reason, and none stops the batch or touches another
submission. One real `attn-course grade` run over a class of misbehaving students."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from grading_fixtures import (
    BIN,
    MARK,
    STUDENTS,
    TINY,
    _env,
    gradebook_grades,
    make_course,
    read_csv,
)

pytestmark = [pytest.mark.grading]

# the students whose notebooks tamper with the grading (flagged for the instructor)
CHEATS = {"patch_names", "patch_code", "fake_module", "kill_guard"}


# graded_class (tests/conftest.py): the class of grading_fixtures.write_class (one student
# per failure mode), graded locally, once per run


def test_exit_status_and_one_row_per_student(graded_class):
    course, students, proc = graded_class
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_csv(course / "graded" / TINY / "grades.csv")
    assert sorted(rows) == sorted(students) == sorted(STUDENTS)
    assert f"Graded {len(students)} submissions" in proc.stdout


@pytest.mark.parametrize("student", STUDENTS)
def test_grade_and_reason(graded_class, student):
    course, students, _ = graded_class
    row = read_csv(course / "graded" / TINY / "grades.csv")[student]
    _, _, score, words = students[student]
    assert float(row["max_score"]) == 3
    assert float(row["score"]) == score, row
    assert words in row["status"], row
    if words == "graded":
        assert row["status"] == "graded", row


def test_cheats_are_flagged_in_the_gradebook(graded_class):
    from nbgrader.api import Gradebook

    course, _, _ = graded_class
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        flagged = {
            s.student.id
            for s in gb.find_assignment(TINY).submissions
            if any(nb.flagged for nb in s.notebooks)
        }
    assert CHEATS <= flagged
    assert "good" not in flagged and "wrong_add" not in flagged


def test_gradebook_agrees_with_csv(graded_class):
    course, students, _ = graded_class
    grades = gradebook_grades(f"sqlite:///{course / 'gradebook.db'}", TINY)
    rows = read_csv(course / "graded" / TINY / "grades.csv")
    for student in students:
        total = sum(v or 0 for (s, _), v in grades.items() if s == student)
        assert total == float(rows[student]["score"]), student


def test_nothing_written_outside_the_box(graded_class):
    course, _, _ = graded_class
    assert not (course / f"pwned-{MARK}").exists()
    assert not Path(f"/tmp/pwned-{MARK}").exists()
    assert not Path(f"/var/tmp/pwned-{MARK}").exists()
    assert not (course / "submissions" / "good" / TINY / f"pwned-{MARK}").exists()
    db = (course / "gradebook.db").read_bytes()
    assert db.startswith(b"SQLite format 3"), hashlib.sha1(db[:64]).hexdigest()


def test_feedback_per_student(graded_class):
    course, students, _ = graded_class
    for student in ("good", "wrong_add", "segfault", "patch_names"):
        html = (course / "graded" / TINY / student / f"{TINY}.html").read_text()
        assert "test_add" in html or "add" in html
    good = (course / "graded" / TINY / "good" / f"{TINY}.html").read_text()
    assert "3.0" in good or "3 / 3" in good or "Score: 3" in good
    # a timeout in words: how long, why it may be, what it cost (not KeyboardInterrupt)
    looped = (course / "graded" / TINY / "infinite_loop" / f"{TINY}.html").read_text()
    assert "ran longer than 6 s (perhaps an endless loop)" in looped
    assert "the other parts keep their points" in looped and "KeyboardInterrupt" not in looped


# What attn-course grade decides about files before nbgrader reads them (which notebook is the
# student's, whether it is one): plain nbgrader sees a missing notebook in each of these.
FILE_LEVEL = {"not_json", "renamed", "missing", "other_assignment"}


@pytest.fixture(scope="session")
def plain_class(graded_class, tmp_path_factory):
    """The same class through plain `nbgrader autograde`, one batch, with the course's plugin
    switched on by its nbgrader_config.py (configure(c)) and the same limits."""
    course, students, _ = graded_class
    plain = make_course(tmp_path_factory.mktemp("plain") / "course", with_03=True)
    with (plain / "nbgrader_config.py").open("a") as fh:
        fh.write(
            "from attn_course.grading import configure\nconfigure(c)\n"
            "c.GradingExecute.timeout = 6\nc.GradingExecute.memory = '1G'\n"
        )
    shutil.copytree(course / "submissions", plain / "submitted")
    db = f"sqlite:///{plain / 'plain.db'}"
    runs = []
    for cmd in (["generate_assignment", TINY, "--force"], ["autograde", TINY, "--force"]):
        runs.append(
            subprocess.run(
                [str(BIN / "nbgrader"), *cmd, f"--db={db}"],
                cwd=plain,
                capture_output=True,
                text=True,
                env=_env(),
                timeout=900,
            )
        )
    return plain, db, runs


def test_plain_nbgrader_with_the_plugin_grades_every_case_alike(graded_class, plain_class):
    from nbgrader.api import Gradebook

    course, students, _ = graded_class
    plain, db, runs = plain_class
    assert runs[0].returncode == 0, runs[0].stderr[-2000:]
    # the batch is not stopped by any submission (stock nbgrader stops at a duplicated cell);
    # the only errors are the files that are no notebook of this assignment under its name
    import re

    failed = set(re.findall(r"processing assignment 'tiny' for student '(\w+)'", runs[1].stderr))
    assert failed <= FILE_LEVEL, runs[1].stderr[-5000:]
    rows = read_csv(course / "graded" / TINY / "grades.csv")
    ours = gradebook_grades(f"sqlite:///{course / 'gradebook.db'}", TINY)
    theirs = gradebook_grades(db, TINY)
    cases = sorted(set(students) - FILE_LEVEL)
    for student in cases:
        mine = {k: v for k, v in ours.items() if k[0] == student}
        plain_scores = {k: v for k, v in theirs.items() if k[0] == student}
        assert plain_scores == mine, (student, rows[student]["status"])
    with Gradebook(db) as gb:
        plain_flags = {
            s.student.id: any(nb.flagged for nb in s.notebooks)
            for s in gb.find_assignment(TINY).submissions
        }
    for student in cases:
        assert plain_flags[student] == (rows[student]["flagged"] == "yes"), student
    # the kernels talk over unix sockets (IPC): no "running over TCP without encryption"
    assert "without encryption" not in runs[1].stderr
    # the reasons reach nbgrader's own log too
    assert "monkeypatching undone before the tests" in runs[1].stderr
    assert "test_add deleted (restored)" in runs[1].stderr
    assert "timed out in test_add" in runs[1].stderr and "kernel died in add" in runs[1].stderr
    # nbgrader's checksum warning is left for cells a student really changed
    by_student = {
        m.group(1): m.group(0)
        for m in re.finditer(
            r"Sanitizing \S+/submitted/(\w+)/(?:(?!Sanitizing ).)*", runs[1].stderr, re.S
        )
    }
    assert "Attribute 'checksum'" not in by_student["good"] + by_student["untouched"]
    assert "Attribute 'checksum'" in by_student["test_edited"], sorted(by_student)


def test_grading_log_says_what_happened_to_this_student(graded_class):
    course, _, proc = graded_class
    logs = {
        s: (course / "graded" / TINY / s / "grading.log").read_text()
        for s in ("good", "untouched", "patch_names", "test_deleted", "kill_guard", "os_exit")
    }
    for student, log in logs.items():
        assert "Attribute 'checksum'" not in log, (student, log)
    assert "monkeypatching undone before the tests: numpy.isclose" in logs["patch_names"]
    assert "test_add deleted (restored)" in logs["test_deleted"]
    assert "score withheld" in logs["kill_guard"]
    assert "kernel died in add" in logs["os_exit"]


def test_a_grading_error_reaches_the_log_and_the_summary(tmp_path):
    """Result.error (the traceback) is written to grading.log and named in the summary."""
    import io

    from attn_course.grading.outputs import print_summary, write_files
    from attn_course.grading.sandbox import Sandbox
    from attn_course.grading.task import Result

    r = Result("eve", TINY, status=["grading error: OSError: disk full"])
    r.error = 'Traceback (most recent call last):\n  File "x.py", line 1\nOSError: disk full\n'
    write_files(r, tmp_path / "eve", tmp_path / "autograded")
    assert "OSError: disk full" in (tmp_path / "eve" / "grading.log").read_text()
    out = io.StringIO()
    print_summary([r], 1.0, 1, "local", Sandbox("rlimits"), {}, set(), out)
    assert "Grading error for eve: OSError: disk full" in out.getvalue()
