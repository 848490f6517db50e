"""`attn-course report` on a class graded once (conftest's ``graded_class``: one student per
failure mode, what each did known by construction), its page opened in Chromium; and the
reading of failures (failures.py) on the messages attn_course.checks really raises."""

from __future__ import annotations

import csv
import json
import subprocess

import numpy as np
import pytest
from browser_fixtures import open_context, serve
from grading_fixtures import (
    ATTN_COURSE,
    BIN,
    TINY,
    WRONG_ADD,
    fill,
    grade_cmd,
    make_course,
    postgres_url,  # noqa: F401  (a fixture)
    read_csv,
    release_of,
    solutions_of,
    write_submission,
)

from attn_course import checks
from attn_course.grading import nbgrader_env
from attn_course.grading.failures import cell_failure, hidden_lines, signature

# the students of grading_fixtures._students whose add returns a - b (the same mistake)
A_MINUS_B = {"wrong_add", "patch_names", "patch_code", "fake_module", "test_edited",
             "test_deleted", "read_solutions", "write_outside"}  # fmt: skip
# ... and those whose add is not defined when test_add runs
NO_ADD = {"missing_function", "syntax_error", "os_exit", "memory_kept", "answer_and_test_deleted"}


@pytest.fixture(scope="module")
def reported(graded_class):
    course, students, _ = graded_class
    proc = subprocess.run(
        [str(ATTN_COURSE), "report", TINY],
        cwd=course, capture_output=True, text=True, env=nbgrader_env(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = course / "graded" / TINY / "report"
    return course, students, out, proc


def _rows(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.grading
def test_scores_and_pass_rates_agree_with_the_grading(reported):
    course, students, out, proc = reported
    graded = read_csv(course / "graded" / TINY / "grades.csv")
    assert "report.html" in proc.stdout
    rows = {r["student_id"]: r for r in _rows(out / "students.csv")}
    assert set(rows) == set(students) == set(graded)
    for sid, row in rows.items():
        assert float(row["score"]) == float(graded[sid]["score"]), sid
        assert row["status"] == graded[sid]["status"], sid
    cells = {r["test_cell"]: r for r in _rows(out / "cells.csv")}
    assert set(cells) == {"test_add", "test_double"}
    for cell, points in (("test_add", 2.0), ("test_double", 1.0)):
        full = sum(float(g[cell] or 0) == points for g in graded.values())
        assert float(cells[cell]["points"]) == points
        assert int(cells[cell]["full_marks"]) == full
        assert float(cells[cell]["pass_rate"]) == pytest.approx(full / len(graded), abs=1e-3)


@pytest.mark.grading
def test_failures_are_grouped_by_their_structure(reported):
    _, _, out, _ = reported
    groups = {}
    for r in _rows(out / "failures.csv"):
        if r["test_cell"] == "test_add":
            groups[r["structure"]] = set(r["students"].split())
    assert groups["wrong values: what add(1, 2)"] == A_MINUS_B
    assert groups["NameError: name 'add' is not defined"] == NO_ADD
    assert groups["not finite: what add(1, 2), value nan"] == {"nan"}
    assert groups["not an array: what add(1, 2), type dict"] == {"wrong_type"}
    assert groups["not written: what add(1, 2), name add"] == {"untouched"}
    # every student who lost test_add's points is in exactly one group
    data = json.loads((out / "report.json").read_text())
    lost = {s for s, v in data["cells"]["test_add"]["scores"].items() if v < 2}
    seen = [s for g in data["failures"]["test_add"] for s in g["students"]]
    assert len(seen) == len(set(seen)) and set(seen) <= lost
    # the mistakes fail test_add's public check: nothing there is a hidden-test surprise
    assert data["hidden"] == {}
    assert all(g["hidden"] == 0 for g in data["failures"]["test_add"])


@pytest.mark.grading
def test_flags_timeouts_deaths_and_repairs_name_the_students(reported):
    _, _, out, _ = reported
    data = json.loads((out / "report.json").read_text())
    events = data["statuses"]
    assert events["timed out in test_add"] == ["infinite_loop"]
    assert events["kernel died in test_add"] == ["segfault"]
    assert events["kernel died in add"] == ["os_exit"]
    assert set(events["cells tampered with and restored"]) >= {"test_edited", "test_deleted"}
    assert events["notebook missing"] == ["missing"]
    flagged = {s for s, d in data["students"].items() if d["flagged"]}
    assert {"patch_names", "patch_code", "fake_module", "kill_guard"} <= flagged
    # most of the tiny assignment's answers are one line (good, wrong_add, nan, wrong_type,
    # untouched, ...; every double but one): no evidence, and the page says so; the longer
    # cheats share a few lines, too few to show
    sim = data["similarity"]
    assert sim["pairs"] == [] and sim["short"]["add"] >= 10 and sim["short"]["double"] >= 25


@pytest.mark.grading
def test_the_page_shows_its_plots_and_tables_offline(reported, browser):
    _, _, out, _ = reported
    server, site = serve(out)
    try:
        context, visit = open_context(browser, site)
        page = context.new_page()
        page.goto(site.url("report.html"))
        for figure in ("#figure-scores", "#figure-cells"):
            box = page.locator(f"{figure} svg").bounding_box()
            assert box and box["width"] > 200 and box["height"] > 100, figure
        assert page.locator("#table-cells tbody tr").count() == 2
        assert "test_add" in page.locator("#table-cells").inner_text()
        assert page.locator("#table-events").inner_text().count("infinite_loop") == 1
        assert page.locator(".table-failures").count() == 2
        assert "a reason to look" in page.locator("#similarity ~ p.note").inner_text()
        assert not visit.external_requests and not visit.page_errors and not visit.failed_requests
        context.close()
    finally:
        server.shutdown()


@pytest.mark.grading
def test_an_unknown_assignment_is_a_clear_error(graded_class):
    course, _, _ = graded_class
    proc = subprocess.run(
        [str(ATTN_COURSE), "report", "nosuch"],
        cwd=course, capture_output=True, text=True, env=nbgrader_env(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no assignment 'nosuch'" in proc.stderr and "tiny" in proc.stderr


# --- the same class through both grading paths, into SQLite and PostgreSQL -----------------

# passes test_add's public check (scalars) and fails its hidden one (arrays): float() of an array
SCALARS_ONLY = "def add(a, b):\n    return float(a) + float(b)"


@pytest.fixture(scope="session")
def two_paths(tmp_path_factory, postgres_url):  # noqa: F811
    """Two students graded by plain `nbgrader autograde` (the course's plugin on, SQLite)
    and by `attn-course grade --db postgresql://...`; each path's report.json."""
    base = tmp_path_factory.mktemp("two-paths")
    plain = make_course(base / "plain")
    with (plain / "nbgrader_config.py").open("a") as fh:
        fh.write("from attn_course.grading import configure\nconfigure(c)\n")
    release, sol = release_of(plain, TINY), solutions_of(plain, TINY)
    for student, add in (("wrong_add", WRONG_ADD), ("scalars_only", SCALARS_ONLY)):
        write_submission(plain / "submitted", student, TINY, fill(release, {**sol, "add": add}))
    for cmd in (["generate_assignment", TINY, "--force"], ["autograde", TINY]):
        subprocess.run([str(BIN / "nbgrader"), *cmd], cwd=plain, check=True,
                       capture_output=True, env=nbgrader_env(), timeout=600)  # fmt: skip
    # the same course graded again, into PostgreSQL (its files go beside its own grades.csv)
    proc = grade_cmd(plain, TINY, plain / "submitted", "--jobs", "2", "--db", postgres_url,
                     "--no-feedback")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = {}
    for name, extra in (("plain", []), ("postgres", ["--db", postgres_url])):
        out = base / f"{name}-report"
        proc = subprocess.run(
            [str(ATTN_COURSE), "report", TINY, "--out", str(out), *extra],
            cwd=plain, capture_output=True, text=True, env=nbgrader_env(), timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        reports[name] = json.loads((out / "report.json").read_text())
    return reports


@pytest.mark.grading
def test_both_grading_paths_and_databases_give_the_same_report(two_paths):
    plain, pg = two_paths["plain"], two_paths["postgres"]
    assert pg["gradebook"].startswith("127.0.0.1") and plain["gradebook"].startswith("sqlite")
    scores = {s: d["score"] for s, d in plain["students"].items()}
    assert scores == {"wrong_add": 1.0, "scalars_only": 1.0}
    assert {s: d["score"] for s, d in pg["students"].items()} == scores
    for key in ("cells", "failures", "hidden"):
        assert plain[key] == pg[key], key


@pytest.mark.grading
def test_a_hidden_test_that_fails_a_public_passer_is_reported(two_paths):
    data = two_paths["plain"]
    assert data["hidden"] == {"test_add": ["scalars_only"]}
    groups = {g["title"]: g for g in data["failures"]["test_add"]}
    assert groups["wrong values: what add(1, 2)"]["students"] == ["wrong_add"]
    raised = [g for g in groups.values() if g["students"] == ["scalars_only"]]
    assert len(raised) == 1 and raised[0]["hidden"] == 1
    assert raised[0]["title"] == (
        "raised: what add of arrays, name add, error TypeError, "
        "inputs a of shape (3,) and b of shape (3,)"
    )


# --- reading one failure (no kernel): the messages checks.py raises --------------------------


def _message(check, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as err:
        check(*args, **kwargs)
    return str(err.value)


def test_the_structure_of_each_check_message():
    wrong_shape = _message(checks.check_array, "w", np.zeros(2), np.zeros((2, 3)), hint="h")
    assert signature("AssertionError", wrong_shape) == (
        "wrong shape", ("what", "w"), ("got", "(2,)"), ("expected", "(2, 3)"))  # fmt: skip
    # the same mistake with other numbers: the same group
    a = _message(checks.check_array, "w", np.array([1.0, 2.0]), np.array([1.0, 3.0]))
    b = _message(checks.check_array, "w", np.array([5.0, 9.0]), np.array([4.0, 9.0]))
    assert a != b and signature("AssertionError", a) == signature("AssertionError", b)
    assert signature("AssertionError", a) == ("wrong values", ("what", "w"))

    def f(x, y):
        return x @ y

    raised = _message(checks.run, f, np.zeros((2, 3)), np.zeros((2, 3)))
    kind, *fields = signature("CallError", raised)
    assert kind == "raised"
    assert dict(fields)["inputs"] == "x of shape (2, 3) and y of shape (2, 3)"
    assert dict(fields)["error"] == "ValueError"
    assert signature("NameError", "name 'x2' is not defined")[0] == "NameError"


def test_a_failure_in_the_hidden_tests_is_told_from_a_public_one():
    source = "check(1)\n### BEGIN HIDDEN TESTS\ncheck(2)\n### END HIDDEN TESTS\ncheck(3)"
    assert hidden_lines(source) == {3}

    def cell(line):
        tb = [f"\x1b[0;31mCell \x1b[0;32mIn[7], line {line}\x1b[0m\n----> {line} check()"]
        out = {"output_type": "error", "ename": "AssertionError", "evalue": "x", "traceback": tb}
        return {"cell_type": "code", "source": source, "execution_count": 7, "outputs": [out]}

    assert cell_failure(cell(3)).hidden
    assert not cell_failure(cell(1)).hidden
    assert not cell_failure(cell(5)).hidden
    assert cell_failure({"cell_type": "code", "source": source, "outputs": []}) is None
