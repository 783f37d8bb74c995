"""Tests for sbir_lib.training.pretrain: data packing (a pretrain pack of sbir_lib.data.pack, old layouts too),
category triplet draws (sbir_lib.data.samplers), the random affine warp (sbir_lib.data.augment), the training
stages end to end on a tiny synthetic category set, resume, the checkpoint format (loads into DSSANet) and the
CLI's errors. Fast (seconds), CPU only, no downloads."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sbir_lib.data import augment as A
from sbir_lib.data import datasets as D
from sbir_lib.data.pack import pack_category_dataset, read_pack
from sbir_lib.data.samplers import CategoryTriplets
from sbir_lib.data.synthetic import make_synthetic_categories
from sbir_lib.training import pretrain as P
from sbir_lib.models.dssa import LAYERS, DSSANet, SketchANet
from sbir_lib.models.sketchanet_init import load_sketchanet_init


@pytest.fixture(scope="module")
def tiny() -> P.PretrainData:
    return P.synthetic_data(n_classes=3, per_class=4, n_test_per_class=2, photos_per_class=2, seed=1)


def _cfg(**kw) -> P.PretrainConfig:
    base = dict(classify_steps=3, triplet_steps=2, batch_size=2, triplet_batch=1, warmup=1, log_every=1,
                checkpoint_every=2, categories=None)
    base.update(kw)
    return P.profile_config("quick", **base)


def test_config_rejects_bad_values_with_the_allowed_ones():
    with pytest.raises(ValueError, match="quick, cpu, full"):
        P.profile_config("medium")
    with pytest.raises(ValueError, match="classify, triplet"):
        P.profile_config("quick", stages="classify,finetune")
    with pytest.raises(ValueError, match="order"):
        P.profile_config("quick", stages="triplet,classify")
    with pytest.raises(ValueError, match="allowed"):
        P.profile_config("quick", epochs=3)
    with pytest.raises(ValueError, match="batch_size"):
        P.profile_config("quick", batch_size=1)
    assert P.profile_config("quick", stages="triplet").stages == ("triplet",)
    assert P.profile_config("full").categories is None
    assert P.default_out("quick").name == "sketchanet_sketchy_mini.quick.pt"
    assert P.default_out("full").name == "sketchanet_sketchy_mini.pt"


def test_data_is_uint8_white_background_and_labelled(tiny):
    assert tiny.sketches.dtype == torch.uint8 and tiny.edges.shape[1:] == (256, 256)
    assert tiny.edges.float().mean() > 200  # white background, dark strokes
    assert sorted(set(tiny.edge_labels.tolist())) == [0, 1, 2]
    sub = tiny.subset(2)
    assert sub.categories == tiny.categories[:2] and int(sub.sketch_labels.max()) == 1
    assert len(sub.test_sketches) == 4


def test_category_triplets(tiny):
    tr = CategoryTriplets(tiny.sketch_labels, tiny.edge_labels, 3, generator=torch.Generator().manual_seed(0))
    a, p, n = tr.sample(500)
    ya, yp, yn = tiny.sketch_labels[a], tiny.edge_labels[p], tiny.edge_labels[n]
    assert (ya == yp).all() and (ya != yn).all()
    assert len(set(yn.tolist())) == 3 and len(set(p.tolist())) == len(tiny.edges)  # every edge map reachable
    with pytest.raises(ValueError, match="2 categories"):
        CategoryTriplets(tiny.sketch_labels[:1] * 0, tiny.edge_labels[:1] * 0, 1)


def test_random_affine_keeps_white_and_is_identity_at_zero():
    ink = torch.zeros(3, 1, 32, 32)
    ink[:, :, 10:20, 12] = 1.0
    g = torch.Generator().manual_seed(0)
    assert torch.equal(A.random_affine(ink, 0, 0, 0, g), ink)
    out = A.random_affine(ink, 15, 0.1, 0.05, g)
    assert out.shape == ink.shape and out.min() >= 0 and out.max() <= 1
    assert A.random_affine(torch.zeros(2, 1, 16, 16), 30, 0.2, 0.1, g).abs().max() == 0  # padding is white
    assert not torch.equal(out, ink)


def test_pack_roundtrip_and_corruption(tiny, tmp_path):
    path = P.pack(tmp_path / "p.npz", tiny)
    back = P.load_packed(path)
    for name in ("sketches", "sketch_labels", "test_sketches", "test_labels", "edges", "edge_labels"):
        assert torch.equal(getattr(back, name), getattr(tiny, name)), name
    assert back.categories == tiny.categories and back.split == tiny.split
    assert back.edge_settings == json.loads(json.dumps(tiny.edge_settings))
    assert back.packed.startswith("p.npz sha256=")
    with pytest.raises(ValueError, match=".npz"):
        P.pack(tmp_path / "p.bin", tiny)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(D.DatasetCorruptError, match="bad.npz"):
        P.load_packed(bad)
    with pytest.raises(FileNotFoundError, match="pretrain pack"):
        P.load_packed(tmp_path / "missing.npz")


def test_pack_header_earlier_layouts_and_wrong_kind(tiny, tmp_path):
    arrays, header = read_pack(P.pack(tmp_path / "p.npz", tiny), "pretrain")
    assert (header["format"], header["version"], header["kind"]) == ("sbir_lib.data.pack", 2, "pretrain")
    assert arrays["edges"].dtype == np.uint8 and arrays["edge_labels"].dtype == np.int16
    # before version 2 a pretraining pack kept its header in a 'meta' JSON array: such files still load
    meta = {k: header[k] for k in ("source", "split", "edge_settings", "categories")}
    for fmt in ("sbir_lib.training.pretrain.pack/1", "sbir_lib.pretrain.pack/1"):
        old = tmp_path / "old.npz"
        blob = np.frombuffer(json.dumps({"format": fmt, **meta}).encode(), dtype=np.uint8)
        np.savez_compressed(old, meta=blob, **arrays)
        back = P.load_packed(old)
        assert torch.equal(back.edges, tiny.edges) and torch.equal(back.test_labels, tiny.test_labels)
        assert back.categories == tiny.categories and back.edge_settings == meta["edge_settings"]
    # another kind of pack is refused with the command that writes the right one
    cats = make_synthetic_categories(n_classes=2, per_class=1, n_test_per_class=1, photos_per_class=1, size=16)
    pack_category_dataset(cats, tmp_path / "c.npz")
    with pytest.raises(D.DatasetCorruptError, match="python -m sbir_lib.training.pretrain pack --out"):
        P.load_packed(tmp_path / "c.npz")


def test_pretrain_end_to_end_checkpoint_loads_into_dssanet(tiny, tmp_path):
    out = tmp_path / "ck.pt"
    res = P.pretrain(_cfg(), tiny, device="cpu", out=out, progress=False)
    assert out.exists() and not (tmp_path / "ck.pt.resume").exists()
    ck = torch.load(out, map_location="cpu", weights_only=True)  # plain data only
    pv = ck["provenance"]
    for key in ("data", "split", "stages", "steps", "batch", "lr", "seed", "profile", "device", "torch",
                "git_commit", "wall_time_s", "heldout_top1", "heldout_map", "edge_extractor"):
        assert key in pv, key
    assert pv["stages"] == ["classify", "triplet"] and pv["steps"] == {"classify": 3, "triplet": 2}
    assert 0.0 <= pv["heldout_top1"] <= 1.0 and 0.0 < pv["heldout_map"] <= 1.0
    assert pv["edge_extractor"]["sigma"] == 2.0
    assert ck["classifier"].shape == (3, 256)
    assert res.history["stage"] == ["classify"] * 3 + ["triplet"] * 2
    assert all(np.isfinite(res.history["loss"]))
    # the engine's init= path: all seven backbone layers, equal to the trained weights
    net = DSSANet("full")
    rep = load_sketchanet_init(net, out, strict=True)
    assert rep.loaded == list(LAYERS) and rep.missing == ["attention"]
    sd = res.model.state_dict()
    for layer in LAYERS:
        assert torch.equal(getattr(net.backbone, layer).weight.detach(), sd[f"{layer}.weight"].float())


def test_resume_reproduces_an_uninterrupted_run(tiny, tmp_path, monkeypatch):
    cfg = _cfg(classify_steps=4, stages="classify", checkpoint_every=2)
    ref = P.pretrain(cfg, tiny, device="cpu", out=tmp_path / "a.pt", progress=False)
    calls = {"n": 0}
    real_step = torch.optim.AdamW.step

    def failing_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interruption")
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", failing_step)
    with pytest.raises(KeyboardInterrupt):
        P.pretrain(cfg, tiny, device="cpu", out=tmp_path / "b.pt", progress=False)
    assert (tmp_path / "b.pt.resume").exists() and not (tmp_path / "b.pt").exists()
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    res = P.pretrain(cfg, tiny, device="cpu", out=tmp_path / "b.pt", progress=False)
    assert not (tmp_path / "b.pt.resume").exists()
    assert res.history["loss"] == ref.history["loss"]
    for k, v in ref.model.state_dict().items():
        assert torch.allclose(res.model.state_dict()[k], v, atol=1e-6), k


def test_cli_packed_run_and_errors(tiny, tmp_path, capsys):
    packed = P.pack(tmp_path / "tiny.npz", tiny)
    out = tmp_path / "cli.pt"
    rc = P.main(["run", "--profile", "quick", "--packed", str(packed), "--steps", "2", "--triplet-steps", "1",
                 "--batch-size", "2", "--triplet-batch", "1", "--device", "cpu", "--out", str(out), "--no-progress"])
    assert rc == 0 and out.exists()
    assert "held-out top-1" in capsys.readouterr().out
    assert torch.load(out, weights_only=True)["provenance"]["packed"].startswith("tiny.npz")
    model = SketchANet()
    assert load_sketchanet_init(model, out).missing == []

    assert P.main(["run", "--profile", "medium", "--packed", str(packed)]) == 2
    assert "quick, cpu, full" in capsys.readouterr().err
    assert P.main(["run", "--profile", "quick", "--stages", "nope", "--packed", str(packed)]) == 2
    assert "classify, triplet" in capsys.readouterr().err
    assert P.main(["run", "--profile", "quick", "--root", str(tmp_path / "nodata"),
                   "--out", str(tmp_path / "x.pt")]) == 2
    assert "data_download.py --dataset sketchy-mini" in capsys.readouterr().err
