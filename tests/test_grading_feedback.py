"""An LMS download graded end to end, as a new instructor would: the file names of Canvas,
Moodle and Blackboard map to the right notebook, a corrupted file says so, and the feedback
HTML keeps the hidden tests hidden, names every test and renders its maths with no network
(checked in Chromium with every request blocked). Then the same feedback through plain
`nbgrader generate_feedback` with the repository's nbgrader_config.py."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from browser_fixtures import CHROMIUM, CHROMIUM_ARGS, raw_tex
from grading_fixtures import BIN, _env, fill, grade_cmd, make_course, read_csv, solutions_of

pytestmark = [pytest.mark.grading]

A = "03_query_key_value"
ROOT = Path(__file__).resolve().parent.parent
WRONG_DOT = "def dot_score(query, keys):\n    return query @ keys"
HINT = "Entry [i, j] is the dot product of query i with key j."
FILES = {  # LMS file name -> (student id, answers)
    f"alice_{A}.ipynb": ("alice", "wrong"),  # the README's own example
    f"smithbob_12345_6789012_{A}.ipynb": ("smithbob", "right"),  # Canvas
    f"Carol Diaz_48213_assignsubmission_file_{A}.ipynb": ("Carol Diaz", "corrupt"),  # Moodle
    f"Week 3_dave_attempt_2026-03-01-12-30-45_{A}.ipynb": ("dave", "corrupt"),  # Blackboard
}


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("lms")
    course = make_course(root / "course", with_03=True)
    release = nbformat.read(course / "exercises" / A / f"{A}.ipynb", as_version=4)
    right = solutions_of(course, A)
    download = root / "download"
    download.mkdir()
    for name, (_, kind) in FILES.items():
        if kind == "corrupt":
            (download / name).write_bytes(b'{"cells": [ truncated by the upload')
        else:
            answers = {**right, "dot_score": WRONG_DOT} if kind == "wrong" else right
            nbformat.write(fill(release, answers), download / name)
    proc = grade_cmd(course, A, download, "--jobs", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return course, read_csv(course / "graded" / A / "grades.csv"), proc


def test_every_lms_name_maps_to_its_student_and_notebook(graded):
    _, rows, proc = graded
    assert sorted(rows) == sorted(student for student, _ in FILES.values()), proc.stdout
    assert rows["alice"]["status"] == "graded"  # not "notebook renamed"
    assert rows["smithbob"]["status"] == "graded"
    assert float(rows["smithbob"]["score"]) == float(rows["smithbob"]["max_score"])


def test_a_corrupted_file_is_not_valid_json_not_missing(graded):
    course, rows, _ = graded
    for student in ("Carol Diaz", "dave"):
        assert rows[student]["status"] == f"not a notebook: {A}.ipynb is not valid JSON"
        # and the student gets a feedback page that says so
        page = (course / "graded" / A / student / f"{A}.html").read_text()
        assert "score 0" in page and f"not a notebook: {A}.ipynb is not valid JSON" in page


def _text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _hidden_lines() -> list[str]:
    """Lines of the hidden tests that the students' notebook does not contain."""
    source = nbformat.read(ROOT / "solutions" / A / f"{A}.ipynb", as_version=4)
    release = nbformat.read(ROOT / "exercises" / A / f"{A}.ipynb", as_version=4)
    public = {ln.strip() for c in release.cells for ln in c.source.splitlines()}
    hidden = []
    for cell in source.cells:
        for block in re.findall(
            r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, re.S
        ):
            hidden += [ln.strip() for ln in block.splitlines() if len(ln.strip()) > 12]
    return [ln for ln in hidden if ln not in public]


def _check_feedback(page: str) -> None:
    text = _text(page)
    hidden = _hidden_lines()
    assert len(hidden) > 30  # the check below has something to find
    shown = [ln for ln in hidden if ln in text]
    assert not shown, f"hidden test lines in the feedback: {shown[:3]}"
    assert "HIDDEN TESTS" not in text
    seeds = {s for ln in hidden for s in re.findall(r"default_rng\(\d+\)", ln)}
    assert seeds and not [s for s in seeds if s in text]
    # the index: every test by name, its points and its message
    toc = page[page.index('id="toc"') : page.index("</table>", page.index('id="toc"'))]
    for grade_id, points in (("test_softmax", 2), ("test_dot_score", 1), ("test_attention", 3)):
        assert f'href="#{grade_id}">{grade_id}</a>' in toc
        assert f"/ {float(points)}" in toc
    row = toc[toc.index("test_dot_score") :].split("</tr>")[0]
    assert "0.0 / 1.0" in row and "dot_score(q, K) could not be computed" in row and HINT in row
    assert "Test cell" not in page
    # nothing is loaded from anywhere: no script, style sheet or image with an address
    loads = re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"([^\"]+)\"", page)
    assert loads == []
    assert "cdnjs" not in page and "mathjax@" not in page.lower()


def test_feedback_hides_the_hidden_tests_and_names_every_test(graded):
    course, _, _ = graded
    _check_feedback((course / "graded" / A / "alice" / f"{A}.html").read_text())


def test_feedback_maths_renders_offline_and_tables_have_spacing(graded):
    from playwright.sync_api import sync_playwright

    course, _, _ = graded
    page_path = course / "graded" / A / "alice" / f"{A}.html"
    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context()

        def route(r):
            if r.request.url.startswith("file://"):
                r.continue_()
            else:
                requests.append(r.request.url)
                r.abort("blockedbyclient")

        context.route("**/*", route)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        # MathML laid out by the browser itself: every formula has a size on the page
        sizes = page.evaluate(
            """() => [...document.querySelectorAll('#notebook math')].map((m) => {
                const r = m.getBoundingClientRect(); return [r.width, r.height]; })"""
        )
        prose = page.evaluate(
            """() => { const c = document.querySelector('#notebook').cloneNode(true);
            c.querySelectorAll('pre, code, script, style, math, .highlight, .output')
             .forEach((e) => e.remove()); return c.textContent; }"""
        )
        padding = page.evaluate(
            """() => parseFloat(getComputedStyle(
                document.querySelector('.rendered_html th')).paddingLeft)"""
        )
        browser.close()
    assert Path(CHROMIUM).exists()
    assert requests == [] and errors == []
    assert len(sizes) > 10 and all(w > 0 and h > 0 for w, h in sizes), sizes
    assert raw_tex(prose) == []
    assert page_path.stat().st_size <= 200_000  # one small file per notebook, maths included
    assert padding > 0  # the table header's words no longer run together


def test_plain_nbgrader_generate_feedback_with_the_course_config(graded, tmp_path):
    """The repository's nbgrader_config.py registers the same feedback for plain nbgrader."""
    course, _, _ = graded
    shutil.copyfile(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    proc = subprocess.run(
        [str(BIN / "nbgrader"), "generate_feedback", A, "--student=alice", "--force"],
        cwd=course,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not recognized by" not in proc.stderr  # no config warning at every feedback run
    _check_feedback((course / "feedback" / "alice" / A / f"{A}.html").read_text())


def test_plain_nbgrader_zip_collect_as_the_readme_says(tmp_path):
    """`nbgrader zip_collect` with the repository's config maps the same names the same way
    (it used to exit 0 with "Regular expression not provided" and collect nothing)."""
    course = make_course(tmp_path / "course", with_03=True)
    shutil.copyfile(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    archive = course / "downloaded" / A / "archive"  # where the README says the download goes
    archive.mkdir(parents=True)
    release = nbformat.read(course / "exercises" / A / f"{A}.ipynb", as_version=4)
    for name in FILES:
        nbformat.write(release, archive / name)
    proc = subprocess.run(
        [str(BIN / "nbgrader"), "zip_collect", A],
        cwd=course,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Regular expression not provided" not in proc.stdout + proc.stderr
    collected = sorted(
        p.relative_to(course / "submitted") for p in (course / "submitted").rglob("*.ipynb")
    )
    expected = sorted(Path(student, A, f"{A}.ipynb") for student, _ in FILES.values())
    assert collected == expected
