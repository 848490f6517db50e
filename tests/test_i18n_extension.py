"""_ext/course_i18n.py on a one-page book: a real Sphinx, myst-nb and kernel, in a
temporary folder, built as the Makefile builds the book (English, gettext templates,
sphinx-intl, Chinese).

It checks what Sphinx alone gets wrong: a glued value inside a translated sentence, a
figure's words and alt text, the language switch, and a translated build that had to
execute a notebook.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po, write_po

pytestmark = [pytest.mark.book]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

CONF = f"""
import sys
sys.path.insert(0, {str(ROOT / "_ext")!r})
extensions = ["myst_nb", "course_i18n"]
html_theme = "sphinx_book_theme"
nb_execution_mode = "cache"
nb_execution_cache_path = "_build/.jupyter_cache"
myst_enable_extensions = ["dollarmath"]
locale_dirs = ["locales"]
gettext_compact = False
exclude_patterns = ["_build", "locales"]
"""

PAGE = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
# Results

```{code-cell} ipython3
import matplotlib.pyplot as plt
from myst_nb import glue

from attn_course.i18n import glue_figure, glue_word

glue("acc", 0.9137, display=False)
glue_word("trend", "rising", ["rising", "falling"])  # the template gets both
glue("n", 12, display=False)
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([0, 1], [0, 1], label="attention")
ax.set(title="reversal", xlabel="input $x_j$")
ax.legend()
glue_figure("fig_acc", fig)
plt.close(fig)
```

The accuracy is {glue:text}`acc:.2f` for $C_i$.

The line is {glue:md}`trend`.

It was trained on {glue:text}`n` sequences.

```{glue:figure} fig_acc
:alt: One rising line.

Accuracy against length.
```
"""

CHINESE = {
    "Results": "结果",
    "The accuracy is {glue:text}`acc:.2f` for $C_i$.": "$C_i$ 的准确率为 {glue:text}`acc:.2f`。",
    "It was trained on {glue:text}`n` sequences.": "它在 {glue:text}`n` 个序列上训练。",
    "Accuracy against length.": "准确率随长度的变化。",
    "The line is {glue:md}`trend`.": "这条直线是{glue:md}`trend`的。",
    "rising": "上升",
    "falling": "下降",
    "One rising line.": "一条上升的直线。",
    "reversal": "反转",
    "attention": "注意力",
    "input $x_j$": "输入 $x_j$",
}


def sphinx(src: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "sphinx-build"), "-q", "-W", "--keep-going", *args],
        cwd=src,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("i18n-book")
    (src / "conf.py").write_text(CONF)
    (src / "index.md").write_text(PAGE)
    english = sphinx(src, "-b", "html", ".", "_build/html")
    assert english.returncode == 0, english.stderr
    templates = sphinx(src, "-b", "gettext", ".", "_build/gettext")
    assert templates.returncode == 0, templates.stderr
    intl = [str(BIN / "sphinx-intl"), "update", "-p", "_build/gettext", "-d", "locales"]
    subprocess.run(
        [*intl, "-l", "zh_CN"],
        cwd=src,
        check=True,
        capture_output=True,
    )
    po_path = src / "locales" / "zh_CN" / "LC_MESSAGES" / "index.po"
    with po_path.open("rb") as f:
        catalog = read_po(f)
    assert {m.id for m in catalog if m.id} == set(CHINESE), "the template's messages"
    for message in catalog:
        if message.id:
            message.string = CHINESE[message.id]
    with po_path.open("wb") as f:
        write_po(f, catalog)
    chinese = sphinx(src, "-b", "html", "-D", "language=zh_CN", ".", "_build/html/zh")
    assert chinese.returncode == 0, chinese.stderr
    return src


def _html(book: Path, edition: str = "") -> str:
    return (book / "_build" / "html" / edition / "index.html").read_text(encoding="utf-8")


def test_glue_inside_a_translated_sentence(book):
    assert 'The accuracy is <span class="pasted-text">0.91</span>' in _html(book)
    assert '的准确率为 <span class="pasted-text">0.91</span>。' in _html(book, "zh")
    assert '在 <span class="pasted-text">12</span> 个序列上训练' in _html(book, "zh")  # no format


def test_a_glued_word_comes_from_the_catalog(book):
    """A word the run decides ({glue:md}) is in the page's template and its translation
    replaces it in the Chinese sentence."""
    assert "<p>The line is rising.</p>" in _html(book)
    assert "<p>这条直线是<span>上升</span>的。</p>" in _html(book, "zh")


def test_figure_redrawn_with_translated_alt_text(book):
    english = re.search(r'<img alt="([^"]*)" src="([^"]+)"', _html(book))
    chinese = re.search(r'<img alt="([^"]*)" src="([^"]+)"', _html(book, "zh"))
    assert english[1] == "One rising line." and chinese[1] == "一条上升的直线。"
    assert english[2] != chinese[2], "the Chinese page shows the English figure"
    assert (book / "_build" / "html" / "zh" / chinese[2]).is_file()
    assert "准确率随长度的变化。" in _html(book, "zh")


def test_language_switch_links_the_two_pages(book):
    assert 'href="zh/index.html" hreflang="zh-CN"' in _html(book)
    assert 'href="../index.html" hreflang="en"' in _html(book, "zh")


def test_a_translated_build_that_executes_fails(book):
    page = book / "index.md"
    page.write_text(PAGE.replace("0.9137", "0.5"))
    try:
        result = sphinx(book, "-b", "html", "-D", "language=zh_CN", ".", "_build/html/zh")
    finally:
        page.write_text(PAGE)
    assert result.returncode != 0
    assert "build executed notebooks" in result.stderr, result.stderr
