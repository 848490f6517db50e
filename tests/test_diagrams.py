"""attn_course.diagrams: every label fits, nothing overlaps, arrows join what they name,
sizes follow the arguments, and the alt text says what is drawn.

Geometry is checked on the rendered figure (matplotlib's Agg renderer and its text
extents), not on the numbers the drawing code used."""

import itertools
import warnings
from collections import Counter

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from attn_course import diagrams, drawing
from attn_course.plotting import curves, palette

# The chapters' running examples, and other sizes the functions must handle.
CASES = {
    "cho": lambda: diagrams.encoder_decoder(3, design="cho"),
    "cho_5_4": lambda: diagrams.encoder_decoder(5, 4, design="cho"),
    "sutskever": lambda: diagrams.encoder_decoder(3, design="sutskever"),
    "sutskever_2_6": lambda: diagrams.encoder_decoder(2, 6, design="sutskever"),
    "bahdanau": lambda: diagrams.bahdanau_step(3),
    "bahdanau_6": lambda: diagrams.bahdanau_step(6),
    "qkv": lambda: diagrams.query_key_value(3, weights=[0.245, 0.09, 0.665]),
    "qkv_5": lambda: diagrams.query_key_value(5),
    "sdpa": lambda: diagrams.scaled_dot_product_attention(T_q=4, T_k=5, d_k=8, d_v=6),
    "sdpa_nomask": lambda: diagrams.scaled_dot_product_attention(1, 12, 64, 512, mask=False),
    "self": lambda: diagrams.self_attention(3),
    "causal": lambda: diagrams.self_attention(3, causal=True),
    "causal_6": lambda: diagrams.self_attention(6, causal=True, out="z"),
    "mha": lambda: diagrams.multi_head_attention(n=6, d=8, heads=2),
    "mha_4": lambda: diagrams.multi_head_attention(n=10, d=512, heads=4),
    "mha_1": lambda: diagrams.multi_head_attention(n=3, d=4, heads=1),
    "layer": lambda: diagrams.encoder_layer(n=6, d=8, heads=2, d_ff=32),
    "decoder_layer": lambda: diagrams.decoder_layer(m=5, n=6, d=8, heads=2, d_ff=32),
    "decoder_layer_512": lambda: diagrams.decoder_layer(m=12, n=12, d=512, heads=8, d_ff=2048),
    "transformer": lambda: diagrams.transformer(layers=1, d=64, heads=4, d_ff=128, vocab=13),
    "transformer_paper": lambda: diagrams.transformer(6, 512, 8, 2048, 37000),
}


def draw(case: str):
    """Build and render a diagram with every warning an error (a missing glyph warns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = CASES[case]()
        fig.canvas.draw()
    return fig


def _to_inches(fig, bbox):
    """A display-space Bbox in the diagram's inch coordinates."""
    ax = fig.axes[0]
    (x0, y0), (x1, y1) = ax.transData.inverted().transform(bbox)
    return x0, y0, x1, y1


def _text_boxes(fig):
    renderer = fig.canvas.get_renderer()
    return [(t, t.get_window_extent(renderer)) for t in fig.axes[0].texts if t.get_text()]


@pytest.mark.parametrize("case", CASES)
def test_every_text_is_inside_the_figure_and_none_overlap(case):
    fig = draw(case)
    whole = fig.bbox
    boxes = _text_boxes(fig)
    assert boxes, "a diagram without labels"
    for text, box in boxes:
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1, f"{text.get_text()!r} cut off"
        assert whole.y0 <= box.y0 and box.y1 <= whole.y1, f"{text.get_text()!r} cut off"
    for (t1, b1), (t2, b2) in itertools.combinations(boxes, 2):
        overlap_x = min(b1.x1, b2.x1) - max(b1.x0, b2.x0)
        overlap_y = min(b1.y1, b2.y1) - max(b1.y0, b2.y0)
        assert overlap_x <= 0.5 or overlap_y <= 0.5, (
            f"labels overlap: {t1.get_text()!r} and {t2.get_text()!r}"
        )


@pytest.mark.parametrize("case", CASES)
def test_box_labels_fit_their_boxes_and_no_text_is_small(case):
    fig = draw(case)
    tol = 0.01  # inches
    for text, box in _text_boxes(fig):
        assert text.get_fontsize() >= diagrams.MIN_FONT_PT, text.get_text()
        x, y = text.get_position()
        for part in fig.parts.values():
            if part.group or not np.allclose((x, y), (part.x, part.y)):
                continue
            x0, y0, x1, y1 = _to_inches(fig, box)
            assert part.left - tol <= x0 and x1 <= part.right + tol, (
                f"{text.get_text()!r} is wider than its box {part.name!r}"
            )
            assert part.bottom - tol <= y0 and y1 <= part.top + tol, (
                f"{text.get_text()!r} is taller than its box {part.name!r}"
            )


@pytest.mark.parametrize("case", CASES)
def test_arrows_join_the_parts_they_name_and_cross_no_other_box(case):
    fig = draw(case)
    assert fig.arrows, "a diagram without arrows"
    parts = fig.parts
    for arrow in fig.arrows:
        src, dst = parts[arrow.src], parts[arrow.dst]
        # The drawn path (the patch's own, in inches) starts on src and ends on dst.
        on_screen = arrow.patch.get_transform().transform(arrow.patch.get_path().vertices)
        drawn = fig.axes[0].transData.inverted().transform(on_screen)
        tail, tip = arrow.points[0], arrow.points[-1]
        assert src.distance(*tail) < 0.01, f"{arrow.src}->{arrow.dst} does not leave {arrow.src}"
        assert dst.distance(*tip) < 0.01, f"{arrow.src}->{arrow.dst} does not reach {arrow.dst}"
        assert min(np.hypot(*(drawn - tail).T)) < 0.02, f"{arrow.src}->{arrow.dst}: path moved"
        assert min(np.hypot(*(drawn - tip).T)) < 0.02, f"{arrow.src}->{arrow.dst}: path moved"
        # Sample the route; no point may lie inside a box it does not name.
        route = np.array(arrow.points)
        samples = [
            a + (b - a) * t for a, b in itertools.pairwise(route) for t in np.linspace(0, 1, 60)
        ]
        for part in parts.values():
            if part.group or part.name in (arrow.src, arrow.dst):
                continue
            if arrow.src.startswith(part.name) or arrow.dst.startswith(part.name):
                continue  # a slice of a segmented bar
            inside = [p for p in samples if part.contains(*p, margin=0.01)]
            assert not inside, f"arrow {arrow.src}->{arrow.dst} crosses {part.name!r}"


def test_encoder_decoder_sizes_and_wiring_follow_the_arguments():
    for n, m in [(3, 3), (5, 4), (2, 6)]:
        cho = diagrams.encoder_decoder(n, m, design="cho")
        sut = diagrams.encoder_decoder(n, m, design="sutskever")
        for fig in (cho, sut):
            names = set(fig.parts)
            assert {f"h{j}" for j in range(1, n + 1)} <= names and f"h{n + 1}" not in names
            assert {f"s{i}" for i in range(1, m + 1)} <= names and f"s{m + 1}" not in names
            assert (f"h{n}", "C") in {(a.src, a.dst) for a in fig.arrows}
            assert f"n = {n} inputs x_1 ... x_{n}" in fig.alt_text
            assert f"C = h_{n}." in fig.alt_text
        from_C = sorted(a.dst for a in cho.arrows if a.src == "C")
        assert from_C == sorted(
            [f"s{i}" for i in range(1, m + 1)] + [f"y{i}" for i in range(1, m + 1)]
        )
        assert [a.dst for a in sut.arrows if a.src == "C"] == ["s1"]  # C is only s_0
        assert "s_0" in sut.alt_text and "every decoder state" in cho.alt_text


def test_bahdanau_step_scores_every_state():
    for n in (1, 3, 6):
        fig = diagrams.bahdanau_step(n)
        pairs = {(a.src, a.dst) for a in fig.arrows}
        assert {("s_prev", f"e{j}") for j in range(1, n + 1)} <= pairs
        assert {(f"h{j}", f"e{j}") for j in range(1, n + 1)} <= pairs
        assert {(f"alpha{j}", "C_i") for j in range(1, n + 1)} <= pairs
        # the values: every h_j reaches C_i, not the stack's last state alone
        assert {(f"h{j}", "C_i") for j in range(1, n + 1)} <= pairs
        assert {("C_i", "s_i"), ("s_prev", "s_i"), ("y_prev", "s_i")} <= pairs
        assert f"e{n + 1}" not in fig.parts
        assert f"n = {n} encoder states" in fig.alt_text


def test_query_key_value_writes_the_weights_it_is_given():
    fig = diagrams.query_key_value(3, weights=[0.245, 0.09, 0.665])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert [t.split("\n")[1] for t in texts if t.startswith("$\\alpha")] == ["0.24", "0.09", "0.67"]
    assert "0.24, 0.09, 0.67" in fig.alt_text
    fig = diagrams.query_key_value(4)
    assert sum(1 for a in fig.arrows if a.src == "q") == 4
    assert sum(1 for a in fig.arrows if a.dst == "out") == 4


def test_scaled_dot_product_blocks_in_order_and_shapes():
    fig = diagrams.scaled_dot_product_attention(T_q=4, T_k=5, d_k=8, d_v=6)
    chain = [a.dst for a in fig.arrows if a.src in ("K", "matmul1", "scale", "mask", "softmax")]
    assert chain == ["matmul1", "scale", "mask", "softmax", "matmul2"]
    assert ("V", "matmul2") in {(a.src, a.dst) for a in fig.arrows}
    assert "(4, 5)" in " ".join(t.get_text() for t in fig.axes[0].texts)
    no_mask = diagrams.scaled_dot_product_attention(4, 5, 8, 6, mask=False)
    assert "mask" not in no_mask.parts and "masked" not in no_mask.alt_text


def test_self_attention_links_every_pair_or_only_the_past():
    for n in (2, 3, 6):
        full = diagrams.self_attention(n)
        causal = diagrams.self_attention(n, causal=True)
        pairs = {(int(a.src[1:]), int(a.dst[1:])) for a in full.arrows}
        assert pairs == {(j, i) for i in range(1, n + 1) for j in range(1, n + 1)}
        pairs = {(int(a.src[1:]), int(a.dst[1:])) for a in causal.arrows}
        assert pairs == {(j, i) for i in range(1, n + 1) for j in range(1, i + 1)}
        # The mask grid: n x n cells, the lower triangle (with the diagonal) filled.
        cells = [p for p in causal.axes[0].patches if type(p).__name__ == "Rectangle"]
        white = [p for p in cells if p.get_facecolor() == to_rgba("white")]
        assert len(cells) == n * n and len(white) == n * (n - 1) // 2
        assert (
            f"{n} by {n} grid" in causal.alt_text and f"{n * (n + 1) // 2} links" in causal.alt_text
        )


def test_multi_head_attention_splits_into_the_given_heads():
    for heads in (1, 2, 4):
        fig = diagrams.multi_head_attention(n=6, d=8, heads=heads)
        pairs = {(a.src, a.dst) for a in fig.arrows}
        for r in range(1, heads + 1):
            assert {(f"Q{r}", f"head{r}"), (f"K{r}", f"head{r}"), (f"V{r}", f"head{r}")} <= pairs
            assert (f"head{r}", f"concat{r}") in pairs
        assert f"head{heads + 1}" not in fig.parts
        assert f"d_k = {8 // heads} columns" in fig.alt_text


def test_encoder_layer_has_a_residual_around_each_sublayer():
    fig = diagrams.encoder_layer(n=6, d=8, heads=2, d_ff=32)
    pairs = [(a.src, a.dst) for a in fig.arrows]
    assert pairs.count(("X", "norm1")) == 1 and pairs.count(("norm1", "norm2")) == 1
    assert [
        ("X", "attention"),
        ("attention", "norm1"),
        ("norm1", "ffn"),
        ("ffn", "norm2"),
        ("norm2", "out"),
    ] == [p for p in pairs if p not in (("X", "norm1"), ("norm1", "norm2"))]
    assert "d_ff = 32" in fig.alt_text and "2 heads" in fig.alt_text


def test_decoder_layer_attends_to_the_encoder_between_its_two_other_sublayers():
    fig = diagrams.decoder_layer(m=5, n=6, d=8, heads=2, d_ff=32)
    pairs = Counter((a.src, a.dst) for a in fig.arrows)
    main = ["Y", "self", "norm1", "cross", "norm2", "ffn", "norm3", "out"]
    residuals = [("Y", "norm1"), ("norm1", "norm2"), ("norm2", "norm3")]  # one per sublayer
    # the main path once, H into cross-attention only (its keys and values), the residuals
    assert pairs == Counter([*itertools.pairwise(main), ("H", "cross"), *residuals])
    for words in ("(5, 8)", "(6, 8)", "d_ff = 32", "2 heads", "keys and values from the encoder"):
        assert words in fig.alt_text, words


def test_transformer_wires_h_into_the_decoder_and_ends_in_a_softmax():
    fig = diagrams.transformer(layers=2, d=64, heads=4, d_ff=128, vocab=13)
    pairs = {(a.src, a.dst) for a in fig.arrows}
    assert {("src", "emb_enc"), ("emb_enc", "encoder"), ("encoder", "decoder")} <= pairs
    assert {("tgt", "emb_dec"), ("emb_dec", "decoder"), ("decoder", "linear")} <= pairs
    assert {("linear", "softmax"), ("softmax", "probs")} <= pairs
    assert not {p for p in pairs if p[1] in ("src", "tgt")}  # the tokens are inputs only
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sum("\n× 2\n" in t for t in texts) == 2 and "linear\n64 → 13" in texts
    for words in ("2 encoder layer(s)", "4 heads", "d_ff = 128", "the 13 words", "d = 64"):
        assert words in fig.alt_text, words


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: diagrams.encoder_decoder(0), "n must be a positive integer, got 0"),
        (lambda: diagrams.encoder_decoder(3.0), "n must be a positive integer, got 3.0"),
        (lambda: diagrams.encoder_decoder(3, design="bahdanau"), "design must be 'cho' or"),
        (lambda: diagrams.bahdanau_step(40), "n = 40 positions do not fit"),
        (lambda: diagrams.query_key_value(3, weights=[0.5, 0.5]), r"shape \(3,\) for n = 3"),
        (lambda: diagrams.multi_head_attention(6, 8, 3), "d = 8 must be divisible by heads = 3"),
        (lambda: diagrams.encoder_layer(6, 8, 2, True), "d_ff must be a positive integer"),
        (lambda: diagrams.decoder_layer(13, 6, 8, 2, 32), "m = 13 positions do not fit"),
        (lambda: diagrams.decoder_layer(5, 6, 8, 3, 32), "d = 8 must be divisible by heads = 3"),
        (lambda: diagrams.transformer(0, 64, 4, 128, 13), "layers must be a positive integer"),
    ],
)
def test_bad_sizes_are_refused_in_words(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_diagrams_and_curves_share_the_palette():
    ax = curves({"a": [1, 2], "b": [2, 1], "c": [3, 3]})
    assert [to_rgba(line.get_color()) for line in ax.get_lines()] == palette(3)
    enc, dec, _ = palette(3)
    assert drawing.ROLES["encoder"] == enc and drawing.ROLES["decoder"] == dec


def test_figure_glues_and_writes_a_myst_figure_with_the_alt_text(capsys):
    fig = diagrams.self_attention(3)
    md = diagrams.figure("fig-test", fig, caption="Every position, $n = 3$.\n")
    text = md.data
    assert text.startswith("```{glue:figure} fig-test\n")
    assert f":alt: {fig.alt_text}\n" in text and "\n" not in fig.alt_text
    assert ":name: fig-test\n" in text and ":figclass: diagram\n" in text
    assert text.endswith("\n\nEvery position, $n = 3$.\n```")


def test_a_diagram_displays_as_png_without_pyplot():
    """IPython's own PNG formatter, with no inline backend configured (as in a chapter that
    draws a diagram before its first plot), still gets the cropped PNG, drawn at twice the
    book's dpi and shown at the width its inches take at the book's dpi."""
    import io

    from IPython.core.formatters import PNGFormatter
    from PIL import Image

    fig = diagrams.self_attention(3)
    png, metadata = PNGFormatter()(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(png)) as image:
        assert round(image.info["dpi"][0]) == 2 * drawing.DPI
        width_in = image.width / (2 * drawing.DPI)
    assert abs(width_in - (fig.get_size_inches()[0] + 0.2)) < 0.1  # + savefig's 0.1 in pads
    assert set(metadata) == {"width"}  # no height: a narrow screen keeps the proportions
    assert abs(metadata["width"] - width_in * drawing.DPI) <= 1
