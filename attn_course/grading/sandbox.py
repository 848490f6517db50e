"""The box a student's kernel runs in.

Each submission's kernel is one process tree started through
``prlimit`` (resource limits) and, when Debian's ``bwrap`` (bubblewrap) works on
this machine, inside a fresh mount/PID/network/IPC namespace that shows only
what the kernel needs, read-only: the system folders, the Python installation
and virtualenv, and the ``attn_course`` package. The only writable places are
the submission's own private working folder and a private ``/tmp``. When the
grader runs as root, the kernel additionally runs under an unprivileged uid
(``61000 + worker slot``), so it cannot signal other kernels or write files it
does not own.

Nothing here imports heavy modules: the worker builds the command line, the
kernel process itself never imports this module.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULTS",
    "Limits",
    "Sandbox",
    "SandboxUnavailable",
    "bwrap_problem",
    "detect_sandbox",
    "grading_slot",
    "kernel_pythonpath",
    "package_dir",
    "parse_memory",
]

GRADER_UID_BASE = 61000
# The values behind GradingExecute's traits (the settings' one owner, execute.py), written
# here, in a module without nbgrader, so that the students' `attn-course check` (installed
# without the grader) and `attn-course --help` read the same defaults.
DEFAULTS = {"timeout": 60, "memory": "2G"}
MAX_SLOTS = 256


def parse_memory(text: str | int) -> int:
    """``"2G"``, ``"512M"``, ``"1.5g"`` or a number of bytes -> bytes."""
    if isinstance(text, int):
        return text
    s = str(text).strip().upper().removesuffix("B").removesuffix("I")
    factor = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(s[-1:], 1)
    number = s[:-1] if s[-1:] in "KMGT" else s
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise ValueError(f"cannot read the memory limit {text!r}: use e.g. 2G or 512M") from None
    if value < 64 * 2**20:
        raise ValueError(f"memory limit {text!r} is below 64M: no Python kernel starts in that")
    return value


@dataclass(frozen=True)
class Limits:
    """Resource limits of one kernel (all inherited by anything it starts). The course's
    values come from :class:`~attn_course.grading.execute.GradingExecute`'s traits."""

    timeout: int  # seconds of wall time per cell
    memory: int  # bytes of address space (RLIMIT_AS)
    cpu: int  # seconds of CPU time for the whole kernel (RLIMIT_CPU), a backstop
    file_size: int = 256 * 2**20  # largest file it may write (RLIMIT_FSIZE)
    open_files: int = 1024  # RLIMIT_NOFILE
    processes: int = 512  # RLIMIT_NPROC (threads count), only enforced for the grader uid

    @staticmethod
    def cpu_for(timeout: int) -> int:
        """The CPU backstop for a per-cell ``timeout``: far above what a notebook of honest
        cells uses, so only a runaway kernel meets it."""
        return max(1800, 30 * timeout)

    @property
    def notebook_seconds(self) -> float:
        """Wall time one notebook may use in all (its cells and its kernel restarts)."""
        return max(600.0, 10.0 * self.timeout)

    def prlimit_args(self, with_nproc: bool) -> list[str]:
        args = [
            f"--as={self.memory}",
            f"--cpu={self.cpu}",
            f"--fsize={self.file_size}",
            f"--nofile={self.open_files}",
            "--core=0",
        ]
        if with_nproc:
            args.append(f"--nproc={self.processes}")
        return args


@functools.cache
def bwrap_problem() -> str | None:
    """Why bubblewrap cannot box a kernel on this machine, in words; None if it can."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap (`bwrap`) is not installed"
    try:
        proc = subprocess.run(
            [
                exe,
                "--ro-bind",
                "/",
                "/",
                "--unshare-pid",
                "--unshare-net",
                "--dev",
                "/dev",
                "--proc",
                "/proc",
                "true",
            ],
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap ({exe}) could not be run ({type(err).__name__})"
    if proc.returncode == 0:
        return None
    said = proc.stderr.decode(errors="replace").strip().splitlines()
    return (
        f"bubblewrap ({exe}) cannot create its namespaces here"
        f"{f' ({said[-1]})' if said else ''}, as inside many containers and hub pods"
    )


class SandboxUnavailable(RuntimeError):
    """Student code would run without its box, and nobody opted in to that."""


UNBOXED = (
    "A student's notebook can then read and write every file the grading user can: "
    "solutions/ with the hidden tests, gradebook.db, other students' submissions."
)


def unavailable(reason: str) -> str:
    """The paragraph both grading paths print when the box is missing."""
    return (
        f"Student code would run without its box: {reason}. {UNBOXED} "
        "Install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`, or `make grader` "
        "in the course folder) and grade again; inside a container, grade where bubblewrap "
        "can create namespaces (a VM, a privileged pod, Dask workers outside the hub). To grade "
        "without the box anyway, opt in explicitly: `attn-course grade --unboxed`, or "
        "`c.GradingExecute.boxed = False` in nbgrader_config.py (both paths read it)."
    )


def package_dir() -> Path:
    """The ``attn_course`` this process runs: the one every grading kernel must import."""
    import attn_course

    return Path(attn_course.__file__).resolve().parent


def kernel_pythonpath() -> str | None:
    """The folder a grading kernel puts first on ``sys.path`` so that it imports this process's
    ``attn_course`` (:func:`package_dir`), or None where the environment's site-packages hold
    it anyway. It differs when the package comes from the course folder (nbgrader puts its
    working folder on ``sys.path``) or from an editable install of another folder; in a box,
    only the package itself is mounted below that folder."""
    import site

    parent = package_dir().parent
    sites = {Path(p).resolve() for p in site.getsitepackages()}
    return None if parent in sites else str(parent)


def _readonly_paths(course_root: Path | None) -> list[Path]:
    """What the kernel must read: Python, the virtualenv, site-packages, attn_course."""
    package = package_dir()
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), package}
    paths.add(Path(sys.executable).resolve().parent.parent)
    for entry in sys.path:
        p = Path(entry or ".").resolve()
        if not p.is_dir():
            continue
        if course_root is not None and (p == course_root or course_root in p.parents):
            continue  # the course folder holds the solutions and the gradebook: never mount it
        if p in (Path("/"), Path("/tmp")) or str(p).startswith(("/usr", "/etc", "/proc", "/dev")):
            continue  # system folders are mounted anyway; /tmp is the kernel's own tmpfs
        paths.add(p)
    # the venv is inside the course folder in this repository: mount the venv, not the course
    keep = []
    for p in sorted(paths, key=lambda q: len(q.parts)):
        if not any(parent in keep for parent in p.parents):
            keep.append(p)
    return keep


@dataclass
class Sandbox:
    """How kernels are boxed on this machine (see the module docstring)."""

    kind: str  # "bwrap", "rlimits", or "none" (no box: the students' self-check)
    uid: int | None = None  # run the kernel under this uid (root + bwrap only)
    course_root: Path | None = None
    notes: list[str] = field(default_factory=list)

    def prepare_dir(self, path: Path) -> None:
        """Make ``path`` (and everything in it) writable by the kernel and by nobody else."""
        if self.uid is None:
            return
        for dirpath, dirnames, filenames in os.walk(path):
            os.chown(dirpath, self.uid, self.uid)
            os.chmod(dirpath, 0o700)
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                if not os.path.islink(p):
                    os.chown(p, self.uid, self.uid)

    def wrap(self, cmd: list[str], box: Path, cwd: Path, env: dict[str, str], limits: Limits):
        """The full command line that runs ``cmd`` boxed, with exactly ``env`` as environment."""
        if self.kind == "none":  # a student's own self-check: their kernel, their environment
            return list(cmd)
        prlimit = ["prlimit", *limits.prlimit_args(with_nproc=self.uid is not None), "--"]
        if self.kind != "bwrap":
            envargs = [f"{k}={v}" for k, v in env.items()]
            return [*prlimit, "env", "-i", *envargs, *cmd]
        args = [
            "bwrap",
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--clearenv",
        ]
        for name in ("usr", "etc"):
            args += ["--ro-bind", f"/{name}", f"/{name}"]
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            p = Path("/") / name
            if p.is_symlink():
                args += ["--symlink", os.readlink(p), str(p)]
            elif p.is_dir():
                args += ["--ro-bind", str(p), str(p)]
        made: set[Path] = set()

        def parents(p: Path):
            out = []
            for parent in reversed(p.parents):
                if (
                    parent != Path("/")
                    and parent not in made
                    and not str(parent).startswith(("/usr", "/etc"))
                ):
                    made.add(parent)
                    out += ["--perms", "0755", "--dir", str(parent)]
            return out

        # the private /tmp first: Python or the venv may live below /tmp (a clone in /tmp/...),
        # and their read-only binds must land on top of it, not be hidden by it
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        made.add(Path("/tmp"))
        for p in _readonly_paths(self.course_root):
            args += parents(p) + ["--ro-bind", str(p), str(p)]
        args += parents(box) + ["--bind", str(box), str(box), "--chdir", str(cwd)]
        for key, value in env.items():
            args += ["--setenv", key, value]
        if self.uid is not None:
            args += [
                "--cap-add",
                "CAP_SETUID,CAP_SETGID",
                "--",
                "setpriv",
                f"--reuid={self.uid}",
                f"--regid={self.uid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
            ]
        args += ["--", *cmd]
        return [*prlimit, *args]


def detect_sandbox(slot: int, course_root: Path | None, boxed: bool = True) -> Sandbox:
    """The box of a worker in ``slot`` (0, 1, ...): bubblewrap, or with ``boxed=False`` (the
    instructor's explicit opt-in) resource limits only. SandboxUnavailable (the paragraph of
    :func:`unavailable`) when bubblewrap cannot box and nobody opted out."""
    if not boxed:
        return Sandbox("rlimits", None, course_root, ["kernels ran unboxed, as asked. " + UNBOXED])
    problem = bwrap_problem()
    if problem is not None:
        raise SandboxUnavailable(unavailable(problem))
    notes = []
    uid = None
    if os.geteuid() == 0:
        if shutil.which("setpriv"):
            uid = GRADER_UID_BASE + slot
        else:
            notes.append("setpriv not found: kernels run as root inside the sandbox")
    return Sandbox("bwrap", uid, course_root, notes)


_SLOT: list = []  # (slot number, the open lock file that holds it) of this process


def grading_slot() -> int:
    """This process's slot on this machine (0, 1, ...): its kernels run as ``61000 + slot``.

    Every process that grades (a pool worker, a Dask worker, plain ``nbgrader autograde``)
    holds an exclusive ``flock`` on ``/tmp/attn-grade-slot-N`` for the first free N while it
    lives, so two graders on one machine never share a uid, whoever started them. The kernel
    closes the lock's descriptor (``close_fds``), so it cannot hold a slot after its grader.
    A slot file another user made (root's, say, when an instructor grades on a shared hub)
    cannot be opened: that slot counts as taken.
    """
    import fcntl

    if not _SLOT:
        for n in range(MAX_SLOTS):
            try:
                fh = open(f"/tmp/attn-grade-slot-{n}", "a")  # noqa: SIM115  (held for life)
            except PermissionError:
                continue
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                continue
            _SLOT.append((n, fh))
            break
        else:
            raise RuntimeError(f"more than {MAX_SLOTS} grading processes on this machine")
    return _SLOT[0][0]
