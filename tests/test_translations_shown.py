"""The Chinese edition shows its translations: every translated message of a page's catalog
appears on the built zh page, and its English does not.

A catalog can be complete (tests/test_translations.py) while Sphinx silently keeps the
English: a translation that parses as something other than a paragraph or a title (a
heading "1. 获取 notebook" reads as a numbered list, and Sphinx drops it), or a message that
reaches the page after Sphinx translated it (the toctree captions of ``_toc.yml``). This
reads the catalogs and the built HTML, both editions, and compares what a reader sees.

How a message is compared: its MyST markup is turned into the text a reader sees, as a
pattern matched against the whole text of one block of the page (a paragraph, a heading,
a table cell, a caption, an admonition's title, an image's alt text, the sidebar's
captions), whitespace ignored. Inline math is one placeholder on both sides (its TeX is
checked by tests/test_translations.py and tests/test_math_zh.py). What a role prints but
the message does not hold (a glued value, a glued word, a citation, the title a
``{doc}`` link takes from its page) matches any text. What cannot be compared, and why:

- a message the English page does not show as the text of one block: the words drawn
  inside a figure (tests/test_figures_zh.py checks those), the choices of a glued word
  that this run did not pick, a message split over several blocks;
- a message kept as it is in Chinese (an English term in the glossary's English column,
  a name, code): it is its own translation;
- a message whose visible text is nothing but placeholders, or placeholders and fewer
  than MIN_LETTERS letters (it would match blocks it is not).

A broken pattern would skip messages instead of failing, so each page must compare at
least MIN_COMPARED of its messages, and the whole check is first run on hand-made pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from book_toc import toc_entries
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = ROOT / "locales" / "zh_CN" / "LC_MESSAGES"
EDITION = "zh"
PAGES = [doc for doc, _ in toc_entries()]
ROOT_DOC = PAGES[0]  # _toc.yml's root: its catalog holds the captions of the sidebar
# Share of a page's catalog that must be compared (the rest: figure words, glued words'
# other choices, messages kept as they are).
MIN_COMPARED = 0.5

# A message with a placeholder for printed text needs this many letters (CJK characters
# count one each) of its own to be compared: "{glue:text}`t` s" would match any block
# ending in "s".
MIN_LETTERS = 4
MATH = "\ue000"  # inline math, on both sides
ANY = "\ue001"  # text a role prints that its message does not hold

# --------------------------------------------------------------------------
# A message's visible text
# --------------------------------------------------------------------------

# roles whose printed text is not in the message: glued values and words, citations,
# numbered references, and links without their own text (they print the target's title)
_OPAQUE_ROLES = ("glue", "cite", "footcite", "numref", "eq", "doc", "ref", "term", "prf:ref")
_TOKEN = re.compile(
    r"\{(?P<role>[\w:.-]+)\}`(?P<content>[^`]*)`"  # a role
    r"|\$\$(?P<dmath>.+?)\$\$|\$(?P<math>[^$]+?)\$"  # math
    r"|(?P<ticks>`+)(?P<code>.+?)(?P=ticks)"  # code
    r"|!?\[(?P<text>[^\]]*)\]\((?P<url>[^)]*)\)"  # a link or an image
    r"|\[\^(?P<footnote>[^\]]+)\]"  # a footnote reference
    r"|<(?P<autolink>https?://[^>]+)>"
    r"|\\(?P<escaped>[^\w\s])"  # a backslash escape
    r"|(?P<emphasis>\*+)",  # emphasis markers (the book never emphasises with "_")
    re.S,
)


def visible(message: str) -> str:
    """The text a reader sees of a MyST message, with MATH and ANY for what it cannot
    know; not yet normalised."""
    out = []
    pos = 0
    for m in _TOKEN.finditer(message):
        out.append(message[pos : m.start()])
        pos = m.end()
        if m["role"]:
            role, content = m["role"], m["content"]
            explicit = re.fullmatch(r"(?s)(.*?)\s*<[^<>]+>", content)
            if explicit and role in ("doc", "ref", "term", "download", "numref"):
                out.append(visible(explicit[1]) if role != "numref" else ANY)
            elif role.split(":")[0] in _OPAQUE_ROLES or role in _OPAQUE_ROLES:
                out.append(content if role == "term" else ANY)
            else:
                out.append(content)  # {code}, {kbd}, {sub}, ...: their text
        elif m["math"] is not None or m["dmath"] is not None:
            out.append(MATH)
        elif m["code"] is not None:
            out.append(m["code"])
        elif m["url"] is not None:
            out.append(visible(m["text"]))
        elif m["footnote"] is not None:
            out.append(ANY)
        elif m["autolink"] is not None:
            out.append(m["autolink"])
        elif m["escaped"] is not None:
            out.append(m["escaped"])
        # emphasis markers print nothing
    out.append(message[pos:])
    return "".join(out)


_SAME = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "–": "-", "—": "-"})


def normalise(text: str) -> str:
    """Whitespace dropped, typographic quotes and dashes as ASCII (Sphinx's smartquotes
    turns "--" into a dash on the page), ellipsis as three dots."""
    text = text.replace("---", "-").replace("--", "-").replace("…", "...")
    return re.sub(r"\s+", "", text.translate(_SAME))


def pattern(message: str) -> re.Pattern | None:
    """A pattern of the message's visible text, or None if there is nothing to compare."""
    text = normalise(visible(message))
    letters = re.findall(r"[^\W\d_]", text.replace(ANY, "").replace(MATH, ""))
    if not letters or (ANY in text and len(letters) < MIN_LETTERS):
        return None  # only placeholders, or too few words around them: it would match anything
    parts = [re.escape(p) for p in re.split(f"({ANY})", text)]
    return re.compile("".join(".+?" if p == ANY else p for p in parts), re.S)


# --------------------------------------------------------------------------
# A page's blocks
# --------------------------------------------------------------------------

_BLOCKS = "p, h1, h2, h3, h4, h5, h6, th, td, dt, li, figcaption, span.caption-text, caption"
# what the theme or Sphinx adds to a message's text: permalinks, section and figure numbers
_ADDED = "a.headerlink, span.section-number, span.caption-number, .toggle-details__summary"


@dataclass(frozen=True)
class Block:
    where: str  # "article" or "navigation"
    text: str  # normalised


def page_blocks(html: str) -> list[Block]:
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.select("script, style, " + _ADDED):
        tag.decompose()
    for tag in soup.select(".math"):
        tag.replace_with(MATH)
    blocks = []
    for element in soup.select(_BLOCKS):
        inside = element.find_parent("article", class_="bd-article") is not None
        where = "article" if inside else "nav"
        blocks.append(Block(where, normalise(element.get_text())))
    for image in soup.select("img[alt]"):
        blocks.append(Block("article", normalise(image["alt"])))
    return blocks


def shown(regex: re.Pattern, blocks: list[Block]) -> Block | None:
    return next((b for b in blocks if regex.fullmatch(b.text)), None)


# --------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------


@dataclass
class Comparison:
    problems: list[str]
    compared: int
    total: int


def compare_page(
    page: str, messages: list[tuple[str, str]], english_html: str, translated_html: str,
    where: str | None = None,
) -> Comparison:  # fmt: skip
    """Problems ('<page>: English shown: ...' or '<page>: translation not shown: ...') for
    the (msgid, msgstr) pairs; ``where`` limits the blocks compared ("nav": the sidebar)."""
    english = [b for b in page_blocks(english_html) if where in (None, b.where)]
    translated = [b for b in page_blocks(translated_html) if where in (None, b.where)]
    problems, compared, total = [], 0, 0
    for msgid, msgstr in messages:
        if normalise(visible(msgid)) == normalise(visible(msgstr)):
            continue  # kept as it is
        total += 1
        source, target = pattern(msgid), pattern(msgstr)
        if source is None or target is None or shown(source, english) is None:
            continue  # nothing to compare, or not one block of the English page
        compared += 1
        short = " ".join(msgid.split())[:90]
        if shown(source, translated):
            problems.append(f"{page}: English shown: {short!r} (catalog: {msgstr[:40]!r})")
        elif not shown(target, translated):
            problems.append(f"{page}: translation not shown: {msgstr[:60]!r} (of {short!r})")
    return Comparison(problems, compared, total)


def catalog_messages(doc: str) -> list[tuple[str, str]]:
    with (CATALOGS / f"{doc}.po").open("rb") as f:
        catalog = read_po(f)
    return [
        (m.id, m.string)
        for m in catalog
        if m.id and isinstance(m.id, str) and m.string and not m.fuzzy
    ]


# --------------------------------------------------------------------------
# First on hand-made pages
# --------------------------------------------------------------------------


def _html(article: str, nav: str = "") -> str:
    return (
        f'<html><body><nav class="bd-links">{nav}</nav>'
        f'<article class="bd-article">{article}</article></body></html>'
    )


def test_visible_text_of_markup():
    assert normalise(visible("See {doc}`the notation <notation>`, **bold** and `x_1`.")) == (
        "Seethenotation,boldandx_1."
    )
    assert visible("{glue:text}`a:.2f` vs $C_i$ ([1](https://x.org))") == f"{ANY} vs {MATH} (1)"
    assert visible(r"1\. 获取 notebook") == "1. 获取 notebook"
    assert pattern("{glue:text}`a` ($x$)") is None  # nothing to compare
    assert pattern("{glue:text}`t` s") is None and pattern("{glue:text}`t` 秒") is None
    assert pattern("损失 {glue:md}`w` 它在一层时的值").fullmatch("损失高于它在一层时的值")


def test_check_finds_english_headings_captions_and_missing_translations():
    messages = [
        ("Chapters", "各章"),
        ("1. Get the notebook", "1. 获取 notebook"),
        ("The loss is {glue:text}`x:.2f` at $n = 4$.", "当 $n = 4$ 时损失为 {glue:text}`x:.2f`。"),
        ("Attention weights", "注意力权重"),
        ("softmax", "softmax"),  # kept as it is
        ("reversal", "反转"),  # a figure's word: not on the page
    ]
    english = _html(
        '<h2><span class="section-number">2.1. </span>1. Get the notebook'
        '<a class="headerlink">#</a></h2>'
        '<p>The loss is <span class="pasted-text">0.91</span> at <span class="math">\\(n=4\\)'
        "</span>.</p><p>softmax</p><figure><figcaption><p>Attention weights</p></figcaption>"
        "</figure>",
        '<p class="caption"><span class="caption-text">Chapters</span></p>',
    )
    good = _html(
        "<h2>1. 获取 notebook</h2><p>当 <span class='math'>\\(n=4\\)</span> 时损失为 "
        "<span class='pasted-text'>0.91</span>。</p><p>softmax</p>"
        "<figure><figcaption><p>注意力权重</p></figcaption></figure>",
        '<p class="caption"><span class="caption-text">各章</span></p>',
    )
    result = compare_page("p", messages, english, good)
    assert result.problems == [] and result.compared == 4 and result.total == 5
    bad = good.replace("1. 获取 notebook", "1. Get the notebook").replace("各章", "Chapters")
    bad = bad.replace("注意力权重", "注意力的权重")
    assert sorted(compare_page("p", messages, english, bad).problems) == [
        "p: English shown: '1. Get the notebook' (catalog: '1. 获取 notebook')",
        "p: English shown: 'Chapters' (catalog: '各章')",
        "p: translation not shown: '注意力权重' (of 'Attention weights')",
    ]
    # the sidebar alone: the article's heading is not looked at
    nav_only = compare_page("p", messages, english, bad, where="nav")
    assert nav_only.problems == ["p: English shown: 'Chapters' (catalog: '各章')"]


# --------------------------------------------------------------------------
# The built book
# --------------------------------------------------------------------------


@pytest.mark.book
@pytest.mark.parametrize("doc", PAGES)
def test_every_translation_is_shown_on_its_page(book_html, doc):
    english = (book_html / f"{doc}.html").read_text(encoding="utf-8")
    translated = (book_html / EDITION / f"{doc}.html").read_text(encoding="utf-8")
    result = compare_page(doc, catalog_messages(doc), english, translated)
    problems = result.problems
    # the root page's catalog also translates what every page shows around its article:
    # the sidebar's captions and the book's title
    if doc != ROOT_DOC:
        problems += compare_page(
            doc, catalog_messages(ROOT_DOC), english, translated, "nav"
        ).problems
    assert not problems, f"{len(problems)} messages of {doc}.po not shown in Chinese:\n" + (
        "\n".join(problems)
    )
    assert result.compared >= MIN_COMPARED * result.total, (
        f"only {result.compared} of {result.total} messages of {doc}.po were compared: "
        "is the pattern of a message's visible text broken?"
    )
