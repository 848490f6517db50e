"""Grading one submission, in a worker process of the batch.

The worker never touches the course's gradebook. It grades into a private
SQLite copy of the assignment's gradebook entries with nbgrader's own
``Autograde`` converter (our preprocessors slotted into its pipeline), renders
the feedback with nbgrader's ``GenerateFeedback``, and returns the scores; the
parent process writes them into the real gradebook (SQLite or PostgreSQL).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import monotonic

import nbformat
from jupyter_core.utils import run_sync
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbconvert.writers import FilesWriter
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.converters import Autograde, GenerateFeedback
from nbgrader.coursedir import CourseDirectory
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
from traitlets.config import Config

from attn_course.grading.execute import GradingExecute
from attn_course.grading.feedback import configure_feedback
from attn_course.grading.preprocessors import RepairSubmission, SaveAutoGradesFair, zero_notebook
from attn_course.grading.sandbox import Limits, detect_sandbox

__all__ = ["Task", "Result", "grade_submission"]

MAX_EXTRA_FILE = 50 * 2**20  # extra files a student hands in are copied up to this size


@dataclass
class Task:
    student_id: str
    assignment: str
    submission: str | None  # the student's folder for this assignment (None: nothing handed in)
    notebooks: dict[str, list[str]]  # expected notebook name -> its graded cell ids
    others: dict[str, list[str]]  # other assignments: name -> all their graded cell ids
    release_checksums: dict[str, dict[str, str]]  # notebook -> grade_id -> student version's
    source_dir: str  # the assignment in the course's source folder (non-notebook files)
    template_db: str  # a SQLite gradebook holding this assignment (no students)
    work_root: str
    autograded_dir: str  # where the autograded notebooks go (course/autograded/<s>/<a>)
    feedback_dir: str  # where the feedback HTML goes
    course_root: str
    config: dict  # nbgrader config of the course (plain dict)
    limits: dict
    threads: int = 1
    slot: int = 0
    keep_work: bool = False
    feedback: bool = True
    prestart: bool = False  # more submissions will follow: boot the next kernel early


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
    sandbox: str = ""
    error: str | None = None

    def status_text(self) -> str:
        return "; ".join(self.status) if self.status else "graded"


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


def _grade_ids(nb) -> set[str]:
    ids = set()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str):
            ids.add(meta["grade_id"])
    return ids


def _stage_submission(task: Task, dest: Path, result: Result) -> list[str]:
    """Copy what the student handed in into ``dest``: notebooks under their expected names,
    other regular files as they are. Returns the notebook names that will be graded."""
    dest.mkdir(parents=True, exist_ok=True)
    if task.submission is None or not Path(task.submission).is_dir():
        result.status.append(f"nothing submitted for {task.assignment}")
        return []
    src = Path(task.submission)
    found: dict[str, Path] = {}
    for dirpath, _, filenames in os.walk(src, followlinks=False):
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                continue
            rel = p.relative_to(src)
            if p.suffix == ".ipynb" and len(rel.parts) == 1:
                found[p.stem] = p
            elif rel.parts[0] != ".ipynb_checkpoints" and p.stat().st_size <= MAX_EXTRA_FILE:
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, target)
    if (src / "timestamp.txt").is_file():
        result.timestamp = (src / "timestamp.txt").read_text().strip() or None

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
                if cand is not None and len(_grade_ids(cand) & set(ids)) > overlap:
                    best, overlap = stem, len(_grade_ids(cand) & set(ids))
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
        ids_here = _grade_ids(nb)
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


def _collect_grades(db_url: str, task: Task, result: Result) -> None:
    with Gradebook(db_url) as gb:
        try:
            sub = gb.find_submission(task.assignment, task.student_id)
        except MissingEntry:
            sub = gb.update_or_create_submission(task.assignment, task.student_id)
        for nb in sub.notebooks:
            result.notebooks[nb.name] = {
                "grades": {
                    g.name: {
                        "auto_score": g.auto_score,
                        "needs_manual_grade": g.needs_manual_grade,
                        "max_score": g.max_score,
                    }
                    for g in nb.grades
                },
                "comments": {c.name: c.auto_comment for c in nb.comments},
                "late_penalty": nb.late_submission_penalty,
            }
        result.score = float(sub.score - (sub.late_submission_penalty or 0.0))
        result.max_score = float(sub.max_score)


def _part_name(nb, index: int) -> str:
    meta = nb.cells[index].get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") or f"cell {index + 1}"


def _describe(report, nb, prefix: str) -> list[str]:
    out = []
    pieces = [
        ("timed out in", report.timeouts),
        ("kernel died in", report.deaths),
        ("kernel hung (interrupt ignored) in", report.hangs),
    ]
    for words, indices in pieces:
        if indices:
            out.append(f"{prefix}{words} {', '.join(_part_name(nb, i) for i in indices)}")
    if report.not_run:
        out.append(f"{prefix}{len(report.not_run)} cells not run (time budget or repeated deaths)")
    if report.truncated:
        out.append(f"{prefix}output truncated in {len(report.truncated)} cells")
    return out


class _Autograde(Autograde):
    """nbgrader's Autograde with our preprocessor instances in its two pipelines."""

    execute: GradingExecute | None = None
    repair: RepairSubmission | None = None

    def _init_preprocessors(self):
        self.exporter._preprocessors = []
        if self._sanitizing:
            pps = [
                ClearOutput,
                self.repair,
                DeduplicateIds,
                OverwriteKernelspec,
                OverwriteCells,
                CheckCellMetadata,
            ]
        else:
            pps = [
                self.execute,
                IgnorePattern,
                ClearMetadataPreprocessor,
                LimitOutput,
                SaveAutoGradesFair,
                AssignLatePenalties,
                CheckCellMetadata,
            ]
        for pp in pps:
            self.exporter.register_preprocessor(pp)  # enabled as in nbgrader


# --- a kernel booting for the next submission -------------------------------------------
#
# A kernel takes ~0.4 s to boot (Python, ipykernel, the guard). Once a submission's notebooks
# have run, the worker starts the kernel for its next submission in a fresh, empty box of its
# own, and renders this submission's feedback while that kernel boots. The next submission's
# files are copied into the box before its first cell runs. The kernel has run nothing but
# its own start-up: it is as fresh as one started on the spot, and serves one notebook only.

_NEXT: tuple | None = None  # (key, kernel manager, holder folder)
_USED: list[Path] = []  # holder folders of prestarted kernels, removed with the submission


def _prestart_key(task: Task) -> str:
    return json.dumps(
        [task.slot, task.course_root, task.work_root, task.limits, task.threads, task.config],
        sort_keys=True,
        default=str,
    )


def _prestart(task: Task, cfg, sandbox, limits: Limits) -> None:
    global _NEXT
    _drop_prestarted()
    holder = Path(tempfile.mkdtemp(prefix=f"next-{task.slot}-", dir=task.work_root))
    box = holder / "box"
    (box / "run").mkdir(parents=True)
    (box / "home").mkdir()
    execute = GradingExecute(config=cfg)
    execute.sandbox, execute.limits, execute.threads = sandbox, limits, task.threads
    execute.box, execute.run_dir = box, box / "run"
    try:
        execute.km = execute.create_kernel_manager()
        with open(holder / "kernel.log", "ab") as log:
            execute.start_new_kernel(cwd=str(box / "run"), stdout=log, stderr=log)
    except Exception:  # noqa: BLE001  (the next submission starts its own kernel)
        shutil.rmtree(holder, ignore_errors=True)
        return
    _NEXT = (_prestart_key(task), execute.km, holder)
    if not _FINALIZER:
        from multiprocessing.util import Finalize

        _FINALIZER.append(Finalize(None, _drop_prestarted, exitpriority=10))


_FINALIZER: list = []


def _take_prestarted(task: Task):
    """(kernel manager, box) booted for this worker's next submission, or None."""
    global _NEXT
    if _NEXT is None:
        return None
    key, km, holder = _NEXT
    if key != _prestart_key(task):
        _drop_prestarted()
        return None
    _NEXT = None
    _USED.append(holder)
    try:
        alive = run_sync(km.is_alive)()
    except Exception:  # noqa: BLE001
        alive = False
    if not alive:
        _shutdown(km)
        return None
    return km, holder / "box"


def _shutdown(km) -> None:
    try:
        run_sync(km.shutdown_kernel)(now=True)
    except Exception:  # noqa: BLE001, S110  (it is being thrown away)
        pass


def _drop_prestarted() -> None:
    global _NEXT
    if _NEXT is not None:
        _, km, holder = _NEXT
        _NEXT = None
        _shutdown(km)
        shutil.rmtree(holder, ignore_errors=True)


def grade_submission(task: Task) -> Result:
    """Grade one student's submission; never raises (a failure is a status)."""
    start = monotonic()
    result = Result(task.student_id, task.assignment)
    work = Path(tempfile.mkdtemp(prefix=f"grade-{_safe(task.student_id)}-", dir=task.work_root))
    try:
        _grade(task, work, result)
    except Exception as err:  # noqa: BLE001  (one submission must never stop the batch)
        result.error = "".join(traceback.format_exception(err))
        result.status.append(f"grading error: {type(err).__name__}: {err}"[:300])
        result.notebooks = {}
        result.score = 0.0
    finally:
        if not task.keep_work:
            shutil.rmtree(work, ignore_errors=True)
            for holder in _USED:
                shutil.rmtree(holder, ignore_errors=True)
        _USED.clear()
    result.seconds = monotonic() - start
    return result


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:40]


def _grade(task: Task, work: Path, result: Result) -> None:
    course = work / "course"
    db = work / "gradebook.db"
    shutil.copyfile(task.template_db, db)
    db_url = f"sqlite:///{db}"
    submitted = course / "submitted" / task.student_id / task.assignment
    graded = _stage_submission(task, submitted, result)
    source = course / "source" / task.assignment
    source.mkdir(parents=True)
    for p in Path(task.source_dir).rglob("*"):
        if p.is_file() and p.suffix != ".ipynb" and ".ipynb_checkpoints" not in p.parts:
            target = source / p.relative_to(task.source_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)

    cfg = Config(task.config)
    cfg.CourseDirectory.root = str(course)
    cfg.CourseDirectory.db_url = db_url
    cfg.CourseDirectory.source_directory = "source"
    cfg.CourseDirectory.submitted_directory = "submitted"
    cfg.CourseDirectory.autograded_directory = "autograded"
    cfg.CourseDirectory.feedback_directory = "feedback"
    cfg.CourseDirectory.assignment_id = task.assignment
    cfg.CourseDirectory.student_id = task.student_id
    cfg.OverwriteCells.add_missing_cells = True
    coursedir = CourseDirectory(config=cfg)

    log = logging.getLogger(f"attn_course.grading.{_safe(task.student_id)}")
    log.setLevel(logging.WARNING)
    log.propagate = False
    handler = logging.FileHandler(work / "grading.log")
    log.addHandler(handler)

    with Gradebook(db_url) as gb:
        gb.update_or_create_student(task.student_id)
        kwargs = {"timestamp": result.timestamp} if result.timestamp else {}
        try:
            gb.update_or_create_submission(task.assignment, task.student_id, **kwargs)
        except Exception:  # noqa: BLE001  (an unreadable timestamp.txt: grade without it)
            gb.db.rollback()
            gb.update_or_create_submission(task.assignment, task.student_id)
            result.status.append("timestamp.txt unreadable (ignored)")
            result.timestamp = None

    limits = Limits(**task.limits)
    sandbox = detect_sandbox(task.slot, Path(task.course_root))
    result.sandbox = sandbox.kind + (f" (uid {sandbox.uid})" if sandbox.uid is not None else "")
    box = work / "box"
    run_dir = box / "run"

    for name in task.notebooks:
        if name not in graded:
            zero_notebook(db_url, name, task.assignment, task.student_id)

    if graded:
        conv = _Autograde(coursedir=coursedir, config=cfg)
        conv.log = log
        conv.writer = FilesWriter(parent=conv, config=conv.config)
        conv.exporter = conv.exporter_class(parent=conv, config=conv.config)
        conv.init_notebooks()
        conv.notebooks = sorted(next(iter(conv.assignments.values())))
        conv.init_assignment(task.assignment, task.student_id)
        dest = Path(coursedir.format_path("autograded", task.student_id, task.assignment))
        dest.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(conv.notebooks):
            name = Path(path).stem
            ready = _take_prestarted(task) if i == 0 else None
            execute = GradingExecute(parent=conv, config=cfg)
            execute.sandbox, execute.limits, execute.threads = sandbox, limits, task.threads
            if ready is not None:  # booted in an empty box: the files go in before any cell
                execute.prestarted, nb_box = ready
                shutil.copytree(
                    dest,
                    nb_box / "run",
                    ignore=shutil.ignore_patterns("*.ipynb"),
                    dirs_exist_ok=True,
                )
                sandbox.prepare_dir(nb_box)
            else:
                nb_box = box
                if box.exists():
                    shutil.rmtree(box)
                shutil.copytree(dest, run_dir, ignore=shutil.ignore_patterns("*.ipynb"))
                (box / "home").mkdir()
            execute.box, execute.run_dir = nb_box, nb_box / "run"
            conv.execute = execute
            conv.repair = RepairSubmission()
            conv.repair.release_checksums = task.release_checksums.get(name, {})
            prefix = f"{name}: " if len(task.notebooks) > 1 else ""
            try:
                conv.convert_single_notebook(path)
            except Exception as err:  # noqa: BLE001
                log.error("grading %s failed:\n%s", path, traceback.format_exc())
                zero_notebook(db_url, name, task.assignment, task.student_id)
                result.status.append(
                    f"{prefix}could not be graded ({type(err).__name__}: {str(err)[:200]})"
                )
                continue
            finally:
                if execute.prestarted is not None:  # never reached the kernel (sanitising failed)
                    _shutdown(execute.prestarted)
                    execute.prestarted = None
            if conv.repair.changes:
                result.status.append(
                    f"{prefix}cells tampered with and restored: "
                    + ", ".join(dict.fromkeys(conv.repair.changes))
                )
            report = execute.report
            executed = execute.nb
            result.status += _describe(report, executed, prefix)
            if report.undone:
                result.flagged = True
                shown = ", ".join(report.undone[:4]) + (", ..." if len(report.undone) > 4 else "")
                result.status.append(
                    f"{prefix}monkeypatching undone before the tests: {shown} (flagged for review)"
                )
            if not report.guard_ok:
                result.flagged = True
                zero_notebook(db_url, name, task.assignment, task.student_id)
                result.status.append(
                    f"{prefix}score withheld: {report.guard_problem} (flagged for review)"
                )
        if task.prestart:
            _prestart(task, cfg, sandbox, limits)
        if task.feedback:
            _feedback(coursedir, cfg, task, log, result)
        shutil.rmtree(Path(task.autograded_dir), ignore_errors=True)
        shutil.copytree(dest, task.autograded_dir)
    _collect_grades(db_url, task, result)
    handler.close()
    log.removeHandler(handler)
    fb = Path(task.feedback_dir)
    fb.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "grading.log", fb / "grading.log")


_FEEDBACK_EXPORTER = None


class _Feedback(GenerateFeedback):
    """nbgrader's GenerateFeedback, reusing one HTML exporter (templates compiled once) for
    every submission this worker grades: the course config is the same for all of them."""

    def start(self) -> None:
        global _FEEDBACK_EXPORTER
        self.init_notebooks()
        self.writer = FilesWriter(parent=self, config=self.config)
        if _FEEDBACK_EXPORTER is None:
            _FEEDBACK_EXPORTER = self.exporter_class(parent=self, config=self.config)
            for pp in self.preprocessors:
                _FEEDBACK_EXPORTER.register_preprocessor(pp)
        self.exporter = _FEEDBACK_EXPORTER
        cwd = os.getcwd()
        os.chdir(self.coursedir.root)
        try:
            self.convert_notebooks()
        finally:
            os.chdir(cwd)


def _feedback(coursedir, cfg, task: Task, log, result: Result) -> None:
    cfg = copy.deepcopy(cfg)
    configure_feedback(cfg)  # hidden tests stay hidden; maths without a network
    try:
        conv = _Feedback(coursedir=coursedir, config=cfg)
        conv.log = log
        conv.force = True
        conv.start()
    except Exception as err:  # noqa: BLE001  (grades stand without feedback)
        log.error("feedback failed:\n%s", traceback.format_exc())
        result.status.append(f"feedback not generated ({type(err).__name__})")
        return
    src = Path(coursedir.format_path("feedback", task.student_id, task.assignment))
    dest = Path(task.feedback_dir)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest)


def result_dict(result: Result) -> dict:
    return asdict(result)
