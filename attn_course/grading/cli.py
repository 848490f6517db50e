"""The ``attn-course`` command.

Subcommands (``attn-course SUBCOMMAND --help`` for each):

- ``grade``: grade a whole class's submissions of one assignment in parallel, boxed
  (:mod:`attn_course.grading.batch`);
- ``check``: a student's self-check of one notebook before handing it in
  (:mod:`attn_course.grading.selfcheck`);
- ``report``: a graded class's report (:mod:`attn_course.grading.report`).

A new subcommand is a function ``_add_NAME(subparsers)`` that registers its parser
with ``set_defaults(func=...)``; :func:`main` dispatches on it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main"]

DESCRIPTION = (
    "The course's grading commands: grade a whole class's submissions of one assignment "
    "(grade), or check one notebook before handing it in (check)."
)


def _at_least_one(text: str) -> int:
    """An argparse type: a whole number >= 1. 0 is an error, never "the default"."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _default(name: str):
    """The grader's default of a setting, as GradingExecute's trait has it (read without
    importing nbgrader: the students' install has `attn-course check` but no grader)."""
    from attn_course.grading.sandbox import DEFAULTS

    return DEFAULTS[name]


def _add_grade(sub) -> None:
    p = sub.add_parser(
        "grade",
        help="grade every submission of an assignment (parallel, sandboxed, into the gradebook)",
        description=(
            "Grade every submission of ASSIGNMENT in SUBMISSIONS with nbgrader, in parallel. "
            "SUBMISSIONS is a folder in nbgrader's layout (<student_id>/ASSIGNMENT/*.ipynb), or "
            "an LMS download (zip or folder), mapped with nbgrader's zip_collect. Scores go to "
            "the gradebook, feedback HTML and grades.csv to --out. Exit status 0 when every "
            "submission got a row (even a zero); 2 for a setup error."
        ),
    )
    p.add_argument("assignment", metavar="ASSIGNMENT", help="e.g. 03_query_key_value")
    p.add_argument("submissions", metavar="SUBMISSIONS", type=Path)
    p.add_argument(
        "--jobs",
        "-j",
        type=_at_least_one,
        default=None,
        help="parallel workers (default: the number of cores)",
    )
    p.add_argument(
        "--db",
        default=None,
        help="gradebook URL (default: sqlite:///<course>/gradebook.db; "
        "postgresql://user@host/db for a shared one)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for grades.csv and feedback (default: <course>/graded/ASSIGNMENT)",
    )
    p.add_argument(
        "--timeout",
        type=_at_least_one,
        default=None,
        help="seconds per cell before it is interrupted "
        f"(default: the course config's, else {_default('timeout')})",
    )
    p.add_argument(
        "--memory",
        default=None,
        help="memory limit per kernel, e.g. 2G or 512M "
        f"(default: the course config's, else {_default('memory')})",
    )
    p.add_argument(
        "--course",
        type=Path,
        default=None,
        help="course folder (default: the nearest folder with nbgrader_config.py)",
    )
    p.add_argument(
        "--lms-regexp",
        default=None,
        help="regular expression with (?P<student_id>...) and (?P<file_id>...) for "
        "the file paths of an LMS download (nbgrader's FileNameCollectorPlugin)",
    )
    p.add_argument("--keep-work", action="store_true", help="keep the temporary work folders")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-feedback",
        action="store_true",
        help="skip the feedback HTML (faster; e.g. for test batches)",
    )
    p.add_argument(
        "--unboxed",
        action="store_true",
        help="grade even where bubblewrap cannot box the kernels (the explicit opt-in: student "
        "code can then read and write every file this user can); also c.GradingExecute.boxed",
    )
    p.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        default=None,
        help="grade on the workers of this Dask scheduler instead of local processes",
    )
    p.set_defaults(func=_grade)


REEXEC = "ATTN_COURSE_REEXEC"


def _use_the_courses_package(args, argv: list[str]) -> None:
    """Run again with the course folder's own ``attn_course`` first on ``sys.path`` when the
    course holds one and this process imported another (an environment installed from
    another folder). Plain ``nbgrader autograde`` imports the course's copy (nbgrader puts
    its working folder, the course, on ``sys.path``): both paths then grade alike."""
    from attn_course.grading.course import find_course
    from attn_course.grading.errors import SetupError
    from attn_course.grading.sandbox import package_dir

    if os.environ.get(REEXEC):
        return
    try:
        course = (args.course or find_course()).resolve()
    except SetupError:
        return  # grade() says what is wrong
    own = course / "attn_course"
    if not (own / "__init__.py").is_file() or own.resolve() == package_dir():
        return
    code = (
        f"import sys; sys.path.insert(0, {str(course)!r}); "
        "from attn_course.grading.cli import main; sys.exit(main())"
    )
    os.execve(sys.executable, [sys.executable, "-c", code, *argv], {**os.environ, REEXEC: "1"})


def _grade(args) -> int:
    from attn_course.grading.batch import GradeOptions, grade

    opts = GradeOptions(
        assignment=args.assignment,
        submissions=args.submissions,
        jobs=args.jobs,
        db=args.db,
        out=args.out,
        timeout=args.timeout,
        memory=args.memory,
        course=args.course,
        lms_regexp=args.lms_regexp,
        keep_work=args.keep_work,
        progress=not args.no_progress,
        feedback=not args.no_feedback,
        scheduler=args.scheduler,
        unboxed=args.unboxed,
    )
    grade(opts)
    return 0


def _add_check(sub) -> None:
    p = sub.add_parser(
        "check",
        help="run a notebook's tests and say which parts pass (a student's self-check)",
        description=(
            "Run NOTEBOOK from top to bottom in a fresh kernel, as the grader will, and print "
            "for every graded part whether its tests passed, and why not. Only the tests in "
            "the notebook run: the hidden tests of the real grading are not there."
        ),
    )
    p.add_argument("notebook", metavar="NOTEBOOK", type=Path)
    p.add_argument(
        "--timeout",
        type=_at_least_one,
        default=None,
        help=f"seconds per cell (default: {_default('timeout')})",
    )
    p.set_defaults(func=_check)


def _check(args) -> int:
    from attn_course.grading.selfcheck import check_notebook

    return check_notebook(args.notebook, timeout=args.timeout)


def _add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help="a graded class's report: scores, failures by kind, hidden tests, similarity",
        description=(
            "Write the report of a graded ASSIGNMENT (after attn-course grade or nbgrader "
            "autograde): one offline HTML page with the score distribution, each test cell's "
            "pass rate, the failures grouped by their structure, the hidden tests that fail "
            "students who pass the public ones, flags, timeouts and repairs, and submissions "
            "that are alike (a reason to look, never a verdict); its numbers as CSV and JSON."
        ),
    )
    p.add_argument("assignment", metavar="ASSIGNMENT")
    p.add_argument("--db", default=None, help="gradebook URL (default: as for grade)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the report (default: <the grades' folder>/report)",
    )
    p.add_argument(
        "--autograded",
        type=Path,
        default=None,
        help="folder of the autograded notebooks (default: where grading put them)",
    )
    p.add_argument(
        "--course", type=Path, default=None, help="course folder (default: as for grade)"
    )
    p.add_argument("--no-similarity", action="store_true", help="skip the similarity")
    p.add_argument(
        "--threshold",
        type=_share,
        default=None,
        help="share of the evidence that must match for a pair to be shown "
        "(0 < t <= 1; default 0.4)",
    )
    p.set_defaults(func=_report)


def _share(text: str) -> float:
    """An argparse type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {value}")
    return value


def _report(args) -> int:
    from attn_course.grading.report import ReportOptions, report
    from attn_course.grading.similarity import Settings

    settings = Settings() if args.threshold is None else Settings(threshold=args.threshold)
    files = report(ReportOptions(
        assignment=args.assignment, course=args.course, db=args.db, out=args.out,
        autograded=args.autograded, similarity=not args.no_similarity, settings=settings,
    ))  # fmt: skip
    for what, path in files.items():
        print(f"{what}: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``attn-course`` console script."""
    parser = argparse.ArgumentParser(prog="attn-course", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    _add_grade(sub)
    _add_check(sub)
    _add_report(sub)
    args = parser.parse_args(argv)
    if args.command == "grade":
        _use_the_courses_package(args, sys.argv[1:] if argv is None else argv)
    from attn_course.grading import put_bin_on_path
    from attn_course.grading.errors import SetupError

    put_bin_on_path()  # nbgrader runs `alembic`, Jupyter starts `python`: this environment's

    try:
        return args.func(args)
    except SetupError as err:
        print(f"attn-course {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("attn-course: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
