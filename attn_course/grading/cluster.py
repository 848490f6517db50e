"""``attn-course grade --scheduler tcp://HOST:PORT``: the tasks on a Dask distributed cluster.

Each :class:`~attn_course.grading.task.GradingTask` is one Dask task, run by
:func:`~attn_course.grading.worker.grade_task` on whichever worker the scheduler picks. A
worker needs the course's pinned environment (``requirements.lock``) and, for the boxed
kernels, bubblewrap; nothing of the course folder: the task carries its files.

Fault tolerance is Dask's own: when a worker dies, the scheduler re-runs the tasks it held on
another worker (up to ``distributed.scheduler.allowed-failures`` times, then the task fails
with ``KilledWorker`` and the submission gets a zero with that reason). Each run of a task
logs a ``attn-grade-start`` event on the scheduler, so the parent can say which submissions
were run more than once. The results come back to the parent, the only writer of the
gradebook, which records each submission once.
"""

from __future__ import annotations

from collections import Counter

from attn_course.grading.errors import SetupError
from attn_course.grading.task import crashed

__all__ = ["DaskRunner", "connect"]

EVENT = "attn-grade-start"
CONNECT_TIMEOUT = 10  # seconds to reach the scheduler before it is a setup error


def connect(address: str) -> DaskRunner:
    """A client of the scheduler at ``address``; SetupError (one line) if it cannot be reached."""
    import logging

    from distributed import Client

    if not address.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
        raise SetupError(f"--scheduler {address!r}: expected an address like tcp://HOST:8786")
    # Client logs its failed connection attempts itself; the error below says it once
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SetupError(f"cannot reach the Dask scheduler at {address}: {reason}") from None
    logging.getLogger("distributed").setLevel(logging.WARNING)
    return DaskRunner(client, address)


def _run(task, run: str):
    """The Dask task: say that it started (for the retry report), then grade."""
    from distributed import get_worker

    from attn_course.grading.worker import grade_task

    worker = get_worker()
    worker.log_event(EVENT, {"run": run, "student": task.student_id, "name": worker.name})
    return grade_task(task)


class DaskRunner:
    """The :class:`~attn_course.grading.runners.Runner` of a Dask cluster: one task per
    submission; each worker thread grades one notebook at a time with a one-thread kernel."""

    kernel_threads = 1

    def __init__(self, client, address: str):
        self.client = client
        self.engine = f"Dask cluster {address}"
        workers = client.scheduler_info().get("workers", {})
        self.workers = max(1, sum(w.get("nthreads", 1) for w in workers.values()))
        self._students: dict[str, str] = {}  # task key -> student
        self._started: dict[str, float] = {}  # task key -> when first seen processing

    def running(self):
        from time import monotonic

        now = monotonic()
        keys = {key for keys in self.client.processing().values() for key in keys}
        return {
            self._students[key]: now - self._started.setdefault(key, now)
            for key in keys
            if key in self._students
        }

    def check(self, config):
        """The preflight on every worker of the cluster (each is its own machine)."""
        from attn_course.grading.runners import check_here

        def _check(dask_worker=None):
            try:
                return check_here(config), None
            except SetupError as err:
                return None, str(err)

        answers = self.client.run(_check)
        problems = [f"{w}: {why}" for w, (_, why) in sorted(answers.items()) if why]
        if problems:
            raise SetupError("a Dask worker cannot grade. " + " | ".join(problems))
        return next(box for box, _ in answers.values())

    def results(self, tasks, retried: set[str]):
        """Yield (task, result) once per task as they complete; ``retried`` receives the
        students whose task was started more than once (a worker died under it)."""
        import uuid

        from distributed import as_completed

        run = uuid.uuid4().hex[:12]  # keys and events of this run only: runs never mix
        futures = {
            self.client.submit(
                _run, t, run, key=f"attn-grade-{run}-{t.assignment}-{t.student_id}", pure=False
            ): t
            for t in tasks
        }
        self._students = {fut.key: task.student_id for fut, task in futures.items()}
        try:
            for fut in as_completed(futures, loop=self.client.loop):
                task = futures[fut]
                try:
                    result = fut.result()
                except Exception as err:  # noqa: BLE001  (KilledWorker, a lost connection)
                    result = crashed(task, f"grading error: {type(err).__name__}: {str(err)[:200]}")
                fut.release()
                yield task, result
        finally:
            starts = Counter(
                msg["student"] for _, msg in self.client.get_events(EVENT) if msg["run"] == run
            )
            retried.update(s for s, n in starts.items() if n > 1)

    def close(self) -> None:
        self.client.close()
