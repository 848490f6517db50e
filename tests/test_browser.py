"""The built book as a reader sees it, in headless Chromium.

The HTML is served on 127.0.0.1 and every page of ``_toc.yml`` is opened in
Debian's Chromium by the harness of ``tests/browser_fixtures.py``. On every page:

- nothing is requested from outside the local server (such requests are
  blocked and fail the test: the book must work offline);
- no JavaScript error: no uncaught exception, no console error, no failed
  local request;
- every image loads (``naturalWidth > 0``), every figure in the text has alt
  text, is not drawn larger than its pixels (blurred) nor cut off, and no
  figure is shrunk so much that its labels become unreadable;
- every diagram (``attn_course.diagrams``) is drawn so that its smallest
  label is at least as large on screen as the page's small print;
- the math is typeset: MathJax loaded, every math element holds MathJax
  output, no MathJax error, and no raw TeX (``$$``, ``\\(``, ``\\begin``, a
  TeX command) is left in the text outside code;
- a full-page screenshot goes to ``_build/screenshots/``.

Every page is checked at book width on a 1280 px screen and on a 375 px phone.
Then navigation (next/previous links and the sidebar lead to the right pages,
numbered chapters are numbered) and search ("softmax" finds pages).

The checks themselves are first run on a hand-made broken page, so a check
that cannot fail would show up.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from book_toc import toc_entries
from browser_fixtures import PHONE, VIEWPORT, WIDTHS, open_context, page_problems, raw_tex, serve

from attn_course.plotting import SMALLEST_TEXT_KEY

pytestmark = [pytest.mark.book]


# The chapters that picture their models, and how many diagrams each shows at least.
DIAGRAMS = {
    "book/01_encoder_decoder": 2,
    "book/02_attention": 1,
    "book/03_query_key_value": 2,
    "book/04_self_attention": 3,
}

TOC = toc_entries()
PAGES = [doc for doc, _ in TOC]


@pytest.fixture(scope="module")
def screenshots(book_html):
    folder = Path(book_html).parent / "screenshots"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


# --------------------------------------------------------------------------
# The checks can fail
# --------------------------------------------------------------------------

# Both test pages lay images out like the book: at most the width of a text column.
_BOOK_LAYOUT = "<style>article { width: 730px } img { max-width: 100% }</style>"

BROKEN_PAGE = r"""<!DOCTYPE html><html><head><title>broken</title>{layout}
<script src="http://127.0.0.2:9/cdn/lib.js"></script></head>
<body><header><a href="#" style="position: absolute; top: -20px">Elsewhere</a></header>
<article>
<p>Display math left raw: $$x^2$$ and an inline one \(a_i\), and $b_j$.</p>
<span class="math">\(y\)</span>
<img src="missing.png" alt="a picture that is not there">
<img src="plot.png">
<img src="huge.png" alt="a figure drawn 20 inches wide">
<img src="plot.png" alt="a small figure stretched" style="width: 300px; max-width: none">
<div style="width: 100px; overflow: hidden">
<img src="wide.png" alt="a wide figure" style="max-width: none"></div>
<figure class="diagram"><img src="diagram.png" alt="a diagram drawn 7 inches wide"></figure>
<img src="small_text.png" alt="a plot whose notes are 8 pt">
<script>window.callSomethingUndefined();</script>
<script>console.error("something went wrong");</script>
<h1>A title</h1>
</article></body></html>
"""

CLEAN_PAGE = """<!DOCTYPE html><html><head><title>clean</title>
<link rel="icon" href="data:,">{layout}</head>
<body><header><a href="#">Home</a></header>
<article><h1>Clean</h1><p>Prices in $ stay prose.</p><pre>$$ \\alpha in code is fine $$</pre>
<img src="plot2x.png" width="70" alt="a small test figure">
<figure class="diagram"><img src="small_diagram.png" width="240" alt="a diagram 2 inches wide">
</figure>
<div style="width: 100px; overflow-x: auto">
<img src="scrolled.png" width="200" style="max-width: none" alt="a plot that scrolls"></div>
</article></body></html>
"""


def test_checks_catch_a_broken_page(tmp_path, browser):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    Image.new("RGB", (70, 35), "white").save(tmp_path / "plot.png", dpi=(100, 100))
    # the same 0.7 in drawn for high-density screens: twice the pixels, at twice the dpi
    Image.new("RGB", (140, 70), "white").save(tmp_path / "plot2x.png", dpi=(200, 200))
    Image.new("RGB", (2000, 500), "white").save(tmp_path / "huge.png", dpi=(100, 100))
    Image.new("RGB", (400, 50), "white").save(tmp_path / "wide.png", dpi=(100, 100))
    # 7 in drawn in at most 700 px: 10 pt labels under 14 px, below the page's 16 px prose.
    Image.new("RGB", (700, 300), "white").save(tmp_path / "diagram.png", dpi=(100, 100))
    # 2 in at 240 dpi, shown 240 px wide: 10 pt labels are 16.7 px, over the clean page's
    # small print, and drawn at twice the shown width
    Image.new("RGB", (480, 240), "white").save(tmp_path / "small_diagram.png", dpi=(240, 240))
    # 7 in at 200 dpi whose smallest text is 8 pt: in the 730 px column, 104 px per inch,
    # so 11.6 px, under the small print (checked for plots on a phone)
    notes = PngInfo()
    notes.add_text(SMALLEST_TEXT_KEY, "8")
    Image.new("RGB", (1400, 400), "white").save(
        tmp_path / "small_text.png", dpi=(200, 200), pnginfo=notes
    )
    # wider than its box, which scrolls: not cut off
    Image.new("RGB", (400, 100), "white").save(tmp_path / "scrolled.png", dpi=(200, 200))
    (tmp_path / "broken.html").write_text(BROKEN_PAGE.replace("{layout}", _BOOK_LAYOUT))
    (tmp_path / "clean.html").write_text(CLEAN_PAGE.replace("{layout}", _BOOK_LAYOUT))
    server, site = serve(tmp_path)
    try:
        context, visit = open_context(browser, site)
        page = context.new_page()
        page.goto(site.url("broken.html"), wait_until="load")
        problems = "\n".join(page_problems(site, page, visit))
        context.close()

        context, visit = open_context(browser, site, viewport=PHONE)
        page = context.new_page()
        page.goto(site.url("broken.html"), wait_until="load")
        phone_problems = "\n".join(page_problems(site, page, visit, PHONE["width"]))
        context.close()

        context, visit = open_context(browser, site)
        page = context.new_page()
        page.goto(site.url("clean.html"), wait_until="load")
        clean_problems = page_problems(site, page, visit)
        context.close()
    finally:
        server.shutdown()
        server.server_close()

    for expected in [
        "requested from outside the book: http://127.0.0.2:9/cdn/lib.js",
        "JavaScript error: ",
        "console error: something went wrong",
        "failed request: 404 ",
        "broken image: ",
        "figure without alt text: plot.png",
        "figure shrunk to",
        "figure upscaled from 70 to 300 px (blurred): plot.png",
        "figure cut off at 1280 px: wide.png",
        "figure drawn at 1.00× the width it is shown at (blurred on high-density screens): "
        "plot.png",
        "header control 'Elsewhere' outside the screen at 1280 px (left 8, top -20",
        "px at 1280 px, smaller than the page's small print (16.0 px): diagram.png",
        "MathJax not loaded, 1 math elements untypeset",
        "math not typeset: '\\\\(y\\\\)'",
        "raw TeX in the text: 'Display math left raw: $$x^2$$",
    ]:
        assert expected in problems, f"the checks missed {expected!r}; they found:\n{problems}"
    assert clean_problems == [], clean_problems
    # the book layout's 730 px column is wider than a phone
    assert "the page scrolls sideways at 375 px: " in phone_problems, phone_problems
    # a plot's text is checked on a phone, not at book width
    assert (
        "figure text 11.6 px at 375 px, smaller than the page's small print (16.0 px): "
        "small_text.png"
    ) in phone_problems, phone_problems
    assert "small_text.png" not in problems, problems


@pytest.mark.parametrize(
    "text",
    ["$$x^2$$", r"\(a_i\)", r"\[ x \]", r"\begin{aligned}", r"where \alpha is", "$b_j$", "$x$"],
)
def test_raw_tex_is_found(text):
    assert raw_tex(f"Some prose, {text}, more prose.") != []


@pytest.mark.parametrize("text", ["costs $5 and $10", "a $ sign", "C_i and x^2 in plain words"])
def test_prose_is_not_raw_tex(text):
    assert raw_tex(text) == []


# --------------------------------------------------------------------------
# Every page of the book
# --------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("doc", PAGES)
def test_page_reads_well(doc, width, site, browser, screenshots):
    viewport = WIDTHS[width]
    context, visit = open_context(browser, site, viewport)
    try:
        page = context.new_page()
        page.goto(site.url(f"{doc}.html"), wait_until="load")
        page.wait_for_load_state("networkidle")
        problems = page_problems(site, page, visit, viewport["width"])
        number = PAGES.index(doc)
        suffix = "" if viewport is VIEWPORT else f"_{width}"
        page.screenshot(
            path=str(screenshots / f"{number:02d}_{doc.replace('/', '_')}{suffix}.png"),
            full_page=True,
        )
    finally:
        context.close()
    assert not problems, f"{doc}.html at {width}:\n" + "\n".join(problems)


@pytest.mark.parametrize("doc", DIAGRAMS)
def test_chapter_shows_its_diagrams(doc, site, browser):
    """The pictures of the models are there, with alt text written from their sizes."""
    context, visit = open_context(browser, site)
    try:
        page = context.new_page()
        page.goto(site.url(f"{doc}.html"), wait_until="load")
        shown = page.eval_on_selector_all(
            "figure.diagram",
            """els => els.map(f => ({alt: f.querySelector('img')?.getAttribute('alt') || '',
                                     caption: f.querySelector('figcaption')?.innerText || '',
                                     width: f.querySelector('img')?.naturalWidth || 0}))""",
        )
    finally:
        context.close()
    assert len(shown) >= DIAGRAMS[doc], f"{doc}: {len(shown)} diagrams, expected {DIAGRAMS[doc]}"
    for figure in shown:
        assert figure["width"] > 0 and figure["caption"].strip(), figure
        assert re.search(r"\bn = \d+|shape \(\d+, \d+\)", figure["alt"]), figure["alt"]


def _sidebar_links(page) -> list[dict]:
    return page.eval_on_selector_all(
        "nav.bd-docs-nav a.reference.internal",
        "els => els.map(a => ({href: a.href.split('#')[0], text: a.innerText.trim()}))",
    )


def test_sidebar_lists_the_toc_in_order_with_numbered_chapters(site, browser):
    context, visit = open_context(browser, site)
    try:
        page = context.new_page()
        page.goto(site.url(f"{PAGES[0]}.html"), wait_until="load")
        links = _sidebar_links(page)
    finally:
        context.close()
    assert [link["href"] for link in links] == [site.url(f"{d}.html") for d in PAGES]
    numbers = [(re.match(r"(\d+)\.\s", link["text"]) or [None, None])[1] for link in links]
    expected, count = [], 0
    for _, numbered in TOC:
        count += numbered
        expected.append(str(count) if numbered else None)
    assert numbers == expected, [link["text"] for link in links]
    assert not visit.page_errors and not visit.console_errors


def _current_in_sidebar(page) -> str:
    """The URL of the page the sidebar marks as the current one."""
    return page.eval_on_selector(
        "nav.bd-docs-nav li.current > a", "a => new URL(a.getAttribute('href'), location.href).href"
    ).split("#")[0]


def _without_math(context):
    """Navigation tests skip typesetting (tested per page above): MathJax is served empty."""
    context.route(
        "**/_static/mathjax/**",
        lambda route: route.fulfill(body="", content_type="application/javascript"),
    )


def test_next_and_previous_links_walk_the_book_in_order(site, browser):
    context, visit = open_context(browser, site)
    _without_math(context)
    try:
        page = context.new_page()
        page.goto(site.url(f"{PAGES[0]}.html"), wait_until="load")
        assert page.locator("a.left-prev").count() == 0, "the first page has a 'previous' link"
        for doc in PAGES[1:]:
            page.locator("a.right-next").click()
            page.wait_for_url(site.url(f"{doc}.html"), wait_until="domcontentloaded")
            assert page.locator("article h1").count() == 1, f"{doc}: no single page title"
            assert _current_in_sidebar(page) == site.url(f"{doc}.html"), doc
        assert page.locator("a.right-next").count() == 0, "the last page has a 'next' link"
        for doc in reversed(PAGES[:-1]):
            page.locator("a.left-prev").click()
            page.wait_for_url(site.url(f"{doc}.html"), wait_until="domcontentloaded")
    finally:
        context.close()
    assert not visit.page_errors and not visit.console_errors, visit
    assert not visit.external_requests, visit.external_requests


def test_sidebar_links_open_their_pages(site, browser):
    context, visit = open_context(browser, site)
    _without_math(context)
    try:
        page = context.new_page()
        page.goto(site.url(f"{PAGES[-1]}.html"), wait_until="load")
        for doc in PAGES:
            link = page.locator(
                f'nav.bd-docs-nav a.reference.internal[href$="{Path(doc).name}.html"]'
            )
            link.first.click()
            page.wait_for_url(site.url(f"{doc}.html"), wait_until="domcontentloaded")
            assert _current_in_sidebar(page) == site.url(f"{doc}.html"), doc
    finally:
        context.close()
    assert not visit.page_errors and not visit.console_errors, visit


def test_root_redirects_to_the_first_page(site, browser):
    context, visit = open_context(browser, site)
    try:
        page = context.new_page()
        page.goto(site.url(""), wait_until="load")
        page.wait_for_url(site.url(f"{PAGES[0]}.html"))
    finally:
        context.close()


def test_search_finds_softmax(site, browser, screenshots):
    context, visit = open_context(browser, site)
    try:
        page = context.new_page()
        page.goto(site.url(f"{PAGES[0]}.html"), wait_until="load")
        # As a reader would: open the search box, type, press Enter.
        page.locator("button.search-button__button:visible").first.click()
        box = page.locator("#pst-search-dialog input[name=q]")
        box.fill("softmax")
        box.press("Enter")
        page.wait_for_url(re.compile(r"/search\.html\?q=softmax"))
        results = page.locator("#search-results ul.search li")
        results.first.wait_for(state="attached")
        page.wait_for_function(
            "() => /Search finished/.test(document.querySelector('#search-results')?.innerText)"
        )
        hrefs = results.locator("a").evaluate_all("els => els.map(a => a.href.split('#')[0])")
        page.screenshot(path=str(screenshots / "search_softmax.png"), full_page=True)
    finally:
        context.close()
    assert hrefs, "no search results for 'softmax'"
    toc_urls = {site.url(f"{d}.html") for d in PAGES}
    unknown = [h.split("?")[0] for h in hrefs if h.split("?")[0] not in toc_urls]
    assert not unknown, f"search results outside the book's pages: {unknown}"
    assert not visit.page_errors and not visit.console_errors, visit
    assert not visit.external_requests, visit.external_requests
