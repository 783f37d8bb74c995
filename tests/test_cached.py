"""Tests for sbir_lib.training.cached: the frozen-trunk cache is exact (same maps, same gradients)."""
from __future__ import annotations

import pytest
import torch

from sbir_lib.data import augment as AUG
from sbir_lib.data.synthetic import make_synthetic
from sbir_lib.losses import losses as L
from sbir_lib.models.dssa import DSSANet
from sbir_lib.training import triplet as T
from sbir_lib.training.cached import build_cache, cached_batch, trunk_stage

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="module")
def syn():
    return make_synthetic(n_train=6, n_test=4, size=256, seed=0)


def _model(variant="full", stage="conv4"):
    torch.manual_seed(0)
    m = DSSANet(variant)
    m.freeze(stage)
    return m


def test_trunk_stage_follows_the_authors():
    assert trunk_stage("auto", attention=True, pretrained=True) == "conv4"
    assert trunk_stage("auto", attention=False, pretrained=True) == "conv5"
    assert trunk_stage("auto", attention=True, pretrained=False) is None
    assert trunk_stage("conv5", attention=True, pretrained=False) == "conv5"
    assert trunk_stage("none", attention=False, pretrained=True) is None


@pytest.mark.parametrize("variant,stage", [("full", "conv4"), ("base", "conv5")])
def test_head_on_a_cached_view_equals_the_network_on_that_view(syn, variant, stage):
    m = _model(variant, stage).eval()
    imgs = syn.train.sketches[:3]
    cache = build_cache(m, imgs, 4, stage, torch.Generator().manual_seed(1), "cpu")
    assert cache.maps.shape[:2] == (3, 4) and cache.maps.dtype == torch.float32
    v = cache.views.reshape(-1, 3)
    x = AUG.to_input(AUG.crop_views(imgs.repeat_interleave(4, dim=0), v[:, 0], v[:, 1], v[:, 2].bool()))
    with torch.no_grad():
        full = m.embed(x)
        cached = m.embed_from(cache.maps.reshape(12, *cache.maps.shape[2:]), stage)
    torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-6)
    # the views follow augment's distribution: offsets within 0..30 (the authors'), both flips over many draws
    many = build_cache(m, imgs[:1], 64, stage, torch.Generator().manual_seed(2), "cpu")
    assert many.views[..., :2].min() >= 0 and many.views[..., :2].max() <= 30
    assert set(many.views[..., 2].flatten().tolist()) == {0, 1}


def test_a_step_from_the_cache_has_the_uncached_gradients(syn):
    stage = "conv4"
    m_c, m_u = _model("full", stage), _model("full", stage)
    m_u.load_state_dict(m_c.state_dict())
    energy = L.make_energy("holef", m_c.embed_dim)
    sk = build_cache(m_c, syn.train.sketches, 2, stage, torch.Generator().manual_seed(3), "cpu")
    ed = build_cache(m_c, syn.train.edges, 2, stage, torch.Generator().manual_seed(4), "cpu")
    a, p, n = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    g = torch.Generator().manual_seed(5)
    h = cached_batch(sk, ed, a, p, n, g)
    # the same views, through the whole (uncached) network
    idx = torch.randint(0, 2, (9,), generator=torch.Generator().manual_seed(5))
    views = torch.cat([sk.views[a, idx[:3]], ed.views[p, idx[3:6]], ed.views[n, idx[6:]]])
    imgs = torch.cat([syn.train.sketches[a], syn.train.edges[p], syn.train.edges[n]])
    x = AUG.to_input(AUG.crop_views(imgs, views[:, 0], views[:, 1], views[:, 2].bool()))

    def loss_of(emb):
        s, ep, en = emb.chunk(3)
        return L.triplet_hinge(energy.paired(s, ep), energy.paired(s, en), 0.3)

    m_c.train(), m_u.train()
    loss_c = loss_of(m_c.embed_from(h, stage))
    loss_u = loss_of(m_u.embed(x))
    torch.testing.assert_close(loss_c, loss_u, rtol=1e-5, atol=1e-6)
    loss_c.backward()
    loss_u.backward()
    trained = [(name, pc, pu) for (name, pc), pu in zip(m_c.named_parameters(), m_u.parameters()) if pc.requires_grad]
    assert trained and all(name.startswith(("backbone.conv5", "backbone.fc", "attention")) for name, _, _ in trained)
    for name, pc, pu in trained:
        torch.testing.assert_close(pc.grad, pu.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert all(p.grad is None for p in m_u.parameters() if not p.requires_grad)


def test_training_from_the_cache_records_it(syn, tmp_path):
    init = tmp_path / "init.pt"
    torch.save({"model": DSSANet("base").backbone.state_dict()}, init)
    cfg = T.profile_config("quick", experiment="pretrain", variant="base", iterations=3, batch_size=4, init=str(init),
                           cache_views=2, test_views=1)  # the quick profile's Sketch-a-Net recipe
    res = T.train(cfg, syn, device="cpu", progress=False)
    assert res.cache["stage"] == "conv5" and res.cache["views"] == 2 and res.cache["bytes"] > 0
    assert len(res.history["loss"]) == 1 and res.iterations_done == 3
    with pytest.raises(ValueError, match="cache_views"):
        T.profile_config("quick", experiment="pretrain", cache_views=2, augment="none")
    # from scratch nothing is frozen: the cache does not apply and the engine runs as usual
    res0 = T.train(T.profile_config("quick", experiment="pretrain", variant="base", iterations=2, batch_size=4,
                                    cache_views=2, test_views=1), syn, device="cpu", progress=False)
    assert res0.cache is None


def test_a_channels_last_cache_gives_the_same_batches():
    from sbir_lib.training.cached import ViewCache

    maps = torch.randn(4, 2, 256, 15, 15)
    views = torch.zeros(4, 2, 3, dtype=torch.long)
    plain = ViewCache("conv4", maps, views)
    cl = ViewCache("conv4", maps.permute(0, 1, 3, 4, 2).contiguous(), views, channels_last=True)
    i = torch.tensor([0, 3, 1])
    x1 = cached_batch(plain, plain, i, i, i, torch.Generator().manual_seed(0))
    x2 = cached_batch(cl, cl, i, i, i, torch.Generator().manual_seed(0))
    assert torch.equal(x1, x2) and x2.is_contiguous(memory_format=torch.channels_last)
