"""Tests for the plotting helpers of notebooks 00-04 (Agg backend, figures written to a temp folder)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sbir_lib.core import plotting as P# noqa: E402


def imgs(n, size=16):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size), dtype=np.uint8)


def test_ink_overlay_colours():
    s = np.full((4, 4), 255, np.uint8)
    e = s.copy()
    s[0, 0] = 0
    e[0, 0] = e[1, 1] = 0
    out = P.ink_overlay(s, e)
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == (220, 30, 30)   # sketch on top
    assert tuple(out[1, 1]) == (150, 150, 150)  # edge only
    assert tuple(out[2, 2]) == (255, 255, 255)
    with pytest.raises(ValueError):
        P.ink_overlay(s, np.zeros((5, 5), np.uint8))


def test_curves():
    fig, ax = plt.subplots()
    P.plot_history(ax, {"iteration": [10, 20], "loss": [0.3, 0.2]}, label="base")
    P.plot_acc_curves(ax, {"a": [0.1, 0.5, 1.0], "b": [0.2, 0.4, 1.0]}, max_k=2)
    assert len(ax.lines) == 3
    assert list(ax.lines[1].get_xdata()) == [1, 2]
    assert np.allclose(ax.lines[1].get_ydata(), [10, 50])
    with pytest.raises(ValueError):
        P.plot_history(ax, {"iteration": [1, 2], "loss": [0.1]})
    plt.close(fig)


def test_retrieval_rows_outlines_true_match(tmp_path):
    q, g = imgs(3), imgs(4)
    d = np.array([[0.5, 0.1, 0.9, 0.8],   # true match 0 ranked second
                  [0.7, 0.2, 0.3, 0.1],   # true match 1 ranked second
                  [0.1, 0.2, 0.3, 0.4]])  # true match 2 ranked third
    fig = P.retrieval_rows(q, g, {"m1": d, "m2": d}, query_idx=[0, 2], k=3)
    axes = np.array(fig.axes).reshape(4, 4)
    assert axes[0, 0].get_title() == "#0, rank 1"
    assert axes[0, 0].get_ylabel() == "m1" and axes[1, 0].get_ylabel() == "m2"
    assert axes[0, 2].spines["top"].get_visible()       # rank 1 -> second gallery column outlined
    assert not axes[0, 1].spines["top"].get_visible()
    assert axes[2, 0].get_title() == "#2, rank 2"
    paths = P.save_figure(fig, "test_retrieval", root=tmp_path)
    assert all(p.exists() for p in paths)
    plt.close(fig)


def test_attention_grid_and_heatmap():
    fig = P.attention_grid(imgs(3), np.random.default_rng(0).random((3, 7, 7)), titles=["a", "b", "c"], cols=2)
    assert len(fig.axes) == 4 and not fig.axes[3].axison
    plt.close(fig)
    with pytest.raises(ValueError):
        P.attention_grid(imgs(2), np.zeros((3, 7, 7)))
    fig, ax = plt.subplots()
    im = P.matrix_heatmap(ax, np.array([[0.0, -2.0], [1.0, 0.5]]), title="W - I")
    assert im.get_clim() == (-2.0, 2.0)
    with pytest.raises(ValueError):
        P.matrix_heatmap(ax, np.zeros(3))
    plt.close("all")


def _overlay(vmin=None, vmax=None, attn=None):
    fig, ax = plt.subplots()
    attn = np.full((7, 7), 1 / 49) if attn is None else attn
    im = P.overlay_attention(ax, imgs(1, 28)[0], attn, vmin=vmin, vmax=vmax)
    data = np.asarray(im.get_array())
    plt.close(fig)
    return data


def test_overlay_attention_absolute_scale_keeps_a_flat_mask_flat():
    peaked = np.full((7, 7), 0.5 / 48)
    peaked[3, 3] = 0.5
    # min-max: any mask spans the whole colour range, however little it varies; absolute: it stays low
    nearly_flat = peaked * 0.01 + 1 / 49
    minmax = _overlay(attn=nearly_flat)
    assert minmax.min() == 0 and minmax.max() > 150
    assert _overlay(0.0, 0.5, attn=nearly_flat).max() < 20
    # absolute: a uniform mask sits at 1/49 of the scale 0..1/49*2, a peaked one reaches its top
    flat = _overlay(0.0, 2 / 49)
    assert flat.min() == flat.max() and abs(int(flat[0, 0]) - 127) <= 1
    top = _overlay(0.0, 0.5, attn=peaked)
    assert top.max() > 150 and top.min() <= 5  # (bilinear upsampling softens the one peaked cell)


def test_attention_colorbar_marks_the_uniform_level():
    fig, ax = plt.subplots()
    cb = P.attention_colorbar(fig, ax, 0.0, 0.1, uniform=1 / 49, uniform_label="1/49 (uniform)")
    ticks = dict(zip([t.get_text() for t in cb.ax.get_yticklabels()], cb.get_ticks()))
    assert ticks["1/49 (uniform)"] == pytest.approx(1 / 49)
    assert any(abs(line.get_ydata()[0] - 1 / 49) < 1e-9 for line in cb.ax.get_lines())  # the dashed line
    plt.close(fig)


def test_save_figure_is_byte_identical_when_saved_again(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.scatter([1, 2, 3], [3, 1, 2], alpha=0.6)
    ax.set(xscale="log", title="ranks")
    first = {p.suffix: p.read_bytes() for p in P.save_figure(fig, "a", root=tmp_path, formats=("png", "pdf", "svg"))}
    second = {p.suffix: p.read_bytes() for p in P.save_figure(fig, "b", root=tmp_path, formats=("png", "pdf", "svg"))}
    plt.close(fig)
    assert first == second  # svg ids salted with a fixed hash salt, no dates
    assert b"CreationDate" not in first[".pdf"] and b"Software" not in first[".png"]
    assert b"<dc:date>" not in first[".svg"]
