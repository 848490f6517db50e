"""Every read and write of an nbgrader gradebook the course does, through nbgrader's API.

The course's gradebook (SQLite or PostgreSQL) is written by one process only, the parent of
``attn-course grade`` (:func:`write_result`); the workers grade into private SQLite copies
(:func:`open_submission`, :func:`read_submission`); nbgrader's own pipeline writes through
the course's preprocessors (:func:`zero_notebook`, :func:`apply_verdict`,
:func:`source_cells`), so plain ``nbgrader autograde`` and ``attn-course grade`` store alike.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from attn_course.grading.errors import SetupError
from attn_course.grading.tuning import quiet_logger

__all__ = [
    "apply_verdict",
    "assignment_cells",
    "database_url",
    "due_date",
    "ensure_course_row",
    "ensure_schema",
    "open_submission",
    "read_submission",
    "record_assignment",
    "set_due_date",
    "source_cells",
    "write_result",
    "zero_grades",
    "zero_notebook",
]


def database_url(url: str) -> str:
    """``postgresql://...`` with the driver that is installed (SQLAlchemy 2.1 defaults to
    psycopg 3; this environment ships psycopg2-binary)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix) and importlib.util.find_spec("psycopg") is None:
            if importlib.util.find_spec("psycopg2") is not None:
                return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


# --- creating a gradebook ---------------------------------------------------------------

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
    """Create the gradebook's tables if the database is empty, as nbgrader's ``Gradebook``
    does (its tables, then ``alembic_version`` stamped with the head revision).

    A copy of the schema lines of ``nbgrader.api.Gradebook.__init__`` (fingerprinted in
    :mod:`attn_course.grading.upstream`): nbgrader offers no hook to skip the ``alembic``
    subprocess it starts for every new gradebook, over a second for each worker's copy."""
    from nbgrader.api import Base
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.exc import DBAPIError

    engine = create_engine(db_url, future=True)
    try:
        if inspect(engine).get_table_names():
            return
        try:
            with engine.begin() as conn:  # one transaction: all of it or nothing
                Base.metadata.create_all(bind=conn)
                conn.execute(
                    text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);")
                )
                conn.execute(
                    text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                    {"v": _alembic_head()},
                )
        except DBAPIError:
            # another grading run created it at the same moment (one PostgreSQL gradebook,
            # two assignments graded at once): its schema is the one to use
            if "alembic_version" not in inspect(engine).get_table_names():
                raise
    finally:
        engine.dispose()


def ensure_course_row(db_url: str, course_id: str) -> None:
    """nbgrader's default course id is "", for which its Gradebook never creates the course
    row; SQLite does not enforce the foreign key, PostgreSQL does (every insert of an
    assignment fails). Create the row."""
    from nbgrader.api import Course, Gradebook
    from sqlalchemy.exc import IntegrityError

    with Gradebook(db_url, course_id or "default_course") as gb:
        if gb.db.get(Course, course_id) is None:
            gb.db.add(Course(id=course_id))
            try:
                gb.db.commit()
            except IntegrityError:  # another run added it at the same moment
                gb.db.rollback()


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
    conv.log = quiet_logger("attn_course.grading.setup")
    try:
        conv.start()
    except Exception as err:  # noqa: BLE001
        url = db_url.split("@")[-1]
        raise SetupError(
            f"could not record assignment {assignment} in the gradebook ({url}): {err}"
        ) from err


def assignment_cells(db_url: str, assignment: str) -> dict[str, list[str]]:
    """notebook name -> the names of its graded and locked cells."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        a = gb.find_assignment(assignment)
        return {nb.name: sorted(c.name for c in nb.source_cells) for nb in a.notebooks}


def source_cells(db_url: str, notebook: str, assignment: str) -> dict:
    """The instructor's version of a notebook's cells, as plain data: ``cells`` (name ->
    locked, checksum, cell_type, source, in notebook order), ``grades`` (name -> points),
    ``solutions`` and ``tasks`` (sets of names)."""
    from nbformat.notebooknode import NotebookNode
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        source = gb.find_notebook(notebook, assignment)
        return {
            "cells": {
                c.name: NotebookNode(
                    name=c.name,
                    locked=c.locked,
                    checksum=c.checksum,
                    cell_type=c.cell_type,
                    source=c.source,
                )
                for c in source.source_cells
            },
            "grades": {c.name: float(c.max_score) for c in source.grade_cells},
            "solutions": {c.name for c in source.solution_cells},
            "tasks": {c.name for c in source.task_cells},
        }


# --- one submission ---------------------------------------------------------------------


def due_date(db_url: str, assignment: str):
    """The assignment's due date in the gradebook (``nbgrader db assignment add --duedate``),
    or None."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gb:
        try:
            return gb.find_assignment(assignment).duedate
        except MissingEntry:
            return None


def set_due_date(db_url: str, assignment: str, duedate) -> None:
    """Give ``assignment`` the due date ``duedate`` in the gradebook at ``db_url``."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        gb.update_or_create_assignment(assignment, duedate=duedate)


def zero_grades(notebook) -> None:
    """Score 0 for every graded cell of a submitted notebook, as nbgrader does for a missing
    one (no manual grading asked for). The caller commits."""
    for grade in notebook.grades:
        grade.auto_score = 0
        grade.needs_manual_grade = False


def zero_notebook(db_url: str, notebook: str, assignment: str, student: str) -> None:
    """:func:`zero_grades` of one submitted notebook, if the gradebook has it."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gb:
        try:
            sub = gb.find_submission_notebook(notebook, assignment, student)
        except MissingEntry:
            return
        zero_grades(sub)
        gb.db.commit()


def apply_verdict(
    gb, notebook: str, assignment: str, student: str, *, withheld: bool, flagged: bool
) -> None:
    """The guard's verdict on one submitted notebook: its score withheld (zeros), flagged."""
    sub = gb.find_submission_notebook(notebook, assignment, student)
    if withheld:
        zero_grades(sub)
    sub.flagged = flagged
    gb.db.commit()


def _submission(gb, assignment: str, student: str, timestamp: str | None) -> bool:
    """Create or update the submission row; False if ``timestamp`` could not be stored (the
    row is then made without it)."""
    gb.update_or_create_student(student)
    kwargs = {"timestamp": timestamp} if timestamp else {}
    try:
        gb.update_or_create_submission(assignment, student, **kwargs)
        return True
    except Exception:  # noqa: BLE001  (an unreadable timestamp.txt: the row without it)
        gb.db.rollback()
        gb.update_or_create_submission(assignment, student)
        return not kwargs


def open_submission(db_url: str, assignment: str, student: str, timestamp: str | None) -> bool:
    """The submission row a worker grades into; False if ``timestamp`` was unreadable."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        return _submission(gb, assignment, student, timestamp)


def read_submission(db_url: str, assignment: str, student: str) -> dict:
    """What grading stored for one submission: ``notebooks`` (name -> grades, comments,
    late penalty), ``flagged``, ``score`` (late penalty deducted) and ``max_score``."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gb:
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            sub = gb.update_or_create_submission(assignment, student)
        notebooks, flagged = {}, False
        for nb in sub.notebooks:
            notebooks[nb.name] = {
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
            flagged = flagged or bool(nb.flagged)
        return {
            "notebooks": notebooks,
            "flagged": flagged,
            "score": float(sub.score - (sub.late_submission_penalty or 0.0)),
            "max_score": float(sub.max_score),
            "late": bool(sub.total_seconds_late > 0),
        }


def write_result(gb, result) -> None:
    """One result into the gradebook, replacing what an earlier grading of the same
    (student, assignment) wrote: idempotent. The flag is this grading's verdict, so the
    gradebook never holds a flag that the score beside it does not explain."""
    from nbgrader.api import MissingEntry

    _submission(gb, result.assignment, result.student_id, result.timestamp)
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
        for nb in gb.find_submission(result.assignment, result.student_id).notebooks:
            zero_grades(nb)
            nb.flagged = True
    gb.db.commit()
