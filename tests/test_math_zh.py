r"""The words inside the Chinese edition's maths are Chinese.

Sphinx does not translate maths: ``_ext/course_i18n.py`` makes the words of a formula
(``\text{relevance}``, an aligned row's annotation) messages of the page's catalog and puts
their translations into the formula. Checked here: which stretches of TeX are messages
(on hand-written formulas), and, on the built zh pages, that no formula's ``\text{...}``
still holds an English word, other than the few names that are the same in both editions
(KEPT, with the reason, and the cited authors' names).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from book_toc import toc_entries
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))
from course_i18n import math_messages, translate_math  # noqa: E402

EDITION = "zh"
PAGES = [doc for doc, _ in toc_entries()]
# Words a formula keeps in both editions: Python's values of a mask (as the code prints
# them), the names of widths and of the example's English token as the paper and the
# code write them ($d_\text{model}$, $d_\text{enc}$, $z_\text{it}$), and "logits", a term
# the Chinese literature leaves in English like softmax.
KEPT = {"True", "False", "model", "enc", "it", "logits"}
# and the names of the authors the book cites ("Cho 等人"), from its bibliography
AUTHORS = set(
    re.findall(
        r"[A-Za-z]{2,}",
        " ".join(re.findall(r"author\s*=\s*[{\"](.*)[}\"]", (ROOT / "references.bib").read_text())),
    )
) - {"and", "others"}
TEXT = re.compile(r"\\text\{((?:[^{}]|\{[^{}]*\})*)\}")
WORD = re.compile(r"[A-Za-z]{2,}")


def test_an_aligned_rows_annotation_is_one_message():
    note = r"\text{relevance of input } j \text{ for output } i"
    tex = "\n".join([
        r"\begin{aligned}",
        r"e_{ij} &= \rho(s_{i-1}, h_j) && " + note + r" \\",
        r"C_i &= \sum_j \alpha_{ij} h_j && \text{context}",
        r"c_t &= f_t \odot c_{t-1} \\",
        r"\end{aligned}",
    ])  # fmt: skip
    assert [m for _, _, m in math_messages(tex)] == [note, r"\text{context}"]
    zh = {note: r"\text{输入 } j \text{ 对输出 } i \text{ 的相关性}", r"\text{context}": "上下文"}
    assert translate_math(tex, lambda m: zh.get(m, m)).splitlines()[1:3] == [
        r"e_{ij} &= \rho(s_{i-1}, h_j) && \text{输入 } j \text{ 对输出 } i \text{ 的相关性} \\",
        r"C_i &= \sum_j \alpha_{ij} h_j && 上下文",
    ]


def test_elsewhere_each_text_with_a_word_is_a_message():
    tex = "f(\\text{shuffled } X) = \\text{influence}_j + d_\\text{enc} + x_\\text{1}"
    assert [m for _, _, m in math_messages(tex)] == ["shuffled", "influence", "enc"]
    gettext = {"shuffled": "打乱后的", "influence": "影响"}.get
    assert translate_math(tex, lambda m: gettext(m, m)) == (
        "f(\\text{打乱后的 } X) = \\text{影响}_j + d_\\text{enc} + x_\\text{1}"
    )


def english_in_maths(html: str) -> list[str]:
    """The formulas of a page's article whose ``\\text{...}`` holds an English word not
    in KEPT: 'word in TeX'."""
    article = BeautifulSoup(html, "html.parser").select_one("article.bd-article")
    found = []
    for math in article.select(".math") if article else []:
        tex = math.get_text()
        for text in TEXT.findall(tex):
            for word in WORD.findall(text):
                if word not in KEPT | AUTHORS:
                    found.append(f"{word!r} in {' '.join(tex.split())[:120]}")
    return found


def test_english_in_maths_finds_a_word():
    page = (
        '<article class="bd-article"><span class="math">\\(f(\\text{shuffled } X)\\)</span>'
        '<div class="math">\\[d_\\text{model} + \\text{影响}_j\\]</div></article>'
    )
    assert english_in_maths(page) == ["'shuffled' in \\(f(\\text{shuffled } X)\\)"]


@pytest.mark.book
@pytest.mark.parametrize("doc", PAGES)
def test_no_english_word_in_a_chinese_formula(book_html, doc):
    english = (book_html / f"{doc}.html").read_text(encoding="utf-8")
    translated = (book_html / EDITION / f"{doc}.html").read_text(encoding="utf-8")
    found = english_in_maths(translated)
    assert not found, f"{EDITION}/{doc}.html: English in maths:\n" + "\n".join(found)
    # the check looks at what the English page has: its formulas have words to translate
    if doc == "book/03_query_key_value":
        assert english_in_maths(english), "no English word found in Chapter 3's formulas"
