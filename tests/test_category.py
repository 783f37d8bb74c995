"""Tests for sbir_lib.category: data splits, sampling, augmentation, training and the DASE/MEMS runner."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sbir_lib import category as C
from sbir_lib import data as D
from sbir_lib.experiments import dist_path, record_path

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="module")
def cats():
    return D.make_synthetic_categories(n_classes=4, per_class=6, n_test_per_class=2, photos_per_class=8,
                                       size=32, seed=0)


def test_sketchy_split_holds_out_gallery_photos(cats):
    p = C.sketchy_split(cats, gallery_per_class=3)
    assert p.level == "category" and p.num_classes == 4
    assert torch.bincount(p.gallery_labels).tolist() == [3, 3, 3, 3]
    assert torch.bincount(p.train_photo_labels).tolist() == [5, 5, 5, 5]
    assert not set(p.names["gallery"]) & set(p.names["train_photos"])  # no gallery photo is trained on
    # every test sketch's source photo is in the gallery
    src = {n.rsplit("-", 1)[0] for n in p.names["test_sketches"]}
    assert src <= set(p.names["gallery"])
    assert len(p.test_sketches) == 8 and len(p.train_sketches) == 24
    with pytest.raises(ValueError, match="leaves none for training"):
        C.sketchy_split(cats, gallery_per_class=8)


@pytest.mark.realdata
@pytest.mark.skipif(not D.real_data_available("sketchy_mini"), reason="Sketchy-mini not downloaded "
                    "(python data_download.py --dataset sketchy-mini)")
def test_sketchy_mini_split_real():
    ds = D.load_sketchy_mini(size=16, categories=6)
    p = C.sketchy_split(ds)
    assert p.summary() == {"classes": 6, "train_sketches": 120, "train_photos": 90, "test_sketches": 30,
                           "gallery": 60, "image_size": 16}
    src = {n.rsplit("-", 1)[0] for n in p.names["test_sketches"]}
    assert src <= set(p.names["gallery"])
    assert not set(p.names["gallery"]) & set(p.names["train_photos"])


def test_qmul_instances_are_classes():
    ds = D.make_synthetic(n_train=6, n_test=4, size=64, seed=0)
    p = C.qmul_instances(ds)
    assert p.level == "instance" and p.num_classes == 6
    assert p.train_sketch_labels.tolist() == list(range(6)) == p.train_photo_labels.tolist()
    assert torch.equal(p.gallery, ds.test.edges) and p.gallery_labels.tolist() == list(range(4))


def test_class_pair_sampler():
    sl = torch.tensor([0, 0, 1, 1, 1, 2])
    pl = torch.tensor([2, 1, 0, 2, 1, 0, 0])
    s = C.ClassPairSampler(sl, pl, 3, seed=0)
    c, si, pi = s.sample(3)
    assert sorted(c.tolist()) == [0, 1, 2]  # one epoch visits every class once
    for _ in range(20):
        c, si, pi = s.sample(5)
        assert torch.equal(sl[si], c) and torch.equal(pl[pi], c)
    with pytest.raises(ValueError, match="no training photos"):
        C.ClassPairSampler(sl, torch.tensor([0, 1]), 3)


def test_random_resized_crop():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 20, 20, 3), dtype=torch.uint8)
    same = C.random_resized_crop(x, 20, scale=(1.0, 1.0), flip=False, generator=g)
    assert same.shape == (3, 3, 20, 20)
    assert torch.allclose(same, x.permute(0, 3, 1, 2).float(), atol=1e-3)  # full crop = identity
    y = C.random_resized_crop(x[..., 0], 12, scale=(0.3, 1.0), generator=g)
    assert y.shape == (3, 1, 12, 12) and y.min() >= 0 and y.max() <= 255
    # flips: with a full-size crop every output is the image or its mirror
    z = C.random_resized_crop(x, 20, scale=(1.0, 1.0), flip=True, generator=torch.Generator().manual_seed(3))
    ref = x.permute(0, 3, 1, 2).float()
    for i in range(3):
        assert torch.allclose(z[i], ref[i], atol=1e-3) or torch.allclose(z[i], ref[i].flip(-1), atol=1e-3)


def test_profile_config_rejects_bad_values():
    cfg = C.profile_config("dase_sketchy", "quick", "dase_mems")
    assert (cfg.blocks, cfg.loss, cfg.arch) == ("dase", "mems", "resnet18")
    assert C.profile_config("dase_qmul", "full", "nose_triplet").blocks == "none"
    with pytest.raises(ValueError, match="allowed: nose_softmax, se_softmax, dase_softmax"):
        C.profile_config("dase_sketchy", "quick", "dase_arcface")
    with pytest.raises(ValueError, match="allowed: dase_sketchy, dase_sketchy_imagenet, dase_qmul"):
        C.profile_config("table9", "quick", "dase_mems")
    with pytest.raises(ValueError, match="profile must be one of quick, full"):
        C.profile_config("dase_sketchy", "medium", "dase_mems")
    with pytest.raises(ValueError, match="unknown training option"):
        C.profile_config("dase_sketchy", "quick", "dase_mems", learning_rate=1.0)
    with pytest.raises(ValueError, match="arch must be one of resnet18, resnet50"):
        C.profile_config("dase_sketchy", "quick", "dase_mems", arch="vgg")
    with pytest.raises(ValueError, match="mems_margin must be >= 1"):
        C.profile_config("dase_sketchy", "quick", "dase_mems", mems_margin=0.5)
    with pytest.raises(ValueError, match="allowed: sketchy_mini, synthetic_categories"):
        C.run_one("dase_sketchy", "shoes", "dase_mems", 0, "quick")
    assert set(C.EXPERIMENTS) == set(C.DATASETS)
    for rows in C.EXPERIMENTS.values():
        for row in rows:
            assert row.replace("_", "").isalnum()  # filesystem-safe


def _tiny(loss: str, **kw) -> C.RunConfig:
    return C.profile_config("dase_sketchy", "quick", f"dase_{loss}", input_size=32, iterations=60, batch_size=4,
                            embed_dim=32, lr=2e-3, log_every=10, **kw)


@pytest.mark.parametrize("loss", ["mems", "triplet"])
def test_overfits_tiny_data(cats, loss):
    """Four classes, tested on the training images themselves: the loss falls and retrieval beats chance."""
    p = C.sketchy_split(cats, gallery_per_class=3)
    train_as_test = C.PairedData(**{**p.__dict__, "test_sketches": p.train_sketches,
                                    "test_labels": p.train_sketch_labels, "gallery": p.train_photos,
                                    "gallery_labels": p.train_photo_labels})
    cfg = _tiny(loss)
    out = C.train_model(cfg, train_as_test, "cpu", progress=False)
    h = out.history["loss"]
    assert h[-1] < h[0]
    if loss == "mems":
        m = out.history["mems_margin"]  # annealed from 1 over the whole run
        assert 1.0 < m[0] < m[-1] and m[-1] == pytest.approx(cfg.mems_margin, abs=0.05)
    ev = C.evaluate(out.model, cfg, train_as_test, torch.device("cpu"))
    assert ev["dist"].shape == (24, 20)
    assert ev["metrics"]["mAP@all"] > 0.4  # chance is about 0.27 for 4 balanced classes


def test_run_one_records_and_skips(tmp_path):
    ds = D.make_synthetic(n_train=6, n_test=5, size=256, seed=0)
    logs = []
    ov = dict(iterations=2, batch_size=2)
    rec = C.run_one("dase_qmul", "synthetic", "dase_mems", 0, "quick", results=tmp_path, dataset=ds,
                    progress=False, log=logs.append, overrides=ov)
    path = record_path(tmp_path, "dase_qmul", "synthetic", "dase_mems", 0, "quick")
    assert path.name == "seed0.quick.json" and path.exists()
    on_disk = json.loads(path.read_text())
    for k in ("experiment", "dataset", "variant", "seed", "profile", "device", "torch", "git_commit", "created",
              "config", "init", "iterations", "wall_time_s", "metrics", "acc_curve"):
        assert k in on_disk, k
    assert on_disk["variant"] == "dase_mems" and on_disk["init"] == "scratch" and on_disk["iterations"] == 2
    assert set(on_disk["metrics"]) == {"acc@1", "acc@5", "acc@10"} and len(on_disk["acc_curve"]) == 5
    dist = np.load(dist_path(path))
    assert dist.shape == (5, 5) and dist.dtype == np.float16
    assert rec["metrics"] == on_disk["metrics"]
    again = C.run_one("dase_qmul", "synthetic", "dase_mems", 0, "quick", results=tmp_path, dataset=ds,
                      progress=False, log=logs.append, overrides=ov)
    assert again == on_disk and logs[-1].startswith("skip")


def test_category_run_one_metrics(tmp_path, cats):
    rec = C.run_one("dase_sketchy", "synthetic_categories", "se_cosface", 1, "quick", results=tmp_path,
                    dataset=C.sketchy_split(cats, 3), progress=False, log=lambda s: None,
                    overrides=dict(iterations=2, batch_size=4, input_size=32, embed_dim=16))
    assert set(rec["metrics"]) == {"mAP@all", "P@200", "P@10", "acc@1"}
    assert 0 <= rec["metrics"]["mAP@all"] <= 1
    assert rec["retrieval_distance"].endswith("L2-normalised embeddings")
    assert np.load(dist_path(record_path(tmp_path, "dase_sketchy", "synthetic_categories", "se_cosface", 1,
                                         "quick"))).shape == (8, 12)


def test_pack_round_trip(tmp_path, cats):
    info = C.pack_category_dataset(cats, tmp_path / "p.npz", quality=95)
    assert info["sketches"] == 32 and info["photos"] == 32
    back = C.load_packed(tmp_path / "p.npz")
    assert back.categories == cats.categories and back.train_names == cats.train_names
    assert torch.equal(back.train_sketches, cats.train_sketches)  # PNG: lossless
    assert (back.photos.float() - cats.photos.float()).abs().mean() < 8  # JPEG: close (lossy, tiny images)
    small = C.load_packed(tmp_path / "p.npz", size=16)
    assert small.photos.shape == (32, 16, 16, 3)
    with pytest.raises(FileNotFoundError, match="python -m sbir_lib.category pack"):
        C.load_packed(tmp_path / "missing.npz")


def _write_images(folder, names, mode, size=20):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        arr = np.full((size, size, 3) if mode == "RGB" else (size, size), (i * 37) % 256, np.uint8)
        Image.fromarray(arr).save(folder / n)


def test_full_sketchy_layout(tmp_path):
    from sbir_lib import datasets_ext as X

    with pytest.raises(D.DatasetMissingError, match="data_download.py --dataset sketchy"):
        X.load_sketchy(root=tmp_path)
    sk, ph = tmp_path / X.SKETCHY_DIRS[0], tmp_path / X.SKETCHY_DIRS[1]
    for c in ("cat", "dog"):
        _write_images(ph / c, [f"{c}_{i}.jpg" for i in range(4)], "RGB")
        _write_images(sk / c, [f"{c}_{i}-{k}.png" for i in range(4) for k in (1, 2)], "L")
    p = X.load_sketchy(root=tmp_path, size=16, test_photos_per_class=1)
    assert p.categories == ["cat", "dog"] and p.level == "category"
    assert p.summary() == {"classes": 2, "train_sketches": 12, "train_photos": 6, "test_sketches": 4,
                           "gallery": 2, "image_size": 16}
    # the queries are exactly the sketches of the gallery photos
    assert {n.rsplit("-", 1)[0] for n in p.names["test_sketches"]} == set(p.names["gallery"])


def test_tuberlin_ext_layout(tmp_path):
    from sbir_lib import datasets_ext as X

    with pytest.raises(D.DatasetMissingError, match="TU-Berlin Extension not found"):
        X.load_tuberlin_ext(root=tmp_path)
    for c in ("apple", "bus", "only_sketches"):
        _write_images(tmp_path / "tuberlin/png" / c, [f"{i}.png" for i in range(5)], "L")
        if c != "only_sketches":
            _write_images(tmp_path / "tuberlin/images" / c, [f"{i}.jpg" for i in range(6)], "RGB")
    p = X.load_tuberlin_ext(root=tmp_path, size=16, test_sketches_per_class=2, test_photos_per_class=3)
    assert p.categories == ["apple", "bus"]
    assert p.summary() == {"classes": 2, "train_sketches": 6, "train_photos": 6, "test_sketches": 4,
                           "gallery": 6, "image_size": 16}
    with pytest.raises(ValueError, match="leaves none for training"):
        X.load_tuberlin_ext(root=tmp_path, test_sketches_per_class=5)


def test_tied_fraction_flags_collapse():
    assert C.tied_fraction(torch.rand(5, 7)) == 0.0
    assert C.tied_fraction(torch.zeros(5, 7)) == 1.0
    d = torch.rand(4, 6)
    d[1, 2] = d[1, 4]  # 1 of 5 neighbouring pairs ties: above the default share of 10%
    assert C.tied_fraction(d) == 0.25
    assert C.tied_fraction(d, share=0.3) == 0.0


def test_tables_read_records_and_mark_collapsed(tmp_path, cats, capsys):
    from types import SimpleNamespace

    ctx = SimpleNamespace(profile="quick", seeds=[0], seed=0, train_missing=False, device=torch.device("cpu"))
    data = C.sketchy_split(cats, 3)
    ov = dict(iterations=2, batch_size=4, input_size=32, embed_dim=16)
    for row in ("nose_softmax", "dase_mems"):
        C.run_one("dase_sketchy", "synthetic_categories", row, 0, "quick", results=tmp_path, dataset=data,
                  progress=False, log=lambda s: None, overrides=ov)
    rows = ["nose_softmax", "dase_mems", "se_triplet"]
    df = C.records_frame(ctx, "dase_sketchy", "synthetic_categories", rows=rows, results=tmp_path)
    assert list(df["row"]) == ["nose_softmax", "dase_mems"]  # se_triplet is not recorded ...
    assert "python -m sbir_lib.category run --experiment dase_sketchy" in capsys.readouterr().out  # ... says how
    assert "mAP@all (L2)" in df.columns  # MEMS records also rank by L2-normalised features
    t = C.grid_table(df, "mAP@all")
    assert list(t.index) == ["nose", "dase"] and list(t.columns) == ["softmax", "mems"]
    path = record_path(tmp_path, "dase_sketchy", "synthetic_categories", "dase_mems", 0, "quick")
    rec = json.loads(path.read_text())
    rec["tied_queries"] = 0.5
    path.write_text(json.dumps(rec))
    df = C.records_frame(ctx, "dase_sketchy", "synthetic_categories", rows=rows[:2], results=tmp_path)
    assert df["collapsed"].tolist() == [False, True] and np.isnan(df["mAP@all"].iloc[1])
    assert C.grid_table(df, "mAP@all").loc["dase", "mems"] == "collapsed (1)"
