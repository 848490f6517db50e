"""What went wrong in a test cell, read from an autograded notebook: the failure's structure
and whether it failed in the hidden tests.

The messages of :mod:`attn_course.checks` are built from templates (the check's ``what``,
the call, its input shapes, the expected and returned shapes, the hint). :func:`signature`
undoes the template: two failures with the same structure (the same check, the same kind of
mistake, the same shapes) get the same signature, whatever the numbers in them. A message
from elsewhere (``NameError``, a timeout) is grouped by its error name and its text with the
numbers masked.

A test cell runs top to bottom and stops at its first failure; nbgrader keeps the hidden
tests between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` in the autograded
copy. A failure on a line inside that block means every public check above it passed:
:func:`failed_line` finds that line in the traceback.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from attn_course.grading.cells import ANSI

__all__ = ["Failure", "cell_failure", "failed_line", "hidden_lines", "signature"]

_WHAT = r"(?P<what>.+?)"
_CALL = r"(?:(?P<what>.+?) could not be computed: )?"  # run() outside a check: no head
# (kind, pattern over the message, the groups that make its structure); first match wins
_TEMPLATES = [
    ("helper not written", _CALL + r"(?P<name>\S+) calls "
     r"(?P<helper>\S+).*?which is not written yet", ("what", "name", "helper")),
    ("not written", _CALL + r"(?P<name>\S+) is not written yet",
     ("what", "name")),
    ("raised in a helper", _CALL + r"(?P<error>\w+) raised in "
     r"(?P<helper>\S+) \(called by (?P<name>[^\s)]+).*?; \S+ was called with "
     r"(?P<inputs>.+?)\.(?: |$)",
     ("what", "error", "helper", "name", "inputs")),
    ("raised", _CALL + r"(?P<name>\S+) raised (?P<error>\w+):.*?; "
     r"it was called with (?P<inputs>.+?)\.(?: |$)", ("what", "name", "error", "inputs")),
    ("wrong shape", _WHAT + r" has shape (?P<got>\([^)]*\)), but it should have shape "
     r"(?P<expected>\([^)]*\))", ("what", "got", "expected")),
    ("not finite", _WHAT + r" contains (?P<value>\S+) at index", ("what", "value")),
    ("wrong values", _WHAT + r" is wrong at \d+ of \d+ entries", ("what",)),
    ("returned None", _WHAT + r" returned None", ("what",)),
    ("returned a tuple", _WHAT + r" returned a tuple of (?P<n>\d+) items", ("what", "n")),
    ("not an array", _WHAT + r" returned a (?P<type>\S+), which is not an array",
     ("what", "type")),
    ("used the library", r"(?P<name>\S+) uses (?P<used>\S+), the ready-made version",
     ("name", "used")),
    ("changed its input", r"(?P<name>\S+) changed its input `(?P<input>[^`]+)` in place",
     ("name", "input")),
    ("negative entries", _WHAT + r" has negative entries", ("what",)),
    ("does not sum to 1", _WHAT + r" should sum to 1 along axis (?P<axis>\S+?),", ("what", "axis")),
]  # fmt: skip
_COMPILED = [(kind, re.compile(p, re.DOTALL), keys) for kind, p, keys in _TEMPLATES]
_NUMBER = re.compile(r"(?<![\w.])-?\d+(\.\d+)?(e-?\d+)?")


def signature(ename: str, evalue: str) -> tuple:
    """The structure of one failure: ``(kind, (field, value), ...)``.

    >>> signature("AssertionError", "w has shape (2,), but it should have shape (3,). hint")
    ('wrong shape', ('what', 'w'), ('got', '(2,)'), ('expected', '(3,)'))
    >>> signature("NameError", "name 'add' is not defined")
    ('NameError', ('message', "name 'add' is not defined"))
    """
    text = " ".join(ANSI.sub("", evalue).split())
    for kind, pattern, keys in _COMPILED:
        m = pattern.match(text)
        if m:
            return (kind, *((k, m.group(k)) for k in keys))
    return (ename, ("message", _NUMBER.sub("#", text)[:200]))


def hidden_lines(source: str) -> set[int]:
    """1-based numbers of the lines of a test cell inside its hidden-tests block(s)."""
    out, inside = set(), False
    for number, line in enumerate(source.splitlines(), 1):
        if "### BEGIN HIDDEN TESTS" in line:
            inside = True
        elif "### END HIDDEN TESTS" in line:
            inside = False
        elif inside:
            out.add(number)
    return out


def failed_line(output: dict, execution_count) -> int | None:
    """The line of the test cell (``Cell In[execution_count]``) where the error was raised,
    from the error output's traceback; None if the traceback has no frame of that cell (a
    timeout, a dead kernel)."""
    if execution_count is None:
        return None
    frame = re.compile(rf"Cell In\[{int(execution_count)}\], line (\d+)")
    for entry in output.get("traceback", []):
        m = frame.search(ANSI.sub("", entry))
        if m:
            return int(m.group(1))
    return None


class Failure(NamedTuple):
    """How one test cell failed."""

    signature: tuple  # :func:`signature`
    message: str  # the error in one line
    hidden: bool  # raised on a line of the hidden tests


def cell_failure(cell: dict) -> Failure | None:
    """How a test cell of an autograded notebook failed, or None if it has no error."""
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else source
    for output in cell.get("outputs", []):
        if output.get("output_type") != "error":
            continue
        ename, evalue = str(output.get("ename", "Error")), str(output.get("evalue", ""))
        line = failed_line(output, cell.get("execution_count"))
        hidden = line is not None and line in hidden_lines(source)
        message = " ".join(ANSI.sub("", f"{ename}: {evalue}" if evalue else ename).split())
        return Failure(signature(ename, evalue), message, hidden)
    return None
