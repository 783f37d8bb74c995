"""Tests for sbir_lib.models.classical (Table 1's HOG-BoW / Dense-HOG + rankSVM rows). Fast: synthetic data,
plus one quick-profile run on real QMUL-Chair when the data is present (``realdata``)."""
from __future__ import annotations

import numpy as np
import pytest

from sbir_lib.experiments import classical as X
from sbir_lib.models import classical as B

try:
    from sbir_lib.metrics.retrieval import acc_at_k
except ImportError:  # pragma: no cover - metrics is written in parallel
    def acc_at_k(dist, k):
        dist = np.asarray(dist)
        rank = (dist < np.diag(dist)[:, None]).sum(axis=1)
        return float((rank < k).mean())


def strokes(n: int, size: int = 64, seed: int = 0, n_lines: int = 4) -> np.ndarray:
    """White uint8 images [n, size, size] with a few dark random straight strokes."""
    rng = np.random.default_rng(seed)
    out = np.full((n, size, size), 255, dtype=np.uint8)
    t = np.linspace(0, 1, 4 * size)
    for i in range(n):
        for _ in range(n_lines):
            (r0, c0), (r1, c1) = rng.integers(4, size - 4, size=(2, 2))
            rr = np.round(r0 + (r1 - r0) * t).astype(int)
            cc = np.round(c0 + (c1 - c0) * t).astype(int)
            out[i, rr, cc] = 0
            out[i, np.minimum(rr + 1, size - 1), cc] = 0
    return out


# ---------------------------------------------------------------------------------------- features

def test_dense_hog_shape_norm_determinism_and_torch_input():
    torch = pytest.importorskip("torch")
    imgs = strokes(6, 64)
    f = B.dense_hog(imgs, size=32, pixels_per_cell=8, cells_per_block=2, orientations=9)
    # 32 px / 8 px cells -> 4x4 cells -> 3x3 blocks of 2x2 cells x 9 orientations
    assert f.shape == (6, 3 * 3 * 2 * 2 * 9) and f.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(f, B.dense_hog(imgs, size=32, pixels_per_cell=8))
    np.testing.assert_allclose(B.dense_hog(torch.from_numpy(imgs), size=32, pixels_per_cell=8), f)
    # [N, 1, H, W] and non-dividing sizes are accepted
    assert B.dense_hog(imgs[:, None], size=24, pixels_per_cell=8).shape == (6, 2 * 2 * 36)


def test_resize_images_block_mean():
    x = np.arange(16, dtype=np.uint8).reshape(1, 4, 4) * 10
    y = B.resize_images(x, 2)
    np.testing.assert_allclose(y[0], np.array([[25, 45], [105, 125]]) / 255.0, rtol=1e-6)


@pytest.mark.parametrize("norm", ["l1", "l2", "power", "none"])
def test_hog_bow_histograms_normalised(norm):
    imgs = strokes(12, 64, seed=1)
    bow = B.HOGBoW(size=64, pixels_per_cell=8, cells_per_block=2, vocab_size=16,
                   min_ink=2, norm=norm, seed=0).fit(imgs)
    h = bow.transform(imgs)
    assert h.shape == (12, 16) and h.dtype == np.float32 and (h >= 0).all()
    if norm == "l1":
        np.testing.assert_allclose(h.sum(axis=1), 1.0, rtol=1e-5)
    elif norm in ("l2", "power"):
        np.testing.assert_allclose(np.linalg.norm(h, axis=1), 1.0, rtol=1e-5)
    else:  # raw counts = number of non-blank blocks per image
        desc, img_idx, _ = bow.descriptors(imgs)
        np.testing.assert_array_equal(h.sum(axis=1), np.bincount(img_idx, minlength=12))


def test_hog_bow_skips_blank_patches_grid_and_determinism():
    imgs = strokes(10, 64, seed=2)
    kw = dict(size=64, pixels_per_cell=8, cells_per_block=2, vocab_size=8, min_ink=1, seed=3)
    bow = B.HOGBoW(**kw).fit(imgs)
    blank = np.full((2, 64, 64), 255, np.uint8)
    desc, img_idx, _ = bow.descriptors(np.concatenate([imgs[:1], blank]))
    assert len(desc) > 0 and set(img_idx.tolist()) == {0}  # blank image: every block skipped
    assert not bow.transform(blank).any()                   # -> an all-zero histogram
    # a block is kept iff its pixels hold ink
    x = B.resize_images(imgs, 64)
    ink = bow._ink_per_block(x, 7, 7)
    for i, r, c in [(0, 0, 0), (3, 2, 5), (7, 6, 6)]:
        assert ink[i, r, c] == (x[i, r * 8:r * 8 + 16, c * 8:c * 8 + 16] < 0.9).sum()
    np.testing.assert_array_equal(bow.transform(imgs), B.HOGBoW(**kw).fit(imgs).transform(imgs))
    pyr = B.HOGBoW(**kw, grid=(1, 2)).fit(imgs).transform(imgs)
    assert pyr.shape == (10, 8 * (1 + 4))


def test_hog_bow_transform_before_fit_and_bad_norm():
    with pytest.raises(RuntimeError):
        B.HOGBoW().transform(strokes(1))
    with pytest.raises(ValueError):
        B.HOGBoW(norm="l3")


# ---------------------------------------------------------------------------------------- rankSVM

def planted(n: int, seed: int, d_info: int = 4, d_noise: int = 40):
    """Features where d_info dims identify the instance (sketch ~ photo) and d_noise dims are loud
    independent noise: the unweighted distance is near chance, the right w is near perfect."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d_info))
    fs = np.hstack([z + 0.05 * rng.normal(size=z.shape), 3 * rng.normal(size=(n, d_noise))])
    fp = np.hstack([z + 0.05 * rng.normal(size=z.shape), 3 * rng.normal(size=(n, d_noise))])
    return fs.astype(np.float32), fp.astype(np.float32)


@pytest.mark.parametrize("diff", ["abs", "sq"])
def test_ranksvm_learns_planted_ranking(diff):
    fs, fp = planted(150, seed=0)
    ts, tp = planted(60, seed=1)
    svm = B.RankSVM(C=10.0, diff=diff, max_pairs=6000, seed=0).fit(fs, fp)  # true match vs random
    w = svm.coef_
    assert w[:4].min() > 5 * np.abs(w[4:]).mean()
    acc1 = acc_at_k(svm.distance(ts, tp), 1)
    unweighted = acc_at_k(B.weighted_distance(ts, tp, np.ones(w.shape), diff), 1)
    assert acc1 > 0.6 and acc1 > unweighted + 0.3  # chance is 1/60


def test_ranksvm_uses_annotated_triplets():
    """Annotations that always prefer the photo closest in dims 0..3 teach those dims."""
    fs, fp = planted(80, seed=2)
    rng = np.random.default_rng(0)
    trip = []
    for q in range(80):
        pairs = []
        for a, b in rng.integers(0, 80, size=(30, 2)):
            da, db = (np.abs(fs[q, :4] - fp[a, :4]).sum(), np.abs(fs[q, :4] - fp[b, :4]).sum())
            pairs.append((int(a), int(b)) if da < db else (int(b), int(a)))
        trip.append(pairs)
    svm = B.RankSVM(C=1.0, seed=0).fit(fs, fp, trip)
    assert svm.n_pairs_ <= 80 * 30 and svm.coef_[:4].min() > 5 * np.abs(svm.coef_[4:]).mean()


def test_uniform_prior_tends_to_unweighted_distance():
    fs, fp = planted(40, seed=3)
    dev = {}
    for prior in (0.0, 1e4):
        w = B.RankSVM(C=1e-4, uniform_prior=prior, max_pairs=2000, seed=0).fit(fs, fp).coef_
        dev[prior] = np.abs(w / w.mean() - 1).max()
    assert dev[1e4] < 0.15 and dev[1e4] < 0.1 * dev[0.0]


@pytest.mark.parametrize("diff", ["abs", "sq"])
def test_distance_matches_naive_double_loop(diff):
    rng = np.random.default_rng(0)
    fq, fg = rng.normal(size=(7, 13)), rng.normal(size=(9, 13))
    w = rng.normal(size=13)
    svm = B.RankSVM(diff=diff)
    svm.coef_ = w.astype(np.float32)
    naive = np.array([[-(w @ svm.pair_features(fq[i][None], fg[j][None])[0]) for j in range(9)]
                      for i in range(7)])
    np.testing.assert_allclose(svm.distance(fq, fg), naive, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(svm.distance(fq, fg, chunk_bytes=1), naive, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(svm.score(fq, fg), -naive, rtol=1e-4, atol=1e-4)


def test_make_triplets_annotation_true_match_and_cap():
    ann = [[(1, 2), (2, 2), (0, 1)], [], [(0, 2)]]
    t = B.make_triplets(3, 3, ann, max_pairs=None)
    np.testing.assert_array_equal(t, [[0, 1, 2], [0, 0, 1], [2, 0, 2]])  # (2, 2) dropped
    t = B.make_triplets(20, 25, None, max_pairs=100, seed=0)
    assert len(t) == 100 and (t[:, 0] == t[:, 1]).all() and (t[:, 2] != t[:, 0]).all()
    assert t[:, 2].max() < 25
    np.testing.assert_array_equal(t, B.make_triplets(20, 25, None, max_pairs=100, seed=0))
    both = B.make_triplets(3, 3, ann, max_pairs=None, neg_per_query=2, add_true_match=True)
    assert len(both) == 3 + 3 * 2
    with pytest.raises(ValueError):
        B.make_triplets(3, 3, [[(0, 5)], [], []])


def test_train_val_split_reindexes_triplets():
    ann = [[(1, 2), (3, 0)], [(0, 2)], [(3, 1)], [(2, 3)]]
    sp = X.train_val_split(4, ann, val_fraction=0.25, seed=0)
    tr, va = sp["train_idx"], sp["val_idx"]
    assert len(va) == 1 and sorted(np.concatenate([tr, va]).tolist()) == [0, 1, 2, 3]
    assert len(sp["train_triplets"]) == 3
    for q_new, q in enumerate(tr):
        kept = [(a, b) for a, b in ann[q] if a in tr and b in tr]
        assert sp["train_triplets"][q_new] == [(int(np.searchsorted(tr, a)), int(np.searchsorted(tr, b)))
                                               for a, b in kept]


# ---------------------------------------------------------------------------------------- entry point

def test_bad_method_rejected_with_allowed_list():
    imgs = strokes(4)
    with pytest.raises(ValueError) as e:
        X.run_classical_baseline("sift_ranksvm", imgs, imgs, imgs, imgs)
    assert "hog_bow_ranksvm" in str(e.value) and "dense_hog_ranksvm" in str(e.value)
    with pytest.raises(ValueError):
        X.run_classical_baseline("dense_hog_ranksvm", imgs, imgs, imgs, imgs, profile="huge")
    with pytest.raises(ValueError):
        X.resolve_config("dense_hog_ranksvm", overrides={"svm": {}})


def test_profiles_documented_and_complete():
    from sbir_lib.core.profiles import PROFILES

    for p in PROFILES.values():
        assert set(p.classical) == {"dense_hog", "hog_bow", "ranksvm"}
    q, f = PROFILES["quick"].classical, PROFILES["full"].classical
    assert q["hog_bow"]["vocab_size"] < f["hog_bow"]["vocab_size"]
    assert q["ranksvm"]["max_pairs"] < f["ranksvm"]["max_pairs"]


@pytest.mark.parametrize("method", X.METHODS)
def test_run_classical_baseline_end_to_end(method):
    torch = pytest.importorskip("torch")
    sk, ed = strokes(30, 64, seed=5), strokes(30, 64, seed=5)
    ed = np.minimum(ed, strokes(30, 64, seed=6, n_lines=1))  # photos carry an extra stroke
    over = {"features": {"vocab_size": 16}} if method == "hog_bow_ranksvm" else None
    kw = dict(train_triplets=None, seed=0, profile="quick", overrides=over)
    r = X.run_classical_baseline(method, torch.from_numpy(sk[:20]), torch.from_numpy(ed[:20]),
                                 sk[20:], ed[20:], **kw)
    assert set(r) == {"dist", "config", "wall_time_s"}
    assert r["dist"].shape == (10, 10) and r["dist"].dtype == np.float32
    assert r["config"]["method"] == method and r["config"]["triplet_source"] == "true_match_vs_random"
    assert r["wall_time_s"] > 0
    r2 = X.run_classical_baseline(method, sk[:20], ed[:20], sk[20:], ed[20:], **kw)
    np.testing.assert_allclose(r["dist"], r2["dist"], rtol=1e-5)  # seeded: deterministic
    assert acc_at_k(r["dist"], 1) >= 0.5  # the true match shares all but one stroke


# ---------------------------------------------------------------------------------------- real data

def _qmul_dir(name):
    from sbir_lib.core.config import data_root

    d = data_root() / "qmul_v1" / name
    return d if (d / f"{name}_sketch_db_train.mat").exists() else None


@pytest.mark.realdata
@pytest.mark.skipif(_qmul_dir("chairs") is None, reason="QMUL-Chair not under the data root")
def test_quick_profile_on_real_chairs_beats_chance():
    import json

    from scipy.io import loadmat

    d = _qmul_dir("chairs")
    arr = {f"{k}_{s}": loadmat(d / f"chairs_{k}_db_{s}.mat")["data"]
           for k in ("sketch", "edge") for s in ("train", "test")}
    trip = json.loads((d / "chairs_annotation.json").read_text())["train"]["triplets"]
    r = X.run_classical_baseline("dense_hog_ranksvm", arr["sketch_train"], arr["edge_train"],
                                 arr["sketch_test"], arr["edge_test"], trip, profile="quick")
    assert r["dist"].shape == (97, 97)
    assert acc_at_k(r["dist"], 10) > 0.4  # chance: 10/97


def test_memory_layout_and_parallel_extraction_do_not_change_features():
    imgs = strokes(70, 64, seed=4)
    f = B.dense_hog(imgs, size=32, pixels_per_cell=8)
    np.testing.assert_array_equal(f, B.dense_hog(np.asfortranarray(imgs), size=32, pixels_per_cell=8))
    np.testing.assert_array_equal(f, B.dense_hog(imgs, size=32, pixels_per_cell=8, n_jobs=2))
    kw = dict(size=64, pixels_per_cell=8, cells_per_block=2, vocab_size=8, seed=0)
    h = B.HOGBoW(**kw).fit(imgs).transform(imgs)
    np.testing.assert_array_equal(h, B.HOGBoW(**kw).fit(np.asfortranarray(imgs)).transform(imgs))
