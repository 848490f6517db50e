"""scripts/execute_book.py: a change to the package the chapters run re-executes them."""

import shutil
from pathlib import Path

from execute_book import library_fingerprint  # scripts/ is on sys.path (conftest)

ROOT = Path(__file__).resolve().parents[1]


def test_the_fingerprint_follows_the_chapters_code_and_not_the_graders(tmp_path):
    package = tmp_path / "attn_course"
    shutil.copytree(ROOT / "attn_course", package, ignore=shutil.ignore_patterns("__pycache__"))
    first = library_fingerprint(package)
    assert library_fingerprint(package) == first  # the same code, the same fingerprint

    grader = package / "grading" / "batch.py"
    grader.write_text(grader.read_text() + "\n# an instructor-side change\n")
    assert library_fingerprint(package) == first  # chapters do not run the grader

    diagrams = package / "diagrams" / "transformer.py"
    diagrams.write_text(diagrams.read_text() + "\n# a changed picture\n")
    changed = library_fingerprint(package)
    assert changed != first

    (package / "diagrams" / "transformer.py").rename(package / "diagrams" / "renamed.py")
    assert library_fingerprint(package) != changed  # a moved module counts too
