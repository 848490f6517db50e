"""``attn-course grade``: a whole class, in parallel, each submission boxed.

The parent process

1. finds the course folder (the one with ``nbgrader_config.py``), checks the
   assignment, and records it in the gradebook with nbgrader's own
   ``GenerateAssignment`` (into a throw-away release folder, so ``exercises/``
   is not touched), plus once into a private SQLite *template* gradebook;
2. finds the submissions (nbgrader's ``<student>/<assignment>/`` layout, or an
   LMS download mapped by nbgrader's ``zip_collect``);
3. hands one submission at a time to each of N worker processes
   (:mod:`attn_course.grading.worker`), each grading into its own copy of the
   template;
4. is the only writer of the course's gradebook: it copies each result into it
   as soon as it arrives (SQLite or PostgreSQL, through nbgrader's ``Gradebook``);
5. writes ``grades.csv`` and prints a summary.
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
from dataclasses import asdict, dataclass
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


def release_checksums(release: Path) -> dict[str, dict[str, str]]:
    """notebook -> grade_id -> checksum of the cell as students received it."""
    import nbformat

    out = {}
    for path in sorted(release.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        out[path.stem] = {
            c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["checksum"]
            for c in nb.cells
            if "checksum" in c.get("metadata", {}).get("nbgrader", {})
        }
    return out


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


# --- the parent writes the gradebook ----------------------------------------------------


def write_result(gb, result) -> None:
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


# --- the pool ---------------------------------------------------------------------------

_SLOT = 0


def _init_worker(slots) -> None:
    global _SLOT
    _SLOT = slots.get()
    lean_imports()
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    import warnings

    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's own session use
    import attn_course.grading.worker  # noqa: F401  (import nbgrader once per worker)


def _run(task):
    from attn_course.grading.worker import grade_submission

    task.slot = _SLOT
    fast_private_sqlite(task.work_root)
    prof_dir = os.environ.get("ATTN_GRADE_PROFILE")  # for developers: cProfile per submission
    if not prof_dir:
        return grade_submission(task)
    import cProfile

    prof = cProfile.Profile()
    try:
        return prof.runcall(grade_submission, task)
    finally:
        prof.dump_stats(os.path.join(prof_dir, f"{task.student_id}.prof"))


def _crashed(task, why: str):
    from attn_course.grading.worker import Result

    r = Result(task.student_id, task.assignment)
    r.status.append(why)
    r.flagged = True
    return r


def grade(opts: GradeOptions, out=sys.stdout) -> list:
    """Grade every submission; returns the results (one per student). Raises SetupError."""

    from attn_course.grading.sandbox import Limits, detect_sandbox, parse_memory

    t0 = monotonic()
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
        memory = parse_memory(opts.memory)
    except ValueError as err:
        raise SetupError(str(err)) from err
    # None is "not given"; 0 is an error below, never read as the default
    timeout = opts.timeout
    if timeout is None:
        timeout = int(
            cfg.get("Execute", {}).get("timeout")
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
    db_url = database_url(opts.db or f"sqlite:///{course / 'gradebook.db'}")
    out_dir = (opts.out or course / "graded" / opts.assignment).resolve()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SetupError(f"cannot create --out {out_dir}: {err}") from err

    # start the workers now: they import nbgrader while this process sets up the gradebook
    pool = _new_pool(jobs)
    for _ in range(jobs):
        pool.submit(_warm)
    from attn_course.grading.worker import Task

    tmp = Path(tempfile.mkdtemp(prefix="attn-grade-"))
    os.chmod(tmp, 0o711)  # kernels run under other uids and must reach their own box inside
    fast_private_sqlite(str(tmp))
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
        checksums = release_checksums(tmp / "release2" / opts.assignment)
        limits = Limits(timeout=timeout, memory=memory, cpu=max(1800, 30 * timeout))
        threads = max(1, (os.cpu_count() or 1) // jobs)
        autograded_root = course / cfg.CourseDirectory.get("autograded_directory", "autograded")
        plain_cfg = _plain(cfg)
        tasks = [
            Task(
                student_id=sid,
                assignment=opts.assignment,
                submission=str(folder) if folder is not None else None,
                notebooks=cells,
                others=others,
                release_checksums=checksums,
                source_dir=str(source_dir),
                template_db=str(template),
                work_root=str(tmp),
                autograded_dir=str(autograded_root / sid / opts.assignment),
                feedback_dir=str(out_dir / sid),
                course_root=str(course),
                config=plain_cfg,
                limits=asdict(limits),
                threads=threads,
                keep_work=opts.keep_work,
                feedback=opts.feedback,
                prestart=i < len(students) - jobs,  # the last ones have no successor
            )
            for i, (sid, folder) in enumerate(students.items())
        ]
        sandbox = detect_sandbox(0, course)
        results = _run_pool(tasks, jobs, db_url, opts.progress, pool)
    finally:
        pool.shutdown(cancel_futures=True)
        if not opts.keep_work:
            shutil.rmtree(tmp, ignore_errors=True)
    elapsed = monotonic() - t0
    write_csv(out_dir / "grades.csv", results, cells)
    print_summary(results, elapsed, jobs, sandbox, out_dir, db_url, out)
    return results


def _one_line(err: Exception) -> str:
    """The driver's own first line (SQLAlchemy wraps it in three lines and a link)."""
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _warm() -> None:
    pass


def _new_pool(jobs: int) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context("spawn")
    slots = ctx.Queue()
    for i in range(jobs):
        slots.put(i)
    return ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(slots,))


def _run_pool(tasks, jobs, db_url, progress, pool=None):
    from nbgrader.api import Gradebook
    from tqdm import tqdm

    results = {}
    pending = list(tasks)
    retried: set[str] = set()
    bar = tqdm(
        total=len(tasks),
        unit="submission",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
        desc="grading",
    )
    import warnings

    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's own session use
    with Gradebook(db_url) as gb:
        while pending:
            broken = False
            pool = pool or _new_pool(jobs)
            with pool:
                futures = {pool.submit(_run, t): t for t in pending}
                pending = []
                remaining = set(futures)
                while remaining:
                    done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                    for fut in done:
                        task = futures[fut]
                        try:
                            result = fut.result()
                        except BrokenProcessPool:
                            broken = True
                            if task.student_id in retried:
                                result = _crashed(
                                    task,
                                    "grading error: the grading worker "
                                    "crashed twice on this submission",
                                )
                            else:
                                retried.add(task.student_id)
                                pending.append(task)
                                continue
                        except Exception as err:  # noqa: BLE001
                            result = _crashed(task, f"grading error: {type(err).__name__}: {err}")
                        write_result(gb, result)
                        results[task.student_id] = result
                        bar.update(1)
                        bar.set_postfix_str(
                            f"{task.student_id}: {result.score:g}/{result.max_score:g}",
                            refresh=False,
                        )
                    if broken:
                        break
            pool = None  # a broken pool is replaced by a fresh one
            if broken:
                pending += [
                    futures[f]
                    for f in remaining
                    if futures[f].student_id not in results and futures[f] not in pending
                ]
    bar.close()
    return [results[t.student_id] for t in tasks]


# --- reporting --------------------------------------------------------------------------


def write_csv(path: Path, results, cells: dict[str, list[str]]) -> None:
    grade_ids = []
    for r in results:
        for data in r.notebooks.values():
            for gid in data["grades"]:
                if gid not in grade_ids:
                    grade_ids.append(gid)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "student_id",
                "assignment",
                "score",
                "max_score",
                "status",
                "flagged",
                "seconds",
                *grade_ids,
            ]
        )
        for r in sorted(results, key=lambda r: r.student_id):
            per = {}
            for data in r.notebooks.values():
                for gid, g in data["grades"].items():
                    per[gid] = "" if g["auto_score"] is None else f"{g['auto_score']:g}"
            w.writerow(
                [
                    r.student_id,
                    r.assignment,
                    f"{r.score:g}",
                    f"{r.max_score:g}",
                    r.status_text(),
                    "yes" if r.flagged else "",
                    f"{r.seconds:.1f}",
                    *(per.get(g, "0") for g in grade_ids),
                ]
            )


def print_summary(results, elapsed, jobs, sandbox, out_dir, db_url, out) -> None:
    n = len(results)
    scores = [r.score for r in results]
    max_score = max((r.max_score for r in results), default=0.0)
    kinds = Counter()  # students per kind: a student with two notebooks missing counts once
    for r in results:
        kinds.update({s.split(":")[0].split(" (")[0] for s in r.status or ["graded"]})
    lines = [
        "",
        f"Graded {n} submission{'s' * (n != 1)} in {elapsed:.1f} s with {jobs} worker"
        f"{'s' * (jobs != 1)} ({elapsed / max(n, 1):.2f} s per submission; kernels boxed by "
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
    for note in sandbox.notes:
        lines.append(f"Warning: {note}")
    lines.append(
        f"Grades: {out_dir / 'grades.csv'}; feedback: {out_dir}/<student_id>/; "
        f"gradebook: {db_url.split('@')[-1]}"
    )
    print("\n".join(lines), file=out)
