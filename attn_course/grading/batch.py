"""``attn-course grade``: a whole class, in parallel, each submission boxed.

The orchestration, and nothing else. The parent process

1. finds the course folder and its config (:mod:`~attn_course.grading.course`), reads the
   effective grading settings from the configurable that owns them
   (:class:`~attn_course.grading.execute.GradingExecute`, with the command's options on top),
   and records the assignment in the gradebook and in a private SQLite *template*
   (:mod:`~attn_course.grading.gradebook`);
2. finds the submissions (:mod:`~attn_course.grading.collect`);
3. packs each into a :class:`~attn_course.grading.task.GradingTask` and hands the tasks to
   a runner (:mod:`~attn_course.grading.runners`: local processes, or a Dask cluster);
4. is the only writer of the course's gradebook and of every output file: it writes each
   result as soon as it arrives (:func:`~attn_course.grading.gradebook.write_result`;
   idempotent per student and assignment: a result that arrives twice is recorded once);
5. merges ``grades.csv`` and prints a summary (:mod:`~attn_course.grading.outputs`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from time import monotonic

from attn_course.grading import put_bin_on_path
from attn_course.grading.errors import SetupError

__all__ = ["GradeOptions", "grade"]


@dataclass
class GradeOptions:
    """What ``attn-course grade`` was asked. None is "not given": the course config's value,
    else the grader's default (the traits of ``GradingExecute``), applies."""

    assignment: str
    submissions: Path
    jobs: int | None = None
    db: str | None = None
    out: Path | None = None
    timeout: int | None = None
    memory: str | None = None
    course: Path | None = None
    lms_regexp: str | None = None
    keep_work: bool = False
    progress: bool = True
    feedback: bool = True
    scheduler: str | None = None  # tcp://HOST:PORT of a Dask scheduler (None: local pool)
    unboxed: bool = False  # the explicit opt-in to grading without bubblewrap


def _settings(cfg, opts: GradeOptions):
    """The effective grading settings: the course config with the command's options on top,
    read through a ``GradingExecute`` (the traits own the defaults). SetupError if invalid."""
    from attn_course.grading.execute import GradingExecute

    if opts.timeout is not None:
        if opts.timeout < 1:  # 0 is an error, never read as "the default"
            raise SetupError("--timeout must be at least 1 second")
        cfg.GradingExecute.timeout = opts.timeout
    if opts.memory is not None:
        cfg.GradingExecute.memory = str(opts.memory)
    if opts.unboxed:
        cfg.GradingExecute.boxed = False
    execute = GradingExecute(config=cfg)
    try:
        execute.resolved_limits()
    except ValueError as err:
        raise SetupError(str(err)) from err
    return execute


def _check_submissions(path: Path) -> None:
    if not path.exists():
        raise SetupError(f"SUBMISSIONS {path} does not exist")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise SetupError(f"SUBMISSIONS {path} is not readable")


def grade(opts: GradeOptions, out=sys.stdout) -> list:
    """Grade every submission; returns the results (one per student). Raises SetupError."""
    from attn_course.grading.collect import find_submissions, lms_pattern, marked_late
    from attn_course.grading.course import (
        find_course,
        graded_ids,
        load_course_config,
        plain_config,
    )
    from attn_course.grading.gradebook import (
        assignment_cells,
        database_url,
        due_date,
        ensure_course_row,
        ensure_schema,
        record_assignment,
        set_due_date,
    )
    from attn_course.grading.outputs import check_csv_source, one_line, print_summary, write_csv
    from attn_course.grading.preflight import which_package
    from attn_course.grading.task import GradingTask, read_files
    from attn_course.grading.tuning import fast_private_sqlite, lean_imports

    t0 = monotonic()
    put_bin_on_path()
    lean_imports()
    course = (opts.course or find_course()).resolve()
    cfg = load_course_config(course)
    source = cfg.CourseDirectory.get("source_directory", "source")
    source_dir = course / source / opts.assignment
    if not source_dir.is_dir() or not list(source_dir.glob("*.ipynb")):
        known = (
            sorted(p.name for p in (course / source).iterdir() if p.is_dir())
            if (course / source).is_dir()
            else []
        )
        raise SetupError(
            f"no assignment {opts.assignment!r} in {course / source} "
            f"(known: {', '.join(known) or 'none'})"
        )
    _settings(cfg, opts)
    jobs = (os.cpu_count() or 1) if opts.jobs is None else opts.jobs
    if jobs < 1:
        raise SetupError("--jobs must be at least 1")
    _check_submissions(opts.submissions)
    course_db = database_url(f"sqlite:///{course / 'gradebook.db'}")
    db_url = database_url(opts.db or course_db)
    gradebook_name = db_url.split("@")[-1]  # no credentials in any file or message
    default_out = course / "graded" / opts.assignment
    if db_url != course_db:  # one grades.csv per gradebook: never the course's folder
        default_out = default_out.with_name(f"{opts.assignment}@{_safe_name(gradebook_name)}")
    out_dir = (opts.out or default_out).resolve()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SetupError(f"cannot create --out {out_dir}: {err}") from err
    check_csv_source(out_dir / "grades.csv", gradebook_name)
    # the autograded notebooks go with the gradebook that holds their scores: the course's
    # autograded/ for the course's gradebook (formgrader, generate_feedback), else into --out
    if db_url == course_db:
        autograded_root = course / cfg.CourseDirectory.get("autograded_directory", "autograded")
    else:
        autograded_root = out_dir / "autograded"

    task_cfg = plain_config(cfg)
    task_cfg.get("Autograde", {}).pop("pre_convert_hook", None)  # checked here, before grading
    runner = _runner(opts, jobs)  # local workers start importing nbgrader now
    task_cfg.setdefault("GradingExecute", {}).update(
        threads=runner.kernel_threads,
        course_root=str(course),  # never mounted in a kernel, on machines where it exists
    )
    tmp = Path(tempfile.mkdtemp(prefix="attn-grade-setup-"))
    fast_private_sqlite(str(tmp))
    retried: set[str] = set()
    try:
        # one kernel started as grading will start them, before anything is written:
        # no box, or a kernel that cannot import attn_course, stops here with exit 2
        sandbox = runner.check(task_cfg)
        # the hand-ins next, so that a wrong SUBMISSIONS folder is refused before any write
        students = find_submissions(
            opts.submissions.resolve(), opts.assignment, tmp, cfg, course, opts.lms_regexp
        )
        if not students:
            raise SetupError(f"no student folders in {opts.submissions}")
        others = graded_ids(course, source)
        ours = set(others.pop(opts.assignment, []))
        _refuse_other_notebooks(students, ours, opts)
        late = marked_late(opts.submissions.resolve(), lms_pattern(cfg, opts.lms_regexp))
        try:
            ensure_schema(db_url)
            ensure_course_row(db_url, cfg.CourseDirectory.get("course_id", ""))
        except Exception as err:  # noqa: BLE001
            raise SetupError(
                f"cannot open the gradebook {gradebook_name}: {one_line(err)}"
            ) from err
        record_assignment(course, cfg, opts.assignment, db_url, tmp / "release")
        template = tmp / "template.db"
        ensure_schema(f"sqlite:///{template}")
        record_assignment(course, cfg, opts.assignment, f"sqlite:///{template}", tmp / "release2")
        # the course gradebook's due date, in the template too: late penalties alike
        duedate = due_date(db_url, opts.assignment)
        if duedate is not None:
            set_due_date(f"sqlite:///{template}", opts.assignment, duedate)
        # a hand-in the LMS marked late, without a time of its own: just after the due date
        late_time = str(duedate + timedelta(seconds=1)) if duedate is not None else None
        cells = assignment_cells(f"sqlite:///{template}", opts.assignment)
        gradebook = template.read_bytes()
        source_files = {
            str(p.relative_to(source_dir)): p.read_bytes()
            for p in sorted(source_dir.rglob("*"))
            if p.is_file() and p.suffix != ".ipynb" and ".ipynb_checkpoints" not in p.parts
        }
        tasks = [
            GradingTask(
                student_id=sid,
                assignment=opts.assignment,
                files=read_files(folder),
                notebooks=cells,
                others=others,
                source_files=source_files,
                gradebook=gradebook,
                config=task_cfg,
                feedback=opts.feedback,
                keep_work=opts.keep_work,
                prestart=i < len(students) - runner.workers,  # the last ones have no successor
                lms_late=sid in late,
                late_time=late_time,
            )
            for i, (sid, folder) in enumerate(students.items())
        ]
        by_student = _record_all(
            runner, tasks, retried, db_url, out_dir, autograded_root, opts.progress
        )
    finally:
        runner.close()
        shutil.rmtree(tmp, ignore_errors=True)
    results = [by_student[t.student_id] for t in tasks]
    write_csv(out_dir / "grades.csv", results, gradebook_name)
    where = {
        "grades": out_dir / "grades.csv",
        (
            "feedback and grading.log" if opts.feedback else "grading.log"
        ): f"{out_dir}/<student_id>/",
        "autograded notebooks": f"{autograded_root}/<student_id>/{opts.assignment}/",
        "gradebook": gradebook_name,
    }
    used, other = which_package()
    if other is not None:  # e.g. a course folder with its own copy of the package
        sandbox.notes.append(
            f"grading used attn_course from {used} (the grader's and every kernel's), not "
            f"the environment's install ({other})"
        )
    elapsed = monotonic() - t0
    print_summary(results, elapsed, runner.workers, runner.engine, sandbox, where, retried, out)
    return results


def _refuse_other_notebooks(students: dict, ours: set[str], opts: GradeOptions) -> None:
    """SetupError when most hand-ins (of three or more) are no notebook of the assignment:
    the wrong ASSIGNMENT for this folder, or the wrong folder for this ASSIGNMENT."""
    import json

    from attn_course.grading.cells import grade_ids

    handed, foreign = 0, []
    for sid, folder in students.items():
        books = sorted(folder.glob("*.ipynb")) if folder is not None else []
        if not books:
            continue
        handed += 1
        ids: set[str] = set()
        for book in books:
            try:
                ids |= grade_ids(json.loads(book.read_bytes()).get("cells", []))
            except (ValueError, AttributeError, KeyError, TypeError, OSError):
                continue  # unreadable: the worker says so for that student
        if ours and len(ids & ours) < len(ours) / 2:
            foreign.append(sid)
    if handed >= 3 and len(foreign) > handed / 2:
        raise SetupError(
            f"{len(foreign)} of the {handed} hand-ins in {opts.submissions} are no notebook "
            f"of {opts.assignment} (e.g. {', '.join(sorted(foreign)[:3])}): is it the right "
            "ASSIGNMENT for this folder? Nothing was graded"
        )


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text).strip("-")[:80]


def _runner(opts: GradeOptions, jobs: int):
    """The local pool, or with ``--scheduler`` the Dask cluster (SetupError if unreachable)."""
    if opts.scheduler:
        from attn_course.grading.cluster import connect

        return connect(opts.scheduler)
    from attn_course.grading.runners import LocalPool

    return LocalPool(jobs)


def _record_all(runner, tasks, retried, db_url: str, out_dir: Path, autograded_root: Path,
                progress: bool):  # fmt: skip
    """Write each result as the runner delivers it: gradebook row, autograded notebooks,
    feedback, log. A student's second result (a task run twice) is ignored."""
    import warnings

    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    from attn_course.grading.gradebook import write_result
    from attn_course.grading.outputs import Progress, write_files

    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's own session use
    results = {}
    bar = Progress(len(tasks), progress, runner.running)
    try:
        with Gradebook(db_url) as gb:
            for task, result in runner.results(tasks, retried):
                if task.student_id in results:
                    continue
                if result.setup_error:  # a worker that cannot grade: nobody is scored by it
                    raise SetupError(result.setup_error)
                write_result(gb, result)
                write_files(result, out_dir / task.student_id, autograded_root)
                results[task.student_id] = result
                bar.graded(task.student_id, result.score, result.max_score)
    finally:
        bar.close()
    return results
