"""Grading one submission: a :class:`~attn_course.grading.task.GradingTask` in, a
:class:`~attn_course.grading.task.Result` out, in whatever process runs it (a local pool
worker, or a Dask worker on another machine). The result carries back what was produced:
scores, comments, flags, status, the autograded notebooks, the feedback HTML and the log.

Inside, it is plain nbgrader: its ``Autograde`` converter, driven through its public
``start()``, with the course's preprocessors registered by
:func:`attn_course.grading.configure` (the same plugin ``nbgrader autograde`` runs), grading
into a private copy of the gradebook; then ``GenerateFeedback``. The worker never touches
the course's gradebook: the parent process writes the result into it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import socket
import tempfile
import traceback
from pathlib import Path
from time import monotonic

import nbformat
from nbconvert.writers import FilesWriter
from nbgrader.converters import Autograde, GenerateFeedback
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config

from attn_course.grading import configure
from attn_course.grading.cells import grade_ids
from attn_course.grading.execute import GradingExecute
from attn_course.grading.feedback import configure_feedback
from attn_course.grading.gradebook import open_submission, read_submission, zero_notebook
from attn_course.grading.preprocessors import describe
from attn_course.grading.sandbox import SandboxUnavailable
from attn_course.grading.task import GradingTask, Result, handed_in
from attn_course.grading.tuning import fast_private_sqlite, lean_imports

__all__ = ["grade_task"]


def _unpack(files: dict[str, bytes], dest: Path) -> None:
    for rel, data in files.items():
        target = (dest / rel).resolve()
        if dest.resolve() not in target.parents:  # "../x" in a task: never outside dest
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _pack(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _read_notebook(path: Path):
    """(notebook, None) or (None, reason in words)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        return None, f"unreadable ({err.strerror})"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, "not valid JSON"
    if not isinstance(data, dict) or "cells" not in data:
        return None, "JSON but not a notebook"
    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as err:  # noqa: BLE001
        return None, f"not a readable notebook ({type(err).__name__})"
    return nb, None


def _duplicated_ids(path: Path) -> bool:
    try:
        ids = [c.get("id") for c in json.loads(path.read_text())["cells"] if c.get("id")]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return len(ids) != len(set(ids))


def _stage_submission(task: GradingTask, src: Path, dest: Path, result: Result) -> list[str]:
    """Copy what the student handed in (unpacked in ``src``) into ``dest``: notebooks under
    their expected names, other regular files as they are. Returns the notebook names that
    will be graded."""
    dest.mkdir(parents=True, exist_ok=True)
    if task.files is None:
        result.status.append(f"nothing submitted for {task.assignment}")
        return []
    found: dict[str, Path] = {}
    for p, rel in handed_in(src):
        if p.suffix == ".ipynb" and len(rel.parts) == 1:
            found[p.stem] = p
        else:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
    if (src / "timestamp.txt").is_file():
        result.timestamp = (src / "timestamp.txt").read_text().strip() or None
    if task.lms_late:
        result.late = True
        result.status.append("late (marked by the LMS)")
        if result.timestamp is None and task.late_time:  # nbgrader's lateness needs a time
            result.timestamp = task.late_time

    graded, readable = [], {}
    for stem, p in found.items():
        nb, why = _read_notebook(p)
        readable[stem] = (nb, why)
    unclaimed = {s for s in found if s not in task.notebooks}
    for name, ids in task.notebooks.items():
        nb, why = readable.get(name, (None, "missing"))
        origin = f"{name}.ipynb"
        if name not in found:
            # renamed? the unclaimed notebook sharing most graded cells with this one
            best, overlap = None, 0
            for stem in sorted(unclaimed):
                cand = readable[stem][0]
                if cand is not None and len(grade_ids(cand.cells) & set(ids)) > overlap:
                    best, overlap = stem, len(grade_ids(cand.cells) & set(ids))
            broken = sorted(st for st in unclaimed if readable[st][0] is None)
            if best is None and broken:  # handed in, under another name, but unreadable
                unclaimed.discard(broken[0])
                why = readable[broken[0]][1]
                result.status.append(f"not a notebook: {broken[0]}.ipynb is {why}")
                continue
            if best is None:
                result.status.append(f"notebook missing: {name}.ipynb")
                continue
            unclaimed.discard(best)
            nb, why, origin = readable[best][0], None, f"{best}.ipynb"
            result.status.append(f"notebook renamed: graded {best}.ipynb as {name}.ipynb")
        if nb is None:
            result.status.append(f"not a notebook: {origin} is {why}")
            continue
        ids_here = grade_ids(nb.cells)
        ours = len(ids_here & set(ids)) / max(len(ids), 1)
        theirs = {a: len(ids_here & set(o)) / max(len(o), 1) for a, o in task.others.items()}
        owner = max(theirs, key=theirs.get, default=None)
        if ids and ours < 0.5 and (owner is None or theirs[owner] > ours):
            what = (
                f"assignment {owner}"
                if owner is not None and theirs[owner] > 0
                else "no notebook of this assignment"
            )
            result.status.append(f"notebook of another assignment: {origin} is from {what}")
            continue
        if _duplicated_ids(src / origin):
            result.status.append(f"duplicated cell ids in {origin} (renumbered)")
        shutil.copyfile(src / origin, dest / f"{name}.ipynb")
        graded.append(name)
    return graded


class _QuietChecksums(logging.Filter):
    """nbgrader's OverwriteCells logs every restored checksum ("Attribute 'checksum' for cell
    ... has changed!"), even for an untouched notebook: noise in a student's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Attribute 'checksum'" not in record.getMessage()


_ROOT: list[str] = []


def _process_root() -> Path:
    """This process's private work folder (removed when it exits)."""
    if not _ROOT:
        import atexit

        lean_imports()
        root = tempfile.mkdtemp(prefix="attn-grade-")
        os.chmod(root, 0o711)  # kernels run under other uids and must reach their box inside
        fast_private_sqlite(root)
        atexit.register(shutil.rmtree, root, True)
        _ROOT.append(root)
        logging.getLogger("traitlets").setLevel(logging.ERROR)
        import warnings

        from sqlalchemy.exc import SAWarning

        warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's own session use
    return Path(_ROOT[0])


def grade_task(task: GradingTask) -> Result:
    """Grade one task in this process; never raises (a failure is a status and a log)."""
    start = monotonic()
    result = Result(task.student_id, task.assignment, host=f"{socket.gethostname()}:{os.getpid()}")
    work = Path(tempfile.mkdtemp(prefix=f"grade-{_safe(task.student_id)}-", dir=_process_root()))
    log = logging.getLogger(f"attn_course.grading.{_safe(task.student_id)}.{id(result)}")
    log.setLevel(logging.WARNING)
    log.propagate = False
    handler = logging.FileHandler(work / "grading.log")
    handler.addFilter(_QuietChecksums())
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    log.addHandler(handler)
    try:
        _grade(task, work, result, log)
    except Exception as err:  # noqa: BLE001  (one submission must never stop the batch)
        result.error = "".join(traceback.format_exception(err))
        result.status.append(f"grading error: {type(err).__name__}: {err}"[:300])
        result.notebooks = {}
        result.score = 0.0
    finally:
        for line in result.status:
            log.warning("status: %s", line)
        if result.error:
            log.error("grading error:\n%s", result.error)
        if task.keep_work:
            log.warning("work folder kept: %s", work)
        handler.close()
        log.removeHandler(handler)
        result.log = (work / "grading.log").read_text(errors="replace")
        if not task.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    result.seconds = monotonic() - start
    return result


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:40]


def _grade(task: GradingTask, work: Path, result: Result, log: logging.Logger) -> None:
    course = work / "course"
    db = work / "gradebook.db"
    db.write_bytes(task.gradebook)
    db_url = f"sqlite:///{db}"
    handin = work / "handin"
    if task.files is not None:
        handin.mkdir()
        _unpack(task.files, handin)
    submitted = course / "submitted" / task.student_id / task.assignment
    graded = _stage_submission(task, handin, submitted, result)
    source = course / "source" / task.assignment
    source.mkdir(parents=True)
    _unpack(task.source_files, source)

    cfg = Config(task.config)
    configure(cfg)
    cfg.Autograde.pre_convert_hook = None  # the parent checked this machine before grading
    try:
        GradingExecute(config=cfg).resolved_sandbox()
    except SandboxUnavailable as err:  # a Dask worker that joined after the check
        result.setup_error = f"{result.host}: {err}"
        return
    cfg.CourseDirectory.root = str(course)
    cfg.CourseDirectory.db_url = db_url
    cfg.CourseDirectory.source_directory = "source"
    cfg.CourseDirectory.submitted_directory = "submitted"
    cfg.CourseDirectory.autograded_directory = "autograded"
    cfg.CourseDirectory.feedback_directory = "feedback"
    cfg.CourseDirectory.assignment_id = task.assignment
    cfg.CourseDirectory.student_id = task.student_id
    cfg.Autograde.force = True
    cfg.GenerateFeedback.force = True
    coursedir = CourseDirectory(config=cfg)

    if not open_submission(db_url, task.assignment, task.student_id, result.timestamp):
        result.status.append("timestamp.txt unreadable (ignored)")
        result.timestamp = None
        if (submitted / "timestamp.txt").exists():
            (submitted / "timestamp.txt").unlink()  # nbgrader would fail on it too

    for name in task.notebooks:
        if name not in graded:
            zero_notebook(db_url, name, task.assignment, task.student_id)

    dest = Path(coursedir.format_path("autograded", task.student_id, task.assignment))
    if graded:
        conv = Autograde(coursedir=coursedir, config=cfg)
        conv.log = log
        try:
            conv.start()  # nbgrader's own path: init, sanitise, execute, score, per notebook
        except Exception as err:  # noqa: BLE001  (nbgrader logged the traceback)
            for name in graded:
                zero_notebook(db_url, name, task.assignment, task.student_id)
            result.status.append(f"could not be graded ({type(err).__name__}: {str(err)[:200]})")
            result.error = "".join(traceback.format_exception(err))
        for name in graded:
            path = dest / f"{name}.ipynb"
            if path.is_file():
                prefix = f"{name}: " if len(task.notebooks) > 1 else ""
                result.status += describe(nbformat.read(path, as_version=4), prefix)
        if task.prestart:
            GradingExecute(config=cfg).prestart()
        if task.feedback and dest.is_dir():
            _feedback(coursedir, cfg, task, log, result)
        result.autograded = _pack(dest)
    if task.feedback:
        for name in task.notebooks:  # no notebook graded: the student still learns why
            page = f"{name}.html"
            if page not in result.feedback:
                result.feedback[page] = _reason_page(task, name, result.status)
    stored = read_submission(db_url, task.assignment, task.student_id)
    result.notebooks, result.score, result.max_score = (
        stored["notebooks"],
        stored["score"],
        stored["max_score"],
    )
    result.flagged = result.flagged or stored["flagged"]
    result.late = result.late or stored["late"]


def _reason_page(task: GradingTask, name: str, status: list[str]) -> bytes:
    """The feedback of a notebook that could not be graded: what happened, in words."""
    from html import escape

    why = "".join(f"<li>{escape(s)}</li>" for s in status) or "<li>not graded</li>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(name)}: not graded</title></head><body>"
        f"<h1>{escape(task.assignment)} / {escape(name)}.ipynb: score 0</h1>"
        f"<p>Your notebook could not be graded:</p><ul>{why}</ul>"
        "<p>Hand in the notebook file itself (.ipynb, saved from Jupyter) under its original "
        "name, and ask your instructor to grade it again.</p></body></html>\n"
    ).encode()


_FEEDBACK_EXPORTER: list = []


class _Feedback(GenerateFeedback):
    """nbgrader's GenerateFeedback, reusing one HTML exporter (templates compiled once) for
    every submission this process grades with the same config.

    ``start`` is a copy of ``nbgrader.converters.base.BaseConverter.start`` with the exporter
    taken from the cache: nbgrader builds its exporter inside ``start`` and offers no hook to
    pass one in. The copy is fingerprinted (:mod:`attn_course.grading.upstream`): an nbgrader
    upgrade that changes ``BaseConverter.start`` fails that test until this is re-read."""

    def start(self) -> None:
        key = json.dumps(self.config, sort_keys=True, default=str)
        if not _FEEDBACK_EXPORTER or _FEEDBACK_EXPORTER[0][0] != key:
            exporter = self.exporter_class(parent=self, config=self.config)
            for pp in self.preprocessors:
                exporter.register_preprocessor(pp)
            _FEEDBACK_EXPORTER[:] = [(key, exporter)]
        self.init_notebooks()
        self.writer = FilesWriter(parent=self, config=self.config)
        self.exporter = _FEEDBACK_EXPORTER[0][1]
        cwd = os.getcwd()
        os.chdir(self.coursedir.root)
        try:
            self.convert_notebooks()
        finally:
            os.chdir(cwd)


def _feedback(coursedir, cfg, task: GradingTask, log, result: Result) -> None:
    cfg = copy.deepcopy(cfg)
    configure_feedback(cfg)  # hidden tests stay hidden; maths without a network
    try:
        conv = _Feedback(coursedir=coursedir, config=cfg)
        conv.log = log
        conv.start()
    except Exception as err:  # noqa: BLE001  (grades stand without feedback)
        log.error("feedback failed:\n%s", traceback.format_exc())
        result.status.append(f"feedback not generated ({type(err).__name__})")
        return
    result.feedback = _pack(
        Path(coursedir.format_path("feedback", task.student_id, task.assignment))
    )
