"""nbgrader preprocessors that make sanitising and scoring robust to what students do.

- :class:`RepairSubmission` runs before nbgrader's own sanitising preprocessors
  (``DeduplicateIds``, ``OverwriteCells``, ``CheckCellMetadata``) and brings
  any notebook into a shape they accept, recording what it changed: duplicated
  cell ids renumbered, nbgrader metadata of graded cells reset from the
  gradebook (a student may have edited it, or copied a cell so it exists twice),
  extra copies of a graded cell demoted to ordinary cells, cells whose
  ``grade_id`` the gradebook does not know demoted too. Without it, a single
  duplicated test cell makes plain nbgrader stop the whole batch ("old version
  of the nbgrader metadata format"), because its ``DeduplicateIds`` leaves an
  empty metadata dict behind.
- :class:`SaveAutoGradesFair` is nbgrader's ``SaveAutoGrades`` except that text
  on stderr does not zero a test cell: only an error does. A warning printed
  by a correct answer keeps its points. It also applies the grading guard's
  verdict (from :class:`~attn_course.grading.execute.GradingExecute`'s report):
  a removed guard withholds the notebook's score; undone monkeypatching flags it.
  The flag is decided afresh at every grading, so it always explains the score.

What each of them did travels with the notebook, in its metadata under
``attn_course`` (``repairs``, ``execution``, ``verdict``), and is logged through
nbgrader's log, so plain ``nbgrader autograde`` says it too.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor, SaveAutoGrades

from attn_course.grading.cells import part_name
from attn_course.grading.gradebook import apply_verdict, source_cells
from attn_course.grading.languages import ENGLISH, notebook_language, to_source

__all__ = [
    "FromTranslation",
    "FromWorkedTranslation",
    "RepairSubmission",
    "SaveAutoGradesFair",
    "describe",
    "report_of",
]


def report_of(nb) -> dict:
    """What the course's preprocessors recorded in ``nb`` (``repairs``, ``execution``, ...)."""
    return nb.get("metadata", {}).get("attn_course", {})


def describe(nb, prefix: str = "", repairs: bool = True) -> list[str]:
    """What happened to one graded notebook, in the words of `attn-course grade`'s ``status``
    and of nbgrader's log (one definition for both paths), from what the preprocessors
    recorded in it."""
    report = report_of(nb)
    out = []
    if report.get("graded_from"):
        where = report["graded_from"]
        out.append(f"{prefix}graded {where}: the notebook at the top was as released")
    if repairs and report.get("repairs"):
        out.append(f"{prefix}cells tampered with and restored: " + ", ".join(report["repairs"]))
    run = report.get("execution", {})
    pieces = [
        ("timed out in", run.get("timeouts")),
        ("kernel died in", run.get("deaths")),
        ("out of memory in", run.get("memory")),
        ("kernel hung (interrupt ignored) in", run.get("hangs")),
    ]
    for words, indices in pieces:
        if indices:
            out.append(f"{prefix}{words} {', '.join(part_name(nb.cells[i], i) for i in indices)}")
    if run.get("memory"):
        out[-1] += " (re-run in a fresh kernel without it)"
    if run.get("not_run"):
        out.append(f"{prefix}{len(run['not_run'])} cells not run (time budget or repeated deaths)")
    if run.get("truncated"):
        out.append(f"{prefix}output truncated in {len(run['truncated'])} cells")
    undone = run.get("undone") or []
    if undone:
        shown = ", ".join(undone[:4]) + (", ..." if len(undone) > 4 else "")
        out.append(f"{prefix}monkeypatching undone before the tests: {shown} (flagged for review)")
    if not run.get("guard_ok", True):
        out.append(f"{prefix}score withheld: {run.get('guard_problem')} (flagged for review)")
    return out


def _answered(nb) -> bool:
    """Whether a student changed an answer cell: nbgrader's own checksum of each answer cell
    as released, against the cell now. Metadata too broken to tell counts as changed (the
    notebook stays the one graded; ``RepairSubmission`` deals with it)."""
    try:
        return any(
            utils.is_solution(cell)
            and cell.metadata.nbgrader.get("checksum") != utils.compute_checksum(cell)
            for cell in nb.cells
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        return True


class FromWorkedTranslation(NbGraderPreprocessor):
    """The notebook the student worked in, when that is a translation.

    nbgrader's exchange hands each student the whole release: the English notebook at the top
    and each translation in ``<lang>/`` under the same name (``TranslateRelease``), and
    nbgrader grades the notebook at the top. When no answer of that one changed and exactly one
    translation's did, the translation is graded in its place, and its metadata says so
    (``attn_course.graded_from``, which :func:`describe` reports). First of the sanitising
    preprocessors: everything after it sees the notebook that is graded."""

    def preprocess(self, nb, resources):
        if _answered(nb):
            return nb, resources
        folder = Path(resources.get("metadata", {}).get("path") or ".")
        name = resources["nbgrader"]["notebook"] + ".ipynb"
        worked = []
        for path in sorted(folder.glob(f"*/{name}")):
            try:
                other = nbformat.read(path, as_version=4)
            except (OSError, ValueError) as err:  # a broken extra file: the top one is graded
                self.log.warning("%s: not read (%s)", path, err)
                continue
            language = notebook_language(other, unknown=ENGLISH)
            if language != ENGLISH and path.parent.name == language and _answered(other):
                worked.append((path, other))
        if len(worked) != 1:
            if worked:
                self.log.warning(
                    "%s: answers in %s and none at the top; the top one is graded",
                    name,
                    ", ".join(str(p.relative_to(folder)) for p, _ in worked),
                )
            return nb, resources
        path, other = worked[0]
        graded_from = path.relative_to(folder).as_posix()
        other.metadata.setdefault("attn_course", {})["graded_from"] = graded_from
        self.log.info("%s: graded %s, where the answers are", name, graded_from)
        return other, resources


class FromTranslation(NbGraderPreprocessor):
    """A notebook in another language (``exercises/<assignment>/<lang>/``) graded as the
    English one: first among the sanitising preprocessors, before anything compares a cell
    with the gradebook, every locked cell the student left as released in that language
    becomes the instructor's cell (:func:`~attn_course.grading.languages.to_source`); an
    edited one stays, for ``RepairSubmission`` and ``OverwriteCells``. The language stays in
    the notebook's metadata (``attn_course.language``): ``GradingExecute`` switches the
    kernel's messages to it, and the feedback is written in it."""

    def preprocess(self, nb, resources):
        ids = resources["nbgrader"]
        source = source_cells(ids["db_url"], ids["notebook"], ids["assignment"])
        locked = {name: cell for name, cell in source["cells"].items() if cell.locked}
        try:
            language, mapped = to_source(nb, locked)
        except ValueError as err:  # a language this course has no catalog of
            self.log.warning("%s: %s; graded as English", ids["notebook"], err)
            said = nb.metadata["attn_course"]
            kept = said if isinstance(said, dict) else {}  # not a mapping: nothing to keep
            nb.metadata["attn_course"] = {k: v for k, v in kept.items() if k != "language"}
            language, mapped = to_source(nb, locked)
        if language != ENGLISH:
            self.log.info(
                "%s: in %s (%d locked cells as released)", ids["notebook"], language, len(mapped)
            )
        return nb, resources


class RepairSubmission(NbGraderPreprocessor):
    """Make a submitted notebook's nbgrader metadata consistent with the gradebook.

    What it changed is written to the notebook's metadata (``attn_course.repairs``, read by
    the next step of nbgrader's pipeline and by ``attn-course grade``) and to ``changes``.
    A locked cell counts as unedited if it matches the instructor's version or the one
    students received (hidden tests removed by nbgrader's own ``ClearHiddenTests``).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.changes: list[str] = []

    def _release_checksum(self, src, fresh) -> str:
        cell = NotebookNode(
            cell_type=src.cell_type,
            source=src.source,
            metadata=NotebookNode(nbgrader=NotebookNode(fresh)),
        )
        if src.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell, _ = ClearHiddenTests(parent=self).preprocess_cell(cell, {}, 0)
        return utils.compute_checksum(cell)

    def preprocess(self, nb, resources):
        notebook_id = resources["nbgrader"]["notebook"]
        assignment_id = resources["nbgrader"]["assignment"]
        changes = self.changes
        source = source_cells(resources["nbgrader"]["db_url"], notebook_id, assignment_id)
        cells, grades = source["cells"], source["grades"]
        solutions, tasks = source["solutions"], source["tasks"]

        # 1. cell ids (nbformat >= 4.5) must be unique or the notebook does not validate
        seen_ids: set[str] = set()
        duplicated = False
        for cell in nb.cells:
            cid = cell.get("id")
            if cid is None:
                continue
            if cid in seen_ids:
                cell["id"] = uuid.uuid4().hex[:8]
                duplicated = True
            seen_ids.add(cell["id"])
        if duplicated:
            changes.append("duplicated cell ids renumbered")

        # 2. graded cells: keep the last copy of each grade_id (as nbgrader does), reset its
        #    metadata from the gradebook; demote copies and unknown ids to ordinary cells
        last: dict[str, int] = {}
        for index, cell in enumerate(nb.cells):
            meta = cell.get("metadata", {}).get("nbgrader")
            if isinstance(meta, dict) and meta.get("grade_id") in cells:
                last[meta["grade_id"]] = index
        for index, cell in enumerate(nb.cells):
            cell.setdefault("metadata", NotebookNode())
            meta = cell.metadata.get("nbgrader")
            if meta is None:
                continue
            grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
            if grade_id not in cells:
                del cell.metadata["nbgrader"]
                if grade_id is not None or (isinstance(meta, dict) and meta.get("grade")):
                    changes.append(f"unknown graded cell {grade_id!r} made an ordinary cell")
                continue
            if last[grade_id] != index:
                del cell.metadata["nbgrader"]
                changes.append(f"{grade_id} duplicated (the extra copy is an ordinary cell)")
                continue
            src = cells[grade_id]
            fresh = NotebookNode(
                grade=grade_id in grades,
                solution=grade_id in solutions,
                locked=bool(src.locked),
                grade_id=grade_id,
                schema_version=3,
            )
            if grade_id in grades:
                fresh["points"] = grades[grade_id]
            if grade_id in tasks:
                fresh["task"] = True
                fresh["points"] = grades.get(grade_id, 0.0)
            if "checksum" in meta:
                fresh["checksum"] = meta["checksum"]
            changed = (
                {
                    k
                    for k in ("grade", "solution", "locked", "points")
                    if meta.get(k) != fresh.get(k)
                }
                if isinstance(meta, dict)
                else {"all"}
            )
            if changed:
                changes.append(f"{grade_id} metadata edited (reset)")
            if src.locked and cell.cell_type == src.cell_type:
                probe = NotebookNode(cell)
                probe.metadata = NotebookNode(nbgrader=fresh)
                released = self._release_checksum(src, fresh)
                if utils.compute_checksum(probe) not in (src.checksum, released):
                    changes.append(f"{grade_id} edited (restored)")
                else:  # as released: its hidden tests back now, as OverwriteCells would put
                    # them, so nbgrader's checksum warning is left for real edits (#1961)
                    cell.source = src.source
            elif cell.cell_type != src.cell_type:
                changes.append(f"{grade_id} changed to a {cell.cell_type} cell (restored)")
            cell.metadata["nbgrader"] = fresh

        # 3. graded cells that are gone come back (from the gradebook), after the nearest earlier
        #    cell of the source notebook that is still there. nbgrader's own add_missing_cells
        #    raises KeyError when that earlier cell is gone too.
        order = list(cells)
        for grade_id in grades:
            if grade_id in last:
                continue
            present = {
                c.metadata["nbgrader"]["grade_id"]: i
                for i, c in enumerate(nb.cells)
                if "grade_id" in c.get("metadata", {}).get("nbgrader", {})
            }
            position = 0
            for earlier in reversed(order[: order.index(grade_id)]):
                if earlier in present:
                    position = present[earlier] + 1
                    break
            src = cells[grade_id]
            meta = {
                "grade": True,
                "grade_id": grade_id,
                "locked": bool(src.locked),
                "points": grades[grade_id],
                "schema_version": 3,
                "solution": grade_id in solutions,
                "checksum": src.checksum,
            }
            cell = nbformat.from_dict(
                {
                    "cell_type": src.cell_type,
                    "source": src.source,
                    "id": uuid.uuid4().hex[:8],
                    "metadata": {"deletable": False, "editable": False, "nbgrader": meta},
                    **({"outputs": [], "execution_count": None} if src.cell_type == "code" else {}),
                }
            )
            nb.cells.insert(position, cell)
            changes.append(f"{grade_id} deleted (restored)")
        changes[:] = list(dict.fromkeys(changes))
        nb.metadata.setdefault("attn_course", {})["repairs"] = list(changes)
        for change in changes:
            self.log.warning("%s: %s", notebook_id, change)
        return nb, resources


class SaveAutoGradesFair(SaveAutoGrades):
    """SaveAutoGrades, scoring a test cell by its errors only (stderr text is not an error),
    then applying the guard's verdict to the gradebook (score withheld, flagged)."""

    def preprocess(self, nb, resources):
        nb, resources = super().preprocess(nb, resources)
        execution = report_of(nb).get("execution", {})
        undone = list(execution.get("undone", []))
        guard_ok = bool(execution.get("guard_ok", True))
        verdict = {"flagged": bool(undone) or not guard_ok, "withheld": not guard_ok}
        with Gradebook(self.db_url) as gb:
            apply_verdict(gb, self.notebook_id, self.assignment_id, self.student_id, **verdict)
        nb.metadata.setdefault("attn_course", {})["verdict"] = verdict
        for line in describe(nb, repairs=False):  # RepairSubmission logged its own
            self.log.warning("%s: %s", self.notebook_id, line)
        return nb, resources

    def _add_score(self, cell, resources):
        """nbgrader's own scoring of one cell, shown the cell without its stderr output.

        ``SaveAutoGrades._add_score`` is private: nbgrader has no public hook for how a cell's
        outputs are scored. This delegates to it (no copy of its body) and the upstream
        fingerprint test (:mod:`attn_course.grading.upstream`) fails if it changes."""
        probe = NotebookNode(cell)
        if cell.cell_type == "code":
            probe["outputs"] = [
                o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")
            ]
        super()._add_score(probe, resources)
