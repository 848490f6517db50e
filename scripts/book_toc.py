"""The book's pages in reading order, read from ``_toc.yml`` (jupyter-book 1.x's format).

One reader for ``scripts/execute_book.py`` (which chapters to execute) and the tests (which
pages to check, which are numbered). It follows sphinx-external-toc's ``jb-book`` format:

- the ``root`` page, then the top level's ``parts`` (each a list of ``chapters``) or, without
  parts, a single ``chapters`` list whose toctree options sit under ``options``;
- below a chapter, at any depth, ``sections`` (one toctree, options under ``options``) or
  ``subtrees`` (several, each with its own ``sections`` and options);
- ``numbered`` is ``true`` (every level below), an integer (that many levels) or ``false``;
  a toctree without it takes the top-level ``defaults``. Sphinx numbers the nested toctrees
  of a numbered one too, down to its depth, so a section of a numbered chapter is numbered;
- ``url`` entries are links, not pages; ``glob`` entries are refused (they would need Sphinx
  to list the matching documents).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
TOC = ROOT / "_toc.yml"
_ALL_LEVELS = 999  # what sphinx-external-toc passes to Sphinx for `numbered: true`


class TocEntry(NamedTuple):
    doc: str  # the docname: the path from the book's folder, without the extension
    numbered: bool  # whether Sphinx gives the page a number


def toc_entries(toc_path: Path = TOC) -> list[TocEntry]:
    """Every page of the TOC, in reading order."""
    toc = yaml.safe_load(Path(toc_path).read_text(encoding="utf-8"))
    if toc.get("format") != "jb-book":
        raise ValueError(f"{toc_path}: expected `format: jb-book`, found {toc.get('format')!r}")
    defaults = toc.get("defaults", {})
    entries = [TocEntry(_docname(toc["root"]), False)]

    def walk(item: dict, depth: int, levels: int) -> None:
        """The pages below ``item``; ``levels``: how many more levels its ancestors number."""
        trees_key, items_key = ("parts", "chapters") if depth == 0 else ("subtrees", "sections")
        if items_key in item:  # the shorthand for a single toctree
            trees = [{items_key: item[items_key], **item.get("options", {})}]
        else:
            trees = item.get(trees_key, [])
        for tree in trees:
            numbered = _levels(tree.get("numbered", defaults.get("numbered", False)))
            below = max(levels, numbered)
            for child in tree[items_key]:
                if "glob" in child:
                    raise ValueError(f"{toc_path}: glob entries are not read: {child['glob']!r}")
                if "file" in child:
                    entries.append(TocEntry(_docname(child["file"]), below > 0))
                    walk(child, depth + 1, below - 1)

    walk(toc, 0, 0)
    return entries


def _levels(numbered: bool | int) -> int:
    if isinstance(numbered, bool):  # before int: True == 1
        return _ALL_LEVELS if numbered else 0
    return int(numbered)


def _docname(file: str) -> str:
    return re.sub(r"\.(md|ipynb|rst)$", "", file)
