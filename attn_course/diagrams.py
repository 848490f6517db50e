"""Pictures of the book's models: boxes and arrows, drawn with matplotlib when the book builds.

A small vocabulary (:class:`Diagram`: ``box``, ``vector``, ``stack`` of vectors such as
h_1..h_n, ``matrix`` grid, ``arrow``, ``label``) and one function per diagram. Every
function takes the sizes of a chapter's running example (n, d, number of heads, ...), so
that the picture matches the example, and returns a :class:`DiagramFigure`: a matplotlib
Figure that also carries

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

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.path import Path

from attn_course.plotting import palette

__all__ = [
    "Diagram",
    "DiagramFigure",
    "bahdanau_step",
    "encoder_decoder",
    "encoder_layer",
    "figure",
    "multi_head_attention",
    "query_key_value",
    "scaled_dot_product_attention",
    "self_attention",
]

# Every text of every diagram is at least MIN_FONT_PT; the browser test checks that this size
# is not smaller than the page's small print at 1280 px and at 375 px.
FONT_PT = 11.0  # labels
NOTE_PT = 10.0  # shapes and notes
MIN_FONT_PT = NOTE_PT
DPI = 110  # the book's figure.dpi
MAX_POSITIONS = 12  # wider than this, no diagram stays readable at book width

BOX_H = 0.34  # inches
PAD = 0.06  # margin around everything


def _tint(color, amount: float = 0.78):
    """``color`` mixed with white: a fill light enough for black text on it."""
    r, g, b = color[:3]
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount, 1.0)


def _shade(color, amount: float = 0.35):
    """``color`` mixed with black: lines that stand out on white (viridis' green does not)."""
    r, g, b = color[:3]
    return (r * (1 - amount), g * (1 - amount), b * (1 - amount), 1.0)


# One role per side of the model, in the book's colours: fills are tints, edges and
# arrows shades of the same palette entry.
_ENCODER, _DECODER, _ATTENTION = palette(3)
ROLES = {
    "encoder": _ENCODER,
    "decoder": _DECODER,
    "attention": _shade(_ATTENTION),
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

    def _repr_png_(self) -> bytes:
        """The PNG a notebook shows (and myst-nb's glue stores), cropped like the inline
        backend's. IPython only asks the inline backend for Figures once pyplot has made
        one; a chapter may draw a diagram before its first plot."""
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


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
                facecolor=_tint(color),
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
                    facecolor=_tint(color, 0.55 if c % 2 else 0.7),
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
                        facecolor=_tint(color, 0.35) if filled[r, c] else "white",
                        edgecolor=color,
                        linewidth=0.8,
                    )
                )
        for r, text in enumerate(row_labels or []):
            self.label(left - 0.05, top - (r + 0.5) * cell, text, ha="right", size=NOTE_PT)
        for c, text in enumerate(col_labels or []):
            self.label(left + (c + 0.5) * cell, top + 0.04, text, va="bottom", size=NOTE_PT)
        return self._add_part(Part(name, x, y, cols * cell, rows * cell))

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


def figure(name: str, fig: DiagramFigure, caption: str):
    """Show a diagram in a chapter: glue it and return a MyST figure with its alt text.

    The code cell needs the metadata ``mystnb: {markdown_format: myst}`` so that the returned
    Markdown is read as MyST. (myst-nb takes alt text only from a directive or from fixed
    cell metadata; a ``{glue:figure}`` directive written by the cell is how a computed alt
    text reaches the page.) ``name`` is the glue key and the figure's label for ``{ref}``.
    """
    from IPython.display import Markdown
    from myst_nb import glue

    glue(name, fig, display=False)
    return Markdown(
        f"```{{glue:figure}} {name}\n:alt: {fig.alt_text}\n:name: {name}\n"
        f":figclass: diagram\n\n{caption.strip()}\n```"
    )


def _check_sizes(**sizes: int) -> None:
    for key, value in sizes.items():
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if key in ("n", "m") and value > MAX_POSITIONS:
            raise ValueError(
                f"{key} = {value} positions do not fit a readable diagram "
                f"(at most {MAX_POSITIONS}); draw the chapter's small example"
            )


def _seq(symbol: str, first: int, last: int) -> str:
    """'h_1 ... h_5' for the alt text (or 'h_1' when first == last)."""
    return f"{symbol}_{first}" if first == last else f"{symbol}_{first} ... {symbol}_{last}"


# --------------------------------------------------------------------------
# Chapter 1: the encoder-decoder with one C
# --------------------------------------------------------------------------


def encoder_decoder(n: int, m: int | None = None, design: str = "cho") -> DiagramFigure:
    """The encoder–decoder with one context C, in Cho et al.'s or Sutskever et al.'s wiring.

    The encoder reads x_1..x_n into h_1..h_n and C = h_n. ``design="cho"``: C goes into every
    decoder state s_i and every prediction of y_i (s_0 comes from C). ``design="sutskever"``:
    C is the decoder's first state s_0 and is not seen again.

    Shapes:
        n source positions, m target positions (default m = n, as in reversal).
    """
    m = n if m is None else m
    _check_sizes(n=n, m=m)
    if design not in ("cho", "sutskever"):
        raise ValueError(f"design must be 'cho' or 'sutskever', got {design!r}")
    d = Diagram()
    dx, w = 0.39, 0.29
    cho = design == "cho"
    # Cho: C sits above the state row, outputs higher still, so that C's arrows to every
    # s_i and every y_i pass between the boxes.
    y_in, y_state, y_C, y_out = 0.0, 0.7, 1.5, (2.25 if cho else 1.4)
    for j in range(1, n + 1):
        x = (j - 1) * dx
        d.box(f"x{j}", x, y_in, f"$x_{{{j}}}$", "encoder", w=w)
        d.box(f"h{j}", x, y_state, f"$h_{{{j}}}$", "encoder", w=w)
        d.arrow(f"x{j}", f"h{j}")
        if j > 1:
            d.arrow(f"h{j - 1}", f"h{j}")
    if cho:
        x_C = n * dx + 0.02
        d.box("C", x_C, y_C, "$C$", "attention", w=w)
        x_dec = x_C + dx + 0.06  # decoder column 1
    else:
        x_C = (n - 1) * dx + 0.47
        d.box("C", x_C, y_state, "$s_0{=}C$", "attention", w=0.58)
        x_dec = x_C + 0.47
    d.arrow(f"h{n}", "C")
    for i in range(1, m + 1):
        x = x_dec + (i - 1) * dx
        d.box(f"y_in{i}", x, y_in, f"$y_{{{i - 1}}}$", "decoder", w=w)
        d.box(f"s{i}", x, y_state, f"$s_{{{i}}}$", "decoder", w=w)
        d.box(f"y{i}", x, y_out, f"$y_{{{i}}}$", "decoder", w=w)
        d.arrow(f"y_in{i}", f"s{i}")
        d.arrow(f"s{i}", f"y{i}")
        if i > 1:
            d.arrow(f"s{i - 1}", f"s{i}")
        if cho:  # into the left part of each box, clear of the boxes in between
            d.arrow("C", f"s{i}", end=(x - w / 4, y_state + BOX_H / 2), color=ROLES["attention"])
            d.arrow("C", f"y{i}", end=(x - w / 4, y_out - BOX_H / 2), color=ROLES["attention"])
    if design == "sutskever":
        d.arrow("C", "s1")
    d.label((n - 1) * dx / 2, y_in - 0.32, "encoder", size=NOTE_PT)
    d.label(x_dec + (m - 1) * dx / 2, y_in - 0.32, "decoder", size=NOTE_PT)
    xs, hs, ss = _seq("x", 1, n), _seq("h", 1, n), _seq("s", 1, m)
    ys_in, ys_out = _seq("y", 0, m - 1), _seq("y", 1, m)
    if cho:
        how = (
            f"C goes into every decoder state {ss} and into every prediction {ys_out}; "
            f"each state also reads the previous state and the previous output {ys_in}"
        )
        who = "Cho et al.'s design"
    else:
        how = (
            f"C becomes the decoder's first state s_0 and is not seen again: each state "
            f"{ss} reads only the previous state and the previous output {ys_in}, "
            f"and predicts {ys_out}"
        )
        who = "Sutskever et al.'s design"
    return d.finish(
        f"Diagram of the encoder-decoder in {who}. The encoder reads n = {n} inputs {xs} "
        f"into states {hs}; its last state is the single context C = h_{n}. {how}."
    )


# --------------------------------------------------------------------------
# Chapter 2: one step of the attention decoder
# --------------------------------------------------------------------------


def bahdanau_step(n: int) -> DiagramFigure:
    """One step i of the Bahdanau decoder: s_{i-1} is scored against every h_j, the softmax
    turns the scores e_ij into alpha_i, C_i = sum_j alpha_ij h_j, and the recurrent cell
    makes s_i from s_{i-1}, y_{i-1} and C_i.

    Shapes:
        n encoder states h_1..h_n (n scores, n weights).
    """
    _check_sizes(n=n)
    d = Diagram()
    dx = 0.58
    x_end = (n - 1) * dx
    y_h, y_e, y_soft, y_a, y_C, y_s = 0.0, 0.85, 1.6, 2.3, 3.05, 3.8
    d.stack("h", "h", 0.0, y_h, n, dx, "encoder")
    # s_(i-1) sits low on the left, so that its arrows reach every e_ij under the row.
    d.box("s_prev", -0.72, (y_h + y_e) / 2, "$s_{i-1}$", "decoder", w=0.54)
    d.box("softmax", x_end / 2, y_soft, "softmax", "attention", w=x_end + 0.5)
    for j in range(1, n + 1):
        x = (j - 1) * dx
        d.box(f"e{j}", x, y_e, f"$e_{{i{j}}}$", "attention", w=0.48)
        d.box(f"alpha{j}", x, y_a, f"$\\alpha_{{i{j}}}$", "attention", w=0.48)
        d.arrow(f"h{j}", f"e{j}")
        d.arrow("s_prev", f"e{j}", end=(x - 0.12, y_e - BOX_H / 2), color=ROLES["decoder"])
        d.arrow(f"e{j}", "softmax", start=(x, y_e + BOX_H / 2), end=(x, y_soft - BOX_H / 2))
        d.arrow("softmax", f"alpha{j}", start=(x, y_soft + BOX_H / 2), end=(x, y_a - BOX_H / 2))
    d.box("C_i", x_end / 2, y_C, "$C_i = \\Sigma_j\\,\\alpha_{ij} h_j$", "attention", w=1.55)
    for j in range(1, n + 1):
        d.arrow(f"alpha{j}", "C_i")
    # The values of the weighted sum: the states h_j themselves, brought up beside the stack.
    x_route = x_end + 0.45
    d.arrow(
        "h",
        "C_i",
        start=(x_end + 0.07, y_h),
        via=[(x_route, y_h), (x_route, y_C)],
        color=ROLES["encoder"],
    )
    d.box("s_i", x_end / 2, y_s, "$s_i$", "decoder", w=0.56)
    d.box("y_prev", x_end / 2 + 0.9, y_s, "$y_{i-1}$", "decoder", w=0.54)
    d.arrow("C_i", "s_i")
    d.arrow("y_prev", "s_i")
    s_prev = d.parts["s_prev"]
    d.arrow(
        "s_prev", "s_i", start=(s_prev.x, s_prev.top), via=[(s_prev.x, y_s)], color=ROLES["decoder"]
    )
    hs = _seq("h", 1, n)
    es, alphas = (f"{a}_i1" if n == 1 else f"{a}_i1 ... {a}_i{n}" for a in ("e", "alpha"))
    return d.finish(
        f"Diagram of one step i of the attention decoder. The previous decoder state s_(i-1) "
        f"is scored against each of the n = {n} encoder states {hs}, giving the scores "
        f"{es}. A softmax turns the {n} scores into the {n} weights {alphas}, the context "
        f"C_i is the sum of the encoder states weighted by them, and the new state s_i is "
        f"computed from s_(i-1), the previous output y_(i-1) and C_i."
    )


# --------------------------------------------------------------------------
# Chapter 3: Query, Key, Value; scaled dot-product attention
# --------------------------------------------------------------------------


def query_key_value(n: int, weights: Sequence[float] | None = None) -> DiagramFigure:
    """One query q against n keys k_j: a weight alpha_j per key (the softmax of the scores
    rho(q, k_j)), and the output sum_j alpha_j v_j of the values.

    Args:
        n: number of key-value pairs.
        weights: optional (n,) attention weights of the chapter's example, written under
            each alpha_j (two decimals).

    Shapes:
        n keys k_1..k_n, n values v_1..v_n, weights: (n,).
    """
    _check_sizes(n=n)
    if weights is not None:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (n,):
            raise ValueError(f"weights must have shape ({n},) for n = {n}, got {weights.shape}")
    d = Diagram()
    dx = 0.66
    x_end = (n - 1) * dx
    y_k, y_a, y_v, y_out = 0.0, 0.85, 1.75, 2.55
    a_h = 0.5 if weights is not None else BOX_H
    d.box("q", -0.8, (y_k + y_a) / 2, "$q$", "decoder", w=0.44)
    for j in range(1, n + 1):
        x = (j - 1) * dx
        d.box(f"k{j}", x, y_k, f"$k_{{{j}}}$", "encoder", w=0.46)
        label = f"$\\alpha_{{{j}}}$" + ("" if weights is None else f"\n{weights[j - 1]:.2f}")
        d.box(f"alpha{j}", x, y_a, label, "attention", w=0.5, h=a_h)
        d.box(f"v{j}", x, y_v, f"$v_{{{j}}}$", "encoder", w=0.46)
        d.arrow(f"k{j}", f"alpha{j}")
        d.arrow("q", f"alpha{j}", end=(x - 0.13, y_a - a_h / 2), color=ROLES["decoder"])
        d.arrow(f"alpha{j}", f"v{j}")
    d.box("out", x_end / 2, y_out, "$\\Sigma_j\\,\\alpha_j v_j$", "attention", w=1.1)
    for j in range(1, n + 1):
        d.arrow(f"v{j}", "out")
    ks, vs, alphas = _seq("k", 1, n), _seq("v", 1, n), _seq("alpha", 1, n)
    given = (
        ""
        if weights is None
        else " The weights are " + ", ".join(f"{w:.2f}" for w in weights) + "."
    )
    return d.finish(
        f"Diagram of attention as a soft lookup. One query q is compared with each of "
        f"n = {n} keys {ks}; a softmax over the {n} scores gives one weight per key, "
        f"{alphas}.{given} Each weight scales the value of its key, {vs}, and the output is "
        f"their sum."
    )


def scaled_dot_product_attention(
    T_q: int, T_k: int, d_k: int, d_v: int, mask: bool = True
) -> DiagramFigure:
    """Scaled dot-product attention as a block diagram: MatMul, Scale, Mask (optional),
    Softmax, MatMul, with the shape of one example beside every step.

    Shapes:
        Q: (T_q, d_k), K: (T_k, d_k), V: (T_k, d_v) -> scores, weights (T_q, T_k),
        output (T_q, d_v).
    """
    _check_sizes(T_q=T_q, T_k=T_k, d_k=d_k, d_v=d_v)
    d = Diagram()
    x_c, x_V = 0.45, 1.45
    y = 0.0
    d.box("Q", 0.0, y, "$Q$", "decoder")
    d.box("K", 0.9, y, "$K$", "encoder")
    d.box("V", x_V + 0.5, y, "$V$", "encoder")
    for name, shape, numbers in (
        ("Q", "T_q, d_k", (T_q, d_k)),
        ("K", "T_k, d_k", (T_k, d_k)),
        ("V", "T_k, d_v", (T_k, d_v)),
    ):
        part = d.parts[name]
        d.label(part.x, part.bottom - 0.04, f"$({shape})$\n{numbers}", va="top", size=NOTE_PT)
    steps = [
        ("matmul1", "MatMul", f"$Q K^\\top$: {(T_q, T_k)}"),
        ("scale", "Scale $1/\\sqrt{d_k}$", f"$d_k = {d_k}$"),
    ]
    if mask:
        steps.append(("mask", "Mask (optional)", "$-\\infty$ where blocked"))
    steps += [
        ("softmax", "Softmax", "each row sums to 1"),
        ("matmul2", "MatMul", f"output: {(T_q, d_v)}"),
    ]
    below = None
    for k, (name, text, note) in enumerate(steps):
        y = 0.85 + 0.7 * k
        d.box(name, x_c, y, text, "attention", w=1.4)
        d.label(x_c + 0.75, y, note, ha="left", size=NOTE_PT)
        if below is None:
            d.arrow("Q", name)
            d.arrow("K", name)
        else:
            d.arrow(below, name)
        below = name
    last = d.parts["matmul2"]
    d.arrow("V", "matmul2", via=[(x_V + 0.5, last.y - 0.12)], end=(last.right, last.y - 0.12))
    d.box("out", x_c, last.y + 0.7, "output", "decoder", w=0.8)
    d.arrow("matmul2", "out")
    step_names = ", ".join(text.split(" $")[0] for _, text, _ in steps)
    return d.finish(
        f"Block diagram of scaled dot-product attention, bottom to top: {step_names}. "
        f"Q of shape ({T_q}, {d_k}) and K of shape ({T_k}, {d_k}) are multiplied into "
        f"{T_q} by {T_k} scores, scaled by 1 over the square root of d_k = {d_k}"
        + (", masked" if mask else "")
        + f", turned into weights by a row-wise softmax, and multiplied with V of shape "
        f"({T_k}, {d_v}) into the output of shape ({T_q}, {d_v})."
    )


# --------------------------------------------------------------------------
# Chapter 4: self-attention, causal masks, multi-head attention; the encoder layer
# --------------------------------------------------------------------------


def self_attention(n: int, causal: bool = False, out: str = "y") -> DiagramFigure:
    """Self-attention over n positions: every output attends to every input (``causal``:
    output i only to inputs j <= i), and beside it the mask as an n x n grid, row i the
    query, column j the key (``causal``: the lower triangle).

    Args:
        out: the symbol of the outputs (``y`` gives y_1..y_n).

    Shapes:
        n positions; mask (n, n).
    """
    _check_sizes(n=n)
    d = Diagram()
    dx = 0.52
    y_in, y_out = 0.0, 1.25
    for j in range(1, n + 1):
        d.box(f"x{j}", (j - 1) * dx, y_in, f"$x_{{{j}}}$", "encoder", w=0.38)
        d.box(f"{out}{j}", (j - 1) * dx, y_out, f"${out}_{{{j}}}$", "decoder", w=0.38)
    for i in range(1, n + 1):
        for j in range(1, n + 1):
            if causal and j > i:
                continue
            d.arrow(f"x{j}", f"{out}{i}", color=ROLES["attention"])
    allowed = np.tril(np.ones((n, n), dtype=bool)) if causal else np.ones((n, n), dtype=bool)
    cell = 0.24
    x_grid = (n - 1) * dx + 0.55 + 0.25 + n * cell / 2
    numbers = [str(k) for k in range(1, n + 1)]
    d.matrix(
        "mask",
        x_grid,
        (y_in + y_out) / 2 - 0.1,
        allowed,
        cell=cell,
        row_labels=numbers,
        col_labels=numbers,
    )
    grid = d.parts["mask"]
    d.label(grid.x, grid.bottom - 0.05, "key $j$", va="top", size=NOTE_PT)
    d.label(grid.left - 0.22, grid.y, "query $i$", ha="right", size=NOTE_PT, rotation=90)
    links = n * (n + 1) // 2 if causal else n * n
    if causal:
        how = (
            f"each output {out}_i is linked only to the inputs x_1 ... x_i up to its own "
            f"position: {links} links. Beside it, the causal mask as a {n} by {n} grid, rows "
            f"the queries i and columns the keys j, filled on and below the diagonal (j <= i) "
            f"and empty above it: a triangle."
        )
    else:
        how = (
            f"every output {out}_1 ... {out}_{n} is linked to every input: {links} links. "
            f"Beside it, the mask as a {n} by {n} grid, rows the queries i and columns the "
            f"keys j, filled everywhere: every position may attend to every position."
        )
    return d.finish(
        f"Diagram of {'causal ' if causal else ''}self-attention over n = {n} positions "
        f"x_1 ... x_{n}: {how}"
    )


def _segmented_bar(
    d: Diagram, name: str, x: float, y: float, symbol: str | None, heads: int, seg: float
) -> list[str]:
    """A (n, d) matrix drawn as a bar split into ``heads`` slices of d_k columns each,
    slice r in head r's colour; parts name1..name{heads} and the group ``name``."""
    colors = palette(heads) if heads > 1 else [ROLES["decoder"]]
    names = []
    left = x - heads * seg / 2
    for r in range(1, heads + 1):
        cx = left + (r - 0.5) * seg
        color = colors[r - 1]
        d.ax.add_patch(
            Rectangle(
                (cx - seg / 2, y - BOX_H / 2),
                seg,
                BOX_H,
                facecolor=_tint(color, 0.7),
                edgecolor=_shade(color, 0.2),
                linewidth=1.1,
            )
        )
        if symbol is not None:
            d.label(cx, y, f"${symbol}_{{{r}}}$")
        names.append(d._add_part(Part(f"{name}{r}", cx, y, seg, BOX_H)).name)
    d._add_part(Part(name, x, y, heads * seg, BOX_H, group=True))
    return names


def multi_head_attention(n: int, d: int, heads: int) -> DiagramFigure:
    """Multi-head attention: X is projected by W_Q, W_K, W_V; Q, K and V are split into
    ``heads`` slices of d_k = d / heads columns; each head attends on its slices; the head
    outputs are concatenated and projected by W_O.

    Shapes:
        X: (n, d); each slice and head output (n, d_k); concat and output (n, d).
    """
    _check_sizes(n=n, d=d, heads=heads)
    if d % heads:
        raise ValueError(f"d = {d} must be divisible by heads = {heads}")
    d_k = d // heads
    g = Diagram()
    seg = 0.32
    bar = heads * seg
    gap = max(bar + 0.16, 0.78)
    xs = {"Q": -gap, "K": 0.0, "V": gap}
    y_x, y_w, y_qkv, y_head, y_cat, y_o, y_out = 0.0, 0.75, 1.5, 2.4, 3.3, 4.05, 4.8
    g.box("X", 0.0, y_x, "$X$", "encoder", w=0.5)
    g.label(0.3, y_x, f"$(n, d) = {(n, d)}$", ha="left", size=NOTE_PT)
    head_w = max(0.7, 0.2 + 0.08 * len(str((n, d_k))))  # about 0.08 in per character
    head_dx = max(head_w + 0.15, gap * 2 / max(heads - 1, 1)) if heads > 1 else 0.0
    x_heads = [(r - (heads + 1) / 2) * head_dx for r in range(1, heads + 1)]
    colors = palette(heads) if heads > 1 else [ROLES["decoder"]]
    for name, x in xs.items():
        g.box(f"W_{name}", x, y_w, f"$W_{name}$", "neutral", w=0.5)
        g.arrow("X", f"W_{name}")
        _segmented_bar(g, name, x, y_qkv, name, heads, seg)
        g.arrow(f"W_{name}", name)
    for r, x in enumerate(x_heads, start=1):
        g.box(
            f"head{r}",
            x,
            y_head,
            f"head {r}\n{(n, d_k)}",
            "neutral",
            w=head_w,
            h=0.5,
            size=NOTE_PT,
        )
        head = g.parts[f"head{r}"]
        for k, name in enumerate(xs):  # top of each slice to the head's bottom edge:
            piece = g.parts[f"{name}{r}"]  # no arrow cuts a neighbouring box
            g.arrow(
                piece.name,
                head.name,
                start=(piece.x, piece.top),
                end=(head.x + (k - 1) * head.w / 4, head.bottom),
                color=_shade(colors[r - 1], 0.2),
            )
    _segmented_bar(g, "concat", 0.0, y_cat, None, heads, seg)
    g.label(-bar / 2 - 0.08, y_cat, "concat", ha="right", size=NOTE_PT)
    g.label(bar / 2 + 0.08, y_cat, f"$(n, d) = {(n, d)}$", ha="left", size=NOTE_PT)
    for r in range(1, heads + 1):
        g.arrow(f"head{r}", f"concat{r}", color=_shade(colors[r - 1], 0.2))
    g.box("W_O", 0.0, y_o, "$W_O$", "neutral", w=0.5)
    g.arrow("concat", "W_O")
    g.box("out", 0.0, y_out, "MultiHead$(X)$", "decoder", w=1.3)
    g.label(0.7, y_out, f"$(n, d) = {(n, d)}$", ha="left", size=NOTE_PT)
    g.arrow("W_O", "out")
    return g.finish(
        f"Diagram of multi-head attention with {heads} heads. The input X of shape ({n}, {d}) "
        f"is projected by W_Q, W_K and W_V into Q, K and V, each split into {heads} slices of "
        f"d_k = {d_k} columns. Head r attends with the r-th slices of Q, K and V and gives "
        f"an output of shape ({n}, {d_k}); the {heads} head outputs are concatenated back "
        f"to shape ({n}, {d}) and projected by W_O into the output of shape ({n}, {d})."
    )


def encoder_layer(n: int, d: int, heads: int, d_ff: int) -> DiagramFigure:
    """The Transformer encoder layer (post-norm, as :class:`attn_course.nn.transformer.
    EncoderLayer`): multi-head self-attention, add & norm, the position-wise feed-forward
    network, add & norm, with a residual connection around each sublayer.

    Shapes:
        X and output: (n, d); inside the feed-forward network (n, d_ff).
    """
    _check_sizes(n=n, d=d, heads=heads, d_ff=d_ff)
    if d % heads:
        raise ValueError(f"d = {d} must be divisible by heads = {heads}")
    g = Diagram()
    w = 1.9
    y_x, y_att, y_n1, y_ff, y_n2, y_out = 0.0, 0.8, 1.55, 2.35, 3.1, 3.85
    g.box("X", 0.0, y_x, "$X$", "encoder", w=0.5)
    g.label(0.3, y_x, f"$(n, d) = {(n, d)}$", ha="left", size=NOTE_PT)
    g.box(
        "attention",
        0.0,
        y_att,
        f"multi-head attention\n{heads} heads",
        "attention",
        w=w,
        h=0.5,
        size=NOTE_PT,
    )
    g.box("norm1", 0.0, y_n1, "add & norm", "neutral", w=w)
    g.box(
        "ffn",
        0.0,
        y_ff,
        f"feed-forward\n$d \\to d_{{ff}} \\to d$: {d} → {d_ff} → {d}",
        "decoder",
        w=w,
        h=0.5,
        size=NOTE_PT,
    )
    g.box("norm2", 0.0, y_n2, "add & norm", "neutral", w=w)
    g.box("out", 0.0, y_out, "output", "encoder", w=0.8)
    g.label(0.5, y_out, f"$(n, d) = {(n, d)}$", ha="left", size=NOTE_PT)
    g.arrow("X", "attention")
    g.arrow("attention", "norm1")
    g.arrow("norm1", "ffn")
    g.arrow("ffn", "norm2")
    g.arrow("norm2", "out")
    # The residual connections: around each sublayer, into its add & norm.
    x_side = -w / 2 - 0.25
    X, n1, n2 = g.parts["X"], g.parts["norm1"], g.parts["norm2"]
    g.arrow(
        "X",
        "norm1",
        start=(X.left, X.y),
        via=[(x_side, X.y), (x_side, n1.y)],
        end=(n1.left, n1.y),
        color=ROLES["encoder"],
    )
    y_tap = (n1.top + g.parts["ffn"].bottom) / 2
    g.arrow(
        "norm1",
        "norm2",
        start=(0.0, n1.top),
        via=[(0.0, y_tap), (x_side, y_tap), (x_side, n2.y)],
        end=(n2.left, n2.y),
        color=ROLES["encoder"],
    )
    return g.finish(
        f"Diagram of one Transformer encoder layer, bottom to top. The input X of shape "
        f"({n}, {d}) goes through multi-head self-attention with {heads} heads; a residual "
        f"connection adds X to its output, followed by layer normalisation (add & norm). "
        f"Then the position-wise feed-forward network, from width d = {d} to d_ff = {d_ff} "
        f"and back to {d}, again with a residual connection and add & norm, gives the "
        f"output of shape ({n}, {d})."
    )
