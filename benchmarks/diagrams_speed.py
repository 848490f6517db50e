"""Benchmark: drawing the book's diagrams against drawing one of its heatmaps.

    python benchmarks/diagrams_speed.py

Each diagram is built and rendered to PNG as the book does (what a chapter pays per
diagram), side by side in one run with an 11 x 11 heatmap (too large to be annotated) of
``attn_course.plotting`` rendered the same way (the chapters draw several). Prints the
seconds per figure and the ratio to the heatmap. Not a test: the numbers depend on the
machine. Target: every diagram within a small factor of the heatmap, all of them together
a few seconds of the book's build.

The first call of each is not timed: it loads fonts and fills matplotlib's caches, which a
chapter pays once for all its figures.
"""

import io
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from attn_course import diagrams  # noqa: E402
from attn_course.plotting import heatmap  # noqa: E402

# The diagrams with the sizes the chapters draw them at.
BOOK = {
    "encoder_decoder (Cho)": lambda: diagrams.encoder_decoder(3, design="cho"),
    "encoder_decoder (Sutskever)": lambda: diagrams.encoder_decoder(3, design="sutskever"),
    "bahdanau_step": lambda: diagrams.bahdanau_step(3),
    "query_key_value": lambda: diagrams.query_key_value(3, weights=[0.24, 0.09, 0.67]),
    "scaled_dot_product_attention": lambda: diagrams.scaled_dot_product_attention(4, 5, 8, 6),
    "self_attention": lambda: diagrams.self_attention(3),
    "self_attention (causal)": lambda: diagrams.self_attention(3, causal=True),
    "multi_head_attention": lambda: diagrams.multi_head_attention(6, 8, 2),
    "encoder_layer": lambda: diagrams.encoder_layer(6, 8, 2, 32),
}


def render(make) -> float:
    """Seconds to build a figure and write its PNG as the notebook display does."""
    start = time.perf_counter()
    fig = make()
    fig.savefig(io.BytesIO(), format="png", bbox_inches="tight")
    return time.perf_counter() - start


def reference():
    weights = np.random.default_rng(0).dirichlet(np.ones(11), size=11)
    return heatmap(weights, x_labels=list("abcdefghijk"), y_labels=list("abcdefghijk")).figure


def main(repeats: int = 3) -> None:
    render(reference)
    for make in BOOK.values():
        render(make)
    base = min(render(reference) for _ in range(repeats))
    print(f"{'heatmap 11 x 11 (reference)':<32} {base:6.3f} s")
    total = 0.0
    for name, make in BOOK.items():
        seconds = min(render(make) for _ in range(repeats))
        total += seconds
        print(f"{name:<32} {seconds:6.3f} s  {seconds / base:4.1f} x the heatmap")
    print(f"{'all diagrams of the book':<32} {total:6.3f} s  {total / base:4.1f} x the heatmap")


if __name__ == "__main__":
    main()
