"""The unit of work: a :class:`GradingTask` in, a :class:`Result` out.

A task carries as data everything grading needs (the student's files as bytes, the
assignment's non-notebook files, a SQLite gradebook holding the assignment's cells, the
course's nbgrader config) and uses no path of the process that made it. Any process with the
course environment grades any task (:func:`attn_course.grading.worker.grade_task`); the
result carries back what was produced. This module is the contract between the parent
(:mod:`~attn_course.grading.batch`), the runners and the workers, and imports none of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MAX_EXTRA_FILE", "GradingTask", "Result", "crashed", "handed_in", "read_files"]

MAX_EXTRA_FILE = 50 * 2**20  # extra files a student hands in are copied up to this size


@dataclass
class GradingTask:
    """One student's submission of one assignment, with everything needed to grade it."""

    student_id: str
    assignment: str
    files: dict[str, bytes] | None  # the hand-in: relative path -> bytes (None: nothing)
    notebooks: dict[str, list[str]]  # expected notebook name -> its graded cell ids
    others: dict[str, list[str]]  # other assignments: name -> all their graded cell ids
    source_files: dict[str, bytes]  # the assignment's non-notebook files (data the tests read)
    gradebook: bytes  # a SQLite gradebook holding this assignment (no students)
    config: dict  # the course's nbgrader config (plain dict; configure() is applied on top)
    feedback: bool = True
    prestart: bool = False  # more tasks will follow in this process: boot the next kernel
    keep_work: bool = False  # keep the work folder (its path is in the log)
    lms_late: bool = False  # the LMS marked the hand-in late (Canvas's _late_)
    late_time: str | None = None  # its time then, if it has none: just after the due date


@dataclass
class Result:
    student_id: str
    assignment: str
    score: float = 0.0
    max_score: float = 0.0
    status: list[str] = field(default_factory=list)
    flagged: bool = False
    timestamp: str | None = None
    notebooks: dict = field(default_factory=dict)  # name -> {grades, comments, late_penalty}
    seconds: float = 0.0
    error: str | None = None  # the traceback of a grading error
    autograded: dict[str, bytes] = field(default_factory=dict)  # relative path -> bytes
    feedback: dict[str, bytes] = field(default_factory=dict)  # relative path -> bytes
    log: str = ""  # grading.log: what happened to this submission
    host: str = ""  # where it was graded (host:pid)
    setup_error: str | None = None  # the machine cannot grade (no box): nobody is scored
    late: bool = False  # after the due date (nbgrader's, from the time) or marked late by the LMS

    def status_text(self) -> str:
        return "; ".join(self.status) if self.status else "graded"


def crashed(task: GradingTask, why: str) -> Result:
    """The result of a task whose grading process died: zeros, flagged, with the reason."""
    r = Result(task.student_id, task.assignment)
    r.status.append(why)
    r.flagged = True
    return r


def handed_in(folder: Path, max_size: int = MAX_EXTRA_FILE):
    """(path, path relative to ``folder``) of each file of a hand-in that counts: regular files,
    no symlinks, nothing under .ipynb_checkpoints; notebooks at the top always, other files
    up to ``max_size``."""
    for dirpath, _, filenames in os.walk(folder, followlinks=False):
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                continue
            rel = p.relative_to(folder)
            if rel.parts[0] == ".ipynb_checkpoints":
                continue
            if (p.suffix == ".ipynb" and len(rel.parts) == 1) or p.stat().st_size <= max_size:
                yield p, rel


def read_files(folder: Path | None, max_size: int = MAX_EXTRA_FILE) -> dict[str, bytes] | None:
    """A hand-in folder as data: relative path -> bytes (the files :func:`handed_in` keeps).
    None if there is no folder."""
    if folder is None or not folder.is_dir():
        return None
    return {str(rel): p.read_bytes() for p, rel in handed_in(folder, max_size)}
