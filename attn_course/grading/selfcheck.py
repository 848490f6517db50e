"""``attn-course check NOTEBOOK``: a student's self-check before handing in.

Runs the notebook from top to bottom in a fresh kernel, exactly as the grader
will (nbgrader's ``Execute`` with the same per-cell timeout, a restart if a cell
kills the kernel), then says for every graded part whether its tests passed,
and if not, the test's own message. Only the tests in the notebook run: the
hidden tests of the real grading were removed from the students' copy.

From a separate notebook (save the one you check first)::

    from attn_course.grading.selfcheck import check
    check("03_query_key_value.ipynb")

A check that is itself being run by a check or by the grader (a student who put
the line above into the notebook it checks) refuses in one line instead of
starting the notebook again: the kernels of ``attn-course check`` carry
``ATTN_COURSE_CHECK``, and nbgrader sets ``NBGRADER_EXECUTION`` for the kernels
of ``autograde`` and ``validate`` (``attn-course grade`` does too).

The rule for a test cell is the grader's: it passes when it finishes without an
error. Text on stderr (a warning) does not fail it. Monkeypatching is undone
before each cell by the grader's guard, as in grading.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["check", "check_notebook"]

CHECK_ENV = "ATTN_COURSE_CHECK"  # set for the kernels a check starts

REFUSAL = (
    "check() does nothing here: this notebook is being run by a check or by the grader. "
    "Check it from a terminal (attn-course check NOTEBOOK) or from another notebook."
)


def _nested() -> str | None:
    """Who is running this kernel, if it is a check's or the grader's; None for a student's."""
    if os.environ.get(CHECK_ENV):
        return "attn-course check"
    if os.environ.get("NBGRADER_EXECUTION"):
        return f"nbgrader ({os.environ['NBGRADER_EXECUTION']})"
    return None


def _unanswered(cell) -> bool:
    return "raise NotImplementedError()" in cell.source and "# YOUR CODE HERE" in cell.source


def check_notebook(path: str | Path, timeout: int | None = None, out=None, err=None) -> int:
    """Run ``path`` and print per-part results on ``out``, errors on ``err``. Returns 0 if
    every test cell passed, 1 if some failed, 2 if the file is not a notebook (or the check
    is itself being run by a check or the grader)."""
    import nbformat
    from traitlets.config import Config

    from attn_course.grading.cells import first_error, is_test_cell, part_name
    from attn_course.grading.execute import GradingExecute
    from attn_course.grading.sandbox import Sandbox

    out, err_out = out or sys.stdout, err or sys.stderr
    if _nested() is not None:  # e.g. `!attn-course check` in a notebook being checked
        print(REFUSAL, file=err_out)
        return 2
    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        print(f"attn-course check: error: {path}: no such file", file=err_out)
        return 2
    except Exception as e:  # noqa: BLE001
        print(
            f"attn-course check: error: {path} is not a notebook that can be read "
            f"({type(e).__name__}: {e})",
            file=err_out,
        )
        return 2

    edited, restored = _restore_released_tests(nb, path)
    print(f"Running {path.name} from top to bottom in a fresh kernel ...", file=out, flush=True)
    box = Path(tempfile.mkdtemp(prefix="attn-check-"))
    before = os.environ.get(CHECK_ENV)
    os.environ[CHECK_ENV] = "1"  # the kernel inherits this process's environment
    try:
        # the grader's own per-cell timeout unless one is given
        given = {} if timeout is None else {"GradingExecute": {"timeout": timeout}}
        ex = GradingExecute(config=Config(given))
        ex.sandbox = Sandbox("none")
        ex.box, ex.run_dir, ex.use_guard = box / "box", path.resolve().parent, True
        (box / "box").mkdir()
        executed, _ = ex.preprocess(nb, {"metadata": {"path": str(path.resolve().parent)}})
    finally:
        if before is None:
            os.environ.pop(CHECK_ENV, None)
        else:
            os.environ[CHECK_ENV] = before
        shutil.rmtree(box, ignore_errors=True)

    rows = []
    pending_solutions: list[str] = []
    for index, cell in enumerate(executed.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code" and _unanswered(cell):
            pending_solutions.append(part_name(cell, index))
        if not is_test_cell(cell):
            continue
        reason = first_error(cell)
        if part_name(cell, index) in edited and part_name(cell, index) not in restored:
            reason = (
                "this test cell was edited: grading restores the released test, so this "
                "result would not count (restore the cell from a fresh copy of the notebook)"
            )
        if reason is not None and pending_solutions:
            reason = (
                f"not answered yet ({', '.join(pending_solutions)} still raises "
                "NotImplementedError)"
            )
        pending_solutions = []
        rows.append((part_name(cell, index), float(meta.get("points", 0)), reason))

    if not rows:
        print("This notebook has no graded test cells: nothing to check.", file=out)
        return 0
    width = max(len(r[0]) for r in rows)
    print(file=out)
    for name, points, reason in rows:
        verdict = "passed" if reason is None else f"FAILED  {reason}"
        print(f"  {name:<{width}}  {points:4g} pt  {verdict}", file=out)
    passed = [r for r in rows if r[2] is None]
    got = sum(r[1] for r in passed)
    total = sum(r[1] for r in rows)
    print(file=out)
    print(
        f"{len(passed)} of {len(rows)} test cells pass ({got:g} of {total:g} points on the "
        "tests you can see). Grading also runs hidden tests, so make each function right "
        "in general, not only on these examples.",
        file=out,
    )
    for name in restored:
        print(
            f"Note: {name} was edited; the check ran the released test instead, as grading "
            "will (it restores every test cell).",
            file=out,
        )
    for kind, cells in (("timed out", ex.report.timeouts), ("killed the kernel", ex.report.deaths)):
        for i in cells:
            print(f"Note: {part_name(executed.cells[i], i)} {kind}.", file=out)
    report = ex.report
    if report.undone:
        print(
            "Note: the notebook changes library functions the tests rely on ("
            + ", ".join(report.undone[:4])
            + "); the check undid that before each cell, and grading flags it for review.",
            file=out,
        )
    if not report.guard_ok:
        print(f"Note: grading would withhold the score: {report.guard_problem}.", file=out)
        return 1
    return 0 if len(passed) == len(rows) else 1


def _restore_released_tests(nb, path: Path) -> tuple[list[str], list[str]]:
    """(the test cells a student edited, those put back from the released notebook). A
    released test cell carries nbgrader's checksum of itself; the released notebook is looked
    for as ``exercises/<name>/<name>.ipynb`` in the folders above ``path`` (a clone of the
    course)."""
    import nbformat
    from nbgrader.utils import compute_checksum

    from attn_course.grading.cells import is_test_cell, part_name

    edited = [
        part_name(c, i)
        for i, c in enumerate(nb.cells)
        if is_test_cell(c)
        and c.metadata["nbgrader"].get("checksum")
        and compute_checksum(c) != c.metadata["nbgrader"]["checksum"]
    ]
    if not edited:
        return [], []
    released = None
    for folder in path.resolve().parents:
        candidate = folder / "exercises" / path.stem / f"{path.stem}.ipynb"
        if candidate.is_file() and candidate.resolve() != path.resolve():
            released = nbformat.read(candidate, as_version=4)
            break
    sources = {part_name(c, i): c for i, c in enumerate(released.cells)} if released else {}
    restored = []
    for i, cell in enumerate(nb.cells):
        name = part_name(cell, i)
        if name in edited and name in sources:
            cell.source = sources[name].source
            restored.append(name)
    return edited, restored


def check(path: str | Path, timeout: int | None = None) -> None:
    """The self-check from a notebook: prints the results (the same as ``attn-course check``)
    and returns nothing, so the notebook shows no stray ``Out:`` line below them.

    Run by a check or by the grader, it prints one line instead: checking would start the
    notebook again, and again (each run starts another kernel)."""
    if _nested() is not None:
        print(REFUSAL)
        return
    check_notebook(path, timeout=timeout)
