"""`attn-course grade --scheduler`: a real Dask cluster on loopback (one `dask scheduler`, two
`dask worker` processes, each in its own empty working folder), and two runs at once against
one PostgreSQL gradebook."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from grading_fixtures import (
    BIN,
    GRADE_ARGS,
    TINY,
    LoopbackCluster,
    _env,
    _free_port,
    fill,
    grade_cmd,
    gradebook_grades,
    make_course,
    postgres_url,  # noqa: F401  (a fixture)
    read_csv,
    release_of,
    solutions_of,
    write_submission,
)

pytestmark = [pytest.mark.grading]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    c = LoopbackCluster(tmp_path_factory.mktemp("dask"))
    try:
        yield c
    finally:
        c.close()


def test_unreachable_scheduler_is_a_setup_error(tmp_path):
    course = make_course(tmp_path / "course")
    subs = tmp_path / "subs"
    write_submission(subs, "solo", TINY, release_of(course, TINY))
    port = _free_port()  # nobody listens there
    proc = grade_cmd(course, TINY, subs, "--scheduler", f"tcp://127.0.0.1:{port}", timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot reach the Dask scheduler" in lines[0], proc.stderr


def test_cluster_grades_match_local_grading(cluster, graded_class, tmp_path):
    """Every failure case of test_grading_failures, graded on the cluster, gets the score,
    the reason and the flag that local grading of the same submissions gave (graded_class:
    the one local run that test_grading_failures checks against its table)."""
    course, students, local = graded_class
    assert local.returncode == 0, local.stderr[-3000:]
    db = f"sqlite:///{tmp_path / 'cluster.db'}"
    out = tmp_path / "cluster-out"
    remote = grade_cmd(
        course,
        TINY,
        course / "submissions",
        "--scheduler",
        cluster.address,
        "--db",
        db,
        "--out",
        str(out),
        *GRADE_ARGS,
    )
    assert remote.returncode == 0, remote.stderr[-3000:]
    assert "on the Dask cluster" in remote.stdout
    mine = read_csv(course / "graded" / TINY / "grades.csv")
    theirs = read_csv(out / "grades.csv")
    assert sorted(theirs) == sorted(students)
    for student in students:
        for column in ("score", "status", "flagged"):
            assert theirs[student][column] == mine[student][column], (student, column)
    assert gradebook_grades(db, TINY) == gradebook_grades(
        f"sqlite:///{course / 'gradebook.db'}", TINY
    )
    # a run with its own gradebook keeps its autograded notebooks beside it, and says so
    assert (out / "autograded" / "good" / TINY / f"{TINY}.ipynb").is_file()
    assert not (course / "autograded" / "good" / TINY / "pwned").exists()
    assert f"autograded notebooks: {out / 'autograded'}" in remote.stdout
    assert (out / "good" / f"{TINY}.html").is_file()


def _slow_class(course: Path, root: Path, n: int) -> Path:
    """n submissions that each take about 2 s (a sleep in the answer), all gradable."""
    rel, sol = release_of(course, TINY), solutions_of(course, TINY)
    slow = "import time\ntime.sleep(2)\n" + sol["add"]
    for i in range(n):
        answers = {**sol, "add": slow if i % 3 else slow.replace("a + b", "a - b")}
        write_submission(root, f"s{i:02d}", TINY, fill(rel, answers))
    return root


def test_a_worker_killed_mid_batch(cluster, tmp_path):
    """SIGKILL one of the two workers while it grades: every submission is still graded
    exactly once, the gradebook has no duplicate rows, the summary names the retried ones."""
    from nbgrader.api import Gradebook
    from sqlalchemy import text

    course = make_course(tmp_path / "course")
    subs = _slow_class(course, tmp_path / "subs", 12)
    victim = cluster.add_worker("victim")
    cluster.wait_for(3)
    proc = subprocess.Popen(
        [
            str(BIN / "attn-course"),
            "grade",
            TINY,
            str(subs),
            "--no-progress",
            "--no-feedback",
            "--scheduler",
            cluster.address,
        ],
        cwd=course,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        # kill it once it has started a task: its log says so when the first kernel boots
        deadline, started = time.monotonic() + 300, []
        while time.monotonic() < deadline and proc.poll() is None:
            started = _started_on(cluster.address, "victim")
            if started:
                break
            time.sleep(0.2)
        assert started, "the victim worker never got a task"
        os.killpg(victim.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    rows = read_csv(course / "graded" / TINY / "grades.csv")
    assert sorted(rows) == [f"s{i:02d}" for i in range(12)]
    for i in range(12):
        assert float(rows[f"s{i:02d}"]["score"]) == (3 if i % 3 else 1), rows[f"s{i:02d}"]
        assert rows[f"s{i:02d}"]["status"] == "graded"
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        subs_rows = gb.find_assignment(TINY).submissions
        ids = [s.student.id for s in subs_rows]
        assert sorted(ids) == sorted(set(ids)) and len(ids) == 12
        grades = gb.db.execute(text("SELECT COUNT(*) FROM grade")).scalar()
        assert grades == 12 * 2  # two graded cells per notebook, once each
    assert "Retried after their grading process died" in stdout, stdout
    assert any(s in stdout for s in started), (started, stdout)


def _started_on(address: str, worker: str) -> list[str]:
    """Students whose task has started on the worker called ``worker``."""
    from distributed import Client

    with Client(address, timeout=10) as client:
        events = client.get_events("attn-grade-start")
    return [msg["student"] for _, msg in events if msg.get("name") == worker]


def test_two_runs_at_once_into_one_postgresql_gradebook(cluster, tmp_path, postgres_url):  # noqa: F811
    """Two assignments graded at the same time (one on the cluster, one locally) into one
    PostgreSQL gradebook: both complete, nothing lost or doubled."""
    import nbformat

    course = make_course(tmp_path / "course")
    # two assignments of their own (the session's PostgreSQL server is shared): tiny, renamed
    pair = ("pg_a", "pg_b")
    nb = nbformat.read(course / "solutions" / TINY / f"{TINY}.ipynb", as_version=4)
    sol = solutions_of(course, TINY)
    subs = tmp_path / "subs"
    for name in pair:
        (course / "solutions" / name).mkdir()
        nbformat.write(nb, course / "solutions" / name / f"{name}.ipynb")
        subprocess.run(
            [
                str(BIN / "nbgrader"),
                "generate_assignment",
                name,
                "--force",
                f"--db=sqlite:///{tmp_path / 'setup.db'}",
            ],
            cwd=course,
            check=True,
            capture_output=True,
            env=_env(),
        )
        rel = nbformat.read(course / "exercises" / name / f"{name}.ipynb", as_version=4)
        for i in range(6):
            answers = {**sol, "add": sol["add"].replace("a + b", "a - b")} if i % 2 else sol
            write_submission(subs, f"p{i}", name, fill(rel, answers))
    common = ["--no-progress", "--no-feedback", "--db", postgres_url]
    runs = [
        subprocess.Popen(
            [str(BIN / "attn-course"), "grade", assignment, str(subs), *common, *extra],
            cwd=course,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for assignment, extra in (
            (pair[0], ["--scheduler", cluster.address, "--out", str(tmp_path / "a")]),
            (pair[1], ["--jobs", "1", "--out", str(tmp_path / "b")]),
        )
    ]
    outs = [p.communicate(timeout=600) for p in runs]
    for p, (_, err) in zip(runs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    for assignment in pair:
        grades = gradebook_grades(postgres_url, assignment)
        assert len(grades) == 6 * 2, (assignment, grades)
        totals = {}
        for (student, _), v in grades.items():
            totals[student] = totals.get(student, 0) + (v or 0)
        assert totals == {f"p{i}": (1 if i % 2 else 3) for i in range(6)}, assignment
    from nbgrader.api import Gradebook

    from attn_course.grading.gradebook import database_url

    with Gradebook(database_url(postgres_url)) as gb:
        for assignment in pair:
            ids = [s.student.id for s in gb.find_assignment(assignment).submissions]
            assert sorted(ids) == [f"p{i}" for i in range(6)], assignment
