"""The recurrent models' pictures (Chapters 1 and 2)."""

from __future__ import annotations

from attn_course.drawing import (
    BOX_H,
    NOTE_PT,
    ROLES,
    Diagram,
    DiagramFigure,
    check_sizes,
    series,
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
