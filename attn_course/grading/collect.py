"""Finding the submissions: nbgrader's folder layout, or an LMS download mapped by nbgrader's
``zip_collect`` with one file-name pattern (:data:`DEFAULT_LMS_REGEXP`), the same for
``attn-course grade`` and, through :func:`configure_collect` in ``nbgrader_config.py``, for
``nbgrader zip_collect``."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from attn_course.grading.errors import SetupError
from attn_course.grading.tuning import quiet_logger

__all__ = [
    "DEFAULT_LMS_REGEXP",
    "configure_collect",
    "find_submissions",
    "lms_pattern",
    "marked_late",
]

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
    r"(?P<late>late_|LATE_)?"  # Canvas's late mark (nbgrader ignores the group; marked_late)
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
    for key, default in (("source_directory", "source"), ("release_directory", "release")):
        folder = course / cfg.CourseDirectory.get(key, default)
        if path.resolve() == folder.resolve():
            raise SetupError(
                f"SUBMISSIONS {path} is the course's {folder.name}/ folder (nbgrader's "
                f"{default}), not submissions. Expected <student_id>/{assignment}/"
                "<notebook>.ipynb (e.g. the course's submitted/) or an LMS download; nothing "
                "was graded"
            )
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
            return _not_assignments(layout, path, course, cfg, assignment)
        submitted = course / cfg.CourseDirectory.get("submitted_directory", "submitted")
        if path.parent.resolve() == submitted.resolve() and (path / assignment).is_dir():
            return {path.name: path / assignment}  # one student's folder: submitted/ivan
        # a folder of assignments (a copy of exercises/, whose translations in <a>/<lang>/
        # would map as duplicates) is refused before it is read as an LMS download
        _not_assignments({p.name: None for p in students}, path, course, cfg, assignment)
    if path.is_file() and not zipfile.is_zipfile(path):
        raise SetupError(f"SUBMISSIONS {path} is neither a folder nor a zip archive")
    regexp = lms_pattern(cfg, lms_regexp)
    students = _zip_collect(path, assignment, tmp, cfg, course, regexp)
    return _not_assignments(students, path, course, cfg, assignment)


def lms_pattern(cfg, lms_regexp: str | None = None) -> str:
    """--lms-regexp, else the course's pattern (nbgrader_config.py, the one `nbgrader
    zip_collect` uses too), else :data:`DEFAULT_LMS_REGEXP`."""
    course_regexp = cfg.get("FileNameCollectorPlugin", {}).get("named_regexp")
    return lms_regexp or course_regexp or DEFAULT_LMS_REGEXP


def marked_late(path: Path, regexp: str) -> set[str]:
    """The students whose files in an LMS download carry the LMS's late mark (the pattern's
    ``late`` group, Canvas's ``_late_``). nbgrader's zip_collect keeps only the names and a
    time it can read from the file name; Canvas gives a mark, not a time."""
    import re

    if path.is_dir():
        names = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    else:
        return set()
    late = set()
    for name in names:
        m = re.match(regexp, name)
        if m and m.groupdict().get("late") and m.groupdict().get("student_id"):
            late.add(m["student_id"])
    return late


def _not_assignments(students: dict, path: Path, course: Path, cfg, assignment: str) -> dict:
    """``students``, unless their ids are the course's assignment names (or their numbers):
    SUBMISSIONS was then a folder of assignments (the course's exercises/, one student's
    folder mapped as a download), and grading it would invent students in the gradebook."""
    source = course / cfg.CourseDirectory.get("source_directory", "source")
    names = {p.name for p in source.iterdir() if p.is_dir()} if source.is_dir() else set()
    like = sorted(
        sid for sid in students if any(sid == a or a.startswith(sid + "_") for a in names)
    )
    if like:
        raise SetupError(
            f"SUBMISSIONS {path} does not look like submissions: it would make students named "
            f"like the course's assignments ({', '.join(like)}). Expected the layout "
            f"<student_id>/{assignment}/<notebook>.ipynb (e.g. the course's submitted/), one "
            f"student's folder (submitted/<student_id>, holding {assignment}/), or an LMS "
            "download; nothing was graded"
        )
    return students


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
    app.log = quiet_logger("attn_course.grading.collect")
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
