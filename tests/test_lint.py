"""The code is ruff-clean: lint rules and formatting (configuration in pyproject.toml). And
the tests stay findable: no test module imports another (shared code goes to conftest.py or
a fixture module, CONTRIBUTING.md)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"


def test_ruff_check():
    proc = subprocess.run([RUFF, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format():
    proc = subprocess.run(
        [RUFF, "format", "--check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def imported_test_modules(source: str) -> list[str]:
    """The test modules (``test_*``, ``tests.*``) that ``source`` imports."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return [n for n in names if n.split(".")[0] == "tests" or n.startswith("test_")]


def test_the_import_check_sees_every_form():
    source = (
        "import test_links\nfrom test_browser import serve\nimport tests.test_book as tb\n"
        "try:\n    from tests.test_links import book_html\nexcept ImportError:\n    pass\n"
        "def f():\n    from test_grading_failures import GRADE_ARGS\n"
        "import grading_fixtures\nfrom browser_fixtures import serve\nimport testing\n"
    )
    assert imported_test_modules(source) == [
        "test_links",
        "test_browser",
        "tests.test_book",
        "tests.test_links",
        "test_grading_failures",
    ]


def test_no_test_module_imports_another():
    found = [
        f"{path.name} imports {name}"
        for path in sorted((ROOT / "tests").glob("*.py"))
        for name in imported_test_modules(path.read_text(encoding="utf-8"))
    ]
    assert not found, "\n".join(found)
