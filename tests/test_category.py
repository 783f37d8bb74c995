"""Tests for sbir_lib.experiments.dase_mems: data splits, sampling, augmentation, training and the DASE/MEMS runner."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sbir_lib.core.profiles import PROFILES
import torch

from sbir_lib.experiments import dase_mems as C
from sbir_lib.experiments import settings
from sbir_lib.course import dase_lab
from sbir_lib.data import augment
from sbir_lib.data import pack
from sbir_lib.data import paired
from sbir_lib.data import samplers
from sbir_lib.data.synthetic import make_synthetic, make_synthetic_categories
from sbir_lib.training import class_pairs
from sbir_lib.data import datasets as D
from sbir_lib.core.records import dist_l2_path, dist_path, dist_untrained_path, record_path

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="module")
def cats():
    return make_synthetic_categories(n_classes=4, per_class=6, n_test_per_class=2, photos_per_class=8,
                                     size=32, seed=0)


def test_sketchy_split_holds_out_gallery_photos(cats):
    p = paired.sketchy_split(cats, gallery_per_class=3)
    assert p.level == "category" and p.num_classes == 4
    assert torch.bincount(p.gallery_labels).tolist() == [3, 3, 3, 3]
    assert torch.bincount(p.train_photo_labels).tolist() == [5, 5, 5, 5]
    assert not set(p.names["gallery"]) & set(p.names["train_photos"])  # no gallery photo is trained on
    # every test sketch's source photo is in the gallery
    src = {n.rsplit("-", 1)[0] for n in p.names["test_sketches"]}
    assert src <= set(p.names["gallery"])
    assert len(p.test_sketches) == 8 and len(p.train_sketches) == 24
    with pytest.raises(ValueError, match="leaves none for training"):
        paired.sketchy_split(cats, gallery_per_class=8)


@pytest.mark.realdata
@pytest.mark.skipif(not D.real_data_available("sketchy_mini"), reason="Sketchy-mini not downloaded "
                    "(python data_download.py --dataset sketchy-mini)")
def test_sketchy_mini_split_real():
    ds = D.load_sketchy_mini(size=16, categories=6)
    p = paired.sketchy_split(ds)
    assert p.summary() == {"classes": 6, "train_sketches": 120, "train_photos": 90, "test_sketches": 30,
                           "gallery": 60, "image_size": 16}
    src = {n.rsplit("-", 1)[0] for n in p.names["test_sketches"]}
    assert src <= set(p.names["gallery"])
    assert not set(p.names["gallery"]) & set(p.names["train_photos"])


def test_qmul_instances_are_classes():
    ds = make_synthetic(n_train=6, n_test=4, size=64, seed=0)
    p = paired.qmul_instances(ds)
    assert p.level == "instance" and p.num_classes == 6
    assert p.train_sketch_labels.tolist() == list(range(6)) == p.train_photo_labels.tolist()
    assert torch.equal(p.gallery, ds.test.edges) and p.gallery_labels.tolist() == list(range(4))


def test_class_pair_sampler():
    sl = torch.tensor([0, 0, 1, 1, 1, 2])
    pl = torch.tensor([2, 1, 0, 2, 1, 0, 0])
    s = samplers.ClassPairSampler(sl, pl, 3, seed=0)
    c, si, pi = s.sample(3)
    assert sorted(c.tolist()) == [0, 1, 2]  # one epoch visits every class once
    for _ in range(20):
        c, si, pi = s.sample(5)
        assert torch.equal(sl[si], c) and torch.equal(pl[pi], c)
    with pytest.raises(ValueError, match="no training photos"):
        samplers.ClassPairSampler(sl, torch.tensor([0, 1]), 3)


def test_random_resized_crop():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 20, 20, 3), dtype=torch.uint8)
    same = augment.random_resized_crop(x, 20, scale=(1.0, 1.0), flip=False, generator=g)
    assert same.shape == (3, 3, 20, 20)
    assert torch.allclose(same, x.permute(0, 3, 1, 2).float(), atol=1e-3)  # full crop = identity
    y = augment.random_resized_crop(x[..., 0], 12, scale=(0.3, 1.0), generator=g)
    assert y.shape == (3, 1, 12, 12) and y.min() >= 0 and y.max() <= 255
    # flips: with a full-size crop every output is the image or its mirror
    z = augment.random_resized_crop(x, 20, scale=(1.0, 1.0), flip=True, generator=torch.Generator().manual_seed(3))
    ref = x.permute(0, 3, 1, 2).float()
    for i in range(3):
        assert torch.allclose(z[i], ref[i], atol=1e-3) or torch.allclose(z[i], ref[i].flip(-1), atol=1e-3)


def test_profile_config_rejects_bad_values():
    cfg = C.profile_config("dase_sketchy", "quick", "dase_mems")
    assert (cfg.blocks, cfg.loss, cfg.arch) == ("dase", "mems", "resnet18")
    assert C.profile_config("dase_qmul", "full", "plain_triplet").blocks == "none"
    with pytest.raises(ValueError, match="allowed: plain_softmax, se_softmax, dase_softmax"):
        C.profile_config("dase_sketchy", "quick", "dase_arcface")
    with pytest.raises(ValueError, match="allowed: dase_sketchy, dase_sketchy_imagenet, dase_qmul"):
        C.profile_config("table9", "quick", "dase_mems")
    with pytest.raises(ValueError, match="profile must be one of quick, cpu, full"):
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


def _tiny(loss: str, **kw) -> class_pairs.RunConfig:
    return C.profile_config("dase_sketchy", "quick", f"dase_{loss}", input_size=32, iterations=60, batch_size=4,
                            embed_dim=32, lr=2e-3, log_every=10, **kw)


@pytest.mark.parametrize("loss", ["mems", "triplet"])
def test_overfits_tiny_data(cats, loss):
    """Four classes, tested on the training images themselves: the loss falls and retrieval beats chance."""
    p = paired.sketchy_split(cats, gallery_per_class=3)
    train_as_test = paired.PairedData(**{**p.__dict__, "test_sketches": p.train_sketches,
                                    "test_labels": p.train_sketch_labels, "gallery": p.train_photos,
                                    "gallery_labels": p.train_photo_labels})
    cfg = _tiny(loss)
    out = class_pairs.train_model(cfg, train_as_test, "cpu", progress=False)
    h = out.history["loss"]
    assert h[-1] < h[0]
    if loss == "mems":
        m = out.history["mems_margin"]  # annealed from 1 over the first half of the run
        assert 1.0 < m[0] < m[-1] and m[-1] == pytest.approx(cfg.mems_margin, abs=0.05)
    ev = class_pairs.evaluate(out.model, cfg, train_as_test, torch.device("cpu"))
    assert ev["dist"].shape == (24, 20)
    assert ev["metrics"]["mAP@all"] > 0.4  # chance is about 0.27 for 4 balanced classes


def test_run_one_records_and_skips(tmp_path):
    ds = make_synthetic(n_train=6, n_test=5, size=256, seed=0)
    logs = []
    ov = dict(iterations=2, batch_size=2)
    rec = C.run_one("dase_qmul", "synthetic", "dase_mems", 0, "quick", results=tmp_path, dataset=ds,
                    progress=False, log=logs.append, overrides=ov)
    path = record_path(tmp_path, "dase_qmul", "synthetic", "dase_mems", 0, "quick")
    assert path.name == "seed0.quick.json" and path.exists()
    on_disk = json.loads(path.read_text())
    for k in ("experiment", "dataset", "row", "seed", "profile", "device", "torch", "git_commit", "created",
              "config", "init", "iterations", "wall_time_s", "metrics", "acc_curve"):
        assert k in on_disk, k
    assert on_disk["row"] == "dase_mems" and on_disk["iterations"] == 2
    assert on_disk["init"].endswith(Path(PROFILES["quick"].dase_mems["dase_qmul"]["init"]).name)
    assert set(on_disk["metrics"]) == {"acc@1", "acc@5", "acc@10"} and len(on_disk["acc_curve"]) == 5
    dist = np.load(dist_path(path))
    assert dist.shape == (5, 5) and dist.dtype == np.float32  # metrics recompute exactly from it
    assert rec["metrics"] == on_disk["metrics"]
    # the untrained control: the network the run started from, on the same test views, recomputable
    cfg = C.profile_config("dase_qmul", "quick", "dase_mems", 0, **ov)
    start = class_pairs.evaluate_untrained(cfg, paired.qmul_instances(ds))
    assert on_disk["metrics_untrained"] == pytest.approx(start["metrics"])
    assert np.allclose(np.load(dist_untrained_path(path)), start["dist"].numpy(), rtol=1e-3)
    assert C.recompute(on_disk, path)["metrics_untrained"] == pytest.approx(on_disk["metrics_untrained"])
    again = C.run_one("dase_qmul", "synthetic", "dase_mems", 0, "quick", results=tmp_path, dataset=ds,
                      progress=False, log=logs.append, overrides=ov)
    assert again == on_disk and logs[-1].startswith("skip")


def test_category_run_one_metrics(tmp_path, cats):
    rec = C.run_one("dase_sketchy", "synthetic_categories", "se_cosface", 1, "quick", results=tmp_path,
                    dataset=paired.sketchy_split(cats, 3), progress=False, log=lambda s: None,
                    overrides=dict(iterations=2, batch_size=4, input_size=32, embed_dim=16))
    assert set(rec["metrics"]) == {"mAP@all", "P@200", "P@10", "acc@1"}
    assert 0 <= rec["metrics"]["mAP@all"] <= 1
    assert "L2-normalised embeddings" in rec["retrieval_distance"]
    assert np.load(dist_path(record_path(tmp_path, "dase_sketchy", "synthetic_categories", "se_cosface", 1,
                                         "quick"))).shape == (8, 12)


def test_pack_round_trip(tmp_path, cats):
    info = pack.pack_category_dataset(cats, tmp_path / "p.npz", quality=95)
    assert info["sketches"] == 32 and info["photos"] == 32
    back = pack.load_packed(tmp_path / "p.npz")
    assert back.categories == cats.categories and back.train_names == cats.train_names
    assert torch.equal(back.train_sketches, cats.train_sketches)  # PNG: lossless
    assert (back.photos.float() - cats.photos.float()).abs().mean() < 8  # JPEG: close (lossy, tiny images)
    small = pack.load_packed(tmp_path / "p.npz", size=16)
    assert small.photos.shape == (32, 16, 16, 3)
    with pytest.raises(FileNotFoundError, match="python -m sbir_lib.experiments pack"):
        pack.load_packed(tmp_path / "missing.npz")


def _write_images(folder, names, mode, size=20):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        arr = np.full((size, size, 3) if mode == "RGB" else (size, size), (i * 37) % 256, np.uint8)
        Image.fromarray(arr).save(folder / n)


def test_full_sketchy_layout(tmp_path):
    from sbir_lib.data import external as X

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
    from sbir_lib.data import external as X

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
    assert class_pairs.tied_fraction(torch.rand(5, 7)) == 0.0
    assert class_pairs.tied_fraction(torch.zeros(5, 7)) == 1.0
    d = torch.rand(4, 6)
    d[1, 2] = d[1, 4]  # 1 of 5 neighbouring pairs ties: above the default share of 10%
    assert class_pairs.tied_fraction(d) == 0.25
    assert class_pairs.tied_fraction(d, share=0.3) == 0.0


def test_tables_read_records_and_mark_collapsed(tmp_path, cats, capsys):
    from types import SimpleNamespace

    ctx = SimpleNamespace(profile="quick", seeds=[0], seed=0, train_missing=False, device=torch.device("cpu"))
    data = paired.sketchy_split(cats, 3)
    ov = dict(iterations=2, batch_size=4, input_size=32, embed_dim=16)
    for row in ("plain_softmax", "dase_mems"):
        C.run_one("dase_sketchy", "synthetic_categories", row, 0, "quick", results=tmp_path, dataset=data,
                  progress=False, log=lambda s: None, overrides=ov)
    rows = ["plain_softmax", "dase_mems", "se_triplet"]
    df = dase_lab.records_frame(ctx, "dase_sketchy", "synthetic_categories", rows=rows, results=tmp_path)
    assert list(df["row"]) == ["plain_softmax", "dase_mems"]  # se_triplet is not recorded ...
    assert "python -m sbir_lib.experiments run --experiment dase_sketchy" in capsys.readouterr().out  # ... says how
    assert "mAP@all (L2)" in df.columns  # MEMS records also rank by L2-normalised features
    t = dase_lab.grid_table(df, "mAP@all")
    assert list(t.index) == ["plain", "dase"] and list(t.columns) == ["softmax", "mems"]
    path = record_path(tmp_path, "dase_sketchy", "synthetic_categories", "dase_mems", 0, "quick")
    rec = json.loads(path.read_text())
    rec["tied_queries"] = 0.5
    path.write_text(json.dumps(rec))
    df = dase_lab.records_frame(ctx, "dase_sketchy", "synthetic_categories", rows=rows[:2], results=tmp_path)
    assert df["collapsed"].tolist() == [False, True] and np.isnan(df["mAP@all"].iloc[1])
    assert dase_lab.grid_table(df, "mAP@all").loc["dase", "mems"] == "collapsed (1)"
    # the report reads the same records without training anything: REPRODUCTION.md's section of the profile
    from sbir_lib.report import dase_runs
    assert dase_runs.runs_frame("dase_sketchy", "synthetic_categories", "quick", tmp_path)[
        ["row", "collapsed"]].values.tolist() == [["plain_softmax", False], ["dase_mems", True]]
    md = "\n".join(dase_runs.runs_markdown("quick", tmp_path))
    assert "`dase_sketchy` on synthetic_categories" in md and "| plain_softmax |" in md
    assert "dase_mems | plain_softmax" not in md  # no MEMS-vs-softmax pair without the same blocks
    assert dase_runs.runs_markdown("full", tmp_path) == []  # nothing recorded: no section


# ---------------------------------------------------------------------------- validation split, tuning (issue 11.8)

def test_validation_split_category_is_carved_from_training(cats):
    from sbir_lib.data.paired import validation_split

    p = paired.sketchy_split(cats, gallery_per_class=3)  # 6 training sketches, 5 training photos per class
    v = validation_split(p, seed=0, sketches_per_class=2, photos_per_class=2)
    assert v.level == "category" and v.num_classes == 4
    assert torch.bincount(v.test_labels).tolist() == [2] * 4 and torch.bincount(v.gallery_labels).tolist() == [2] * 4
    assert torch.bincount(v.train_sketch_labels).tolist() == [4] * 4
    assert torch.bincount(v.train_photo_labels).tolist() == [3] * 4
    n = v.names
    # disjoint from the remaining training data, and taken from the training data only (never the test split)
    assert not set(n["val_sketches"]) & set(n["train_sketches"])
    assert not set(n["val_photos"]) & set(n["train_photos"])
    assert set(n["val_sketches"]) | set(n["train_sketches"]) == set(p.names["train_sketches"])
    assert set(n["val_photos"]) | set(n["train_photos"]) == set(p.names["train_photos"])
    assert not set(n["val_sketches"]) & set(p.names["test_sketches"])
    assert not set(n["val_photos"]) & set(p.names["gallery"])
    # seeded: the same seed gives the same split, another seed another one
    again = validation_split(p, seed=0, sketches_per_class=2, photos_per_class=2)
    assert again.names == n and torch.equal(again.gallery, v.gallery)
    other = validation_split(p, seed=1, sketches_per_class=2, photos_per_class=2)
    assert other.names["val_photos"] != n["val_photos"]
    assert v.split.startswith("validation split (seed 0)")
    with pytest.raises(ValueError, match="would leave none for training"):
        validation_split(p, sketches_per_class=6)


def test_validation_split_instance_holds_out_whole_instances():
    from sbir_lib.data.paired import validation_split

    ds = make_synthetic(n_train=10, n_test=4, size=64, seed=0)
    p = paired.qmul_instances(ds)
    v = validation_split(p, seed=0, instance_fraction=0.2)
    val, tr = v.names["val_instances"], v.names["train_instances"]
    assert len(val) == 2 and len(tr) == 8 and sorted(val + tr) == list(range(10))
    assert torch.equal(v.test_sketches, ds.train.sketches[val]) and torch.equal(v.gallery, ds.train.edges[val])
    assert torch.equal(v.train_sketches, ds.train.sketches[tr]) and torch.equal(v.train_photos, ds.train.edges[tr])
    assert v.train_sketch_labels.tolist() == list(range(8)) and v.gallery_labels.tolist() == [0, 1]
    assert v.num_classes == 8
    # the test split is not touched: no validation image is a test image
    for x in v.test_sketches:
        assert not any(torch.equal(x, t) for t in ds.test.sketches)
    assert validation_split(p, seed=0).names == v.names
    assert validation_split(p, seed=3).names != v.names


def test_tune_writes_a_selection_and_runs_name_it(tmp_path):
    from sbir_lib.experiments import tuning as T
    from sbir_lib.experiments import settings

    rec = T.tune("dase_sketchy", "quick", "synthetic_categories", results=tmp_path, device="cpu", log=lambda s: None,
                 search=[(("dase_mems",), {"mems_margin": [2.0, 3.0]})],
                 overrides=dict(iterations=2, batch_size=4, input_size=32, embed_dim=16))
    path = settings.tuning_path("dase_sketchy", "quick", tmp_path)
    assert path.exists() and json.loads(path.read_text())["chosen"] == rec["chosen"]
    assert rec["chosen"]["mems_margin"] in (2.0, 3.0) and len(rec["stages"][0]["candidates"]) == 2
    assert rec["split"].startswith("validation split")
    cfg = C.profile_config("dase_sketchy", "quick", "dase_mems", mems_margin=rec["chosen"]["mems_margin"])
    prov = settings.settings_provenance("dase_sketchy", "quick", cfg, tmp_path)
    assert prov["mems_margin"].startswith("validation split") and "tuning/dase_sketchy.quick.json" in prov["mems_margin"]
    assert prov["center_lr_mult"].startswith("not validated")  # not in this search
    assert "main.py:38-39" in prov["mems_anneal"] and "tester.py" in prov["test_distance"]
    wrong = C.profile_config("dase_sketchy", "quick", "dase_mems", mems_margin=5.0 - rec["chosen"]["mems_margin"])
    assert settings.settings_provenance("dase_sketchy", "quick", wrong, tmp_path)["mems_margin"].startswith("override")
    assert "mems_margin" not in settings.settings_provenance("dase_sketchy", "quick",
                                                      C.profile_config("dase_sketchy", "quick", "dase_softmax"),
                                                      tmp_path)


def test_profiles_use_the_validated_settings():
    """The quick profiles' values are the ones the committed validation records chose."""
    from sbir_lib.core.config import results_root

    found = 0
    for exp in C.EXPERIMENTS:
        rec = settings.load_tuning(exp, "quick", results_root())
        if rec is None:
            continue
        found += 1
        for name, value in rec["chosen"].items():
            ours = PROFILES["quick"].dase_mems[exp].get(name, getattr(class_pairs.RunConfig, name))
            assert ours == (pytest.approx(value) if isinstance(value, float) else value), (exp, name)
    if not found:
        pytest.skip("no results/tuning/*.quick.json recorded")


# ---------------------------------------------------------------------------- test distance, records that recompute

def test_flipmin_is_the_min_over_the_four_flip_combinations():
    g = torch.Generator().manual_seed(0)
    eq, eg = torch.randn(2, 3, 5, generator=g), torch.randn(2, 4, 5, generator=g)
    d = class_pairs.view_distances(eq, eg, "flipmin", normalize=False)
    for i in range(3):
        for j in range(4):
            four = [float(((eq[v, i] - eg[w, j]) ** 2).sum()) for v in (0, 1) for w in (0, 1)]
            assert float(d[i, j]) == pytest.approx(min(four), rel=1e-5)
    mean = class_pairs.view_distances(eq, eg, "mean", normalize=False)
    assert float(mean[0, 0]) == pytest.approx(0.5 * sum(float(((eq[v, 0] - eg[v, 0]) ** 2).sum()) for v in (0, 1)),
                                              rel=1e-5)
    assert d.dtype == torch.float32 and (d <= mean + 1e-5).all()
    with pytest.raises(ValueError, match="flipmin' needs test_views 2"):
        C.profile_config("dase_sketchy", "quick", "dase_mems", test_views=1)
    cfg = C.profile_config("dase_sketchy", "quick", "dase_mems")
    assert (cfg.test_views, cfg.test_distance) == (2, "flipmin")


@pytest.mark.parametrize("experiment,row", [("dase_sketchy", "dase_mems"), ("dase_sketchy", "se_cosface"),
                                            ("dase_qmul", "plain_triplet")])
def test_recompute_round_trip(tmp_path, cats, experiment, row):
    if experiment == "dase_qmul":
        ds, name, ov = make_synthetic(n_train=6, n_test=5, size=256, seed=0), "synthetic", dict(iterations=2,
                                                                                                batch_size=2)
    else:
        ds, name = paired.sketchy_split(cats, 3), "synthetic_categories"
        ov = dict(iterations=2, batch_size=4, input_size=32, embed_dim=16)
    C.run_one(experiment, name, row, 0, "quick", results=tmp_path, dataset=ds, progress=False, log=lambda s: None,
              overrides=ov)
    path = record_path(tmp_path, experiment, name, row, 0, "quick")
    rec = json.loads(path.read_text())
    assert np.load(dist_path(path)).dtype == np.float32
    got = C.recompute(rec, path)
    keys = ["metrics", "metrics_untrained"] + (["metrics_l2"] if row.endswith("mems") else [])
    assert sorted(got) == sorted(keys)
    for k in keys:
        assert got[k] == rec[k]  # exactly, from the files alone
    if row.endswith("mems"):
        assert dist_l2_path(path).exists() and np.load(dist_l2_path(path)).dtype == np.float32
    assert set(rec["claims"]) == {"max_intra_lt_min_inter", "max_intra_over_min_inter",
                                  "max_intra_lt_min_inter_retrieval", "domain_gap"}
    assert ("claims_l2" in rec) == row.endswith("mems")
    assert isinstance(rec["settings_chosen_on"], dict) and rec["settings_chosen_on"]
    # a changed distance file no longer reproduces the record
    np.save(dist_path(path), np.zeros_like(np.load(dist_path(path))))
    assert C.recompute(rec, path)["metrics"] != rec["metrics"]
    if experiment != "dase_qmul":
        with pytest.raises(ValueError, match="query_labels"):
            C.recompute({k: v for k, v in rec.items() if k != "query_labels"}, path)


# ---------------------------------------------------------------------------- the abstract's claims (issue 11.12)

def _clusters(spread: float, gap: float = 0.0, n_classes: int = 4, per: int = 5, dim: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = 10.0 * torch.eye(n_classes, dim)
    ls = torch.arange(n_classes).repeat_interleave(per)
    es = centres[ls] + spread * torch.randn(len(ls), dim, generator=g)
    ep = centres[ls] + spread * torch.randn(len(ls), dim, generator=g)
    ep[:, -1] += gap  # shift every photo along a common direction: a domain gap
    return es, ep, ls, ls.clone()


def test_claims_separated_vs_collapsed():
    from sbir_lib.metrics import geometry as K

    es, ep, ls, lp = _clusters(spread=0.1)
    c = K.claims_of(es, ep, ls, lp, normalize=False)
    assert c["max_intra_lt_min_inter"] == 1.0 and c["max_intra_lt_min_inter_retrieval"] == 1.0
    assert c["max_intra_over_min_inter"] < 1.0 and c["domain_gap"] < 0.05
    z = torch.zeros_like(es)
    collapsed = K.claims_of(z, torch.zeros_like(ep), ls, lp, normalize=False)
    assert collapsed["max_intra_lt_min_inter"] == 0.0 and collapsed["max_intra_lt_min_inter_retrieval"] == 0.0
    assert collapsed["domain_gap"] is None  # 0 / 0
    # overlapping classes: no class is separated; a domain gap shows in the centroid ratio
    mixed = K.claims_of(*_clusters(spread=8.0), normalize=False)
    assert mixed["max_intra_lt_min_inter"] == 0.0 and mixed["max_intra_over_min_inter"] > 1.0
    gapped = K.claims_of(*_clusters(spread=0.1, gap=7.0), normalize=False)
    assert gapped["domain_gap"] == pytest.approx(7.0 / (10 * 2 ** 0.5), rel=0.05)


def test_class_separation_counts_per_class():
    from sbir_lib.metrics import geometry as K

    # class 0 is tight and far away; classes 1 and 2 interleave
    e = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [12.0, 0.0], [11.0, 0.0], [13.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    s = K.class_separation(e, y)
    assert s["max_intra_lt_min_inter"] == pytest.approx(1 / 3)
    # sketches at 0, 10, 11 and photos at 0.1, 12, 13: class 1's sketch (10) is nearer its photo (12) than any
    # other photo, class 2's sketch (11) is nearer class 1's photo (12) than its own (13)
    d = torch.cdist(e[[0, 2, 4]], e[[1, 3, 5]])
    assert K.retrieval_separation(d, y[[0, 2, 4]], y[[1, 3, 5]]) == pytest.approx(2 / 3)


def test_dase_claims_frame_tests_claims_over_seeds(tmp_path):
    """MEMS vs softmax and DASE vs SE from records alone: Welch over seeds, 'n/a: one seed' with one."""
    from sbir_lib.report import claims as RC

    def write(exp, row, seed, claims, tied=0.0):
        p = record_path(tmp_path, exp, "sketchy_mini", row, seed, "quick")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"experiment": exp, "variant": row, "seed": seed, "profile": "quick",
                                 "metrics": {}, "tied_queries": tied, "claims": claims}))

    def claims(sep, ratio, gap):
        return {"max_intra_lt_min_inter": sep, "max_intra_over_min_inter": ratio,
                "max_intra_lt_min_inter_retrieval": sep, "domain_gap": gap}

    for seed, eps in enumerate((0.0, 0.01, -0.01)):
        write("dase_sketchy", "dase_mems", seed, claims(0.8 + eps, 0.9 + eps, 0.5 + eps))
        write("dase_sketchy", "dase_softmax", seed, claims(0.2 + eps, 3.0 + eps, 0.3 + eps))
        write("dase_sketchy", "se_mems", seed, claims(0.5 + eps, 1.5 + eps, 0.9 + eps))
    write("dase_sketchy", "plain_mems", 0, claims(0.4, 2.0, 1.0))
    write("dase_sketchy", "plain_softmax", 0, claims(0.1, 4.0, 1.0), tied=0.5)  # collapsed: left out
    write("dase_sketchy", "plain_cosface", 0, claims(0.3, 2.5, 1.0))
    f = RC.dase_claims_frame(profile="quick", results=tmp_path, experiments=("dase_sketchy",))
    mems = f[(f["claim"] == "MEMS") & (f["better"] == "dase_mems") & (f["worse"] == "dase_softmax")]
    frac = mems[mems["measure"].str.startswith("classes")].iloc[0]
    assert frac["verdict"] == "holds" and frac["better mean"] == pytest.approx(80.0) and frac["diff"] > 0
    ratio = mems[mems["measure"] == "max intra / min inter"].iloc[0]
    assert ratio["verdict"] == "holds" and ratio["better mean"] == pytest.approx(0.9)
    dase = f[(f["claim"] == "DASE") & (f["better"] == "dase_mems") & (f["worse"] == "se_mems")].iloc[0]
    assert dase["verdict"] == "holds" and dase["diff"] == pytest.approx(0.4)  # 0.9 - 0.5: lower is better
    reversed_ = f[(f["claim"] == "DASE") & (f["better"] == "dase_softmax") & (f["worse"] == "se_softmax")]
    assert reversed_["verdict"].iloc[0] == "not run"  # se_softmax is not recorded
    one = f[(f["better"] == "plain_mems") & (f["worse"] == "plain_softmax")].iloc[0]
    assert one["verdict"] == "not run" and one["left out"] == 1  # its only softmax run collapsed
    single = f[(f["better"] == "plain_mems") & (f["worse"] == "plain_cosface")].iloc[0]
    assert single["verdict"] == "n/a: one seed" and single["diff"] == pytest.approx(10.0)
    md = RC.dase_claims_markdown(profile="quick", results=tmp_path)
    assert "## DASE/MEMS" in md and "### MEMS" in md and "### DASE" in md and "holds" in md


# ---------------------------------------------------------------------------- a pretrained trunk, fine-tuned briefly

def test_open_gates_pass_the_same_fraction_of_every_channel():
    from sbir_lib.models import dase as DA
    net = DA.build_backbone("resnet18", "dase", 16, "scratch")
    assert DA.open_gates(net) == len(DA.se_blocks(net)) > 0
    for _, blk in DA.se_blocks(net):
        x = torch.randn(3, blk.channels, 4, 4)
        s = blk.excitation(x, torch.tensor([0, 1, 0]))
        assert torch.allclose(s, torch.full_like(s, DA.OPEN_GATE))
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        DA.open_gates(net, 1.0)


def _tiny_mems(**kw):
    kw = {"iterations": 2, **kw}
    return class_pairs.RunConfig(arch="resnet18", blocks="se", loss="mems", embed_dim=8, input_size=32, batch_size=4,
                                 **kw).validate()


def test_bn_frozen_keeps_the_batch_norm_statistics(cats):
    data = paired.sketchy_split(cats, 3)
    for frozen in (False, True):
        cfg = _tiny_mems(bn_frozen=frozen)
        class_pairs.seed_everything(0)
        start, _ = class_pairs.build(cfg, data.num_classes)
        out = class_pairs.train_model(cfg, data, torch.device("cpu"), progress=False)
        before = {k: v for k, v in start.state_dict().items() if "running_" in k}
        after = out.model.state_dict()
        same = all(torch.equal(v, after[k]) for k, v in before.items())
        assert before and same == frozen


def test_mems_centres_start_at_each_class_photo_embedding(cats):
    data = paired.sketchy_split(cats, 3)
    cfg = _tiny_mems(mems_center_init="photos", lr=1e-12, iterations=1, bn_frozen=True)
    class_pairs.seed_everything(0)
    start, _ = class_pairs.build(cfg, data.num_classes)
    emb = class_pairs.embed(start, data.train_photos, "photo", cfg)[0]
    want = torch.stack([emb[data.train_photo_labels == c].mean(0) for c in range(data.num_classes)])
    out = class_pairs.train_model(cfg, data, torch.device("cpu"), progress=False)
    assert torch.allclose(out.head.centers.detach(), want, atol=1e-4)
    assert _tiny_mems().key() == _tiny_mems(mems_center_init="random", se_init="random", bn_frozen=False).key()
    assert len({_tiny_mems().key(), _tiny_mems(bn_frozen=True).key(), _tiny_mems(se_init="open").key()}) == 3
    with pytest.raises(ValueError, match="mems_center_init"):
        _tiny_mems(mems_center_init="zeros")


def test_learning_table_counts_the_seeds_ahead_of_the_untrained_control():
    import pandas as pd
    df = pd.DataFrame({"dataset": ["shoes"] * 4, "row": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1],
                       "acc@1": [0.3, 0.2, float("nan"), 0.5], "acc@1 (untrained)": [0.1, 0.1, 0.2, 0.4]})
    t = dase_lab.learning_table(df, "acc@1")
    assert list(t["ahead"]) == [2, 1] and list(t["seeds"]) == [2, 2] and t["gain"].iloc[0] == pytest.approx(15.0)
    said = dase_lab.learning_sentence(t, "acc@1")
    assert "every seed for 1 of 2" in said and "shoes b (1 of 2)" in said


def test_comparison_sentences_follow_the_recorded_seeds():
    import pandas as pd
    df = pd.DataFrame({"row": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "seed": [0, 1, 2] * 3, "device": ["cpu"] * 9,
                       "mAP@all": [0.30, 0.31, 0.32, 0.20, 0.21, 0.19, 0.25, float("nan"), 0.40]})
    ahead, behind, noisy = dase_lab.comparison_sentences(df, [("a", "b"), ("b", "a"), ("c", "a")])
    assert ahead.startswith("a is ahead of b by 11.00 points of mAP@all") and "holds" in ahead
    assert behind.startswith("b is behind a") and "reversed" in behind
    assert "2 and 3 seeds" in noisy  # the collapsed (NaN) seed of c is left out
    assert "not recorded" in dase_lab.comparison_sentences(df, [("a", "z")])[0]


@pytest.mark.parametrize("experiment", list(C.EXPERIMENTS))
def test_committed_quick_records_learn_over_three_seeds(experiment):
    """Issue 26, item 10: every committed quick DASE/MEMS row has seeds 0-2, each with its untrained control, none
    collapsed, and on average over the seeds the trained network is ahead of the network it started from."""
    from types import SimpleNamespace

    from sbir_lib.core.config import results_root

    ctx = SimpleNamespace(profile="quick", seeds=[0, 1, 2], seed=0, train_missing=False, device=torch.device("cpu"))
    metric = "acc@1" if C.LEVEL[experiment] == "instance" else "mAP@all"
    for ds in C.DATASETS[experiment][:-1] if experiment == "dase_qmul" else C.DATASETS[experiment][:1]:
        if not (results_root() / experiment / ds).is_dir():
            pytest.skip(f"no committed {experiment} records on {ds}")
        df = dase_lab.records_frame(ctx, experiment, ds, results=results_root())
        assert len(df) == 3 * len(C.EXPERIMENTS[experiment]), (experiment, ds, len(df))
        assert not df["collapsed"].any(), df[df["collapsed"]][["row", "seed"]]
        assert df[f"{metric} (untrained)"].notna().all()
        learned = dase_lab.learning_table(df, metric)
        assert (learned["gain"] > 0).all(), learned[learned["gain"] <= 0]
