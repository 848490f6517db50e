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
import atexit
import copy
import json
import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import monotonic

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.client import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, Unicode

from attn_course.grading.sandbox import Limits, Sandbox, detect_sandbox, grading_slot, parse_memory

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
    memory: list[int] = field(default_factory=list)  # cells that exhausted the memory
    kernel_starts: int = 0
    truncated: list[int] = field(default_factory=list)


class KernelOutOfMemory(RuntimeError):
    """A cell raised MemoryError: the notebook is re-run without it."""


# --- a kernel booting for this process's next notebook ----------------------------------
#
# A kernel takes ~0.4 s to boot (Python, ipykernel, the guard). A process that grades many
# notebooks boots the next one's kernel in a fresh, empty box while it renders feedback
# (GradingExecute.prestart). The kernel has run nothing but its own start-up: it is as fresh
# as one started on the spot, and serves one notebook only.

_NEXT: list = []  # at most one (key, kernel manager, box)


def take_prestarted(key: str):
    """(kernel manager, box) prestarted with the same options, or (None, None)."""
    if not _NEXT:
        return None, None
    k, km, box = _NEXT.pop()
    try:
        alive = k == key and run_sync(km.is_alive)()
    except Exception:  # noqa: BLE001
        alive = False
    if not alive:
        _shutdown(km)
        shutil.rmtree(box.parent, ignore_errors=True)
        return None, None
    return km, box


def _shutdown(km) -> None:
    try:
        run_sync(km.shutdown_kernel)(now=True)
    except Exception:  # noqa: BLE001, S110  (it is being thrown away)
        pass


def drop_prestarted() -> None:
    while _NEXT:
        _, km, box = _NEXT.pop()
        _shutdown(km)
        shutil.rmtree(box.parent, ignore_errors=True)


atexit.register(drop_prestarted)


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

    memory = Unicode(
        "2G", help="Address-space limit of each grading kernel (RLIMIT_AS), e.g. 2G or 512M."
    ).tag(config=True)
    cpu_seconds = Integer(
        0, help="CPU seconds per kernel (RLIMIT_CPU), a backstop; 0: max(1800, 30 x timeout)."
    ).tag(config=True)
    boxed = Bool(
        True,
        help="Run kernels inside bubblewrap where it works (else resource limits only). "
        "False: resource limits and a fresh environment only.",
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
    limits: Limits | None = None
    box: Path | None = None
    run_dir: Path | None = None
    prestarted = None  # a kernel manager whose kernel is already booting in ``box``

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)
        self.report = ExecutionReport()

    def resolved_limits(self) -> Limits:
        if self.limits is not None:
            return self.limits
        timeout = int(self.timeout or 60)
        return Limits(
            timeout=timeout,
            memory=parse_memory(self.memory),
            cpu=self.cpu_seconds or max(1800, 30 * timeout),
        )

    def resolved_sandbox(self) -> Sandbox:
        if self.sandbox is None:
            root = Path(self.course_root or os.getcwd()).resolve()
            slot = grading_slot()
            self.sandbox = detect_sandbox(slot, root) if self.boxed else Sandbox("rlimits")
            self.sandbox.course_root = root
        return self.sandbox

    # --- kernel ---------------------------------------------------------------------------
    def create_kernel_manager(self):
        if self.prestarted is not None:  # the first attempt uses it; restarts start afresh
            self.km, self.prestarted = self.prestarted, None
            return self.km
        self.km = self.kernel_manager_class(config=self.config)
        self.km.configure(
            self.resolved_sandbox(),
            self.limits,
            self.box,
            self.run_dir,
            self.threads,
            guard=self.use_guard,
        )
        return self.km

    # --- the notebook, with restarts ------------------------------------------------------
    def preprocess(self, nb, resources=None, km=None):
        """Run ``nb`` in a fresh box (unless one was handed in), then remove the box."""
        self.limits = self.resolved_limits()
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
                _shutdown(self.prestarted)
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
        self.limits = self.resolved_limits()
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
            with open(holder / "kernel.log", "ab") as log:
                self.start_new_kernel(cwd=str(box / "run"), stdout=log, stderr=log)
        except Exception:  # noqa: BLE001  (the next notebook starts its own kernel)
            shutil.rmtree(holder, ignore_errors=True)
            return
        finally:
            self.box = self.run_dir = None
        _NEXT.append((self._prestart_key(), km, box))

    def _preprocess_boxed(self, nb, resources):
        self.timeout = self.limits.timeout
        self.shutdown_kernel = "immediate"
        self._deadline = monotonic() + max(600.0, 10.0 * self.limits.timeout)
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
                    why = (
                        "MemoryError",
                        "this cell exhausted the kernel's memory; the notebook was run again "
                        "in a fresh kernel without this cell",
                    )
                    self.report.memory.append(index)
                elif isinstance(err, DeadKernelError):
                    why = (
                        "KernelDied",
                        "the kernel died while running this cell (os._exit, "
                        "sys.exit in a thread, a crash, or the memory limit); the notebook "
                        "was run again in a fresh kernel without this cell",
                    )
                    self.report.deaths.append(index)
                else:
                    why = (
                        "CellTimeoutError",
                        f"this cell ran for more than {self.timeout} s "
                        "and did not stop when interrupted; the notebook was run again in a "
                        "fresh kernel without this cell",
                    )
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
                cell.outputs = [
                    _error_output(
                        "NotRun", "not run: the kernel died too many times in earlier cells"
                    )
                ]
                self.report.not_run.append(i)
        self.report.guard_ok = True

    def _run_once(self, nb, resources):
        limits = self.limits
        NotebookClient.__init__(self, nb, None)
        self.limits = limits
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
        index = kwargs["cell_index"]
        if reply["content"].get("ename") == "CellTimeoutError":
            if index not in self.report.timeouts:
                self.report.timeouts.append(index)
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
