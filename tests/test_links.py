"""The built book, read as files: every internal link resolves, nothing is
fetched from the internet, every chapter offers its assignment notebook, and
the figures are sized and coloured to be readable.

A plain-Python crawler over ``_build/html``: every ``href``/``src`` that points
to a local file or an anchor must resolve, to an existing file and, for
``page.html#anchor``, to an element with that id. The crawler is tested on a
small hand-made site first, so a check that cannot fail would show up.

The book is built once per test session by the ``built_book`` fixture of
``tests/conftest.py``; set ``ATTN_BOOK_HTML=/path/to/_build/html`` to check an
existing build instead.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from book_toc import toc_entries

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.book]


# --------------------------------------------------------------------------
# The crawler
# --------------------------------------------------------------------------

# (tag, attribute) pairs that point at another file or an anchor.
LINK_ATTRS = {
    ("a", "href"),
    ("area", "href"),
    ("link", "href"),
    ("img", "src"),
    ("script", "src"),
    ("source", "src"),
    ("iframe", "src"),
    ("video", "src"),
    ("audio", "src"),
    ("embed", "src"),
    ("object", "data"),
}
# Tags whose target the browser loads by itself (as opposed to a link a reader follows).
RESOURCE_TAGS = {"img", "script", "source", "iframe", "video", "audio", "embed", "object"}
RESOURCE_RELS = {"stylesheet", "icon", "preload", "modulepreload", "prefetch", "manifest"}


class _PageParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str, str]] = []  # (tag, url, rel)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name") if tag in ("a", "span", "div", "section") else ("id",):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for t, attr in LINK_ATTRS:
            if tag == t and attrs.get(attr) is not None:
                self.links.append((tag, attrs[attr], (attrs.get("rel") or "").lower()))
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":
            match = re.search(r"url=(.+)$", attrs.get("content") or "", re.IGNORECASE)
            if match:
                self.links.append(("meta", match.group(1).strip().strip("'\""), ""))


def parse_page(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def is_external(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme and parts.scheme not in ("file",)) or url.startswith("//")


def html_pages(html_root: Path) -> list[Path]:
    """Every HTML page of the site; the theme's and MathJax's own files are not pages."""
    assets = {"_static", "_sources", "_downloads"}  # in each edition (zh/ has its own)
    return sorted(
        p for p in html_root.rglob("*.html") if not assets & set(p.relative_to(html_root).parts)
    )


def broken_links(html_root: Path) -> list[str]:
    """Every local href/src of every page that does not resolve, as 'page: url (why)'."""
    html_root = html_root.resolve()
    ids_cache: dict[Path, set[str]] = {}

    def ids_of(path: Path) -> set[str]:
        if path not in ids_cache:
            ids_cache[path] = parse_page(path).ids
        return ids_cache[path]

    problems = []
    for page in html_pages(html_root):
        parsed = parse_page(page)
        ids_cache[page] = parsed.ids
        where = page.relative_to(html_root).as_posix()
        for _tag, url, _rel in parsed.links:
            if is_external(url) or url.startswith(("mailto:", "javascript:", "data:")):
                continue
            parts = urlsplit(url)
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if parts.path.endswith("/") or target.is_dir():
                target = target / "index.html"
            if not target.is_relative_to(html_root):
                problems.append(f"{where}: {url} (points outside the site)")
                continue
            if not target.is_file():
                problems.append(f"{where}: {url} (no such file)")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html" and fragment not in ids_of(target):
                problems.append(f"{where}: {url} (no element with id {fragment!r})")
    return problems


def external_resources(html_root: Path) -> list[str]:
    """Resources a page would load from the internet by itself (scripts, styles, images)."""
    found = []
    for page in html_pages(html_root):
        for tag, url, rel in parse_page(page).links:
            loads = tag in RESOURCE_TAGS or (tag == "link" and set(rel.split()) & RESOURCE_RELS)
            if loads and is_external(url):
                found.append(f"{page.relative_to(html_root).as_posix()}: <{tag}> {url}")
    return found


# --------------------------------------------------------------------------
# The crawler is checked on a hand-made site first
# --------------------------------------------------------------------------


def test_crawler_finds_what_is_broken(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "index.html").write_text(
        '<meta http-equiv="refresh" content="0; url=sub/a.html">'
        '<a href="sub/a.html#intro">ok</a> <a href="sub/a.html#nowhere">bad anchor</a>'
        '<a href="missing.html">bad file</a> <img src="pic.png"> <img src="gone.png">'
        '<a href="https://example.org/x">external, not followed</a>'
        '<script src="https://cdn.example.org/lib.js"></script>'
        '<link rel="stylesheet" href="//cdn.example.org/style.css">'
        '<a href="#top">bad local anchor</a> <a href="#">page top</a>'
    )
    (tmp_path / "sub" / "a.html").write_text(
        '<h1 id="intro">A</h1><a href="../index.html">up</a><a href="../../etc/passwd">out</a>'
        '<a href="./">folder without index</a>'
    )
    assert sorted(broken_links(tmp_path)) == sorted(
        [
            "index.html: sub/a.html#nowhere (no element with id 'nowhere')",
            "index.html: missing.html (no such file)",
            "index.html: gone.png (no such file)",
            "index.html: #top (no element with id 'top')",
            "sub/a.html: ../../etc/passwd (points outside the site)",
            "sub/a.html: ./ (no such file)",
        ]
    )
    assert external_resources(tmp_path) == [
        "index.html: <script> https://cdn.example.org/lib.js",
        "index.html: <link> //cdn.example.org/style.css",
    ]


# --------------------------------------------------------------------------
# The real book
# --------------------------------------------------------------------------


def test_internal_links_resolve(book_html):
    problems = broken_links(book_html)
    assert not problems, f"{len(problems)} broken internal links:\n" + "\n".join(problems[:50])


def test_no_page_loads_anything_from_the_internet(book_html):
    found = external_resources(book_html)
    assert not found, "pages load resources from the internet (the book must work offline):\n" + (
        "\n".join(found[:50])
    )


def test_math_is_served_from_the_book_itself(book_html):
    # MathJax comes from sphinx-mathjax-offline, copied into _static at build time.
    assert (book_html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    scripts = [
        url
        for doc, _ in toc_entries()
        for tag, url, _ in parse_page(book_html / f"{doc}.html").links
        if tag == "script" and "mathjax" in url.lower()
    ]
    assert scripts, "no page loads MathJax"
    paths = {urlsplit(url).path for url in scripts}
    assert all(path.endswith("_static/mathjax/tex-chtml.js") for path in paths), paths


@pytest.mark.parametrize("edition", ["", "zh"])
def test_every_chapter_links_to_its_assignment_notebook(book_html, edition):
    """Each numbered chapter offers its own exercise notebook for download; the Chinese
    edition's is the Chinese notebook (exercises/<name>/zh_CN/<name>.ipynb, the same name)."""
    chapters = [doc for doc, numbered in toc_entries() if numbered]
    assert chapters, "no numbered chapters in _toc.yml"
    problems = []
    for doc in chapters:
        name = Path(doc).name  # e.g. 03_query_key_value
        page = book_html / edition / f"{doc}.html"
        links = [url for tag, url, _ in parse_page(page).links if tag == "a"]
        downloads = [u for u in links if urlsplit(u).path.endswith(f"/{name}.ipynb")]
        if not downloads:
            problems.append(f"{doc}: no download link to {name}.ipynb")
            continue
        target = (page.parent / unquote(urlsplit(downloads[0]).path)).resolve()
        if not target.is_file():
            problems.append(f"{doc}: {downloads[0]} does not exist")
            continue
        notebook = json.loads(target.read_text(encoding="utf-8"))
        if notebook.get("nbformat") != 4 or not notebook.get("cells"):
            problems.append(f"{doc}: {downloads[0]} is not a notebook")
        expected = ROOT / "exercises" / name / ("zh_CN" if edition else "") / f"{name}.ipynb"
        if expected.is_file() and target.read_bytes() != expected.read_bytes():
            problems.append(f"{doc}: the download is not {expected.relative_to(ROOT)}")
    assert not problems, "\n".join(problems)


def test_every_chapter_has_a_summary(book_html):
    chapters = [doc for doc, numbered in toc_entries() if numbered]
    pattern = re.compile(r"<h[23][^>]*>(?:(?!</h).)*Summary", re.DOTALL)
    missing = [
        doc for doc in chapters if not pattern.search((book_html / f"{doc}.html").read_text())
    ]
    assert not missing, f"chapters without a Summary section: {missing}"


def test_every_reference_is_cited_and_listed(book_html):
    """Each entry of references.bib is cited with {cite} somewhere in the book, and the
    bibliography page lists it (sphinxcontrib-bibtex renders every entry there)."""
    keys = re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(), re.MULTILINE)
    assert keys, "references.bib has no entries"
    sources = " ".join(
        (ROOT / f"{doc}.md").read_text(encoding="utf-8")
        for doc, _ in toc_entries()
        if (ROOT / f"{doc}.md").is_file()
    )
    cited = set()
    for role in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", sources):
        cited.update(key.strip() for key in role.split(","))
    assert not set(keys) - cited, f"in references.bib but never cited: {sorted(set(keys) - cited)}"
    bibliography = [doc for doc, _ in toc_entries() if "{bibliography}" in _source(doc)]
    assert len(bibliography) == 1, f"expected one bibliography page, found {bibliography}"
    html = (book_html / f"{bibliography[0]}.html").read_text(encoding="utf-8")
    entries = re.findall(r'<div class="citation" id="[^"]+"', html)
    assert len(entries) == len(keys), f"{len(entries)} entries listed, {len(keys)} in the .bib"


def _source(doc: str) -> str:
    path = ROOT / f"{doc}.md"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


# --------------------------------------------------------------------------
# Figures: size and colours
# --------------------------------------------------------------------------

# A figure drawn wider than this (in inches, at the dpi stored in its PNG)
# is shrunk so much in the ~730 px text column that its 10 pt labels fall
# below ~9 px: unreadable at book width.
MAX_FIGURE_WIDTH_IN = 11.0

# Colour maps that are not perceptually uniform or that confuse red and green.
BAD_COLORMAPS = {
    "jet",
    "rainbow",
    "gist_rainbow",
    "hsv",
    "nipy_spectral",
    "gist_ncar",
    "spectral",
    "rdylgn",
    "rdylgn_r",
    "jet_r",
    "rainbow_r",
    "prism",
    "flag",
}


def test_figures_fit_the_page(book_html):
    from PIL import Image

    too_wide = []
    for png in sorted((book_html / "_images").glob("*.png")):
        with Image.open(png) as image:
            dpi = image.info.get("dpi", (100, 100))[0] or 100
            width_in = image.width / dpi
        if width_in > MAX_FIGURE_WIDTH_IN:
            too_wide.append(f"{png.name}: {width_in:.1f} in wide at {dpi:.0f} dpi")
    assert not too_wide, (
        f"figures wider than {MAX_FIGURE_WIDTH_IN} in (use figsize≈(7, 3.5)):\n"
        + "\n".join(too_wide)
    )


def test_chapters_use_colour_blind_safe_colormaps():
    sources = [ROOT / f"{doc}.md" for doc, _ in toc_entries() if (ROOT / f"{doc}.md").is_file()]
    sources += sorted((ROOT / "attn_course").glob("**/*.py"))
    pattern = re.compile(r"""(?:cmap\s*=\s*|get_cmap\(\s*|colormaps\[\s*)["']([\w.]+)["']""")
    bad = [
        f"{path.relative_to(ROOT)}: cmap {name!r}"
        for path in sources
        for name in pattern.findall(path.read_text(encoding="utf-8"))
        if name.lower() in BAD_COLORMAPS
    ]
    assert not bad, "use viridis or cividis, not:\n" + "\n".join(bad)
