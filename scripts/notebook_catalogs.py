"""The gettext catalogs of the assignments and of the checks' messages.

    python scripts/notebook_catalogs.py update   # extract, merge into locales/ (make translations)
    python scripts/notebook_catalogs.py compile  # .po -> the package's .mo (make exercises)

Two kinds of catalog, in ``locales/<lang>/LC_MESSAGES/``:

- ``exercises/<assignment>.po``, one per assignment, extracted from ``solutions/``: every
  paragraph of its locked markdown cells, and the words of its test cells (hidden tests
  included): each check's description and ``hint``, f-strings with their ``{...}`` kept,
  the strings a hint is built from, and assertion messages;
- ``checks.po``: the messages of the package itself, marked ``_("...")`` or ``N_("...")``
  in :data:`PACKAGE_SOURCES` (the checks, ``attn-course check``, the feedback's words).

Compiled, they are package data (``attn_course/locale/<lang>/LC_MESSAGES/``), read at run
time by :mod:`attn_course.messages` with Python's gettext: a student's install has no
babel. ``tests/test_notebook_translations.py`` fails when a catalog lacks a message of the
source, holds one that is empty or fuzzy, or when a compiled file differs from its catalog.
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
from pathlib import Path

import nbformat
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attn_course.grading.languages import markdown_blocks, needs_translation  # noqa: E402
from attn_course.messages import LANGUAGES, LOCALE_DIR  # noqa: E402

SOURCE = ROOT / "solutions"
LOCALES = ROOT / "locales"
TRANSLATED = LANGUAGES[1:]
PACKAGE_SOURCES = [
    "attn_course/checks.py",
    "attn_course/tracebacks.py",
    "attn_course/grading/selfcheck.py",
    "attn_course/grading/feedback.py",
    "attn_course/grading/notes.py",
]
CHECK_CALLS = {"check_array", "check_shape", "check_rows_sum_to_one", "to_numpy"}


# --- extraction ---------------------------------------------------------------------------


def _parts(node, strings: dict[str, ast.expr]) -> list[str]:
    """The msgids an expression of a test cell is made of: string constants, f-strings (their
    ``{...}`` as written), the names of strings, joined with ``+``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if node.value.strip() else []
    if isinstance(node, ast.JoinedStr):
        out = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                out.append(v.value)
            else:
                out.append("{" + ast.unparse(v.value) + "}")
        return ["".join(out)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _parts(node.left, strings) + _parts(node.right, strings)
    if isinstance(node, ast.Name) and node.id in strings:
        return _parts(strings[node.id], strings)
    return []


def _func_name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def test_cell_messages(source: str) -> list[str]:
    """The words of one test cell, in order."""
    tree = ast.parse(source)
    strings = {
        t.id: node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Constant, ast.JoinedStr))
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        exprs = []
        if isinstance(node, ast.Call) and _func_name(node) in CHECK_CALLS:
            index = 1 if _func_name(node) == "to_numpy" else 0
            exprs += node.args[index : index + 1]
            exprs += [k.value for k in node.keywords if k.arg in ("hint", "what")]
        elif isinstance(node, ast.Assert) and node.msg is not None:
            exprs.append(node.msg)
        elif (
            isinstance(node, ast.Raise)
            and isinstance(node.exc, ast.Call)
            and _func_name(node.exc) == "AssertionError"
        ):
            exprs += node.exc.args[:1]
        for e in exprs:
            found += _parts(e, strings)
    return [m for m in found if m.strip()]


def exercise_template(assignment: str, source: Path = SOURCE) -> Catalog:
    """The messages of one assignment, from its instructor notebook."""
    path = source / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(path, as_version=4)
    rel = path.relative_to(source.parent).as_posix() if source == SOURCE else path.name
    template = Catalog(project=f"attn-course {assignment}", fuzzy=False)
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id", f"cell-{index}")
        if cell.cell_type == "markdown" and meta.get("locked"):
            messages = [b for b in markdown_blocks(cell.source) if needs_translation(b)]
            comment = f"markdown cell {grade_id}"
        elif cell.cell_type == "code" and meta.get("grade"):
            messages = test_cell_messages(cell.source)
            comment = f"test cell {grade_id}"
        else:
            continue
        for msgid in messages:
            known = template.get(msgid)
            if known is None:
                template.add(msgid, locations=[(rel, index)], auto_comments=[comment])
            elif comment not in known.auto_comments:
                known.auto_comments.append(comment)
    return template


def package_template() -> Catalog:
    """The messages marked ``_(...)``/``N_(...)`` in the package's modules."""
    template = Catalog(project="attn-course checks", fuzzy=False)
    for rel in PACKAGE_SOURCES:
        tree = ast.parse((ROOT / rel).read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("_", "N_")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                msgid = node.args[0].value
                known = template.get(msgid)
                if known is None:
                    template.add(msgid, locations=[(rel, node.lineno)])
                else:
                    known.locations.append((rel, node.lineno))
    return template


def templates(source: Path = SOURCE) -> dict[str, Catalog]:
    """Catalog path (below ``LC_MESSAGES/``) -> its template."""
    out = {"checks.po": package_template()}
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        if (folder / f"{folder.name}.ipynb").is_file():
            out[f"exercises/{folder.name}.po"] = exercise_template(folder.name, source)
    return out


# --- catalogs -----------------------------------------------------------------------------


def read(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f)


def merged(template: Catalog, path: Path, language: str) -> Catalog:
    """The catalog at ``path`` brought up to ``template``: new messages empty, removed ones
    gone, no guessing (no fuzzy matching: a changed message is a new one)."""
    if path.is_file():
        catalog = read(path)
    else:
        catalog = Catalog(locale=language, project=template.project, fuzzy=False)
    created = catalog.creation_date  # kept: the file changes only when a message does
    catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
    catalog.creation_date = created
    catalog.header_comment = (
        f"# {language} messages of {template.project}: "
        f"`make translations` extracts them ({Path(__file__).name}), "
        "`make exercises` compiles them into the package."
    )
    catalog.obsolete.clear()
    return catalog


def po_bytes(catalog: Catalog) -> bytes:
    buf = io.BytesIO()
    write_po(buf, catalog, width=100, sort_output=False, ignore_obsolete=True)
    return buf.getvalue()


def mo_bytes(catalog: Catalog) -> bytes:
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    return buf.getvalue()


def compiled_path(language: str, rel: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / Path(rel).with_suffix(".mo")


def update(languages=TRANSLATED) -> list[Path]:
    written = []
    for language in languages:
        for rel, template in templates().items():
            path = LOCALES / language / "LC_MESSAGES" / rel
            data = po_bytes(merged(template, path, language))
            if not path.is_file() or path.read_bytes() != data:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                written.append(path)
    return written


def compile_all(languages=TRANSLATED) -> list[Path]:
    """Every catalog of ``languages`` compiled into the package; stale compiled files go."""
    written = []
    for language in languages:
        folder = LOCALES / language / "LC_MESSAGES"
        wanted = set()
        for rel in [
            "checks.po",
            *sorted(p.relative_to(folder).as_posix() for p in (folder / "exercises").glob("*.po")),
        ]:
            target = compiled_path(language, rel)
            wanted.add(target)
            data = mo_bytes(read(folder / rel))
            if not target.is_file() or target.read_bytes() != data:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                written.append(target)
        for stale in (LOCALE_DIR / language / "LC_MESSAGES").rglob("*.mo"):
            if stale not in wanted:
                stale.unlink()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["update", "compile"])
    args = parser.parse_args(argv)
    paths = update() if args.command == "update" else compile_all()
    for path in paths:
        print(f"written: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
