"""Tests for the DASE/MEMS paper's losses in sbir_lib.losses.losses: MEMS, its margin schedule, CosFace, softmax."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sbir_lib.losses import losses as L

torch.set_num_threads(2)


def _literal_mems(f, c, y, m):
    """The formula written out: z_nj = -||f_n - c_j||^2, times m^2 where j = y_n."""
    n, k = f.shape[0], c.shape[0]
    z = torch.empty(n, k, dtype=f.dtype)
    for i in range(n):
        for j in range(k):
            d = float(((f[i] - c[j]) ** 2).sum())
            z[i, j] = -(m ** 2) * d if j == int(y[i]) else -d
    return z


def test_mems_logits_by_hand():
    f = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    c = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    y = torch.tensor([0, 2])
    z = L.mems_logits(f, c, y, margin=2.0)
    # sample 0: d = [1, 4, 2], true class 0 -> -4*1; sample 1: d = [1, 2, 0], true class 2 -> -4*0
    assert torch.allclose(z, torch.tensor([[-4.0, -4.0, -2.0], [-1.0, -2.0, 0.0]]))


@pytest.mark.parametrize("m", [1.0, 1.5, 3.0])
def test_mems_logits_match_formula(m):
    g = torch.Generator().manual_seed(0)
    f = torch.randn(6, 5, generator=g, dtype=torch.float64)
    c = torch.randn(4, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 3, 1])
    assert torch.allclose(L.mems_logits(f, c, y, m), _literal_mems(f, c, y, m), atol=1e-10)


def test_margin_one_is_plain_squared_distance_logits():
    g = torch.Generator().manual_seed(1)
    f, c = torch.randn(8, 3, generator=g), torch.randn(5, 3, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    z = L.mems_logits(f, c, y, 1.0)
    assert torch.allclose(z, -torch.cdist(f, c).pow(2), atol=1e-5)
    # ... so the loss with m = 1 is cross-entropy on -||f - c||^2, and the module's inference logits agree
    loss = L.MEMSLoss(5, 3, margin=1.0)
    with torch.no_grad():
        loss.centers.copy_(c)
    assert loss(f, y).item() == pytest.approx(F.cross_entropy(-torch.cdist(f, c).pow(2), y).item(), rel=1e-5)
    assert torch.allclose(loss.logits(f), z, atol=1e-5)


def test_margin_raises_loss_for_correct_samples():
    # f sits closest to its own centre: a larger margin multiplies that distance, so the loss grows
    c = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    f = torch.tensor([[0.5, 0.0]])
    y = torch.tensor([0])
    loss = L.MEMSLoss(2, 2, margin=1.0)
    with torch.no_grad():
        loss.centers.copy_(c)
    vals = [loss(f, y, margin=m).item() for m in (1.0, 2.0, 4.0)]
    assert vals[0] < vals[1] < vals[2]
    # the margin boundary: m * ||f - c_y|| = ||f - c_other|| <=> equal logits (here 0.5 m = 2.5 at m = 5)
    z = L.mems_logits(f, c, y, 5.0)
    assert z[0, 0].item() == pytest.approx(z[0, 1].item())


def test_mems_rejects_bad_margins_and_shapes():
    f, c, y = torch.zeros(2, 3), torch.zeros(4, 3), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=">= 1"):
        L.mems_logits(f, c, y, 0.5)
    with pytest.raises(ValueError, match="centers"):
        L.mems_logits(f, torch.zeros(4, 2), y, 2.0)
    with pytest.raises(ValueError, match="one entry per feature"):
        L.mems_logits(f, c, torch.tensor([0]), 2.0)
    with pytest.raises(ValueError, match=">= 1"):
        L.MEMSLoss(3, 2, margin=0.9)


def test_margin_schedule_is_linear_then_constant():
    s = [L.mems_margin_schedule(t, 3.0, 10) for t in (0, 5, 10, 50)]
    assert s == pytest.approx([1.0, 2.0, 3.0, 3.0])
    assert L.mems_margin_schedule(0, 2.5, 0) == 2.5  # no annealing
    loss = L.MEMSLoss(3, 2, margin=4.0, anneal_steps=4)
    assert loss.margin == 1.0
    loss.set_step(2)
    assert loss.margin == pytest.approx(2.5)
    assert int(loss.state_dict()["step"]) == 2  # the schedule position is saved with the weights


def test_cosface_logits_match_formula():
    g = torch.Generator().manual_seed(2)
    f, w = torch.randn(5, 4, generator=g), torch.randn(3, 4, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1])
    z = L.cosface_logits(f, w, y, margin=0.35, scale=32.0)
    cos = torch.stack([torch.stack([F.cosine_similarity(f[i], w[j], dim=0) for j in range(3)]) for i in range(5)])
    ref = 32.0 * (cos - 0.35 * F.one_hot(y, 3))
    assert torch.allclose(z, ref, atol=1e-4)
    assert torch.allclose(L.cosface_logits(f, w, None, 0.35, 32.0), 32.0 * cos, atol=1e-4)
    with pytest.raises(ValueError, match="margin"):
        L.CosFaceLoss(3, 4, margin=1.5)


def test_softmax_loss_is_cross_entropy_of_linear_layer():
    torch.manual_seed(0)
    head = L.SoftmaxLoss(4, 6)
    f, y = torch.randn(7, 6), torch.randint(0, 4, (7,))
    assert head(f, y).item() == pytest.approx(F.cross_entropy(head.fc(f), y).item())
    assert head.normalize_features and not L.MEMSLoss(4, 6).normalize_features


def test_make_classification_loss_lists_allowed_names():
    assert isinstance(L.make_classification_loss("mems", 3, 2, margin=2.0), L.MEMSLoss)
    with pytest.raises(ValueError, match="allowed: softmax, cosface, mems"):
        L.make_classification_loss("arcface", 3, 2)
    with pytest.raises(ValueError, match="num_classes"):
        L.SoftmaxLoss(1, 2)


@pytest.mark.parametrize("name", ["softmax", "cosface", "mems"])
def test_losses_separate_a_toy_problem(name):
    """Learnable 2-D features of 3 classes plus the head: a few hundred Adam steps classify all points."""
    torch.manual_seed(0)
    y = torch.arange(3).repeat_interleave(10)
    f = torch.nn.Parameter(torch.randn(30, 2) * 0.1)
    head = L.make_classification_loss(name, 3, 2, **({"margin": 2.0} if name == "mems" else {}))
    opt = torch.optim.Adam([f, *head.parameters()], lr=0.05)
    first = None
    for _ in range(300):
        loss = head(f, y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
    assert (head.logits(f).argmax(1) == y).float().mean().item() == 1.0
    if name == "mems":  # the margin holds: m * own distance < every other distance
        d = torch.cdist(f.detach(), head.centers.detach())
        own = d[torch.arange(30), y]
        other = d.masked_fill(torch.nn.functional.one_hot(y, 3).bool(), math.inf).min(1).values
        assert (2.0 * own < other).float().mean().item() > 0.9


def test_runs_anneal_as_the_authors_reach_final_margin_at_half_the_run():
    """MEMS: 1 -> m over the first half (authors: 100k of 200k steps, main.py:38-39); CosFace: 0 -> m over the
    same steps (authors' models/losses.py:59-65)."""
    from sbir_lib.experiments import dase_mems as C
    from sbir_lib.training import class_pairs

    for exp in ("dase_sketchy", "dase_qmul"):
        cfg = C.profile_config(exp, "quick", "dase_mems", iterations=100)
        assert cfg.mems_anneal == 0.5
        _, head = class_pairs.build(cfg, num_classes=5)
        final = cfg.mems_margin
        seen = {}
        for step in (0, 25, 49, 50, 75, 99):
            head.set_step(step)
            seen[step] = head.margin
        assert seen[0] == 1.0 and seen[25] == pytest.approx(1 + (final - 1) * 0.5)
        assert seen[49] < final and seen[50] == seen[75] == seen[99] == final
    cfg = C.profile_config("dase_sketchy", "quick", "dase_cosface", iterations=100)
    _, head = class_pairs.build(cfg, num_classes=5)
    head.set_step(0)
    assert head.margin == 0.0
    head.set_step(25)
    assert head.margin == pytest.approx(cfg.cosface_margin / 2)
    head.set_step(50)
    assert head.margin == cfg.cosface_margin


def test_cosface_annealing_interpolates_the_cosine_like_the_authors():
    """The authors' CosFace: cos_y -> (1 - a) cos_y + a (cos_y - m) = cos_y - a m."""
    g = torch.Generator().manual_seed(0)
    f, y = torch.randn(6, 4, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    head = L.CosFaceLoss(3, 4, margin=0.4, scale=10.0, anneal_steps=10)
    w = head.weight.detach()
    for step, a in ((0, 0.0), (5, 0.5), (10, 1.0), (20, 1.0)):
        head.set_step(step)
        cos = F.normalize(f, dim=1) @ F.normalize(w, dim=1).t()
        mask = F.one_hot(y, 3).bool()
        ref = cos.clone()
        ref[mask] = cos[mask] * (1 - a) + (cos[mask] - 0.4) * a
        assert head(f, y).item() == pytest.approx(F.cross_entropy(10.0 * ref, y).item(), rel=1e-5)
    assert L.CosFaceLoss(3, 4, margin=0.4).margin == 0.4  # no annealing by default
