"""Every failure mode gets a grade and a reason, and none stops the batch or touches another
submission. One real `attn-course grade` run over a class of misbehaving students."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import nbformat
import pytest
from grading_fixtures import (
    BIN,
    TINY,
    _env,
    fill,
    gradebook_grades,
    make_course,
    read_csv,
    release_of,
    solutions_of,
    write_submission,
)

pytestmark = [pytest.mark.grading]

WRONG_ADD = "def add(a, b):\n    return a - b"
MARK = uuid.uuid4().hex[:12]


STUDENTS = (
    "good",
    "wrong_add",
    "untouched",
    "infinite_loop",
    "uninterruptible",
    "memory_hog",
    "memory_kept",
    "os_exit",
    "segfault",
    "system_exit",
    "syntax_error",
    "missing_function",
    "wrong_type",
    "nan",
    "not_json",
    "renamed",
    "missing",
    "other_assignment",
    "test_edited",
    "test_deleted",
    "test_duplicated",
    "answer_and_test_deleted",
    "duplicate_cell_ids",
    "patch_names",
    "patch_code",
    "fake_module",
    "kill_guard",
    "read_solutions",
    "write_outside",
    "stderr_in_test",
)


def _students(course: Path):
    """student -> (notebook or raw bytes, file name, expected score, words in the status)."""
    rel = release_of(course, TINY)
    sol = solutions_of(course, TINY)
    good = fill(rel, sol)

    def answers(add=None, double=None):
        return fill(rel, {"add": add or sol["add"], "double": double or sol["double"]})

    def with_test_cell(nb, grade_id, change):
        nb = copy.deepcopy(nb)
        i = next(
            i
            for i, c in enumerate(nb.cells)
            if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
        )
        change(nb, i)
        return nb

    course_s = str(course)
    other = nbformat.read(
        course / "exercises" / "03_query_key_value" / "03_query_key_value.ipynb", as_version=4
    )
    dup_ids = copy.deepcopy(good)
    dup_ids.cells[3]["id"] = dup_ids.cells[2]["id"]

    def dup_test(nb, i):
        nb.cells.insert(i, copy.deepcopy(nb.cells[i]))

    def edit_test(nb, i):
        nb.cells[i].source = "print('all good')"

    def delete_test(nb, i):
        del nb.cells[i]

    read_solutions = f"""{WRONG_ADD}
import json
try:
    src = json.load(open({course_s + "/solutions/tiny/tiny.ipynb"!r}))
    code = [c for c in src['cells'] if c['metadata'].get('nbgrader', {{}}).get('grade_id') == 'add']
    exec(''.join(code[0]['source']))
except OSError as err:
    print('cannot read the solutions:', err)
try:
    open({course_s + "/gradebook.db"!r}, 'r+b').write(b'overwritten')
except OSError as err:
    print('cannot touch the gradebook:', err)
"""
    write_outside = f"""{WRONG_ADD}
for path in ({course_s + "/pwned-" + MARK!r}, '/tmp/pwned-{MARK}', '/var/tmp/pwned-{MARK}',
             {course_s + "/submissions/good/tiny/pwned-" + MARK!r}):
    try:
        open(path, 'w').write('x')
        print('wrote', path)
    except OSError as err:
        print('cannot write', path, err)
"""
    patch_names = (
        WRONG_ADD + "\nimport attn_course.checks as _c\n"
        "_c.check_array = lambda *a, **k: None\n"
        "np.isclose = lambda a, b, **k: np.ones(np.shape(a), dtype=bool)"
    )
    patch_code = (
        WRONG_ADD + "\nimport attn_course.checks as _c\n"
        "_c.check_array.__code__ = (lambda *a, **k: None).__code__"
    )
    fake_module = (
        WRONG_ADD + "\nimport sys, types\nfake = types.ModuleType('attn_course.checks')"
        "\nfake.check_array = lambda *a, **k: None\nfake.run = lambda f, *a, **k: None"
        "\nsys.modules['attn_course.checks'] = fake"
    )
    kill_guard = (
        WRONG_ADD + "\nget_ipython().events.callbacks['pre_run_cell'].clear()\n"
        "import attn_course.checks as _c\n_c.check_array = lambda *a, **k: None"
    )
    uninterruptible = (
        "def add(a, b):\n    while True:\n        try:\n            while True:\n"
        "                pass\n        except KeyboardInterrupt:\n            pass"
    )
    stderr_double = (
        "import sys\ndef double(x):\n    print('note: doubling', file=sys.stderr)\n    return 2 * x"
    )
    return {
        "good": (good, None, 3, "graded"),
        "wrong_add": (answers(WRONG_ADD), None, 1, "graded"),
        "untouched": (rel, None, 0, "graded"),
        "infinite_loop": (
            answers("def add(a, b):\n    while True:\n        pass"),
            None,
            1,
            "timed out in test_add",
        ),
        "uninterruptible": (answers(uninterruptible), None, 1, "kernel hung"),
        "memory_hog": (
            answers(
                "def add(a, b):\n    hog = []\n    while True:\n"
                "        hog.append(bytearray(50_000_000))"
            ),
            None,
            1,
            "out of memory in test_add",
        ),
        # the hog stays referenced: the kernel lives on, crippled; a fresh kernel without the
        # cell grades the other part
        "memory_kept": (
            answers("hog = []\nwhile True:\n    hog.append(bytearray(1_000_000))"),
            None,
            1,
            "out of memory in add (re-run in a fresh kernel without it)",
        ),
        "os_exit": (answers("import os\nos._exit(1)"), None, 1, "kernel died in add"),
        "segfault": (
            answers("def add(a, b):\n    import ctypes\n    return ctypes.string_at(0)"),
            None,
            1,
            "kernel died in test_add",
        ),
        "system_exit": (answers(sol["add"] + "\nimport sys\nsys.exit(3)"), None, 3, "graded"),
        "syntax_error": (answers("def add(a, b)\n    return a + b"), None, 1, "graded"),
        "missing_function": (answers("def plus(a, b):\n    return a + b"), None, 1, "graded"),
        "wrong_type": (answers("def add(a, b):\n    return {'sum': a + b}"), None, 1, "graded"),
        "nan": (answers("def add(a, b):\n    return a + b + np.nan"), None, 1, "graded"),
        "not_json": (b"this is not { json", None, 0, "not a notebook"),
        "renamed": (good, "tiny (1)", 3, "notebook renamed"),
        "missing": (None, None, 0, "notebook missing"),
        "other_assignment": (other, None, 0, "notebook of another assignment"),
        "test_edited": (
            with_test_cell(answers(WRONG_ADD), "test_add", edit_test),
            None,
            1,
            "test_add edited (restored)",
        ),
        "test_deleted": (
            with_test_cell(answers(WRONG_ADD), "test_add", delete_test),
            None,
            1,
            "test_add deleted (restored)",
        ),
        "answer_and_test_deleted": (
            with_test_cell(
                good, "test_add", lambda nb, i: nb.cells.__delitem__(slice(i - 1, i + 1))
            ),
            None,
            1,
            "test_add deleted (restored)",
        ),
        "test_duplicated": (
            with_test_cell(good, "test_double", dup_test),
            None,
            3,
            "test_double duplicated",
        ),
        "duplicate_cell_ids": (dup_ids, None, 3, "duplicated cell ids in tiny.ipynb (renumbered)"),
        "patch_names": (answers(patch_names), None, 1, "monkeypatching undone"),
        "patch_code": (answers(patch_code), None, 1, "monkeypatching undone"),
        "fake_module": (answers(fake_module), None, 1, "monkeypatching undone"),
        "kill_guard": (answers(kill_guard), None, 0, "score withheld"),
        "read_solutions": (answers(read_solutions), None, 1, "graded"),
        "write_outside": (answers(write_outside), None, 1, "graded"),
        "stderr_in_test": (answers(double=stderr_double), None, 3, "graded"),
    }


def write_class(course: Path) -> tuple[Path, dict]:
    """The class of _students, written as nbgrader's submitted layout under course/submissions."""
    subs = course / "submissions"
    students = _students(course)
    for student, (nb, name, _, _) in students.items():
        if nb is None:
            folder = subs / student / TINY
            folder.mkdir(parents=True)
            (folder / "README.txt").write_text("I forgot the notebook")
        elif student == "duplicate_cell_ids":  # nbformat.write would renumber the ids
            folder = subs / student / TINY
            folder.mkdir(parents=True)
            (folder / f"{TINY}.ipynb").write_text(json.dumps(nb))
        elif isinstance(nb, bytes):
            write_submission(subs, student, TINY, None, raw=nb)
        else:
            write_submission(subs, student, TINY, nb, name=name)
    return subs, students


GRADE_ARGS = ("--timeout", "6", "--memory", "1G")
# the students whose notebooks tamper with the grading (flagged for the instructor)
CHEATS = {"patch_names", "patch_code", "fake_module", "kill_guard"}


# graded_class (tests/conftest.py): this class graded locally, once per run


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
