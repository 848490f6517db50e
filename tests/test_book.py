"""The book builds as `make book` builds it: warnings are errors, every chapter executed.

The pages are then checked as files; tests/test_browser.py opens them in a real browser."""

import re
from pathlib import Path

import pytest
from book_toc import toc_entries  # the TOC as scripts/execute_book.py reads it

ROOT = Path(__file__).resolve().parent.parent

CHAPTERS = [doc for doc, _ in toc_entries() if re.match(r"book/0\d_", doc)]


def test_the_toc_lists_five_chapters_in_order():
    assert [Path(f).name[:2] for f in CHAPTERS] == ["01", "02", "03", "04", "05"]


def test_chapters_execute_longest_first():
    from execute_book import notebooks

    names = [p.stem for p in notebooks()]
    # Chapter 5 trains the six models of its comparison; Chapters 2 and 1 train their
    # length experiments: with two workers, the longest first finish together
    assert names[:3] == ["05_transformer", "02_attention", "01_encoder_decoder"]
    assert set(names) >= {Path(f).name for f in CHAPTERS}
    assert "notation" not in names  # a page without code is not a notebook


@pytest.mark.book
def test_the_build_itself_executes_nothing(built_book):
    # make book's first step executed every chapter into the cache; the build only reads it
    log = (ROOT / "_build" / "test-build.log").read_text()
    assert "Executing notebook using" not in log, "the build executed a chapter itself"
    # a fresh build reads every chapter from the cache; a rebuild with nothing changed
    # (a local `make test` after `make book`) reads none
    assert "Using cached notebook" in log or "no targets are out of date" in log, log[-2000:]


def test_chapter_sources_carry_no_outputs():
    # MyST Markdown notebooks cannot store outputs; make sure nobody committed .ipynb chapters.
    assert not list((ROOT / "book").glob("*.ipynb"))


@pytest.mark.book
def test_every_toc_page_is_built(built_book):
    missing = [doc for doc, _ in toc_entries() if not (built_book / f"{doc}.html").is_file()]
    assert not missing, f"pages missing from the build: {missing}"


@pytest.mark.book
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_was_executed_without_stderr(built_book, chapter):
    html = (built_book / f"{chapter}.html").read_text()
    assert "PLACEHOLDER" not in html, f"{chapter} is still a placeholder"
    assert html.count("cell_output") >= 3, f"{chapter} shows almost no executed output"
    # stderr in a chapter is a warning or a progress bar leaking into the page
    assert 'class="output stderr"' not in html, f"{chapter} printed to stderr while executing"
    assert "Traceback" not in html, f"{chapter} shows a traceback"


@pytest.mark.book
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_has_figures_and_math(built_book, chapter):
    html = (built_book / f"{chapter}.html").read_text()
    images = re.findall(r'<img [^>]*src="([^"]+)"', html)
    figures = [src for src in images if "_images/" in src]
    assert len(figures) >= 2, f"{chapter} has {len(figures)} figures"
    for src in figures:
        assert (built_book / chapter).parent.joinpath(src).resolve().is_file(), src
    assert "math notranslate" in html, f"{chapter} has no displayed math"
