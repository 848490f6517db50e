"""The Chinese edition's figures: every word translated, no tofu.

Each figure the chapters glued (``attn_course.i18n.glue_figure``) is taken from the
execution cache the English build filled, its words are translated through the page's
Chinese catalog, as the Chinese build does, and it is rendered: matplotlib must report
no missing glyph (its warnings for text, its log for mathtext), and no word may stay
English. A diagram's translated labels must still fit their boxes. The detection itself is
first tried on a figure drawn without the CJK font, and on a label made too long.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from babel.messages.pofile import read_po
from book_toc import toc_entries
from matplotlib.backends.backend_agg import FigureCanvasAgg

from attn_course import i18n

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = ROOT / "locales" / "zh_CN" / "LC_MESSAGES"
PAGES = [doc for doc, _ in toc_entries()]


def _labelled_figure(label: str):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1], label=label)
    ax.set(title=label, xlabel=f"{label} $x_j$", ylabel=label)
    ax.legend()
    return fig


def test_missing_glyphs_are_caught():
    fig = _labelled_figure("注意力")  # drawn in DejaVu Sans, which has no CJK glyphs
    *_, missing = i18n.render_png(fig)
    plt.close(fig)
    assert any("glyph" in m.lower() for m in missing), missing
    # mathtext reports its own missing glyphs through logging, not warnings
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_xlabel("输入 $x_j$")
    *_, missing = i18n.render_png(fig)
    plt.close(fig)
    assert any("does not have a glyph" in m for m in missing), missing


def test_translated_words_use_the_cjk_font():
    fig = _labelled_figure("attention weight")
    words = {"attention weight": "注意力权重", "attention weight $x_j$": "注意力权重 $x_j$"}
    untranslated = i18n.translate_figure(fig, lambda s: words.get(s, s))
    *_, missing = i18n.render_png(fig)
    texts = [t.get_text() for t in i18n.figure_words(fig)]
    plt.close(fig)
    assert untranslated == []
    assert missing == []
    assert texts.count("注意力权重") == 3 and "注意力权重 $x_j$" in texts  # title, ylabel, legend


def test_tick_labels_and_numbers_are_not_words():
    fig, ax = plt.subplots()
    ax.set_xticks([0, 1], labels=["Jan", "Feb"])
    ax.text(0, 0, "0.25")
    ax.text(0, 1, "$\\alpha_{ij}$")
    ax.set_title("reversal")
    assert [t.get_text() for t in i18n.figure_words(fig)] == ["reversal"]
    plt.close(fig)


def _cached_figures(doc: str):
    """(key, pickled figure text) of every figure ``doc`` glued, from the execution cache."""
    from jupyter_cache import get_cache
    from myst_nb.core.read import read_myst_markdown_notebook

    source = ROOT / f"{doc}.md"
    notebook = read_myst_markdown_notebook(source.read_text(encoding="utf-8"))
    if not any(c.cell_type == "code" for c in notebook.cells):
        return []
    cache = get_cache(str(ROOT / "_build" / ".jupyter_cache"))
    record = cache.match_cache_notebook(notebook)  # KeyError: not executed as it is now
    executed = cache.get_cache_bundle(record.pk).nb
    found = []
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            scrapbook = output.get("metadata", {}).get("scrapbook", {})
            name = scrapbook.get("name", "")
            if name.endswith(i18n.PICKLE_SUFFIX):  # glue's mime types carry a prefix
                text = output.data[scrapbook.get("mime_prefix", "") + "text/plain"]
                found.append((name.removesuffix(i18n.PICKLE_SUFFIX), text))
    return found


def _overflowing_labels(fig) -> list[str]:
    """The labels of a diagram (a figure with ``parts``) wider or taller than their box."""
    if not hasattr(fig, "parts"):
        return []
    FigureCanvasAgg(fig)  # an unpickled figure has no canvas that measures text
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    to_inches = ax.transData.inverted()
    tol = 0.01  # inches
    found = []
    for text in ax.texts:
        for part in fig.parts.values():
            if part.group or not np.allclose(text.get_position(), (part.x, part.y)):
                continue
            (x0, y0), (x1, y1) = to_inches.transform(text.get_window_extent(renderer))
            if x0 < part.left - tol or x1 > part.right + tol:
                found.append(f"{text.get_text()!r} is wider than its box {part.name!r}")
            if y0 < part.bottom - tol or y1 > part.top + tol:
                found.append(f"{text.get_text()!r} is taller than its box {part.name!r}")
    return found


def test_a_label_too_long_for_its_box_is_found():
    from attn_course import diagrams

    fig = diagrams.encoder_layer(n=6, d=8, heads=2, d_ff=32)
    assert _overflowing_labels(fig) == []
    i18n.translate_figure(
        fig, lambda w: "相加并归一化然后再相加并归一化" if w == "add & norm" else w
    )
    assert "is wider than its box 'norm1'" in "\n".join(_overflowing_labels(fig))


@pytest.mark.book
@pytest.mark.parametrize("doc", PAGES)
def test_chinese_figures_are_translated_and_have_no_tofu(book_html, doc):
    figures = _cached_figures(doc)
    if doc.startswith("book/0"):
        assert figures, f"{doc} glued no figure through glue_figure"
    with (CATALOGS / f"{doc}.po").open("rb") as f:
        catalog = read_po(f)

    def translation(words):
        message = catalog.get(words)
        return message.string if message and message.string and not message.fuzzy else None

    problems = []
    for key, pickled in figures:
        fig = i18n.unpickle_figure(pickled)
        words = [t.get_text() for t in i18n.figure_words(fig)]
        untranslated = [w for w in words if translation(w) is None]
        i18n.translate_figure(fig, lambda w: translation(w) or w)
        *_, missing = i18n.render_png(fig)
        problems += [f"{key}: {overflow}" for overflow in _overflowing_labels(fig)]
        plt.close(fig)
        problems += [f"{key}: untranslated: {w!r}" for w in untranslated]
        problems += [f"{key}: {m}" for m in sorted(set(missing))]
    assert not problems, f"{doc}:\n" + "\n".join(problems)


def _page_images(html_path: Path) -> list[Path]:
    """The PNG files a built page shows in its content, in order."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html_path.read_text("utf-8"), "html.parser")
    article = soup.find("article") or soup
    return [
        (html_path.parent / img["src"]).resolve()
        for img in article.find_all("img")
        if img.get("src", "").endswith(".png")
    ]


@pytest.mark.book
@pytest.mark.parametrize("doc", PAGES)
def test_every_figure_with_translated_words_is_drawn_again_in_chinese(book_html, doc):
    """The zh page shows its own picture of every figure whose words the catalog
    translates: at least that many of its figures differ from the English page's (a figure
    whose labels are all symbols and kept terms, like "softmax", may stay the same)."""
    with (CATALOGS / f"{doc}.po").open("rb") as f:
        catalog = read_po(f)

    def translated(word):
        message = catalog.get(word)
        return bool(message and message.string and message.string != word)

    with_words = 0
    for _, pickled in _cached_figures(doc):
        fig = i18n.unpickle_figure(pickled)
        with_words += any(translated(t.get_text()) for t in i18n.figure_words(fig))
        plt.close(fig)
    english = _page_images(book_html / f"{doc}.html")
    chinese = _page_images(book_html / "zh" / f"{doc}.html")
    assert len(english) == len(chinese), (doc, len(english), len(chinese))
    redrawn = sum(
        en.read_bytes() != zh.read_bytes() for en, zh in zip(english, chinese, strict=True)
    )
    assert redrawn >= with_words, (
        f"{doc}: {with_words} figures have translated words, but only {redrawn} of the "
        f"zh page's {len(chinese)} figures differ from the English page's"
    )
