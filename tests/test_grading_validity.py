"""Grading validity: correct alternatives get full marks, common mistakes lose their part's
points and no other part's -- through the real `attn-course grade`, one batch per assignment.

The cases are data: tests/grading_cases/<assignment>.toml (format in the README there)."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import nbformat
import pytest
from grading_fixtures import ROOT, fill, grade_cmd, read_csv, solutions_of

CASES = Path(__file__).parent / "grading_cases"
CASE_FILES = sorted(CASES.glob("*.toml"))

pytestmark = [pytest.mark.grading]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


def load(path: Path) -> dict:
    spec = tomllib.loads(path.read_text())
    spec.setdefault("notebook", None)
    cases = [("reference", None, "solution", "valid", None)]
    for part, data in spec["parts"].items():
        for kind in ("valid", "mistakes"):
            for case in data.get(kind, []):
                sid = f"{_slug(part)}--{kind}--{_slug(case['name'])}"
                cases.append((sid, part, case["code"], kind, case.get("xfail")))
    ids = [c[0] for c in cases]
    assert len(ids) == len(set(ids)), f"{path.name}: two cases have the same part and name"
    spec["cases"] = cases
    return spec


SPECS = {p.stem: load(p) for p in CASE_FILES}
PARAMS = [
    pytest.param(
        name,
        case[0],
        id=f"{name}:{case[0]}",
        marks=[pytest.mark.xfail(reason=case[4], strict=True)] if case[4] else [],
    )
    for name, spec in SPECS.items()
    for case in spec["cases"]
]


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    """assignment -> (spec, {student_id: csv row}); each assignment graded in one run."""
    cache: dict = {}

    def run(name: str):
        if name in cache:
            return cache[name]
        spec = SPECS[name]
        assignment = spec["assignment"]
        base = tmp_path_factory.mktemp(f"validity-{name}")
        course = base / "course"
        course.mkdir()
        shutil.copy(ROOT / "nbgrader_config.py", course)
        for kind in ("solutions", "exercises"):
            shutil.copytree(ROOT / kind / assignment, course / kind / assignment)
        nb_name = spec["notebook"] or next((course / "exercises" / assignment).glob("*.ipynb")).stem
        release = nbformat.read(
            course / "exercises" / assignment / f"{nb_name}.ipynb", as_version=4
        )
        solutions = solutions_of(course, assignment)
        subs = base / "submissions"
        for sid, part, code, _, _ in spec["cases"]:
            answers = dict(solutions)
            if part is not None:
                answers[spec["parts"][part]["answer"]] = code.strip("\n")
            folder = subs / sid / assignment
            folder.mkdir(parents=True)
            nbformat.write(fill(release, answers), folder / f"{nb_name}.ipynb")
        proc = grade_cmd(
            course, assignment, subs, "--jobs", "2", "--timeout", "60", "--no-feedback"
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        cache[name] = (spec, read_csv(course / "graded" / assignment / "grades.csv"))
        return cache[name]

    return run


@pytest.mark.parametrize(("assignment", "student"), PARAMS)
def test_case(graded, assignment, student):
    spec, rows = graded(assignment)
    row, reference = rows[student], rows["reference"]
    _, part, code, kind, _ = next(c for c in spec["cases"] if c[0] == student)
    tests = spec["parts"][part]["tests"] if part is not None else []
    # a mistake that never returns times out in its own test cells only; graded all the same
    timed_out = {f"timed out in {t}" for t in tests} if kind == "mistakes" else set()
    assert row["status"] == "graded" or row["status"] in timed_out, row["status"]
    if kind == "valid":
        assert float(row["score"]) == float(row["max_score"]), (
            f"a correct answer lost points: {row}\n{code}"
        )
        return
    # the reference has full marks, so its per-cell scores are each test cell's points
    points = sum(float(reference[t]) for t in tests)
    got = sum(float(row[t] or 0) for t in tests)
    assert points > 0, f"{tests} carry no points in the reference row: {reference}"
    assert got < points, f"the mistake kept all {points:g} points of {tests}: {row}\n{code}"
    # ... and only there: a later part that uses this one is graded with the tests' own version
    others = [t for p, d in spec["parts"].items() if p != part for t in d["tests"]]
    lost = {t: f"{float(row[t] or 0):g} of {float(reference[t]):g}" for t in others}
    lost = {t: v for t, v in lost.items() if float(row[t] or 0) < float(reference[t])}
    assert not lost, f"the mistake in {part} also cost points in {lost}: {row}\n{code}"
