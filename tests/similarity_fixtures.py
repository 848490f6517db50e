"""Classes of answers for the similarity tests and benchmarks/report_speed.py, built from the
grading-validity cases (tests/grading_cases/): independently written answers, and planted
copies disguised as a copier disguises them. No kernel: answers are cell sources.

- :func:`independent_class`: student j answers part p with the j-th correct way of writing
  it (the instructor's, then the ``valid`` cases); a part with fewer ways is left as the
  starter code, as a student who skipped it leaves it.
- :func:`disguise`: identifiers renamed, functions reordered, comments and blank lines
  changed (the code's behaviour unchanged).
"""

from __future__ import annotations

import ast
import io
import json
import keyword
import random
import tokenize
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "grading_cases"

__all__ = ["ASSIGNMENTS", "disguise", "independent_class", "released", "ways"]

ASSIGNMENTS = sorted(p.stem for p in CASES.glob("*.toml"))


def _cells(folder: str, assignment: str) -> tuple[dict, set[str]]:
    nb_path = next((ROOT / folder / assignment).glob("*.ipynb"))
    nb = json.loads(nb_path.read_text())
    sources, solutions = {}, set()
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if "grade_id" in meta:
            sources[meta["grade_id"]] = "".join(cell["source"])
            if meta.get("solution"):
                solutions.add(meta["grade_id"])
    return sources, solutions


def released(assignment: str) -> tuple[dict[str, str], dict]:
    """(answer grade_id -> its starter code in exercises/, the released notebook's JSON)."""
    sources, solutions = _cells("exercises", assignment)
    nb = json.loads(next((ROOT / "exercises" / assignment).glob("*.ipynb")).read_text())
    return {g: sources[g] for g in solutions}, nb


def ways(assignment: str, mistakes: bool = False) -> dict[str, list[str]]:
    """answer grade_id -> the correct ways of writing it: the instructor's (markers removed),
    then the validity cases' ``valid`` ones (and their ``mistakes`` with ``mistakes=True``)."""
    sources, solutions = _cells("solutions", assignment)
    spec = tomllib.loads((CASES / f"{assignment}.toml").read_text())
    out = {}
    for gid in sorted(solutions):
        lines = sources[gid].splitlines()
        out[gid] = ["\n".join(ln for ln in lines if "### BEGIN SOLUTION" not in ln
                              and "### END SOLUTION" not in ln)]  # fmt: skip
    for data in spec["parts"].values():
        kinds = ("valid", "mistakes") if mistakes else ("valid",)
        out[data["answer"]] += [case["code"].strip("\n") for k in kinds for case in data.get(k, [])]
    return out


def independent_class(assignment: str) -> dict[str, dict[str, str]]:
    """student -> answer grade_id -> source: no two students wrote a part the same way."""
    starters, _ = released(assignment)
    options = ways(assignment)
    n = max(len(v) for v in options.values())
    return {
        f"{assignment}-s{j}": {
            gid: options[gid][j] if j < len(options[gid]) else starters[gid] for gid in starters
        }
        for j in range(n)
    }


def _bound_names(tree) -> set[str]:
    """Names the code binds itself: functions, their arguments, assigned variables."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
            a = node.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                if arg is not None:
                    names.add(arg.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def disguise(code: str, rng: random.Random, keep: set[str] = frozenset()) -> str:
    """``code`` as a copier hands it in: every name it binds renamed (except ``keep``, the
    graded functions' names), top-level functions in reverse order, its comments replaced by
    others, blank lines moved. Behaviour unchanged, except that keyword arguments named
    after a renamed parameter would no longer fit (the tests never run a copy)."""
    tree = ast.parse(code)
    # top-level statements: imports stay first, functions and the rest reversed
    lines = code.splitlines()
    blocks = [
        (n.lineno - 1 - len(getattr(n, "decorator_list", [])), n.end_lineno) for n in tree.body
    ]
    head = [
        b
        for b, n in zip(blocks, tree.body, strict=True)
        if isinstance(n, (ast.Import, ast.ImportFrom))
    ]
    rest = [b for b in blocks if b not in head]
    order = head + rest[::-1]
    code = "\n\n".join("\n".join(lines[s:e]) for s, e in order)
    rename = {n: f"{n}_{rng.choice(['v', 'tmp', 'my', 'val'])}{rng.randrange(100)}"
              for n in _bound_names(tree) - set(keep)}  # fmt: skip
    out = []
    previous = None
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.NAME and tok.string in rename and not keyword.iskeyword(tok.string):
            if not (previous is not None and previous.string == "."):
                tok = tok._replace(string=rename[tok.string])
        elif tok.type == tokenize.COMMENT:
            tok = tok._replace(string="# " + rng.choice(["step", "compute it", "ok", "see notes"]))
        out.append(tok)
        if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
            previous = tok
    text = tokenize.untokenize(out)
    changed = []
    for line in text.splitlines():
        if not line.strip():
            continue  # blank lines removed ...
        changed.append(line)
        if rng.random() < 0.3:  # ... and others added, with comments of the copier's own
            changed.append(
                " " * (len(line) - len(line.lstrip())) + "# " + rng.choice(["here", "tbd"])
            )
            changed.append("")
    return "\n".join(changed)
