"""A class through the course's JupyterHub (scripts/hub): N students at once, timed by phase.

    sudo .venv/bin/python benchmarks/hub_class.py [--students 20]

Real JupyterHub, proxy, unix users and single-user servers on 127.0.0.1, as `make hub` runs
them. Every student, all at once (one thread each): logs in on the hub's login form, gets their
server started through the hub's REST API, fetches assignment 03 through their server's nbgrader
endpoint, saves the notebook with the answers filled in (the contents API; every fourth student
gets cosine_score wrong), and submits through nbgrader's endpoint. The instructor then collects
(`nbgrader collect`) and grades the class with `attn-course grade` (the course's plugin,
boxed), as their own unix user. Prints each phase's time, the grades, and the memory: the hub's
(and its proxy's) growth per student, and each student's server.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts" / "hub"))
import class_hub  # noqa: E402

A = class_hub.ASSIGNMENT
COURSE = "attention-bench"
WRONG_COSINE = "    return dot_score(query, keys) / np.linalg.norm(query, axis=-1)\n"


def solved_notebook(release: dict, solutions: dict, wrong: bool) -> dict:
    """The released notebook with every answer cell replaced by the solution's code."""
    nb = json.loads(json.dumps(release))
    for cell, solved in zip(nb["cells"], solutions["cells"], strict=True):
        meta = cell["metadata"].get("nbgrader", {})
        if not meta.get("solution") or cell["cell_type"] != "code":
            continue
        source = "".join(solved["source"])
        if wrong and meta["grade_id"] == "cosine_score":
            source = source.split("### BEGIN SOLUTION")[0].rstrip(" ") + WRONG_COSINE
        cell["source"] = "\n".join(ln for ln in source.splitlines() if "### " not in ln)
    return nb


def hub_rss(proc: subprocess.Popen) -> int:
    """Resident memory of the hub and its proxy, in bytes (the users' servers, children of the
    hub too, are counted per user)."""
    hub = psutil.Process(proc.pid)
    proxy = [p for p in hub.children() if "configurable-http-proxy" in " ".join(p.cmdline())]
    return sum(p.memory_info().rss for p in [hub, *proxy])


def user_rss(name: str) -> int:
    return sum(
        p.memory_info().rss for p in psutil.process_iter(["username"]) if p.info["username"] == name
    )


class Timer:
    def __init__(self):
        self.phases: list[tuple[str, float]] = []

    def run(self, name: str, fn, items):
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(len(items), 1)) as pool:
            results = list(pool.map(fn, items))
        self.phases.append((name, time.perf_counter() - start))
        print(f"  {name:<44} {self.phases[-1][1]:7.2f} s", flush=True)
        return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=20)
    args = parser.parse_args(argv)
    if args.students < 1:
        parser.error(f"--students takes a whole number from 1, not {args.students}")
    n = args.students
    students = [f"hubbench-s{i:02d}" for i in range(1, n + 1)]
    instructor = "hubbench-instructor"
    token = secrets.token_hex(20)
    admin = {"Authorization": f"token {token}"}

    state = Path(tempfile.mkdtemp(prefix="attn-hub-bench-"))
    hub = class_hub.create_class(
        state, instructor, students, COURSE, service_token=token, env=class_hub.kept_env()
    )
    proc = class_hub.start_hub(hub, state / "jupyterhub.log")
    timer = Timer()
    try:
        base_rss = hub_rss(proc)
        done = hub.run_as(instructor, ["nbgrader", "generate_assignment", A], hub.course_dir)
        assert done.returncode == 0, done.stderr
        done = hub.run_as(instructor, ["nbgrader", "release_assignment", A], hub.course_dir)
        assert done.returncode == 0, done.stderr

        sessions = {}

        def log_in(name):
            s = requests.Session()
            s.get(f"{hub.url}/hub/login", timeout=60)
            form = {"username": name, "password": hub.password(name), "_xsrf": s.cookies["_xsrf"]}
            r = s.post(f"{hub.url}/hub/login", data=form, allow_redirects=False, timeout=120)
            assert r.status_code == 302 and "jupyterhub-session-id" in s.cookies, r.status_code
            sessions[name] = s

        def start_server(name):
            r = requests.post(f"{hub.url}/hub/api/users/{name}/server", headers=admin, timeout=300)
            assert r.status_code in (201, 202, 400), (r.status_code, r.text)  # 400: already
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                user = requests.get(f"{hub.url}/hub/api/users/{name}", headers=admin).json()
                if user["servers"].get("", {}).get("ready"):
                    break
                time.sleep(0.5)
            else:
                raise TimeoutError(f"{name}'s server did not start in 600 s")
            r = requests.post(
                f"{hub.url}/hub/api/users/{name}/tokens",
                headers=admin,
                json={"note": "benchmark", "expires_in": 3600},
                timeout=60,
            )
            r.raise_for_status()
            sessions[name].headers["Authorization"] = f"token {r.json()['token']}"

        def server(name, path):
            return f"{hub.url}/user/{name}/{path}"

        def fetch(name):
            form = {"course_id": COURSE, "assignment_id": A}
            r = sessions[name].post(server(name, "assignments/fetch"), data=form, timeout=300)
            assert r.ok and r.json()["success"], r.text[:500]

        release = json.loads((hub.course_dir / "exercises" / A / f"{A}.ipynb").read_text())
        solutions = json.loads((ROOT / "solutions" / A / f"{A}.ipynb").read_text())

        def answer(name):
            nb = solved_notebook(release, solutions, wrong=students.index(name) % 4 == 3)
            body = {"type": "notebook", "format": "json", "content": nb}
            r = sessions[name].put(server(name, f"api/contents/{A}/{A}.ipynb"), json=body)
            assert r.ok, r.text[:500]

        def submit(name):
            form = {"course_id": COURSE, "assignment_id": A}
            r = sessions[name].post(server(name, "assignments/submit"), data=form, timeout=300)
            assert r.ok and r.json()["success"], r.text[:500]

        print(f"A class of {n} on the hub at {hub.url} (all students at once, one thread each):")
        timer.run("log in (the hub's login form)", log_in, students)
        timer.run("start every server (hub REST API)", start_server, students)
        up_rss = hub_rss(proc)
        servers = [user_rss(s) for s in students]
        timer.run("fetch (nbgrader endpoint of each server)", fetch, students)
        timer.run("save the answers (contents API)", answer, students)
        timer.run("submit (nbgrader endpoint)", submit, students)

        def instructor_runs(argv):
            done = hub.run_as(instructor, argv, hub.course_dir, timeout=3600)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            return done.stdout

        timer.run("instructor: nbgrader collect", instructor_runs, [["nbgrader", "collect", A]])
        grade = ["attn-course", "grade", A, "submitted/", "--jobs", "2"]
        timer.run("instructor: attn-course grade (boxed, 2 jobs)", instructor_runs, [grade])

        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{hub.course_dir / 'gradebook.db'}") as gb:
            scores = [gb.find_submission(A, s).score for s in students]
        expected = [11.0 if i % 4 == 3 else 12.0 for i in range(n)]
        print(f"  grades as expected (12/12, every fourth 11/12): {scores == expected}")
        total = sum(t for _, t in timer.phases)
        print(f"  total {total:.1f} s")
        per = (up_rss - base_rss) / n / 2**20
        print(
            f"Memory: hub + proxy {base_rss / 2**20:.0f} MiB idle, {up_rss / 2**20:.0f} MiB with "
            f"{n} servers up: {per:.2f} MiB per student; each student's server "
            f"{statistics.median(servers) / 2**20:.0f} MiB (median, max "
            f"{max(servers) / 2**20:.0f} MiB)"
        )
        return 0 if scores == expected else 1
    finally:
        class_hub.stop_hub(proc)
        class_hub.remove_users(hub)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
