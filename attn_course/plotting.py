"""Figures the chapters share: attention weights as heatmaps, training curves.

matplotlib only (no seaborn) and no torch import: tensors are accepted and
converted with ``.detach().cpu()`` and :func:`numpy.asarray`, so the exercise
notebooks stay lean. Every function draws into ``ax`` when given one (so a
chapter can compose panels) and returns the Axes it drew on; the Figure is
``ax.figure``.

Colour maps default to viridis / cividis (perceptually uniform and readable
with colour-vision deficiencies); lines also differ in style and marker, so
no figure relies on colour alone.
"""

import io
import zlib
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "as_numpy",
    "book_style",
    "curves",
    "heatmap",
    "heatmaps",
    "palette",
    "screen_png",
    "smallest_text_pt",
]

# The book's figures: inches at this many CSS pixels each (the size a desktop shows),
# drawn with PIXEL_RATIO device pixels per CSS pixel, so they stay sharp on phones and
# high-density screens.
DPI = 110
PIXEL_RATIO = 2
# The smallest text the book's pages print (the theme's code blocks, in CSS pixels): a
# figure is given a shown width at which its own smallest text is at least this large.
SMALL_PRINT_PX = 14
# The PNG text chunk that records a figure's smallest text, in points.
SMALLEST_TEXT_KEY = "Smallest text (pt)"

# Matrices with at most this many cells get their values written in each cell.
ANNOTATE_MAX_CELLS = 64

_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def smallest_text_pt(fig: Figure, drawn: bool = False) -> float | None:
    """The size in points of the smallest visible text of ``fig`` (None: it has none).

    Tick labels get their text when the figure is drawn: it is drawn (without rendering)
    first, unless ``drawn`` says it just was.
    """
    from matplotlib.text import Text

    if not drawn:
        fig.draw_without_rendering()
    sizes = [
        t.get_fontsize()
        for t in fig.findobj(Text)
        # a hidden Axes hides its texts
        if t.get_visible() and t.get_text().strip() and (t.axes is None or t.axes.get_visible())
    ]
    return min(sizes, default=None)


def screen_png(fig: Figure, **savefig_kw) -> tuple[bytes, dict]:
    """The PNG of ``fig`` as a page shows it: cropped like the inline backend's, drawn at
    :data:`PIXEL_RATIO` × the figure's dpi, and the display metadata that gives its shown
    width in CSS pixels.

    The shown width is the figure's 1× width, enlarged when its smallest text would
    otherwise print smaller than :data:`SMALL_PRINT_PX` (a phone shows a figure at this
    width, and lets the reader scroll it sideways: ``_static/course.css``). The smallest
    text's size is recorded in the PNG (:data:`SMALLEST_TEXT_KEY`), for the book's tests.

    IPython's own "retina" format does the same but also fixes the height, which stretches
    the picture when a narrow screen shrinks it to the column: only the width is given here.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=PIXEL_RATIO * fig.dpi, **savefig_kw)
    png = buffer.getvalue()
    smallest = smallest_text_pt(fig, drawn=True)  # savefig has just drawn it
    width = int.from_bytes(png[16:20], "big") / PIXEL_RATIO  # IHDR: width, then height
    if smallest is not None:  # text printed at smallest * dpi / 72 CSS pixels at 1×
        png = _with_text_chunk(png, SMALLEST_TEXT_KEY, f"{smallest:g}")
        width *= max(1.0, SMALL_PRINT_PX / (smallest * fig.dpi / 72))
    return png, {"width": round(width)}


def _with_text_chunk(png: bytes, key: str, value: str) -> bytes:
    """``png`` with a tEXt chunk (PNG specification, 11.3.4.3) after its header chunk.

    savefig writes such chunks from ``metadata``, but the size is known only once the figure
    is drawn, and Pillow would decode and encode the whole image again to add one: a chunk is
    its length, its type, its data and the CRC-32 of type and data, so it is added here.
    """
    data = key.encode("latin-1") + b"\0" + value.encode("latin-1")
    chunk = b"tEXt" + data
    chunk = len(data).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
    after_header = 8 + 4 + 4 + 13 + 4  # signature; IHDR's length, type, 13 bytes, CRC
    return png[:after_header] + chunk + png[after_header:]


def book_style() -> None:
    """The chapters' figure settings: sizes, and every Figure shown as :func:`screen_png`."""
    plt.rcParams.update({"figure.dpi": DPI, "font.size": 10})
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        # Load the backend now: the inline backend registers its own PNG printer when
        # loaded, which pyplot otherwise does at the first figure, over this one.
        plt.switch_backend(plt.get_backend())
        shell.display_formatter.formatters["image/png"].for_type(Figure, screen_png)


def palette(n: int, cmap: str = "viridis") -> list[tuple[float, float, float, float]]:
    """The book's colours: ``n`` samples of ``cmap`` from its dark end to 0.75.

    Curves take them in order; the diagrams (:data:`attn_course.drawing.ROLES`) give one to
    each role (encoder side, decoder side, attention). The bright yellow end is skipped: it is
    unreadable on white.
    """
    colormap = plt.get_cmap(cmap)
    return [colormap(0.75 * k / max(n - 1, 1)) for k in range(n)]


def as_numpy(x) -> np.ndarray:
    """A NumPy float array from an array, a list or a torch tensor (even one needing grad)."""
    if hasattr(x, "detach"):  # torch.Tensor: leave the graph, move to the CPU
        x = x.detach().cpu()
    return np.asarray(x, dtype=float)


def _check_labels(labels, n: int, axis_name: str, shape: tuple[int, ...]) -> list[str] | None:
    if labels is None:
        return None
    labels = [str(label) for label in labels]
    if len(labels) != n:
        raise ValueError(
            f"{axis_name} has {len(labels)} labels but the matrix has {n} along that axis: "
            f"matrix shape {shape}, {len(labels)} labels"
        )
    return labels


def heatmap(
    weights,
    x_labels: Sequence | None = None,
    y_labels: Sequence | None = None,
    ax=None,
    title: str | None = None,
    cmap: str = "viridis",
    xlabel: str = "keys",
    ylabel: str = "queries",
    vmin: float | None = None,
    vmax: float | None = None,
    annotate: bool | None = None,
    fmt: str = "{:.2f}",
    colorbar: bool = True,
    colorbar_label: str = "attention weight",
):
    """Draw a matrix of attention weights: one row per query, one column per key.

    Args:
        weights: (T_q, T_k) array or tensor, e.g. the ``weights`` that
            :func:`attn_course.functional.attention.attention` returns for one batch element.
        x_labels, y_labels: optional tick labels for the keys (columns) and the
            queries (rows), e.g. the source and target words.
        ax: Axes to draw into; a new ``(7, 3.5)``-ish figure if None.
        vmin, vmax: colour range. By default 0..1 when every entry lies in [0, 1]
            (weights, so that figures compare), otherwise the data's range (scores).
        annotate: write each value in its cell; by default only for matrices of at
            most ``ANNOTATE_MAX_CELLS`` cells.
        fmt: format of the annotations.

    Returns:
        The Axes (``ax.figure`` is the Figure).

    Shapes:
        weights: (T_q, T_k); x_labels: T_k items; y_labels: T_q items.
    """
    W = as_numpy(weights)
    if W.ndim != 2:
        hint = " (pick one batch element / head, e.g. weights[0])" if W.ndim > 2 else ""
        raise ValueError(
            f"heatmap needs a 2-D matrix (T_q, T_k): got shape {W.shape}{hint}; "
            f"expected shape (T_q, T_k)"
        )
    T_q, T_k = W.shape
    x_labels = _check_labels(x_labels, T_k, "x_labels (keys, columns)", W.shape)
    y_labels = _check_labels(y_labels, T_q, "y_labels (queries, rows)", W.shape)

    if ax is None:
        width = min(9.0, max(3.5, 0.55 * T_k + 2.0))
        height = min(7.0, max(2.5, 0.45 * T_q + 1.2))
        _, ax = plt.subplots(figsize=(width, height), layout="constrained")
    if vmin is None and vmax is None and np.all((W >= 0) & (W <= 1)):
        vmin, vmax = 0.0, 1.0
    image = ax.imshow(W, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")

    ax.set_xticks(np.arange(T_k), labels=x_labels if x_labels is not None else np.arange(T_k))
    ax.set_yticks(np.arange(T_q), labels=y_labels if y_labels is not None else np.arange(T_q))
    if x_labels is not None and max(map(len, x_labels), default=0) > 3:
        ax.tick_params(axis="x", labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)

    if annotate is None:
        annotate = W.size <= ANNOTATE_MAX_CELLS
    if annotate:
        colormap, norm = image.get_cmap(), image.norm
        for i in range(T_q):
            for j in range(T_k):
                r, g, b, _ = colormap(norm(W[i, j]))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # perceived brightness
                ax.text(
                    j,
                    i,
                    fmt.format(W[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                )
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label=colorbar_label, shrink=0.9)
    return ax


def heatmaps(
    matrices,
    titles: Sequence[str] | None = None,
    x_labels: Sequence | None = None,
    y_labels: Sequence | None = None,
    ncols: int | None = None,
    panel_size: tuple[float, float] = (3.0, 2.8),
    suptitle: str | None = None,
    **kwargs,
):
    """Several weight matrices side by side on one shared colour scale (heads, layers, models).

    Args:
        matrices: a sequence of (T_q, T_k) matrices, or an array/tensor (n, T_q, T_k).
        titles: one title per panel.
        x_labels, y_labels, **kwargs: passed to :func:`heatmap` for every panel.

    Returns:
        The Figure; its axes are ``fig.axes`` (panels first, then the colour bar).

    Shapes:
        matrices: (n, T_q, T_k) — every panel the same shape.
    """
    mats = [as_numpy(m) for m in matrices]
    if not mats:
        raise ValueError("heatmaps needs at least one matrix, got an empty sequence")
    shapes = {m.shape for m in mats}
    if len(shapes) != 1 or mats[0].ndim != 2:
        raise ValueError(
            "heatmaps needs 2-D matrices (T_q, T_k) all of one shape: got shapes "
            f"{[m.shape for m in mats]}"
        )
    if titles is not None and len(titles) != len(mats):
        raise ValueError(f"{len(titles)} titles for {len(mats)} matrices")
    n = len(mats)
    ncols = min(n, 4) if ncols is None else ncols
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(panel_size[0] * ncols + 1.0, panel_size[1] * nrows),
        layout="constrained",
        squeeze=False,
    )
    stacked = np.stack(mats)
    if np.all((stacked >= 0) & (stacked <= 1)):
        vmin, vmax = 0.0, 1.0
    else:
        vmin, vmax = float(stacked.min()), float(stacked.max())
    kwargs.setdefault("vmin", vmin)
    kwargs.setdefault("vmax", vmax)
    label = kwargs.pop("colorbar_label", "attention weight")
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.set_axis_off()
            continue
        heatmap(
            mats[k],
            x_labels=x_labels,
            y_labels=y_labels,
            ax=ax,
            title=None if titles is None else titles[k],
            colorbar=False,
            **kwargs,
        )
        if k % ncols:  # only the first column keeps its row labels
            ax.set_ylabel("")
    fig.colorbar(axes.flat[0].images[0], ax=axes, label=label, shrink=0.9)
    if suptitle is not None:
        fig.suptitle(suptitle)
    return fig


def curves(
    series: Mapping[str, Sequence],
    x=None,
    ax=None,
    xlabel: str = "epoch",
    ylabel: str = "loss",
    title: str | None = None,
    logy: bool = False,
    ylim: tuple[float, float] | None = None,
    cmap: str = "viridis",
    markers: bool | None = None,
    bands: Mapping[str, Sequence] | None = None,
):
    """Line plot of named curves: loss or accuracy per epoch, accuracy against length, ...

    Args:
        series: ``{"name": y_values}``; each y is 1-D (list, array or tensor).
        x: shared x values (e.g. the input lengths); default 1, 2, ..., n.
        bands: optional ``{"name": spread}`` drawn as y ± spread (e.g. std over seeds).
        logy: logarithmic y axis (losses).
        markers: draw a marker at each point; by default when a curve has at most 30 points.

    Returns:
        The Axes (``ax.figure`` is the Figure).

    Shapes:
        every y: (n,); x: (n,); every band: (n,).
    """
    if not isinstance(series, Mapping) or not series:
        raise ValueError(
            "curves needs a non-empty mapping {name: values}, e.g. {'train': losses}; "
            f"got {type(series).__name__}"
        )
    ys = {}
    for name, values in series.items():
        y = as_numpy(values)
        if y.ndim != 1:
            raise ValueError(f"curve {name!r} must be 1-D (n,), got shape {y.shape}")
        ys[name] = y
    xs = None if x is None else as_numpy(x)
    if xs is not None:
        for name, y in ys.items():
            if xs.shape != y.shape:
                raise ValueError(
                    f"x and curve {name!r} must have the same length: "
                    f"x has shape {xs.shape}, {name!r} has shape {y.shape}"
                )
    bands = {} if bands is None else dict(bands)
    for name in bands:
        if name not in ys:
            raise ValueError(f"band {name!r} has no curve of that name; curves: {list(ys)}")

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    n = len(ys)
    colors = palette(n, cmap)
    for k, (name, y) in enumerate(ys.items()):
        xk = np.arange(1, len(y) + 1) if xs is None else xs
        color = colors[k]
        show_marker = len(y) <= 30 if markers is None else markers
        ax.plot(
            xk,
            y,
            label=name,
            color=color,
            linestyle=_LINESTYLES[k % len(_LINESTYLES)],
            marker=_MARKERS[k % len(_MARKERS)] if show_marker else None,
            markersize=4,
        )
        if name in bands:
            spread = as_numpy(bands[name])
            if spread.shape != y.shape:
                raise ValueError(
                    f"band {name!r} must match its curve: band has shape {spread.shape}, "
                    f"curve has shape {y.shape}"
                )
            ax.fill_between(xk, y - spread, y + spread, color=color, alpha=0.2, linewidth=0)
    if logy:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if n > 1:
        ax.legend(frameon=False)
    return ax
