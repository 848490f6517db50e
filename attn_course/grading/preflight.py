"""Before any student is scored: can this machine grade, and with which ``attn_course``?

:func:`check_grading` starts one grading kernel exactly as grading will (the same settings,
the same box) and has it import what the test cells import. It raises, in words:

- :class:`~attn_course.grading.sandbox.SandboxUnavailable` when bubblewrap cannot box the
  kernel and nobody opted in to grading unboxed;
- :class:`KernelCannotImport` when the kernel cannot import ``attn_course`` (or imports
  another copy than the grader's).

Both are the instructor's set-up problem, never a student's zero: ``attn-course grade``
stops with exit status 2 before grading, and plain ``nbgrader autograde`` does too, through
nbgrader's ``pre_convert_hook`` (:class:`PreflightHook`, registered by
:func:`attn_course.grading.configure`), which runs before nbgrader records a submission.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from attn_course.grading.sandbox import Sandbox, SandboxUnavailable, package_dir

__all__ = [
    "GradingStopped",
    "KernelCannotImport",
    "PreflightHook",
    "check_grading",
    "which_package",
]

PROBE = "import json, numpy, attn_course.checks\nprint(json.dumps(attn_course.__file__))"


class KernelCannotImport(RuntimeError):
    """The grading kernel cannot import the ``attn_course`` the tests need."""


def check_grading(config) -> Sandbox:
    """Start one grading kernel with ``config`` (a traitlets config holding the course's
    settings) and import what the tests import. Returns the box; raises ValueError (a bad
    setting), SandboxUnavailable or KernelCannotImport."""
    import nbformat

    from attn_course.grading.cells import first_error
    from attn_course.grading.execute import GradingExecute

    execute = GradingExecute(config=config)
    execute.resolved_limits()
    sandbox = execute.resolved_sandbox()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)])
    with tempfile.TemporaryDirectory(prefix="attn-preflight-") as here:
        try:
            out, _ = execute.preprocess(nb, {"metadata": {"path": here}})
        except Exception as err:  # noqa: BLE001  (no kernel at all: the environment's fault)
            raise KernelCannotImport(
                f"the grading kernel did not start ({type(err).__name__}: {err})"
            ) from None
    cell = out.cells[0]
    problem = first_error(cell) or (
        None if execute.report.guard_ok else execute.report.guard_problem
    )
    if problem is None:
        printed = "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")
        where = Path(json.loads(printed.strip().splitlines()[-1])).parent
        if where != package_dir():
            problem = f"it imports {where}, the grader {package_dir()}"
    if problem is not None:
        raise KernelCannotImport(f"the grading kernel cannot import attn_course: {problem}")
    return sandbox


def which_package() -> tuple[Path, Path | None]:
    """(the ``attn_course`` grading uses, the environment's install of it if that is another
    folder): the course folder's own copy wins over the environment's, in both paths."""
    import importlib.metadata

    used = package_dir()
    try:
        dist = importlib.metadata.distribution("attn-course")
    except importlib.metadata.PackageNotFoundError:
        return used, None
    url = json.loads(dist.read_text("direct_url.json") or "{}")
    if url.get("dir_info", {}).get("editable") and url.get("url", "").startswith("file://"):
        installed = Path(url["url"][len("file://") :]) / "attn_course"
    else:
        installed = Path(dist.locate_file("attn_course"))
    installed = installed.resolve()
    return used, (None if installed == used else installed)


_CHECKED: list[bool] = []


class GradingStopped(SystemExit):
    """Ends ``nbgrader autograde`` with exit status 2 and the reason. A SystemExit passes
    nbgrader's per-submission ``except Exception`` (which would score every student 0 and go
    on); formgrader's in-process run catches it and shows the reason in its traceback."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.code = 2


class PreflightHook:
    """nbgrader's ``Autograde.pre_convert_hook``: :func:`check_grading` once per process,
    before the first submission is recorded. A problem is printed as one paragraph and ends
    the command with exit status 2 (:class:`GradingStopped`)."""

    def __init__(self, config):
        self.config = config  # nbgrader_config.py's own config, used outside an app

    def _app_config(self):
        from traitlets.config import Application

        # the running nbgrader app's config holds the file's settings and the command line's
        return Application.instance().config if Application.initialized() else self.config

    def __call__(self, **_):
        if _CHECKED:
            return
        try:
            check_grading(self._app_config())
        except (SandboxUnavailable, KernelCannotImport, ValueError) as err:
            reason = f"Grading stopped before any student was scored. {err}"
            print(reason, file=sys.stderr)
            raise GradingStopped(reason) from None
        _CHECKED.append(True)
