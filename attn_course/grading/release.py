"""Generate the student notebooks (``exercises/``) from the instructor ones (``solutions/``).

    python -m attn_course.grading.release            # every assignment
    python -m attn_course.grading.release 03_query_key_value

This runs the real ``nbgrader generate_assignment`` in a private temporary
course folder (so it neither needs nor touches your ``gradebook.db``) and
copies its release folder into ``exercises/``. The test suite calls
:func:`generate` the same way and compares, so ``exercises/`` can never
drift from ``solutions/`` unnoticed.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from attn_course.grading import nbgrader_env

ROOT = Path(__file__).resolve().parents[2]  # the repository: attn_course/grading/release.py
SOURCE = ROOT / "solutions"
RELEASE = ROOT / "exercises"


def assignments(source: Path = SOURCE) -> list[str]:
    """Every assignment folder in ``solutions/`` (those holding at least one notebook)."""
    return sorted(p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def make_course(course: Path, assignment: str, source: Path = SOURCE) -> Path:
    """A private nbgrader course folder at ``course`` holding one assignment (copied from
    ``source``), with its student version generated in ``course/release`` and registered in
    ``course/gradebook.db``. Returns ``course``."""
    if not (source / assignment).is_dir():
        raise FileNotFoundError(f"no assignment {assignment!r} in {source}")
    shutil.copytree(source / assignment, course / "source" / assignment)
    (course / "nbgrader_config.py").write_text(
        (ROOT / "nbgrader_config.py").read_text()
        + '\nc.CourseDirectory.source_directory = "source"\n'
        + 'c.CourseDirectory.release_directory = "release"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force"],
        cwd=course,
        env=nbgrader_env(),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"nbgrader generate_assignment {assignment} failed:\n{proc.stdout}{proc.stderr}"
        )
    return course


def generate(assignment: str, dest: Path, source: Path = SOURCE) -> Path:
    """Run ``nbgrader generate_assignment`` on ``source/assignment``; write the student
    version to ``dest/assignment`` (replacing it) and return that folder."""
    with tempfile.TemporaryDirectory(prefix="attn-release-") as tmp:
        course = make_course(Path(tmp), assignment, source)
        out = dest / assignment
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(course / "release" / assignment, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", nargs="*", help="default: every assignment in solutions/")
    args = parser.parse_args(argv)
    for name in args.assignment or assignments():
        out = generate(name, RELEASE)
        print(f"{name}: student version written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
