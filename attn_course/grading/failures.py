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
     r"(?P<helper>[^\s,]+).*?which is not written yet", ("what", "name", "helper")),
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

# The same templates in the words of the Chinese catalog (checks.po's translations), the same
# groups: a failure reads the same in a Chinese notebook, its descriptions and inputs read back
# into English (tests/test_grading_languages.py compares a mixed class's signatures).
_CALL_ZH = r"(?:(?P<what>.+?) 无法计算：)?"
_TEMPLATES_ZH = {
    "zh_CN": [
        ("helper not written", _CALL_ZH + r"(?P<name>[^\s：]+?)(?: 经由 .*?)? 调用了 "
         r"(?P<helper>\S+)，而 \S+ 还没有写好", ("what", "name", "helper")),
        ("not written", _CALL_ZH + r"(?P<name>\S+) 还没有写好", ("what", "name")),
        ("raised in a helper", _CALL_ZH + r"(?P<helper>\S+) 中抛出了 (?P<error>\w+)（由 "
         r"(?P<name>[^\s）]+).*?；调用 \S+ 时的参数：(?P<inputs>.+?)。",
         ("what", "error", "helper", "name", "inputs")),
        ("raised", _CALL_ZH + r"(?P<name>\S+) 抛出了 (?P<error>\w+)：.*?；"
         r"调用时的参数：(?P<inputs>.+?)。", ("what", "name", "error", "inputs")),
        ("wrong shape", _WHAT + r" 的形状是 (?P<got>\([^)]*\))，但应当是 "
         r"(?P<expected>\([^)]*\))", ("what", "got", "expected")),
        ("not finite", _WHAT + r" 在索引 .*? 处的值为 (?P<value>[^\s，]+)，", ("what", "value")),
        ("wrong values", _WHAT + r" 在 \d+ 个元素中有 \d+ 个是错的", ("what",)),
        ("returned None", _WHAT + r" 返回了 None", ("what",)),
        ("returned a tuple", _WHAT + r" 返回了一个含 (?P<n>\d+) 项的元组", ("what", "n")),
        ("not an array", _WHAT + r" 返回了 (?P<type>\S+)，它不是由数构成的数组",
         ("what", "type")),
        ("used the library", r"(?P<name>\S+) 使用了 (?P<used>\S+)，也就是", ("name", "used")),
        ("changed its input", r"(?P<name>\S+) 原地修改了它的输入 `(?P<input>[^`]+)`",
         ("name", "input")),
        ("negative entries", _WHAT + r" 含有负的元素", ("what",)),
        ("does not sum to 1", _WHAT + r" 沿轴 (?P<axis>\S+?) 的和应为 1", ("what", "axis")),
    ],
}  # fmt: skip
_COMPILED_ZH = {
    lang: [(kind, re.compile(p, re.DOTALL), keys) for kind, p, keys in templates]
    for lang, templates in _TEMPLATES_ZH.items()
}
# a call's inputs, as the Chinese messages list them ("x 的形状为 (2, 3) 和 y 的类型为 list")
_INPUT_WORDS = [(" 的形状为 ", " of shape "), (" 的类型为 ", " of type "), ("、", ", ")]
_ARGUMENT = re.compile(r"第 (\d+) 个参数")
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
    for lang, compiled in _COMPILED_ZH.items():
        for kind, pattern, keys in compiled:
            m = pattern.match(text)
            if m:
                return (kind, *((k, _in_english(k, m.group(k), lang)) for k in keys))
        back = _in_english("what", text, lang)  # a test cell's own message (an assert's)
        if back == text:  # or one of the grader's notes (a cell that ran too long, ...)
            from attn_course.messages import english

            back = english(text, lang, "checks")
        if back != text:
            return signature(ename, back)
    return (ename, ("message", _NUMBER.sub("#", text)[:200]))


def _in_english(key: str, value: str | None, lang: str) -> str | None:
    """A field of a translated message as the English message has it."""
    from attn_course.messages import english

    if value is None or key not in ("what", "inputs"):
        return value
    if key == "what":
        return english(value, lang)
    parts = value.rsplit(" 和 ", 1)  # "{items} 和 {last}"
    value = " and ".join(parts)
    for words, in_english in _INPUT_WORDS:
        value = value.replace(words, in_english)
    value = _ARGUMENT.sub(r"argument \1", value)
    return "no arguments" if value == "没有参数" else value


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
