"""Triplet ranking loss and the energies (distances) it can be built on, including DSSA's HOLEF.

Taught in: ``notebooks/01_triplet_loss.ipynb`` (Eq. 1, the triplet hinge on squared Euclidean
distances, as in Triplet SN) and ``notebooks/04_holef.ipynb`` (Eqs. 5-7, the higher-order
learnable energy function and its regulariser; the Table 5 comparison of losses).

Paper equations (Song et al., ICCV 2017, "Deep Spatial-Semantic Attention for FG-SBIR"); the
numbers are this course's, in the order the equations appear in
``../shared/reference/dssa_iccv17_presentation.txt`` (the paper's own numbering may differ):

- Eq. 1, triplet loss::

      L = max(0, margin + D(s, p+) - D(s, p-)),   D = squared Euclidean ||F(s) - F(p)||^2

- Eq. 5, outer subtraction: ``(F(s) (-) F(p))_ij = F_i(s) - F_j(p)``  (a d x d matrix).
- Eq. 6, HOLEF energy::

      D_H(s, p) = sum_ij W_ij (F_i(s) - F_j(p))^2

  With ``W = I`` this is exactly the squared Euclidean distance.
- Eq. 7, HOLEF triplet loss::

      L = max(0, margin + D_H(s, p+) - D_H(s, p-)) + lambda ||W - I||_1 + lambda ||W - I||_F

Implementation notes
--------------------
``holef_distance`` never builds the ``N x d x d`` tensor of Eq. 5. Expanding the square::

    sum_ij W_ij (s_i^2 - 2 s_i p_j + p_j^2)
        = (s*s) . rowsum(W)  +  (p*p) . colsum(W)  -  2 s^T W p

so a batch costs two matrix-vector products and one ``[N, d] x [d, d]`` matmul; the retrieval
matrix (``holef_pairwise``) is one ``[Q, d] x [d, d] x [d, G]`` product. ``holef_distance_naive``
is the literal Eq. 6 (used by the tests only).

``W`` is unconstrained, as in the paper, so a learned HOLEF energy can become negative for some
pairs; it is an energy to rank by, not a metric. The weighted-Euclidean and Mahalanobis energies
of Table 5 are parametrised to stay non-negative (softplus weights; ``M = L L^T``).

All learned energies regularise towards the plain Euclidean distance with the Eq. 7 penalty
``lambda (||A - I||_1 + ||A - I||_F)`` where ``A`` is ``W`` (HOLEF), ``diag(w)`` (weighted
Euclidean) or ``M = L L^T`` (Mahalanobis). The paper presentation does not give lambda; the
default ``DEFAULT_REG_LAMBDA = 5e-4`` is our choice (for a 512-d embedding the L1 term then adds a
gradient of 5e-4 per entry of ``W``, the same order as the hinge's gradient per entry for unit-norm
features); it is configurable everywhere.

Retrieval with a learned energy ranks the gallery by that energy:
``energy.pairwise(sketch_emb, photo_emb)`` is the ``[Q, G]`` distance matrix to hand to
:mod:`sbir_lib.metrics`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_REG_LAMBDA",
    "ENERGIES",
    "Energy",
    "EuclideanEnergy",
    "WeightedEuclideanEnergy",
    "MahalanobisEnergy",
    "HOLEFEnergy",
    "TripletLoss",
    "holef_distance",
    "holef_distance_naive",
    "holef_pairwise",
    "identity_penalty",
    "make_energy",
    "pairwise_squared_euclidean",
    "squared_euclidean",
    "triplet_hinge",
]

DEFAULT_MARGIN = 0.3
DEFAULT_REG_LAMBDA = 5e-4


# ----------------------------------------------------------------------------- plain functions

def triplet_hinge(d_pos: torch.Tensor, d_neg: torch.Tensor, margin: float = DEFAULT_MARGIN) -> torch.Tensor:
    """Eq. 1: ``mean(relu(margin + d_pos - d_neg))`` over the batch.

    ``d_pos``/``d_neg`` are the (squared) distances anchor-positive and anchor-negative, ``[N]``.
    """
    if d_pos.shape != d_neg.shape:
        raise ValueError(f"d_pos and d_neg must have the same shape; got {tuple(d_pos.shape)} and {tuple(d_neg.shape)}")
    return F.relu(margin + d_pos - d_neg).mean()


def squared_euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-paired squared Euclidean distance: ``[N, d], [N, d] -> [N]``."""
    return (a - b).pow(2).sum(dim=-1)


def pairwise_squared_euclidean(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """All-pairs squared Euclidean distance: ``[Q, d], [G, d] -> [Q, G]`` (clamped at 0).

    Uses ``|q|^2 + |g|^2 - 2 q.g`` (one matmul); tiny negative values from rounding are clamped.
    """
    qq = q.pow(2).sum(dim=1, keepdim=True)
    gg = g.pow(2).sum(dim=1).unsqueeze(0)
    return (qq + gg - 2.0 * q @ g.t()).clamp_min(0.0)


def holef_distance(s: torch.Tensor, p: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Eq. 6, row-paired: ``D_W(s_n, p_n) = sum_ij W_ij (s_ni - p_nj)^2``, ``[N, d] x2 -> [N]``.

    Computed as ``(s*s) . rowsum(W) + (p*p) . colsum(W) - 2 s^T W p`` (no ``N x d x d`` tensor).
    """
    row = w.sum(dim=1)  # [d]  sum_j W_ij
    col = w.sum(dim=0)  # [d]  sum_i W_ij
    cross = ((s @ w) * p).sum(dim=-1)  # s^T W p
    return s.pow(2) @ row + p.pow(2) @ col - 2.0 * cross


def holef_pairwise(s: torch.Tensor, p: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Eq. 6 for all pairs: ``[Q, d], [G, d] -> [Q, G]`` with entry ``D_W(s_q, p_g)``."""
    row = w.sum(dim=1)
    col = w.sum(dim=0)
    return (s.pow(2) @ row).unsqueeze(1) + (p.pow(2) @ col).unsqueeze(0) - 2.0 * (s @ w) @ p.t()


def holef_distance_naive(s: torch.Tensor, p: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Literal Eq. 5-6 (builds the ``[N, d, d]`` outer subtraction). For tests and teaching only."""
    outer = s.unsqueeze(2) - p.unsqueeze(1)  # [N, d, d], entry (i, j) = s_i - p_j
    return (outer.pow(2) * w).sum(dim=(1, 2))


def identity_penalty(a: torch.Tensor, reg_lambda: float) -> torch.Tensor:
    """Eq. 7 regulariser ``lambda (||A - I||_1 + ||A - I||_F)`` (entrywise L1, Frobenius).

    ``a`` may be a matrix or a vector of diagonal weights (then ``I`` is a vector of ones).
    """
    if a.dim() == 1:
        dev = a - torch.ones_like(a)
    else:
        dev = a - torch.eye(a.shape[0], a.shape[1], dtype=a.dtype, device=a.device)
    return reg_lambda * (dev.abs().sum() + torch.linalg.norm(dev))


# ----------------------------------------------------------------------------- energies

class Energy(nn.Module):
    """Base class: a (possibly learned) distance between sketch and photo embeddings.

    ``paired(s, p) -> [N]`` (row n vs row n), ``pairwise(S, P) -> [Q, G]`` (the retrieval matrix)
    and ``regularizer() -> scalar`` (0 for parameter-free energies). ``forward`` is ``paired``.
    """

    name = "energy"

    def paired(self, s: torch.Tensor, p: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def pairwise(self, s: torch.Tensor, p: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def regularizer(self) -> torch.Tensor:
        p = next(self.parameters(), None)
        if p is None:
            return torch.zeros(())
        return p.new_zeros(())

    def forward(self, s: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return self.paired(s, p)


class EuclideanEnergy(Energy):
    """Squared Euclidean distance (Triplet SN, Eq. 1). No parameters."""

    name = "euclidean"

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def paired(self, s, p):
        return squared_euclidean(s, p)

    def pairwise(self, s, p):
        return pairwise_squared_euclidean(s, p)


def _inv_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))  # log(exp(y) - 1), stable


class WeightedEuclideanEnergy(Energy):
    """``D(s, p) = sum_i w_i (s_i - p_i)^2`` with ``w = softplus(rho) > 0`` (Table 5 row 2).

    Initialised to ``w = 1`` (plain squared Euclidean). Always non-negative.
    """

    name = "weighted_euclidean"

    def __init__(self, dim: int, reg_lambda: float = DEFAULT_REG_LAMBDA):
        super().__init__()
        self.dim = int(dim)
        self.reg_lambda = float(reg_lambda)
        self.rho = nn.Parameter(torch.full((self.dim,), _inv_softplus(1.0)))

    @property
    def weights(self) -> torch.Tensor:
        return F.softplus(self.rho)

    def paired(self, s, p):
        return (s - p).pow(2) @ self.weights

    def pairwise(self, s, p):
        w = self.weights
        d = (s.pow(2) @ w).unsqueeze(1) + (p.pow(2) @ w).unsqueeze(0) - 2.0 * (s * w) @ p.t()
        return d.clamp_min(0.0)

    def regularizer(self):
        return identity_penalty(self.weights, self.reg_lambda)


class MahalanobisEnergy(Energy):
    """``D(s, p) = (s - p)^T M (s - p)`` with ``M = L L^T`` (PSD), ``L`` initialised to ``I``.

    Computed as ``||L^T (s - p)||^2`` (Table 5 row 3). Always non-negative.
    """

    name = "mahalanobis"

    def __init__(self, dim: int, reg_lambda: float = DEFAULT_REG_LAMBDA):
        super().__init__()
        self.dim = int(dim)
        self.reg_lambda = float(reg_lambda)
        self.L = nn.Parameter(torch.eye(self.dim))

    @property
    def M(self) -> torch.Tensor:
        return self.L @ self.L.t()

    def paired(self, s, p):
        return ((s - p) @ self.L).pow(2).sum(dim=-1)

    def pairwise(self, s, p):
        return pairwise_squared_euclidean(s @ self.L, p @ self.L)

    def regularizer(self):
        return identity_penalty(self.M, self.reg_lambda)


class HOLEFEnergy(Energy):
    """DSSA's higher-order learnable energy function (Eq. 6), ``W`` initialised to ``I``.

    ``regularizer()`` is Eq. 7's ``lambda (||W - I||_1 + ||W - I||_F)``. ``W`` is unconstrained.
    """

    name = "holef"

    def __init__(self, dim: int, reg_lambda: float = DEFAULT_REG_LAMBDA):
        super().__init__()
        self.dim = int(dim)
        self.reg_lambda = float(reg_lambda)
        self.W = nn.Parameter(torch.eye(self.dim))

    def paired(self, s, p):
        return holef_distance(s, p, self.W)

    def pairwise(self, s, p):
        return holef_pairwise(s, p, self.W)

    def regularizer(self):
        return identity_penalty(self.W, self.reg_lambda)


ENERGIES: dict[str, type[Energy]] = {
    "euclidean": EuclideanEnergy,
    "weighted_euclidean": WeightedEuclideanEnergy,
    "mahalanobis": MahalanobisEnergy,
    "holef": HOLEFEnergy,
}


def make_energy(name: str, dim: int, **kw) -> Energy:
    """Build an energy by name (``euclidean``, ``weighted_euclidean``, ``mahalanobis``, ``holef``).

    ``kw`` go to the constructor (``reg_lambda=`` for the learned ones; ignored for Euclidean).
    """
    if name not in ENERGIES:
        raise ValueError(f"unknown energy {name!r}; allowed: {', '.join(ENERGIES)}")
    if name == "euclidean":
        return EuclideanEnergy(dim)
    return ENERGIES[name](dim, **kw)


# ----------------------------------------------------------------------------- the loss

class TripletLoss(nn.Module):
    """Eq. 1 / Eq. 7: triplet hinge on ``energy.paired`` plus ``energy.regularizer()``.

    ``forward(anchor, positive, negative) -> (loss, stats)``; ``stats`` holds detached 0-d tensors
    (call ``.item()`` only when logging, to avoid a device sync every step): ``loss``, ``hinge``,
    ``reg``, ``d_pos``/``d_neg`` (batch means), ``active`` (fraction of triplets with a non-zero
    hinge) and ``triplet_acc`` (fraction with ``d_pos < d_neg``).
    """

    def __init__(self, energy: Energy, margin: float = DEFAULT_MARGIN):
        super().__init__()
        self.energy = energy
        self.margin = float(margin)

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor):
        d_pos = self.energy.paired(anchor, positive)
        d_neg = self.energy.paired(anchor, negative)
        hinge = triplet_hinge(d_pos, d_neg, self.margin)
        reg = self.energy.regularizer().to(hinge)
        loss = hinge + reg
        with torch.no_grad():
            stats = {
                "loss": loss.detach(),
                "hinge": hinge.detach(),
                "reg": reg.detach(),
                "d_pos": d_pos.detach().mean(),
                "d_neg": d_neg.detach().mean(),
                "active": (self.margin + d_pos - d_neg > 0).float().mean(),
                "triplet_acc": (d_pos < d_neg).float().mean(),
            }
        return loss, stats

    def extra_repr(self) -> str:
        return f"margin={self.margin}"
