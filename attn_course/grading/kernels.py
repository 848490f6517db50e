"""The grading kernel: started boxed, with nothing of the grader's environment.

- :func:`kernel_env`: the whole environment of a grading kernel;
- :class:`SandboxKernelManager`: jupyter_client's kernel manager, starting the kernel through
  :meth:`~attn_course.grading.sandbox.Sandbox.wrap` over unix sockets in its box, with the
  guard loaded before the first cell, its output into the box's ``kernel.log``;
- :func:`guard_question` / :func:`guard_verdict`: the guard's closing question after the
  last cell, and its answer read (the grader's and the self-check's);
- :func:`language_request`: switching a started kernel's messages to a notebook's language;
- :func:`take_prestarted` / :func:`keep_prestarted`: one kernel booting ahead for this
  process's next notebook.

Nothing here imports nbgrader: the students' ``attn-course check`` starts its kernel here too.
"""

from __future__ import annotations

import ast
import atexit
import json
import secrets
import shutil
import sys
from pathlib import Path

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

from attn_course.grading.languages import ENGLISH, notebook_language
from attn_course.grading.sandbox import Limits, Sandbox, kernel_pythonpath

__all__ = [
    "SandboxKernelManager",
    "drop_prestarted",
    "guard_question",
    "guard_verdict",
    "keep_prestarted",
    "kernel_env",
    "language_request",
    "shutdown",
    "take_prestarted",
]

GUARD_LINE = "import attn_course.grading.guard as _g; _g.install(); del _g"


def kernel_env(box: Path, threads: int) -> dict[str, str]:
    """The whole environment of a grading kernel: nothing of the grader's leaks in."""
    home = box / "home"
    bindir = Path(sys.executable).parent
    pythonpath = kernel_pythonpath()
    return {
        **({"PYTHONPATH": pythonpath} if pythonpath else {}),
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


def language_request(nb) -> dict[str, str]:
    """``user_expressions`` that make a started kernel print the tests' messages in the
    language of ``nb`` (``metadata.attn_course.language``, recorded by grading's
    ``FromTranslation``); empty for English. Sent with no code, they run no cell (the guard
    counts cells). A kernel booted ahead (for a notebook not known yet) is switched this way."""
    language = notebook_language(nb, unknown=ENGLISH)
    if language == ENGLISH:
        return {}
    module = "__import__('attn_course.messages', fromlist=['use_language'])"
    return {"language": f"{module}.use_language({language!r})"}


def guard_question() -> tuple[str, dict[str, str]]:
    """(a fresh token, the ``user_expressions`` of a silent execute request) asking the
    kernel's guard what it undid; sent after the last cell, while the kernel is up."""
    token = secrets.token_hex(8)
    expr = f"__import__('attn_course.grading.guard', fromlist=['report']).report({token!r})"
    return token, {"r": expr}


def guard_verdict(reply: dict | None, token: str, executed: int) -> tuple[list[str], str]:
    """(what the guard undid, the problem with its answer or "") from the execute reply to
    :func:`guard_question`; ``executed`` is the number of cells the caller ran."""
    try:
        text = reply["content"]["user_expressions"]["r"]["data"]["text/plain"]
        result = json.loads(ast.literal_eval(text))  # the repr of a str; never eval
        undone = list(result.get("undone", []))
    except Exception as err:  # noqa: BLE001  (anything wrong here is the notebook's doing)
        return [], f"the grading guard did not answer ({type(err).__name__})"
    if result.get("token") != token:
        return undone, "the grading guard's answer was forged"
    if result.get("cells") != executed:
        return undone, (
            f"the grading guard ran before {result.get('cells')} of {executed} cells "
            "(it was removed or replaced)"
        )
    return undone, ""


class SandboxKernelManager(AsyncKernelManager):
    """An IPython kernel started inside a sandbox, talking over unix sockets in its box."""

    sandbox: Sandbox | None = None
    limits: Limits | None = None
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
        self.grading_spec = KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="Python 3 (grading)",
            language="python",
            interrupt_mode="message",  # the kernel is in its own session: no signals from here
            metadata={"debugger": False},
        )

    @property
    def kernel_spec(self):
        """The grading kernel's own spec (jupyter_client looks a spec up by kernel name)."""
        return self.grading_spec

    async def start_kernel(self, **kw):
        """Start in the box's working folder, the kernel's output into ``kernel.log`` beside
        the box (the file is the child's after Popen: closed here once it has started)."""
        assert self.box is not None
        kw["cwd"] = str(self.run_dir or self.box)
        with open(self.box.parent / "kernel.log", "ab") as log:
            kw["stdout"] = kw["stderr"] = log
            await super().start_kernel(**kw)

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
        shutdown(km)
        shutil.rmtree(box.parent, ignore_errors=True)
        return None, None
    return km, box


def shutdown(km) -> None:
    try:
        run_sync(km.shutdown_kernel)(now=True)
    except Exception:  # noqa: BLE001, S110  (it is being thrown away)
        pass


def drop_prestarted() -> None:
    while _NEXT:
        _, km, box = _NEXT.pop()
        shutdown(km)
        shutil.rmtree(box.parent, ignore_errors=True)


def keep_prestarted(key: str, km, box: Path) -> None:
    """Hold ``km`` (its kernel booting in ``box``) for the next notebook with options ``key``."""
    drop_prestarted()
    _NEXT.append((key, km, box))


atexit.register(drop_prestarted)
