"""``attn-course check NOTEBOOK``: a student's self-check before handing in.

Runs the notebook from top to bottom in a fresh kernel, as the grader will
(the grader's per-cell timeout and guard, a restart if a cell kills the kernel),
then says for every graded part whether its tests passed, and if not, the test's
own message. Only the tests in the notebook run: the hidden tests of the real
grading were removed from the students' copy.

It runs on what Jupyter itself installs (nbclient, jupyter_client, nbformat), not
on nbgrader: the students' install has this command and no grader. The kernel is
the grader's :class:`~attn_course.grading.kernels.SandboxKernelManager` without a
box (the student's own kernel, in the notebook's folder), with the guard.

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

import contextlib
import copy
import os
import shutil
import sys
import tempfile
from pathlib import Path

from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode

from attn_course.grading.kernels import SandboxKernelManager, guard_question, guard_verdict
from attn_course.grading.languages import notebook_language
from attn_course.grading.notes import GAVE_UP
from attn_course.grading.sandbox import DEFAULTS, Limits, Sandbox, parse_memory
from attn_course.messages import ENV as LANGUAGE_ENV
from attn_course.messages import gettext_ as _

__all__ = ["CheckRun", "check", "check_notebook", "run_notebook"]

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


@contextlib.contextmanager
def _environment(name: str, value: str | None):
    """``name`` set to ``value`` in this process (and the kernels it starts) for a while."""
    before = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def check_notebook(path: str | Path, timeout: int | None = None, out=None, err=None) -> int:
    """Run ``path`` and print per-part results on ``out``, errors on ``err``. Returns 0 if
    every test cell passed, 1 if some failed, 2 if the file is not a notebook (or the check
    is itself being run by a check or the grader). The check speaks the notebook's language
    (``metadata.attn_course.language``), and so do the tests' messages in its kernel."""
    import nbformat

    out, err_out = out or sys.stdout, err or sys.stderr
    timeout = DEFAULTS["timeout"] if timeout is None else timeout
    if timeout < 1:  # nbclient would read 0 as "no limit"; the grader never runs unbounded
        raise ValueError(f"the per-cell timeout must be at least 1 second, not {timeout}")
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

    try:
        language = notebook_language(nb)
    except ValueError as e:
        print(f"attn-course check: error: {path}: {e}", file=err_out)
        return 2
    # the kernel inherits this process's environment: the check's mark and the language
    with _environment(CHECK_ENV, "1"), _environment(LANGUAGE_ENV, language):
        return _check(nb, path, timeout, out)


def _check(nb, path: Path, timeout: int, out) -> int:
    from attn_course.grading.cells import first_error, is_test_cell, part_name

    edited, restored = _restore_released_tests(nb, path)
    print(
        _("Running {name} from top to bottom in a fresh kernel ...").format(name=path.name),
        file=out,
        flush=True,
    )
    ex = run_notebook(nb, path.resolve().parent, timeout)
    executed = ex.nb

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
            reason = _(
                "this test cell was edited: grading restores the released test, so this "
                "result would not count (restore the cell from a fresh copy of the notebook)"
            )
        if reason is not None and pending_solutions:
            reason = _("not answered yet ({parts} still raises NotImplementedError)").format(
                parts=_(", ").join(pending_solutions)
            )
        pending_solutions = []
        rows.append((part_name(cell, index), float(meta.get("points", 0)), reason))

    if not rows:
        print(_("This notebook has no graded test cells: nothing to check."), file=out)
        return 0
    width = max(len(r[0]) for r in rows)
    print(file=out)
    for name, points, reason in rows:
        verdict = _("passed") if reason is None else _("FAILED  {reason}").format(reason=reason)
        print(f"  {name:<{width}}  {points:4g} {_('pt')}  {verdict}", file=out)
    passed = [r for r in rows if r[2] is None]
    got = sum(r[1] for r in passed)
    total = sum(r[1] for r in rows)
    print(file=out)
    print(
        _(
            "{passed} of {rows} test cells pass ({got} of {total} points on the tests you can "
            "see). Grading also runs hidden tests, so make each function right in general, "
            "not only on these examples."
        ).format(passed=len(passed), rows=len(rows), got=f"{got:g}", total=f"{total:g}"),
        file=out,
    )
    for name in restored:
        print(
            _(
                "Note: {name} was edited; the check ran the released test instead, as grading "
                "will (it restores every test cell)."
            ).format(name=name),
            file=out,
        )
    for kind, cells in (
        (_("Note: {name} timed out."), ex.timeouts),
        (_("Note: {name} killed the kernel."), ex.deaths),
    ):
        for i in cells:
            print(kind.format(name=part_name(executed.cells[i], i)), file=out)
    if ex.undone:
        print(
            _(
                "Note: the notebook changes library functions the tests rely on ({functions}); "
                "the check undid that before each cell, and grading flags it for review."
            ).format(functions=", ".join(ex.undone[:4])),
            file=out,
        )
    if ex.guard_problem:
        print(
            _("Note: grading would withhold the score: {problem}.").format(
                problem=ex.guard_problem
            ),
            file=out,
        )
        return 1
    return 0 if len(passed) == len(rows) else 1


MAX_KERNEL_STARTS = 4  # as GradingExecute.max_kernel_starts: a killing cell is skipped next


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(
        output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )


class CheckRun(NotebookClient):
    """One attempt at the notebook in a fresh kernel: nbclient's ``NotebookClient``, every
    cell run whatever the errors, a cell past ``timeout`` interrupted (nbclient's own
    ``interrupt_on_timeout``) and given an error in words, the cells in ``skip`` (they
    killed an earlier kernel) not run, and the guard asked after the last cell."""

    def __init__(self, nb, run_dir: Path, box: Path, timeout: int, skip: dict, **kw):
        super().__init__(
            nb,
            timeout=timeout,
            allow_errors=True,
            interrupt_on_timeout=True,
            error_on_timeout={"ename": "CellTimeoutError", "evalue": "", "traceback": []},
            resources={"metadata": {"path": str(run_dir)}},
            **kw,
        )
        self.run_dir, self.box, self.skip = run_dir, box, skip
        self.current: int | None = None
        self.executed = 0
        self.timeouts: list[int] = []
        self.deaths: list[int] = []  # set by run_notebook: the cells skipped after killing one
        self.undone: list[str] = []
        self.guard_problem = ""
        self.on_cell_executed = self._on_cell_executed

    def create_kernel_manager(self):
        """The grader's kernel manager, without a box: the guard loaded before the first cell."""
        self.km = SandboxKernelManager(config=self.config)
        # the student's own kernel: no box, so no limit is applied (Sandbox('none').wrap)
        memory = parse_memory(DEFAULTS["memory"])
        limits = Limits(self.timeout, memory, Limits.cpu_for(self.timeout))
        self.km.configure(Sandbox("none"), limits, self.box, self.run_dir, 1, guard=True)
        return self.km

    async def async_execute_cell(self, cell, cell_index, execution_count=None, **kw):
        if cell_index in self.skip:
            cell.outputs = [_error_output(*self.skip[cell_index])]
        elif cell.cell_type == "code" and cell.source.strip():
            self.current = cell_index
            self.executed += 1
            await super().async_execute_cell(cell, cell_index, execution_count, **kw)
        if cell_index == len(self.nb.cells) - 1:  # the last cell: the kernel is still up
            self.current = None
            await self._ask_guard()
        return cell

    async def _ask_guard(self):
        token, expressions = guard_question()
        try:
            msg_id = self.kc.execute(
                "", silent=True, store_history=False, user_expressions=expressions
            )
            reply = await self.async_wait_for_reply(msg_id)
        except Exception as err:  # noqa: BLE001  (anything wrong here is the notebook's doing)
            self.guard_problem = f"the grading guard did not answer ({type(err).__name__})"
            return
        self.undone, self.guard_problem = guard_verdict(reply, token, self.executed)

    def _on_cell_executed(self, cell, cell_index, execute_reply):
        if (execute_reply or {}).get("content", {}).get("ename") == "CellTimeoutError":
            self.timeouts.append(cell_index)
            cell.outputs = [o for o in cell.outputs if o.get("output_type") != "error"]
            cell.outputs.append(
                _error_output(
                    "CellTimeoutError",
                    _(
                        "this cell ran longer than {timeout} s (perhaps an endless loop) and "
                        "was interrupted"
                    ).format(timeout=self.timeout),
                )
            )


def run_notebook(nb, run_dir: Path, timeout: int) -> CheckRun:
    """Run ``nb`` in ``run_dir`` as the grader would; the last attempt (its ``nb`` holds the
    outputs), with ``deaths``: the cells that killed a kernel and were skipped after."""
    skip: dict[int, tuple[str, str]] = {}
    box = Path(tempfile.mkdtemp(prefix="attn-check-"))  # the kernel's sockets and its log
    try:
        for start in range(1, MAX_KERNEL_STARTS + 1):
            (box / "box").mkdir(exist_ok=True)
            ex = CheckRun(copy.deepcopy(nb), run_dir, box / "box", timeout, dict(skip))
            try:
                ex.execute()
                break
            except (DeadKernelError, CellTimeoutError) as err:
                if ex.current is None:  # the kernel did not even start
                    raise
                if isinstance(err, DeadKernelError):
                    why = _(
                        "the kernel died while running this cell; the notebook was run again "
                        "in a fresh kernel without this cell"
                    )
                else:
                    why = _(
                        "the kernel stopped answering while running this cell; the notebook was "
                        "run again in a fresh kernel without this cell"
                    )
                skip[ex.current] = ("KernelDied", why)
                if start == MAX_KERNEL_STARTS:  # give up: the rest is not run
                    ex.nb.cells[ex.current].outputs = [_error_output(*skip[ex.current])]
                    for cell in ex.nb.cells[ex.current + 1 :]:
                        cell.outputs = [_error_output("NotRun", _(GAVE_UP))]
    finally:
        shutil.rmtree(box, ignore_errors=True)
    ex.deaths = sorted(skip)
    return ex


def _restore_released_tests(nb, path: Path) -> tuple[list[str], list[str]]:
    """(the test cells a student edited, those put back from the released notebook). A
    released test cell carries nbgrader's checksum of itself; the released notebook is looked
    for as ``exercises/<name>/<name>.ipynb`` in the folders above ``path`` (a clone of the
    course)."""
    import nbformat

    from attn_course.grading.cells import checksum, is_test_cell, part_name

    edited = [
        part_name(c, i)
        for i, c in enumerate(nb.cells)
        if is_test_cell(c)
        and c.metadata["nbgrader"].get("checksum")
        and checksum(c) != c.metadata["nbgrader"]["checksum"]
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
