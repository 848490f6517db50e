"""The drawing toolkit of the book's diagrams: boxes and arrows in matplotlib, in inches.

A small vocabulary (:class:`Diagram`: ``box``, ``vector``, ``stack`` of vectors such as
h_1..h_n, ``matrix`` grid, ``segmented_bar``, ``arrow``, ``label``) from which
:mod:`attn_course.diagrams` draws one picture per model. :meth:`Diagram.finish` returns a
:class:`DiagramFigure`: a matplotlib Figure that also carries

- ``alt_text``: the picture in words, written from the same sizes it was drawn from;
- ``parts``: every named box, as a rectangle in inches (``h1``, ``C``, ``s_prev``, ...);
- ``arrows``: every arrow, with the names of the two parts it connects.

Drawing coordinates are inches (one data unit is one inch of figure), so font sizes in
points and box sizes in inches are chosen together: a label is never scaled down to fit.
The colours are the book's (:func:`attn_course.plotting.palette`): encoder side, decoder or
query side, attention. No torch import; a Figure is made directly (not through pyplot),
so nothing is shown twice in a notebook and nothing needs closing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.path import Path

from attn_course.plotting import DPI, palette, screen_png

__all__ = [
    "BOX_H",
    "DPI",
    "FONT_PT",
    "MAX_POSITIONS",
    "NOTE_PT",
    "ROLES",
    "Arrow",
    "Diagram",
    "DiagramFigure",
    "Part",
    "check_sizes",
    "series",
    "shade",
    "tint",
]

FONT_PT = 11.0  # labels
NOTE_PT = 10.0  # shapes and notes
MAX_POSITIONS = 12  # wider than this, no diagram stays readable at book width

BOX_H = 0.34  # inches
PAD = 0.06  # margin around everything


def tint(color, amount: float = 0.78):
    """``color`` mixed with white: a fill light enough for black text on it."""
    r, g, b = color[:3]
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount, 1.0)


def shade(color, amount: float = 0.35):
    """``color`` mixed with black: lines that stand out on white (viridis' green does not)."""
    r, g, b = color[:3]
    return (r * (1 - amount), g * (1 - amount), b * (1 - amount), 1.0)


# One role per side of the model, in the book's colours: fills are tints, edges and
# arrows shades of the same palette entry.
_ENCODER, _DECODER, _ATTENTION = palette(3)
ROLES = {
    "encoder": _ENCODER,
    "decoder": _DECODER,
    "attention": shade(_ATTENTION),
    "neutral": (0.35, 0.35, 0.35, 1.0),
}


@dataclass(frozen=True)
class Part:
    """A named rectangle of a diagram, in inches: centre (x, y), width w, height h."""

    name: str
    x: float
    y: float
    w: float
    h: float
    group: bool = False  # encloses other parts (a stack); arrows may start inside it

    @property
    def left(self) -> float:
        return self.x - self.w / 2

    @property
    def right(self) -> float:
        return self.x + self.w / 2

    @property
    def bottom(self) -> float:
        return self.y - self.h / 2

    @property
    def top(self) -> float:
        return self.y + self.h / 2

    def contains(self, px: float, py: float, margin: float = 0.0) -> bool:
        return (
            self.left + margin < px < self.right - margin
            and self.bottom + margin < py < self.top - margin
        )

    def distance(self, px: float, py: float) -> float:
        """Distance from (px, py) to the rectangle (0 inside)."""
        dx = max(self.left - px, 0.0, px - self.right)
        dy = max(self.bottom - py, 0.0, py - self.top)
        return float(np.hypot(dx, dy))

    def exit_point(self, tx: float, ty: float) -> tuple[float, float]:
        """Where the ray from the centre towards (tx, ty) leaves the rectangle."""
        dx, dy = tx - self.x, ty - self.y
        scale = min(
            (self.w / 2) / abs(dx) if dx else np.inf,
            (self.h / 2) / abs(dy) if dy else np.inf,
        )
        return self.x + dx * scale, self.y + dy * scale


@dataclass(frozen=True)
class Arrow:
    """An arrow from part ``src`` to part ``dst``; ``points`` is its route in inches."""

    src: str
    dst: str
    points: tuple[tuple[float, float], ...]
    patch: FancyArrowPatch


class DiagramFigure(Figure):
    """A matplotlib Figure that knows its description, its parts and its arrows."""

    alt_text: str = ""
    parts: dict[str, Part]
    arrows: list[Arrow]

    def _repr_png_(self) -> tuple[bytes, dict]:
        """The PNG a notebook shows (and myst-nb's glue stores), as every figure of the
        book: :func:`attn_course.plotting.screen_png`. IPython only asks the inline backend
        for Figures once pyplot has made one; a chapter may draw a diagram before its first
        plot."""
        return screen_png(self)


class Diagram:
    """Boxes and arrows on a canvas measured in inches; :meth:`finish` sizes the figure.

    Parts get names so that arrows can name what they connect (and tests can check it).
    """

    def __init__(self):
        self.fig = DiagramFigure(dpi=DPI)
        FigureCanvasAgg(self.fig)  # a canvas that can measure text (also renders the PNG)
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_axis_off()
        self.parts: dict[str, Part] = {}
        self.arrows: list[Arrow] = []

    def _add_part(self, part: Part) -> Part:
        if part.name in self.parts:
            raise ValueError(f"a diagram part named {part.name!r} exists already")
        self.parts[part.name] = part
        return part

    def box(
        self,
        name: str,
        x: float,
        y: float,
        label: str,
        role: str = "neutral",
        w: float = 0.42,
        h: float = BOX_H,
        size: float = FONT_PT,
    ) -> Part:
        """A rounded box centred at (x, y) with ``label`` inside."""
        color = ROLES[role]
        self.ax.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - h / 2),
                w,
                h,
                boxstyle="round,pad=0,rounding_size=0.05",
                facecolor=tint(color),
                edgecolor=color,
                linewidth=1.2,
            )
        )
        self.label(x, y, label, size=size)
        return self._add_part(Part(name, x, y, w, h))

    def vector(
        self,
        name: str,
        x: float,
        y: float,
        label: str,
        role: str = "encoder",
        cells: int = 3,
        cell: float = 0.14,
        label_below: bool = True,
    ) -> Part:
        """A vector as a column of ``cells`` squares, its label below (or above) it."""
        color = ROLES[role]
        h = cells * cell
        for c in range(cells):
            self.ax.add_patch(
                Rectangle(
                    (x - cell / 2, y - h / 2 + c * cell),
                    cell,
                    cell,
                    facecolor=tint(color, 0.55 if c % 2 else 0.7),
                    edgecolor=color,
                    linewidth=1.0,
                )
            )
        offset = h / 2 + 0.04
        if label_below:
            self.label(x, y - offset, label, va="top")
        else:
            self.label(x, y + offset, label, va="bottom")
        return self._add_part(Part(name, x, y, cell, h))

    def stack(
        self,
        prefix: str,
        symbol: str,
        x0: float,
        y: float,
        n: int,
        dx: float,
        role: str = "encoder",
        cells: int = 3,
        label_below: bool = True,
    ) -> list[str]:
        """n vectors ``symbol_1 .. symbol_n`` side by side from x0, named prefix1..prefixn.

        Also registers the group ``prefix`` around them (for arrows from the whole stack)."""
        names = []
        for j in range(1, n + 1):
            name = f"{prefix}{j}"
            self.vector(
                name,
                x0 + (j - 1) * dx,
                y,
                f"${symbol}_{{{j}}}$",
                role,
                cells,
                label_below=label_below,
            )
            names.append(name)
        first, last = self.parts[names[0]], self.parts[names[-1]]
        self._add_part(
            Part(prefix, (first.x + last.x) / 2, y, last.right - first.left, first.h, group=True)
        )
        return names

    def matrix(
        self,
        name: str,
        x: float,
        y: float,
        filled: np.ndarray,
        role: str = "attention",
        cell: float = 0.24,
        row_labels: Sequence[str] | None = None,
        col_labels: Sequence[str] | None = None,
    ) -> Part:
        """A grid of cells centred at (x, y); ``filled[r, c]`` colours cell (r, c), row 0 on top.

        Row labels go to the left, column labels above."""
        filled = np.asarray(filled, dtype=bool)
        rows, cols = filled.shape
        color = ROLES[role]
        left, top = x - cols * cell / 2, y + rows * cell / 2
        for r in range(rows):
            for c in range(cols):
                self.ax.add_patch(
                    Rectangle(
                        (left + c * cell, top - (r + 1) * cell),
                        cell,
                        cell,
                        facecolor=tint(color, 0.35) if filled[r, c] else "white",
                        edgecolor=color,
                        linewidth=0.8,
                    )
                )
        for r, text in enumerate(row_labels or []):
            self.label(left - 0.05, top - (r + 0.5) * cell, text, ha="right", size=NOTE_PT)
        for c, text in enumerate(col_labels or []):
            self.label(left + (c + 0.5) * cell, top + 0.04, text, va="bottom", size=NOTE_PT)
        return self._add_part(Part(name, x, y, cols * cell, rows * cell))

    def segmented_bar(
        self, name: str, x: float, y: float, symbol: str | None, heads: int, seg: float
    ) -> list[str]:
        """A (n, d) matrix drawn as a bar split into ``heads`` slices of d_k columns each,
        slice r in head r's colour; parts name1..name{heads} and the group ``name``."""
        colors = palette(heads) if heads > 1 else [ROLES["decoder"]]
        names = []
        left = x - heads * seg / 2
        for r in range(1, heads + 1):
            cx = left + (r - 0.5) * seg
            color = colors[r - 1]
            self.ax.add_patch(
                Rectangle(
                    (cx - seg / 2, y - BOX_H / 2),
                    seg,
                    BOX_H,
                    facecolor=tint(color, 0.7),
                    edgecolor=shade(color, 0.2),
                    linewidth=1.1,
                )
            )
            if symbol is not None:
                self.label(cx, y, f"${symbol}_{{{r}}}$")
            names.append(self._add_part(Part(f"{name}{r}", cx, y, seg, BOX_H)).name)
        self._add_part(Part(name, x, y, heads * seg, BOX_H, group=True))
        return names

    def label(
        self,
        x: float,
        y: float,
        text: str,
        size: float = FONT_PT,
        ha: str = "center",
        va: str = "center",
        color="black",
        **kwargs,
    ):
        """Text at (x, y) in inches."""
        return self.ax.text(x, y, text, fontsize=size, ha=ha, va=va, color=color, **kwargs)

    def arrow(
        self,
        src: str,
        dst: str,
        via: Sequence[tuple[float, float]] = (),
        start: tuple[float, float] | None = None,
        end: tuple[float, float] | None = None,
        color="black",
        linestyle: str = "-",
    ) -> Arrow:
        """An arrow from part ``src`` to part ``dst``, through the points ``via``.

        It starts where the line towards its first point leaves ``src`` and ends where the
        line from its last point enters ``dst``; ``start``/``end`` pin those points instead
        (points on the parts' edges)."""
        a, b = self.parts[src], self.parts[dst]
        first = via[0] if via else (end or (b.x, b.y))
        last = via[-1] if via else (start or (a.x, a.y))
        p0 = start or a.exit_point(*first)
        p1 = end or b.exit_point(*last)
        points = (p0, *via, p1)
        path = Path(points, [Path.MOVETO] + [Path.LINETO] * (len(points) - 1))
        patch = FancyArrowPatch(
            path=path,
            arrowstyle="-|>",
            mutation_scale=9,
            linewidth=1.1,
            color=color,
            linestyle=linestyle,
            zorder=1,
        )
        self.ax.add_patch(patch)
        arrow = Arrow(src, dst, tuple(points), patch)
        self.arrows.append(arrow)
        return arrow

    def finish(self, alt_text: str) -> DiagramFigure:
        """Size the figure to everything drawn (parts and texts) and return it."""
        fig, ax = self.fig, self.ax
        route = [pt for arrow in self.arrows for pt in arrow.points]
        x0 = min([p.left for p in self.parts.values()] + [x for x, _ in route])
        x1 = max([p.right for p in self.parts.values()] + [x for x, _ in route])
        y0 = min([p.bottom for p in self.parts.values()] + [y for _, y in route])
        y1 = max([p.top for p in self.parts.values()] + [y for _, y in route])
        for _ in range(2):  # size, measure the texts, size again around them
            fig.set_size_inches(x1 - x0 + 2 * PAD, y1 - y0 + 2 * PAD)
            ax.set_xlim(x0 - PAD, x1 + PAD)
            ax.set_ylim(y0 - PAD, y1 + PAD)
            renderer = fig.canvas.get_renderer()
            to_inches = ax.transData.inverted()
            for text in ax.texts:
                (tx0, ty0), (tx1, ty1) = to_inches.transform(text.get_window_extent(renderer))
                x0, x1 = min(x0, tx0), max(x1, tx1)
                y0, y1 = min(y0, ty0), max(y1, ty1)
        fig.alt_text = " ".join(alt_text.split())
        fig.parts = dict(self.parts)
        fig.arrows = list(self.arrows)
        return fig


def check_sizes(**sizes: int) -> None:
    """Every size a positive integer; a number of positions (n, m) at most MAX_POSITIONS."""
    for key, value in sizes.items():
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if key in ("n", "m") and value > MAX_POSITIONS:
            raise ValueError(
                f"{key} = {value} positions do not fit a readable diagram "
                f"(at most {MAX_POSITIONS}); draw the chapter's small example"
            )


def series(symbol: str, first: int, last: int) -> str:
    """'h_1 ... h_5' for the alt text (or 'h_1' when first == last)."""
    return f"{symbol}_{first}" if first == last else f"{symbol}_{first} ... {symbol}_{last}"
