"""attn_course.plotting: the figures carry the right labels and values, and bad input is refused."""

import matplotlib

matplotlib.use("Agg")  # no display in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from attn_course.plotting import as_numpy, curves, heatmap, heatmaps  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _ticklabels(labels):
    return [t.get_text() for t in labels]


WEIGHTS = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])  # (T_q=2, T_k=3)


def test_heatmap_labels_values_and_colorbar():
    ax = heatmap(WEIGHTS, x_labels=["a", "b", "c"], y_labels=["q1", "q2"], title="t")
    assert isinstance(ax, matplotlib.axes.Axes)
    assert _ticklabels(ax.get_xticklabels()) == ["a", "b", "c"]
    assert _ticklabels(ax.get_yticklabels()) == ["q1", "q2"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("keys", "queries", "t")
    # The image holds the matrix itself, rows = queries, on the fixed 0..1 scale of weights.
    np.testing.assert_array_equal(ax.images[0].get_array(), WEIGHTS)
    assert ax.images[0].get_clim() == (0.0, 1.0)
    # One annotation per cell, in row-major order, positioned at (column, row).
    texts = ax.texts
    assert [t.get_text() for t in texts] == ["0.70", "0.20", "0.10", "0.10", "0.10", "0.80"]
    assert texts[5].get_position() == (2, 1)
    # The colour bar is a second Axes of the same figure, with its label.
    fig = ax.figure
    assert len(fig.axes) == 2
    assert fig.axes[1].get_ylabel() == "attention weight"


def test_heatmap_annotation_text_contrasts_with_cell():
    ax = heatmap(np.array([[0.0, 1.0]]))  # viridis: 0 is dark purple, 1 bright yellow
    assert [t.get_color() for t in ax.texts] == ["white", "black"]


def test_heatmap_scores_use_data_range_and_large_matrices_skip_annotations():
    scores = np.linspace(-3.0, 5.0, 20 * 20).reshape(20, 20)
    ax = heatmap(scores, colorbar_label="score")
    assert ax.images[0].get_clim() == (-3.0, 5.0)
    assert len(ax.texts) == 0
    assert ax.figure.axes[1].get_ylabel() == "score"
    assert _ticklabels(ax.get_xticklabels())[:3] == ["0", "1", "2"]


def test_heatmap_draws_into_given_axes():
    fig, (left, right) = plt.subplots(1, 2)
    out = heatmap(WEIGHTS, ax=right, colorbar=False)
    assert out is right
    assert len(left.images) == 0 and len(right.images) == 1
    assert len(fig.axes) == 2  # no colour bar was added


def test_heatmap_accepts_torch_tensor_requiring_grad():
    w = torch.tensor(WEIGHTS, requires_grad=True)
    ax = heatmap(w * 1.0)  # a non-leaf tensor in a graph: must be detached, not crash
    np.testing.assert_allclose(ax.images[0].get_array(), WEIGHTS)
    assert isinstance(as_numpy(torch.ones(2, dtype=torch.float16)), np.ndarray)


@pytest.mark.parametrize("shape", [(3,), (2, 2, 3)])
def test_heatmap_rejects_non_matrix(shape):
    with pytest.raises(
        ValueError,
        match=r"2-D matrix \(T_q, T_k\).*" + str(shape).replace("(", r"\(").replace(")", r"\)"),
    ):
        heatmap(np.zeros(shape))


def test_heatmap_rejects_wrong_label_count_naming_both():
    with pytest.raises(ValueError, match=r"x_labels.*2 labels.*3.*\(2, 3\)"):
        heatmap(WEIGHTS, x_labels=["a", "b"])
    with pytest.raises(ValueError, match=r"y_labels.*3 labels.*2.*\(2, 3\)"):
        heatmap(WEIGHTS, y_labels=["a", "b", "c"])


def test_heatmaps_share_one_colour_scale():
    a = np.array([[0.0, 2.0], [1.0, 1.0]])
    b = np.array([[-1.0, 0.5], [0.0, 0.0]])
    fig = heatmaps(torch.tensor(np.stack([a, b, a])), titles=["h1", "h2", "h3"], ncols=2)
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["h1", "h2", "h3"]
    assert all(ax.images[0].get_clim() == (-1.0, 2.0) for ax in panels)
    assert panels[0].get_ylabel() == "queries" and panels[1].get_ylabel() == ""
    assert fig.axes[-1].get_ylabel() == "attention weight"  # one shared colour bar


def test_heatmaps_rejects_mixed_shapes_and_title_count():
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(2, 3\)"):
        heatmaps([np.zeros((2, 2)), np.zeros((2, 3))])
    with pytest.raises(ValueError, match="1 titles for 2 matrices"):
        heatmaps([np.zeros((2, 2))] * 2, titles=["only one"])


def test_curves_lines_labels_and_legend():
    loss = torch.tensor([1.0, 0.5, 0.25])
    acc = [0.2, 0.6, 0.9]
    ax = curves({"loss": loss, "accuracy": acc}, xlabel="epoch", ylabel="value", title="t")
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["loss", "accuracy"]
    np.testing.assert_allclose(lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(lines[0].get_ydata(), [1.0, 0.5, 0.25])
    assert lines[0].get_linestyle() != lines[1].get_linestyle()  # not colour alone
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("epoch", "value", "t")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["loss", "accuracy"]


def test_curves_shared_x_log_scale_and_bands():
    lengths = [5, 10, 20, 40]
    ax = curves(
        {"fixed C": [0.9, 0.7, 0.4, 0.2]},
        x=lengths,
        xlabel="input length",
        ylabel="accuracy",
        logy=True,
        bands={"fixed C": [0.05, 0.05, 0.1, 0.1]},
    )
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), lengths)
    assert ax.get_yscale() == "log"
    assert len(ax.collections) == 1  # the band
    assert ax.get_legend() is None  # a single curve needs no legend


def test_curves_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty mapping"):
        curves([1.0, 2.0])
    with pytest.raises(ValueError, match=r"'loss' must be 1-D.*\(2, 2\)"):
        curves({"loss": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"x has shape \(2,\), 'loss' has shape \(3,\)"):
        curves({"loss": [1, 2, 3]}, x=[1, 2])
    with pytest.raises(ValueError, match=r"band 'loss'.*\(2,\).*\(3,\)"):
        curves({"loss": [1, 2, 3]}, bands={"loss": [0.1, 0.1]})
    with pytest.raises(ValueError, match="band 'acc' has no curve"):
        curves({"loss": [1, 2, 3]}, bands={"acc": [0.1, 0.1, 0.1]})


# ---------------------------------------------------------------- the PNG a page shows


def _png(fig):
    import io

    from PIL import Image

    from attn_course.plotting import screen_png

    png, metadata = screen_png(fig)
    Image.open(io.BytesIO(png)).verify()  # every chunk's CRC, ours included
    image = Image.open(io.BytesIO(png))
    image.load()
    return image, metadata


def test_screen_png_is_drawn_at_twice_the_width_it_is_shown_at():
    fig, ax = plt.subplots(figsize=(4, 2), dpi=110)
    ax.plot([0, 1])  # tick labels at the default 10 pt: 15.3 px, over the 14 px small print
    image, metadata = _png(fig)
    assert image.info["dpi"][0] == pytest.approx(220, abs=0.05)  # PNG stores dots per metre
    assert metadata == {"width": round(image.size[0] / 2)}
    assert float(image.info["Smallest text (pt)"]) == plt.rcParams["font.size"] == 10
    plt.close(fig)


def test_screen_png_shows_small_text_wider_so_it_prints_at_the_small_print():
    """An 8 pt note at 110 dpi is 8 * 110 / 72 = 12.2 px at 1×: shown 14 / 12.2 = 1.145
    times wider, it prints at 14 px."""
    fig, ax = plt.subplots(figsize=(4, 2), dpi=110)
    ax.plot([0, 1])
    ax.text(0.5, 0.5, "a note", fontsize=8)
    hidden = fig.add_axes((0, 0, 0.1, 0.1))
    hidden.text(0, 0, "never drawn", fontsize=3)
    hidden.set_visible(False)
    image, metadata = _png(fig)
    assert image.info["Smallest text (pt)"] == "8"
    assert metadata["width"] == round(image.size[0] / 2 * 14 / (8 * 110 / 72))
    plt.close(fig)


def test_screen_png_of_a_figure_without_text():
    fig, ax = plt.subplots(figsize=(2, 1), dpi=110)
    ax.axis("off")
    ax.plot([0, 1])
    image, metadata = _png(fig)
    assert "Smallest text (pt)" not in image.info
    assert metadata == {"width": round(image.size[0] / 2)}
    plt.close(fig)
