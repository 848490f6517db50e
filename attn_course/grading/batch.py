"""``attn-course grade``: a whole class, in parallel, each submission boxed.

The parent process

1. finds the course folder (the one with ``nbgrader_config.py``), checks the
   assignment, and records it in the gradebook with nbgrader's own
   ``GenerateAssignment`` (into a throw-away release folder, so ``exercises/``
   is not touched), plus once into a private SQLite *template* gradebook;
2. finds the submissions (nbgrader's ``<student>/<assignment>/`` layout, or an
   LMS download mapped by nbgrader's ``zip_collect``);
3. packs each submission into a :class:`~attn_course.grading.worker.GradingTask`
   (its files and the template gradebook as bytes) and hands the tasks to N local
   worker processes, or with ``--scheduler`` to a Dask cluster
   (:mod:`attn_course.grading.cluster`);
4. is the only writer of the course's gradebook and of every output file: it writes
   each result as soon as it arrives (SQLite or PostgreSQL, through nbgrader's
   ``Gradebook``). Writing is idempotent per (student, assignment): a result that
   arrives twice is recorded once;
5. merges ``grades.csv`` and prints a summary.
"""

from __future__ import annotations

import csv
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import zipfile
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, median
from time import monotonic

__all__ = ["GradeOptions", "SetupError", "find_course", "grade"]


class SetupError(Exception):
    """A problem with the command itself (no such assignment, unreadable folder, ...)."""


@dataclass
class GradeOptions:
    assignment: str
    submissions: Path
    jobs: int | None = None
    db: str | None = None
    out: Path | None = None
    timeout: int | None = None
    memory: str = "2G"
    course: Path | None = None
    lms_regexp: str | None = None
    keep_work: bool = False
    progress: bool = True
    feedback: bool = True
    scheduler: str | None = None  # tcp://HOST:PORT of a Dask scheduler (None: local pool)


# --- speed: what every grading process does once ----------------------------------------


def lean_imports() -> None:
    """Skip an import nobody here needs: jsonschema (imported by nbformat) loads the optional
    ``rfc3987_syntax`` for its "iri" format checker, which builds ~40 lark grammars at import
    time (0.6 s per process). Notebook validation never checks formats, so grading processes
    mark it as absent (jsonschema then leaves that one format unchecked)."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


_PRIVATE_ROOTS: list[str] = []


def fast_private_sqlite(root: str) -> None:
    """No fsync for the throw-away SQLite gradebooks under ``root`` (the template and each
    worker's copy, ~45 commits per submission). The course's gradebook is not under ``root``
    and keeps SQLite's default durability."""
    if not _PRIVATE_ROOTS:
        import sqlite3

        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        @event.listens_for(Engine, "connect")
        def _pragmas(dbapi_connection, _record):
            if not isinstance(dbapi_connection, sqlite3.Connection):
                return
            rows = dbapi_connection.execute("PRAGMA database_list").fetchall()
            path = next((r[2] for r in rows if r[1] == "main"), "")
            if path and any(path.startswith(p + os.sep) for p in _PRIVATE_ROOTS):
                dbapi_connection.execute("PRAGMA synchronous=OFF")
                dbapi_connection.execute("PRAGMA journal_mode=MEMORY")

    root = os.path.realpath(root)
    if root not in _PRIVATE_ROOTS:
        _PRIVATE_ROOTS.append(root)


_ALEMBIC_HEAD: list[str] = []


def _alembic_head() -> str:
    """nbgrader's current schema revision, read in-process (nbgrader runs ``alembic heads``
    in a subprocess for every new gradebook: over a second)."""
    if not _ALEMBIC_HEAD:
        import nbgrader
        from alembic.config import Config as AlembicConfig
        from alembic.script import ScriptDirectory

        c = AlembicConfig()
        c.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
        _ALEMBIC_HEAD.append(ScriptDirectory.from_config(c).get_current_head())
    return _ALEMBIC_HEAD[0]


def ensure_schema(db_url: str) -> None:
    """Create the gradebook's tables if the database is empty, exactly as nbgrader's
    ``Gradebook`` does (its tables, then ``alembic_version`` stamped with the head revision),
    without its subprocess."""
    from nbgrader.api import Base
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(db_url, future=True)
    try:
        if inspect(engine).get_table_names():
            return
        Base.metadata.create_all(bind=engine)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);"))
            conn.execute(
                text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                {"v": _alembic_head()},
            )
    finally:
        engine.dispose()


# --- the course -------------------------------------------------------------------------


def database_url(url: str) -> str:
    """``postgresql://...`` with the driver that is installed (SQLAlchemy 2.1 defaults to
    psycopg 3; this environment ships psycopg2-binary)."""
    import importlib.util

    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix) and importlib.util.find_spec("psycopg") is None:
            if importlib.util.find_spec("psycopg2") is not None:
                return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def find_course(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working folder) with
    ``nbgrader_config.py``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file():
            return folder
    raise SetupError(
        f"no nbgrader_config.py in {here} or any folder above it: run the command from the "
        "course folder, or pass --course DIR"
    )


def load_course_config(course: Path):
    from traitlets.config.loader import PyFileConfigLoader

    try:
        return PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    except Exception as err:  # noqa: BLE001
        raise SetupError(f"cannot read {course / 'nbgrader_config.py'}: {err}") from err


def _plain(cfg) -> dict:
    out = {}
    for key, value in cfg.items():
        out[key] = _plain(value) if hasattr(value, "items") else value
    return out


def _quiet_logger(name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.setLevel(logging.ERROR)
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.StreamHandler(sys.stderr))
    return log


def ensure_course_row(db_url: str, course_id: str) -> None:
    """nbgrader's default course id is "", for which its Gradebook never creates the course
    row; SQLite does not enforce the foreign key, PostgreSQL does (every insert of an
    assignment fails). Create the row."""
    from nbgrader.api import Course, Gradebook

    with Gradebook(db_url, course_id or "default_course") as gb:
        if gb.db.get(Course, course_id) is None:
            gb.db.add(Course(id=course_id))
            gb.db.commit()


def record_assignment(course: Path, cfg, assignment: str, db_url: str, release_dir: Path) -> None:
    """Put the assignment (notebooks, graded cells, checksums) into a gradebook with nbgrader's
    GenerateAssignment, writing the student version to ``release_dir``."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    c = Config(cfg)
    c.CourseDirectory.root = str(course)
    c.CourseDirectory.release_directory = str(release_dir)
    c.CourseDirectory.db_url = db_url
    c.CourseDirectory.assignment_id = assignment
    c.GenerateAssignment.force = True
    c.GenerateAssignment.create_assignment = True
    coursedir = CourseDirectory(config=c)
    conv = GenerateAssignment(coursedir=coursedir, config=c)
    conv.log = _quiet_logger("attn_course.grading.setup")
    try:
        conv.start()
    except Exception as err:  # noqa: BLE001
        url = db_url.split("@")[-1]
        raise SetupError(
            f"could not record assignment {assignment} in the gradebook ({url}): {err}"
        ) from err


def assignment_cells(db_url: str, assignment: str) -> dict[str, list[str]]:
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        a = gb.find_assignment(assignment)
        return {nb.name: sorted(c.name for c in nb.source_cells) for nb in a.notebooks}


def other_assignments(course: Path, source: str, assignment: str) -> dict[str, list[str]]:
    """Graded cell ids of the course's other assignments (to recognise a wrong notebook)."""
    import nbformat

    out = {}
    for folder in sorted((course / source).iterdir()):
        if not folder.is_dir() or folder.name == assignment:
            continue
        ids = []
        for nb_path in folder.glob("*.ipynb"):
            try:
                nb = nbformat.read(nb_path, as_version=4)
            except Exception:  # noqa: BLE001, S112
                continue
            ids += [
                c.metadata["nbgrader"]["grade_id"]
                for c in nb.cells
                if "grade_id" in c.get("metadata", {}).get("nbgrader", {})
            ]
        out[folder.name] = ids
    return out


# --- the submissions --------------------------------------------------------------------


# How LMS downloads name a student's file (nbgrader's FileNameCollectorPlugin matches it
# against the file's whole path). One pattern, read by `attn-course grade` and, through
# configure_collect in nbgrader_config.py, by `nbgrader zip_collect`:
#   alice_03_query_key_value.ipynb                                   plain
#   smithalice_12345_6789012_03_query_key_value.ipynb                Canvas (also _late_)
#   Alice Smith_12345_assignsubmission_file_03_query_key_value.ipynb Moodle (or .../file_/...)
#   Week 3_alice_attempt_2026-03-01-12-30-45_03_query_key_value.ipynb Blackboard
# LMS ids have 3 or more digits, so a notebook's own number (03_...) stays in its name.
DEFAULT_LMS_REGEXP = (
    r"(?:.*?/)?"  # the folders above the file (lazy: the student is in the last one or two)
    r"(?:[^/]*_(?=[^/_]+_attempt_\d))?"  # Blackboard: the assignment's title first
    r"(?P<student_id>[^/_]+)_"
    r"(?:late_|LATE_)?"  # Canvas
    r"(?:attempt_[\d-]+_)?"  # Blackboard
    r"(?:\d{3,}_)*"  # Canvas and Moodle ids
    r"(?:assignsubmission_file_/?)?"  # Moodle, as files or as folders
    r"(?P<file_id>[^/]+)$"
)


def configure_collect(c, regexp: str | None = None) -> None:
    """Set nbgrader's zip_collect to this course's file-name pattern (traitlets config ``c``)."""
    c.FileNameCollectorPlugin.named_regexp = regexp or DEFAULT_LMS_REGEXP


def find_submissions(
    path: Path, assignment: str, tmp: Path, cfg, course: Path, lms_regexp: str | None
) -> dict[str, Path | None]:
    """student_id -> that student's folder for ``assignment`` (None: nothing for it)."""
    if not path.exists():
        raise SetupError(f"SUBMISSIONS {path} does not exist")
    if not os.access(path, os.R_OK):
        raise SetupError(f"SUBMISSIONS {path} is not readable")
    if path.is_dir():
        layout = {}
        try:
            children = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        except OSError as err:
            raise SetupError(f"cannot list SUBMISSIONS {path}: {err}") from err
        students = [p for p in children if p.is_dir()]
        if students and any((p / assignment).is_dir() for p in students):
            for p in students:
                layout[p.name] = p / assignment if (p / assignment).is_dir() else None
            return layout
    if path.is_file() and not zipfile.is_zipfile(path):
        raise SetupError(f"SUBMISSIONS {path} is neither a folder nor a zip archive")
    # the course's pattern (nbgrader_config.py), the one `nbgrader zip_collect` uses too
    course_regexp = cfg.get("FileNameCollectorPlugin", {}).get("named_regexp")
    regexp = lms_regexp or course_regexp or DEFAULT_LMS_REGEXP
    return _zip_collect(path, assignment, tmp, cfg, course, regexp)


def _zip_collect(path: Path, assignment: str, tmp: Path, cfg, course: Path, regexp: str):
    """Map an LMS download (a zip, or a folder of files) with nbgrader's zip_collect."""
    from nbgrader.apps import ZipCollectApp
    from traitlets.config import Config

    root = tmp / "collect"
    archive = root / "downloaded" / assignment / "archive"
    archive.mkdir(parents=True)
    if path.is_dir():
        for p in path.rglob("*"):
            if p.is_file() and not p.is_symlink():
                target = archive / p.relative_to(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, target)
    else:
        shutil.copyfile(path, archive / path.name)
    release = root / "release" / assignment
    release.mkdir(parents=True)
    for nb in (course / cfg.CourseDirectory.get("release_directory", "release") / assignment).glob(
        "*.ipynb"
    ):
        shutil.copyfile(nb, release / nb.name)
    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.release_directory = "release"
    c.CourseDirectory.submitted_directory = "submitted"
    configure_collect(c, regexp)
    c.ZipCollectApp.force = True
    app = ZipCollectApp(config=c)
    app.log = _quiet_logger("attn_course.grading.collect")
    try:
        app.initialize([assignment])
        app.start()
    except (Exception, SystemExit) as err:  # noqa: BLE001
        raise SetupError(f"nbgrader zip_collect could not map {path}: {err}") from err
    submitted = root / "submitted"
    if not submitted.is_dir() or not any(submitted.iterdir()):
        raise SetupError(
            f"found no submissions in {path}: it is not in nbgrader's layout "
            f"(<student_id>/{assignment}/<notebook>.ipynb) and no file name matched the LMS "
            f"pattern {regexp!r} (set another with --lms-regexp)"
        )
    return {p.name: p / assignment for p in sorted(submitted.iterdir()) if p.is_dir()}


# --- the parent writes the gradebook and the files ---------------------------------------


def write_result(gb, result) -> None:
    """One result into the gradebook, replacing what an earlier grading of the same
    (student, assignment) wrote: idempotent. The flag is this grading's verdict, so the
    gradebook never holds a flag that the score beside it does not explain."""
    from nbgrader.api import MissingEntry

    gb.update_or_create_student(result.student_id)
    kwargs = {"timestamp": result.timestamp} if result.timestamp else {}
    try:
        gb.update_or_create_submission(result.assignment, result.student_id, **kwargs)
    except Exception:  # noqa: BLE001
        gb.db.rollback()
        gb.update_or_create_submission(result.assignment, result.student_id)
    for nb_name, data in result.notebooks.items():
        try:
            nb = gb.find_submission_notebook(nb_name, result.assignment, result.student_id)
        except MissingEntry:
            continue
        for grade in nb.grades:
            g = data["grades"].get(grade.name)
            if g is not None:
                grade.auto_score = g["auto_score"]
                grade.needs_manual_grade = g["needs_manual_grade"]
        for comment in nb.comments:
            if comment.name in data["comments"]:
                comment.auto_comment = data["comments"][comment.name]
        nb.late_submission_penalty = data["late_penalty"]
        nb.flagged = bool(result.flagged)
    if not result.notebooks:  # the worker failed outright: a row of zeros, not a missing row
        sub = gb.find_submission(result.assignment, result.student_id)
        for nb in sub.notebooks:
            for grade in nb.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
            nb.flagged = True
    gb.db.commit()


def write_files(result, feedback_dir: Path, autograded_root: Path) -> None:
    """A result's files into place: the autograded notebooks (replacing an earlier run's),
    the feedback HTML and ``grading.log``."""

    def put(files: dict[str, bytes], folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            target = (folder / rel).resolve()
            if folder.resolve() in target.parents:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)

    if result.autograded:
        put(result.autograded, autograded_root / result.student_id / result.assignment)
    put(result.feedback, feedback_dir)
    log = result.log or "".join(f"[WARNING] status: {s}\n" for s in result.status)
    if result.error and result.error not in log:
        log += "[ERROR] grading error:\n" + result.error
    (feedback_dir / "grading.log").write_text(log or "[INFO] graded\n")


def record_all(stream, total: int, db_url: str, out_dir: Path, autograded_root: Path, progress):
    """Write each (task, result) of ``stream`` as it arrives: gradebook row, autograded
    notebooks, feedback, log. A student's second result (a task run twice) is ignored."""
    import warnings

    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning
    from tqdm import tqdm

    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's own session use
    results = {}
    bar = tqdm(
        total=total,
        unit="submission",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
        desc="grading",
    )
    with Gradebook(db_url) as gb:
        for task, result in stream:
            if task.student_id in results:
                continue
            write_result(gb, result)
            write_files(result, out_dir / task.student_id, autograded_root)
            results[task.student_id] = result
            bar.update(1)
            bar.set_postfix_str(
                f"{task.student_id}: {result.score:g}/{result.max_score:g}", refresh=False
            )
    bar.close()
    return results


# --- running the tasks: a local pool -----------------------------------------------------


def _init_worker() -> None:
    import attn_course.grading.worker  # noqa: F401  (import nbgrader once per worker)


def _warm() -> None:
    pass


def _new_pool(jobs: int) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker)


def crashed(task, why: str):
    """The result of a task whose grading process died: zeros, flagged, with the reason."""
    from attn_course.grading.worker import Result

    r = Result(task.student_id, task.assignment)
    r.status.append(why)
    r.flagged = True
    return r


def local_results(tasks, jobs: int, retried: set[str], pool=None):
    """Yield (task, result) once per task, graded by ``jobs`` local processes. A task whose
    process died is retried once in a fresh pool (its id goes into ``retried``)."""
    from attn_course.grading.worker import grade_task

    pending = list(tasks)
    done_ids: set[str] = set()
    while pending:
        pool = pool or _new_pool(jobs)
        broken = False
        with pool:
            futures = {pool.submit(grade_task, t): t for t in pending}
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
                            result = crashed(
                                task, "grading error: the grading process died twice on it"
                            )
                        else:
                            retried.add(task.student_id)
                            pending.append(task)
                            continue
                    except Exception as err:  # noqa: BLE001
                        result = crashed(task, f"grading error: {type(err).__name__}: {err}")
                    done_ids.add(task.student_id)
                    yield task, result
        pool = None  # a broken pool is replaced by a fresh one
        if broken:
            pending += [
                futures[f]
                for f in remaining
                if futures[f].student_id not in done_ids and futures[f] not in pending
            ]


# --- the command -------------------------------------------------------------------------


def grade(opts: GradeOptions, out=sys.stdout) -> list:
    """Grade every submission; returns the results (one per student). Raises SetupError."""

    from attn_course.grading import put_bin_on_path
    from attn_course.grading.sandbox import detect_sandbox, grading_slot, parse_memory

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
    try:
        parse_memory(opts.memory)
    except ValueError as err:
        raise SetupError(str(err)) from err
    # None is "not given"; 0 is an error below, never read as the default
    timeout = opts.timeout
    if timeout is None:
        timeout = int(
            cfg.get("GradingExecute", {}).get("timeout")
            or cfg.get("Execute", {}).get("timeout")
            or cfg.get("ExecutePreprocessor", {}).get("timeout")
            or 60
        )
    if timeout < 1:
        raise SetupError("--timeout must be at least 1 second")
    jobs = (os.cpu_count() or 1) if opts.jobs is None else opts.jobs
    if jobs < 1:
        raise SetupError("--jobs must be at least 1")
    if not opts.submissions.exists():
        raise SetupError(f"SUBMISSIONS {opts.submissions} does not exist")
    if not os.access(opts.submissions, os.R_OK | (os.X_OK if opts.submissions.is_dir() else 0)):
        raise SetupError(f"SUBMISSIONS {opts.submissions} is not readable")
    course_db = database_url(f"sqlite:///{course / 'gradebook.db'}")
    db_url = database_url(opts.db or course_db)
    out_dir = (opts.out or course / "graded" / opts.assignment).resolve()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SetupError(f"cannot create --out {out_dir}: {err}") from err
    # the autograded notebooks go with the gradebook that holds their scores: the course's
    # autograded/ for the course's gradebook (formgrader, generate_feedback), else into --out
    if db_url == course_db:
        autograded_root = course / cfg.CourseDirectory.get("autograded_directory", "autograded")
    else:
        autograded_root = out_dir / "autograded"

    client = pool = None
    if opts.scheduler:
        from attn_course.grading.cluster import connect

        client = connect(opts.scheduler)  # SetupError if unreachable
        workers = client.worker_count()
    else:
        # start the workers now: they import nbgrader while this process sets up the gradebook
        pool = _new_pool(jobs)
        for _ in range(jobs):
            pool.submit(_warm)
        workers = jobs
    from attn_course.grading.worker import GradingTask, read_files

    tmp = Path(tempfile.mkdtemp(prefix="attn-grade-setup-"))
    fast_private_sqlite(str(tmp))
    retried: set[str] = set()
    try:
        try:
            ensure_schema(db_url)
            ensure_course_row(db_url, cfg.CourseDirectory.get("course_id", ""))
        except Exception as err:  # noqa: BLE001
            raise SetupError(
                f"cannot open the gradebook {db_url.split('@')[-1]}: {_one_line(err)}"
            ) from err
        record_assignment(course, cfg, opts.assignment, db_url, tmp / "release")
        template = tmp / "template.db"
        ensure_schema(f"sqlite:///{template}")
        record_assignment(course, cfg, opts.assignment, f"sqlite:///{template}", tmp / "release2")
        cells = assignment_cells(f"sqlite:///{template}", opts.assignment)
        students = find_submissions(
            opts.submissions.resolve(), opts.assignment, tmp, cfg, course, opts.lms_regexp
        )
        if not students:
            raise SetupError(f"no student folders in {opts.submissions}")
        others = other_assignments(course, source, opts.assignment)
        task_cfg = _plain(cfg)
        task_cfg.setdefault("GradingExecute", {}).update(
            timeout=timeout,
            memory=str(opts.memory),
            cpu_seconds=max(1800, 30 * timeout),
            threads=max(1, (os.cpu_count() or 1) // jobs) if client is None else 1,
            course_root=str(course),  # never mounted in a kernel, on machines where it exists
        )
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
                prestart=i < len(students) - workers,  # the last ones have no successor
            )
            for i, (sid, folder) in enumerate(students.items())
        ]
        sandbox = detect_sandbox(grading_slot(), course)
        if client is not None:
            stream = client.results(tasks, retried)
        else:
            stream = local_results(tasks, jobs, retried, pool)
        by_student = record_all(stream, len(tasks), db_url, out_dir, autograded_root, opts.progress)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if client is not None:
            client.close()
        shutil.rmtree(tmp, ignore_errors=True)
    results = [by_student[t.student_id] for t in tasks]
    write_csv(out_dir / "grades.csv", results)
    where = {
        "grades": out_dir / "grades.csv",
        "feedback and grading.log": f"{out_dir}/<student_id>/",
        "autograded notebooks": f"{autograded_root}/<student_id>/{opts.assignment}/",
        "gradebook": db_url.split("@")[-1],
    }
    engine = f"Dask cluster {opts.scheduler}" if opts.scheduler else "local"
    print_summary(results, monotonic() - t0, workers, engine, sandbox, where, retried, out)
    return results


def _one_line(err: Exception) -> str:
    """The driver's own first line (SQLAlchemy wraps it in three lines and a link)."""
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --- reporting --------------------------------------------------------------------------

CSV_HEAD = ["student_id", "assignment", "score", "max_score", "status", "flagged", "seconds"]


def write_csv(path: Path, results) -> None:
    """``grades.csv``: one row per student. Rows of students not graded in this run are kept
    (grading one late student updates that student's row only)."""
    rows: dict[str, dict[str, str]] = {}
    grade_ids: list[str] = []
    if path.is_file():
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            grade_ids = [f for f in reader.fieldnames or [] if f not in CSV_HEAD]
            rows = {r["student_id"]: r for r in reader if r.get("student_id")}
    for r in results:
        for data in r.notebooks.values():
            for gid in data["grades"]:
                if gid not in grade_ids:
                    grade_ids.append(gid)
    for r in results:
        per = {}
        for data in r.notebooks.values():
            for gid, g in data["grades"].items():
                per[gid] = "" if g["auto_score"] is None else f"{g['auto_score']:g}"
        rows[r.student_id] = {
            "student_id": r.student_id,
            "assignment": r.assignment,
            "score": f"{r.score:g}",
            "max_score": f"{r.max_score:g}",
            "status": r.status_text(),
            "flagged": "yes" if r.flagged else "",
            "seconds": f"{r.seconds:.1f}",
            **{g: per.get(g, "0") for g in grade_ids},
        }
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*CSV_HEAD, *grade_ids], restval="")
        w.writeheader()
        for sid in sorted(rows):
            w.writerow(rows[sid])
    tmp.replace(path)


def print_summary(results, elapsed, workers, engine, sandbox, where, retried, out) -> None:
    n = len(results)
    scores = [r.score for r in results]
    max_score = max((r.max_score for r in results), default=0.0)
    kinds = Counter()  # students per kind: a student with two notebooks missing counts once
    for r in results:
        kinds.update({s.split(":")[0].split(" (")[0] for s in r.status or ["graded"]})
    lines = [
        "",
        f"Graded {n} submission{'s' * (n != 1)} in {elapsed:.1f} s with {workers} worker"
        f"{'s' * (workers != 1)}{'' if engine == 'local' else ' on the ' + engine} "
        f"({elapsed / max(n, 1):.2f} s per submission; kernels boxed by "
        f"{sandbox.kind}{', unprivileged uid' if sandbox.uid is not None else ''}).",
    ]
    if n:
        lines.append(
            f"Scores out of {max_score:g}: mean {mean(scores):.2f}, median {median(scores):g}, "
            f"full marks {sum(s == max_score for s in scores)}, zero {sum(s == 0 for s in scores)}."
        )
    lines.append(
        f"What happened to the {n} student{'s' * (n != 1)} (one can be under several headings):"
    )
    for what, count in kinds.most_common():
        lines.append(f"  {count:4d}  {what}")
    flagged = [r.student_id for r in results if r.flagged]
    if flagged:
        lines.append(
            f"Flagged for review ({len(flagged)}): {', '.join(flagged[:10])}"
            + (" ..." if len(flagged) > 10 else "")
        )
    if retried:
        lines.append(
            f"Retried after their grading process died ({len(retried)}): "
            + ", ".join(sorted(retried))
        )
    errors = [r for r in results if r.error]
    for r in errors[:10]:
        last = r.error.strip().splitlines()[-1] if r.error.strip() else "?"
        lines.append(f"Grading error for {r.student_id}: {last}")
    if errors:
        lines.append("  (full tracebacks in each student's grading.log)")
    for note in sandbox.notes:
        lines.append(f"Warning: {note}")
    lines.append("Written:")
    for what, path in where.items():
        lines.append(f"  {what}: {path}")
    print("\n".join(lines), file=out)
