"""What the grader reads in a notebook cell: one definition each.

- :func:`is_test_cell`: a cell of autograder tests (nbgrader's "grade" without "solution");
- :func:`part_name`: how a graded cell is named to people (its ``grade_id``);
- :func:`error_line`: an error output in one line, as students and instructors read it;
- :func:`checksum`: nbgrader's checksum of a cell, which tells an edited test cell.

The execution, the feedback, the self-check and the summaries all use these, so a cell
counts as a test, and a failure reads, the same everywhere.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["checksum", "error_line", "first_error", "grade_ids", "is_test_cell", "part_name"]

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _nbgrader(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def is_test_cell(cell) -> bool:
    """A code cell of autograder tests: graded and not a solution (nbgrader locks these).

    nbgrader's ``utils.is_grade``/``is_solution`` say the same of well-formed metadata; the
    self-check reads a student's notebook before any repair, where ``nbgrader`` may be any
    JSON value, so this reads it defensively."""
    meta = _nbgrader(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def grade_ids(cells) -> set[str]:
    """The ``grade_id`` of every graded or locked cell among ``cells`` (notebook cells, or
    the plain dicts of a notebook's JSON): what tells one assignment's notebook from
    another's."""
    ids = set()
    for cell in cells:
        grade_id = _nbgrader(cell).get("grade_id")
        if isinstance(grade_id, str):
            ids.add(grade_id)
    return ids


def part_name(cell, index: int) -> str:
    """The cell's ``grade_id``, or ``cell N`` (1-based) for a cell nbgrader does not know."""
    return _nbgrader(cell).get("grade_id") or f"cell {index + 1}"


def error_line(output) -> str:
    """``Name: message`` of an error output, colours removed, on one line."""
    text = " ".join(ANSI.sub("", str(output.get("evalue", ""))).split())
    name = output.get("ename", "Error")
    return f"{name}: {text}" if text else name


def first_error(cell) -> str | None:
    """The cell's first error in one line (:func:`error_line`); None if it has none."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return error_line(output)
    return None


def checksum(cell) -> str:
    """nbgrader's checksum of a graded or locked cell (``nbgrader.utils.compute_checksum``),
    computed here because the students' ``attn-course check`` runs without nbgrader (listed
    in ``upstream.DEPENDENCIES``; ``tests/test_grading_rules.py`` compares the two)."""
    meta = cell.metadata["nbgrader"]
    grade, solution = meta.get("grade", False), meta.get("solution", False)
    locked = False if solution else (True if grade else meta.get("locked", False))
    m = hashlib.md5()  # noqa: S324  (nbgrader's choice: a fingerprint, not a secret)
    for part in (cell.source, cell.cell_type, str(grade), str(solution), str(locked)):
        m.update(part.encode("utf-8"))
    m.update(meta["grade_id"].encode("utf-8"))
    if grade:
        m.update(str(float(meta["points"])).encode("utf-8"))
    return m.hexdigest()
