"""Tests for sbir_lib.report.domain_gap: stroke statistics, chamfer / HOG distances, annotation statistics.

Tiny hand-drawn images with known answers; one real-data test (skips without QMUL shoes).
"""
from __future__ import annotations

import numpy as np
import pytest

from sbir_lib.data import datasets as D
from sbir_lib.data import synthetic as SY
from sbir_lib.report import domain_gap as G


def blank(n=1, size=32):
    return np.full((n, size, size), 255, np.uint8)


def hline(img, y, x0, x1):
    img[y, x0:x1] = 0
    return img


def test_stroke_statistics_counts_components_and_extent():
    img = blank()[0]
    hline(img, 4, 2, 12)            # 10 px
    hline(img, 20, 10, 30)          # 20 px, far from the first
    df = G.stroke_statistics(img[None])
    row = df.iloc[0]
    assert row.components == 2
    assert row.ink == pytest.approx(30 / 32 ** 2)
    assert row.px_per_component == pytest.approx(15)
    assert row.height == pytest.approx((20 - 4 + 1) / 32)
    assert row.width == pytest.approx((30 - 2) / 32)
    assert row.cy == pytest.approx((4 * 10 + 20 * 20) / 30 / 32)


def test_stroke_statistics_diagonal_is_one_component_and_empty_image():
    imgs = blank(2)
    for i in range(10):
        imgs[0, i, i] = 0  # 8-connected diagonal
    df = G.stroke_statistics(imgs)
    assert df.components.tolist() == [1, 0]
    assert np.isnan(df.cy[1]) and df.ink[1] == 0


def test_ink_threshold_ignores_light_grey():
    img = blank()[0]
    img[0, :] = 230  # the faint frame of QMUL edge maps
    assert G.stroke_statistics(img[None]).ink[0] == 0


def test_chamfer_identical_shifted_and_symmetric():
    a = hline(blank()[0], 10, 5, 25)
    b = hline(blank()[0], 13, 5, 25)  # the same stroke 3 px lower
    c = hline(blank()[0], 10, 5, 25)
    d = G.chamfer_matrix(np.stack([a, b]), np.stack([c, b]))
    assert d[0, 0] == pytest.approx(0.0)
    assert d[1, 1] == pytest.approx(0.0)
    assert d[0, 1] == pytest.approx(3.0)
    assert d[1, 0] == pytest.approx(3.0)


def test_chamfer_empty_image_is_inf_and_size_mismatch_raises():
    a = hline(blank()[0], 10, 5, 25)
    d = G.chamfer_matrix(a[None], blank())
    assert np.isinf(d[0, 0])
    with pytest.raises(ValueError, match="sizes differ"):
        G.chamfer_matrix(a[None], blank(size=16))


def test_pair_offsets_measures_shift_and_scale():
    s = hline(blank(size=64)[0], 30, 10, 50)  # 40 px wide
    e = hline(blank(size=64)[0], 34, 20, 40)  # 20 px wide, 4 px lower, same centre column
    df = G.pair_offsets(s[None], e[None])
    assert df.centroid_offset_px[0] == pytest.approx(4.0)
    assert df.size_ratio[0] == pytest.approx(np.hypot(1, 40) / np.hypot(1, 20))
    with pytest.raises(ValueError, match="pair up"):
        G.pair_offsets(blank(2), blank(3))


def test_true_vs_random():
    d = np.array([[0.0, 2.0, 4.0],
                  [3.0, 1.0, 1.0],
                  [5.0, 1.0, 4.0]])
    r = G.true_vs_random(d)
    assert r["d_true"] == pytest.approx(5 / 3)
    assert r["d_other"] == pytest.approx((2 + 4 + 3 + 1 + 5 + 1) / 6)
    assert r["acc@1"] == pytest.approx(1 / 3)  # query 1 ties with item 2 (ties count against the query)
    assert r["closer_than_median"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="Q <= G"):
        G.true_vs_random(np.zeros((3, 2)))


def test_hog_distance_matrix_prefers_identical_images():
    rng = np.random.default_rng(0)
    imgs = blank(3, 64)
    for i in range(3):
        for _ in range(4):
            y, x0 = rng.integers(4, 60), rng.integers(0, 30)
            hline(imgs[i], y, x0, x0 + 30)
        imgs[i, :, 8 + 20 * i] = 0  # a distinct vertical stroke each
    d = G.hog_distance_matrix(imgs, imgs, size=64, pixels_per_cell=8)
    assert d.shape == (3, 3)
    assert np.allclose(np.diag(d), 0, atol=1e-6)
    assert (d[~np.eye(3, dtype=bool)] > 0.01).all()


def test_annotation_statistics_and_preferences():
    split = D.QMULSplit(sketches=None, edges=None, photos=None, names=[],
                        triplets=[[(0, 1), (2, 0), (2, 1)], [(1, 0)], []])
    st = G.annotation_statistics(split)
    assert st["queries"] == 3 and st["pairs"] == 4
    assert st["more_is_true_match"] == pytest.approx(2 / 4)  # (0,1) for q0, (1,0) for q1
    assert st["less_is_true_match"] == pytest.approx(1 / 4)  # (2,0) for q0
    assert st["queries_with_true_match"] == pytest.approx(2 / 3)
    prefs = G.annotation_preferences(split, 0)
    assert prefs.photo.tolist() == [2, 0, 1]
    assert prefs.wins.tolist() == [2, 1, 0] and prefs.losses.tolist() == [0, 1, 2]
    assert prefs.true_match.tolist() == [False, True, False]
    with pytest.raises(ValueError, match="query must be"):
        G.annotation_preferences(split, 3)


def test_no_annotation():
    split = D.QMULSplit(sketches=None, edges=None, photos=None, names=[], triplets=None)
    assert G.annotation_statistics(split) is None
    with pytest.raises(ValueError, match="no triplet annotation"):
        G.annotation_preferences(split, 0)


def test_bad_images_raise():
    with pytest.raises(ValueError, match="uint8"):
        G.ink_masks(np.zeros((1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="grayscale"):
        G.ink_masks(np.zeros((1, 4, 4, 3), np.uint8))


def test_domain_summary_on_synthetic():
    ds = SY.make_synthetic(n_train=4, n_test=4, size=64, seed=0)
    s = G.domain_summary({"synthetic": ds.test})
    assert list(s.index) == [("synthetic", "sketch"), ("synthetic", "edge map")]
    assert (s["ink"] > 0).all()


@pytest.mark.realdata
def test_real_shoes_annotation_fraction():
    if not D.real_data_available("shoes"):
        pytest.skip("QMUL shoes not downloaded (python data_download.py --dataset qmul-shoes)")
    ds = D.load_qmul("shoes", photos=False)
    st = G.annotation_statistics(ds.train)
    assert st["pairs"] == 41040
    assert st["more_is_true_match"] == pytest.approx(0.187, abs=0.001)
