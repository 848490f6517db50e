"""Figures in every language of the book from one execution of its chapters.

A chapter draws each figure once, with English words, and glues it with
:func:`glue_figure`: the rendered figure under ``name`` (the English edition shows it)
and the pickled Figure under ``name + PICKLE_SUFFIX``. A translated edition's Sphinx
build (``_ext/course_i18n.py``) unpickles it, puts the translations of its words in
with :func:`translate_figure` and renders it again with :func:`render_png`. So the
chapter is not executed twice, and a changed translation shows in the next build
(the execution cache keys on the code, not on the catalogs).

The words of a figure are the texts of its titles, axis and colour-bar labels,
legends and annotations: every text artist but the tick labels (data: tokens,
numbers), that has a letter outside ``$...$`` math. Their translations sit in the
page's gettext catalog (``locales/<language>/LC_MESSAGES/book/<page>.po``), next to
the page's prose; ``make translations`` extracts them.
"""

import base64
import logging
import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path

from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.text import Text

__all__ = [
    "CJK_FONT",
    "PICKLE_SUFFIX",
    "figure_words",
    "glue_figure",
    "glue_word",
    "has_words",
    "glued_words",
    "render_png",
    "translate_figure",
    "unpickle_figure",
]

PICKLE_SUFFIX = "__figure"
WORDS_SUFFIX = "__words"

# Debian's fonts-wqy-microhei (scripts/system-deps.sh installs it). It has Latin glyphs
# too, so a label mixing Chinese and $math$ renders in one font: mathtext looks up the
# text outside $...$ in the label's first family only, without fallback.
CJK_FONT_FILE = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
CJK_FONT = "WenQuanYi Micro Hei"

_MATH = re.compile(r"(?<!\\)\$.*?(?<!\\)\$")
_LETTER = re.compile(r"[^\W\d_]")


def glue_figure(name: str, fig: Figure) -> None:
    """Glue ``fig`` for a ``{glue:figure}`` directive, not shown a second time, and its
    pickle for the translated editions."""
    from myst_nb import glue

    glue(name, fig, display=False)
    try:
        data = pickle.dumps(fig)
    except Exception as err:  # a lambda formatter, an open file, ...
        raise TypeError(
            f"figure {name!r} cannot be pickled, so the translated editions cannot redraw it: {err}"
        ) from err
    glue(name + PICKLE_SUFFIX, base64.b64encode(data).decode("ascii"), display=False)


def glue_word(name: str, word: str, choices) -> None:
    """Glue ``word``, one of ``choices``, for a ``{glue:md}`` role: a comparison the run
    decides ("lower" or "higher"). Every choice is glued too (under ``name +
    WORDS_SUFFIX``), so the page's catalog translates each, whichever this run picked."""
    from IPython.display import Markdown
    from myst_nb import glue

    choices = [str(c) for c in choices]
    if word not in choices:
        raise ValueError(f"{name}: {word!r} is not one of its choices {choices}")
    glue(name, Markdown(word), display=False)
    glue(name + WORDS_SUFFIX, "\n".join(choices), display=False)


def glued_words(text: str) -> list[str]:
    """The choices :func:`glue_word` glued, from their ``text/plain`` form."""
    return text.strip("'\"").replace("\\n", "\n").split("\n")


def unpickle_figure(text: str) -> Figure:
    """The Figure from the glued text (the ``text/plain`` form of the base64 string)."""
    return pickle.loads(base64.b64decode(text.strip("'\"")))


def has_words(text: str) -> bool:
    """Whether ``text`` holds a word (a letter outside ``$...$`` math)."""
    return bool(_LETTER.search(_MATH.sub("", text)))


def figure_words(fig: Figure) -> list[Text]:
    """The text artists of ``fig`` that hold words to translate, in drawing order."""
    ticks = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                ticks.update((id(tick.label1), id(tick.label2)))
    return [t for t in fig.findobj(Text) if id(t) not in ticks and has_words(t.get_text())]


def _cjk_font() -> str:
    if not CJK_FONT_FILE.is_file():
        raise FileNotFoundError(
            f"the CJK font {CJK_FONT_FILE} is missing: run `bash scripts/system-deps.sh "
            "--fonts` (Debian's fonts-wqy-microhei)"
        )
    if CJK_FONT not in {f.name for f in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(str(CJK_FONT_FILE))
    return CJK_FONT


def translate_figure(fig: Figure, gettext: Callable[[str], str]) -> list[str]:
    """Replace the words of ``fig`` by ``gettext(words)``, drawn in the CJK font.

    Returns the words ``gettext`` returned unchanged: untranslated ones, or ones whose
    translation is the English (``GRU``, ``d = 32``)."""
    font = _cjk_font()
    untranslated = []
    for t in figure_words(fig):
        english = t.get_text()
        translated = gettext(english)
        if translated == english:
            untranslated.append(english)
            continue
        t.set_text(translated)
        t.set_fontfamily([font])
    return untranslated


class _GlyphWarnings(logging.Handler):
    """Collects mathtext's "does not have a glyph" messages (logged, not warned)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def render_png(fig: Figure) -> tuple[bytes, dict, list[str]]:
    """The PNG of ``fig`` and its display metadata as the English edition renders it
    (:func:`attn_course.plotting.screen_png`), and every missing-glyph message matplotlib
    gave while drawing it."""
    from attn_course.plotting import screen_png

    handler = _GlyphWarnings()
    logger = logging.getLogger("matplotlib")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            png, metadata = screen_png(fig)
    finally:
        logger.removeHandler(handler)
    missing = [str(w.message) for w in caught if "glyph" in str(w.message).lower()]
    missing += [m for m in handler.messages if "glyph" in m.lower()]
    return png, metadata, missing
