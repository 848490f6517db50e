"""Pictures of the book's models, one function per diagram, drawn when the book builds.

Every function takes the sizes of a chapter's running example (n, d, number of heads, ...),
so that the picture matches the example, and returns a
:class:`attn_course.drawing.DiagramFigure` whose alt text is written from the same sizes.
:func:`figure` shows one in a chapter. The vocabulary they are drawn with (boxes, vectors,
arrows, the colours of each role) is :mod:`attn_course.drawing`.

One module per family of models, in the book's order: ``recurrent`` (Chapters 1 and 2),
``attention`` (Chapters 3 and 4), ``transformer`` (Chapters 4 and 5).
"""

from __future__ import annotations

from attn_course.diagrams.attention import (
    multi_head_attention,
    query_key_value,
    scaled_dot_product_attention,
    self_attention,
)
from attn_course.diagrams.recurrent import bahdanau_step, encoder_decoder
from attn_course.diagrams.transformer import decoder_layer, encoder_layer, transformer
from attn_course.drawing import NOTE_PT, DiagramFigure

__all__ = [
    "MIN_FONT_PT",
    "bahdanau_step",
    "decoder_layer",
    "encoder_decoder",
    "encoder_layer",
    "figure",
    "multi_head_attention",
    "query_key_value",
    "scaled_dot_product_attention",
    "self_attention",
    "transformer",
]

# Every text of every picture is at least MIN_FONT_PT; the browser test checks that this
# size is not smaller than the page's small print at 1280 px and at 375 px.
MIN_FONT_PT = NOTE_PT


def figure(name: str, fig: DiagramFigure, caption: str):
    """Show a diagram in a chapter: glue it (as :func:`attn_course.i18n.glue_figure` does, so
    each edition draws it in its own language) and return a MyST figure with its alt text.

    The code cell needs the metadata ``mystnb: {markdown_format: myst}`` so that the returned
    Markdown is read as MyST. (myst-nb takes alt text only from a directive or from fixed
    cell metadata; a ``{glue:figure}`` directive written by the cell is how a computed alt
    text reaches the page.) ``name`` is the glue key and the figure's label for ``{ref}``.
    """
    from IPython.display import Markdown

    from attn_course.i18n import glue_figure

    glue_figure(name, fig)  # with its pickle: a translated edition redraws it in its words
    return Markdown(
        f"```{{glue:figure}} {name}\n:alt: {fig.alt_text}\n:name: {name}\n"
        f":figclass: diagram\n\n{caption.strip()}\n```"
    )
