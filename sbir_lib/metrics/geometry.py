"""The DASE/MEMS abstract's two geometric claims, measured on a run's test embeddings.

Shown in ``notebooks/07_dase.ipynb`` (DASE) and ``notebooks/08_mems.ipynb`` (MEMS); recorded by
:func:`sbir_lib.experiments.dase_mems.run_one` in every DASE/MEMS run record (``"claims"``; MEMS runs also
``"claims_l2"``, the same on L2-normalised embeddings); compared across rows with the seed-noise test of
the DSSA claims by :func:`sbir_lib.report.claims.dase_claims_frame`.

The abstract (``shared/reference/dase_mems_abstract.txt``) says

- MEMS "ensure[s] that the maximum intra-class distance is smaller than the minimum inter-class
  distance", and
- DASE lets the network "switch its mode to achieve a better domain feature with lower intra-class
  discrepancy" (between the sketches and the photos of a class).

Measured on the test split (query sketches + gallery photos, the first test view: the image itself, not
its mirror), in the run's retrieval geometry (L2-normalised embeddings unless the loss is MEMS), with
Euclidean distances:

``max_intra_lt_min_inter``
    fraction of classes ``c`` for which the largest distance between two items of ``c`` (sketches and
    photos pooled) is smaller than the smallest distance from an item of ``c`` to an item of another class:
    the MEMS claim, literally. 1 = every class is a cluster that a ball around it separates from the rest.
``max_intra_over_min_inter``
    the same two numbers as a ratio, averaged over classes (a class satisfies the claim when it is < 1):
    a graded version for short runs, where the strict fraction is often 0 for every model.
``max_intra_lt_min_inter_retrieval``
    the claim on the distances retrieval ranks by (the run's ``[Q, G]`` matrix, after the test-view
    combination): fraction of classes whose farthest sketch-photo pair is closer than their nearest
    sketch-to-other-class-photo pair. Computed from the stored distance file.
``domain_gap``
    the DASE claim: per class, the distance between the centroid of its sketches and the centroid of its
    photos, divided by the mean distance from the class's centroid (both domains) to the other classes'
    centroids; mean over classes. 0 = the two domains of a class coincide; 1 = a class's sketches are as
    far from its photos as other classes are.

Instance-level runs (``dase_qmul``: one sketch and one photo per class) get the same numbers with
two-item classes. A collapsed model (every embedding equal) scores fraction 0, and a domain gap ``nan``
(0 / 0); its runs are left out of comparisons anyway (``tied_queries``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["CLAIM_KEYS", "LOWER_IS_BETTER", "claims_of", "class_separation", "domain_gap",
           "retrieval_separation"]

CLAIM_KEYS = ("max_intra_lt_min_inter", "max_intra_over_min_inter", "max_intra_lt_min_inter_retrieval",
              "domain_gap")
LOWER_IS_BETTER = {"max_intra_lt_min_inter": False, "max_intra_over_min_inter": True,
                   "max_intra_lt_min_inter_retrieval": False, "domain_gap": True}


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().cpu()


def _per_class_extremes(d: torch.Tensor, same: torch.Tensor, row_labels: torch.Tensor,
                        classes: torch.Tensor, exclude_self: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class of ``classes``: (max over same-class entries, min over other-class entries) of the rows
    whose label is that class."""
    big = torch.finfo(d.dtype).max
    mx, mn = [], []
    for c in classes.tolist():
        rows = row_labels == c
        block, s = d[rows], same[rows]
        if exclude_self:  # the diagonal of a square matrix: an item's distance to itself
            idx = rows.nonzero().squeeze(1)
            s = s.clone()
            s[torch.arange(len(idx)), idx] = False
        intra = torch.where(s, block, torch.full_like(block, -big)).max()
        inter = torch.where(~same[rows], block, torch.full_like(block, big)).min()
        mx.append(intra)
        mn.append(inter)
    return torch.stack(mx), torch.stack(mn)


def class_separation(emb, labels) -> dict[str, float]:
    """``max_intra_lt_min_inter`` and ``max_intra_over_min_inter`` of embeddings ``emb [N, D]`` with class
    ``labels [N]`` (Euclidean distances; classes with a single item are skipped)."""
    e, y = _t(emb).double(), _t(labels).long()
    d = torch.cdist(e, e)
    same = y[:, None] == y[None, :]
    classes, counts = torch.unique(y, return_counts=True)
    classes = classes[counts >= 2]
    if len(classes) == 0 or len(torch.unique(y)) < 2:
        return {"max_intra_lt_min_inter": math.nan, "max_intra_over_min_inter": math.nan}
    mx, mn = _per_class_extremes(d, same, y, classes, exclude_self=True)
    ratio = torch.where(mn > 0, mx / mn.clamp_min(1e-300), torch.full_like(mx, math.inf))
    ratio = torch.where((mx == 0) & (mn == 0), torch.full_like(mx, math.nan), ratio)
    finite = ratio[torch.isfinite(ratio)]
    return {"max_intra_lt_min_inter": float((mx < mn).double().mean()),
            "max_intra_over_min_inter": float(finite.mean()) if finite.numel() else math.nan}


def retrieval_separation(dist, query_labels, gallery_labels) -> float:
    """Fraction of query classes whose largest query-to-relevant-gallery distance is smaller than their
    smallest query-to-irrelevant-gallery distance, on a ``[Q, G]`` distance matrix (squared or not: only
    the order matters). Classes with no relevant or no irrelevant gallery item are skipped."""
    d = _t(dist).double()
    ql, gl = _t(query_labels).long(), _t(gallery_labels).long()
    same = ql[:, None] == gl[None, :]
    classes = torch.tensor([c for c in torch.unique(ql).tolist() if (gl == c).any() and (gl != c).any()])
    if len(classes) == 0:
        return math.nan
    mx, mn = _per_class_extremes(d, same, ql, classes, exclude_self=False)
    return float((mx < mn).double().mean())


def domain_gap(sketch_emb, photo_emb, sketch_labels, photo_labels) -> float:
    """Mean over classes (with both sketches and photos) of ``||mean sketch - mean photo||`` over the mean
    distance from the class's centroid to the other classes' centroids (see the module docstring)."""
    es, ep = _t(sketch_emb).double(), _t(photo_emb).double()
    ls, lp = _t(sketch_labels).long(), _t(photo_labels).long()
    classes = [c for c in torch.unique(torch.cat([ls, lp])).tolist() if (ls == c).any() and (lp == c).any()]
    if len(classes) < 2:
        return math.nan
    mu_s = torch.stack([es[ls == c].mean(0) for c in classes])
    mu_p = torch.stack([ep[lp == c].mean(0) for c in classes])
    mu = torch.stack([torch.cat([es[ls == c], ep[lp == c]]).mean(0) for c in classes])
    gap = (mu_s - mu_p).norm(dim=1)
    cd = torch.cdist(mu, mu)
    k = len(classes)
    inter = (cd.sum(1) - cd.diagonal()) / (k - 1)
    ratio = torch.where(inter > 0, gap / inter.clamp_min(1e-300), torch.full_like(gap, math.nan))
    ok = ratio[~torch.isnan(ratio)]
    return float(ok.mean()) if ok.numel() else math.nan


def claims_of(query_emb, gallery_emb, query_labels, gallery_labels, normalize: bool, dist=None) -> dict[str, float]:
    """All :data:`CLAIM_KEYS` for one run: ``query_emb [Q, D]`` (sketches), ``gallery_emb [G, D]`` (photos),
    L2-normalised first when ``normalize``; ``dist`` is the ``[Q, G]`` matrix retrieval ranks by (for
    ``max_intra_lt_min_inter_retrieval``; computed from the embeddings when ``None``). Rounded to 6 digits."""
    import torch.nn.functional as F

    eq, eg = _t(query_emb).double(), _t(gallery_emb).double()
    if normalize:
        eq, eg = F.normalize(eq, dim=-1), F.normalize(eg, dim=-1)
    ql, gl = _t(query_labels).long(), _t(gallery_labels).long()
    if dist is None:
        dist = torch.cdist(eq, eg)
    out = {**class_separation(torch.cat([eq, eg]), torch.cat([ql, gl])),
           "max_intra_lt_min_inter_retrieval": retrieval_separation(dist, ql, gl),
           "domain_gap": domain_gap(eq, eg, ql, gl)}
    return {k: (round(float(out[k]), 6) if not math.isnan(out[k]) else None) for k in CLAIM_KEYS}
