"""Pictures of the book's models, one function per diagram, drawn when the book builds.

Every function takes the sizes of a chapter's running example (n, d, number of heads, ...),
so that the picture matches the example, and returns a
:class:`attn_course.drawing.DiagramFigure` whose alt text is written from the same sizes.
:func:`figure` shows one in a chapter. The vocabulary they are drawn with (boxes, vectors,
arrows, the colours of each role) is :mod:`attn_course.drawing`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from attn_course.drawing import (
    BOX_H,
    NOTE_PT,
    ROLES,
    Diagram,
    DiagramFigure,
    check_sizes,
    series,
    shade,
)
from attn_course.plotting import palette

__all__ = [
    "MIN_FONT_PT",
    "bahdanau_step",
    "encoder_decoder",
    "encoder_layer",
    "figure",
    "multi_head_attention",
    "query_key_value",
    "scaled_dot_product_attention",
    "self_attention",
]

# Every text of every picture below is at least MIN_FONT_PT; the browser test checks that
# this size is not smaller than the page's small print at 1280 px and at 375 px.
MIN_FONT_PT = NOTE_PT


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


# Chapter 1: the encoder-decoder with one C


def encoder_decoder(n: int, m: int | None = None, design: str = "cho") -> DiagramFigure:
    """The encoder–decoder with one context C, in Cho et al.'s or Sutskever et al.'s wiring.

    The encoder reads x_1..x_n into h_1..h_n and C = h_n. ``design="cho"``: C goes into every
    decoder state s_i and every prediction of y_i (s_0 comes from C). ``design="sutskever"``:
    C is the decoder's first state s_0 and is not seen again.

    Shapes:
        n source positions, m target positions (default m = n, as in reversal).
    """
    m = n if m is None else m
    check_sizes(n=n, m=m)
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
    xs, hs, ss = series("x", 1, n), series("h", 1, n), series("s", 1, m)
    ys_in, ys_out = series("y", 0, m - 1), series("y", 1, m)
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


# Chapter 2: one step of the attention decoder


def bahdanau_step(n: int) -> DiagramFigure:
    """One step i of the Bahdanau decoder: s_{i-1} is scored against every h_j, the softmax
    turns the scores e_ij into alpha_i, C_i = sum_j alpha_ij h_j, and the recurrent cell
    makes s_i from s_{i-1}, y_{i-1} and C_i.

    Shapes:
        n encoder states h_1..h_n (n scores, n weights).
    """
    check_sizes(n=n)
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
    # The values of the weighted sum: every state h_j, gathered on a line under the stack
    # and brought up beside it.
    x_route, y_bus = x_end + 0.45, y_h - BOX_H / 2 - 0.18
    for j in range(1, n + 1):
        x = (j - 1) * dx
        d.arrow(
            f"h{j}",
            "C_i",
            start=(x, y_h - BOX_H / 2),
            via=[(x, y_bus), (x_route, y_bus), (x_route, y_C)],
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
    hs = series("h", 1, n)
    es, alphas = (f"{a}_i1" if n == 1 else f"{a}_i1 ... {a}_i{n}" for a in ("e", "alpha"))
    return d.finish(
        f"Diagram of one step i of the attention decoder. The previous decoder state s_(i-1) "
        f"is scored against each of the n = {n} encoder states {hs}, giving the scores "
        f"{es}. A softmax turns the {n} scores into the {n} weights {alphas}, the context "
        f"C_i is the sum of the encoder states weighted by them, and the new state s_i is "
        f"computed from s_(i-1), the previous output y_(i-1) and C_i."
    )


# Chapter 3: Query, Key, Value; scaled dot-product attention


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
    check_sizes(n=n)
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
    ks, vs, alphas = series("k", 1, n), series("v", 1, n), series("alpha", 1, n)
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
    check_sizes(T_q=T_q, T_k=T_k, d_k=d_k, d_v=d_v)
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


# Chapter 4: self-attention, causal masks, multi-head attention; the encoder layer


def self_attention(n: int, causal: bool = False, out: str = "y") -> DiagramFigure:
    """Self-attention over n positions: every output attends to every input (``causal``:
    output i only to inputs j <= i), and beside it the mask as an n x n grid, row i the
    query, column j the key (``causal``: the lower triangle).

    Args:
        out: the symbol of the outputs (``y`` gives y_1..y_n).

    Shapes:
        n positions; mask (n, n).
    """
    check_sizes(n=n)
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


def multi_head_attention(n: int, d: int, heads: int) -> DiagramFigure:
    """Multi-head attention: X is projected by W_Q, W_K, W_V; Q, K and V are split into
    ``heads`` slices of d_k = d / heads columns; each head attends on its slices; the head
    outputs are concatenated and projected by W_O.

    Shapes:
        X: (n, d); each slice and head output (n, d_k); concat and output (n, d).
    """
    check_sizes(n=n, d=d, heads=heads)
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
        g.segmented_bar(name, x, y_qkv, name, heads, seg)
        g.arrow(f"W_{name}", name)
    for r, x in enumerate(x_heads, start=1):
        g.box(
            f"head{r}", x, y_head, f"head {r}\n{(n, d_k)}", "neutral", w=head_w, h=0.5, size=NOTE_PT
        )
        head = g.parts[f"head{r}"]
        for k, name in enumerate(xs):  # top of each slice to the head's bottom edge:
            piece = g.parts[f"{name}{r}"]  # no arrow cuts a neighbouring box
            g.arrow(
                piece.name,
                head.name,
                start=(piece.x, piece.top),
                end=(head.x + (k - 1) * head.w / 4, head.bottom),
                color=shade(colors[r - 1], 0.2),
            )
    g.segmented_bar("concat", 0.0, y_cat, None, heads, seg)
    g.label(-bar / 2 - 0.08, y_cat, "concat", ha="right", size=NOTE_PT)
    g.label(bar / 2 + 0.08, y_cat, f"$(n, d) = {(n, d)}$", ha="left", size=NOTE_PT)
    for r in range(1, heads + 1):
        g.arrow(f"head{r}", f"concat{r}", color=shade(colors[r - 1], 0.2))
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
    check_sizes(n=n, d=d, heads=heads, d_ff=d_ff)
    if d % heads:
        raise ValueError(f"d = {d} must be divisible by heads = {heads}")
    g = Diagram()
    w = 1.9
    y_x, y_att, y_n1, y_ff, y_n2, y_out = 0.0, 0.8, 1.55, 2.35, 3.1, 3.85
    g.box("X", 0.0, y_x, "$X$", "encoder", w=0.5)
    g.label(0.3, y_x, f"$(n, d) = {(n, d)}$", ha="left", size=NOTE_PT)
    sublayer = {"w": w, "h": 0.5, "size": NOTE_PT}  # two lines of notes each
    g.box("attention", 0.0, y_att, f"multi-head attention\n{heads} heads", "attention", **sublayer)
    g.box("norm1", 0.0, y_n1, "add & norm", "neutral", w=w)
    ffn = f"feed-forward\n$d \\to d_{{ff}} \\to d$: {d} → {d_ff} → {d}"
    g.box("ffn", 0.0, y_ff, ffn, "decoder", **sublayer)
    g.box("norm2", 0.0, y_n2, "add & norm", "neutral", w=w)
    g.box("out", 0.0, y_out, "output", "encoder", w=0.8)
    g.label(0.5, y_out, f"$(n, d) = {(n, d)}$", ha="left", size=NOTE_PT)
    for below, above in itertools.pairwise(("X", "attention", "norm1", "ffn", "norm2", "out")):
        g.arrow(below, above)
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
