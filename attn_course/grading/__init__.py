"""Grading a class with nbgrader: in parallel, each submission boxed, every one with a reason.

- :func:`configure`: the course's grading as an nbgrader plugin (``nbgrader_config.py``)
- :mod:`attn_course.grading.cli`: the ``attn-course`` command
- :mod:`attn_course.grading.batch`: ``attn-course grade`` (the parent process, sole gradebook
  writer)
- :mod:`attn_course.grading.worker`: a :class:`~attn_course.grading.worker.GradingTask`, the
  portable unit of work, and ``grade_task``, which any process runs (pool or Dask worker)
- :mod:`attn_course.grading.cluster`: running tasks on a Dask distributed cluster
- :mod:`attn_course.grading.execute`: nbgrader's Execute in a sandboxed kernel that may die
- :mod:`attn_course.grading.sandbox`: resource limits, bubblewrap, an unprivileged uid
- :mod:`attn_course.grading.guard`: undoes monkeypatching inside the kernel before each cell
- :mod:`attn_course.grading.preprocessors`: repairs tampered notebooks; stderr is not an error
- :mod:`attn_course.grading.selfcheck`: ``attn-course check``, the students' self-check
- :mod:`attn_course.grading.release`: generating ``exercises/`` from ``solutions/``

Nothing here is imported by ``import attn_course``: the grader's dependencies are the
``grading`` extra of the package.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["configure", "nbgrader_env", "put_bin_on_path"]


def configure(c) -> None:
    """Switch the course's grading on in a traitlets config ``c`` (an ``nbgrader_config.py``)::

        from attn_course.grading import configure
        configure(c)

    Registers, in nbgrader's own pipelines, the repair of tampered notebooks before nbgrader's
    sanitising, the boxed execution (:class:`~attn_course.grading.execute.GradingExecute` in
    place of ``Execute``) and the fair scoring with the guard's verdict; ``zip_collect``'s
    file-name pattern and the feedback's preprocessors. Plain ``nbgrader
    autograde``, formgrader and ``attn-course grade`` then grade every submission alike.
    Options stay configurable after the call (``c.GradingExecute.memory = "1G"`` etc.).
    """
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        IgnorePattern,
        LimitOutput,
        OverwriteCells,
        OverwriteKernelspec,
    )

    from attn_course.grading.execute import GradingExecute
    from attn_course.grading.preprocessors import RepairSubmission, SaveAutoGradesFair

    # nbgrader's default lists (nbgrader/converters/autograde.py) with ours slotted in
    c.Autograde.sanitize_preprocessors = [
        ClearOutput,
        RepairSubmission,
        DeduplicateIds,
        OverwriteKernelspec,
        OverwriteCells,
        CheckCellMetadata,
    ]
    c.Autograde.autograde_preprocessors = [
        GradingExecute,
        IgnorePattern,
        ClearMetadataPreprocessor,
        LimitOutput,
        SaveAutoGradesFair,
        AssignLatePenalties,
        CheckCellMetadata,
    ]
    c.OverwriteCells.add_missing_cells = True

    # LMS downloads: `nbgrader zip_collect` maps file names with the pattern `attn-course grade`
    # uses; feedback shows each test's name, points and message, never a hidden test's code,
    # and renders its maths offline.
    from attn_course.grading.batch import configure_collect
    from attn_course.grading.feedback import configure_feedback

    configure_collect(c)
    configure_feedback(c)
    # GradingExecute subclasses Execute: c.Execute.timeout and c.ExecutePreprocessor.timeout
    # apply to it as they do to nbgrader's own (traitlets reads every section of the MRO)


def put_bin_on_path(env: dict | None = None) -> dict:
    """Put this interpreter's ``bin/`` first on ``PATH`` in ``env`` (default: ``os.environ``),
    so nbgrader finds ``alembic`` and Jupyter starts this environment's ``python3`` kernel,
    activated or not. Returns ``env``. The one place the grading package sets PATH."""
    env = os.environ if env is None else env
    bindir = str(Path(sys.executable).parent)
    parts = env.get("PATH", "").split(os.pathsep)
    if bindir not in parts:
        env["PATH"] = os.pathsep.join([bindir, *[p for p in parts if p]])
    return env


def nbgrader_env() -> dict[str, str]:
    """A copy of this process's environment for nbgrader subprocesses (``bin/`` first)."""
    return put_bin_on_path(dict(os.environ))
