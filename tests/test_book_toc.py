"""``scripts/book_toc.py``: the pages of ``_toc.yml`` in reading order, and which are numbered.

The reader serves both ``scripts/execute_book.py`` (which chapters to execute) and the book
tests (which pages to open). Hand-written TOCs in jupyter-book 1.x's format, with the answers
worked out by hand, and the reading order compared with sphinx-external-toc's own parser
(what jupyter-book reads the TOC with).
"""

import re

import pytest
from book_toc import TOC, toc_entries
from sphinx_external_toc.api import FileItem
from sphinx_external_toc.parsing import parse_toc_yaml

# Parts, numbering to one level, nested sections, several subtrees under one chapter, a link.
PARTS = """\
format: jb-book
root: intro.md
parts:
  - caption: Front
    chapters:
      - file: preface
        sections:
          - file: preface/thanks
  - caption: Body
    numbered: 1
    chapters:
      - file: ch1.ipynb
        sections:
          - file: ch1/s1
            sections:
              - file: ch1/s1/deep
      - file: ch2
        subtrees:
          - caption: Exercises
            numbered: true
            sections:
              - file: ch2/ex1
          - caption: Links
            sections:
              - url: https://example.org
                title: elsewhere
              - file: ch2/notes
  - caption: Back
    numbered: true
    chapters:
      - file: appendix
        sections:
          - file: appendix/a1
            sections:
              - file: appendix/a1/x
"""

# No parts: the chapters' options under `options`, every other toctree's under `defaults`.
CHAPTERS = """\
format: jb-book
root: index
defaults:
  numbered: true
options:
  numbered: false
chapters:
  - file: one
    sections:
      - file: one/a
  - file: two
"""


def write(tmp_path, text: str):
    path = tmp_path / "_toc.yml"
    path.write_text(text)
    return path


def test_toc_is_read_in_reading_order(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: book/index\nparts:\n"
        "  - caption: A\n    chapters:\n      - file: book/a.md\n"
        "  - caption: B\n    numbered: true\n    chapters:\n"
        "      - file: book/b\n        sections:\n          - file: book/b1\n"
    )
    assert toc_entries(toc) == [
        ("book/index", False),
        ("book/a", False),
        ("book/b", True),
        ("book/b1", True),
    ]


def test_sections_at_any_depth_and_numbering_depths(tmp_path):
    assert toc_entries(write(tmp_path, PARTS)) == [
        ("intro", False),
        ("preface", False),
        ("preface/thanks", False),
        ("ch1", True),  # `numbered: 1` numbers the chapters of its part...
        ("ch1/s1", False),  # ... and nothing below them
        ("ch1/s1/deep", False),
        ("ch2", True),
        ("ch2/ex1", True),  # its own subtree is numbered
        ("ch2/notes", False),  # the link before it is not a page
        ("appendix", True),  # `numbered: true`: every level below
        ("appendix/a1", True),
        ("appendix/a1/x", True),
    ]


def test_options_number_the_chapters_and_defaults_the_rest(tmp_path):
    assert toc_entries(write(tmp_path, CHAPTERS)) == [
        ("index", False),
        ("one", False),
        ("one/a", True),
        ("two", False),
    ]


def sphinx_reading_order(path) -> list[str]:
    """The pages in the order of sphinx-external-toc's site map, extensions dropped."""
    site_map = parse_toc_yaml(path)

    def walk(doc: str):
        yield re.sub(r"\.(md|ipynb)$", "", doc)
        for tree in site_map[doc].subtrees:
            for item in tree.items:
                if isinstance(item, FileItem):
                    yield from walk(item)

    return list(walk(site_map.root.docname))


@pytest.mark.parametrize("toc", ["PARTS", "CHAPTERS", "the book's"])
def test_reading_order_is_sphinx_external_tocs(tmp_path, toc):
    path = TOC if toc == "the book's" else write(tmp_path, globals()[toc])
    assert [entry.doc for entry in toc_entries(path)] == sphinx_reading_order(path)


def test_a_glob_entry_is_refused_not_skipped(tmp_path):
    toc = write(tmp_path, "format: jb-book\nroot: index\nchapters:\n  - glob: notes/*\n")
    with pytest.raises(ValueError, match=r"glob entries are not read: 'notes/\*'"):
        toc_entries(toc)


def test_the_books_toc(root):
    entries = toc_entries()
    missing = [e.doc for e in entries if not (root / f"{e.doc}.md").is_file()]
    assert not missing, f"pages of _toc.yml without a source: {missing}"
    numbered = [e.doc for e in entries if e.numbered]
    assert [re.sub(r"book/(\d\d)_.*", r"\1", doc) for doc in numbered] == [
        "01",
        "02",
        "03",
        "04",
        "05",
    ], numbered
