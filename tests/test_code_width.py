"""Code in the book fits its column: every code line a reader sees is at most 80 characters.

The book's text column cuts longer lines off (or makes the reader scroll sideways). This reads
the sources only, without building the book: the chapters' shown code cells and fenced code
blocks, and the library functions they ``literalinclude``. Hidden cells (``remove-cell``,
``remove-input``) are not shown, so they may be longer; the package's own limit stays ruff's 100.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
WIDTH = 80
HIDDEN = ("remove-cell", "remove-input")
FENCE = re.compile(r"^(`{3,}|~{3,})\s*(\{(?P<directive>[\w:-]+)\})?\s*(?P<arg>.*)$")


def _blocks(path: Path):
    """(kind, argument, options, [(line number, text)]) for every fenced block of a page."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, kind, arg = m.group(1), m.group("directive") or "code", m.group("arg").strip()
        i += 1
        options, body = [], []
        if i < len(lines) and lines[i].strip() == "---":  # a YAML option block
            i += 1
            while i < len(lines) and lines[i].strip() != "---":
                options.append(lines[i])
                i += 1
            i += 1
        while i < len(lines) and lines[i].startswith(":") and not body:
            options.append(lines[i])
            i += 1
        while i < len(lines) and lines[i].rstrip() != fence:
            body.append((i + 1, lines[i]))
            i += 1
        i += 1
        yield kind, arg, "\n".join(options), body


def _pyobject_lines(source: Path, name: str) -> range:
    """The line numbers (1-based) of a function or method ``name`` (``Class.method``) in source."""
    scope: ast.AST = ast.parse(source.read_text(encoding="utf-8"))
    for part in name.split("."):
        (scope,) = [
            node
            for node in ast.iter_child_nodes(scope)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name == part
        ]
    first = min([scope.lineno] + [d.lineno for d in scope.decorator_list])
    return range(first, scope.end_lineno + 1)


def shown_code_lines(page: Path):
    """(place, text) for every code line the built page shows, place being ``file:line``."""
    for kind, arg, options, body in _blocks(page):
        if kind == "code-cell" and any(tag in options for tag in HIDDEN):
            continue
        if kind in ("code-cell", "code"):
            for number, text in body:
                yield f"{page.relative_to(ROOT)}:{number}", text
        elif kind == "literalinclude":
            source = (page.parent / arg).resolve()
            match = re.search(r"^:pyobject:\s*(\S+)", options, re.M)
            text = source.read_text(encoding="utf-8").splitlines()
            numbers = _pyobject_lines(source, match.group(1)) if match else range(1, len(text) + 1)
            for number in numbers:
                yield f"{source.relative_to(ROOT)}:{number}", text[number - 1]


def test_the_scan_sees_shown_code_and_skips_hidden_cells(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```{code-cell} ipython3\nshown = 1\n```\n\n"
        "```{code-cell} ipython3\n:tags: [remove-cell]\nhidden = 2\n```\n\n"
        "```{code-cell} ipython3\n---\nmystnb:\n  image:\n    alt: x\n---\nfigure = 3\n```\n\n"
        "```python\nfenced = 4\n```\n",
        encoding="utf-8",
    )
    bodies = [(kind, [t for _, t in body]) for kind, _, _, body in _blocks(page)]
    assert bodies == [
        ("code-cell", ["shown = 1"]),
        ("code-cell", ["hidden = 2"]),
        ("code-cell", ["figure = 3"]),
        ("code", ["fenced = 4"]),
    ]
    options = [options for _, _, options, _ in _blocks(page)]
    assert "remove-cell" in options[1] and "mystnb" in options[2]


def test_pyobject_lines_cover_a_method_and_its_decorators(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "class A:\n    x = 1\n\n    @staticmethod\n    def f():\n        return 1\n\n\n"
        "def g():\n    pass\n",
        encoding="utf-8",
    )
    assert list(_pyobject_lines(source, "A.f")) == [4, 5, 6]
    assert list(_pyobject_lines(source, "g")) == [9, 10]


def test_the_book_shows_code():
    places = {
        place.split(":")[0] for page in BOOK.glob("*.md") for place, _ in shown_code_lines(page)
    }
    assert any(p.startswith("book/") for p in places)
    assert any(p.startswith("attn_course/") for p in places), "no literalincluded code found"


@pytest.mark.parametrize("page", sorted(p.name for p in BOOK.glob("*.md")))
def test_every_shown_code_line_fits_the_column(page):
    too_long = [
        f"{place}: {len(text)} columns: {text.strip()[:60]}"
        for place, text in shown_code_lines(BOOK / page)
        if len(text) > WIDTH
    ]
    assert not too_long, f"code lines longer than {WIDTH} columns:\n" + "\n".join(too_long)
