"""Tests for the stronger offline init (issue [init]): sketch augmentation (sbir_lib.data.sketch_augment), the
QMUL pair pool with its held-out validation pairs (sbir_lib.training.pretrain_data), instance classes and
instance triplets in the pretraining (sbir_lib.training.pretrain), and the pack round trip. Tiny synthetic data,
CPU, seconds."""
from __future__ import annotations

import pytest
import torch

from sbir_lib.data import sketch_augment as SA
from sbir_lib.data.synthetic import make_synthetic
from sbir_lib.training import pretrain as P
from sbir_lib.training import pretrain_data as PD
from sbir_lib.training.triplet import carve_validation


def _ink(width: int) -> torch.Tensor:
    ink = torch.zeros(2, 1, 32, 32)
    ink[:, :, 8:24, 10:10 + width] = 1.0
    return ink


def test_thicken_and_thin_change_stroke_width_by_one_pixel():
    # a 2 x 16 stroke becomes 3 x 17 (one column wider, one row longer), a 3 x 16 one 2 x 15
    assert SA.thicken(_ink(2))[0].sum() == 3 * 17
    assert SA.thin(_ink(3))[0].sum() == 2 * 15
    # a 1-px stroke would vanish: kept as it is
    assert torch.equal(SA.thin(_ink(1)), _ink(1))


def test_erase_parts_only_removes_ink_and_stroke_augment_is_seeded():
    ink = torch.zeros(4, 1, 64, 64)
    ink[:, :, 10:54, 20] = 1.0
    ink[:, :, 30, 5:60] = 1.0
    out = SA.erase_parts(ink, n=2, size=0.1, generator=torch.Generator().manual_seed(0))
    assert (out <= ink).all() and (out.sum((1, 2, 3)) < ink.sum((1, 2, 3))).all()
    blank = torch.zeros(2, 1, 16, 16)
    assert torch.equal(SA.erase_parts(blank, generator=torch.Generator().manual_seed(0)), blank)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = SA.stroke_augment(ink, 1.0, g1), SA.stroke_augment(ink, 1.0, g2)
    assert torch.equal(a, b) and not torch.equal(a, ink)
    assert SA.stroke_augment(ink, 0.0, g1) is ink
    with pytest.raises(ValueError, match="float ink"):
        SA.thicken(torch.zeros(2, 16, 16))


@pytest.fixture(scope="module")
def splits():
    return {name: make_synthetic(n_train=12, n_test=4, seed=k).train
            for k, name in enumerate(("shoes", "chairs"))}


def test_pair_pool_holds_out_exactly_the_validation_instances(splits):
    pool = PD.qmul_pairs(["shoes", "chairs"], "quick", splits=splits)
    assert pool.ranges() == [(0, 9), (9, 18)] and len(pool.val_sketches) == 6
    for k, name in enumerate(("shoes", "chairs")):
        train, val = carve_validation(splits[name], 3, seed=0)  # tiny split: a quarter held out
        assert torch.equal(pool.sketches[pool.group == k], train.sketches)
        assert torch.equal(pool.val_edges[pool.val_group == k], val.edges)
    with pytest.raises(ValueError, match="shoes, chairs, handbags"):
        PD.qmul_pairs(["bikes"], "quick", splits=splits)


def test_other_in_group_stays_in_the_dataset_and_differs():
    group = torch.tensor([0] * 4 + [1] * 3)
    starts, sizes = torch.tensor([0, 4]), torch.tensor([4, 3])
    i = torch.arange(7).repeat(50)
    j = P._other_in_group(i, group, starts, sizes, torch.Generator().manual_seed(0))
    assert (group[j] == group[i]).all() and (j != i).all()
    assert set(j[group[i] == 1].tolist()) == {4, 5, 6}


def test_pretraining_with_pairs_end_to_end_and_pack_roundtrip(splits, tmp_path):
    data = P.synthetic_data(n_classes=3, per_class=4, n_test_per_class=2, photos_per_class=2, seed=1)
    data = data.with_pairs(PD.qmul_pairs(["shoes", "chairs"], "quick", splits=splits))
    cfg = P.profile_config("quick", "sketchy_qmul", pairs=("shoes", "chairs"), classify_steps=2, triplet_steps=2,
                           batch_size=4, triplet_batch=2, warmup=1, log_every=1, categories=None, stroke_aug=0.5)
    assert cfg.pair_fraction > 0 and cfg.stroke_aug > 0
    res = P.pretrain(cfg, data, device="cpu", out=tmp_path / "c.pt", progress=False)
    pv = res.provenance
    assert res.classifier.shape[0] == 3 + 18  # categories, then one class per training pair
    assert set(pv["qmul_val"]) == {"shoes", "chairs"} and pv["qmul_val"]["shoes"]["queries"] == 3
    assert 0 <= pv["qmul_val"]["chairs"]["acc@1"] <= 1 and "18 QMUL training pairs" in pv["pairs"]
    path = P.pack(tmp_path / "p.npz", data)
    back = P.load_packed(path)
    assert back.pairs.datasets == ["shoes", "chairs"] and torch.equal(back.pairs.val_edges, data.pairs.val_edges)
    assert torch.equal(back.pairs.group, data.pairs.group)
    # the settings demand pairs the data lacks: a message naming the command
    with pytest.raises(ValueError, match="--init-name sketchy_qmul"):
        P.pretrain(cfg, data.with_pairs(None), device="cpu", progress=False)
    small = PD.qmul_pairs(["shoes"], "quick", splits={"shoes": make_synthetic(n_train=8, n_test=2, size=64).train})
    with pytest.raises(ValueError, match="same size"):
        data.with_pairs(small)


def test_pair_settings_are_validated():
    with pytest.raises(ValueError, match="pair_fraction"):
        P.profile_config("quick", pair_fraction=0.5)  # no pairs named
    with pytest.raises(ValueError, match="pairs must be some of"):
        P.profile_config("quick", pairs=("bikes",), pair_fraction=0.5)
    with pytest.raises(ValueError, match="unknown init"):
        P.profile_config("quick", "imagenet_edges")
    assert P.default_out("quick", "sketchy_qmul").name == "sketchanet_sketchy_qmul.quick.pt"
