"""Tests for sbir_lib.metrics.retrieval against brute-force Python loops (and sklearn where it agrees)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sbir_lib.metrics.retrieval import acc_at_k, acc_curve, mean_average_precision, precision_at_k, rank_of_true_match


def _brute_ranks(dist, targets=None):
    dist = np.asarray(dist)
    ranks = []
    for i in range(dist.shape[0]):
        t = i if targets is None else targets[i]
        ranks.append(sum(1 for g in range(dist.shape[1]) if dist[i, g] < dist[i, t]))
    return np.array(ranks)


def _brute_ap(row, qlab, glab):
    order = sorted(range(len(row)), key=lambda g: (row[g], g))
    hits, precs = 0, []
    for pos, g in enumerate(order, start=1):
        if glab[g] == qlab:
            hits += 1
            precs.append(hits / pos)
    return None if not precs else sum(precs) / len(precs)


def test_acc_at_k_by_hand():
    dist = np.array([[0.1, 0.5, 0.9],    # true match first -> rank 0
                     [0.2, 0.3, 0.1],    # 2 items closer    -> rank 2
                     [0.4, 0.1, 0.3]])   # 1 item closer     -> rank 1
    assert rank_of_true_match(dist).tolist() == [0, 2, 1]
    assert acc_at_k(dist, 1) == pytest.approx(1 / 3)
    assert acc_at_k(dist, 2) == pytest.approx(2 / 3)
    assert acc_at_k(dist, 3) == 1.0
    np.testing.assert_allclose(acc_curve(dist), [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(acc_curve(dist, ks=[1, 10]), [1 / 3, 1.0])


def test_ties_count_against_the_true_match():
    dist = np.array([[0.5, 0.5, 0.5], [0.1, 0.5, 0.5], [0.0, 0.0, 0.0], [0.2, 0.1, 0.3]])[:3]
    assert rank_of_true_match(dist).tolist() == [2, 2, 2]
    # a collapsed model (all distances equal) scores zero, not a perfect acc@1
    assert acc_at_k(np.ones((5, 5)), 1) == 0.0
    assert rank_of_true_match(np.array([[0.3, 0.1, 0.2]])).tolist() == [2]


def test_acc_random_vs_brute_force_torch_and_numpy():
    rng = np.random.default_rng(0)
    dist = rng.random((40, 55))
    ranks = _brute_ranks(dist)
    assert rank_of_true_match(dist).tolist() == ranks.tolist()
    assert rank_of_true_match(torch.from_numpy(dist).float()).tolist() == ranks.tolist()
    for k in (1, 5, 10, 55):
        assert acc_at_k(dist, k) == pytest.approx(np.mean(ranks < k))
        assert acc_at_k(torch.from_numpy(dist), k) == pytest.approx(np.mean(ranks < k))
    curve = acc_curve(dist)
    assert curve.shape == (55,) and curve[-1] == 1.0 and np.all(np.diff(curve) >= 0)
    targets = rng.integers(0, 55, size=40)
    assert rank_of_true_match(dist, targets).tolist() == _brute_ranks(dist, targets).tolist()


def test_acc_errors():
    with pytest.raises(ValueError):
        acc_at_k(np.zeros((3, 3)), 0)
    with pytest.raises(ValueError, match="Q <= G"):
        rank_of_true_match(np.zeros((4, 3)))
    with pytest.raises(ValueError):
        rank_of_true_match(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        acc_at_k(np.full((2, 2), np.nan), 1)


def test_map_and_precision_by_hand():
    dist = np.array([[0.1, 0.2, 0.3, 0.4]])
    q = [1]
    g = [1, 0, 1, 0]
    # relevant at positions 1 and 3: AP = (1/1 + 2/3) / 2
    assert mean_average_precision(dist, q, g) == pytest.approx((1 + 2 / 3) / 2)
    assert precision_at_k(dist, q, g, 1) == 1.0
    assert precision_at_k(dist, q, g, 2) == 0.5
    assert precision_at_k(dist, q, g, 100) == 0.5


def test_map_precision_random_vs_brute_force():
    rng = np.random.default_rng(1)
    dist = rng.random((30, 80))
    ql = rng.integers(0, 5, size=30)
    gl = rng.integers(0, 5, size=80)
    aps = [_brute_ap(dist[i], ql[i], gl) for i in range(30)]
    aps = [a for a in aps if a is not None]
    assert mean_average_precision(dist, ql, gl) == pytest.approx(np.mean(aps))
    assert mean_average_precision(torch.from_numpy(dist), torch.from_numpy(ql), torch.from_numpy(gl)) == \
        pytest.approx(np.mean(aps))
    assert mean_average_precision(dist, ql, gl, chunk=7) == pytest.approx(np.mean(aps))
    for k in (1, 5, 20):
        brute = np.mean([np.mean([gl[g] == ql[i] for g in np.argsort(dist[i], kind="stable")[:k]])
                         for i in range(30)])
        assert precision_at_k(dist, ql, gl, k) == pytest.approx(brute)
    # string category labels work the same
    names = np.array(["shoe", "chair", "bag", "cup", "hat"])
    assert mean_average_precision(dist, names[ql], list(names[gl])) == pytest.approx(np.mean(aps))


def test_map_and_precision_count_ties_against_the_query():
    # two relevant items tied with two irrelevant ones: the irrelevant ones rank first
    dist = np.array([[0.5, 0.5, 0.5, 0.5]])
    q, g = [1], [1, 1, 0, 0]
    assert mean_average_precision(dist, q, g) == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert precision_at_k(dist, q, g, 2) == 0.0
    # a tie only among relevant items changes nothing
    assert mean_average_precision(np.array([[0.1, 0.1, 0.5, 0.6]]), q, g) == 1.0


def test_collapsed_model_scores_no_better_than_a_random_ranking():
    rng = np.random.default_rng(4)
    ql = np.repeat(np.arange(5), 6)  # 30 queries, 5 classes
    gl = np.repeat(np.arange(5), 12)  # 60 gallery items
    collapsed = mean_average_precision(np.zeros((30, 60)), ql, gl)
    random_map = np.mean([mean_average_precision(rng.random((30, 60)), ql, gl) for _ in range(20)])
    assert collapsed <= random_map
    assert precision_at_k(np.zeros((30, 60)), ql, gl, 10) == 0.0


def test_map_vs_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    dist = rng.random((20, 50))
    ql, gl = rng.integers(0, 3, size=20), rng.integers(0, 3, size=50)
    ref = np.mean([metrics.average_precision_score(gl == ql[i], -dist[i]) for i in range(20)
                   if (gl == ql[i]).any()])
    assert mean_average_precision(dist, ql, gl) == pytest.approx(ref)


def test_queries_without_relevant_items_are_skipped():
    dist = np.array([[0.1, 0.2], [0.3, 0.1]])
    assert mean_average_precision(dist, [0, 9], [0, 1]) == 1.0
    assert np.isnan(mean_average_precision(dist, [8, 9], [0, 1]))
