"""Attention's pictures: query, key, value; self-attention; multi-head (Chapters 3 and 4)."""

from __future__ import annotations

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
