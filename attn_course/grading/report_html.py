"""The page of ``attn-course report``: figures drawn with matplotlib and embedded as SVG, the
tables filled into ``templates/report/report.html.j2``. One self-contained file: no script,
no stylesheet or font from the network, readable offline."""

from __future__ import annotations

import io
from importlib.resources import files
from statistics import mean, median

__all__ = ["cell_numbers", "render"]


def cell_numbers(cell: dict) -> list:
    """[students, full marks, pass rate, mean points] of one test cell's scores."""
    scores = list(cell["scores"].values())
    full = sum(s >= cell["points"] for s in scores)
    n = len(scores)
    return [n, full, f"{full / n:.3f}" if n else "", f"{sum(scores) / n:.3f}" if n else ""]


def _svg(fig, label: str) -> str:
    """The figure as inline SVG markup, labelled for screen readers."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    svg = text[text.index("<svg") :]
    return svg.replace("<svg", f'<svg role="img" aria-label="{label}"', 1)


def score_figure(scores: list[float], max_score: float) -> str:
    """A histogram of the total scores, one bar per half point."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    top = max(max_score, max(scores, default=0.0), 1.0)
    edges = np.arange(0.0, top + 1.0, 0.5) - 0.25
    ax.hist(scores, bins=edges, color="#3b6ea8", edgecolor="white")
    ax.set_xlabel(f"score (out of {max_score:g})")
    ax.set_ylabel("students")
    ax.set_title("Score distribution")
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig, f"Histogram of the scores of {len(scores)} students out of {max_score:g}")


def cells_figure(names: list[str], rates: list[float], points: list[float]) -> str:
    """Per test cell: the share of students with full marks, the cell's points beside it."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(names) + 1.0))
    ys = range(len(names))
    ax.barh(ys, rates, color="#4c9a6a")
    ax.barh(ys, [1 - r for r in rates], left=rates, color="#d9d9d9")
    for y, rate, pts in zip(ys, rates, points, strict=True):
        ax.text(1.02, y, f"{rate:.0%} of {pts:g} pt", va="center", fontsize=8)
    ax.set_yticks(list(ys), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of students with full marks")
    ax.set_title("Pass rate per test cell")
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig, f"Pass rate of each of {len(names)} test cells")


def render(data) -> str:
    """The HTML page of a :class:`~attn_course.grading.report.ClassData`."""
    import matplotlib
    from jinja2 import Environment, select_autoescape

    students = data.students
    scores = [s["score"] for s in students.values()]
    max_score = max((s["max_score"] for s in students.values()), default=0.0)
    cells = []
    for name, d in data.cells.items():
        n, full, rate, mean_points = cell_numbers(d)
        cells.append({"name": name, "points": d["points"], "n": n, "full": full,
                      "rate": float(rate or 0), "mean": float(mean_points or 0),
                      "hidden": data.hidden.get(name, [])})  # fmt: skip
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        figures = {
            "scores": score_figure(scores, max_score),
            "cells": cells_figure(
                [c["name"] for c in cells], [c["rate"] for c in cells], [c["points"] for c in cells]
            ),  # fmt: skip
        }
    env = Environment(autoescape=select_autoescape(default=True), trim_blocks=True,
                      lstrip_blocks=True)  # fmt: skip
    template = env.from_string(
        files("attn_course.grading").joinpath("templates/report/report.html.j2").read_text()
    )
    summary = {
        "n": len(scores),
        "max": max_score,
        "mean": mean(scores) if scores else 0.0,
        "median": median(scores) if scores else 0.0,
        "full": sum(s >= max_score for s in scores),
        "zero": sum(s == 0 for s in scores),
    }
    events = {k: v for k, v in sorted(data.statuses.items()) if k != "graded"}
    flagged = sorted(s for s, d in students.items() if d["flagged"])
    return template.render(data=data, summary=summary, cells=cells, figures=figures,
                           events=events, flagged=flagged, similarity=data.similarity)  # fmt: skip
