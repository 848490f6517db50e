"""The book served from a sub-path, as a static host serves it (a project's GitHub Pages
site is ``https://ORG.github.io/REPO/``): the built ``_build/html`` at ``PREFIX`` on a real
HTTP server on 127.0.0.1, everything else 404, read in Chromium.

- a crawl of both editions (every HTML page reachable from ``index.html`` and
  ``zh/index.html``): every asset the browser loads and every local link answers 200, and
  nothing points above the prefix (a link to ``/...`` works on a site served at the root
  and breaks here);
- every page's language switch names the same page in the other edition, and a click
  follows it there and back;
- search finds pages of its own edition;
- every chapter's assignment download, in both editions, is the released notebook.

The crawler runs on a small hand-made site first, so a check that cannot fail would show up.
About 40 s on a built book (2 cores).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from book_toc import toc_entries
from browser_fixtures import open_context, serve, settle

pytestmark = [pytest.mark.book]

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "/course-org/attention-book"
EDITIONS = ("", "zh/")  # the English edition at the prefix, the Chinese one below zh/
PAGES = [doc for doc, _ in toc_entries()]
ASSIGNMENTS = sorted(p.name for p in (ROOT / "exercises").iterdir() if p.is_dir())
MAX_PAGES = 120  # a bound on the crawl; the book has about 30 pages
OK = (200, 304)  # 304: the browser revalidating a file it already has


@pytest.fixture(scope="module")
def online(book_html):
    server, site = serve(book_html, PREFIX)
    yield site
    server.shutdown()
    server.server_close()


def crawl(site, browser, start: list[str]) -> dict:
    """Open every HTML page reachable from ``start`` (paths below the prefix) in Chromium.
    Returns ``problems`` (in words), ``pages`` (the URLs opened), ``links`` (every local
    link's URL, without its fragment) and ``switch`` (page URL -> its language switch's)."""
    context, visit = open_context(browser, site)
    loaded: dict[str, int] = {}  # what the browser fetched by itself, with its status
    links: dict[str, str] = {}  # local link -> the page it is on
    switch: dict[str, str] = {}
    todo, pages, problems = [site.url(p) for p in start], [], []
    inside = site.base + site.prefix + "/"
    try:
        page = context.new_page()
        page.on("response", lambda r: loaded.setdefault(r.url, r.status))
        while todo and len(pages) < MAX_PAGES:
            url = todo.pop(0)
            if url in pages:
                continue
            pages.append(url)
            page.goto(url, wait_until="networkidle")  # index.html redirects: followed
            settle(page)  # typeset, its fonts loaded: leaving it aborts nothing
            hrefs = page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
            target = page.eval_on_selector_all(
                ".course-language-switch a[hreflang]:not([aria-current])",
                "els => els.map(a => a.href)",
            )
            if target:
                switch[url] = target[0].split("#")[0]
            for href in hrefs:
                link = href.split("#")[0]
                if not site.is_local(link) or not link:
                    continue
                links.setdefault(link, url)
                html = link.split("?")[0].endswith(".html") and "?" not in link
                if html and link.startswith(inside) and link not in pages:
                    todo.append(link)
        for link in links:
            if link not in loaded:
                loaded[link] = context.request.get(link, max_redirects=0).status
    finally:
        context.close()
    for url, status in loaded.items():
        if not url.startswith(inside):
            where = links.get(url, "an asset of a page")
            problems.append(f"above the prefix: {url} ({where})")
        elif status not in OK:
            problems.append(f"{status} {url} (linked from {links.get(url, 'a page as an asset')})")
    problems += [f"failed request: {e}" for e in visit.failed_requests]
    problems += [f"requested from outside the book: {u}" for u in visit.external_requests]
    problems += [f"JavaScript error: {e}" for e in visit.page_errors]
    return {"problems": problems, "pages": pages, "links": links, "switch": switch}


def test_the_crawl_catches_links_above_the_prefix(tmp_path, browser):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "page.html").write_text("<p>fine</p>")
    (tmp_path / "style.css").write_text("p {}")
    (tmp_path / "index.html").write_text(
        '<link rel="stylesheet" href="style.css"><link rel="stylesheet" href="/style.css">'
        '<a href="sub/page.html">ok</a> <a href="/sub/page.html">root</a>'
        ' <a href="missing.html">gone</a>'
    )
    server, site = serve(tmp_path, "/org/repo")
    try:
        found = crawl(site, browser, ["index.html"])
    finally:
        server.shutdown()
        server.server_close()
    text = "\n".join(found["problems"])
    assert f"above the prefix: {site.base}/style.css" in text
    assert f"above the prefix: {site.base}/sub/page.html" in text
    assert f"404 {site.url('missing.html')}" in text
    assert site.url("sub/page.html") in found["pages"]  # followed, and fine
    assert site.url("sub/page.html") not in text and site.url("style.css") not in text


@pytest.fixture(scope="module")
def crawled(online, browser):
    return crawl(online, browser, [f"{e}index.html" for e in EDITIONS])


def test_every_link_and_asset_of_both_editions_answers_inside_the_prefix(online, crawled):
    opened = set(crawled["pages"])
    missing = [
        f"{e}{doc}.html"
        for e in EDITIONS
        for doc in PAGES
        if online.url(f"{e}{doc}.html") not in opened
    ]
    assert not missing, f"the crawl did not reach {missing}"
    assert not crawled["problems"], "\n".join(crawled["problems"])


def test_the_language_switch_names_the_same_page_in_the_other_edition(online, crawled, browser):
    wrong = []
    for doc in PAGES:
        en, zh = online.url(f"{doc}.html"), online.url(f"zh/{doc}.html")
        for here, there in ((en, zh), (zh, en)):
            if crawled["switch"].get(here) != there:
                wrong.append(f"{here} -> {crawled['switch'].get(here)}, not {there}")
    assert not wrong, "\n".join(wrong)
    doc = "book/03_query_key_value"  # and a reader's click follows it, there and back
    context, visit = open_context(browser, online)
    try:
        page = context.new_page()
        page.goto(online.url(f"{doc}.html"), wait_until="networkidle")
        settle(page)
        page.locator(".course-language-switch a[hreflang=zh-CN]").click()
        page.wait_for_url(online.url(f"zh/{doc}.html"), wait_until="networkidle")
        settle(page)
        page.locator(".course-language-switch a[hreflang=en]").click()
        page.wait_for_url(online.url(f"{doc}.html"), wait_until="networkidle")
        settle(page)
    finally:
        context.close()
    assert not visit.page_errors and not visit.failed_requests, visit


@pytest.mark.parametrize("edition", EDITIONS)
def test_search_finds_pages_of_its_edition(online, browser, edition):
    context, visit = open_context(browser, online)
    try:
        page = context.new_page()
        page.goto(online.url(f"{edition}{PAGES[0]}.html"), wait_until="networkidle")
        page.locator("button.search-button__button:visible").first.click()
        box = page.locator("#pst-search-dialog input[name=q]")
        box.fill("softmax")
        box.press("Enter")
        page.wait_for_url(online.url(f"{edition}search.html?q=softmax"))
        # the summary says how many pages matched once the search has finished
        page.wait_for_function(
            "() => /\\d/.test(document.querySelector('#search-results .search-summary')"
            "?.innerText || '')"
        )
        hrefs = page.locator("#search-results ul.search li a").evaluate_all(
            "els => els.map(a => a.href.split('#')[0].split('?')[0])"
        )
    finally:
        context.close()
    pages = {online.url(f"{edition}{doc}.html") for doc in PAGES}
    assert hrefs, f"no search results for 'softmax' in {online.url(edition)}"
    assert set(hrefs) <= pages, set(hrefs) - pages
    assert not visit.page_errors and not visit.failed_requests, visit


def test_the_assignment_downloads_are_the_released_notebooks(online, crawled, browser, tmp_path):
    downloads = [u for u in crawled["links"] if re.search(r"/_downloads/.+\.ipynb$", u)]
    for edition in EDITIONS:
        inside = online.url(f"{edition}_downloads/")
        names = sorted({Path(u).stem for u in downloads if u.startswith(inside)})
        assert names == ASSIGNMENTS, f"{inside}: {names}"
    context, visit = open_context(browser, online)
    try:
        zh = online.url("zh/")  # the Chinese edition offers the Chinese notebooks
        wrong = [
            u
            for u in downloads
            if context.request.get(u).body()
            != (
                ROOT
                / "exercises"
                / Path(u).stem
                / ("zh_CN" if u.startswith(zh) else "")
                / Path(u).name
            ).read_bytes()
        ]
        # a reader's click on the link of a Chinese chapter saves the notebook
        page = context.new_page()
        page.goto(online.url("zh/book/03_query_key_value.html"), wait_until="networkidle")
        with page.expect_download() as info:
            page.locator("a.download[href$='03_query_key_value.ipynb']").first.click()
        saved = tmp_path / info.value.suggested_filename
        info.value.save_as(saved)
    finally:
        context.close()
    assert not wrong, wrong
    assert saved.name == "03_query_key_value.ipynb"
    chinese = ROOT / "exercises/03_query_key_value/zh_CN" / saved.name
    assert saved.read_bytes() == chinese.read_bytes()


def test_the_pages_workflow_builds_with_the_readmes_command():
    import yaml

    workflow = yaml.safe_load((ROOT / ".github/workflows/book.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    assert [s["run"] for s in steps if "run" in s] == ["make book"]
    (upload,) = [s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert upload["with"]["path"] == "_build/html"
    readme = (ROOT / "README.md").read_text()
    assert "make book " in readme and "_build/html" in readme
    deploy = workflow["jobs"]["deploy"]["steps"]
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in deploy)
