"""`attn-course grade`: the command, its setup errors, nbgrader-identical grades, PostgreSQL,
LMS archives. Real runs of the console script on a tiny course made in a temp folder."""

from __future__ import annotations

import shutil
import subprocess
import zipfile

import pytest
from grading_fixtures import (
    BIN,
    TINY,
    _env,
    fill,
    grade_cmd,
    gradebook_grades,
    make_course,
    postgres_url,  # noqa: F401  (a fixture)
    read_csv,
    release_of,
    solutions_of,
    write_submission,
)

# Well-formed submissions (no stderr in test cells, no timeouts): plain nbgrader must agree.
WELL_FORMED = {
    "good": {},
    "wrong_add": {"add": "def add(a, b):\n    return a - b"},
    "wrong_double": {"double": "def double(x):\n    return x + 2.5"},
    "syntax_error": {"add": "def add(a, b)\n    return a + b"},
    "nan": {"add": "def add(a, b):\n    return a + b + np.nan"},
    "loop_float32": {
        "add": "def add(a, b):\n    a, b = np.float32(a), np.float32(b)\n    return a + b"
    },
}


def _submissions(course, root):
    rel, sol = release_of(course, TINY), solutions_of(course, TINY)
    for student, answers in WELL_FORMED.items():
        write_submission(root, student, TINY, fill(rel, {**sol, **answers}))
    write_submission(root, "untouched", TINY, rel)
    return root


def test_cli_lists_its_subcommands():
    proc = subprocess.run([str(BIN / "attn-course"), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "grade" in proc.stdout and "check" in proc.stdout


@pytest.fixture(scope="session")
def course(tmp_path_factory):
    return make_course(tmp_path_factory.mktemp("setup") / "course")


def test_setup_error_unknown_assignment(course):
    proc = grade_cmd(course, "no_such_assignment", course)
    assert proc.returncode == 2
    assert "no assignment 'no_such_assignment'" in proc.stderr and "tiny" in proc.stderr


def test_setup_error_missing_submissions(course):
    proc = grade_cmd(course, TINY, course / "nowhere")
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr


def test_setup_error_not_a_course(tmp_path):
    proc = subprocess.run(
        [str(BIN / "attn-course"), "grade", TINY, str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert proc.returncode == 2
    assert "nbgrader_config.py" in proc.stderr


def test_setup_error_bad_memory(course):
    proc = grade_cmd(course, TINY, course, "--memory", "lots")
    assert proc.returncode == 2 and "memory limit" in proc.stderr


@pytest.fixture(scope="session")
def three_runs(tmp_path_factory, postgres_url):  # noqa: F811
    """The same class graded three ways: attn-course on SQLite, attn-course on PostgreSQL,
    plain sequential `nbgrader autograde` (in a copy of the course)."""
    base = tmp_path_factory.mktemp("identical")
    course = make_course(base / "course")
    subs = _submissions(course, base / "subs")
    sqlite = grade_cmd(course, TINY, subs, "--jobs", "2")
    pg = grade_cmd(
        course, TINY, subs, "--jobs", "2", "--db", postgres_url, "--out", str(base / "pg-out")
    )
    plain = make_course(base / "plain")
    shutil.copytree(subs, plain / "submitted")
    db = f"sqlite:///{plain / 'plain.db'}"
    for cmd in (["generate_assignment", TINY, "--force"], ["autograde", TINY, "--force"]):
        subprocess.run(
            [str(BIN / "nbgrader"), *cmd, f"--db={db}"],
            cwd=plain,
            check=True,
            capture_output=True,
            env=_env(),
        )
    return course, base, sqlite, pg, db, postgres_url


@pytest.mark.grading
def test_grades_identical_to_plain_nbgrader(three_runs):
    course, _, sqlite, _, plain_db, _ = three_runs
    assert sqlite.returncode == 0, sqlite.stderr[-3000:]
    ours = gradebook_grades(f"sqlite:///{course / 'gradebook.db'}", TINY)
    theirs = gradebook_grades(plain_db, TINY)
    assert len(ours) == 2 * (len(WELL_FORMED) + 1)
    assert ours == theirs
    rows = read_csv(course / "graded" / TINY / "grades.csv")
    assert {s: float(r["score"]) for s, r in rows.items()} == {
        "good": 3,
        "wrong_add": 1,
        "wrong_double": 2,
        "syntax_error": 1,
        "nan": 1,
        "loop_float32": 3,
        "untouched": 0,
    }
    assert all(r["status"] == "graded" for r in rows.values())


@pytest.mark.grading
def test_postgresql_gradebook_gives_the_same_grades(three_runs):
    course, base, sqlite, pg, _, url = three_runs
    assert pg.returncode == 0, pg.stderr[-3000:]
    assert gradebook_grades(url, TINY) == gradebook_grades(
        f"sqlite:///{course / 'gradebook.db'}", TINY
    )
    assert (base / "pg-out" / "grades.csv").read_text().count("\n") == len(WELL_FORMED) + 2
    # the README's URL works in plain nbgrader too (SQLAlchemy's postgresql:// is psycopg 3)
    export = subprocess.run(
        [str(BIN / "nbgrader"), "export", f"--db={url}", "--to", str(base / "pg-export.csv")],
        cwd=course, capture_output=True, text=True, env=_env(), timeout=300,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr[-3000:]
    assert "untouched" in (base / "pg-export.csv").read_text()


@pytest.mark.grading
def test_feedback_and_autograded_notebooks_where_nbgrader_expects_them(three_runs):
    course, *_ = three_runs
    for student in ("good", "untouched"):
        assert (course / "graded" / TINY / student / f"{TINY}.html").is_file()
        assert (course / "autograded" / student / TINY / f"{TINY}.ipynb").is_file()


@pytest.mark.grading
def test_progress_bar_and_summary(three_runs):
    course, _, _, _, _, _ = three_runs
    subs = course / "one"
    rel, sol = release_of(course, TINY), solutions_of(course, TINY)
    write_submission(subs, "solo", TINY, fill(rel, sol))
    proc = subprocess.run(
        [
            str(BIN / "attn-course"),
            "grade",
            TINY,
            str(subs),
            "--jobs",
            "1",
            "--out",
            str(course / "solo-out"),
        ],
        cwd=course,
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "grading" in proc.stderr and "1/1" in proc.stderr  # tqdm: count and ETA
    assert "Graded 1 submission in" in proc.stdout
    assert "full marks 1" in proc.stdout


@pytest.mark.grading
def test_lms_zip_is_mapped_with_zip_collect(tmp_path):
    course = make_course(tmp_path / "course")
    rel, sol = release_of(course, TINY), solutions_of(course, TINY)
    import nbformat

    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("alice_tiny.ipynb", nbformat.writes(fill(rel, sol)))
        zf.writestr(
            "bob_4711_tiny.ipynb",
            nbformat.writes(fill(rel, {**sol, "add": "def add(a, b):\n    return a * b"})),
        )
    proc = grade_cmd(course, TINY, archive, "--jobs", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_csv(course / "graded" / TINY / "grades.csv")
    assert {s: float(r["score"]) for s, r in rows.items()} == {"alice": 3, "bob": 1}


@pytest.mark.grading
def test_the_lms_late_mark_is_nbgraders_late_status(tmp_path):
    """Canvas marks a late upload `_late_` (no time): with a due date in the gradebook the
    submission is stored just after it, so nbgrader counts it late; grades.csv says `late`."""
    import nbformat
    from nbgrader.api import Gradebook

    course = make_course(tmp_path / "course")
    rel, sol = release_of(course, TINY), solutions_of(course, TINY)
    db = f"sqlite:///{course / 'gradebook.db'}"
    subprocess.run(
        [str(BIN / "nbgrader"), "db", "assignment", "add", TINY, "--duedate=2027-02-28 23:59",
         f"--db={db}"],
        cwd=course, check=True, capture_output=True, env=_env(),
    )  # fmt: skip
    archive = tmp_path / "canvas.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("smithjohn_late_12345_6789012_tiny.ipynb", nbformat.writes(fill(rel, sol)))
        zf.writestr("doejane_23456_7890123_tiny.ipynb", nbformat.writes(fill(rel, sol)))
    proc = grade_cmd(course, TINY, archive, "--jobs", "1", "--no-feedback")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_csv(course / "graded" / TINY / "grades.csv")
    assert rows["smithjohn"]["late"] == "yes" and rows["doejane"]["late"] == ""
    assert "late (marked by the LMS)" in rows["smithjohn"]["status"]
    assert rows["smithjohn"]["score"] == "3"  # nbgrader's default late penalty is none
    with Gradebook(db) as gb:
        assert gb.find_submission(TINY, "smithjohn").total_seconds_late > 0
        assert gb.find_submission(TINY, "doejane").total_seconds_late == 0


@pytest.mark.grading
def test_grading_one_late_student_merges_into_grades_csv(three_runs):
    course, *_ = three_runs
    csv_path = course / "graded" / TINY / "grades.csv"
    before = read_csv(csv_path)
    late = course / "late"
    rel, sol = release_of(course, TINY), solutions_of(course, TINY)
    write_submission(late, "latecomer", TINY, fill(rel, sol))
    proc = grade_cmd(course, TINY, late, "--jobs", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = read_csv(csv_path)
    assert sorted(after) == sorted([*before, "latecomer"])
    assert float(after["latecomer"]["score"]) == 3
    for student, row in before.items():
        assert after[student] == row, student


@pytest.mark.grading
def test_a_regrade_by_either_path_re_decides_the_flag(tmp_path):
    """attn-course grade flags a monkeypatcher; a plain `nbgrader autograde --force` (with the
    course's plugin) of the same notebook gives the same score and keeps the flag; after a
    clean resubmission a plain regrade clears it: no flag outlives what explained it."""
    from nbgrader.api import Gradebook

    course = make_course(tmp_path / "course")
    with (course / "nbgrader_config.py").open("a") as fh:
        fh.write("from attn_course.grading import configure\nconfigure(c)\n")
    rel, sol = release_of(course, TINY), solutions_of(course, TINY)
    cheat = {
        **sol,
        "add": "def add(a, b):\n    return a - b\nimport numpy as np\n"
        "np.isclose = lambda a, b, **k: np.ones(np.shape(a), dtype=bool)",
    }
    write_submission(course / "submitted", "mallory", TINY, fill(rel, cheat))
    proc = grade_cmd(course, TINY, course / "submitted", "--jobs", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    db = f"sqlite:///{course / 'gradebook.db'}"

    def state():
        with Gradebook(db) as gb:
            sub = gb.find_submission(TINY, "mallory")
            return sub.score, any(nb.flagged for nb in sub.notebooks)

    assert state() == (1.0, True)

    def plain_regrade():
        subprocess.run(
            [str(BIN / "nbgrader"), "autograde", TINY, "--force", f"--db={db}"],
            cwd=course,
            check=True,
            capture_output=True,
            env=_env(),
            timeout=600,
        )

    plain_regrade()
    assert state() == (1.0, True)
    write_submission(course / "submitted", "mallory", TINY, fill(rel, sol))
    plain_regrade()
    assert state() == (3.0, False)


# --- the wrong folder is refused before anything is written ---------------------------------


@pytest.mark.grading
def test_the_courses_own_folders_are_not_submissions(tmp_path):
    course = make_course(tmp_path / "course", with_03=True)
    for folder in ("exercises", "solutions"):
        proc = grade_cmd(course, "03_query_key_value", course / folder)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"is the course's {folder}/ folder" in proc.stderr and "nothing" in proc.stderr
    # the same folder elsewhere (a copy): its "students" would be named like assignments
    shutil.copytree(course / "exercises", tmp_path / "copy")
    proc = grade_cmd(course, TINY, tmp_path / "copy")
    assert proc.returncode == 2 and "named like the course's assignments" in proc.stderr
    assert not (course / "gradebook.db").exists()  # nothing written, no student invented


@pytest.mark.grading
def test_one_students_folder_grades_that_student(tmp_path):
    """`attn-course grade A submitted/ivan`: ivan, graded and merged into the class's CSV."""
    course = make_course(tmp_path / "course")
    rel, sol = release_of(course, TINY), solutions_of(course, TINY)
    for student in ("ann", "ivan"):
        write_submission(course / "submitted", student, TINY, fill(rel, sol))
    proc = grade_cmd(course, TINY, course / "submitted" / "ivan")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_csv(course / "graded" / TINY / "grades.csv")
    assert sorted(rows) == ["ivan"] and rows["ivan"]["score"] == "3"


@pytest.mark.grading
def test_most_hand_ins_of_another_assignment_is_a_setup_error(tmp_path):
    course = make_course(tmp_path / "course", with_03=True)
    rel = release_of(course, "03_query_key_value")
    for student in ("a1", "a2", "a3"):  # the 03 notebooks, named as the tiny assignment's
        write_submission(tmp_path / "subs", student, TINY, rel)
    proc = grade_cmd(course, TINY, tmp_path / "subs")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "3 of the 3 hand-ins" in proc.stderr and "no notebook of tiny" in proc.stderr
    assert not (course / "gradebook.db").exists()


@pytest.mark.grading
def test_one_grades_csv_per_gradebook(three_runs):
    """A run into another gradebook writes its own grades.csv by default, and refuses to merge
    into one written from another gradebook (the SQLite run's, here)."""
    course, base, sqlite, pg, _, url = three_runs
    rows = read_csv(course / "graded" / TINY / "grades.csv")
    source = (course / "graded" / TINY / "grades.csv.gradebook").read_text().strip()
    assert source == f"sqlite:///{course / 'gradebook.db'}" and "untouched" in rows
    merged = grade_cmd(
        course, TINY, base / "subs", "--db", url, "--out", str(course / "graded" / TINY)
    )
    assert merged.returncode == 2 and "holds the grades of the gradebook" in merged.stderr
    assert read_csv(course / "graded" / TINY / "grades.csv") == rows  # untouched
    own = grade_cmd(course, TINY, base / "subs", "--db", url, "--no-feedback")
    assert own.returncode == 0, own.stderr[-3000:]
    assert "  grading.log: " in own.stdout and "feedback" not in own.stdout  # none was made
    folder = next(p for p in (course / "graded").iterdir() if p.name.startswith(f"{TINY}@"))
    assert "gradebook" in folder.name and "grader" not in folder.name  # no user name in it
    assert set(read_csv(folder / "grades.csv")) == {*WELL_FORMED, "untouched"}  # its own rows
