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
:mod:`sbir_lib.metrics.retrieval`.
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


# ============================================================================= DASE/MEMS paper losses
# Lu et al., "Domain-Aware SE Network for Sketch-based Image Retrieval with Multiplicative Euclidean
# Margin Softmax" (arXiv 1812.04275). Taught in ``notebooks/08_mems.ipynb``; trained by
# :mod:`sbir_lib.experiments.dase_mems`. Classification-style losses: every sketch and every photo of class ``y``
# is pulled towards class ``y``'s prototype (a centre or a classifier weight), so sketches and photos
# meet in one feature space and retrieval ranks the gallery by feature distance.
#
# - Softmax cross-entropy on a linear classifier: logits ``W f + b``.
# - CosFace (Wang et al., CVPR 2018): logits ``s (cos(theta_j) - m [j = y])`` with normalised
#   features and weights (the DASE authors' baseline uses ``m = 0.35``, ``s = 32``).
# - MEMS, multiplicative Euclidean margin softmax: with learnable centres ``c_j``
#
#       z_j = -||f - c_j||^2          (j != y)
#       z_y = -m^2 ||f - c_y||^2      (the true class)
#       L   = -log( exp(z_y) / sum_j exp(z_j) )
#
#   A feature is classified correctly with a margin when ``m ||f - c_y|| < ||f - c_j||`` for all
#   ``j != y``: its distance to its own centre, *multiplied* by ``m > 1``, must still be the smallest,
#   so the region of class ``y`` shrinks around ``c_y`` by the factor ``m`` (Apollonius circles in 2-D).
#   ``m = 1`` gives plain squared-distance logits (a nearest-centre softmax). The margin is annealed
#   linearly from 1 to its final value over the first part of training (:func:`mems_margin_schedule`).

DEFAULT_MEMS_MARGIN = 3.0
DEFAULT_COSFACE_MARGIN = 0.35
DEFAULT_COSFACE_SCALE = 32.0
CLASSIFICATION_LOSSES = ("softmax", "cosface", "mems")

__all__ += [
    "CLASSIFICATION_LOSSES",
    "CosFaceLoss",
    "DEFAULT_COSFACE_MARGIN",
    "DEFAULT_COSFACE_SCALE",
    "DEFAULT_MEMS_MARGIN",
    "MEMSLoss",
    "SoftmaxLoss",
    "cosface_logits",
    "make_classification_loss",
    "mems_logits",
    "mems_margin_schedule",
]


def _check_labels(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    if features.dim() != 2:
        raise ValueError(f"features must be [N, d]; got shape {tuple(features.shape)}")
    labels = torch.as_tensor(labels, device=features.device).long().reshape(-1)
    if labels.numel() != features.shape[0]:
        raise ValueError(f"labels must have one entry per feature ({features.shape[0]}); got {labels.numel()}")
    return labels


def mems_logits(features: torch.Tensor, centers: torch.Tensor, labels: torch.Tensor,
                margin: float) -> torch.Tensor:
    """MEMS logits ``[N, C]``: ``-||f_n - c_j||^2``, the true class's multiplied by ``margin**2``.

    ``features [N, d]``, ``centers [C, d]``, ``labels [N]`` (class indices). ``margin = 1`` gives
    plain squared-distance logits (no margin). Margins below 1 are rejected (they would *widen*
    the true class's region).
    """
    if margin < 1.0:
        raise ValueError(f"the MEMS margin must be >= 1 (1 = no margin); got {margin}")
    if centers.dim() != 2 or centers.shape[1] != features.shape[-1]:
        raise ValueError(f"centers must be [C, {features.shape[-1]}]; got shape {tuple(centers.shape)}")
    labels = _check_labels(features, labels, centers.shape[0])
    d = pairwise_squared_euclidean(features, centers)  # [N, C]
    scale = torch.ones_like(d)
    scale[torch.arange(d.shape[0], device=d.device), labels] = float(margin) ** 2
    return -d * scale


def mems_margin_schedule(step: int, final: float, anneal_steps: int, start: float = 1.0) -> float:
    """The MEMS margin at ``step``: linear from ``start`` (step 0) to ``final`` (step ``anneal_steps``),
    constant afterwards. ``anneal_steps <= 0`` means no annealing (``final`` from the start)."""
    if anneal_steps <= 0 or step >= anneal_steps:
        return float(final)
    return float(start + (final - start) * max(step, 0) / anneal_steps)


def cosface_logits(features: torch.Tensor, weights: torch.Tensor, labels: torch.Tensor | None,
                   margin: float = DEFAULT_COSFACE_MARGIN, scale: float = DEFAULT_COSFACE_SCALE) -> torch.Tensor:
    """CosFace logits ``s (cos(theta_nj) - m [j = y_n])`` with ``cos = <f/|f|, w_j/|w_j|>``.

    ``labels=None`` (inference) applies no margin.
    """
    cos = F.normalize(features, dim=1) @ F.normalize(weights, dim=1).t()
    if labels is not None:
        labels = _check_labels(features, labels, weights.shape[0])
        cos = cos - margin * F.one_hot(labels, weights.shape[0]).to(cos.dtype)
    return scale * cos


class _ClassLoss(nn.Module):
    """Shared interface: ``forward(features, labels) -> scalar loss``, ``logits(features)`` without
    margin, ``set_step(step)`` (schedules; a no-op here), and ``normalize_features``: whether retrieval
    compares L2-normalised features (True for the angular losses) or raw ones (MEMS: Euclidean)."""

    name = "classification"
    normalize_features = True

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2; got {num_classes}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1; got {dim}")
        self.num_classes = int(num_classes)
        self.dim = int(dim)

    def set_step(self, step: int) -> None:  # noqa: D401 - schedules override this
        return None

    def logits(self, features: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class SoftmaxLoss(_ClassLoss):
    """Plain softmax cross-entropy on a linear classifier ``W f + b`` (the DASE authors' baseline)."""

    name = "softmax"

    def __init__(self, num_classes: int, dim: int):
        super().__init__(num_classes, dim)
        self.fc = nn.Linear(dim, num_classes)

    def logits(self, features):
        return self.fc(features)

    def forward(self, features, labels):
        labels = _check_labels(features, labels, self.num_classes)
        return F.cross_entropy(self.logits(features), labels)


class CosFaceLoss(_ClassLoss):
    """CosFace / large-margin cosine loss: cross-entropy on :func:`cosface_logits` (margin ``m``, scale ``s``).

    ``anneal_steps > 0`` anneals the margin as the DASE authors' ``CosFace`` does (``models/losses.py``
    lines 59-65 of Ben-Louis/SBIR-DASE-MEMS): the true-class cosine is ``(1 - a) cos + a (cos - m)``
    with ``a = min(step / anneal_steps, 1)``, i.e. the margin grows linearly from 0 to ``m``. Call
    ``set_step(step)`` every iteration (the trainer does); ``anneal_steps = 0`` (default) applies ``m``
    from the start.
    """

    name = "cosface"

    def __init__(self, num_classes: int, dim: int, margin: float = DEFAULT_COSFACE_MARGIN,
                 scale: float = DEFAULT_COSFACE_SCALE, anneal_steps: int = 0):
        super().__init__(num_classes, dim)
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"the CosFace margin must be in [0, 1); got {margin}")
        if scale <= 0:
            raise ValueError(f"the CosFace scale must be > 0; got {scale}")
        self.final_margin, self.scale = float(margin), float(scale)
        self.anneal_steps = int(anneal_steps)
        self.weight = nn.Parameter(torch.randn(num_classes, dim) / math.sqrt(dim))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @property
    def margin(self) -> float:
        """The margin in force at the current step (linear from 0 to the final margin when annealed)."""
        return mems_margin_schedule(int(self.step), self.final_margin, self.anneal_steps, 0.0)

    def set_step(self, step: int) -> None:
        self.step.fill_(int(step))

    def logits(self, features):
        return cosface_logits(features, self.weight, None, 0.0, self.scale)

    def forward(self, features, labels):
        return F.cross_entropy(cosface_logits(features, self.weight, labels, self.margin, self.scale),
                               _check_labels(features, labels, self.num_classes))

    def extra_repr(self):
        return (f"classes={self.num_classes}, dim={self.dim}, margin={self.final_margin}"
                + (f" (from 0 over {self.anneal_steps} steps)" if self.anneal_steps > 0 else "")
                + f", scale={self.scale}")


class MEMSLoss(_ClassLoss):
    """Multiplicative Euclidean margin softmax with learnable centres ``c [C, d]``.

    The margin follows :func:`mems_margin_schedule`: ``start_margin`` (1) at step 0, linearly up to
    ``margin`` at ``anneal_steps``; call ``set_step(step)`` every iteration (the trainer does).
    The current step is a buffer, so it is saved with the state dict. ``center_std``: the centres'
    initial normal spread (the authors' code draws random centres; the scale is our choice: the default
    ``1/sqrt(d)`` gives centres of norm about 1, so the first logits differ by a few units, not hundreds).
    Retrieval compares raw features by squared Euclidean distance (``normalize_features = False``).
    """

    name = "mems"
    normalize_features = False

    def __init__(self, num_classes: int, dim: int, margin: float = DEFAULT_MEMS_MARGIN,
                 anneal_steps: int = 0, start_margin: float = 1.0, center_std: float | None = None):
        super().__init__(num_classes, dim)
        if margin < 1.0 or start_margin < 1.0:
            raise ValueError(f"MEMS margins must be >= 1 (1 = no margin); got margin={margin}, "
                             f"start_margin={start_margin}")
        self.final_margin, self.start_margin = float(margin), float(start_margin)
        self.anneal_steps = int(anneal_steps)
        std = 1.0 / math.sqrt(dim) if center_std is None else float(center_std)
        self.centers = nn.Parameter(torch.randn(num_classes, dim) * std)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @property
    def margin(self) -> float:
        """The margin in force at the current step."""
        return mems_margin_schedule(int(self.step), self.final_margin, self.anneal_steps, self.start_margin)

    def set_step(self, step: int) -> None:
        self.step.fill_(int(step))

    def logits(self, features):
        """Inference logits ``-||f - c_j||^2`` (no margin): the nearest centre wins."""
        return -pairwise_squared_euclidean(features, self.centers.to(features.dtype))

    def forward(self, features, labels, margin: float | None = None):
        m = self.margin if margin is None else float(margin)
        z = mems_logits(features, self.centers.to(features.dtype), labels, m)
        return F.cross_entropy(z, _check_labels(features, labels, self.num_classes))

    def extra_repr(self):
        return (f"classes={self.num_classes}, dim={self.dim}, margin={self.start_margin}->{self.final_margin} "
                f"over {self.anneal_steps} steps")


def make_classification_loss(name: str, num_classes: int, dim: int, **kw) -> _ClassLoss:
    """``softmax`` | ``cosface`` (``margin``, ``scale``, ``anneal_steps``) | ``mems`` (``margin``,
    ``anneal_steps``, ``start_margin``, ``center_std``)."""
    classes = {"softmax": SoftmaxLoss, "cosface": CosFaceLoss, "mems": MEMSLoss}
    if name not in classes:
        raise ValueError(f"unknown classification loss {name!r}; allowed: {', '.join(CLASSIFICATION_LOSSES)}")
    return classes[name](num_classes, dim, **kw)
