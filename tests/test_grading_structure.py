"""The grader's shape, checked from its source: no import circle, small modules, each
grading default written once, and every upstream dependency fingerprinted."""

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from attn_course.grading import upstream

PACKAGE = Path(__file__).resolve().parent.parent / "attn_course"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """module -> the attn_course modules it imports (at any depth of its code)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_known_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_circle_in_the_package():
    graph = _imports()
    assert "attn_course.grading.batch" in graph  # the reader sees the package
    assert graph["attn_course.grading.batch"] >= {"attn_course.grading"}
    assert _cycles(graph) == []


def test_configure_pulls_in_no_command_line_module():
    code = (
        "import sys\nfrom traitlets.config import Config\n"
        "from attn_course.grading import configure\nconfigure(Config())\n"
        "print(sorted(m for m in sys.modules if m.startswith('attn_course.grading')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = proc.stdout
    assert "attn_course.grading.execute" in loaded  # configure() did run
    for driver in ("cli", "batch", "runners", "cluster", "outputs", "course"):
        assert f"attn_course.grading.{driver}'" not in loaded, loaded


def test_no_module_is_too_long_to_read():
    lengths = {p: len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {str(p): n for p, n in lengths.items() if n > 500} == {}
    grading = {str(p): n for p, n in lengths.items() if "grading" in p.parts and n >= 450}
    assert grading == {}


def _constants(value) -> list[str]:
    """Where ``value`` is written as a constant in the grading package's code (docstrings and
    help texts hold it inside longer strings, which do not count)."""
    out = []
    for path in (PACKAGE / "grading").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and type(node.value) is type(value):
                if node.value == value:
                    out.append(f"{path.name}:{node.lineno}")
    return out


@pytest.mark.parametrize(
    ("value", "what"),
    [("2G", "memory per kernel"), (60, "per-cell timeout"), (1800, "CPU backstop")],
)
def test_each_grading_default_is_written_once(value, what):
    places = _constants(value)
    assert len(places) == 1, f"the {what} default {value!r} is written in {places}"


def test_every_upstream_dependency_is_as_written():
    assert upstream.stale() == []


def test_a_changed_upstream_names_the_place_to_reread():
    dep = upstream.DEPENDENCIES[0]
    edited = dataclasses.replace(dep, fingerprint="0" * 16)
    (message,) = upstream.stale([edited])
    assert dep.upstream in message and dep.here in message and "re-read" in message
    missing = dataclasses.replace(dep, upstream="nbgrader.converters.base:NoSuchThing.start")
    (message,) = upstream.stale([missing])
    assert "missing" in message and dep.here in message


def test_the_students_command_needs_no_grader():
    """`attn-course check` and what a student's kernel imports load without nbgrader, Dask
    or torch (a student's install has none of them; tests/test_student_install.py runs it)."""
    code = (
        "import sys\n"
        "for m in ('nbgrader', 'dask', 'distributed', 'torch', 'jupyter_book'):\n"
        "    sys.modules[m] = None  # importing it raises ImportError\n"
        "import attn_course.checks, attn_course.grading.guard, attn_course.grading.selfcheck\n"
        "from attn_course.grading.cli import main\n"
        "try:\n    main(['check', '--help'])\nexcept SystemExit as e:\n    sys.exit(e.code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "NOTEBOOK" in proc.stdout and "--timeout" in proc.stdout
