"""Grading a class with nbgrader: in parallel, each submission boxed, every one with a reason.

The package is split by job; every import points down this list (a test checks it):

- :func:`configure`: the course's grading as an nbgrader plugin (``nbgrader_config.py``)
- :mod:`~attn_course.grading.errors`: :class:`SetupError`, the error of a grading's set-up
- :mod:`~attn_course.grading.cli`: the ``attn-course`` command (``grade``, ``check``, ``report``)
- :mod:`~attn_course.grading.report`: ``attn-course report``, a graded class's report (its page:
  :mod:`~attn_course.grading.report_html`; failures: :mod:`~attn_course.grading.failures`;
  similar answers: :mod:`~attn_course.grading.similarity`)
- :mod:`~attn_course.grading.batch`: ``attn-course grade``'s orchestration
- :mod:`~attn_course.grading.runners`: the runner interface and the local process pool;
  :mod:`~attn_course.grading.cluster`: the same on a Dask distributed cluster
- :mod:`~attn_course.grading.worker`: grading one task in any process
- :mod:`~attn_course.grading.task`: :class:`~attn_course.grading.task.GradingTask` and
  :class:`~attn_course.grading.task.Result`, the contract between them
- :mod:`~attn_course.grading.course`, :mod:`~attn_course.grading.collect`: the course
  folder and its config; finding the submissions (nbgrader's layout or an LMS download)
- :mod:`~attn_course.grading.gradebook`: every gradebook read and write
- :mod:`~attn_course.grading.outputs`: ``grades.csv``, each student's files, the summary
- :mod:`~attn_course.grading.selfcheck`: ``attn-course check``, the students' self-check
- :mod:`~attn_course.grading.preprocessors`: repairs tampered notebooks; fair scoring
- :mod:`~attn_course.grading.feedback`: the feedback HTML's preprocessors and template
- :mod:`~attn_course.grading.execute`: nbgrader's Execute in a boxed kernel that may die;
  it owns the grading defaults (timeout, memory, CPU, kernels, box) as traits
- :mod:`~attn_course.grading.kernels`: starting the boxed kernel (and one ahead)
- :mod:`~attn_course.grading.sandbox`: resource limits, bubblewrap, an unprivileged uid
- :mod:`~attn_course.grading.guard`: undoes monkeypatching inside the kernel before each cell
- :mod:`~attn_course.grading.languages`: a notebook in another language, and back to English
- :mod:`~attn_course.grading.cells`: what a test cell is, and its error in one line
- :mod:`~attn_course.grading.tuning`: what every grading process sets once for speed
- :mod:`~attn_course.grading.upstream`: the fingerprints of the upstream code copied here

Nothing here is imported by ``import attn_course``: the grader's dependencies are the
``grading`` extra of the package. ``attn-course check`` (``cli``, ``selfcheck`` and the modules
they import) needs only Jupyter's nbclient: it runs in a student's install, without nbgrader.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from attn_course.grading.errors import SetupError

__all__ = ["SetupError", "configure", "nbgrader_env", "put_bin_on_path"]


def configure(c) -> None:
    """Switch the course's grading on in a traitlets config ``c`` (an ``nbgrader_config.py``)::

        from attn_course.grading import configure
        configure(c)

    Registers, in nbgrader's own pipelines, the choice of the notebook a student worked in
    (a translation handed in beside an untouched English one), the mapping of a translated
    notebook to the English one and the repair of tampered notebooks before nbgrader's
    sanitising, the boxed execution (:class:`~attn_course.grading.execute.GradingExecute` in
    place of ``Execute``) and the fair scoring with the guard's verdict; ``zip_collect``'s
    file-name pattern and the feedback's preprocessors. Plain ``nbgrader autograde``,
    formgrader and ``attn-course grade`` then grade every submission alike.
    Options stay configurable after the call (``c.GradingExecute.memory = "1G"`` etc.).
    """
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import ClearOutput, Execute, SaveAutoGrades

    from attn_course.grading.execute import GradingExecute
    from attn_course.grading.preprocessors import (
        FromTranslation,
        FromWorkedTranslation,
        RepairSubmission,
        SaveAutoGradesFair,
    )

    # nbgrader's own default lists (nbgrader/converters/autograde.py), read from its traits,
    # with ours slotted in: whatever a new nbgrader adds to them stays in
    traits = Autograde.class_traits()
    sanitize = list(traits["sanitize_preprocessors"].default())
    autograde = list(traits["autograde_preprocessors"].default())
    for needed, where in (
        (ClearOutput, sanitize),
        (Execute, autograde),
        (SaveAutoGrades, autograde),
    ):
        if needed not in where:
            raise RuntimeError(
                f"nbgrader's Autograde no longer runs {needed.__name__}: re-read "
                "attn_course.grading.configure against nbgrader/converters/autograde.py"
            )
    # the notebook the student worked in (a translation in <lang>/, handed in through the
    # exchange beside an untouched English one) first; then a translated notebook is mapped
    # to the English one before anything compares its cells
    sanitize.insert(0, FromWorkedTranslation)
    at = sanitize.index(ClearOutput) + 1
    sanitize[at:at] = [FromTranslation, RepairSubmission]
    swap = {Execute: GradingExecute, SaveAutoGrades: SaveAutoGradesFair}
    c.Autograde.sanitize_preprocessors = sanitize
    c.Autograde.autograde_preprocessors = [swap.get(p, p) for p in autograde]
    c.OverwriteCells.add_missing_cells = True
    # before nbgrader records the first submission: the box and the kernel's attn_course
    from attn_course.grading.preflight import PreflightHook

    c.Autograde.pre_convert_hook = PreflightHook(c)
    # each released notebook also in every language with a catalog, beside the English one
    from attn_course.grading.languages import TranslateRelease

    c.GenerateAssignment.post_convert_hook = TranslateRelease(c)

    # LMS downloads: `nbgrader zip_collect` maps file names with the pattern `attn-course grade`
    # uses; feedback shows each test's name, points and message, never a hidden test's code,
    # and renders its maths offline.
    from attn_course.grading.collect import configure_collect
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
