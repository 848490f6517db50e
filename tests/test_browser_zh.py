"""The Chinese edition as a reader sees it, in headless Chromium.

The checks of tests/browser_fixtures.py (as in tests/test_browser.py) run on every page
of ``_build/html/zh/``: nothing requested from outside the book, no JavaScript error,
every image loaded with alt text, math typeset, no raw TeX, at book width and on a
375 px phone. And the page is actually
Chinese: its title and most of its prose are CJK text. The whole ``_build/html`` is
served, so the language switch can be followed to the English page and back.
"""

from __future__ import annotations

import re

import pytest
from book_toc import toc_entries
from browser_fixtures import VIEWPORT, WIDTHS, open_context, page_problems, settle

pytestmark = [pytest.mark.book]

EDITION = "zh"
PAGES = [doc for doc, _ in toc_entries()]
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN = re.compile(r"[A-Za-z]")
# Prose left after code, outputs, math and the bibliography's reference list (paper
# titles stay in their own language) must be at least this share CJK characters.
MIN_CJK_SHARE = 0.5
BILINGUAL = {"book/glossary"}  # English terms next to Chinese ones, by design

_PROSE = """
() => {
  const article = document.querySelector('article.bd-article');
  const clone = article.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, .highlight, '
    + '.cell_output, .math, .bibliography, .citation, .pasted-text').forEach((e) => e.remove());
  return {text: clone.innerText, h1: (article.querySelector('h1') || {}).innerText || '',
          lang: document.documentElement.lang};
}
"""


def cjk_share(text: str) -> float:
    cjk, latin = len(CJK.findall(text)), len(LATIN.findall(text))
    return cjk / max(cjk + latin, 1)


def test_cjk_share_tells_chinese_from_english():
    assert cjk_share("自注意力让序列中的每个词元都关注整个序列 self-attention") > MIN_CJK_SHARE
    assert cjk_share("Self-attention lets every token attend to the whole 序列") < MIN_CJK_SHARE


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("doc", PAGES)
def test_chinese_page_reads_well(doc, width, site, browser, book_html):
    viewport = WIDTHS[width]
    context, visit = open_context(browser, site, viewport)
    try:
        page = context.new_page()
        page.goto(site.url(f"{EDITION}/{doc}.html"), wait_until="load")
        page.wait_for_load_state("networkidle")
        problems = page_problems(site, page, visit, viewport["width"])
        prose = page.evaluate(_PROSE)
        suffix = "" if viewport is VIEWPORT else f"_{width}"
        shot = book_html.parent / "screenshots-zh" / f"{doc.replace('/', '_')}{suffix}.png"
        shot.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
    finally:
        context.close()
    if prose["lang"] != "zh-CN":
        problems.append(f"<html lang={prose['lang']!r}>, not zh-CN")
    if not CJK.search(prose["h1"]):
        problems.append(f"title not Chinese: {prose['h1']!r}")
    share = cjk_share(prose["text"])
    if share < MIN_CJK_SHARE and doc not in BILINGUAL:
        problems.append(f"prose only {share:.0%} CJK: {' '.join(prose['text'].split())[:200]!r}")
    assert not problems, f"{EDITION}/{doc}.html at {width}:\n" + "\n".join(problems)


def test_language_switch_leads_to_the_english_page_and_back(site, browser):
    doc = "book/03_query_key_value"
    context, visit = open_context(browser, site)
    try:
        page = context.new_page()
        # each page settles before the click: leaving it earlier would abort its own
        # requests (the favicon, MathJax's fonts), which would read as broken links
        page.goto(site.url(f"{EDITION}/{doc}.html"), wait_until="networkidle")
        settle(page)
        page.locator(".course-language-switch a[hreflang=en]").click()
        page.wait_for_url(site.url(f"{doc}.html"), wait_until="networkidle")
        settle(page)
        page.locator(".course-language-switch a[hreflang=zh-CN]").click()
        page.wait_for_url(site.url(f"{EDITION}/{doc}.html"), wait_until="networkidle")
        settle(page)
    finally:
        context.close()
    assert not visit.page_errors and not visit.failed_requests, visit


# Chinese queries as a reader types them, and a chapter each must find: single terms and
# unspaced compounds the glossary defines (Sphinx segments them with jieba and the
# glossary's terms, _ext/course_i18n.py).
CHINESE_QUERIES = {
    "掩码": "book/03_query_key_value",
    "缩放": "book/03_query_key_value",
    "多头注意力": "book/04_self_attention",
    "位置编码": "book/04_self_attention",
    "残差连接": "book/05_transformer",
}


def _search(page, site, query: str) -> list[str]:
    """The result pages (without query or anchor) of the edition's search for ``query``."""
    page.goto(site.url(f"{EDITION}/search.html?q={query}"), wait_until="load")
    results = "document.querySelector('#search-results')?.innerText"
    page.wait_for_function(f"() => /Search finished|搜索完成/.test({results})")
    hrefs = page.locator("#search-results ul.search li a").evaluate_all(
        "els => els.map(a => a.href.split('#')[0].split('?')[0])"
    )
    return hrefs


def test_chinese_search_finds_the_chapter_of_each_term(site, browser):
    context, visit = open_context(browser, site)
    try:
        page = context.new_page()
        found = {query: _search(page, site, query) for query in CHINESE_QUERIES}
        english = _search(page, site, "softmax")
    finally:
        context.close()
    missed = {
        query: hrefs
        for query, hrefs in found.items()
        if site.url(f"{EDITION}/{CHINESE_QUERIES[query]}.html") not in hrefs
    }
    assert not missed, f"Chinese queries that miss their chapter: {missed}"
    assert site.url(f"{EDITION}/book/02_attention.html") in english, english
    assert all(h.startswith(site.url(f"{EDITION}/")) for hrefs in found.values() for h in hrefs)
    assert not visit.page_errors and not visit.console_errors, visit
