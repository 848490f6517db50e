"""Fixtures for the grading tests: a tiny course folder, submissions, the class of
misbehaving students of tests/test_grading_failures.py, the command, PostgreSQL, a Dask
cluster on loopback.

Import in a test module with ``from grading_fixtures import *`` (tests/ is on sys.path).
"""

from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ATTN_COURSE = BIN / "attn-course"

__all__ = [
    "GRADE_ARGS",
    "MARK",
    "STUDENTS",
    "TINY",
    "fill",
    "grade_cmd",
    "make_course",
    "postgres_url",
    "read_csv",
    "release_of",
    "write_class",
    "write_submission",
]

TINY = "tiny"

_CONFIG = """c = get_config()  # noqa: F821
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}
c.ExecutePreprocessor.timeout = 60
"""


def _cell(kind, source, grade_id, *, grade=False, solution=False, locked=False, points=None):
    cell = new_code_cell(source) if kind == "code" else new_markdown_cell(source)
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
    }
    if points is not None:
        meta["points"] = points
    cell.metadata["nbgrader"] = meta
    return cell


def tiny_notebook():
    """Two graded parts: ``add`` (2 points, one public and one hidden test) and ``double``
    (1 point). Test cells use attn_course.checks like the real assignments; ``test_double``
    calls the student's function directly, so what it prints to stderr reaches the test cell."""
    cells = [
        _cell("markdown", "# Tiny assignment", "intro", locked=True),
        _cell("code", "import numpy as np", "setup", locked=True),
        _cell(
            "code",
            "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
            "add",
            solution=True,
        ),
        _cell(
            "code",
            "from attn_course.checks import check_array, run\n"
            "check_array('add(1, 2)', run(add, 1.0, 2.0), 3.0)\n"
            "print('add: public tests passed')\n"
            "### BEGIN HIDDEN TESTS\n"
            "check_array('add of arrays', run(add, np.ones(3), np.arange(3.0)), "
            "np.arange(1.0, 4.0))\n"
            "### END HIDDEN TESTS",
            "test_add",
            grade=True,
            locked=True,
            points=2,
        ),
        _cell(
            "code",
            "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
            "double",
            solution=True,
        ),
        _cell(
            "code",
            "check_array('double(4)', double(4.0), 8.0)  # called directly\n"
            "print('double: public tests passed')",
            "test_double",
            grade=True,
            locked=True,
            points=1,
        ),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def make_course(path: Path, with_03: bool = False) -> Path:
    """A course folder like the repository's: nbgrader_config.py, solutions/, exercises/."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "nbgrader_config.py").write_text(_CONFIG)
    (path / "solutions" / TINY).mkdir(parents=True)
    nbformat.write(tiny_notebook(), path / "solutions" / TINY / f"{TINY}.ipynb")
    if with_03:
        for kind in ("solutions", "exercises"):
            shutil.copytree(ROOT / kind / "03_query_key_value", path / kind / "03_query_key_value")
    subprocess.run(
        [
            str(BIN / "nbgrader"),
            "generate_assignment",
            TINY,
            "--force",
            f"--db=sqlite:///{path / 'setup.db'}",
        ],
        cwd=path,
        check=True,
        capture_output=True,
        env=_env(),
    )
    (path / "setup.db").unlink()
    return path


def release_of(course: Path, assignment: str):
    nbs = sorted((course / "exercises" / assignment).glob("*.ipynb"))
    return nbformat.read(nbs[0], as_version=4)


def solutions_of(course: Path, assignment: str) -> dict[str, str]:
    """grade_id -> the instructor's code of every solution cell, markers removed."""
    nb = nbformat.read(next((course / "solutions" / assignment).glob("*.ipynb")), as_version=4)
    out = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            lines = [
                ln
                for ln in cell.source.splitlines()
                if ln.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
            ]
            out[meta["grade_id"]] = "\n".join(lines)
    return out


def fill(release, answers: dict[str, str]):
    """A copy of the student notebook with the solution cells' sources replaced."""
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nb


def write_submission(
    root: Path, student: str, assignment: str, nb, name: str | None = None, raw: bytes | None = None
) -> Path:
    folder = root / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or assignment}.ipynb"
    if raw is not None:
        path.write_bytes(raw)
    else:
        nbformat.write(nb, path)
    return folder


def _env() -> dict[str, str]:
    from attn_course.grading import nbgrader_env

    return nbgrader_env()


def grade_cmd(
    course: Path, assignment: str, submissions: Path, *extra: str, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run the real console script, from the course folder."""
    return subprocess.run(
        [str(ATTN_COURSE), "grade", assignment, str(submissions), "--no-progress", *extra],
        cwd=course,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
    )


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as fh:
        return {row["student_id"]: row for row in csv.DictReader(fh)}


def gradebook_grades(db_url: str, assignment: str) -> dict[tuple[str, str], float | None]:
    """(student, grade cell) -> auto_score, straight from nbgrader's gradebook."""
    from nbgrader.api import Gradebook

    from attn_course.grading.gradebook import database_url

    out = {}
    with Gradebook(database_url(db_url)) as gb:
        for sub in gb.find_assignment(assignment).submissions:
            for nb in sub.notebooks:
                for g in nb.grades:
                    out[(sub.student.id, g.name)] = g.auto_score
    return out


# --- the class of tests/test_grading_failures.py: one student per failure mode ---------


WRONG_ADD = "def add(a, b):\n    return a - b"
MARK = uuid.uuid4().hex[:12]


STUDENTS = (
    "good",
    "wrong_add",
    "untouched",
    "infinite_loop",
    "uninterruptible",
    "memory_hog",
    "memory_kept",
    "os_exit",
    "segfault",
    "system_exit",
    "syntax_error",
    "missing_function",
    "wrong_type",
    "nan",
    "not_json",
    "renamed",
    "missing",
    "other_assignment",
    "test_edited",
    "test_deleted",
    "test_duplicated",
    "answer_and_test_deleted",
    "duplicate_cell_ids",
    "patch_names",
    "patch_code",
    "fake_module",
    "kill_guard",
    "read_solutions",
    "write_outside",
    "stderr_in_test",
)


def _students(course: Path):
    """student -> (notebook or raw bytes, file name, expected score, words in the status)."""
    rel = release_of(course, TINY)
    sol = solutions_of(course, TINY)
    good = fill(rel, sol)

    def answers(add=None, double=None):
        return fill(rel, {"add": add or sol["add"], "double": double or sol["double"]})

    def with_test_cell(nb, grade_id, change):
        nb = copy.deepcopy(nb)
        i = next(
            i
            for i, c in enumerate(nb.cells)
            if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
        )
        change(nb, i)
        return nb

    course_s = str(course)
    other = nbformat.read(
        course / "exercises" / "03_query_key_value" / "03_query_key_value.ipynb", as_version=4
    )
    dup_ids = copy.deepcopy(good)
    dup_ids.cells[3]["id"] = dup_ids.cells[2]["id"]

    def dup_test(nb, i):
        nb.cells.insert(i, copy.deepcopy(nb.cells[i]))

    def edit_test(nb, i):
        nb.cells[i].source = "print('all good')"

    def delete_test(nb, i):
        del nb.cells[i]

    read_solutions = f"""{WRONG_ADD}
import json
try:
    src = json.load(open({course_s + "/solutions/tiny/tiny.ipynb"!r}))
    code = [c for c in src['cells'] if c['metadata'].get('nbgrader', {{}}).get('grade_id') == 'add']
    exec(''.join(code[0]['source']))
except OSError as err:
    print('cannot read the solutions:', err)
try:
    open({course_s + "/gradebook.db"!r}, 'r+b').write(b'overwritten')
except OSError as err:
    print('cannot touch the gradebook:', err)
"""
    write_outside = f"""{WRONG_ADD}
for path in ({course_s + "/pwned-" + MARK!r}, '/tmp/pwned-{MARK}', '/var/tmp/pwned-{MARK}',
             {course_s + "/submissions/good/tiny/pwned-" + MARK!r}):
    try:
        open(path, 'w').write('x')
        print('wrote', path)
    except OSError as err:
        print('cannot write', path, err)
"""
    patch_names = (
        WRONG_ADD + "\nimport attn_course.checks as _c\n"
        "_c.check_array = lambda *a, **k: None\n"
        "np.isclose = lambda a, b, **k: np.ones(np.shape(a), dtype=bool)"
    )
    patch_code = (
        WRONG_ADD + "\nimport attn_course.checks as _c\n"
        "_c.check_array.__code__ = (lambda *a, **k: None).__code__"
    )
    fake_module = (
        WRONG_ADD + "\nimport sys, types\nfake = types.ModuleType('attn_course.checks')"
        "\nfake.check_array = lambda *a, **k: None\nfake.run = lambda f, *a, **k: None"
        "\nsys.modules['attn_course.checks'] = fake"
    )
    kill_guard = (
        WRONG_ADD + "\nget_ipython().events.callbacks['pre_run_cell'].clear()\n"
        "import attn_course.checks as _c\n_c.check_array = lambda *a, **k: None"
    )
    uninterruptible = (
        "def add(a, b):\n    while True:\n        try:\n            while True:\n"
        "                pass\n        except KeyboardInterrupt:\n            pass"
    )
    stderr_double = (
        "import sys\ndef double(x):\n    print('note: doubling', file=sys.stderr)\n    return 2 * x"
    )
    return {
        "good": (good, None, 3, "graded"),
        "wrong_add": (answers(WRONG_ADD), None, 1, "graded"),
        "untouched": (rel, None, 0, "graded"),
        "infinite_loop": (
            answers("def add(a, b):\n    while True:\n        pass"),
            None,
            1,
            "timed out in test_add",
        ),
        "uninterruptible": (answers(uninterruptible), None, 1, "kernel hung"),
        "memory_hog": (
            answers(
                "def add(a, b):\n    hog = []\n    while True:\n"
                "        hog.append(bytearray(50_000_000))"
            ),
            None,
            1,
            "out of memory in test_add",
        ),
        # the hog stays referenced: the kernel lives on, crippled; a fresh kernel without the
        # cell grades the other part
        "memory_kept": (
            answers("hog = []\nwhile True:\n    hog.append(bytearray(1_000_000))"),
            None,
            1,
            "out of memory in add (re-run in a fresh kernel without it)",
        ),
        "os_exit": (answers("import os\nos._exit(1)"), None, 1, "kernel died in add"),
        "segfault": (
            answers("def add(a, b):\n    import ctypes\n    return ctypes.string_at(0)"),
            None,
            1,
            "kernel died in test_add",
        ),
        "system_exit": (answers(sol["add"] + "\nimport sys\nsys.exit(3)"), None, 3, "graded"),
        "syntax_error": (answers("def add(a, b)\n    return a + b"), None, 1, "graded"),
        "missing_function": (answers("def plus(a, b):\n    return a + b"), None, 1, "graded"),
        "wrong_type": (answers("def add(a, b):\n    return {'sum': a + b}"), None, 1, "graded"),
        "nan": (answers("def add(a, b):\n    return a + b + np.nan"), None, 1, "graded"),
        "not_json": (b"this is not { json", None, 0, "not a notebook"),
        "renamed": (good, "tiny (1)", 3, "notebook renamed"),
        "missing": (None, None, 0, "notebook missing"),
        "other_assignment": (other, None, 0, "notebook of another assignment"),
        "test_edited": (
            with_test_cell(answers(WRONG_ADD), "test_add", edit_test),
            None,
            1,
            "test_add edited (restored)",
        ),
        "test_deleted": (
            with_test_cell(answers(WRONG_ADD), "test_add", delete_test),
            None,
            1,
            "test_add deleted (restored)",
        ),
        "answer_and_test_deleted": (
            with_test_cell(
                good, "test_add", lambda nb, i: nb.cells.__delitem__(slice(i - 1, i + 1))
            ),
            None,
            1,
            "test_add deleted (restored)",
        ),
        "test_duplicated": (
            with_test_cell(good, "test_double", dup_test),
            None,
            3,
            "test_double duplicated",
        ),
        "duplicate_cell_ids": (dup_ids, None, 3, "duplicated cell ids in tiny.ipynb (renumbered)"),
        "patch_names": (answers(patch_names), None, 1, "monkeypatching undone"),
        "patch_code": (answers(patch_code), None, 1, "monkeypatching undone"),
        "fake_module": (answers(fake_module), None, 1, "monkeypatching undone"),
        "kill_guard": (answers(kill_guard), None, 0, "score withheld"),
        "read_solutions": (answers(read_solutions), None, 1, "graded"),
        "write_outside": (answers(write_outside), None, 1, "graded"),
        "stderr_in_test": (answers(double=stderr_double), None, 3, "graded"),
    }


def write_class(course: Path) -> tuple[Path, dict]:
    """The class of _students, written as nbgrader's submitted layout under course/submissions."""
    subs = course / "submissions"
    students = _students(course)
    for student, (nb, name, _, _) in students.items():
        if nb is None:
            folder = subs / student / TINY
            folder.mkdir(parents=True)
            (folder / "README.txt").write_text("I forgot the notebook")
        elif student == "duplicate_cell_ids":  # nbformat.write would renumber the ids
            folder = subs / student / TINY
            folder.mkdir(parents=True)
            (folder / f"{TINY}.ipynb").write_text(json.dumps(nb))
        elif isinstance(nb, bytes):
            write_submission(subs, student, TINY, None, raw=nb)
        else:
            write_submission(subs, student, TINY, nb, name=name)
    return subs, students


GRADE_ARGS = ("--timeout", "6", "--memory", "1G")

# --- a real PostgreSQL server -------------------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _free_port() -> int:
    """A free TCP port on 127.0.0.1: PostgreSQL's, the Dask scheduler's, and the Jupyter
    server's of tests/test_student_lab.py."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1 (Debian's postgresql), stopped at the end."""
    if _pg_bin() is None:
        pytest.skip("PostgreSQL is not installed (scripts/system-deps.sh installs it)")
    with postgres_server() as url:
        yield url


@contextmanager
def postgres_server():
    """A throw-away PostgreSQL server on 127.0.0.1; yields its URL. initdb/pg_ctl refuse to
    run as root, so they run as the `postgres` user then."""
    pg = _pg_bin()
    if pg is None:
        raise RuntimeError("PostgreSQL is not installed (scripts/system-deps.sh installs it)")
    import tempfile

    # not under pytest's tmp folder: that is private to root, and the server runs as `postgres`
    home = Path(tempfile.mkdtemp(prefix="attn-pg-"))
    data = home / "data"
    port = _free_port()
    # runuser lives in /usr/sbin, which a non-login PATH may lack
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    as_user = [runuser, "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(home, "postgres", "postgres")
    subprocess.run(
        [*as_user, str(pg / "initdb"), "-D", str(data), "-A", "trust", "-U", "grader", "--no-sync"],
        check=True,
        capture_output=True,
    )
    log = data.parent / "pg.log"
    subprocess.run(
        [
            *as_user,
            str(pg / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-o",
            f"-h 127.0.0.1 -p {port} -k {data}",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        deadline = time.time() + 30
        while True:
            ok = subprocess.run(
                [str(pg / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
            )
            if ok.returncode == 0:
                break
            if time.time() > deadline:
                raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text()}")
            time.sleep(0.2)
        subprocess.run(
            [str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "grader", "gradebook"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://grader@127.0.0.1:{port}/gradebook"
    finally:
        subprocess.run(
            [*as_user, str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(home, ignore_errors=True)


# --- a real Dask cluster on loopback -----------------------------------------------------


START_TIMEOUT = 90  # seconds for the scheduler and the workers to come up


class LoopbackCluster:
    """`dask scheduler` and N `dask worker` processes on 127.0.0.1, torn down at the end."""

    def __init__(self, base: Path, workers: int = 2):
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        logs = base / "logs"
        logs.mkdir(parents=True)
        self.procs.append(
            self._start(
                "scheduler",
                base,
                logs / "scheduler.log",
                [
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-dashboard",
                ],
            )
        )
        for i in range(workers):
            self.add_worker(f"w{i}")
        self.wait_for(workers)

    def _start(self, name, cwd, log, args):
        return subprocess.Popen(
            [str(BIN / "dask"), *args],
            cwd=cwd,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env=_env(),
            start_new_session=True,
        )

    def add_worker(self, name: str) -> subprocess.Popen:
        cwd = self.base / name  # its own, empty working folder: nothing of the course
        cwd.mkdir()
        proc = self._start(
            name,
            cwd,
            self.base / "logs" / f"{name}.log",
            [
                "worker",
                self.address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--name",
                name,
                "--local-directory",
                str(cwd),
            ],
        )
        self.procs.append(proc)
        self.workers.append(proc)
        return proc

    def n_workers(self) -> int:
        from distributed import Client

        with Client(self.address, timeout=10) as client:
            return len(client.scheduler_info()["workers"])

    def wait_for(self, n: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if self.n_workers() >= n:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the loopback cluster did not start: see {self.base / 'logs'}")

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def dump(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, default=str)
