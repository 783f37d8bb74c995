"""Batch samplers: which images make up a training batch, as index tensors on the device.

Taught in: ``notebooks/00_data_and_domain_gap.ipynb`` (how training triplets are drawn); used by the three
training recipes.

- :class:`TripletSampler` (Triplet SN / DSSA, :mod:`sbir_lib.training.triplet`): fine-grained
  (anchor sketch, positive photo, negative photo) triplets, the DSSA authors' recipe.
- :class:`ClassPairSampler` (DASE/MEMS, :mod:`sbir_lib.training.class_pairs`, notebook 07): a batch of
  distinct classes, one sketch and one photo of each.
- :class:`CategoryTriplets` (pretraining, :mod:`sbir_lib.training.pretrain`): category-level
  (sketch, edge map of the same category, edge map of another category) triplets.

All three have one shape (:class:`IndexSampler`): built from labels or annotations, then
``sample(batch)`` returns a tuple of int64 index tensors of length ``batch`` on ``device``. Every random
number comes from one ``torch.Generator`` (``sampler.generator``): a private one seeded with ``seed``, or
the caller's, shared with its augmentation, when ``generator=`` is given. ``state_dict()`` /
``load_state_dict()`` capture everything the next draws depend on, so an interrupted run resumes exactly.
"""

from __future__ import annotations

import torch

from sbir_lib.data.datasets import QMULSplit

__all__ = ["IndexSampler", "TripletSampler", "ClassPairSampler", "CategoryTriplets"]


# ----------------------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------------------
def _pick(u: torch.Tensor, count) -> torch.Tensor:
    """``floor(u * count)`` clamped into ``0..count-1`` (0 when count == 0): a uniform index from ``u`` in
    [0, 1). ``count``: an int or a tensor (per element)."""
    k = (u * count).long()
    if isinstance(count, torch.Tensor):
        return torch.minimum(k, (count - 1).clamp(min=0))
    return k.clamp_(max=max(count - 1, 0))


def _other(x: torch.Tensor, u: torch.Tensor, n: int) -> torch.Tensor:
    """A uniformly random value of ``0..n-1`` other than ``x`` (elementwise), from ``u`` in [0, 1)."""
    return (x + 1 + _pick(u, n - 1)) % n


class _Shuffled:
    """``0..n-1`` in a random order drawn anew every pass (epoch): every index once per epoch. A batch that
    crosses the end of an epoch takes the rest of it and the start of the next."""

    def __init__(self, n: int, generator: torch.Generator, device):
        self.n, self.generator, self.device = int(n), generator, device
        self.perm = torch.arange(self.n, device=device)
        self.pos = self.n  # forces a fresh permutation on the first draw
        self.epoch = -1

    def next(self, b: int) -> torch.Tensor:
        out, need = [], b
        while need > 0:
            if self.pos >= self.n:
                self.perm = torch.randperm(self.n, generator=self.generator, device=self.device)
                self.pos = 0
                self.epoch += 1
            take = min(need, self.n - self.pos)
            out.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            need -= take
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"perm": self.perm.clone(), "pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.perm = torch.as_tensor(state["perm"], dtype=torch.int64).clone().to(self.device)
        self.pos = int(state["pos"])
        self.epoch = int(state["epoch"])


class _ClassMembers:
    """Indices grouped by label (in index order): ``pick(classes, u)`` is a uniformly random member of each
    ``classes[i]``."""

    def __init__(self, labels: torch.Tensor, num_classes: int, what: str, device):
        labels = labels.to(torch.long).cpu()
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(f"{what} labels must lie in 0..{num_classes - 1}")
        count = torch.bincount(labels, minlength=num_classes)
        if (count == 0).any():
            empty = (count == 0).nonzero().squeeze(1).tolist()[:5]
            raise ValueError(f"classes {empty} have no {what}")
        self.order = torch.argsort(labels, stable=True).to(device)
        self.start = (torch.cumsum(count, 0) - count).to(device)
        self.count = count.to(device)

    def pick(self, classes: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.order[self.start[classes] + _pick(u, self.count[classes])]


class IndexSampler:
    """The shape of every sampler: ``sample(batch)`` -> int64 index tensors on ``device``, drawn with
    ``generator`` only (seeded with ``seed`` unless the caller's generator is passed; ``draw_device``: where
    a private generator lives, default ``device``); ``state_dict`` / ``load_state_dict`` for resuming."""

    def __init__(self, seed: int = 0, device="cpu", generator: torch.Generator | None = None, draw_device=None):
        self.seed = int(seed)
        self.device = torch.device(device or "cpu")
        if generator is None:
            generator = torch.Generator(device=draw_device or self.device).manual_seed(self.seed)
        self.generator = generator

    @staticmethod
    def _batch(batch_size: int) -> int:
        b = int(batch_size)
        if b < 1:
            raise ValueError("batch_size must be >= 1")
        return b

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(torch.as_tensor(state["generator"], dtype=torch.uint8).clone())


# ----------------------------------------------------------------------------------------------------------
# Fine-grained triplets (the DSSA authors' recipe, vectorised)
# ----------------------------------------------------------------------------------------------------------
class TripletSampler(IndexSampler):
    """Draw (anchor, positive, negative) index triplets for fine-grained SBIR training.

    The DSSA authors' recipe (``sbir_sampling/sample_util.py`` of their TensorFlow release), with one
    deviation: they cycle anchors in file order; we cycle them in an order reshuffled every epoch, so each
    epoch sees every sketch once. For anchor ``a``:

    ``positives="annotated"`` (the authors' recipe for shoes and chairs): a uniformly random annotated
    pair ``(more, less)`` of ``a`` gives ``positive = more``, ``negative = less``; with probability
    ``1 - hard_prob`` the negative is replaced by a uniformly random photo that appears in *none* of
    ``a``'s pairs and is not ``a``'s true match (so it is never the positive either). The annotated
    negative is kept as annotated, even in the rare pairs where it is the true match.

    ``positives="true_match"``: positive = ``a`` (the true match); negative = the ``less`` photo of a
    random annotated pair whose ``less`` is not ``a`` (probability ``hard_prob``), else a random photo
    other than ``a``.

    No annotation (``triplets=None``, e.g. handbags) or an anchor with no pairs: positive = ``a``,
    negative = a random other photo (the authors' handbags recipe).

    ``split``: a :class:`~sbir_lib.data.datasets.QMULSplit` or ``(n, triplets)``. Random numbers come from a
    CPU generator seeded with ``seed``; every batch draws the same amount of randomness whatever the
    branch. Indices are built on the CPU and returned on ``device``. ``last_hard`` holds, for the latest
    batch, whether each negative came from the annotation.
    """

    MODES = ("annotated", "true_match")

    def __init__(self, split, positives: str = "annotated", hard_prob: float = 0.75, seed: int = 0,
                 device="cpu"):
        if isinstance(split, QMULSplit):
            n, triplets = len(split), split.triplets
        else:
            n, triplets = split
        n = int(n)
        if positives not in self.MODES:
            raise ValueError(f"positives must be one of {self.MODES}; got {positives!r}")
        if not 0.0 <= hard_prob <= 1.0:
            raise ValueError(f"hard_prob must be in [0, 1]; got {hard_prob}")
        if n < 2:
            raise ValueError("need at least 2 photos to draw negatives")
        if triplets is not None and len(triplets) != n:
            raise ValueError(f"triplets lists {len(triplets)} queries for {n} photos")
        super().__init__(seed, device, draw_device="cpu")
        self.n = n
        self.positives = positives
        self.hard_prob = float(hard_prob)
        self.has_annotation = triplets is not None
        self._anchors = _Shuffled(n, self.generator, "cpu")
        self.last_hard = torch.zeros(0, dtype=torch.bool)
        self._build(triplets)

    def _build(self, triplets) -> None:
        n = self.n
        if triplets is None:
            triplets = [[] for _ in range(n)]
        counts = torch.tensor([len(t) for t in triplets], dtype=torch.int64)
        maxp = max(1, int(counts.max()))
        pairs = torch.zeros(n, maxp, 2, dtype=torch.int64)
        for i, t in enumerate(triplets):
            if len(t):
                pairs[i, :len(t)] = torch.as_tensor(t, dtype=torch.int64).reshape(-1, 2)
        if counts.sum() and (pairs.min() < 0 or pairs.max() >= n):
            raise ValueError(f"triplet photo indices must lie in 0..{n - 1}")
        self._pairs, self._npairs = pairs, counts
        # annotated mode: random-negative pool = photos in none of the anchor's pairs, minus the anchor
        valid = torch.arange(maxp)[None, :] < counts[:, None]  # [n, maxp]
        annotated = torch.zeros(n, n, dtype=torch.bool)
        rows = torch.arange(n)[:, None].expand(n, maxp)
        for k in (0, 1):
            annotated[rows[valid], pairs[..., k][valid]] = True
        self._annotated = annotated
        blocked = annotated | torch.eye(n, dtype=torch.bool)
        order = torch.argsort(blocked.to(torch.int8), dim=1, stable=True)  # allowed photos first
        self._rand_pool, self._nrand = order, (~blocked).sum(1)
        # true-match mode: hard pool = 'less similar' photos of pairs whose less != anchor (pair multiplicity)
        less = pairs[..., 1]
        ok = valid & (less != torch.arange(n)[:, None])
        order2 = torch.argsort((~ok).to(torch.int8), dim=1, stable=True)
        self._tm_pool, self._ntm = torch.gather(less, 1, order2), ok.sum(1)

    @property
    def epoch(self) -> int:
        """Completed-or-current epoch index (0 during the first pass over the anchors)."""
        return max(self._anchors.epoch, 0)

    def sample(self, batch_size: int):
        """``(anchor_idx, pos_idx, neg_idx)``, three int64 tensors of length ``batch_size`` on ``device``."""
        b = self._batch(batch_size)
        a = self._anchors.next(b)
        g = self.generator
        u_pair = torch.rand(b, generator=g, dtype=torch.float64)
        u_hard = torch.rand(b, generator=g, dtype=torch.float64)
        u_rand = torch.rand(b, generator=g, dtype=torch.float64)
        hard = u_hard < self.hard_prob
        other = _other(a, u_rand, self.n)  # any photo != a
        if self.positives == "annotated":
            cnt = self._npairs[a]
            k = _pick(u_pair, cnt)
            pos_ann, neg_ann = self._pairs[a, k, 0], self._pairs[a, k, 1]
            rc = self._nrand[a]
            neg_rand = self._rand_pool[a, _pick(u_rand, rc)]
            use_hard = hard | (rc == 0)
            neg = torch.where(use_hard, neg_ann, neg_rand)
            has = cnt > 0
            pos = torch.where(has, pos_ann, a)
            neg = torch.where(has, neg, other)
            self.last_hard = use_hard & has
        else:
            cnt = self._ntm[a]
            neg_hard = self._tm_pool[a, _pick(u_pair, cnt)]
            use_hard = hard & (cnt > 0)
            pos = a.clone()
            neg = torch.where(use_hard, neg_hard, other)
            self.last_hard = use_hard
        d = self.device
        return a.to(d), pos.to(d), neg.to(d)

    def is_annotated(self, anchor: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        """Whether ``photo`` appears in any annotated pair of ``anchor`` (elementwise, CPU bool)."""
        return self._annotated[anchor.cpu(), photo.cpu()]

    def state_dict(self) -> dict:
        return {"n": self.n, "positives": self.positives, "hard_prob": self.hard_prob, "seed": self.seed,
                **self._anchors.state_dict(), **super().state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if int(state["n"]) != self.n:
            raise ValueError(f"sampler state is for {state['n']} anchors, this sampler has {self.n}")
        if state.get("positives", self.positives) != self.positives:
            raise ValueError(f"sampler state is for positives={state['positives']!r}, not {self.positives!r}")
        self.hard_prob = float(state.get("hard_prob", self.hard_prob))
        self._anchors.load_state_dict(state)
        super().load_state_dict(state)


# ----------------------------------------------------------------------------------------------------------
# Class pairs (DASE/MEMS)
# ----------------------------------------------------------------------------------------------------------
class ClassPairSampler(IndexSampler):
    """Draw batches of classes with one sketch and one photo of each, as index tensors on ``device``.

    Classes are visited in a random order reshuffled each epoch (every class once per epoch; a batch
    never repeats a class unless the batch is larger than the number of classes); within a class
    the sketch and the photo are uniform draws. ``sample(b) -> (classes, sketch_idx, photo_idx)``.
    The generator lives on ``device``.
    """

    def __init__(self, sketch_labels: torch.Tensor, photo_labels: torch.Tensor, num_classes: int,
                 seed: int = 0, device=None, generator: torch.Generator | None = None):
        super().__init__(seed, device, generator)
        self.num_classes = int(num_classes)
        self.sketches = _ClassMembers(sketch_labels, self.num_classes, "training sketches", self.device)
        self.photos = _ClassMembers(photo_labels, self.num_classes, "training photos", self.device)
        self._classes = _Shuffled(self.num_classes, self.generator, self.device)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = self._batch(batch_size)
        c = self._classes.next(b)
        u = torch.rand(2, b, generator=self.generator, device=self.device)
        return c, self.sketches.pick(c, u[0]), self.photos.pick(c, u[1])

    def state_dict(self) -> dict:
        return {**self._classes.state_dict(), **super().state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self._classes.load_state_dict(state)
        super().load_state_dict(state)


# ----------------------------------------------------------------------------------------------------------
# Category-level triplets (pretraining)
# ----------------------------------------------------------------------------------------------------------
class CategoryTriplets(IndexSampler):
    """Category-level triplet draws: anchor = a uniformly random training sketch, positive = a random edge
    map of the anchor's category, negative = a random edge map of a uniformly random *other* category.

    ``sample(b) -> (anchor sketch idx, positive edge idx, negative edge idx)``. Random numbers, per batch:
    ``b`` anchor indices, then one ``[3, b]`` uniform draw, on ``device`` (pretraining passes its own
    generator, which its augmentation draws from too).
    """

    def __init__(self, sketch_labels: torch.Tensor, edge_labels: torch.Tensor, n_classes: int, seed: int = 0,
                 device="cpu", generator: torch.Generator | None = None):
        if n_classes < 2:
            raise ValueError("category-level triplets need at least 2 categories")
        super().__init__(seed, device, generator)
        self.n_classes = int(n_classes)
        self.sketch_labels = sketch_labels.to(self.device)
        self.edges = _ClassMembers(edge_labels, self.n_classes, "edge maps", self.device)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = self._batch(batch_size)
        g = self.generator
        a = torch.randint(0, len(self.sketch_labels), (b,), generator=g, device=self.device)
        ya = self.sketch_labels[a]
        u = torch.rand(3, b, generator=g, device=self.device)
        yn = _other(ya, u[0], self.n_classes)
        return a, self.edges.pick(ya, u[1]), self.edges.pick(yn, u[2])
