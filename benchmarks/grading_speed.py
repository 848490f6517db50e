"""How fast is `attn-course grade`? Prints ratios from one run (not a timed test).

For every assignment in solutions/ (or those named with --assignments), 40 submissions
(the instructor's answers, the untouched exercise, and the validity cases of
tests/grading_cases/ in turn) are graded

1. by plain sequential `nbgrader autograde` (in its own copy of the course), and
2. by `attn-course grade --jobs N` (default: the cores),

and the floor is measured: running the same notebooks (hidden tests included) with nothing but
a kernel, one after the other (kernel start + imports + the tests' own compute), on a sample
spread over the 40.

Both courses start as a real one does when the submissions come in: the assignment was
generated (``nbgrader generate_assignment``, not timed), so the gradebook exists.

Targets on 2 cores: speed-up >= 1.8x over plain nbgrader, and per-submission cost
(wall time x workers / submissions) within 1.3x of the floor. Plain nbgrader runs with the
course's nbgrader_config.py, so with the course's plugin (the same grading).

``--cluster``: the same n submissions of one assignment graded by the local pool (``--jobs 2``)
and by a 2-worker Dask cluster on loopback (``--scheduler``), side by side; target: the
cluster's wall time within 1.15x of the pool's.

``--writer``: how many results per second the single gradebook writer (the parent process)
records, from a synthetic stream of results into SQLite and into PostgreSQL (a throw-away
server, as in the tests).

    python benchmarks/grading_speed.py [--n 40] [--jobs 2] [--assignments 03_query_key_value]
    python benchmarks/grading_speed.py --cluster [--assignments 03_query_key_value]
    python benchmarks/grading_speed.py --writer [--results 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests"))
from grading_fixtures import (  # noqa: E402
    LoopbackCluster,
    fill,
    postgres_server,
    solutions_of,
)


def _env():
    from attn_course.grading import nbgrader_env

    return nbgrader_env()


def _answers(course: Path, assignment: str, n: int):
    """n notebooks: the solution, the untouched exercise, then the validity cases in turn."""
    release_path = next((course / "exercises" / assignment).glob("*.ipynb"))
    release = nbformat.read(release_path, as_version=4)
    sol = solutions_of(course, assignment)
    variants = [fill(release, sol), release]
    case_file = ROOT / "tests" / "grading_cases" / f"{assignment}.toml"
    if case_file.exists():
        spec = tomllib.loads(case_file.read_text())
        for part in spec["parts"].values():
            for kind in ("valid", "mistakes"):
                for case in part.get(kind, []):
                    variants.append(fill(release, {**sol, part["answer"]: case["code"]}))
    return release_path.stem, [variants[i % len(variants)] for i in range(n)]


def _floor(course: Path, assignment: str, nb_name: str, notebooks, samples: int) -> float:
    """Seconds per notebook with nothing but a kernel: the answers plus the hidden tests."""
    source = nbformat.read(course / "solutions" / assignment / f"{nb_name}.ipynb", as_version=4)
    times = []
    step = max(1, len(notebooks) // samples)
    for nb in notebooks[::step][:samples]:
        answers = {
            c.metadata["nbgrader"]["grade_id"]: c.source
            for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")
        }
        full = fill(source, answers)  # the instructor's cells (hidden tests) + the answers
        for cell in full.cells:
            cell.source = cell.source.replace("### BEGIN HIDDEN TESTS", "").replace(
                "### END HIDDEN TESTS", ""
            )
        t = time.perf_counter()
        NotebookClient(
            full,
            timeout=120,
            allow_errors=True,
            kernel_name="python3",
            resources={"metadata": {"path": str(course)}},
        ).execute(stderr=subprocess.DEVNULL)  # the kernel's start-up warnings
        times.append(time.perf_counter() - t)
    return sum(times) / len(times)


def bench(assignment: str, n: int, jobs: int, floor_samples: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="grading-bench-"))
    try:
        courses = {}
        for which in ("plain", "ours"):
            course = tmp / which
            course.mkdir()
            shutil.copy(ROOT / "nbgrader_config.py", course)
            for kind in ("solutions", "exercises"):
                shutil.copytree(ROOT / kind / assignment, course / kind / assignment)
            courses[which] = course
        nb_name, notebooks = _answers(courses["ours"], assignment, n)
        subs = tmp / "submissions"
        for i, nb in enumerate(notebooks):
            folder = subs / f"student{i:03d}" / assignment
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{nb_name}.ipynb")

        floor = _floor(courses["ours"], assignment, nb_name, notebooks, floor_samples)

        plain = courses["plain"]
        shutil.copytree(subs, plain / "submitted")
        for course in courses.values():
            subprocess.run(
                [str(BIN / "nbgrader"), "generate_assignment", assignment, "--force"],
                cwd=course,
                check=True,
                capture_output=True,
                env=_env(),
            )
        t = time.perf_counter()
        proc = subprocess.run(
            [str(BIN / "nbgrader"), "autograde", assignment, "--force"],
            cwd=plain,
            capture_output=True,
            text=True,
            env=_env(),
        )
        t_plain = time.perf_counter() - t
        if proc.returncode != 0:
            print(f"  (plain nbgrader exited {proc.returncode}: some submissions failed)")

        t = time.perf_counter()
        proc = subprocess.run(
            [
                str(BIN / "attn-course"),
                "grade",
                assignment,
                str(subs),
                "--jobs",
                str(jobs),
                "--no-progress",
            ],
            cwd=courses["ours"],
            capture_output=True,
            text=True,
            env=_env(),
        )
        t_ours = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"attn-course grade failed:\n{proc.stderr[-3000:]}")
        # the feedback each student gets: its HTML per notebook (maths included, offline)
        pages = list((courses["ours"] / "graded" / assignment).glob("*/*.html"))
        feedback = max((p.stat().st_size for p in pages), default=0)
        return {"floor": floor, "plain": t_plain, "ours": t_ours, "feedback": feedback}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_cluster(assignment: str, n: int) -> dict:
    """Wall time of the local pool (2 processes) and of a 2-worker loopback Dask cluster on the
    same n submissions, each into its own gradebook."""
    tmp = Path(tempfile.mkdtemp(prefix="grading-bench-cluster-"))
    cluster = None
    try:
        course = tmp / "course"
        course.mkdir()
        shutil.copy(ROOT / "nbgrader_config.py", course)
        for kind in ("solutions", "exercises"):
            shutil.copytree(ROOT / kind / assignment, course / kind / assignment)
        nb_name, notebooks = _answers(course, assignment, n)
        subs = tmp / "submissions"
        for i, nb in enumerate(notebooks):
            folder = subs / f"student{i:03d}" / assignment
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{nb_name}.ipynb")
        cluster = LoopbackCluster(tmp / "dask", workers=2)
        times = {}
        for which, extra in (
            ("local", ["--jobs", "2"]),
            ("dask", ["--scheduler", cluster.address]),
        ):
            t = time.perf_counter()
            proc = subprocess.run(
                [str(BIN / "attn-course"), "grade", assignment, str(subs), "--no-progress",
                 "--db", f"sqlite:///{tmp / which}.db", "--out", str(tmp / which), *extra],
                cwd=course, capture_output=True, text=True, env=_env(),
            )  # fmt: skip
            times[which] = time.perf_counter() - t
            if proc.returncode != 0:
                raise SystemExit(f"attn-course grade ({which}) failed:\n{proc.stderr[-3000:]}")
        return times
    finally:
        if cluster is not None:
            cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _writer_rate(db_url: str, n: int) -> float:
    """Results per second that write_result records into ``db_url`` (a 4-part assignment)."""
    from nbgrader.api import Gradebook

    from attn_course.grading.gradebook import ensure_schema, write_result
    from attn_course.grading.task import Result

    ensure_schema(db_url)
    parts = [f"test_{i}" for i in range(4)]
    with Gradebook(db_url) as gb:
        gb.update_or_create_assignment("w")
        gb.add_notebook("w", "w")
        for part in parts:
            gb.add_grade_cell(part, "w", "w", max_score=1.0, cell_type="code")
            gb.add_source_cell(
                part, "w", "w", cell_type="code", locked=True, source="", checksum=""
            )
    results = []
    for i in range(n):
        r = Result(f"student{i:05d}", "w", score=2.0, max_score=4.0)
        r.notebooks = {
            "w": {
                "grades": {
                    p: {"auto_score": float(j % 2), "needs_manual_grade": False, "max_score": 1.0}
                    for j, p in enumerate(parts)
                },
                "comments": {},
                "late_penalty": None,
            }
        }
        results.append(r)
    with Gradebook(db_url) as gb:
        t = time.perf_counter()
        for r in results:
            write_result(gb, r)
        return n / (time.perf_counter() - t)


def bench_writer(n: int) -> dict:
    import warnings

    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's own session use
    tmp = Path(tempfile.mkdtemp(prefix="grading-bench-writer-"))
    try:
        rates = {"SQLite": _writer_rate(f"sqlite:///{tmp / 'w.db'}", n)}
        from attn_course.grading.gradebook import database_url

        with postgres_server() as url:
            rates["PostgreSQL"] = _writer_rate(database_url(url), n)
        return rates
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="submissions per assignment")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--floor-samples", type=int, default=6)
    parser.add_argument("--assignments", nargs="*", default=None)
    parser.add_argument("--cluster", action="store_true", help="local pool vs loopback Dask")
    parser.add_argument("--writer", action="store_true", help="gradebook writer results/s")
    parser.add_argument("--results", type=int, default=2000, help="results for --writer")
    args = parser.parse_args()
    if args.writer:
        for db, rate in bench_writer(args.results).items():
            print(f"gradebook writer, {db:<10}: {rate:8.1f} results/s ({args.results} results)")
        return
    if args.cluster:
        name = (args.assignments or ["03_query_key_value"])[0]
        t = bench_cluster(name, args.n)
        print(
            f"{name}, {args.n} submissions: local pool (2 processes) {t['local']:.1f} s, "
            f"Dask loopback cluster (2 workers) {t['dask']:.1f} s, "
            f"cluster/local {t['dask'] / t['local']:.2f}x (target <= 1.15x; "
            f"{t['dask'] * 2 / args.n:.2f} s per notebook per worker core)"
        )
        return
    names = args.assignments or sorted(
        p.name
        for p in (ROOT / "solutions").iterdir()
        if p.is_dir() and (ROOT / "exercises" / p.name).is_dir()
    )
    print(
        f"{args.n} submissions per assignment, {args.jobs} workers, {os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    header = (
        f"{'assignment':<22} {'floor s/nb':>10} {'nbgrader s':>10} {'ours s':>8} "
        f"{'speed-up':>8} {'cost/floor':>10} {'feedback kB/nb':>14}"
    )
    print(header)
    rows = []
    for name in names:
        r = bench(name, args.n, args.jobs, args.floor_samples)
        rows.append(r)
        cost = r["ours"] * args.jobs / args.n
        print(
            f"{name:<22} {r['floor']:10.2f} {r['plain']:10.1f} {r['ours']:8.1f} "
            f"{r['plain'] / r['ours']:7.2f}x {cost / r['floor']:9.2f}x"
            f" {r['feedback'] / 1000:14.0f}   (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    if len(rows) > 1:
        plain = sum(r["plain"] for r in rows)
        ours = sum(r["ours"] for r in rows)
        floor = sum(r["floor"] for r in rows) / len(rows)  # every assignment has n submissions
        cost = ours * args.jobs / (args.n * len(rows))
        print(
            f"{'overall':<22} {floor:10.2f} {plain:10.1f} {ours:8.1f} "
            f"{plain / ours:7.2f}x {cost / floor:9.2f}x"
        )
    print(
        "targets: speed-up >= 1.80x, cost/floor <= 1.30x (cost = wall time x workers / submissions)"
        ", feedback <= 200 kB per notebook (the largest)"
        f"; load average {os.getloadavg()[0]:.1f} at the end"
    )


if __name__ == "__main__":
    main()
