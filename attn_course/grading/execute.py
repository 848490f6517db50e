"""Running one notebook in a boxed kernel: nbgrader's ``Execute``, made robust.

:class:`GradingExecute` subclasses nbgrader's ``Execute`` preprocessor: each attempt at a
notebook is nbconvert's own ``ExecutePreprocessor.preprocess`` (cell by cell through
nbclient, nbgrader's error recording), extended only through its public hooks
(``create_kernel_manager``, ``preprocess_cell``, ``on_cell_executed``, ``output``). On top,
what a batch of 300 students needs:

- the kernel runs in a :class:`~attn_course.grading.sandbox.Sandbox` through
  :class:`~attn_course.grading.kernels.SandboxKernelManager` (resource limits, private
  namespaces, an unprivileged uid, unix-socket transport so the kernel needs no network);
- a cell that runs past ``timeout`` is interrupted and gets an error, as in
  nbgrader; if the kernel ignores the interrupt, or dies (``os._exit``, a
  segfault, the memory limit), the cell that did it gets an error output saying
  so and the notebook is run again in a fresh kernel with that cell skipped, so
  the other parts still get their grades;
- a total time budget per notebook, and a cap on the output kept per cell;
- the in-kernel guard (:mod:`attn_course.grading.guard`) undoes monkeypatching
  before every cell, and is asked out of band at the end what it undid.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import monotonic

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, Unicode

from attn_course.grading.cells import is_test_cell
from attn_course.grading.kernels import (
    SandboxKernelManager,
    drop_prestarted,
    guard_question,
    guard_verdict,
    keep_prestarted,
    language_request,
    shutdown,
    take_prestarted,
)
from attn_course.grading.notes import DIED, GAVE_UP, HUNG, MEMORY, OUT_OF_TIME, TIMEOUT, say
from attn_course.grading.sandbox import (
    DEFAULTS,
    Limits,
    Sandbox,
    detect_sandbox,
    grading_slot,
    parse_memory,
)

__all__ = ["ExecutionReport", "GradingExecute"]

MAX_STREAM_CHARS = 200_000  # per cell; a print loop must not fill the grader's memory


@dataclass
class ExecutionReport:
    """What happened while the notebook ran, cell indices into the executed notebook."""

    timeouts: list[int] = field(default_factory=list)
    deaths: list[int] = field(default_factory=list)  # cells that killed the kernel
    hangs: list[int] = field(default_factory=list)  # cells that ignored the interrupt
    not_run: list[int] = field(default_factory=list)  # cells never run (budget, restarts)
    undone: list[str] = field(default_factory=list)  # monkeypatching the guard undid
    guard_ok: bool = True
    guard_problem: str = ""
    memory: list[int] = field(default_factory=list)  # cells that exhausted the memory
    kernel_starts: int = 0
    truncated: list[int] = field(default_factory=list)


class KernelOutOfMemory(RuntimeError):
    """A cell raised MemoryError: the notebook is re-run without it."""


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(
        output_type="error",
        ename=ename,
        evalue=evalue,
        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"],
    )


def _imports_only(cell) -> str:
    """The top-level import statements of an (instructor's) test cell."""
    try:
        tree = ast.parse(cell.source)
    except SyntaxError:
        return ""
    lines = cell.source.splitlines()
    out = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out += lines[node.lineno - 1 : node.end_lineno]
    return "\n".join(out)


class GradingExecute(Execute):
    """nbgrader's Execute, run in a sandboxed kernel that may die without stopping the batch.

    Registered in ``Autograde.autograde_preprocessors`` by :func:`attn_course.grading.configure`
    (in place of nbgrader's ``Execute``), so plain ``nbgrader autograde``, formgrader and
    ``attn-course grade`` run every notebook alike. Its options are traitlets, set in
    ``nbgrader_config.py`` like nbgrader's own ``Execute.timeout``::

        c.GradingExecute.memory = "2G"
        c.GradingExecute.boxed = True

    Each notebook gets a fresh private box (a temporary folder holding a copy of the files
    next to the notebook) unless the caller hands one in (``box``, ``run_dir``). What happened
    while it ran is written to the notebook's metadata (``attn_course.execution``) and to
    ``resources["attn_course"]``.
    """

    # The defaults of the course's grading live here and only here: `attn-course grade`'s
    # options override them, Limits is computed from them (resolved_limits).
    timeout = Integer(
        DEFAULTS["timeout"],
        allow_none=True,
        help="Seconds a cell may run before it is interrupted (also read from Execute.timeout "
        "and ExecutePreprocessor.timeout; this section wins). At least 1; None (no limit) is "
        "not honoured: grading always bounds a cell, with this default.",
    ).tag(config=True)
    memory = Unicode(
        DEFAULTS["memory"],
        help="Address-space limit of each grading kernel (RLIMIT_AS), e.g. 2G or 512M.",
    ).tag(config=True)
    cpu_seconds = Integer(
        0, help="CPU seconds per kernel (RLIMIT_CPU), a backstop; 0: Limits.cpu_for(timeout)."
    ).tag(config=True)
    boxed = Bool(
        True,
        help="Run kernels inside bubblewrap; grading refuses where it cannot. False (the "
        "explicit opt-in): resource limits and a fresh environment only, and student code can "
        "read and write every file the grading user can.",
    ).tag(config=True)
    use_guard = Bool(
        True, help="Load the monkeypatching guard in the kernel before the first cell."
    ).tag(config=True)
    threads = Integer(1, help="Threads per kernel (OMP_NUM_THREADS etc.).").tag(config=True)
    max_kernel_starts = Integer(
        4, help="Kernels per notebook: a cell that kills one is skipped in the next."
    ).tag(config=True)
    course_root = Unicode(
        "",
        help="The course folder, never visible to a kernel (default: the working folder, "
        "where nbgrader runs).",
    ).tag(config=True)

    # set by a caller that prepared them (the self-check); otherwise derived from the traits
    sandbox: Sandbox | None = None
    box: Path | None = None
    run_dir: Path | None = None
    prestarted = None  # a kernel manager whose kernel is already booting in ``box``

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)
        self.report = ExecutionReport()
        self._told = False  # the kernel of this attempt knows the notebook's language
        self.timeout_func = self._cell_timeout  # nbclient's hook for each cell's timeout

    def _cell_timeout(self, cell) -> int:
        return self._limits.timeout

    def resolved_limits(self) -> Limits:
        """The limits of this preprocessor's kernels, from its traits; ValueError (in words)
        for a setting that is not a limit."""
        timeout = self.timeout
        if timeout is None:  # nbclient's "no limit": grading always bounds a cell
            timeout = self.traits()["timeout"].default_value
        if timeout < 1:
            raise ValueError(
                f"the per-cell timeout must be at least 1 second, not {timeout} "
                "(GradingExecute.timeout, Execute.timeout or ExecutePreprocessor.timeout)"
            )
        if self.cpu_seconds < 0:
            raise ValueError(
                f"GradingExecute.cpu_seconds must be 0 or more, not {self.cpu_seconds}"
            )
        return Limits(
            timeout=timeout,
            memory=parse_memory(self.memory),
            cpu=self.cpu_seconds or Limits.cpu_for(timeout),
        )

    def resolved_sandbox(self) -> Sandbox:
        if self.sandbox is None:
            root = Path(self.course_root or os.getcwd()).resolve()
            slot = grading_slot()
            self.sandbox = detect_sandbox(slot, root, self.boxed)  # SandboxUnavailable
        return self.sandbox

    # --- kernel ---------------------------------------------------------------------------
    def create_kernel_manager(self):
        if self.prestarted is not None:  # the first attempt uses it; restarts start afresh
            self.km, self.prestarted = self.prestarted, None
            return self.km
        self.km = self.kernel_manager_class(config=self.config)
        self.km.configure(
            self.resolved_sandbox(),
            self.resolved_limits(),
            self.box,
            self.run_dir,
            self.threads,
            guard=self.use_guard,
        )
        return self.km

    # --- the notebook, with restarts ------------------------------------------------------
    def preprocess(self, nb, resources=None, km=None):
        """Run ``nb`` in a fresh box (unless one was handed in), then remove the box."""
        self.resolved_sandbox()
        if self.box is not None:
            return self._preprocess_boxed(nb, resources)
        here = Path((resources or {}).get("metadata", {}).get("path") or ".")
        if self.prestarted is None:
            self.prestarted, self.box = take_prestarted(self._prestart_key())
        tmp = None
        if self.box is None:
            tmp = Path(tempfile.mkdtemp(prefix="attn-box-"))
            os.chmod(tmp, 0o711)  # a kernel under another uid must reach its box inside
            self.box = tmp / "box"
            (self.box / "home").mkdir(parents=True)
        self.run_dir = self.box / "run"
        # the files next to the notebook (data the tests read), copied before the first cell
        shutil.copytree(
            here, self.run_dir, ignore=shutil.ignore_patterns("*.ipynb"), dirs_exist_ok=True
        )
        self.resolved_sandbox().prepare_dir(self.box)
        try:
            return self._preprocess_boxed(nb, resources)
        finally:
            if self.prestarted is not None:  # never reached the kernel
                shutdown(self.prestarted)
                self.prestarted = None
            shutil.rmtree(tmp or self.box.parent, ignore_errors=True)
            self.box = self.run_dir = None

    def _prestart_key(self) -> str:
        return json.dumps(
            [self.resolved_limits(), self.threads, self.use_guard, self.boxed, self.course_root],
            default=str,
        )

    def prestart(self) -> None:
        """Boot a kernel for this process's next notebook, in a fresh, empty box of its own,
        while this process does other work (renders feedback). A later :meth:`preprocess`
        with the same options takes it; its files are copied in before its first cell."""
        self.resolved_sandbox()
        drop_prestarted()
        holder = Path(tempfile.mkdtemp(prefix="attn-box-"))
        os.chmod(holder, 0o711)
        box = holder / "box"
        (box / "run").mkdir(parents=True)
        (box / "home").mkdir()
        self.box, self.run_dir = box, box / "run"
        try:
            km = self.create_kernel_manager()
            self.start_new_kernel()
        except Exception:  # noqa: BLE001  (the next notebook starts its own kernel)
            shutil.rmtree(holder, ignore_errors=True)
            return
        finally:
            self.box = self.run_dir = None
        keep_prestarted(self._prestart_key(), km, box)

    def _preprocess_boxed(self, nb, resources):
        self.shutdown_kernel = "immediate"
        self._limits = self.resolved_limits()
        self._deadline = monotonic() + self._limits.notebook_seconds
        self.report = ExecutionReport()
        original = copy.deepcopy(nb)
        self._skip: dict[int, tuple[str, str]] = {}
        while True:
            work = copy.deepcopy(original)
            self._current = None
            self._executed = 0
            self.report.kernel_starts += 1
            try:
                out, resources = self._run_once(work, resources)
                return self._record(out, resources)
            except (DeadKernelError, CellTimeoutError, TimeoutError, RuntimeError) as err:
                index = self._current
                if index is None:  # the kernel did not even start
                    raise
                if isinstance(err, KernelOutOfMemory):
                    why = ("MemoryError", say(MEMORY, work))
                    self.report.memory.append(index)
                elif isinstance(err, DeadKernelError):
                    why = ("KernelDied", say(DIED, work))
                    self.report.deaths.append(index)
                else:
                    timeout = self._limits.timeout
                    why = ("CellTimeoutError", say(HUNG, work, timeout=timeout))
                    self.report.hangs.append(index)
                self._skip[index] = why
                if self.report.kernel_starts >= self.max_kernel_starts:
                    self._give_up(work, index)
                    return self._record(work, resources)

    def _record(self, nb, resources):
        """The report travels with the notebook (into nbgrader's autograded copy) and in
        ``resources`` (to the later preprocessors of this pipeline)."""
        report = asdict(self.report)
        nb.metadata.setdefault("attn_course", {})["execution"] = report
        if resources is not None:
            resources.setdefault("attn_course", {})["execution"] = report
        return nb, resources

    def _give_up(self, work, index):
        """Too many kernel deaths: the rest of the notebook is not run."""
        self.nb = work
        for i, cell in enumerate(work.cells):
            if cell.cell_type != "code":
                continue
            if i in self._skip:
                cell.outputs = [_error_output(*self._skip[i])]
            elif i > index:
                cell.outputs = [_error_output("NotRun", say(GAVE_UP, work))]
                self.report.not_run.append(i)
        self.report.guard_ok = True

    def _run_once(self, nb, resources):
        """One attempt in a fresh kernel: nbconvert's own ``ExecutePreprocessor.preprocess``
        (it re-initialises the client, starts the kernel through :meth:`create_kernel_manager`,
        runs every cell through :meth:`preprocess_cell`, shuts the kernel down)."""
        self._told = False
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if not self._told and language_request(self.nb):  # before the first cell runs
            self.wait_for_reply(
                self.kc.execute("", silent=True, user_expressions=language_request(self.nb))
            )
            self._told = True
        cell, resources = self._run_cell(cell, resources, index)
        if index == len(self.nb.cells) - 1:  # the last cell: the kernel is still up
            self._current = None
            if self.use_guard:
                self._ask_guard()
        return cell, resources

    def _run_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        if index in self._skip:
            imports = _imports_only(cell) if is_test_cell(cell) else ""
            if imports:  # later test cells may rely on what this one imported
                source, cell.source = cell.source, imports
                self._current = index
                self._executed += 1
                try:
                    super().preprocess_cell(cell, resources, index)
                finally:
                    cell.source = source
            cell.outputs = [_error_output(*self._skip[index])]
            cell.execution_count = None
            return cell, resources
        if monotonic() > self._deadline:
            cell.outputs = [_error_output("NotRun", say(OUT_OF_TIME, self.nb))]
            if index not in self.report.not_run:
                self.report.not_run.append(index)
            return cell, resources
        self._current = index
        self._stream_chars = 0
        self._executed += 1
        return super().preprocess_cell(cell, resources, index)

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        reply = kwargs["execute_reply"]
        index = kwargs["cell_index"]
        if reply["content"].get("ename") == "CellTimeoutError":
            if index not in self.report.timeouts:
                self.report.timeouts.append(index)
            # in words, not the KeyboardInterrupt the interrupt raised inside the cell
            cell = kwargs["cell"]
            cell.outputs = [o for o in cell.outputs if o.get("output_type") != "error"]
            timeout = self._limits.timeout
            cell.outputs.append(
                _error_output("CellTimeoutError", say(TIMEOUT, self.nb, timeout=timeout))
            )
        elif reply["content"].get("ename") == "MemoryError" and index not in self._skip:
            # the kernel lives on crippled (later imports and allocations fail): treat it
            # like a death, so the other parts are graded in a fresh kernel
            raise KernelOutOfMemory(index)

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "stream":
            self._stream_chars += len(msg["content"].get("text", ""))
            if self._stream_chars > MAX_STREAM_CHARS:
                if cell_index not in self.report.truncated:
                    self.report.truncated.append(cell_index)
                    msg = copy.deepcopy(msg)
                    msg["content"]["text"] = "\n... output truncated by the grader ...\n"
                else:
                    return None
        return super().output(outs, msg, display_id, cell_index)

    # --- the closing integrity question ---------------------------------------------------
    def _ask_guard(self):
        token, expressions = guard_question()
        try:
            msg_id = self.kc.execute(
                "", silent=True, store_history=False, user_expressions=expressions
            )
            reply = self.wait_for_reply(msg_id)
        except Exception as err:  # noqa: BLE001  (anything wrong here is the notebook's doing)
            self.report.guard_ok = False
            self.report.guard_problem = f"the grading guard did not answer ({type(err).__name__})"
            return
        self.report.undone, problem = guard_verdict(reply, token, self._executed)
        self.report.guard_ok, self.report.guard_problem = not problem, problem
