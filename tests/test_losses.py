"""Tests for sbir_lib.losses.losses: triplet hinge, distances, learned energies (HOLEF, Mahalanobis, ...)."""
from __future__ import annotations

import math

import pytest
import torch

from sbir_lib.losses import losses
from sbir_lib.losses.losses import (EuclideanEnergy, HOLEFEnergy, MahalanobisEnergy, TripletLoss, WeightedEuclideanEnergy,
                             holef_distance, holef_distance_naive, holef_pairwise, make_energy,
                             pairwise_squared_euclidean, squared_euclidean, triplet_hinge)

torch.set_num_threads(2)


def test_triplet_hinge_by_hand():
    d_pos = torch.tensor([0.1, 1.0, 0.5])
    d_neg = torch.tensor([1.0, 0.2, 0.6])
    # relu(0.3 + [-0.9, 0.8, -0.1]) = [0, 1.1, 0.2]  -> mean 1.3 / 3
    assert triplet_hinge(d_pos, d_neg, margin=0.3).item() == pytest.approx(1.3 / 3)
    assert triplet_hinge(d_pos, d_neg, margin=0.0).item() == pytest.approx(0.8 / 3)
    with pytest.raises(ValueError):
        triplet_hinge(d_pos, d_neg[:2])


def test_squared_euclidean_by_hand():
    a = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    b = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    assert squared_euclidean(a, b).tolist() == [25.0, 4.0]
    d = pairwise_squared_euclidean(a, b)
    assert torch.allclose(d, torch.tensor([[25.0, 1.0], [8.0, 4.0]]))


def test_pairwise_euclidean_vs_cdist():
    torch.manual_seed(0)
    q, g = torch.randn(7, 16, dtype=torch.float64), torch.randn(9, 16, dtype=torch.float64)
    assert torch.allclose(pairwise_squared_euclidean(q, g), torch.cdist(q, g).pow(2))
    assert (pairwise_squared_euclidean(q, q).diagonal() >= 0).all()


def test_holef_by_hand():
    s = torch.tensor([[1.0, 2.0]])
    p = torch.tensor([[0.0, 1.0]])
    w = torch.tensor([[1.0, 0.5], [-1.0, 2.0]])
    # outer differences s_i - p_j: [[1, 0], [2, 1]] -> squares [[1, 0], [4, 1]]
    expected = 1 * 1 + 0.5 * 0 + (-1) * 4 + 2 * 1
    assert holef_distance_naive(s, p, w).item() == pytest.approx(expected)
    assert holef_distance(s, p, w).item() == pytest.approx(expected)
    assert holef_pairwise(s, p, w).item() == pytest.approx(expected)


def test_holef_identity_is_squared_euclidean():
    torch.manual_seed(0)
    s, p = torch.randn(5, 12, dtype=torch.float64), torch.randn(5, 12, dtype=torch.float64)
    eye = torch.eye(12, dtype=torch.float64)
    assert torch.allclose(holef_distance(s, p, eye), squared_euclidean(s, p))
    assert torch.allclose(holef_distance_naive(s, p, eye), squared_euclidean(s, p))
    e = HOLEFEnergy(12).double()
    assert torch.allclose(e.pairwise(s, p), pairwise_squared_euclidean(s, p))
    assert e.regularizer().item() == 0.0


def test_holef_random_w_matches_naive():
    torch.manual_seed(1)
    d = 10
    w = torch.randn(d, d, dtype=torch.float64)
    s, p = torch.randn(6, d, dtype=torch.float64), torch.randn(6, d, dtype=torch.float64)
    assert torch.allclose(holef_distance(s, p, w), holef_distance_naive(s, p, w))
    q, g = torch.randn(4, d, dtype=torch.float64), torch.randn(7, d, dtype=torch.float64)
    naive = torch.stack([holef_distance_naive(q[i:i + 1].expand(7, d), g, w) for i in range(4)])
    assert torch.allclose(holef_pairwise(q, g, w), naive)
    # the paired form is the diagonal of the pairwise one
    assert torch.allclose(holef_pairwise(s, p, w).diagonal(), holef_distance(s, p, w))


def test_holef_gradients_reach_w_and_regularizer():
    torch.manual_seed(2)
    e = HOLEFEnergy(8, reg_lambda=0.1)
    loss_fn = TripletLoss(e, margin=1.0)
    a, p, n = (torch.randn(4, 8, requires_grad=True) for _ in range(3))
    loss, stats = loss_fn(a, p, n)
    loss.backward()
    assert e.W.grad is not None and e.W.grad.abs().sum() > 0
    assert a.grad is not None
    # Eq. 7 regulariser by hand after moving W off the identity
    with torch.no_grad():
        e.W.copy_(torch.eye(8))
        e.W[0, 1] = 0.5
        e.W[2, 2] = 0.0
    dev = torch.zeros(8, 8)
    dev[0, 1], dev[2, 2] = 0.5, -1.0
    expected = 0.1 * (1.5 + math.sqrt(0.25 + 1.0))
    assert e.regularizer().item() == pytest.approx(expected)
    loss, stats = loss_fn(a, p, n)
    assert stats["reg"].item() == pytest.approx(expected)
    assert stats["loss"].item() == pytest.approx(stats["hinge"].item() + expected, rel=1e-6)


def test_mahalanobis_identity_equals_euclidean_and_psd():
    torch.manual_seed(3)
    e = MahalanobisEnergy(6).double()
    s, p = torch.randn(5, 6, dtype=torch.float64), torch.randn(5, 6, dtype=torch.float64)
    assert torch.allclose(e.paired(s, p), squared_euclidean(s, p))
    assert torch.allclose(e.pairwise(s, p), pairwise_squared_euclidean(s, p))
    with torch.no_grad():
        e.L.copy_(torch.randn(6, 6, dtype=torch.float64))
    diff = s - p
    naive = torch.einsum("ni,ij,nj->n", diff, e.M, diff)
    assert torch.allclose(e.paired(s, p), naive)
    assert (e.paired(s, p) >= 0).all()
    pw = e.pairwise(s, p)
    assert torch.allclose(pw.diagonal(), naive)


def test_weighted_euclidean_nonnegative():
    torch.manual_seed(4)
    e = WeightedEuclideanEnergy(5).double()
    s, p = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    assert torch.allclose(e.weights, torch.ones(5, dtype=torch.float64))
    assert torch.allclose(e.paired(s, p), squared_euclidean(s, p))
    assert e.regularizer().item() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        e.rho.copy_(torch.tensor([-50.0, -3.0, 0.0, 2.0, 10.0], dtype=torch.float64))
    assert (e.weights > 0).all()
    assert (e.paired(s, p) >= 0).all() and (e.pairwise(s, p) >= 0).all()
    naive = ((s - p) ** 2 * e.weights).sum(1)
    assert torch.allclose(e.paired(s, p), naive)
    assert torch.allclose(e.pairwise(s, p).diagonal(), naive)
    # push it hard with gradient steps: weights stay positive
    opt = torch.optim.SGD(e.parameters(), lr=10.0)
    for _ in range(20):
        opt.zero_grad()
        e.paired(s, p).sum().backward()
        opt.step()
    assert (e.weights >= 0).all() and (e.paired(s, p) >= 0).all()


def test_euclidean_energy_and_loss_by_hand():
    e = EuclideanEnergy()
    a = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    p = torch.tensor([[0.1, 0.0], [1.0, 1.0]])
    n = torch.tensor([[0.0, 0.2], [1.5, 1.0]])
    loss, stats = TripletLoss(e, margin=0.3)(a, p, n)
    # d_pos = [0.01, 0], d_neg = [0.04, 0.25]; hinge = [0.27, 0.05] -> mean 0.16
    assert loss.item() == pytest.approx(0.16)
    assert stats["reg"].item() == 0.0
    assert stats["active"].item() == 1.0 and stats["triplet_acc"].item() == 1.0
    assert stats["d_pos"].item() == pytest.approx(0.005)


def test_make_energy():
    for name, cls in losses.ENERGIES.items():
        e = make_energy(name, 16, reg_lambda=1e-3) if name != "euclidean" else make_energy(name, 16)
        assert isinstance(e, cls)
        x, y = torch.randn(3, 16), torch.randn(5, 16)
        assert e.pairwise(x, y).shape == (3, 5)
        assert e.paired(x, x).shape == (3,)
        assert torch.allclose(e.pairwise(x, y), pairwise_squared_euclidean(x, y), atol=1e-5)  # identity init
    assert make_energy("holef", 4, reg_lambda=0.2).reg_lambda == 0.2
    with pytest.raises(ValueError, match="euclidean, weighted_euclidean, mahalanobis, holef"):
        make_energy("cosine", 4)


def test_retrieval_ranks_by_energy():
    torch.manual_seed(5)
    e = HOLEFEnergy(4)
    with torch.no_grad():
        e.W.copy_(torch.randn(4, 4))
    q, g = torch.randn(3, 4), torch.randn(6, 4)
    d = e.pairwise(q, g)
    for i in range(3):
        row = e.paired(q[i:i + 1].expand(6, 4), g)
        assert torch.allclose(d[i], row, atol=1e-5)
