"""What the students are told, in the book's How to use page and in the notebooks: every
assignment, one way to check a notebook (`attn-course check`), the README's `jupyter lab`
command, and paths that all lead to the same copy of the notebook, outside `exercises/`.

Reads the Markdown and the committed notebooks; runs nothing."""

import re
import shlex
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "book" / "how_to_use.md").read_text()
README = (ROOT / "README.md").read_text()
ASSIGNMENTS = sorted(p.name for p in (ROOT / "exercises").iterdir() if p.is_dir())


def _shell_lines(text: str) -> list[list[str]]:
    """The commands of every ```bash block, split as the shell splits them."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [shlex.split(line) for block in blocks for line in block.splitlines() if line.strip()]


def test_the_page_names_every_assignment():
    missing = [a for a in ASSIGNMENTS if f"`{a}`" not in PAGE]
    assert not missing, f"book/how_to_use.md does not list {missing}"


def test_the_page_opens_jupyter_lab_as_the_readme_does():
    readme = shlex.split(re.search(r"`(\.venv/bin/jupyter lab [^`]+)`", README).group(1))
    (page,) = [c for c in _shell_lines(PAGE) if c[:2] == [".venv/bin/jupyter", "lab"]]
    assert [a for a in page if a.startswith("--")] == [a for a in readme if a.startswith("--")]


def test_the_copy_the_page_makes_is_the_one_it_opens_and_checks():
    commands = _shell_lines(PAGE)
    (cp,) = [c for c in commands if c[0] == "cp"]
    source, folder = Path(cp[1]), cp[2]
    assert (ROOT / source).is_file() and source.parts[0] == "exercises"
    copy = str(Path(folder) / source.name)  # the name is kept: the grader needs it
    assert not copy.startswith("exercises/")
    (lab,) = [c for c in commands if c[:2] == [".venv/bin/jupyter", "lab"]]
    (check,) = [c for c in commands if c[0].endswith("attn-course") and c[1] == "check"]
    assert lab[-1] == copy and check[2] == copy
    # from Python, started in the repository's folder, as the page says
    assert re.search(r'check\("([^"]+)"\)', PAGE).group(1) == copy


def test_the_page_recommends_one_check():
    commands = [c[:2] for c in _shell_lines(PAGE)]
    assert ["nbgrader", "validate"] not in commands
    assert any(c[0].endswith("attn-course") and c[1] == "check" for c in commands)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_each_notebook_recommends_the_same_check_on_a_copy(assignment):
    nb = nbformat.read(ROOT / "exercises" / assignment / f"{assignment}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "nbgrader validate" not in text
    assert f"`.venv/bin/attn-course check work/{assignment}.ipynb`" in text
