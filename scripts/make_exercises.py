"""Generate the student notebooks (``exercises/``) from the instructor ones (``solutions/``).

    python scripts/make_exercises.py                     # every assignment (make exercises)
    python scripts/make_exercises.py 03_query_key_value

One source per answer: where an assignment's graded functions have an answer-key module
(:data:`ANSWER_KEYS`), the solution cells are first rewritten from it, so the code between
each cell's ``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers *is* that function's body.

This runs the real ``nbgrader generate_assignment`` in a private temporary
course folder (so it neither needs nor touches your ``gradebook.db``) and
copies its release folder into ``exercises/``. The test suite calls
:func:`generate` the same way and compares, so ``exercises/`` can never
drift from ``solutions/`` unnoticed.

Each release is also written in every translated language, from the English release and the
assignment's catalog (``locales/<lang>/LC_MESSAGES/exercises/<assignment>.po``, compiled into
the package first), by ``generate_assignment`` itself (the course's plugin registers
:class:`~attn_course.grading.languages.TranslateRelease`):
``exercises/<assignment>/<lang>/<assignment>.ipynb``, under the English notebook's own name,
so that a student hands in the same file name in any language.
"""

import argparse
import ast
import importlib
import inspect
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import nbformat
from notebook_catalogs import compile_all

from attn_course.grading import nbgrader_env

ROOT = Path(__file__).resolve().parents[1]  # the repository: scripts/make_exercises.py
SOURCE = ROOT / "solutions"
RELEASE = ROOT / "exercises"


# Assignments whose graded functions live in an answer-key module (the others, 03 and 04,
# grade functions of attn_course.functional, which a notebook cannot import as they are: they
# run on NumPy or torch through the array API; tests/test_answer_keys.py checks that those
# solution cells compute what the library computes).
ANSWER_KEYS = {
    "01_encoder_decoder": "attn_course.answers.encoder_decoder",
    "02_attention": "attn_course.answers.attention",
}
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def _signature(source: str, name: str) -> str:
    """The argument list of the function ``name`` defined in ``source``, normalised."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.unparse(node.args)
    raise ValueError(f"no function {name!r} defined in the cell")


def answer_body(fn) -> list[str]:
    """The lines of ``fn``'s body below its docstring, indented as in a top-level def."""
    source = textwrap.dedent(inspect.getsource(fn))
    (node,) = ast.parse(source).body
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    lines = source.splitlines()
    return lines[body[0].lineno - 1 : node.end_lineno]


def sync_solutions(assignment: str, source: Path = SOURCE, write: bool = True) -> list[str]:
    """Rewrite the solution cells of ``assignment`` from its answer-key module.

    Returns the grade ids whose cells differed (and were rewritten when ``write``). A cell whose
    signature differs from the module's is an error: the two would not be one function."""
    if assignment not in ANSWER_KEYS:
        return []
    module = importlib.import_module(ANSWER_KEYS[assignment])
    (path,) = sorted((source / assignment).glob("*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    changed = []
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if not cell.metadata.get("nbgrader", {}).get("solution") or not hasattr(module, grade_id):
            continue
        fn = getattr(module, grade_id)
        if _signature(cell.source, grade_id) != _signature(inspect.getsource(fn), grade_id):
            raise ValueError(
                f"{path.name}: the cell {grade_id!r} and {module.__name__}.{grade_id} have "
                "different signatures; make them one function"
            )
        lines = cell.source.splitlines()
        begin, end = lines.index(f"    {BEGIN}"), lines.index(f"    {END}")
        new = "\n".join([*lines[: begin + 1], *answer_body(fn), *lines[end:]])
        if new != cell.source:
            changed.append(grade_id)
            cell.source = new
    if changed and write:
        nbformat.write(nb, path)
    return changed


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
    for path in compile_all():
        print(f"compiled: {path.relative_to(ROOT)}")
    for name in args.assignment or assignments():
        for grade_id in sync_solutions(name):
            print(f"{name}: solution of {grade_id} rewritten from {ANSWER_KEYS[name]}")
        out = generate(name, RELEASE)
        print(f"{name}: student version written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
