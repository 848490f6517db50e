"""How fast is `attn-course report` on a large class? Prints time and peak memory from one
run (not a timed test). Target on 2 cores: 10,000 submissions in under 10 minutes.

The class is synthetic, one assignment (default 03_query_key_value): each student answers
every part with one of its validity cases (tests/grading_cases/: the instructor's, the
valid ones and the mistakes), disguised (identifiers renamed, functions reordered,
comments and blank lines changed; tests/similarity_fixtures.py), plus a few lines of the
student's own (constants of their own: a real class writes more than a dozen ways), and a
few groups of students hand in disguised copies of one submission.

Autograding 10,000 notebooks would take hours, so the grading is not run: the gradebook rows
(one submission, its notebook and a grade per test cell, a fifth of the test cells failed at
random) are written directly through nbgrader's Gradebook API (its ORM classes, one commit),
and the "autograded" notebooks are the released notebook with the answers filled in and, in
each failed test cell, the error output a check of attn_course.checks raises (a wrong shape
or wrong values). Everything after that is the real `attn-course report`: the gradebook
read, every notebook read, the failures grouped, the similarity, the page and its files.

    python benchmarks/report_speed.py [--n 10000] [--assignment 03_query_key_value]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from similarity_fixtures import disguise, released, ways  # noqa: E402


def own_lines(code: str, rng: random.Random) -> str:
    """``code`` with two to four statements of the student's own appended to its last block."""
    last = code.rstrip().splitlines()[-1]
    indent = " " * (len(last) - len(last.lstrip())) if last[:1].isspace() else ""
    extra = [
        f"{indent}{rng.choice(['tmp', 'scale', 'eps', 'k'])}{rng.randrange(9)} = "
        f"{rng.randrange(2, 10**6)} * {rng.choice(['1.0', '2', '0.5'])} + {rng.randrange(99)}"
        for _ in range(rng.randint(2, 4))
    ]
    return code.rstrip() + "\n" + "\n".join(extra)


def failure_output(test: str, count: int, rng: random.Random) -> dict:
    """An error output with a message attn_course.checks really raises (a wrong shape or
    wrong values, numbers drawn at random) and a traceback into the test cell."""
    import numpy as np

    from attn_course import checks

    what = f"{test.removeprefix('test_')}(x)"
    if rng.random() < 0.5:
        got, expected = np.zeros(rng.choice([(2,), (2, 3), (3, 2)])), np.zeros((2, 3))
    else:
        got, expected = np.full(3, rng.random()), np.full(3, 1 + rng.random())
    try:
        checks.check_array(what, got, expected)
        message = "NameError: name 'x' is not defined"
    except AssertionError as err:
        message = str(err)
    line = rng.randint(1, 4)
    return {"output_type": "error", "ename": "AssertionError", "evalue": message,
            "traceback": [f"Cell In[{count}], line {line}\n----> {line} check()"]}  # fmt: skip


def make_class(course: Path, assignment: str, n: int, copies: int, rng: random.Random):
    """The course folder, its gradebook and n "autograded" notebooks; the planted groups."""
    from nbgrader.api import Grade, Gradebook, Student, SubmittedAssignment, SubmittedNotebook

    from attn_course.grading.course import load_course_config
    from attn_course.grading.gradebook import record_assignment

    course.mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    for kind in ("solutions", "exercises"):
        shutil.copytree(ROOT / kind / assignment, course / kind / assignment)
    db = f"sqlite:///{course / 'gradebook.db'}"
    cfg = load_course_config(course)
    record_assignment(course, cfg, assignment, db, course / "tmp-release")
    starters, release = released(assignment)
    options = ways(assignment, mistakes=True)
    nb_name = next((course / "exercises" / assignment).glob("*.ipynb")).stem
    students = [f"student{i:05d}" for i in range(n)]
    planted = [students[i * 7 : i * 7 + 3] for i in range(copies)]  # groups of three
    answers = {}
    for s in students:
        answers[s] = {
            g: own_lines(disguise(rng.choice(options[g]), rng, keep=set(starters)), rng)
            for g in starters
        }
    for group in planted:
        for s in group[1:]:
            answers[s] = {
                g: disguise(c, rng, keep=set(starters)) for g, c in answers[group[0]].items()
            }
    tests = [c["metadata"]["nbgrader"]["grade_id"] for c in release["cells"]
             if c["metadata"].get("nbgrader", {}).get("grade") and not
             c["metadata"]["nbgrader"].get("solution")]  # fmt: skip
    failed = {s: {t for t in tests if rng.random() < 0.2} for s in students}
    folder = course / "autograded"
    for s in students:
        nb = copy.deepcopy(release)
        for count, cell in enumerate(nb["cells"], 1):
            gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
            if gid in answers[s]:
                cell["source"] = answers[s][gid]
            if gid in failed[s]:  # the error output a failing check leaves
                cell["execution_count"] = count
                cell["outputs"] = [failure_output(gid, count, rng)]
        (folder / s / assignment).mkdir(parents=True)
        (folder / s / assignment / f"{nb_name}.ipynb").write_text(json.dumps(nb))
    with Gradebook(db) as gb:
        notebook = gb.find_notebook(nb_name, assignment)
        a = gb.find_assignment(assignment)
        cells = list(notebook.grade_cells)
        gb.db.add_all(Student(id=s) for s in students)
        with gb.db.no_autoflush:  # one flush at the commit, not one per object
            for s in students:
                sub = SubmittedAssignment(assignment=a, student_id=s)
                gb.db.add(sub)
                snb = SubmittedNotebook(assignment=sub, notebook=notebook)
                for c in cells:
                    score = 0.0 if c.name in failed[s] else c.max_score
                    gb.db.add(Grade(cell=c, notebook=snb, needs_manual_grade=False,
                                    auto_score=score))  # fmt: skip
        gb.db.commit()
    return planted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--assignment", default="03_query_key_value")
    ap.add_argument("--copies", type=int, default=20, help="planted groups of three copies")
    args = ap.parse_args()
    from attn_course.grading import put_bin_on_path
    from attn_course.grading.report import ReportOptions, class_data, write_report

    put_bin_on_path()  # nbgrader runs this environment's `alembic`

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp) / "course"
        t0 = time.perf_counter()
        planted = make_class(course, args.assignment, args.n, args.copies, rng)
        t1 = time.perf_counter()
        print(f"synthetic class of {args.n} written in {t1 - t0:.1f} s (not part of the report)")
        cpu0 = time.process_time()
        opts = ReportOptions(args.assignment, course=course)
        data = class_data(opts)
        t2 = time.perf_counter()
        files = write_report(data, course / "report")
        t3 = time.perf_counter()
        cpu = time.process_time() - cpu0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sim = data.similarity
        found = sum(any(set(g) <= set(c) for c in sim["clusters"]) for g in planted)
        print(
            f"report of {args.n} submissions: {t3 - t1:.1f} s (reading and similarity "
            f"{t2 - t1:.1f} s, page and files {t3 - t2:.1f} s)"
        )
        print(f"CPU time of the report: {cpu:.1f} s (wall time is longer on a busy machine)")
        print(f"peak memory (this process, including the class's creation): {peak:.0f} MiB")
        print(
            f"pairs compared in full: {sim['candidates']}; shown: {len(sim['pairs'])} in "
            f"{len(sim['clusters'])} groups; planted groups found: {found} of {len(planted)}"
        )
        print(f"page: {files['page'].stat().st_size / 2**20:.1f} MiB")
        target = 600 * args.n / 10_000
        verdict = "met" if t3 - t1 < target else "MISSED"
        print(f"target: under {target:.0f} s for {args.n} -> {verdict}")


if __name__ == "__main__":
    main()
