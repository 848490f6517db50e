"""The Chinese edition: complete catalogs, and the same glue, math and links as the English.

- Every message of a freshly extracted template (``sphinx-build -b gettext`` of the
  current English source, figure words included) has a translation in
  ``locales/zh_CN/``, none fuzzy. A changed English paragraph is a new message, so it
  shows up here as untranslated until someone translates it (``make translations``
  brings it into the catalog).
- Per page, both editions hold the same glued values, the same math and the same
  cross-references (a translation may move them in a sentence, never drop or alter
  one), and link to each other.
- The theme's own labels come out in Chinese.

The comparisons are first run on hand-made catalogs and pages, so a check that cannot
fail would show up. tests/test_browser_zh.py opens the Chinese pages in a browser.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from book_toc import toc_entries
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCALES = ROOT / "locales"
LANGUAGE = "zh_CN"
EDITION = "zh"  # its folder under _build/html
PAGES = [doc for doc, _ in toc_entries()]


# --------------------------------------------------------------------------
# Catalogs against templates
# --------------------------------------------------------------------------


def _read(path: Path):
    with path.open("rb") as f:
        return read_po(f)


def catalog_problems(templates: Path, catalogs: Path) -> list[str]:
    """'<catalog>: untranslated|fuzzy: <msgid>' for every message of every template under
    ``templates`` that its catalog under ``catalogs`` lacks, leaves empty or marks fuzzy."""
    problems = []
    for pot in sorted(templates.rglob("*.pot")):
        rel = pot.relative_to(templates).with_suffix(".po")
        po_path = catalogs / rel
        po = _read(po_path) if po_path.is_file() else None
        for message in _read(pot):
            if not message.id:
                continue  # the header
            msgid = message.id if isinstance(message.id, str) else message.id[0]
            found = po.get(message.id, context=message.context) if po else None
            short = " ".join(msgid.split())[:100]
            if found is None or not found.string:
                problems.append(f"{rel.as_posix()}: untranslated: {short}")
            elif found.fuzzy:
                problems.append(f"{rel.as_posix()}: fuzzy: {short}")
    return problems


def _po(path: Path, entries: list[tuple[str, str, bool]]):
    lines = ['msgid ""', 'msgstr ""', '"Content-Type: text/plain; charset=UTF-8\\n"', ""]
    for msgid, msgstr, fuzzy in entries:
        lines += (["#, fuzzy"] if fuzzy else []) + [f'msgid "{msgid}"', f'msgstr "{msgstr}"', ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def test_catalog_check_finds_what_is_missing(tmp_path):
    templates, catalogs = tmp_path / "gettext", tmp_path / "locales"
    _po(templates / "book" / "a.pot", [("Kept.", "", False), ("Changed, now.", "", False)])
    _po(templates / "book" / "b.pot", [("New page.", "", False)])
    _po(templates / "book" / "c.pot", [("Unsure.", "", False), ("Empty.", "", False)])
    _po(catalogs / "book" / "a.po", [("Kept.", "留下。", False), ("Changed.", "改了。", False)])
    _po(catalogs / "book" / "c.po", [("Unsure.", "不确定。", True), ("Empty.", "", False)])
    assert catalog_problems(templates, catalogs) == [
        "book/a.po: untranslated: Changed, now.",
        "book/b.po: untranslated: New page.",
        "book/c.po: fuzzy: Unsure.",
        "book/c.po: untranslated: Empty.",
    ]
    done = [("Kept.", "留下。", False), ("Changed, now.", "改了。", False)]
    _po(catalogs / "book" / "a.po", done)
    _po(catalogs / "book" / "b.po", [("New page.", "新的一页。", False)])
    _po(catalogs / "book" / "c.po", [("Unsure.", "不确定。", False), ("Empty.", "空。", False)])
    assert catalog_problems(templates, catalogs) == []


def test_committed_catalogs_have_no_untranslated_or_fuzzy_message():
    catalogs = sorted((LOCALES / LANGUAGE / "LC_MESSAGES").rglob("*.po"))
    assert catalogs, f"no catalogs in {LOCALES / LANGUAGE}"
    problems = []
    for po_path in catalogs:
        rel = po_path.relative_to(LOCALES / LANGUAGE / "LC_MESSAGES").as_posix()
        for m in _read(po_path):
            if m.id and (not m.string or m.fuzzy):
                state = "fuzzy" if m.fuzzy else "untranslated"
                problems.append(f"{rel}: {state}: {' '.join(str(m.id).split())[:100]}")
    assert not problems, f"{len(problems)} messages to translate:\n" + "\n".join(problems)


def test_every_page_of_the_toc_has_a_catalog():
    folder = LOCALES / LANGUAGE / "LC_MESSAGES"
    missing = [doc for doc in PAGES if not (folder / f"{doc}.po").is_file()]
    assert not missing, f"pages without a {LANGUAGE} catalog (run `make translations`): {missing}"


@pytest.fixture(scope="module")
def fresh_templates(book_html, tmp_path_factory) -> Path:
    """The templates of the English source as it is now (figure words included), extracted
    from the execution cache the English build filled."""
    out = tmp_path_factory.mktemp("gettext")
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(["bash", "scripts/sphinx-conf.sh"], cwd=ROOT, env=env, check=True)
    proc = subprocess.run(
        [str(BIN / "sphinx-build"), "-b", "gettext", "-c", "_build/sphinx", "-q", "-W",
         "--keep-going", "-d", str(out / "doctrees"), ".", str(out / "gettext")],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    log = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, f"the gettext build failed:\n{log}"
    return out / "gettext"


@pytest.mark.book
def test_every_message_of_the_english_source_is_translated(fresh_templates):
    problems = catalog_problems(fresh_templates, LOCALES / LANGUAGE / "LC_MESSAGES")
    assert not problems, (
        f"{len(problems)} English messages lack a translation (`make translations`, then "
        "translate them in locales/zh_CN/):\n" + "\n".join(problems)
    )


@pytest.mark.book
def test_templates_include_the_figure_words(fresh_templates):
    words = {m.id for m in _read(fresh_templates / "book" / "02_attention.pot")}
    assert {"reversal", "date conversion", "input $x_j$"} <= words


# --------------------------------------------------------------------------
# The same glue, math and cross-references in both editions
# --------------------------------------------------------------------------


_TEXT = re.compile(r"\\text\{((?:[^{}]|\{[^{}]*\})*)\}")


def math_skeleton(tex: str) -> str:
    """A formula's TeX without its words, which the translation changes (tests/test_math_zh.py
    checks them): every ``\\text{...}`` emptied; an aligned row's annotation (after its
    last ``&&``), whose words a translation may reorder around its symbols, reduced to the
    sorted characters of its symbols."""
    rows = []
    for row in tex.splitlines():
        if "&&" in row:
            head, note = row.rsplit("&&", 1)
            row = head + "&&" + "".join(sorted(_TEXT.sub("", note).replace(" ", "")))
        rows.append(_TEXT.sub(r"\\text{}", row))
    return " ".join(" ".join(rows).split())


def page_invariants(html: str) -> dict[str, Counter]:
    """What a translation must keep, from a page's article: glued values, math (as TeX,
    its words aside), internal links, images of figures."""
    article = BeautifulSoup(html, "html.parser").select_one("article.bd-article")
    if article is None:
        return {}
    return {
        "glued values": Counter(e.get_text(strip=True) for e in article.select(".pasted-text")),
        "math": Counter(math_skeleton(e.get_text()) for e in article.select(".math")),
        # (a figure drawn larger than shown links to its full-size image, which each edition
        # draws in its own language: not a cross-reference)
        "cross-references": Counter(
            a.get("href")
            for a in article.select("a.reference.internal:not(.image-reference):not(.download)")
        ),
        # a download keeps its file name (the Chinese edition's notebook is another file)
        "downloads": Counter(
            a.get("href", "").rsplit("/", 1)[-1] for a in article.select("a.reference.download")
        ),
        "figures": Counter(len(f.select("img")) for f in article.select("figure")),
    }


def invariant_differences(english: str, translated: str) -> list[str]:
    """'kind: only English [...] / only translated [...]' for every kind that differs."""
    a, b = page_invariants(english), page_invariants(translated)
    problems = []
    for kind in a.keys() | b.keys():
        lost, added = (
            a.get(kind, Counter()) - b.get(kind, Counter()),
            b.get(kind, Counter()) - a.get(kind, Counter()),
        )
        if lost or added:
            problems.append(
                f"{kind}: only in English {sorted(lost.elements())[:8]}, "
                f"only in the translation {sorted(added.elements())[:8]}"
            )
    return sorted(problems)


def _page(body: str) -> str:
    return f'<html><body><article class="bd-article">{body}</article></body></html>'


def test_invariant_check_finds_a_lost_glue_math_or_link():
    english = _page(
        '<p>It is <span class="pasted-text">0.91</span> for <span class="math">\\(C_i\\)</span>'
        ', see <a class="reference internal" href="notation.html">notation</a>.</p>'
    )
    same = _page(
        '<p>见<a class="reference internal" href="notation.html">记号</a>：'
        '<span class="math">\\(C_i\\)</span> 的值为 <span class="pasted-text">0.91</span>。</p>'
    )
    assert invariant_differences(english, same) == []
    typed_in = same.replace('<span class="pasted-text">0.91</span>', "0.91")
    altered = same.replace("C_i", "C")
    unlinked = same.replace('<a class="reference internal" href="notation.html">记号</a>', "记号")
    worded = english.replace("C_i", "C_i \\text{ for output } i")
    translated = same.replace("C_i", "C_i \\text{ 对输出 } i")
    assert invariant_differences(worded, translated) == []  # words in maths: translated
    row = "e &= \\rho(s, h) && \\text{relevance of } j \\text{ for } i \\\\"
    assert math_skeleton(row) == math_skeleton(
        "e &= \\rho(s, h) && \\text{对 } i \\text{ 而言 } j \\text{ 的相关性} \\\\"
    )
    assert math_skeleton(row) != math_skeleton(row.replace("} j", "} k"))
    assert invariant_differences(english, typed_in)[0].startswith("glued values: ")
    assert invariant_differences(english, altered)[0].startswith("math: ")
    assert invariant_differences(english, unlinked)[0].startswith("cross-references: ")


@pytest.mark.book
@pytest.mark.parametrize("doc", PAGES)
def test_translation_keeps_glue_math_and_cross_references(book_html, doc):
    english = (book_html / f"{doc}.html").read_text(encoding="utf-8")
    translated = (book_html / EDITION / f"{doc}.html").read_text(encoding="utf-8")
    assert page_invariants(english), f"{doc}.html has no article"
    problems = invariant_differences(english, translated)
    assert not problems, f"{EDITION}/{doc}.html differs from {doc}.html:\n" + "\n".join(problems)


# --------------------------------------------------------------------------
# Language switch and theme labels
# --------------------------------------------------------------------------


def _switch_links(path: Path) -> dict[str, Path]:
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    return {
        a["hreflang"]: (path.parent / a["href"]).resolve()
        for a in soup.select(".course-language-switch a[hreflang]")
    }


@pytest.mark.book
@pytest.mark.parametrize("doc", PAGES)
def test_every_page_links_to_its_counterpart(book_html, doc):
    english, chinese = book_html / f"{doc}.html", book_html / EDITION / f"{doc}.html"
    assert chinese.is_file(), f"no Chinese page for {doc}"
    assert _switch_links(english) == {"zh-CN": chinese.resolve()}
    assert _switch_links(chinese) == {"en": english.resolve()}


@pytest.mark.book
def test_theme_labels_are_chinese(book_html):
    html = (book_html / EDITION / "book" / "02_attention.html").read_text(encoding="utf-8")
    soup = BeautifulSoup(html, "html.parser")
    assert soup.html.get("lang") == "zh-CN"
    assert "目录" in soup.select_one(".bd-sidebar-secondary").get_text()  # "Contents"
    search = soup.select_one("input[name=q]") or soup.select_one("input[type=search]")
    assert search is not None and "搜索" in search.get("placeholder", ""), search
    nav = soup.select_one(".prev-next-area").get_text()
    assert "上一页" in nav and "下一页" in nav, nav  # "previous", "next"
    assert "Contents" not in soup.select_one(".bd-sidebar-secondary").get_text()
