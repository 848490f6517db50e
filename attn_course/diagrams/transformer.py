"""The Transformer's pictures: its layers and the whole model (Chapters 4 and 5)."""

from __future__ import annotations

import itertools

from attn_course.drawing import (
    NOTE_PT,
    ROLES,
    Diagram,
    DiagramFigure,
    check_sizes,
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
    _residual(g, "X", "norm1", x_side)
    _residual(g, "norm1", "norm2", x_side, above="ffn")
    return g.finish(
        f"Diagram of one Transformer encoder layer, bottom to top. The input X of shape "
        f"({n}, {d}) goes through multi-head self-attention with {heads} heads; a residual "
        f"connection adds X to its output, followed by layer normalisation (add & norm). "
        f"Then the position-wise feed-forward network, from width d = {d} to d_ff = {d_ff} "
        f"and back to {d}, again with a residual connection and add & norm, gives the "
        f"output of shape ({n}, {d})."
    )


def _residual(g: Diagram, src: str, norm: str, x_side: float, above: str | None = None):
    """A residual connection, drawn on the left at ``x_side``, from ``src`` into the left
    side of ``norm``. It leaves ``src``'s left side, or, when the sublayer ``above`` sits
    right above ``src``, ``src``'s top, below that sublayer."""
    a, n = g.parts[src], g.parts[norm]
    if above is None:
        start, via = (a.left, a.y), [(x_side, a.y), (x_side, n.y)]
    else:
        y_tap = (a.top + g.parts[above].bottom) / 2
        start, via = (a.x, a.top), [(a.x, y_tap), (x_side, y_tap), (x_side, n.y)]
    g.arrow(src, norm, start=start, via=via, end=(n.left, n.y), color=ROLES["encoder"])


def decoder_layer(m: int, n: int, d: int, heads: int, d_ff: int) -> DiagramFigure:
    """The Transformer decoder layer (post-norm, as :class:`attn_course.nn.transformer.
    DecoderLayer`): masked multi-head self-attention over the target so far, add & norm,
    cross-attention (queries from the decoder, keys and values from the encoder's output H),
    add & norm, the feed-forward network, add & norm.

    Shapes:
        Y and output: (m, d); H: (n, d); inside the feed-forward network (m, d_ff).
    """
    check_sizes(m=m, n=n, d=d, heads=heads, d_ff=d_ff)
    if d % heads:
        raise ValueError(f"d = {d} must be divisible by heads = {heads}")
    g = Diagram()
    w = 1.9  # as the encoder layer: the whole picture fits a phone's column
    names = ("Y", "self", "norm1", "cross", "norm2", "ffn", "norm3", "out")
    ys = dict(zip(names, (0.0, 0.8, 1.55, 2.35, 3.1, 3.9, 4.65, 5.4), strict=True))
    sublayer = {"w": w, "h": 0.5, "size": NOTE_PT}  # two lines of notes each
    g.box("Y", 0.0, ys["Y"], "$Y$", "decoder", w=0.5)
    g.label(0.3, ys["Y"], f"$(m, d) = {(m, d)}$", ha="left", size=NOTE_PT)
    g.box("self", 0.0, ys["self"], f"masked self-attention\n{heads} heads", "attention", **sublayer)
    g.box("cross", 0.0, ys["cross"], f"cross-attention\n{heads} heads", "attention", **sublayer)
    g.box("ffn", 0.0, ys["ffn"], f"feed-forward\n$d_{{ff}} = {d_ff}$", "decoder", **sublayer)
    for norm in ("norm1", "norm2", "norm3"):
        g.box(norm, 0.0, ys[norm], "add & norm", "neutral", w=w)
    g.box("out", 0.0, ys["out"], "output", "decoder", w=0.8)
    g.label(0.5, ys["out"], f"$(m, d) = {(m, d)}$", ha="left", size=NOTE_PT)
    for below, above in itertools.pairwise(names):
        g.arrow(below, above)
    # The encoder's output comes in from the right: the keys and values of cross-attention.
    x_H = w / 2 + 0.45
    g.box("H", x_H, ys["cross"], "$H$", "encoder", w=0.4)
    g.label(x_H, ys["cross"] + 0.34, "$K, V$", size=NOTE_PT)
    g.label(x_H, ys["cross"] - 0.5, f"$(n, d) =$\n${(n, d)}$", size=NOTE_PT)
    g.arrow("H", "cross", color=ROLES["encoder"])
    x_side = -w / 2 - 0.25
    _residual(g, "Y", "norm1", x_side)
    _residual(g, "norm1", "norm2", x_side, above="cross")
    _residual(g, "norm2", "norm3", x_side, above="ffn")
    return g.finish(
        f"Diagram of one Transformer decoder layer, bottom to top. The input Y of shape "
        f"({m}, {d}), the target so far, goes through masked multi-head self-attention with "
        f"{heads} heads (each position sees only itself and the positions before it), then "
        f"add & norm. Cross-attention follows: its queries come from the decoder, its keys "
        f"and values from the encoder's output H of shape ({n}, {d}); then add & norm. The "
        f"feed-forward network, from width d = {d} to d_ff = {d_ff} and back, and a last "
        f"add & norm give the output of shape ({m}, {d}). A residual connection goes around "
        f"each of the three sublayers."
    )


def transformer(layers: int, d: int, heads: int, d_ff: int, vocab: int) -> DiagramFigure:
    """The whole encoder–decoder Transformer: source tokens → embedding + positions →
    ``layers`` encoder layers → H; target so far → embedding + positions → ``layers``
    decoder layers, each attending to H → a linear map to the vocabulary → softmax.

    Shapes:
        source: n tokens; target so far: m tokens; H: (n, d); output: (m, vocab)
        probabilities.
    """
    check_sizes(layers=layers, d=d, heads=heads, d_ff=d_ff, vocab=vocab)
    g = Diagram()
    # two narrow columns (notes broken into short lines): the picture fits a phone's column
    x_enc, x_dec, w = -0.8, 0.8, 1.3
    y_tok, y_emb, y_layer, y_lin, y_soft, y_out = 0.0, 0.8, 2.05, 3.3, 4.05, 4.8
    notes = {"w": w, "size": NOTE_PT}
    g.box("src", x_enc, y_tok, "source\n$x_1, \\dots, x_n$", "encoder", h=0.5, **notes)
    g.box("tgt", x_dec, y_tok, "target so far\n$y_0, \\dots, y_{m-1}$", "decoder", h=0.5, **notes)
    for side, x in (("enc", x_enc), ("dec", x_dec)):
        g.box(
            f"emb_{side}", x, y_emb, f"embedding\n+ positions\n$d = {d}$", "neutral", h=0.7, **notes
        )
    g.box(
        "encoder",
        x_enc,
        y_layer,
        f"encoder layer\n× {layers}\nself-attention\n{heads} heads\nfeed-forward",
        "encoder",
        h=1.3,
        **notes,
    )
    g.box(
        "decoder",
        x_dec,
        y_layer,
        f"decoder layer\n× {layers}\nmasked self-\nattention\ncross-attention\nfeed-forward",
        "decoder",
        h=1.3,
        **notes,
    )
    g.box("linear", x_dec, y_lin, f"linear\n{d} → {vocab}", "neutral", h=0.5, **notes)
    g.box("softmax", x_dec, y_soft, "softmax", "attention", w=w)
    g.box("probs", x_dec, y_out, "$p(y_1), \\dots, p(y_m)$", "decoder", **notes)
    for chain in (
        ("src", "emb_enc", "encoder"),
        ("tgt", "emb_dec", "decoder", "linear", "softmax", "probs"),
    ):
        for below, above in itertools.pairwise(chain):
            g.arrow(below, above)
    # H, the last encoder layer's output, reaches the cross-attention of every decoder layer.
    enc, dec = g.parts["encoder"], g.parts["decoder"]
    g.arrow(
        "encoder",
        "decoder",
        start=(enc.right, enc.y),
        end=(dec.left, dec.y),
        color=ROLES["encoder"],
    )
    g.label((enc.right + dec.left) / 2, enc.y + 0.17, "$H$", size=NOTE_PT)
    return g.finish(
        f"Diagram of the whole encoder-decoder Transformer. Left, the encoder: the source "
        f"tokens x_1 ... x_n are embedded, their positions added (width d = {d}), and "
        f"{layers} encoder layer(s) of self-attention with {heads} heads and a feed-forward "
        f"network of width d_ff = {d_ff} give H. Right, the decoder: the target so far "
        f"y_0 ... y_(m-1) is embedded with its positions and goes through {layers} decoder "
        f"layer(s) of masked self-attention, cross-attention to H and a feed-forward network; "
        f"a linear map to the {vocab} words of the vocabulary and a softmax give the "
        f"probabilities of the next tokens y_1 ... y_m."
    )
