"""Tests for sbir_lib.data: synthetic data (``synthetic``), loaders and their errors (``datasets``), the triplet
sampler (``samplers``), augmentation and input normalisation (``augment``).

Fast and CPU-only. Tests marked ``realdata`` read QMUL-V1 / Sketchy-mini from $SBIR_DATA_ROOT, else
``<repo>/data``, else the read-only mirror ``<repo>/../shared/data``; they skip when none has the data.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sbir_lib.core import config
from sbir_lib.data import augment as A
from sbir_lib.data import datasets as D
from sbir_lib.data import pack
from sbir_lib.data import synthetic as S
from sbir_lib.data import samplers
from sbir_lib.data.samplers import TripletSampler

REPO = Path(__file__).resolve().parents[1]


def _real_root(sub: str) -> Path | None:
    cands = []
    if os.environ.get("SBIR_DATA_ROOT"):
        cands.append(Path(os.environ["SBIR_DATA_ROOT"]).expanduser())
    cands += [REPO / "data", REPO.parent / "shared" / "data"]
    for c in cands:
        if (c / sub).is_dir():
            return c
    return None


def _need_real(sub: str) -> Path:
    root = _real_root(sub)
    if root is None:
        pytest.skip(f"real data {sub} not found under $SBIR_DATA_ROOT, <repo>/data or <repo>/../shared/data")
    return root


# --------------------------------------------------------------------------------------------------------
# synthetic data
# --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def syn():
    return S.make_synthetic(n_train=16, n_test=10, size=128, seed=3)


def test_synthetic_shapes_and_dtypes(syn):
    assert syn.name == "synthetic" and syn.source == "synthetic(seed=3)"
    for split, n in ((syn.train, 16), (syn.test, 10)):
        assert len(split) == n
        assert split.sketches.shape == (n, 128, 128) and split.sketches.dtype == torch.uint8
        assert split.edges.shape == (n, 128, 128) and split.edges.dtype == torch.uint8
        assert split.photos.shape == (n, 128, 128, 3) and split.photos.dtype == torch.uint8
        assert len(split.names) == n and len(split.triplets) == n
        # white background, dark strokes
        assert split.sketches.float().mean() > 200 and split.edges.float().mean() > 200
        assert split.sketches.min() < 100 and split.edges.min() < 100
        corner = torch.cat([split.sketches[:, :3, :3].flatten(), split.edges[:, :2, :2].flatten()])
        assert (corner > 200).float().mean() > 0.9
    assert syn.train.names[0] == "1" and syn.test.names[0] == "17"


def test_synthetic_full_size_defaults():
    ds = S.make_synthetic(n_train=4, n_test=2)  # default size 256
    assert ds.train.sketches.shape == (4, 256, 256) and ds.test.edges.shape == (2, 256, 256)
    assert ds.train.photos.shape == (4, 256, 256, 3)


def test_synthetic_deterministic_by_seed(syn):
    again = S.make_synthetic(n_train=16, n_test=10, size=128, seed=3)
    for a, b in ((syn.train, again.train), (syn.test, again.test)):
        assert torch.equal(a.sketches, b.sketches) and torch.equal(a.edges, b.edges)
        assert torch.equal(a.photos, b.photos) and a.triplets == b.triplets
    other = S.make_synthetic(n_train=16, n_test=10, size=128, seed=4)
    assert not torch.equal(syn.train.sketches, other.train.sketches)
    assert not torch.equal(syn.train.edges, other.train.edges)


def test_synthetic_instances_differ_and_sketch_is_not_edge(syn):
    for split in (syn.train, syn.test):
        n = len(split)
        e = split.edges.float().flatten(1)
        s = split.sketches.float().flatten(1)
        de = torch.cdist(e, e)
        ds = torch.cdist(s, s)
        off = ~torch.eye(n, dtype=torch.bool)
        assert (de[off] > 0).all() and (ds[off] > 0).all()
        # sketch and edge of the same instance differ (abstraction vs clean contour + clutter)
        assert ((s - e).abs().mean(1) > 1.0).all()


def test_synthetic_triplets_valid(syn):
    for split in (syn.train, syn.test):
        n = len(split)
        tm = []
        for i, pairs in enumerate(split.triplets):
            assert 1 <= len(pairs) <= 20
            for a, b in pairs:
                assert 0 <= a < n and 0 <= b < n and a != b
                assert b != i  # the true match is always the most similar
                tm.append(a == i)
        assert 0.05 < np.mean(tm) < 0.6  # QMUL-like: the true match is a minority of 'more similar'


def test_synthetic_without_triplets():
    ds = S.make_synthetic(n_train=4, n_test=3, size=64, with_triplets=False)
    assert ds.train.triplets is None and ds.test.triplets is None


def test_synthetic_categories():
    cd = S.make_synthetic_categories(n_classes=4, per_class=6, n_test_per_class=3, photos_per_class=5,
                                     size=96, seed=1)
    assert cd.categories == ["class00", "class01", "class02", "class03"]
    assert cd.train_sketches.shape == (24, 96, 96) and cd.train_sketches.dtype == torch.uint8
    assert cd.test_sketches.shape == (12, 96, 96)
    assert cd.photos.shape == (20, 96, 96, 3) and cd.photos.dtype == torch.uint8
    for lab, per in ((cd.train_labels, 6), (cd.test_labels, 3), (cd.photo_labels, 5)):
        assert lab.dtype == torch.int64
        assert torch.equal(torch.bincount(lab, minlength=4), torch.full((4,), per))
    assert cd.train_sketches.float().mean() > 200
    assert len(cd.train_names) == 24 and len(cd.photo_names) == 20 and cd.split
    again = S.make_synthetic_categories(n_classes=4, per_class=6, n_test_per_class=3, photos_per_class=5,
                                        size=96, seed=1)
    assert torch.equal(cd.train_sketches, again.train_sketches) and torch.equal(cd.photos, again.photos)


# --------------------------------------------------------------------------------------------------------
# triplet sampler
# --------------------------------------------------------------------------------------------------------
def _hand_built(n=30, per=6, seed=0):
    """Each anchor i: 6 candidate photos incl. itself, pairs ordered by a random score (i most similar)."""
    rng = np.random.default_rng(seed)
    trip = []
    for i in range(n):
        others = rng.choice([j for j in range(n) if j != i], per - 1, replace=False)
        cand = [i] + list(others)  # ranked: index 0 most similar
        trip.append([(cand[a], cand[b]) for a in range(per) for b in range(a + 1, per)])
    return n, trip


def _draw(sampler, total, bs=64):
    anc, pos, neg, hard = [], [], [], []
    while sum(len(a) for a in anc) < total:
        a, p, ng = sampler.sample(bs)
        anc.append(a), pos.append(p), neg.append(ng), hard.append(sampler.last_hard.clone())
    return torch.cat(anc), torch.cat(pos), torch.cat(neg), torch.cat(hard)


def test_sampler_annotated_statistics():
    n, trip = _hand_built()
    s = TripletSampler((n, trip), hard_prob=0.75, seed=0)
    a, p, ng, hard = _draw(s, 20000)
    assert a.dtype == p.dtype == ng.dtype == torch.int64
    annotated_sets = [set(x for pr in t for x in pr) for t in trip]
    pair_sets = [set(t) for t in trip]
    in_ann = torch.tensor([int(ng[k]) in annotated_sets[int(a[k])] for k in range(len(a))])
    frac = in_ann.float().mean().item()
    assert abs(frac - 0.75) < 0.015, frac
    assert torch.equal(in_ann, hard)
    for k in range(len(a)):
        ai, pi, ni = int(a[k]), int(p[k]), int(ng[k])
        assert pi in {x for x, _ in trip[ai]}  # positive = a 'more similar' photo of this anchor
        if hard[k]:
            assert (pi, ni) in pair_sets[ai]  # the annotated pair kept as is
        else:
            assert ni not in annotated_sets[ai] and ni != pi and ni != ai
    # random negatives spread over many photos
    assert len(set(ng[~hard].tolist())) > n // 2


def test_sampler_anchors_cycle_each_epoch():
    n, trip = _hand_built(n=23)
    s = TripletSampler((n, trip), seed=5)
    a, _, _, _ = _draw(s, 23 * 4, bs=7)  # batches cross epoch boundaries
    epochs = [a[k * n:(k + 1) * n] for k in range(4)]
    for e in epochs:
        assert sorted(e.tolist()) == list(range(n))
    assert not all(torch.equal(epochs[0], e) for e in epochs[1:])  # reshuffled
    assert s.epoch >= 3


def test_sampler_true_match_mode():
    n, trip = _hand_built()
    # make some pairs have the true match as 'less similar' to check they are never used as negatives
    trip = [t + [(t[1][0], i)] for i, t in enumerate(trip)]
    s = TripletSampler((n, trip), positives="true_match", hard_prob=0.75, seed=1)
    a, p, ng, hard = _draw(s, 12000)
    assert torch.equal(a, p)
    assert (ng != a).all()
    less_sets = [set(b for _, b in t) - {i} for i, t in enumerate(trip)]
    for k in torch.nonzero(hard).flatten().tolist():
        assert int(ng[k]) in less_sets[int(a[k])]
    assert abs(hard.float().mean().item() - 0.75) < 0.02


def test_sampler_handbag_mode_no_triplets():
    n = 40
    for mode in ("annotated", "true_match"):
        s = TripletSampler((n, None), positives=mode, seed=2)
        a, p, ng, hard = _draw(s, 8000)
        assert torch.equal(a, p) and (ng != a).all()
        assert ng.min() >= 0 and ng.max() < n and not hard.any()
        counts = torch.bincount(ng, minlength=n).float()
        assert counts.min() > 0.5 * counts.mean()  # roughly uniform over other photos


def test_sampler_accepts_split_and_device(syn):
    s = TripletSampler(syn.train, seed=0, device="cpu")
    a, p, ng = s.sample(128)
    assert a.shape == p.shape == ng.shape == (128,)
    assert a.device.type == "cpu" and int(max(a.max(), p.max(), ng.max())) < len(syn.train)


def test_sampler_deterministic_and_resume():
    n, trip = _hand_built()
    s1 = TripletSampler((n, trip), seed=7)
    s2 = TripletSampler((n, trip), seed=7)
    for _ in range(5):
        for x, y in zip(s1.sample(13), s2.sample(13)):
            assert torch.equal(x, y)
    s3 = TripletSampler((n, trip), seed=8)
    assert not torch.equal(torch.cat(TripletSampler((n, trip), seed=7).sample(64)), torch.cat(s3.sample(64)))
    # resume: state through torch.save / torch.load, as a checkpoint would
    buf = io.BytesIO()
    torch.save(s1.state_dict(), buf)
    cont = [s1.sample(17) for _ in range(6)]
    buf.seek(0)
    s4 = TripletSampler((n, trip), seed=123)
    s4.load_state_dict(torch.load(buf, weights_only=False))
    for ref in cont:
        for x, y in zip(ref, s4.sample(17)):
            assert torch.equal(x, y)
    with pytest.raises(ValueError):
        TripletSampler((n + 1, None)).load_state_dict(s1.state_dict())


def test_sampler_validation():
    with pytest.raises(ValueError):
        TripletSampler((3, [[(0, 5)], [], []]))
    with pytest.raises(ValueError):
        TripletSampler((3, None), positives="bogus")
    with pytest.raises(ValueError):
        TripletSampler((3, [[]]))  # wrong number of queries


def test_samplers_share_one_shape():
    """sample(b) -> int64 index tensors of length b; state_dict / load_state_dict resume the draws exactly."""
    sl, pl = torch.tensor([0, 0, 1, 1, 2, 2, 2]), torch.tensor([2, 1, 0, 1, 0, 2])
    n, trip = _hand_built(n=9)
    make = {
        "triplet": lambda seed: TripletSampler((n, trip), seed=seed),
        "class pairs": lambda seed: samplers.ClassPairSampler(sl, pl, 3, seed=seed),
        "category triplets": lambda seed: samplers.CategoryTriplets(sl, pl, 3, seed=seed),
    }
    for name, new in make.items():
        s = new(1)
        assert isinstance(s, samplers.IndexSampler) and isinstance(s.generator, torch.Generator), name
        for b in (1, 4, 5):
            out = s.sample(b)
            assert len(out) == 3 and all(t.dtype == torch.int64 and t.shape == (b,) for t in out), name
        state = s.state_dict()
        ahead = [t for _ in range(3) for t in s.sample(4)]
        other = new(2)
        other.load_state_dict(state)
        assert all(torch.equal(x, y) for x, y in zip(ahead, [t for _ in range(3) for t in other.sample(4)])), name
        with pytest.raises(ValueError, match="batch_size"):
            s.sample(0)


# --------------------------------------------------------------------------------------------------------
# augmentation
# --------------------------------------------------------------------------------------------------------
def _coord_images(b, h, w):
    """int64 images whose pixel value encodes (image, row, col): no overflow, every pixel unique."""
    bi = torch.arange(b)[:, None, None]
    r = torch.arange(h)[None, :, None]
    c = torch.arange(w)[None, None, :]
    return bi * 1_000_000 + r * 1000 + c


def test_augment_crops_are_subwindows_and_flips():
    B, H, W, C = 64, 40, 44, 33
    x = _coord_images(B, H, W)
    g = torch.Generator().manual_seed(0)
    out = A.augment(x, crop=C, generator=g)
    assert out.shape == (B, 1, C, C) and out.dtype == x.dtype
    flips, offsets = [], set()
    for b in range(B):
        o = out[b, 0]
        assert int(o[0, 0]) // 1_000_000 == b
        oy = (int(o.min()) % 1_000_000) // 1000
        ox = int(o.min()) % 1000
        win = x[b, oy:oy + C, ox:ox + C]
        flipped = bool(o[0, 0] != win[0, 0])
        assert torch.equal(o, win.flip(-1) if flipped else win)
        assert 0 <= oy < H - C and 0 <= ox < W - C  # the authors' nr.randint(H - C): H - C itself is never drawn
        flips.append(flipped)
        offsets.add((oy, ox))
    assert 0.2 < np.mean(flips) < 0.8 and len(offsets) > B // 2  # independent per image


def test_augment_uint8_and_4d_input_and_no_flip():
    x = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8)
    out = A.augment(x, crop=25, flip=False, generator=torch.Generator().manual_seed(1))
    assert out.shape == (8, 1, 25, 25) and out.dtype == torch.uint8
    for b in range(8):  # brute force: some unflipped window of image b
        assert any(torch.equal(out[b, 0], x[b, 0, i:i + 25, j:j + 25]) for i in range(7) for j in range(7))


def test_random_offsets_are_the_authors_0_to_30():
    """225 of 256: row and column offsets uniform on 0..30 as Deep_SBIR_tf's ``nr.randint(256 - 225)``
    (sbir_sampling/image_proc.py lines 74, 114-115), never 31; flips with probability 1/2."""
    oy, ox, fl = A.draw_views(20_000, 256, 256, generator=torch.Generator().manual_seed(0))
    for o in (oy, ox):
        assert set(o.tolist()) == set(range(31))
        counts = torch.bincount(o, minlength=31).float()
        assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()  # uniform
    assert 0.48 < fl.float().mean() < 0.52
    # an image no larger than the crop is passed through (offset 0), as the authors' image_proc.py line 109
    x = _coord_images(4, 25, 25)
    assert torch.equal(A.augment(x, crop=25, flip=False, generator=torch.Generator().manual_seed(1))[:, 0], x)


def test_augment_seeded_determinism():
    x = _coord_images(16, 36, 36)
    a = A.augment(x, crop=30, generator=torch.Generator().manual_seed(3))
    b = A.augment(x, crop=30, generator=torch.Generator().manual_seed(3))
    c = A.augment(x, crop=30, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_augment_on_gpu_matches_cpu():
    x = torch.randint(0, 256, (32, 256, 256), dtype=torch.uint8)
    cpu = A.augment(x, generator=torch.Generator().manual_seed(0))
    gpu = A.augment(x.cuda(), generator=torch.Generator().manual_seed(0))
    assert gpu.is_cuda and torch.equal(cpu, gpu.cpu())


def test_center_crop_and_ten_views():
    x = _coord_images(3, 256, 256)
    cc = A.center_crop(x)
    assert cc.shape == (3, 1, 225, 225) and torch.equal(cc[:, 0], x[:, 15:240, 15:240])
    tv = A.ten_views(x)
    assert tv.shape == (10, 3, 1, 225, 225)
    offs = [(0, 0), (0, 31), (31, 0), (31, 31), (15, 15)]
    for k, (i, j) in enumerate(offs):
        assert torch.equal(tv[k, :, 0], x[:, i:i + 225, j:j + 225])
        assert torch.equal(tv[k + 5], tv[k].flip(-1))
    assert torch.equal(tv[4], cc)
    # the authors' do_multiview_crop (Deep_SBIR_tf triplet_sbir_test.py lines 131-143), written out in numpy:
    # corners listed column-major (x = 0, 0, w-c, w-c; y = 0, h-c, 0, h-c), centre int((h-c)*0.5), then
    # each view reversed left-right. Same ten views; only the corners' order differs.
    data, c = x.numpy()[:, None], 225
    h = w = 256
    xs, ys = [0, 0, w - c, w - c], [0, h - c, 0, h - c]
    theirs = [data[:, :, y:y + c, xo:xo + c] for xo, y in zip(xs, ys)]
    y_cen, x_cen = int((h - c) * 0.5), int((w - c) * 0.5)
    theirs.append(data[:, :, y_cen:y_cen + c, x_cen:x_cen + c])
    theirs += [v[:, :, :, ::-1] for v in theirs]
    ours_of_theirs = [0, 2, 1, 3, 4, 5, 7, 6, 8, 9]  # their view k is our view ours_of_theirs[k]
    for k, v in enumerate(theirs):
        assert np.array_equal(tv[ours_of_theirs[k]].numpy(), v)


def test_to_input():
    x = torch.full((2, 8, 8), 255, dtype=torch.uint8)
    y = A.to_input(x)
    assert y.shape == (2, 1, 8, 8) and y.dtype == torch.float32
    assert torch.allclose(y, torch.full_like(y, 1 - A.PIXEL_MEAN))
    assert torch.allclose(A.to_input(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), mean=0.0), torch.zeros(1, 1, 4, 4))
    assert abs(A.PIXEL_MEAN * 255 - 250.42) < 1e-6
    assert A.to_input(A.ten_views(x, crop=5)).shape == (10, 2, 1, 5, 5)


# --------------------------------------------------------------------------------------------------------
# loaders: missing / corrupt files (fake data written to tmp_path)
# --------------------------------------------------------------------------------------------------------
def _write_fake_qmul(root: Path, name="shoes", ntr=4, nte=3, size=256, photos=True) -> Path:
    import scipy.io
    from PIL import Image

    d = root / "qmul_v1" / name
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ann = {}
    for split, n, start in (("train", ntr, 1), ("test", nte, ntr + 1)):
        for kind in ("sketch", "edge"):
            arr = np.full((n, size, size), 255, np.uint8)
            arr[:, 10:20, 10:20] = rng.integers(0, 100, (n, 10, 10))
            scipy.io.savemat(d / f"{name}_{kind}_db_{split}.mat", {"data": arr})
        ann[split] = {"images": [f"{start + i}.jpg" for i in range(n)],
                      "sketches": [f"{start + i}.png" for i in range(n)],
                      "triplets": [[[i, (i + 1) % n], [(i + 1) % n, (i + 2) % n]] for i in range(n)]}
        if photos:
            (d / "photos" / split).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(np.full((size, size, 3), 40 * i, np.uint8)).save(d / "photos" / split / f"{start + i}.jpg")
    if name in D.QMUL_ANNOTATED:
        (d / f"{name}_annotation.json").write_text(json.dumps(ann))
    return d


def _truncate(path: Path, frac=0.5):
    b = path.read_bytes()
    path.write_bytes(b[: int(len(b) * frac)])


def test_fake_qmul_loads(tmp_path):
    _write_fake_qmul(tmp_path, "chairs", ntr=4, nte=3)
    ds = D.load_qmul("chairs", root=tmp_path)
    assert ds.source == "qmul_v1" and len(ds.train) == 4 and len(ds.test) == 3
    assert ds.train.photos.shape == (4, 256, 256, 3) and ds.test.names == ["5", "6", "7"]
    assert ds.train.triplets[0] == [(0, 1), (1, 2)]
    assert D.load_qmul("chairs", root=tmp_path, photos=False).train.photos is None


def test_missing_dataset_message(tmp_path):
    with pytest.raises(D.DatasetMissingError) as ei:
        D.load_qmul("shoes", root=tmp_path)
    msg = str(ei.value)
    assert config.download_command("qmul-shoes", tmp_path) in msg and str(tmp_path) in msg
    assert isinstance(ei.value, FileNotFoundError)
    # one .mat missing: the message names that file
    d = _write_fake_qmul(tmp_path, "shoes")
    (d / "shoes_edge_db_test.mat").unlink()
    with pytest.raises(D.DatasetMissingError, match="shoes_edge_db_test.mat"):
        D.load_qmul("shoes", root=tmp_path)
    with pytest.raises(D.DatasetMissingError) as ei:
        D.load_sketchy_mini(root=tmp_path)
    assert "--dataset sketchy-mini" in str(ei.value) and "--mirror DIR_OR_URL" in str(ei.value)


def test_bad_name():
    with pytest.raises(ValueError, match="shoes, chairs, handbags"):
        D.load_qmul("boots")
    with pytest.raises(ValueError, match="synthetic"):
        S.load_fg_dataset("boots")


def test_load_fg_dataset_fallback(tmp_path):
    kw = {"n_train": 4, "n_test": 3, "size": 64}
    with pytest.warns(UserWarning, match="SYNTHETIC") as rec:
        ds = S.load_fg_dataset("shoes", root=tmp_path, synthetic_kwargs=kw)
    assert config.download_command("qmul-shoes") in str(rec[0].message)
    assert ds.name == "synthetic" and ds.source.startswith("synthetic") and len(ds.train) == 4
    assert ds.train.triplets is not None
    with pytest.warns(UserWarning):
        hb = S.load_fg_dataset("handbags", root=tmp_path, synthetic_kwargs=kw)
    assert hb.train.triplets is None  # mimics handbags: true-match sampling
    with pytest.raises(D.DatasetMissingError, match="qmul-chairs"):
        S.load_fg_dataset("chairs", root=tmp_path, allow_synthetic=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert S.load_fg_dataset("synthetic", synthetic_kwargs=kw).name == "synthetic"
    # real (fake) files present -> loaded, no warning
    _write_fake_qmul(tmp_path, "chairs")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert S.load_fg_dataset("chairs", root=tmp_path).source == "qmul_v1"
    assert D.real_data_available("chairs", tmp_path) and not D.real_data_available("shoes", tmp_path)


def test_truncated_mat_raises_corrupt(tmp_path):
    """A truncated copy of a real .mat (a fake one when the real data are absent) is reported by name."""
    real = _real_root("qmul_v1/shoes")
    if real is not None:
        d = tmp_path / "qmul_v1" / "shoes"
        d.mkdir(parents=True)
        for f in (real / "qmul_v1" / "shoes").glob("shoes_*"):
            shutil.copy(f, d / f.name)
    else:
        d = _write_fake_qmul(tmp_path, "shoes", photos=False)
    _truncate(d / "shoes_edge_db_test.mat")
    with pytest.raises(D.DatasetCorruptError, match="shoes_edge_db_test.mat") as ei:
        D.load_qmul("shoes", root=tmp_path, photos=False)
    assert isinstance(ei.value, ValueError) and ei.value.path.name == "shoes_edge_db_test.mat"


@pytest.mark.parametrize("damage", ["json", "jpg", "count", "shape", "empty_mat"])
def test_other_corruptions(tmp_path, damage):
    import scipy.io

    d = _write_fake_qmul(tmp_path, "shoes")
    if damage == "json":
        _truncate(d / "shoes_annotation.json")
        bad = "shoes_annotation.json"
    elif damage == "jpg":
        _truncate(d / "photos" / "test" / "6.jpg", 0.3)
        bad = "6.jpg"
    elif damage == "count":
        scipy.io.savemat(d / "shoes_edge_db_train.mat", {"data": np.full((3, 256, 256), 255, np.uint8)})
        bad = "shoes_edge_db_train.mat"
    elif damage == "shape":
        scipy.io.savemat(d / "shoes_sketch_db_test.mat", {"data": np.full((3, 128, 128), 255, np.uint8)})
        bad = "shoes_sketch_db_test.mat"
    else:
        (d / "shoes_sketch_db_train.mat").write_bytes(b"")
        bad = "shoes_sketch_db_train.mat"
    with pytest.raises(D.DatasetCorruptError, match=bad.replace(".", r"\.")):
        D.load_qmul("shoes", root=tmp_path)


def test_sketchy_mini_fake(tmp_path):
    from PIL import Image

    base = tmp_path / "sketchy_mini"
    for c in ("cat", "ant"):
        (base / "sketch" / c).mkdir(parents=True)
        (base / "photo" / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((64, 64, 3), 50 * i, np.uint8)).save(base / "photo" / c / f"p{i}.jpg")
            for k in (1, 2):
                Image.fromarray(np.full((64, 64), 255 - i, np.uint8)).save(base / "sketch" / c / f"p{i}-{k}.png")
    cd = D.load_sketchy_mini(root=tmp_path, n_train_per_class=6, size=32)
    assert cd.categories == ["ant", "cat"]
    assert cd.train_sketches.shape == (12, 32, 32) and cd.test_sketches.shape == (4, 32, 32)
    assert cd.photos.shape == (8, 32, 32, 3) and cd.photo_labels.tolist() == [0] * 4 + [1] * 4
    assert cd.test_names[:2] == ["ant/p3-1", "ant/p3-2"]  # sorted names: the last ones are test
    _truncate(base / "sketch" / "cat" / "p2-1.png", 0.4)
    with pytest.raises(D.DatasetCorruptError, match="p2-1.png"):
        D.load_sketchy_mini(root=tmp_path, n_train_per_class=6)


def test_category_pack_header_and_version1_layout(tmp_path):
    cats = S.make_synthetic_categories(n_classes=3, per_class=2, n_test_per_class=1, photos_per_class=2, size=32)
    pack.pack_category_dataset(cats, tmp_path / "c.npz", quality=95)
    arrays, header = pack.read_pack(tmp_path / "c.npz", "category")
    assert (header["format"], header["version"], header["kind"]) == ("sbir_lib.data.pack", 2, "category")
    new = pack.load_packed(tmp_path / "c.npz")
    # version 1 kept the header as scalar / string arrays beside the images: such files still load
    old = dict(arrays, format=np.array(1), **{k: np.array(header[k]) for k in (
        "name", "size", "quality", "source", "split", "categories", "n_train", "sketch_names", "photo_names")})
    np.savez(tmp_path / "old.npz", **old)
    back = pack.load_packed(tmp_path / "old.npz")
    for k in ("train_sketches", "train_labels", "test_sketches", "test_labels", "photos", "photo_labels"):
        assert torch.equal(getattr(back, k), getattr(new, k)), k
    assert (back.categories, back.train_names, back.photo_names) == (new.categories, new.train_names,
                                                                    new.photo_names)
    with pytest.raises(ValueError, match=".npz"):
        pack.pack_category_dataset(cats, tmp_path / "c.bin")
    np.savez(tmp_path / "x.npz", a=np.zeros(3))  # an .npz that is not a pack
    with pytest.raises(D.DatasetCorruptError, match="python -m sbir_lib.experiments pack --out"):
        pack.load_packed(tmp_path / "x.npz")


# --------------------------------------------------------------------------------------------------------
# real data
# --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_qmul():
    root = _need_real("qmul_v1")
    return root, {n: D.load_qmul(n, root=root, photos="auto") for n in D.QMUL_NAMES
                  if (root / "qmul_v1" / n).is_dir()}


@pytest.mark.realdata
def test_real_qmul_counts_and_shapes(real_qmul):
    root, sets = real_qmul
    assert set(sets) == set(D.QMUL_NAMES)
    for name, ds in sets.items():
        ntr, nte = D.QMUL_COUNTS[name]
        assert (len(ds.train), len(ds.test)) == (ntr, nte)
        for split, n in ((ds.train, ntr), (ds.test, nte)):
            assert split.sketches.shape == split.edges.shape == (n, 256, 256)
            assert split.sketches.dtype == split.edges.dtype == torch.uint8
            assert split.sketches.float().mean() > 240 and split.edges.float().mean() > 240
            if name == "handbags":
                assert split.photos is None and split.triplets is None
            else:
                assert split.photos is not None and split.photos.shape == (n, 256, 256, 3)
                assert len(split.triplets) == n
                flat = torch.tensor([x for t in split.triplets for pr in t for x in pr])
                assert flat.min() >= 0 and flat.max() < n
        assert ds.test.names[0] == str(ntr + 1)


@pytest.mark.realdata
def test_real_true_match_fraction(real_qmul):
    _, sets = real_qmul
    measured = {}
    for name in ("shoes", "chairs"):
        for sp in ("train", "test"):
            t = getattr(sets[name], sp).triplets
            measured[(name, sp)] = np.mean([a == i for i, pairs in enumerate(t) for a, _ in pairs])
    # measured: shoes 0.187 train / 0.195 test, chairs 0.198 / 0.200 (the README's "about 19%")
    assert abs(measured[("shoes", "train")] - 0.19) < 0.02, measured
    for v in measured.values():
        assert 0.15 < v < 0.23, measured


@pytest.mark.realdata
def test_real_pixel_mean(real_qmul):
    _, sets = real_qmul
    s = sets["shoes"].train
    m = torch.cat([s.sketches, s.edges]).double().mean().item()
    assert abs(m - A.PIXEL_MEAN_MEASURED * 255) < 0.01, m
    assert abs(m - 250.42) < 1.0  # the authors' constant is close


@pytest.mark.realdata
def test_real_sampler_on_shoes(real_qmul):
    _, sets = real_qmul
    s = TripletSampler(sets["shoes"].train, seed=0)
    a, p, ng, hard = _draw(s, 6000, bs=128)
    ann = s.is_annotated(a, ng)
    assert torch.equal(ann, hard)
    assert abs(hard.float().mean().item() - 0.75) < 0.03
    assert (ng[~hard] != p[~hard]).all() and (ng[~hard] != a[~hard]).all()
    hb = TripletSampler(sets["handbags"].train, seed=0)
    a, p, ng = hb.sample(128)
    assert torch.equal(a, p) and (ng != a).all()


@pytest.mark.realdata
def test_real_sketchy_mini_split():
    root = _need_real("sketchy_mini")
    cd = D.load_sketchy_mini(root=root, size=64)
    assert len(cd.categories) == 125 and cd.categories == sorted(cd.categories)
    assert cd.train_sketches.shape == (2500, 64, 64) and cd.test_sketches.shape == (625, 64, 64)
    assert cd.photos.shape == (3125, 64, 64, 3)
    assert torch.equal(torch.bincount(cd.train_labels), torch.full((125,), 20))
    assert torch.equal(torch.bincount(cd.test_labels), torch.full((125,), 5))
    assert torch.equal(torch.bincount(cd.photo_labels), torch.full((125,), 25))
    assert cd.train_sketches.float().mean() > 200
    small = D.load_sketchy_mini(root=root, categories=2)
    assert small.train_sketches.shape == (40, 256, 256) and small.photos.shape == (50, 256, 256, 3)
