"""Tests for sbir_lib.data.edges: the photo -> QMUL-like edge-map extractor (fast, CPU).

The ``real data`` tests read QMUL training photos and edge maps and skip when they are absent."""
from __future__ import annotations

import numpy as np
import pytest

from sbir_lib.data import datasets as D
from sbir_lib.data import edges as E


def _photo(size: int = 256) -> np.ndarray:
    """A synthetic product photo: a dark red ellipse and a blue square on a near-white background."""
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size, 3), 245, np.uint8)
    ell = ((yy - 110) / 60.0) ** 2 + ((xx - 100) / 80.0) ** 2 <= 1
    img[ell] = (150, 30, 30)
    img[170:230, 150:210] = (40, 60, 200)
    return img


def test_output_format_and_white_background():
    out = E.photo_to_edges(_photo())
    assert out.dtype == np.uint8 and out.shape == (256, 256)
    assert (out == 255).mean() > 0.85  # white background
    assert out.min() < 150  # dark strokes exist
    # no ink far from any object boundary (top-right corner region is empty background)
    assert (out[:30, 200:] == 255).all()


def test_strokes_follow_the_object_boundary():
    photo = _photo()
    curves = E.edge_curves(photo)
    yy, xx = np.nonzero(curves)
    # every curve pixel lies within 4 px of the ellipse outline or the square's border
    r = np.sqrt(((yy - 110) / 60.0) ** 2 + ((xx - 100) / 80.0) ** 2)
    near_ellipse = np.abs(r - 1) * 60 <= 4
    in_sq = (yy >= 166) & (yy <= 234) & (xx >= 146) & (xx <= 214)
    near_square = in_sq & ~((yy >= 174) & (yy <= 226) & (xx >= 154) & (xx <= 206))
    assert (near_ellipse | near_square).mean() > 0.98
    # and the outline is closed-ish: most of its length is found (perimeter of the ellipse ~ 440 px)
    assert near_ellipse.sum() > 350


def test_stroke_statistics_match_the_qmul_reference_range():
    st = E.edge_stats(E.photo_to_edges(_photo()))
    ref = E.QMUL_REFERENCE_STATS["shoes"]
    assert 0.85 * ref["stroke_width"] <= st["stroke_width"] <= 1.2 * ref["stroke_width"]
    assert 60 <= st["centre_grey"] <= 170
    assert 0.002 < st["stroke_fraction"] < 0.1


def test_grey_input_stack_and_thread_pool_agree():
    photos = np.stack([_photo(), _photo()[::-1].copy()])
    stack = E.photos_to_edges(photos, workers=2)
    assert stack.shape == (2, 256, 256) and stack.dtype == np.uint8
    for i in range(2):
        np.testing.assert_array_equal(stack[i], E.photo_to_edges(photos[i]))
    grey = E.photo_to_edges(photos[0].mean(-1).astype(np.uint8))
    assert grey.shape == (256, 256) and grey.min() < 150


def test_fscore_and_bad_inputs():
    photo = _photo()
    curves = E.edge_curves(photo)
    ref = E.render_curves(curves)
    p, r, f = E.edge_fscore(curves, ref)
    assert p > 0.95 and r > 0.95 and f > 0.95
    assert E.edge_fscore(np.zeros_like(curves), ref) == (0.0, 0.0, 0.0)
    shifted = np.roll(curves, 10, axis=1)
    assert E.edge_fscore(shifted, ref)[2] < 0.5
    with pytest.raises(ValueError, match="RGB"):
        E.photo_to_edges(np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="high_quantile"):
        E.EdgeSettings(low_quantile=0.9, high_quantile=0.5).validate()
    with pytest.raises(ValueError, match="sigma"):
        E.photos_to_edges(photo[None], E.EdgeSettings(sigma=0))


def test_agrees_with_qmul_training_edge_maps():
    if not D.real_data_available("shoes") or not D.photos_present("shoes"):
        pytest.skip("QMUL shoes with RGB photos not downloaded (python data_download.py --dataset qmul-shoes)")
    row = E.qmul_agreement(["shoes"], n=4)[0]
    assert row["photos"] == 4
    assert row["F"] > 0.7  # measured 0.84 on 65 training photos
    assert abs(row["ours_stroke_width"] - row["qmul_stroke_width"]) < 0.25


def test_compare_figure_on_real_data():
    if not D.real_data_available("shoes") or not D.photos_present("shoes"):
        pytest.skip("QMUL shoes with RGB photos not downloaded")
    import matplotlib

    matplotlib.use("Agg")
    fig = E.compare_figure(qmul=("shoes",), n_qmul=2, n_sketchy=0)
    assert len([a for a in fig.axes if a.images]) == 6
    with pytest.raises(ValueError, match="allowed: shoes, chairs"):
        E.compare_figure(qmul=("handbags",), n_sketchy=0)
