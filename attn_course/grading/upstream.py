"""The upstream code the grader depends on beyond public APIs, each with its fingerprint.

Where nbgrader, nbconvert or jupyter_client offer a public hook, the grader uses it. Where
one does not exist, the grader either copies a few lines or overrides a private or
internal method; those places are listed here with a fingerprint of the upstream source
they were written against. ``tests/test_grading_upstream.py`` recomputes every fingerprint:
an upgrade that changes one fails that test with the place to re-read, instead of changing
the grading silently. After re-reading (and adapting) that place, record the new fingerprint
that :func:`stale` prints.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from dataclasses import dataclass

__all__ = ["DEPENDENCIES", "Dependency", "fingerprint", "stale"]


@dataclass(frozen=True)
class Dependency:
    upstream: str  # "module:Qualified.name" of the upstream code
    fingerprint: str  # sha256 (first 16 hex digits) of its source when ``here`` was written
    here: str  # the place in this package that copies it or relies on its inside
    why: str  # why there is no public hook to use instead


DEPENDENCIES = (
    Dependency(
        "nbgrader.converters.base:BaseConverter.start",
        "10d6830579cdca63",
        "attn_course/grading/worker.py: _Feedback.start (a copy)",
        "the exporter is built inside start(); the copy reuses one exporter per process",
    ),
    Dependency(
        "nbgrader.api:Gradebook.__init__",
        "c60c420276e8355e",
        "attn_course/grading/gradebook.py: ensure_schema (a copy of the schema lines)",
        "Gradebook() runs an `alembic heads` subprocess for every new gradebook",
    ),
    Dependency(
        "nbgrader.preprocessors.saveautogrades:SaveAutoGrades._add_score",
        "ee891a8fe3657ce7",
        "attn_course/grading/preprocessors.py: SaveAutoGradesFair._add_score (overrides it)",
        "how a cell's outputs are scored has no public hook; stderr must not zero a cell",
    ),
    Dependency(
        "nbconvert.preprocessors.execute:ExecutePreprocessor.preprocess",
        "58beeaafc496ae5f",
        "attn_course/grading/execute.py: GradingExecute.preprocess_cell (relies on it)",
        "the guard is asked after the last cell, while the kernel is up: preprocess() must "
        "call preprocess_cell for every cell in order inside setup_kernel()",
    ),
    Dependency(
        "nbgrader.utils:compute_checksum",
        "0ef25b0eb2106095",
        "attn_course/grading/cells.py: checksum (a copy)",
        "the students' `attn-course check` tells an edited test cell without nbgrader installed",
    ),
    Dependency(
        "jupyter_client.manager:KernelManager.kernel_spec",
        "78ad6d314e7e2902",
        "attn_course/grading/kernels.py: SandboxKernelManager.kernel_spec (overrides it)",
        "a kernel spec is looked up by name; the grading kernel's spec is built per box",
    ),
)


def _source(upstream: str) -> str:
    module, _, qualname = upstream.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = inspect.getattr_static(obj, part)
    if isinstance(obj, property):
        obj = obj.fget
    return inspect.getsource(obj)


def fingerprint(upstream: str) -> str:
    """The fingerprint of ``module:Qualified.name``'s source as installed here."""
    return hashlib.sha256(_source(upstream).encode()).hexdigest()[:16]


def stale(dependencies=DEPENDENCIES) -> list[str]:
    """One message per dependency whose upstream source changed (empty: all as written)."""
    out = []
    for dep in dependencies:
        try:
            now = fingerprint(dep.upstream)
        except (ImportError, AttributeError, OSError, TypeError) as err:
            now = f"missing ({type(err).__name__}: {err})"
        if now != dep.fingerprint:
            out.append(
                f"{dep.upstream} changed upstream (fingerprint {now}, written against "
                f"{dep.fingerprint}): re-read {dep.here}; {dep.why}"
            )
    return out
