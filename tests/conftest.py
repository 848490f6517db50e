"""Shared fixtures. Tests never need an activated virtualenv: this interpreter's bin/
goes first on PATH, so nbgrader finds alembic and Jupyter starts this environment's kernel.

Here: the built book (``built_book``, ``book_html``) and the class the grading tests share
(``graded_class``). Fixture modules beside this file hold the rest, imported by the test
modules that need them (tests/ and scripts/ are on sys.path; test modules never import
each other):

- ``browser_fixtures.py``: the built book served locally and opened in Chromium (its
  ``browser`` and ``site`` fixtures are registered below, for every module);
- ``grading_fixtures.py``: a tiny course, submissions, the class of misbehaving students,
  the ``attn-course grade`` command, PostgreSQL and a Dask cluster on loopback;
- ``scripts/book_toc.py`` (``toc_entries``): the pages of ``_toc.yml``, read as
  ``scripts/execute_book.py`` reads them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest
from filelock import FileLock

# Headless plotting for this process only. Not through MPLBACKEND: kernels started by the
# tests (the book build, nbgrader) would inherit it and draw no inline figures.
matplotlib.use("Agg")

from attn_course.grading import put_bin_on_path  # noqa: E402  (light: no grader imports)

ROOT = Path(__file__).resolve().parent.parent
put_bin_on_path()
sys.path.insert(0, str(ROOT / "scripts"))  # book_toc and execute_book, as the book build runs them

from browser_fixtures import browser, site  # noqa: E402, F401  (fixtures, for every module)


def pytest_collection_modifyitems(config, items):
    """The tiers must be visible: a test that builds the book carries the `book` marker, so
    `make test-fast` (-m "not book and not nbgrader and not grading") never builds it."""
    unmarked = [
        i.nodeid
        for i in items
        if {"built_book", "book_html"} & set(i.fixturenames) and not i.get_closest_marker("book")
    ]
    if unmarked:
        raise pytest.UsageError(f"tests using the built book need @pytest.mark.book: {unmarked}")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """Build the book exactly as `make book` does (warnings are errors, every chapter
    executed, cached in _build/.jupyter_cache; then the Chinese edition in
    _build/html/zh) and return the HTML folder.

    Built once per test run even with several xdist workers: the first worker to get the
    lock builds, the others wait and reuse its result (two builds writing one _build/ at
    once would corrupt it)."""
    # this run's folder, the same for every xdist worker (each has its own basetemp below
    # it); without xdist the basetemp itself, never a folder other runs share
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    result = shared / "book-build.json"
    with FileLock(str(shared / "book-build.lock")):
        if not result.is_file():
            log = ""
            for cmd in (  # the steps of `make book`: execute in parallel, then build
                [sys.executable, str(ROOT / "scripts" / "execute_book.py")],
                # both editions, side by side, from the same execution cache
                ["make", "--no-print-directory", "pages"],
            ):
                proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
                log += proc.stdout + proc.stderr
                if proc.returncode != 0:
                    break
            (ROOT / "_build").mkdir(exist_ok=True)
            (ROOT / "_build" / "test-build.log").write_text(log)
            result.write_text(json.dumps({"returncode": proc.returncode, "tail": log[-6000:]}))
    outcome = json.loads(result.read_text())
    assert outcome["returncode"] == 0, (
        f"the book build failed (log in _build/test-build.log):\n{outcome['tail']}"
    )
    return ROOT / "_build" / "html"


@pytest.fixture(scope="session")
def book_html(request) -> Path:
    """The built HTML folder: ``built_book`` (the book built once per session, as `make book`
    builds it), or an existing build named by $ATTN_BOOK_HTML."""
    if os.environ.get("ATTN_BOOK_HTML"):
        html = Path(os.environ["ATTN_BOOK_HTML"])
    else:
        html = Path(request.getfixturevalue("built_book"))
    assert (html / "index.html").is_file(), f"no built book in {html}"
    return html


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory):
    """The class of grading_fixtures.write_class (one submission per failure case, checked
    by tests/test_grading_failures.py), graded locally by `attn-course grade`: (course,
    students, process). Here, not in that module, so that the cluster test compares against
    the same run instead of grading it again."""
    from grading_fixtures import GRADE_ARGS, TINY, grade_cmd, make_course, write_class

    course = make_course(tmp_path_factory.mktemp("course") / "course", with_03=True)
    subs, students = write_class(course)
    proc = grade_cmd(course, TINY, subs, "--jobs", "2", *GRADE_ARGS)
    return course, students, proc
