"""The browser harness: a folder (the built book) served on 127.0.0.1 and opened in
Debian's headless Chromium, and the checks every page must pass, in words.

- ``serve(folder, prefix)``: an http.server thread on a free port, serving ``folder`` at
  ``prefix`` (``""``: the server's root; ``"/org/book"``: only below that path, as a
  project's GitHub Pages site is served, everything else 404). The ``site`` fixture serves
  the built book (``book_html``, tests/conftest.py) at the root for one test module.
- ``browser``: Chromium at ``CHROMIUM`` (installed by ``scripts/system-deps.sh``; never
  ``playwright install``), where no host name resolves except 127.0.0.1.
- ``open_context(browser, site)``: a browser context that blocks and records every request
  not to the local server, and records JavaScript errors, console errors and failed requests.
- ``page_problems(site, page, visit)``: everything wrong with the open page (the list is in
  tests/test_browser.py's docstring); ``raw_tex(text)``: TeX left raw in prose.

tests/conftest.py registers the fixtures for every test module. tests/test_browser.py runs
the checks on a hand-made broken page first, so a check that cannot fail would show up.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from attn_course.diagrams import MIN_FONT_PT
from attn_course.plotting import SMALLEST_TEXT_KEY

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Belt and braces: no host name resolves, so nothing can leave the machine
    # even if a request slipped past the router below.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
VIEWPORT = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
WIDTHS = {"1280px": VIEWPORT, "375px": PHONE}  # every page is read at both
TIMEOUT_MS = 30_000

# A figure in the text must be drawn at least this many CSS pixels per inch of
# matplotlib figure, so that a 10 pt label is at least ~9.7 px tall on screen.
MIN_PX_PER_INCH = 70
# A figure's pixels per pixel it is shown at, at least: sharp on high-density screens
# (phones draw 2 to 3 device pixels per CSS pixel).
HIDPI_RATIO = 1.5


# --------------------------------------------------------------------------
# Serving the site, driving the browser
# --------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    prefix = ""  # the URL path the folder is served at ("" = the root)

    def log_message(self, format, *args):  # noqa: A002  (the base class's name)
        pass

    def translate_path(self, path):
        """The folder below ``prefix``; any other path maps to no file (404), as on a static
        host serving the folder at that path."""
        route = urlsplit(path).path
        if self.prefix:
            if route != self.prefix and not route.startswith(self.prefix + "/"):
                return str(Path(self.directory) / "outside-the-prefix" / "404")
            path = path[len(self.prefix) :]
        return super().translate_path(path)


@dataclass
class Site:
    root: Path
    base: str  # http://127.0.0.1:PORT
    prefix: str = ""  # the path the folder is served at, e.g. "/org/book"; "" for the root

    def url(self, path: str) -> str:
        return f"{self.base}{self.prefix}/{path}"

    def is_local(self, url: str) -> bool:
        """On this server (inside the prefix or not: a request above it is this site's bug,
        answered 404, never an outside request)."""
        return url == self.base or url.startswith(self.base + "/")

    def file(self, url: str) -> Path | None:
        """The file of ``root`` that ``url`` names, or None outside the prefix."""
        route = unquote(urlsplit(url).path)
        if not self.is_local(url) or not (route + "/").startswith(self.prefix + "/"):
            return None
        return self.root / route[len(self.prefix) :].lstrip("/")


def serve(root: Path, prefix: str = ""):
    """Serve ``root`` at ``prefix`` (``""`` or a path like ``"/org/book"``) on 127.0.0.1."""
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ValueError(f"a prefix starts with / and does not end with one: {prefix!r}")
    handler_class = type("_Handler", (_QuietHandler,), {"prefix": prefix})
    handler = functools.partial(handler_class, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, Site(root, f"http://127.0.0.1:{server.server_address[1]}", prefix)


@pytest.fixture(scope="module")
def site(book_html):
    server, site = serve(book_html)
    yield site
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/system-deps.sh` (Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Visit:
    """What happened while a page was open."""

    external_requests: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)


def open_context(browser, site: Site, viewport=VIEWPORT):
    """A browser context that blocks (and records) every request not to the local server."""
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    visit = Visit()

    def route(route):
        url = route.request.url
        if site.is_local(url):
            route.continue_()
        else:
            visit.external_requests.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", route)

    def watch(page):
        page.on("pageerror", lambda err: visit.page_errors.append(str(err)))
        page.on(
            "console",
            lambda msg: (
                msg.type == "error"
                and visit.console_errors.append(f"{msg.text} ({msg.location.get('url', '')})")
            ),
        )
        page.on(
            "response",
            lambda r: (
                r.status >= 400
                and site.is_local(r.url)
                and visit.failed_requests.append(f"{r.status} {r.url}")
            ),
        )
        page.on(
            "requestfailed",
            lambda r: site.is_local(r.url) and visit.failed_requests.append(f"{r.failure} {r.url}"),
        )

    context.on("page", watch)
    return context, visit


# --------------------------------------------------------------------------
# What is checked on one page
# --------------------------------------------------------------------------

_WAIT_FOR_MATHJAX = """
async () => {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) { await mj.startup.promise; return true; }
  return false;
}
"""

# A page has settled when MathJax has typeset it and the fonts that typesetting asked
# for have arrived: "networkidle" alone can come between the two, and leaving the page
# then aborts the font requests, which would read as broken links.
_SETTLE = """
async () => {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) { await mj.startup.promise; }
  await document.fonts.ready;
}
"""


def settle(page) -> None:
    """Wait until ``page``'s math is typeset and every font it uses has loaded."""
    page.evaluate(_SETTLE)


_PAGE_FACTS = """
async () => {
  const content = document.querySelector('article, main') || document.body;
  // An image is cut off when it sticks out of a box that clips it, or out of the window.
  // A box that scrolls shows all of it to a reader who scrolls: from there on, the box
  // itself must fit.
  const cutOff = (img) => {
    let r = img.getBoundingClientRect();
    for (let el = img.parentElement; el && el !== document.body; el = el.parentElement) {
      const overflow = getComputedStyle(el).overflowX;
      if (overflow === 'visible') continue;
      const box = el.getBoundingClientRect();
      if (overflow === 'auto' || overflow === 'scroll') { r = box; continue; }
      if (r.left < box.left - 1 || r.right > box.right + 1) return true;
    }
    return r.left < -1 || r.right > document.documentElement.clientWidth + 1;
  };
  const images = await Promise.all(Array.from(document.images).map(async (img) => {
    try { await img.decode(); } catch (e) {}
    return {
      src: img.currentSrc || img.src, attrSrc: img.getAttribute('src') || '',
      ok: img.complete && img.naturalWidth > 0,
      alt: (img.getAttribute('alt') || '').trim(),
      inText: content.contains(img) && !img.closest('.sidebar-primary-items__start, .navbar-brand'),
      naturalWidth: img.naturalWidth, renderedWidth: img.getBoundingClientRect().width,
      diagram: !!img.closest('figure.diagram'), cutOff: cutOff(img),
    };
  }));
  // The page's small print: the smallest text size among the visible prose, captions,
  // tables and code of the content.
  const printed = Array.from(content.querySelectorAll(
      'p, li, dd, td, th, figcaption, pre')).filter((e) => e.getClientRects().length
      && e.textContent.trim());
  const smallPrint = Math.min(...printed.map((e) => parseFloat(getComputedStyle(e).fontSize)));
  const maths = Array.from(content.querySelectorAll('.math'));
  // The text a reader sees, without code, outputs and typeset math.
  const clone = content.cloneNode(true);
  const notProse = 'pre, code, script, style, textarea, mjx-container, .highlight, .cell_output';
  clone.querySelectorAll(notProse).forEach((e) => e.remove());
  // The header's controls as a reader finds them: each visible link or button.
  const controls = Array.from(document.querySelectorAll(
      'header a, header button, .bd-header-article a, .bd-header-article button'))
    .filter((e) => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
    .map((e) => {
      const r = e.getBoundingClientRect();
      return {name: (e.getAttribute('aria-label') || e.title || e.textContent).trim().slice(0, 30),
              left: r.left, top: r.top, right: r.right, bottom: r.bottom};
    }).filter((c) => c.right > c.left && c.bottom > c.top);
  const h1 = content.querySelector('h1');
  const r = h1 ? h1.getBoundingClientRect() : null;
  return {
    title: document.title,
    controls, titleBox: r && {left: r.left, top: r.top, right: r.right, bottom: r.bottom},
    pageWidth: document.documentElement.scrollWidth, windowWidth: window.innerWidth,
    images, smallPrint,
    mathElements: maths.length,
    mathUnrendered: maths.filter((m) => !m.querySelector('mjx-container'))
                         .map((m) => m.textContent.trim().slice(0, 80)),
    mathErrors: Array.from(document.querySelectorAll('mjx-merror'))
                     .map((m) => (m.getAttribute('data-mjx-error') || m.textContent).slice(0, 80)),
    mathjaxReady: !!(window.MathJax && window.MathJax.startup && window.MathJax.typesetPromise),
    text: clone.textContent,
  };
}
"""

# Raw TeX a reader must never see in prose: display/inline delimiters, an
# environment, a TeX command, or a $...$ pair.
RAW_TEX = [
    re.compile(r"\$\$"),
    re.compile(r"\\[()\[\]]"),
    re.compile(r"\\begin\{"),
    re.compile(r"\\[a-zA-Z]{2,}"),
    # $...$ with TeX inside (a _, ^, backslash or brace) or around a single letter;
    # "costs $5 and $10" is prose.
    re.compile(r"\$(?=[^$\n]{0,80}[_^\\{}])[^\s$][^$\n]{0,80}?\$|\$[A-Za-z]\$"),
]


def _png_facts(site: Site, url: str) -> tuple[float | None, float | None]:
    """The dpi stored in a local PNG and the size in points of its smallest text (both
    written by matplotlib: ``attn_course.plotting.screen_png``), each None if absent."""
    path = site.file(url)
    if path is None or path.suffix.lower() != ".png" or not path.is_file():
        return None, None
    from PIL import Image

    with Image.open(path) as image:
        dpi = image.info.get("dpi")
        smallest = image.info.get(SMALLEST_TEXT_KEY)
    return (float(dpi[0]) if dpi and dpi[0] else None), (float(smallest) if smallest else None)


def page_problems(site: Site, page, visit: Visit, width: int = VIEWPORT["width"]) -> list[str]:
    """Everything wrong with the page now open in ``page`` (``width`` px wide), in words."""
    problems = [f"requested from outside the book: {u}" for u in visit.external_requests]
    problems += [f"JavaScript error: {e}" for e in visit.page_errors]
    problems += [f"console error: {e}" for e in visit.console_errors]
    problems += [f"failed request: {e}" for e in visit.failed_requests]

    try:
        page.evaluate(_WAIT_FOR_MATHJAX)
    except Exception as err:  # a MathJax startup failure is reported below
        problems.append(f"MathJax did not start: {err}")
    facts = page.evaluate(_PAGE_FACTS)

    for img in facts["images"]:
        if not img["ok"]:
            problems.append(f"broken image: {img['src']}")
            continue
        if not img["inText"]:
            continue
        name = Path(urlsplit(img["attrSrc"]).path).name
        if not img["alt"] or img["alt"] in (img["attrSrc"], name):
            problems.append(f"figure without alt text: {img['attrSrc']}")
        if img["renderedWidth"] > img["naturalWidth"] + 1:
            problems.append(
                f"figure upscaled from {img['naturalWidth']} to {img['renderedWidth']:.0f} px "
                f"(blurred): {img['attrSrc']}"
            )
        if img["naturalWidth"] < HIDPI_RATIO * img["renderedWidth"]:
            problems.append(
                f"figure drawn at {img['naturalWidth'] / img['renderedWidth']:.2f}× the width "
                f"it is shown at (blurred on high-density screens): {img['attrSrc']}"
            )
        if img["cutOff"]:
            problems.append(f"figure cut off at {width} px: {img['attrSrc']}")
        dpi, smallest_pt = _png_facts(site, img["src"])
        if dpi and img["renderedWidth"] > 0:
            px_per_inch = img["renderedWidth"] / (img["naturalWidth"] / dpi)
            if px_per_inch < MIN_PX_PER_INCH and width >= VIEWPORT["width"]:
                problems.append(
                    f"figure shrunk to {px_per_inch:.0f} px per inch (labels unreadable; "
                    f"draw it narrower, figsize ≈ (7, 3.5)): {img['attrSrc']}"
                )
            # Its smallest text as printed on the screen: the PNG records it (a diagram's
            # labels are at least MIN_FONT_PT). Diagrams are checked at every width, plots
            # on a phone (where they may scroll sideways instead of shrinking).
            label_pt = smallest_pt or (MIN_FONT_PT if img["diagram"] else None)
            label_px = label_pt / 72 * px_per_inch if label_pt else None
            checked = img["diagram"] or width <= PHONE["width"]
            if checked and label_px and label_px < facts["smallPrint"] - 0.05:
                kind = "diagram labels" if img["diagram"] else "figure text"
                problems.append(
                    f"{kind} {label_px:.1f} px at {width} px, smaller than the page's "
                    f"small print ({facts['smallPrint']:.1f} px): {img['attrSrc']}"
                )
        elif img["diagram"]:
            problems.append(f"diagram without a readable dpi: {img['attrSrc']}")

    problems += _layout_problems(facts, width)
    if facts["mathElements"] and not facts["mathjaxReady"]:
        problems.append(f"MathJax not loaded, {facts['mathElements']} math elements untypeset")
    problems += [f"math not typeset: {m!r}" for m in facts["mathUnrendered"]]
    problems += [f"MathJax error: {m!r}" for m in facts["mathErrors"]]
    problems += [f"raw TeX in the text: {snippet!r}" for snippet in raw_tex(facts["text"])]
    return problems


def _layout_problems(facts: dict, width: int) -> list[str]:
    """The header's controls inside the screen and clear of the title; no sideways scroll."""
    problems = []
    for c in facts["controls"]:
        if c["left"] < -0.5 or c["top"] < -0.5 or c["right"] > facts["windowWidth"] + 0.5:
            problems.append(
                f"header control {c['name']!r} outside the screen at {width} px "
                f"(left {c['left']:.0f}, top {c['top']:.0f}, right {c['right']:.0f})"
            )
        t = facts["titleBox"]
        if t and c["bottom"] > t["top"] + 0.5 and c["left"] < t["right"] and c["right"] > t["left"]:
            problems.append(f"header control {c['name']!r} overlaps the page title at {width} px")
    if facts["pageWidth"] > facts["windowWidth"] + 1:
        problems.append(f"the page scrolls sideways at {width} px: {facts['pageWidth']} px wide")
    return problems


def raw_tex(text: str, context: int = 25) -> list[str]:
    """Snippets of ``text`` around raw TeX, overlapping matches merged."""
    spans = sorted((m.start(), m.end()) for p in RAW_TEX for m in p.finditer(text))
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1] + context:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [" ".join(text[max(a - context, 0) : b + context].split()) for a, b in merged]
