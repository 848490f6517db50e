"""A class on JupyterHub on one machine: the layout a hub has, laid out under one folder.

    STATE/class.json            who is in the class, the ports, the passwords (root only)
    STATE/exchange/             nbgrader's exchange (mode 0777, as nbgrader's docs ask)
    STATE/etc/jupyter/          nbgrader_config.py for everyone: the exchange and course id
    STATE/home/INSTRUCTOR/course/   the instructor's course folder (nbgrader_config.py,
                                    solutions/ = source, exercises/ = release, gradebook)
    STATE/home/STUDENT/         each student's home, mode 0700
    STATE/env/                  the shared course environment (below)

Users are unix users (``useradd``, a password each via ``chpasswd``), so that each Jupyter
server runs as its user and the file system keeps students apart. Needs root.

The shared course environment, outside every course folder and home, holds the packages of
this clone's ``.venv`` (``make env``) run by the system's Python 3.11: the interpreter ``make
env`` used may sit where other users cannot run it (a pyenv under root's home), so
``STATE/env`` is a venv of ``/usr/bin/python3.11`` whose one ``.pth`` adds ``.venv``'s
site-packages (linked into ``STATE/env/packages``) and a copy of ``attn_course``, with
``.venv``'s scripts and Jupyter data and config beside them.

``python scripts/hub/class_hub.py`` (what ``make hub`` runs) starts the class hub in the
foreground and stops it, with every user's server, on Ctrl-C.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# The user tools live in sbin, which a non-login shell's PATH (cron, CI, `env -i`) may lack.
_SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


def _system(tool: str) -> str:
    """The path of a system tool such as ``useradd``, found in sbin too."""
    return shutil.which(tool, path=_SBIN_PATH) or tool


HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONFIG = HERE / "jupyterhub_config.py"
PROXY = HERE / "node_modules" / ".bin" / "configurable-http-proxy"
VENV = ROOT / ".venv"
ASSIGNMENT = "03_query_key_value"


def kept_env() -> Path:
    """A shared course environment kept across runs for this clone (tests, benchmarks): in
    /tmp, which every user can pass through, whatever the clone's own permissions."""
    tag = hashlib.sha1(str(ROOT).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"attn-hub-env-{tag}"


def _link_tree(source: Path, target: Path) -> None:
    """``target``: ``source``'s files, hard-linked (no copy, instant) where one file system
    holds both, copied where not."""
    if target.is_symlink():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["cp", "-al", str(source), str(target)], capture_output=True).returncode:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, symlinks=True)


def make_shared_env(env: Path) -> Path:
    """The course environment the users run (module docstring); returns its ``bin``.

    Nothing in it points into the clone, which other users may not be able to read (a clone
    under root's home): ``.venv``'s packages and Jupyter files are linked into it, and
    ``attn_course`` is copied, as a non-editable install would put it."""
    python = shutil.which("python3.11", path="/usr/local/bin:/usr/bin:/bin")
    if python is None:
        raise SystemExit(
            "the class hub runs the users' servers with the system's python3.11: "
            "install it (Debian: apt-get install python3.11)"
        )
    if not (env / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", "--without-pip", str(env)], check=True)
    # Linked again only after `make env` installed something (its stamp): unlinking takes long.
    stamp, made = VENV / ".installed", env / "packages-from"
    installed = str(stamp.stat().st_mtime_ns) if stamp.exists() else "unknown"
    if not made.exists() or made.read_text() != installed:
        _link_tree(next((VENV / "lib").glob("python3.*/site-packages")), env / "packages")
        for editable in (env / "packages").glob("__editable__*"):  # the clone's attn_course
            editable.unlink()
        for sub in ("share", "etc"):  # Jupyter's data (labextensions), server-extension config
            _link_tree(VENV / sub / "jupyter", env / sub / "jupyter")
        made.write_text(installed)
    _link_tree(ROOT / "attn_course", env / "course" / "attn_course")
    ours = next((env / "lib").glob("python3.*/site-packages"))
    # site.addsitedir, not a bare path: the packages' own .pth files run too.
    (ours / "course-env.pth").write_text(
        f"{env / 'course'}\nimport site; site.addsitedir({str(env / 'packages')!r})\n"
    )
    for script in (VENV / "bin").iterdir():  # console scripts, started by this env's python
        head = script.read_bytes()[:200] if script.is_file() else b""
        if head.startswith(f"#!{VENV}/bin/python".encode()):
            body = script.read_text().split("\n", 1)[1]
            target = env / "bin" / script.name
            target.write_text(f"#!{env}/bin/python\n{body}")
            target.chmod(0o755)
    return env / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ClassHub:
    state: Path
    info: dict

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.info['port']}"

    @property
    def instructor(self) -> str:
        return self.info["instructor"]

    @property
    def students(self) -> list[str]:
        return self.info["students"]

    def password(self, name: str) -> str:
        return self.info["passwords"][name]

    def home(self, name: str) -> Path:
        return self.state / "home" / name

    @property
    def course_dir(self) -> Path:
        return self.home(self.instructor) / "course"

    def env(self, name: str) -> dict:
        return {
            "HOME": str(self.home(name)),
            "USER": name,
            "LANG": "C.UTF-8",
            "PATH": f"{self.info['venv_bin']}:/usr/local/bin:/usr/bin:/bin",
            "JUPYTER_CONFIG_PATH": str(self.state / "etc" / "jupyter"),
        }

    def run_as(self, name: str, argv: list[str], cwd: Path | None = None, timeout=600, **kw):
        """``argv`` as unix user ``name``, in their home (or ``cwd``), as their server would."""
        user = pwd.getpwnam(name)
        return subprocess.run(
            argv,
            cwd=cwd or self.home(name),
            env=self.env(name),
            user=user.pw_uid,
            group=user.pw_gid,
            extra_groups=[],
            timeout=timeout,
            capture_output=True,
            text=True,
            **kw,
        )


def _ensure_user(name: str, home: Path, password: str) -> None:
    try:
        pwd.getpwnam(name)
        subprocess.run([_system("usermod"), "-d", str(home), name], check=True)
    except KeyError:
        subprocess.run(
            [_system("useradd"), "-M", "-U", "-d", str(home), "-s", "/bin/bash", name], check=True
        )
    subprocess.run([_system("chpasswd")], input=f"{name}:{password}\n", text=True, check=True)
    home.mkdir(parents=True, exist_ok=True)
    user = pwd.getpwnam(name)
    os.chown(home, user.pw_uid, user.pw_gid)
    home.chmod(0o700)  # nobody else reads a home: not other students, not the grader's files


# What nbgrader's docs have students switch off: the instructor's tools (formgrader, creating
# assignments, the course list), in the server and in the page.
STUDENT_SERVER_CONFIG = {
    "ServerApp": {
        "jpserver_extensions": {
            "nbgrader.server_extensions.formgrader": False,
            "nbgrader.server_extensions.course_list": False,
        }
    }
}
STUDENT_PAGE_CONFIG = {
    "disabledExtensions": {
        f"@jupyter/nbgrader:{name}": True
        for name in ("formgrader", "create-assignment", "course-list")
    }
}


def _student_config(home: Path) -> None:
    (home / ".jupyter" / "labconfig").mkdir(parents=True, exist_ok=True)
    server = home / ".jupyter" / "jupyter_server_config.json"
    server.write_text(json.dumps(STUDENT_SERVER_CONFIG, indent=1))
    (home / ".jupyter" / "labconfig" / "page_config.json").write_text(
        json.dumps(STUDENT_PAGE_CONFIG, indent=1)
    )


def _chown_tree(path: Path, name: str) -> None:
    user = pwd.getpwnam(name)
    for p in [path, *path.rglob("*")]:
        os.chown(p, user.pw_uid, user.pw_gid)


def create_class(
    state: Path,
    instructor: str,
    students: list[str],
    course_id: str = "attention",
    port: int | None = None,
    service_token: str | None = None,
    env: Path | None = None,
) -> ClassHub:
    """Lay out (or reuse) the class under ``state`` and create its unix users. ``env``: where
    the shared course environment goes (default ``STATE/env``; the test and the benchmark
    keep one across runs)."""
    if os.geteuid() != 0:
        raise SystemExit("the class hub creates unix users and runs servers as them: run as root")
    if not PROXY.exists():
        raise SystemExit(f"{PROXY} is missing: run `make hub-proxy` (npm ci in scripts/hub)")
    state = state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o711)  # users pass through to their homes and the exchange, list nothing
    saved = state / "class.json"
    if saved.exists():  # a class already laid out here: keep its work and passwords
        info = json.loads(saved.read_text())
        if (info["instructor"], info["students"]) != (instructor, list(students)):
            raise SystemExit(
                f"{state} holds a class of {len(info['students'])} students, not "
                f"{len(students)}: use that number, or start afresh (rm -rf {state}, userdel "
                "its users)"
            )
        info["port"] = port or info["port"]
    else:
        info = {
            "course_id": course_id,
            "instructor": instructor,
            "students": list(students),
            "passwords": {n: secrets.token_urlsafe(9) for n in [instructor, *students]},
            "port": port or free_port(),
            "hub_port": free_port(),
            "proxy_api_port": free_port(),
        }
    env_bin = make_shared_env(env or state / "env")
    info.update(proxy=str(PROXY), venv_bin=str(env_bin), service_token=service_token)
    saved.write_text(json.dumps(info, indent=1))
    saved.chmod(0o600)
    hub = ClassHub(state, info)

    (state / "home").mkdir(exist_ok=True)
    (state / "home").chmod(0o711)
    for name in [hub.instructor, *hub.students]:
        _ensure_user(name, hub.home(name), hub.password(name))
    for name in hub.students:
        _student_config(hub.home(name))
        _chown_tree(hub.home(name), name)

    exchange = state / "exchange"
    exchange.mkdir(exist_ok=True)
    exchange.chmod(0o777)
    etc = state / "etc" / "jupyter"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"c.Exchange.root = {str(exchange)!r}\n"
        f"c.CourseDirectory.course_id = {info['course_id']!r}\n"
    )
    for p in (state / "etc", etc):
        p.chmod(0o755)

    course = hub.course_dir
    if not course.exists():
        course.mkdir()
        shutil.copy(ROOT / "nbgrader_config.py", course)
        for folder in ("solutions", "exercises"):
            shutil.copytree(ROOT / folder, course / folder)
        # The instructor's own servers find the course folder (formgrader) from anywhere.
        jupyter = hub.home(hub.instructor) / ".jupyter"
        jupyter.mkdir(exist_ok=True)
        (jupyter / "nbgrader_config.py").write_text(
            f"c = get_config()  # noqa: F821\nc.CourseDirectory.root = {str(course)!r}\n"
        )
        _chown_tree(hub.home(hub.instructor), hub.instructor)
    return hub


def remove_users(hub: ClassHub) -> None:
    """Delete the class's unix users (their files go with the state folder)."""
    for name in [hub.instructor, *hub.students]:
        subprocess.run([_system("userdel"), name], check=False, capture_output=True)


def start_hub(hub: ClassHub, log: Path, timeout: float = 120) -> subprocess.Popen:
    """Start JupyterHub (and its proxy) on 127.0.0.1; return once its API answers."""
    env = {
        **os.environ,
        "ATTN_HUB_STATE": str(hub.state),
        "PATH": f"{VENV}/bin:{os.environ['PATH']}",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(VENV / "bin" / "jupyterhub"), "-f", str(CONFIG)],
            cwd=hub.state,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in `make hub` reaches the hub once, via us
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterHub exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{hub.url}/hub/api/", timeout=5)
            return proc
        except OSError:
            time.sleep(0.5)
    stop_hub(proc)
    raise RuntimeError(f"JupyterHub did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_hub(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Stop the hub as Ctrl-C would: it stops every user's server and its proxy first."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the course's class hub on this machine.")
    parser.add_argument("--state", type=Path, default=ROOT / "_build" / "hub")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--students", type=int, default=3, help="how many students (1 to 200)")
    args = parser.parse_args(argv)
    if not 1 <= args.students <= 200:
        parser.error(f"--students takes 1 to 200, not {args.students}")
    students = [f"student{i}" for i in range(1, args.students + 1)]
    hub = create_class(args.state, "instructor", students, port=args.port)
    # The users' servers run from the shared environment: can a student import from it?
    probe = hub.run_as(hub.students[0], ["python", "-c", "import attn_course, nbgrader"])
    if probe.returncode:
        raise SystemExit(
            f"a student cannot run {hub.info['venv_bin']}/python (can every user pass "
            f"through {hub.state}'s parent folders? else choose --state):\n{probe.stderr}"
        )
    log = hub.state / "jupyterhub.log"

    def interrupt(signum, frame):  # Ctrl-C, or a `kill`: even where SIGINT came in ignored
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    proc = start_hub(hub, log)
    print(f"\nThe class hub is running: {hub.url}  (log: {log})")
    print(f"  instructor: user {hub.instructor!r}, password {hub.password(hub.instructor)!r}")
    print(
        f"              course folder {hub.course_dir}; in a terminal there: "
        f"nbgrader generate_assignment {ASSIGNMENT} && nbgrader release_assignment {ASSIGNMENT}"
    )
    for name in hub.students:
        print(f"  student:    user {name!r}, password {hub.password(name)!r}")
    print("Students fetch and submit under the Assignments tab. Ctrl-C stops the hub.", flush=True)
    try:
        while proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nStopping the hub and every user's server ...", flush=True)
    finally:
        stop_hub(proc)
    return 0 if proc.returncode in (0, -signal.SIGINT, 130) else proc.returncode


if __name__ == "__main__":
    sys.exit(main())
