"""Retrieval metrics: acc@K for fine-grained SBIR, and category-level mAP / precision@K.

Taught in: ``notebooks/01_triplet_loss.ipynb`` (acc@K, the metric of every DSSA table) and
``notebooks/05_reproducing_the_tables.ipynb`` (Tables 1-5: acc@1 and acc@10; the acc@K curve).

All functions take a ``[Q, G]`` *distance* matrix (smaller = more similar; a torch tensor or a
numpy array, on any device) and return Python floats / numpy arrays.

Equation / table references follow ``../shared/reference/dssa_iccv17_presentation.txt``.

Fine-grained (instance-level) accuracy, as in the DSSA paper ("acc.@K"):
    query ``i``'s true match is gallery item ``targets[i]`` (default ``targets[i] = i``: the
    i-th sketch belongs to the i-th photo). Its **rank** is the number of other gallery items with a
    distance *smaller than or equal to* the true match's: 0 means retrieved first. Ties count against
    the query (a pessimistic convention): a collapsed model whose distances are all equal scores
    acc@1 = 0, never 1. With continuous features ties do not occur. ``acc@K`` is the fraction of
    queries with ``rank < K``.

Category-level metrics (Sketchy-style), with ``query_labels [Q]`` and ``gallery_labels [G]``:
    the gallery is sorted by distance (ascending); gallery items with the query's label are relevant.
    Ties count against the query here too: among gallery items at equal distance the irrelevant ones
    come first. A collapsed model (all distances equal) therefore ranks every relevant item last and
    scores at most the mAP of a random ranking.
    ``AP = mean over relevant positions r of precision@r`` (over the whole gallery);
    ``mAP`` is the mean over queries that have at least one relevant item (queries with none are
    skipped; ``nan`` if no query has one). ``precision@K`` is the mean over queries of the fraction of
    the top ``K`` that are relevant.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = [
    "acc_at_k",
    "acc_curve",
    "mean_average_precision",
    "precision_at_k",
    "rank_of_true_match",
]


def _as_tensor(x, dtype=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        t = torch.as_tensor(np.asarray(x))
    return t.to(dtype) if dtype is not None else t


def _check_dist(dist) -> torch.Tensor:
    d = _as_tensor(dist)
    if d.dim() != 2:
        raise ValueError(f"dist must be a [Q, G] matrix; got shape {tuple(d.shape)}")
    if not d.is_floating_point():
        d = d.double()
    if torch.isnan(d).any():
        raise ValueError("dist contains NaN (a diverged model?); NaN would silently rank as a perfect match")
    return d


def rank_of_true_match(dist, targets=None) -> np.ndarray:
    """0-based rank of each query's true match: ``#{g != t_i : dist[i, g] <= dist[i, t_i]}``.

    Ties count against the true match (a pessimistic rank): a collapsed model whose distances are all
    equal must score acc@1 = 0, not 1. With continuous distances ties do not occur and this equals the
    usual ``#{g : dist[i, g] < dist[i, t_i]}``.

    ``targets`` (``[Q]`` gallery indices) defaults to ``arange(Q)`` (requires ``Q <= G``).
    Returns an int64 numpy array ``[Q]``.
    """
    d = _check_dist(dist)
    q, g = d.shape
    if targets is None:
        if q > g:
            raise ValueError(f"without targets the true match of query i is gallery i, so Q <= G is needed; got Q={q}, G={g}")
        t = torch.arange(q, device=d.device)
    else:
        t = _as_tensor(targets).to(device=d.device, dtype=torch.long).reshape(-1)
        if t.numel() != q:
            raise ValueError(f"targets must have one entry per query ({q}); got {t.numel()}")
        if q and (t.min() < 0 or t.max() >= g):
            raise ValueError(f"targets must index the gallery (0..{g - 1})")
    true_d = d.gather(1, t.unsqueeze(1))  # [Q, 1]
    return ((d <= true_d).sum(dim=1) - 1).cpu().numpy().astype(np.int64)


def acc_at_k(dist, k: int, targets=None) -> float:
    """Fraction of queries whose true match ranks within the top ``k`` (``rank < k``)."""
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    ranks = rank_of_true_match(dist, targets)
    return float((ranks < k).mean()) if ranks.size else float("nan")


def acc_curve(dist, ks: Sequence[int] | None = None, targets=None) -> np.ndarray:
    """acc@k for each ``k`` in ``ks`` (default ``1..G``) as a float numpy array."""
    ranks = rank_of_true_match(dist, targets)
    g = _check_dist(dist).shape[1]
    ks_arr = np.arange(1, g + 1) if ks is None else np.asarray(list(ks), dtype=np.int64)
    if ks_arr.size and ks_arr.min() < 1:
        raise ValueError("every k must be >= 1")
    if ranks.size == 0:
        return np.full(ks_arr.shape, np.nan)
    return (ranks[None, :] < ks_arr[:, None]).mean(axis=1)


def _encode_labels(query_labels, gallery_labels) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels as integer tensors; any hashable labels (e.g. category names) are mapped to codes."""
    if isinstance(query_labels, torch.Tensor) and isinstance(gallery_labels, torch.Tensor):
        return query_labels.detach().reshape(-1), gallery_labels.detach().reshape(-1)
    qa = query_labels.detach().cpu().numpy() if isinstance(query_labels, torch.Tensor) else np.asarray(query_labels)
    ga = gallery_labels.detach().cpu().numpy() if isinstance(gallery_labels, torch.Tensor) else np.asarray(gallery_labels)
    qa, ga = qa.reshape(-1), ga.reshape(-1)
    if qa.dtype.kind in "biu" and ga.dtype.kind in "biu":
        return torch.as_tensor(qa.astype(np.int64)), torch.as_tensor(ga.astype(np.int64))
    _, codes = np.unique(np.concatenate([qa.astype(object), ga.astype(object)]).astype(str), return_inverse=True)
    codes = codes.reshape(-1)
    return torch.as_tensor(codes[: qa.size]), torch.as_tensor(codes[qa.size:])


def _relevance_sorted(dist, query_labels, gallery_labels, chunk: int):
    """Yield ``[q, G]`` boolean relevance matrices, gallery sorted by distance, chunk by chunk."""
    d = _check_dist(dist)
    ql, gl = _encode_labels(query_labels, gallery_labels)
    ql, gl = ql.to(d.device), gl.to(d.device)
    if ql.numel() != d.shape[0] or gl.numel() != d.shape[1]:
        raise ValueError(
            f"labels do not match dist {tuple(d.shape)}: {ql.numel()} query labels, {gl.numel()} gallery labels")
    for start in range(0, d.shape[0], chunk):
        block = d[start:start + chunk]
        rel = gl.unsqueeze(0) == ql[start:start + chunk].unsqueeze(1)  # [q, G], gallery order
        # ties against the query: sort by relevance first (irrelevant first), then stably by distance
        first = torch.argsort(rel.to(torch.uint8), dim=1, stable=True)
        second = torch.argsort(block.gather(1, first), dim=1, stable=True)
        yield rel.gather(1, first.gather(1, second))


def mean_average_precision(dist, query_labels, gallery_labels, chunk: int = 1024) -> float:
    """Category-level mAP over the whole gallery (see the module docstring for conventions)."""
    aps = []
    for rel in _relevance_sorted(dist, query_labels, gallery_labels, chunk):
        relf = rel.double()
        hits = relf.cumsum(dim=1)
        pos = torch.arange(1, rel.shape[1] + 1, device=rel.device, dtype=torch.float64)
        n_rel = relf.sum(dim=1)
        ap = (hits / pos * relf).sum(dim=1) / n_rel.clamp_min(1)
        aps.append(ap[n_rel > 0])
    if not aps:
        return float("nan")
    aps_t = torch.cat(aps)
    return float(aps_t.mean()) if aps_t.numel() else float("nan")


def precision_at_k(dist, query_labels, gallery_labels, k: int, chunk: int = 1024) -> float:
    """Mean over queries of the fraction of the ``k`` nearest gallery items sharing the query's label.

    ``k`` larger than the gallery is clipped to ``G``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    vals = []
    for rel in _relevance_sorted(dist, query_labels, gallery_labels, chunk):
        kk = min(k, rel.shape[1])
        vals.append(rel[:, :kk].double().mean(dim=1))
    if not vals:
        return float("nan")
    return float(torch.cat(vals).mean())


def metrics_of(dist) -> dict:
    """The instance-level metrics every DSSA record holds: acc@1, acc@5, acc@10 and the whole acc@K curve
    (true match of query ``i`` = gallery item ``i``; ties count against the query)."""
    curve = acc_curve(dist)
    return {
        "acc@1": float(acc_at_k(dist, 1)),
        "acc@5": float(acc_at_k(dist, 5)),
        "acc@10": float(acc_at_k(dist, 10)),
        "acc_curve": [round(float(c), 6) for c in np.asarray(curve)],
    }
