"""Who runs the tasks: the interface of a runner, and the local process pool.

A runner takes :class:`~attn_course.grading.task.GradingTask` objects and yields each back
once with its :class:`~attn_course.grading.task.Result`, in the order they finish; the
parent records each as it arrives. Two runners exist: :class:`LocalPool` (processes on this
machine) and :class:`~attn_course.grading.cluster.DaskRunner` (a Dask cluster); the
orchestration (:func:`attn_course.grading.batch.grade`) does not know which it has.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from time import monotonic
from typing import Protocol

from attn_course.grading.task import GradingTask, Result, crashed

__all__ = ["LocalPool", "Runner"]


class Runner(Protocol):
    engine: str  # how the summary names it: "local", "Dask cluster tcp://..."
    workers: int  # notebooks graded at once
    kernel_threads: int  # threads each grading kernel may use (OMP_NUM_THREADS etc.)

    def results(
        self, tasks: Iterable[GradingTask], retried: set[str]
    ) -> Iterator[tuple[GradingTask, Result]]:
        """Yield (task, result) once per task as they finish; ``retried`` receives the
        students whose task was started more than once (its grading process died)."""
        ...

    def running(self) -> dict[str, float]:
        """The students whose task is running now, with its seconds so far (best effort)."""
        ...

    def check(self, config: dict):
        """Start one grading kernel where the tasks will run, as grading will: the box
        (:class:`~attn_course.grading.sandbox.Sandbox`) of this run. SetupError if a machine
        cannot grade (no box, or its kernel cannot import attn_course)."""
        ...

    def close(self) -> None: ...


def check_here(config: dict):
    """:func:`~attn_course.grading.preflight.check_grading` in this process, its problems as
    SetupError."""
    from traitlets.config import Config

    from attn_course.grading.errors import SetupError
    from attn_course.grading.preflight import KernelCannotImport, check_grading
    from attn_course.grading.sandbox import SandboxUnavailable

    try:
        return check_grading(Config(config))
    except (SandboxUnavailable, KernelCannotImport, ValueError) as err:
        raise SetupError(str(err)) from None


def _init_worker() -> None:
    import attn_course.grading.worker  # noqa: F401  (import nbgrader once per worker)


def _warm() -> None:
    pass


def _grade(task: GradingTask) -> Result:
    from attn_course.grading.worker import grade_task

    return grade_task(task)


class LocalPool:
    """``jobs`` grading processes on this machine (spawned, so no state is inherited). A task
    whose process died is retried once in a fresh pool; twice, it gets a zero with that
    reason. The processes start at once and import nbgrader while the parent sets up."""

    engine = "local"

    def __init__(self, jobs: int):
        self.workers = jobs
        self._futures: dict = {}  # the futures of the current pool -> their task
        self._started: dict = {}  # future -> when it was first seen running
        self.kernel_threads = max(1, (os.cpu_count() or 1) // jobs)
        self._pool: ProcessPoolExecutor | None = self._new_pool()
        for _ in range(jobs):
            self._pool.submit(_warm)

    def _new_pool(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker)

    def results(self, tasks, retried):
        pending = list(tasks)
        done_ids: set[str] = set()
        while pending:
            pool = self._pool or self._new_pool()
            self._pool = None  # a broken pool is replaced by a fresh one
            broken = False
            with pool:
                futures = {pool.submit(_grade, t): t for t in pending}
                self._futures = futures
                pending = []
                remaining = set(futures)
                while remaining and not broken:
                    done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                    for fut in done:
                        task = futures[fut]
                        try:
                            result = fut.result()
                        except BrokenProcessPool:
                            broken = True
                            if task.student_id in retried:
                                why = "grading error: the grading process died twice on it"
                                result = crashed(task, why)
                            else:
                                retried.add(task.student_id)
                                pending.append(task)
                                continue
                        except Exception as err:  # noqa: BLE001
                            result = crashed(task, f"grading error: {type(err).__name__}: {err}")
                        done_ids.add(task.student_id)
                        yield task, result
            if broken:
                pending += [
                    futures[f]
                    for f in remaining
                    if futures[f].student_id not in done_ids and futures[f] not in pending
                ]

    def running(self):
        now = monotonic()
        out = {}
        for fut, task in list(self._futures.items()):
            if fut.running():  # taken by a process (or queued right next to one)
                out[task.student_id] = now - self._started.setdefault(fut, now)
        return out

    def check(self, config):
        return check_here(config)  # the workers are processes of this machine and environment

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
