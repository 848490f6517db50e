"""No graded test cell ends in a value: nbgrader reads a numeric last output as partial credit.

A test cell whose last statement is an expression such as ``run_unchanged(f, x)`` displays
its value; when that value is a number, nbgrader takes it as the cell's score (and refuses
the notebook if it exceeds the cell's points). Reads the instructor notebooks only.
"""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "solutions").glob("*/*.ipynb"))
MARKERS = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$", re.M)
# calls whose value is None: they check or print, they never score
SILENT = {"print", "check_array", "check_shape", "check_rows_sum_to_one"}


def graded_test_cells(notebook: Path):
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and meta.get("grade"):
            yield meta["grade_id"], MARKERS.sub("", "".join(cell["source"]))


def shows_a_value(source: str) -> bool:
    """Whether the cell's last top-level statement is an expression with a value."""
    body = ast.parse(source).body
    if not body or not isinstance(body[-1], ast.Expr):
        return False
    value = body[-1].value
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        return value.func.id not in SILENT
    return not isinstance(value, ast.Constant)  # a bare string is a comment


def test_the_rule_sees_a_trailing_value():
    assert shows_a_value("x = 1\nrun_unchanged(f, x)")
    assert shows_a_value("x + 1")
    assert not shows_a_value("_ = run_unchanged(f, x)")
    assert not shows_a_value('check_array("x", x, 1)\nprint("ok")')
    assert not shows_a_value("for i in range(3):\n    f(i)")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_no_test_cell_ends_in_a_value(notebook):
    cells = list(graded_test_cells(notebook))
    assert cells, f"no graded test cells in {notebook}"
    showing = [grade_id for grade_id, source in cells if shows_a_value(source)]
    assert not showing, (
        f"{notebook.relative_to(ROOT)}: these test cells end in an expression whose value "
        f"nbgrader may read as partial credit; assign it (`_ = ...`): {showing}"
    )
