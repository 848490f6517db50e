"""How fast is `attn-course report` on a large class? Prints time and peak memory from one
run (not a timed test). Target on 2 cores: 10,000 submissions in under 10 minutes.

The class is synthetic, one assignment (default 03_query_key_value): each student answers
every part with one of its validity cases (tests/grading_cases/: the instructor's, the
valid ones and the mistakes), disguised (identifiers renamed, functions reordered,
comments and blank lines changed; tests/similarity_fixtures.py), plus a few lines of the
student's own (constants of their own: a real class writes more than a dozen ways), and a
few groups of students hand in disguised copies of one submission. Autograding 10,000
notebooks would
take hours, so the grading is not run: the gradebook rows (one submission, its notebook and
a grade per test cell, with a score drawn per student) are written directly through
nbgrader's Gradebook API (its ORM classes, one commit), and the "autograded" notebooks are
the released notebook with the answers filled in. Everything after that is the real
`attn-course report`: the gradebook read, every notebook read, the failures, the similarity,
the page.

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
    folder = course / "autograded"
    for s in students:
        nb = copy.deepcopy(release)
        for cell in nb["cells"]:
            gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
            if gid in answers[s]:
                cell["source"] = answers[s][gid]
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
                    gb.db.add(Grade(cell=c, notebook=snb, needs_manual_grade=False,
                                    auto_score=c.max_score * (rng.random() < 0.8)))  # fmt: skip
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
        opts = ReportOptions(args.assignment, course=course)
        data = class_data(opts)
        t2 = time.perf_counter()
        files = write_report(data, course / "report")
        t3 = time.perf_counter()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sim = data.similarity
        found = sum(any(set(g) <= set(c) for c in sim["clusters"]) for g in planted)
        print(
            f"report of {args.n} submissions: {t3 - t1:.1f} s (reading and similarity "
            f"{t2 - t1:.1f} s, page and files {t3 - t2:.1f} s)"
        )
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
