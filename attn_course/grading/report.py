"""``attn-course report``: what a graded class got wrong, as one offline HTML page and its
numbers as CSV and JSON.

Everything is read after grading, from what either grading path leaves (``attn-course
grade`` or plain ``nbgrader autograde``): the scores from the gradebook (nbgrader's API,
SQLite or PostgreSQL), the failures, repairs, timeouts and kernel deaths from the autograded
notebooks (the course's preprocessors record them there, :func:`preprocessors.describe`),
the status of students without a notebook from ``grades.csv`` when ``attn-course grade``
wrote one, the starter code from the released notebooks. The page is drawn by
:mod:`~attn_course.grading.report_html`; the similarity by
:mod:`~attn_course.grading.similarity`.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from attn_course.grading.errors import SetupError

__all__ = ["ReportOptions", "class_data", "report", "status_kind", "write_report"]


@dataclass
class ReportOptions:
    assignment: str
    course: Path | None = None
    db: str | None = None  # default: the course config's, else <course>/gradebook.db
    out: Path | None = None  # default: <where grade wrote grades.csv>/report
    autograded: Path | None = None  # default: where grading put the autograded notebooks
    similarity: bool = True
    settings: object = None  # similarity.Settings (None: its defaults)


@dataclass
class ClassData:
    """What the report shows, as plain data (also its JSON)."""

    assignment: str
    gradebook: str
    students: dict = field(default_factory=dict)  # id -> score, max_score, flagged, status
    cells: dict = field(default_factory=dict)  # test cell -> points, notebook, scores
    failures: dict = field(default_factory=dict)  # test cell -> [cluster dicts]
    hidden: dict = field(default_factory=dict)  # test cell -> students failing hidden only
    statuses: dict = field(default_factory=dict)  # kind -> students
    similarity: dict | None = None


def status_kind(status: str) -> str:
    """The heading a status line is counted under (as in the summary of ``attn-course
    grade``): "timed out in test_add", "notebook missing", ..."""
    return status.split(":")[0].split(" (")[0]


def _locations(opts: ReportOptions):
    from attn_course.grading.batch import _safe_name
    from attn_course.grading.course import find_course, load_course_config
    from attn_course.grading.gradebook import database_url

    course = (opts.course or find_course()).resolve()
    cfg = load_course_config(course)
    course_db = database_url(f"sqlite:///{course / 'gradebook.db'}")
    db_url = database_url(opts.db or cfg.CourseDirectory.get("db_url", None) or course_db)
    graded = course / "graded" / opts.assignment  # where `attn-course grade` writes
    if db_url != course_db:
        graded = graded.with_name(f"{opts.assignment}@{_safe_name(db_url.split('@')[-1])}")
    # attn-course grade puts the notebooks of another gradebook beside its grades.csv; plain
    # nbgrader always into the course's autograded/
    own = course / cfg.CourseDirectory.get("autograded_directory", "autograded")
    beside = graded / "autograded"
    autograded = opts.autograded or (beside if db_url != course_db and beside.is_dir() else own)
    release = course / cfg.CourseDirectory.get("release_directory", "release") / opts.assignment
    return course, db_url, graded, Path(autograded), release


def _gradebook(db_url: str, assignment: str):
    """(notebook -> source cells, (student, notebook, cell, score, max, flagged) rows), in
    one query through nbgrader's ORM (a class of 10,000 reads in seconds, not per row)."""
    from nbgrader.api import (
        Assignment,
        Grade,
        Gradebook,
        GradeCell,
        MissingEntry,
        Notebook,
        SubmittedAssignment,  # fmt: skip
        SubmittedNotebook,
    )

    from attn_course.grading.gradebook import source_cells

    try:
        with Gradebook(db_url) as gb:
            try:
                names = [nb.name for nb in gb.find_assignment(assignment).notebooks]
            except MissingEntry:
                known = ", ".join(sorted(a.name for a in gb.assignments)) or "none"
                raise SetupError(
                    f"the gradebook has no assignment {assignment!r} (known: {known})"
                ) from None
            rows = (
                gb.db.query(SubmittedAssignment.student_id, Notebook.name, GradeCell.name,
                            Grade.score, GradeCell.max_score, SubmittedNotebook.flagged)
                .join(Assignment, Assignment.id == SubmittedAssignment.assignment_id)
                .join(SubmittedNotebook, SubmittedNotebook.assignment_id == SubmittedAssignment.id)
                .join(Notebook, Notebook.id == SubmittedNotebook.notebook_id)
                .join(Grade, Grade.notebook_id == SubmittedNotebook.id)
                .join(GradeCell, GradeCell.id == Grade.cell_id)
                .filter(Assignment.name == assignment)
                .all()
            )  # fmt: skip
    except SetupError:
        raise
    except Exception as err:  # noqa: BLE001  (a wrong URL, a server down: one clear line)
        from attn_course.grading.outputs import one_line

        raise SetupError(
            f"cannot read the gradebook {db_url.split('@')[-1]}: {one_line(err)}"
        ) from err
    cells = {name: source_cells(db_url, name, assignment) for name in names}
    return cells, rows


def _statuses(graded: Path) -> dict[str, str]:
    path = graded / "grades.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        return {r["student_id"]: r.get("status", "") for r in csv.DictReader(fh)}


def class_data(opts: ReportOptions) -> ClassData:
    """Read a graded class (:class:`ClassData`)."""
    from attn_course.grading.cells import part_name
    from attn_course.grading.failures import cell_failure
    from attn_course.grading.preprocessors import describe

    course, db_url, graded, autograded, release = _locations(opts)
    sources, rows = _gradebook(db_url, opts.assignment)
    if not rows:
        raise SetupError(
            f"no graded submission of {opts.assignment} in {db_url.split('@')[-1]}: "
            "grade it first (attn-course grade, or nbgrader autograde)"
        )
    data = ClassData(opts.assignment, db_url.split("@")[-1])
    tests = {}  # test cell -> notebook (graded, not an answer: what the autograder scores)
    for nb, src in sources.items():
        for name in src["grades"]:
            if name not in src["solutions"]:
                tests[name] = nb
                data.cells[name] = {"notebook": nb, "points": src["grades"][name], "scores": {}}
    for student, _, cell, score, max_score, flagged in rows:
        s = data.students.setdefault(student, {"score": 0.0, "max_score": 0.0, "flagged": False})
        s["score"] += float(score or 0.0)
        s["max_score"] += float(max_score or 0.0)
        s["flagged"] = s["flagged"] or bool(flagged)
        if cell in data.cells:
            data.cells[cell]["scores"][student] = float(score or 0.0)
    csv_status = _statuses(graded)
    clusters: dict = defaultdict(dict)
    answers: dict = {}
    solution_ids = {g for src in sources.values() for g in src["solutions"]}
    for student in sorted(data.students):
        lines = []
        for nb_name in sources:
            path = autograded / student / opts.assignment / f"{nb_name}.ipynb"
            try:
                nb = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # no notebook: grades.csv (or the zeros) says why
            lines += describe(_node(nb), prefix="")
            for index, cell in enumerate(nb.get("cells", [])):
                gid = part_name(cell, index)  # reads odd metadata defensively
                if (
                    gid in tests
                    and data.cells[gid]["scores"].get(student, 0.0) < data.cells[gid]["points"]
                ):
                    failure = cell_failure(cell)
                    if failure is not None:
                        _count(clusters[gid], failure, student)
                        if failure.hidden:
                            data.hidden.setdefault(gid, []).append(student)
            if opts.similarity:
                from attn_course.grading.similarity import answer_cells

                answers.setdefault(student, {}).update(answer_cells(nb, solution_ids))
        status = csv_status.get(student) or "; ".join(lines) or "graded"
        data.students[student]["status"] = status
        for line in status.split("; "):
            data.statuses.setdefault(status_kind(line), []).append(student)
    for gid, groups in clusters.items():
        data.failures[gid] = sorted(
            groups.values(), key=lambda g: (-len(g["students"]), g["title"])
        )
    if opts.similarity:
        data.similarity = _similarity(answers, release, sources, opts)
    return data


def _node(nb: dict):
    """What :func:`describe` reads of a notebook (its metadata, ``.cells``), without
    converting every cell (``nbformat.from_dict`` would, for each of 10,000 notebooks)."""
    from nbformat import NotebookNode

    return NotebookNode(metadata=nb.get("metadata", {}), cells=nb.get("cells", []))


def _title(sig: tuple) -> str:
    """A signature in words: "wrong shape: what w, got (2,), expected (3,)", or for a message
    read as text, "NameError: name 'add' is not defined"."""
    fields = [(k, v) for k, v in sig[1:] if v is not None]
    if [k for k, _ in fields] == ["message"]:
        return f"{sig[0]}: {fields[0][1]}" if fields[0][1] else sig[0]
    return sig[0] + ": " + ", ".join(f"{k} {v}" for k, v in fields)


def _count(groups: dict, failure, student: str) -> None:
    sig = failure.signature
    group = groups.setdefault(sig, {
        "kind": sig[0], "title": _title(sig),
        "example": failure.message, "students": [], "hidden": 0,
    })  # fmt: skip
    group["students"].append(student)
    group["hidden"] += bool(failure.hidden)


def _similarity(answers, release: Path, sources, opts) -> dict:
    from attn_course.grading.similarity import Settings, answer_cells, common_cap, compare_class

    starters = {}
    for nb_name, src in sources.items():
        path = release / f"{nb_name}.ipynb"
        try:
            starters.update(answer_cells(json.loads(path.read_text()), src["solutions"]))
        except (OSError, ValueError) as err:
            raise SetupError(
                f"the similarity needs the released notebook {path} (its starter code is not "
                f"the students' work): {err}; or pass --no-similarity"
            ) from err
    result = compare_class(answers, starters, opts.settings or Settings())
    return {
        "settings": asdict(result.settings),
        "pairs": [asdict(p) for p in result.pairs],
        "clusters": result.clusters,
        "short": result.short,
        "common": result.common,
        "candidates": result.candidates,
        "students": len(answers),
        "cap": common_cap(len(answers), result.settings),
    }


def write_report(data: ClassData, out: Path) -> dict[str, Path]:
    """The page and its numbers into ``out``: report.html, report.json and the CSV files."""
    from attn_course.grading.report_html import cell_numbers, render

    out.mkdir(parents=True, exist_ok=True)
    files = {"page": out / "report.html", "numbers": out / "report.json"}
    plain = asdict(data)
    files["numbers"].write_text(json.dumps(plain, indent=1, default=str))

    def table(name, head, rows):
        files[name] = out / f"{name}.csv"
        with files[name].open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(head)
            w.writerows(rows)

    table("students", ["student_id", "score", "max_score", "flagged", "status"],
          [[s, f"{d['score']:g}", f"{d['max_score']:g}", "yes" if d["flagged"] else "", d["status"]]
           for s, d in sorted(data.students.items())])  # fmt: skip
    table("cells", ["test_cell", "notebook", "points", "students", "full_marks", "pass_rate",
                    "mean_points", "failed_hidden_only"],
          [[c, d["notebook"], f"{d['points']:g}", *cell_numbers(d), len(data.hidden.get(c, []))]
           for c, d in data.cells.items()])  # fmt: skip
    table("failures", ["test_cell", "kind", "structure", "count", "failed_in_hidden", "students"],
          [[c, g["kind"], g["title"], len(g["students"]), g["hidden"], " ".join(g["students"])]
           for c, groups in data.failures.items() for g in groups])  # fmt: skip
    if data.similarity is not None:
        table("similarity", ["student_a", "student_b", "score", "evidence_chars", "parts"],
              [[p["a"], p["b"], f"{p['score']:.3f}", p["evidence"],
                " ".join(f"{k}:{v['similarity']:.2f}" for k, v in p["parts"].items())]
               for p in data.similarity["pairs"]])  # fmt: skip
    files["page"].write_text(render(data))
    return files


def report(opts: ReportOptions) -> dict[str, Path]:
    """Read the graded class and write the report; the files written."""
    _, db_url, graded, _, _ = _locations(opts)
    data = class_data(opts)
    return write_report(data, (opts.out or graded / "report").resolve())
