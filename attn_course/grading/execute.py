"""Running one notebook in a boxed kernel: nbgrader's ``Execute``, made robust.

:class:`GradingExecute` is nbgrader's own ``Execute`` preprocessor (so cells run
exactly as ``nbgrader autograde`` runs them) with what a batch of 300 students
needs on top:

- the kernel runs in a :class:`~attn_course.grading.sandbox.Sandbox` through
  :class:`SandboxKernelManager` (resource limits, private namespaces, an
  unprivileged uid, unix-socket transport so the kernel needs no network);
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
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient.client import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute

from attn_course.grading.sandbox import Limits, Sandbox

__all__ = ["ExecutionReport", "GradingExecute", "SandboxKernelManager"]

GUARD_LINE = "import attn_course.grading.guard as _g; _g.install(); del _g"
MAX_STREAM_CHARS = 200_000  # per cell; a print loop must not fill the grader's memory


def kernel_env(box: Path, threads: int) -> dict[str, str]:
    """The whole environment of a grading kernel: nothing of the grader's leaks in."""
    home = box / "home"
    bindir = Path(sys.executable).parent
    return {
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(home / ".matplotlib"),
        "IPYTHONDIR": str(home / ".ipython"),
        "JUPYTER_RUNTIME_DIR": str(home / ".runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "NBGRADER_EXECUTION": "autograde",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
    }


class SandboxKernelManager(AsyncKernelManager):
    """An IPython kernel started inside a sandbox, talking over unix sockets in its box."""

    sandbox: Sandbox | None = None
    limits: Limits = Limits()
    box: Path | None = None
    run_dir: Path | None = None
    threads: int = 1
    guard: bool = True

    def configure(
        self,
        sandbox: Sandbox,
        limits: Limits,
        box: Path,
        run_dir: Path,
        threads: int,
        guard: bool = True,
    ) -> None:
        self.sandbox, self.limits, self.box, self.run_dir = sandbox, limits, box, run_dir
        self.threads, self.guard = threads, guard
        conn = box / "conn"
        conn.mkdir(exist_ok=True)
        self.transport = "ipc"
        self.ip = str(conn / "kernel")
        self.connection_file = str(conn / "kernel.json")
        self.cache_ports = False
        self._kernel_spec = KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="Python 3 (grading)",
            language="python",
            interrupt_mode="message",  # the kernel is in its own session: no signals from here
            metadata={"debugger": False},
        )

    @property
    def kernel_spec(self):
        return self._kernel_spec

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        if self.guard:
            cmd.append(f"--IPKernelApp.exec_lines={json.dumps([GUARD_LINE])}")
        cmd += ["--HistoryManager.enabled=False", "--IPKernelApp.capture_fd_output=False"]
        assert self.sandbox is not None and self.box is not None
        if self.sandbox.kind == "none":
            return self.sandbox.wrap(cmd, self.box, self.run_dir or self.box, {}, self.limits)
        self.sandbox.prepare_dir(self.box)
        env = kernel_env(self.box, self.threads)
        for key in ("MPLCONFIGDIR", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR"):
            Path(env[key]).mkdir(parents=True, exist_ok=True)
        self.sandbox.prepare_dir(self.box)
        return self.sandbox.wrap(cmd, self.box, self.run_dir or self.box, env, self.limits)


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
    kernel_starts: int = 0
    truncated: list[int] = field(default_factory=list)


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(
        output_type="error",
        ename=ename,
        evalue=evalue,
        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"],
    )


def _is_test_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade")) and bool(meta.get("locked")) and not meta.get("solution")


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
    """nbgrader's Execute, run in a sandboxed kernel that may die without stopping the batch."""

    sandbox: Sandbox | None = None
    limits: Limits = Limits()
    box: Path | None = None
    run_dir: Path | None = None
    threads: int = 1
    max_kernel_starts: int = 4
    prestarted = None  # a kernel manager whose kernel is already booting in ``box``
    budget: float | None = None  # seconds for the whole notebook
    use_guard: bool = True

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)
        self.report = ExecutionReport()

    # --- kernel ---------------------------------------------------------------------------
    def create_kernel_manager(self):
        if self.prestarted is not None:  # the first attempt uses it; restarts start afresh
            self.km, self.prestarted = self.prestarted, None
            return self.km
        self.km = self.kernel_manager_class(config=self.config)
        self.km.configure(
            self.sandbox, self.limits, self.box, self.run_dir, self.threads, guard=self.use_guard
        )
        return self.km

    # --- the notebook, with restarts ------------------------------------------------------
    def preprocess(self, nb, resources=None, km=None):
        self.timeout = self.limits.timeout
        self.shutdown_kernel = "immediate"
        budget = self.budget or max(600.0, 10.0 * self.limits.timeout)
        self._deadline = monotonic() + budget
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
                return out, resources
            except (DeadKernelError, CellTimeoutError, TimeoutError, RuntimeError) as err:
                index = self._current
                if index is None:  # the kernel did not even start
                    raise
                if isinstance(err, DeadKernelError):
                    why = (
                        "KernelDied",
                        "the kernel died while running this cell (os._exit, "
                        "sys.exit in a thread, a crash, or the memory limit); the notebook "
                        "was run again in a fresh kernel without this cell",
                    )
                else:
                    why = (
                        "CellTimeoutError",
                        f"this cell ran for more than {self.timeout} s "
                        "and did not stop when interrupted; the notebook was run again in a "
                        "fresh kernel without this cell",
                    )
                self._skip[index] = why
                (self.report.deaths if why[0] == "KernelDied" else self.report.hangs).append(index)
                if self.report.kernel_starts >= self.max_kernel_starts:
                    self._give_up(work, index)
                    return work, resources

    def _give_up(self, work, index):
        """Too many kernel deaths: the rest of the notebook is not run."""
        self.nb = work
        for i, cell in enumerate(work.cells):
            if cell.cell_type != "code":
                continue
            if i in self._skip:
                cell.outputs = [_error_output(*self._skip[i])]
            elif i > index:
                cell.outputs = [
                    _error_output(
                        "NotRun", "not run: the kernel died too many times in earlier cells"
                    )
                ]
                self.report.not_run.append(i)
        self.report.guard_ok = True

    def _run_once(self, nb, resources):
        NotebookClient.__init__(self, nb, None)
        self.timeout = self.limits.timeout  # __init__ re-read the course config's timeout
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        assert self.box is not None
        log = open(self.box.parent / "kernel.log", "ab")  # noqa: SIM115  (closed below)
        try:
            return self._run_with_log(nb, resources, log)
        finally:
            log.close()

    def _run_with_log(self, nb, resources, log):
        cwd = str(self.run_dir) if self.run_dir else None
        with self.setup_kernel(cwd=cwd, stdout=log, stderr=log):
            assert self.kc is not None
            info = self.wait_for_reply(self.kc.kernel_info())
            self.nb.metadata["language_info"] = info["content"]["language_info"]
            for index, cell in enumerate(self.nb.cells):
                self.preprocess_cell(cell, resources, index)
            self._current = None
            if self.use_guard:
                self._ask_guard()
        self.set_widgets_metadata()
        return self.nb, self.resources

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        if index in self._skip:
            imports = _imports_only(cell) if _is_test_cell(cell) else ""
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
            cell.outputs = [
                _error_output(
                    "NotRun", "not run: the notebook used up its total time budget in earlier cells"
                )
            ]
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
        if reply["content"].get("ename") == "CellTimeoutError":
            index = kwargs["cell_index"]
            if index not in self.report.timeouts:
                self.report.timeouts.append(index)

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
        token = secrets.token_hex(8)
        expr = f"__import__('attn_course.grading.guard', fromlist=['report']).report({token!r})"
        try:
            msg_id = self.kc.execute(
                "", silent=True, store_history=False, user_expressions={"r": expr}
            )
            reply = self.wait_for_reply(msg_id)
            data = reply["content"]["user_expressions"]["r"]
            text = data["data"]["text/plain"]
            result = json.loads(ast.literal_eval(text))  # the repr of a str; never eval
        except Exception as err:  # noqa: BLE001  (anything wrong here is the notebook's doing)
            self.report.guard_ok = False
            self.report.guard_problem = f"the grading guard did not answer ({type(err).__name__})"
            return
        self.report.undone = list(result.get("undone", []))
        if result.get("token") != token:
            self.report.guard_ok = False
            self.report.guard_problem = "the grading guard's answer was forged"
        elif result.get("cells") != self._executed:
            self.report.guard_ok = False
            self.report.guard_problem = (
                f"the grading guard ran before {result.get('cells')} of {self._executed} cells "
                "(it was removed or replaced)"
            )
