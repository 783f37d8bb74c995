"""Offline Sketch-a-Net pretraining on Sketchy-mini sketches and photo edge maps.

Taught in: ``notebooks/01_triplet_loss.ipynb`` (section "Where the initial weights come from").
Used by the ``pretrain`` experiment of :mod:`sbir_lib.experiments.runner` (rows ``base@sketchy_mini``,
``full@sketchy_mini``: the same models as ``base``/``full`` started from this checkpoint).

Why
---
Triplet SN and DSSA (Song et al., ICCV 2017) never start from scratch: Sketch-a-Net is first trained
as a classifier on edge maps of ImageNet photos and on TU-Berlin sketches, then triplet-trained on
many categories (sketch vs the edge map of a photo of the same category), and only then fine-tuned
on QMUL (with conv1-conv4 or conv1-conv5 frozen). Those weights and datasets cannot be had offline.
The largest real category-level sketch + photo data here is Sketchy-mini (125 categories, 25 sketches
and 25 photos each), so this module mirrors the authors' recipe at that scale:

Data (:func:`prepare_data`)
    The Sketchy-mini training sketches (the deterministic split of
    :func:`sbir_lib.data.datasets.load_sketchy_mini`: per category the first 20 file names; the other 5 are held
    out) and the edge maps of **all** its photos (:mod:`sbir_lib.data.edges`, an extractor tuned to look like
    the QMUL edge maps), 125-way: a sketch and an edge map of the same category share the label.
    No QMUL image is ever read here. Held-out evaluation: the 625 test sketches.

Stage ``classify`` (the authors' first two steps, on our data)
    Sketch-a-Net (:class:`sbir_lib.models.dssa.SketchANet`, fc6 512 -> fc7 256) with a **cosine classifier**
    on the L2-normalised fc7: ``logits = s * <fc7/|fc7|, w_c/|w_c|>`` (normalised softmax, scale
    ``cos_scale``), cross-entropy with label smoothing. Choice: DSSA's embedding is the L2-normalised
    fc7 (as in the authors' code), so the classifier shapes exactly the space the triplet loss later
    uses; a plain linear classifier would train the raw fc7 instead. The classifier's weights are saved
    (``"classifier"``) but not needed downstream. Each batch holds half sketches, half edge maps.
    Augmentation, batched on the device: :func:`sbir_lib.data.datasets.augment` (random 225 crops + flips) then
    a random affine warp per image (rotation, scale, shift; :func:`random_affine`).
    AdamW, linear warm-up then cosine decay, bf16 autocast on CUDA.

Stage ``triplet`` (optional, the authors' third step)
    Category-level triplets: anchor = a training sketch, positive = the edge map of a random photo of
    the same category, negative = the edge map of a photo of another category; triplet hinge
    (:func:`sbir_lib.losses.losses.triplet_hinge`, Eq. 1) on squared Euclidean distances of the L2-normalised
    fc7 -- the ``base`` variant's loss.

Held-out numbers in the provenance: ``top1`` (classification of the test sketches, centre crop) and
``map`` (category-level retrieval: test sketches vs the edge maps of all photos, normalised fc7,
:func:`sbir_lib.metrics.retrieval.mean_average_precision`; the photos were seen in training -- a diagnostic).

Profiles (``--profile``)
    ``quick``: 2 CPU cores, a few minutes: the first 10 categories, 100 classification steps of 16
    images, 20 triplet steps of 8 triplets. Enough to see it learn, far from a useful init. Measured
    (seed 0, CPU, 2 cores shared with other jobs): held-out top-1 24.0% (chance 10%), mAP 13.0%
    (chance ~10%); 266 s wall, 143 s of CPU time (edge maps of 250 photos included).
    ``full`` (a GPU): all 125 categories, 20,000 classification steps of 128 images + 4,000 triplet steps
    of 128 triplets = 4.1 M images through the network, about 3 minutes at the ~24,000 images/s
    Sketch-a-Net trains at on an H100 in bf16.

Checkpoint (``--out``; default ``checkpoints/sketchanet_sketchy_mini.pt``, quick profile
``checkpoints/sketchanet_sketchy_mini.quick.pt``, where the ``pretrain`` experiment looks)::

    {"model": SketchANet state_dict (float32), "classifier": [C, 256], "categories": [...],
     "history": {...}, "provenance": {data, split, stages, steps, batch, lr, seed, profile, device,
     torch, git commit, wall time, held-out top-1 / mAP, edge extractor settings, ...}}

It loads with ``torch.load(weights_only=True)`` and :func:`sbir_lib.models.sketchanet_init.load_sketchanet_init`
(which reads the ``"model"`` key). A run saves ``<out>.resume`` every ``checkpoint_every`` steps and
resumes from it when started again with the same settings; it is deleted when the run completes.

Commands::

    python -m sbir_lib.training.pretrain run --profile quick                 # CPU, ~2 minutes
    python -m sbir_lib.training.pretrain pack --out sketchy_mini_pretrain.npz # ~20 MB: sketches + edge maps
    python -m sbir_lib.training.pretrain run --profile full --device cuda --packed sketchy_mini_pretrain.npz
    python -m sbir_lib.experiments run --experiment pretrain --dataset shoes --profile full
    python -m sbir_lib.experiments run --experiment table2 --dataset shoes --init checkpoints/sketchanet_sketchy_mini.pt

``pack`` writes everything training needs (uint8 sketches, precomputed edge maps, labels, split, category
names, extractor settings) into one compressed ``.npz`` for a GPU machine that cannot read the image
folders; ``--packed`` trains from it.

With the authors' weights
-------------------------
A user who has the DSSA authors' released ``sketchnet_init.npy`` (TensorFlow ``{layer: [weights,
biases]}``) passes it wherever a checkpoint goes: ``python -m sbir_lib.experiments run --experiment
table2 --dataset shoes --init /path/sketchnet_init.npy`` (converted by
:func:`sbir_lib.models.sketchanet_init.load_sketchanet_init`, which also takes ``input_scale=255`` for weights trained on
the 0..255 scale). ``python -m sbir_lib.training.pretrain run --init /path/sketchnet_init.npy --stages triplet``
continues from it with our triplet stage instead of starting from scratch.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sbir_lib.core import config as _config
from sbir_lib.core.io import sha256_file
from sbir_lib.training.engine import LossLog, autocast, config_key, seed_everything, train_step
from sbir_lib.core.records import git_commit, init_checkpoint
from sbir_lib.data import datasets as D
from sbir_lib.data import edges as E
from sbir_lib.losses import losses as L
from sbir_lib.metrics import retrieval as M
from sbir_lib.core.io import atomic_path, torch_save_atomic
from sbir_lib.models.dssa import SketchANet
from sbir_lib.models.sketchanet_init import load_sketchanet_init

__all__ = ["STAGES", "PROFILES", "PretrainConfig", "PretrainData", "PretrainResult", "profile_config",
           "prepare_data", "synthetic_data", "CategoryTriplets", "pack", "load_packed", "random_affine", "pretrain",
           "evaluate", "default_out", "main"]

STAGES = ("classify", "triplet")
FORMAT = "sbir_lib.training.pretrain/1"
PACK_FORMAT = "sbir_lib.training.pretrain.pack/1"
INIT_NAME = "sketchy_mini"  # the ``@sketchy_mini`` rows of the ``pretrain`` experiment

PROFILES: dict[str, dict[str, Any]] = {
    # 2 CPU cores, about two minutes in all (data preparation included).
    "quick": dict(categories=10, classify_steps=100, triplet_steps=20, batch_size=16, triplet_batch=8,
                  lr=1e-3, triplet_lr=1e-4, warmup=10, eval_every=0, log_every=10, checkpoint_every=50),
    # A GPU (H100: ~3 minutes). 20k x 128 + 4k x 3 x 128 = 4.1 M images.
    "full": dict(categories=None, classify_steps=20_000, triplet_steps=4_000, batch_size=128,
                 triplet_batch=128, lr=5e-4, triplet_lr=1e-4, warmup=500, eval_every=2_000, log_every=100,
                 checkpoint_every=2_000),
}


@dataclass
class PretrainConfig:
    """Everything that defines a pretraining run; :func:`profile_config` fills it per profile."""

    profile: str = "full"
    stages: tuple[str, ...] = ("classify", "triplet")
    categories: int | None = None  # the first k Sketchy-mini categories (sorted names); None = all
    classify_steps: int = 20_000
    triplet_steps: int = 4_000
    batch_size: int = 128  # images per classification step (half sketches, half edge maps)
    triplet_batch: int = 128  # triplets per triplet step (3 images each)
    lr: float = 5e-4
    triplet_lr: float = 1e-4
    weight_decay: float = 0.05
    warmup: int = 500
    label_smoothing: float = 0.1
    cos_scale: float = 16.0
    margin: float = L.DEFAULT_MARGIN
    rotate_deg: float = 10.0  # random affine: rotation in [-r, r] degrees
    scale: float = 0.1  # isotropic scale in [1-s, 1+s]
    shift: float = 0.05  # translation in [-t, t] of the image size
    dropout: float = 0.5
    init: str | None = None  # start from these weights (a SketchANet checkpoint or the authors' .npy)
    init_input_scale: float | None = None
    eval_every: int = 0
    log_every: int = 100
    checkpoint_every: int = 2_000
    amp: bool = True
    channels_last: bool = True
    seed: int = 0

    def validate(self) -> "PretrainConfig":
        problems = []
        if self.profile not in _config.PROFILES:
            problems.append(f"profile must be one of {', '.join(_config.PROFILES)}, got {self.profile!r}")
        stages = tuple(self.stages)
        bad = [s for s in stages if s not in STAGES]
        if bad or not stages or len(set(stages)) != len(stages):
            problems.append(f"stages must be a non-empty, duplicate-free list of {', '.join(STAGES)}; "
                            f"got {','.join(stages) or '(empty)'}")
        elif list(stages) != [s for s in STAGES if s in stages]:
            problems.append(f"stages run in the order {', '.join(STAGES)}; got {','.join(stages)}")
        if self.categories is not None and self.categories < 2:
            problems.append(f"categories must be >= 2 or None (all), got {self.categories}")
        for name in ("classify_steps", "triplet_steps"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "triplet_batch", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            problems.append("batch_size must be >= 2 (half sketches, half edge maps)")
        for name in ("lr", "triplet_lr", "cos_scale"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("weight_decay", "warmup", "margin", "rotate_deg", "eval_every"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.scale < 1 or not 0 <= self.shift < 0.5:
            problems.append(f"scale must be in [0, 1) and shift in [0, 0.5), got {self.scale}, {self.shift}")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if problems:
            raise ValueError("; ".join(problems))
        self.stages = stages
        return self

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["stages"] = list(self.stages)
        return d

    def key(self) -> str:
        """A short hash of the settings that change results (not logging/checkpoint cadence)."""
        return config_key(self, ignore=("log_every", "checkpoint_every", "eval_every"))

    def steps_of(self, stage: str) -> int:
        return self.classify_steps if stage == "classify" else self.triplet_steps


def profile_config(profile: str, **overrides) -> PretrainConfig:
    """The :class:`PretrainConfig` of ``quick`` | ``full`` with overrides (``None`` values ignored)."""
    _config.check_profile(profile)
    names = {f.name for f in dataclasses.fields(PretrainConfig)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise ValueError(f"unknown pretraining option(s) {bad}; allowed: {sorted(names)}")
    kw = dict(PROFILES[profile], profile=profile)
    kw.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(kw.get("stages"), str):
        kw["stages"] = tuple(s.strip() for s in kw["stages"].split(",") if s.strip())
    return PretrainConfig(**kw).validate()


def default_out(profile: str) -> Path:
    """``checkpoints/sketchanet_sketchy_mini[.quick].pt``: where the ``pretrain`` experiment looks."""

    return init_checkpoint(INIT_NAME, _config.check_profile(profile))


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------
@dataclass
class PretrainData:
    """Sketches and photo edge maps of a category-level set, uint8 ``[N, H, W]`` (white background)."""

    categories: list[str]
    sketches: torch.Tensor  # training sketches
    sketch_labels: torch.Tensor
    test_sketches: torch.Tensor  # held out: only for the reported accuracy
    test_labels: torch.Tensor
    edges: torch.Tensor  # edge maps of every photo
    edge_labels: torch.Tensor
    source: str
    split: str
    edge_settings: dict = field(default_factory=dict)
    packed: str | None = None  # "<file name> sha256=<...>" when read from a pack

    def __post_init__(self):
        for name in ("sketches", "test_sketches", "edges"):
            t = getattr(self, name)
            if t.dtype != torch.uint8 or t.dim() != 3:
                raise ValueError(f"{name} must be uint8 [N, H, W]; got {t.dtype} {tuple(t.shape)}")
        for imgs, labs in (("sketches", "sketch_labels"), ("test_sketches", "test_labels"), ("edges", "edge_labels")):
            if len(getattr(self, imgs)) != len(getattr(self, labs)):
                raise ValueError(f"{imgs} and {labs} differ in length")
        n = len(self.categories)
        for labs in ("sketch_labels", "edge_labels"):
            t = getattr(self, labs)
            if len(t) and (int(t.min()) < 0 or int(t.max()) >= n):
                raise ValueError(f"{labs} must lie in 0..{n - 1}")
        missing = sorted(set(range(n)) - set(self.edge_labels.tolist()))
        if missing:
            raise ValueError(f"categories without any edge map: {[self.categories[i] for i in missing][:5]}")

    def describe(self) -> str:
        return (f"{self.source}: {len(self.categories)} categories, {len(self.sketches)} training sketches + "
                f"{len(self.edges)} photo edge maps; {len(self.test_sketches)} held-out test sketches")

    def subset(self, k: int) -> "PretrainData":
        """The first ``k`` categories (labels stay 0..k-1)."""
        if k >= len(self.categories):
            return self
        keep = lambda lab: lab < k  # noqa: E731
        ms, mt, me = keep(self.sketch_labels), keep(self.test_labels), keep(self.edge_labels)
        return dataclasses.replace(
            self, categories=self.categories[:k], sketches=self.sketches[ms], sketch_labels=self.sketch_labels[ms],
            test_sketches=self.test_sketches[mt], test_labels=self.test_labels[mt], edges=self.edges[me],
            edge_labels=self.edge_labels[me], source=f"{self.source} (first {k} categories)")


def _from_category_dataset(cd: D.CategoryDataset, settings: E.EdgeSettings, progress: bool) -> PretrainData:
    edges = E.photos_to_edges(cd.photos, settings, progress=progress)
    return PretrainData(
        categories=list(cd.categories), sketches=cd.train_sketches, sketch_labels=cd.train_labels,
        test_sketches=cd.test_sketches, test_labels=cd.test_labels, edges=torch.from_numpy(edges),
        edge_labels=cd.photo_labels, source=cd.source, split=cd.split, edge_settings=settings.to_dict())


def prepare_data(root=None, categories: int | None = None, settings: E.EdgeSettings = E.DEFAULT_SETTINGS,
                 progress: bool = False) -> PretrainData:
    """Sketchy-mini training/test sketches + the edge maps of all its photos (:mod:`sbir_lib.data.edges`).

    Raises :class:`sbir_lib.data.datasets.DatasetMissingError` naming the download command when it is absent."""
    cd = D.load_sketchy_mini(root=root, categories=categories)
    return _from_category_dataset(cd, settings, progress)


def synthetic_data(n_classes: int = 4, per_class: int = 6, n_test_per_class: int = 2, photos_per_class: int = 4,
                   size: int = 256, seed: int = 0, settings: E.EdgeSettings = E.DEFAULT_SETTINGS) -> PretrainData:
    """A tiny stand-in built from :func:`sbir_lib.data.datasets.make_synthetic_categories` (tests, no downloads)."""
    cd = D.make_synthetic_categories(n_classes=n_classes, per_class=per_class, n_test_per_class=n_test_per_class,
                                     photos_per_class=photos_per_class, size=size, seed=seed)
    return _from_category_dataset(cd, settings, progress=False)


def pack(path, data: PretrainData) -> Path:
    """Write ``data`` as one compressed ``.npz`` (uint8 images, labels, split, names); return the path."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"pack files end in .npz; got {path.name}")
    meta = {"format": PACK_FORMAT, "source": data.source, "split": data.split, "edge_settings": data.edge_settings,
            "categories": data.categories}
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh, sketches=data.sketches.numpy(), sketch_labels=data.sketch_labels.numpy().astype(np.int16),
                test_sketches=data.test_sketches.numpy(), test_labels=data.test_labels.numpy().astype(np.int16),
                edges=data.edges.numpy(), edge_labels=data.edge_labels.numpy().astype(np.int16),
                meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    return path




def load_packed(path) -> PretrainData:
    """Read a file written by :func:`pack` (``python -m sbir_lib.training.pretrain pack``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no packed data at {path}; make it with: "
                                f"python -m sbir_lib.training.pretrain pack --out {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except Exception as e:  # zipfile.BadZipFile, KeyError, ValueError, OSError on damage
        raise D.DatasetCorruptError(path, f"unreadable pack: {type(e).__name__}: {e}") from e
    if meta.get("format") != PACK_FORMAT:
        raise D.DatasetCorruptError(path, f"format {meta.get('format')!r}, expected {PACK_FORMAT!r}")
    t = lambda k, dt=None: torch.from_numpy(arrays[k].astype(dt) if dt else arrays[k])  # noqa: E731
    return PretrainData(
        categories=list(meta["categories"]), sketches=t("sketches"), sketch_labels=t("sketch_labels", np.int64),
        test_sketches=t("test_sketches"), test_labels=t("test_labels", np.int64), edges=t("edges"),
        edge_labels=t("edge_labels", np.int64), source=meta["source"], split=meta["split"],
        edge_settings=meta["edge_settings"], packed=f"{path.name} sha256={sha256_file(path)[:16]}")


# ----------------------------------------------------------------------------------------------------------
# Augmentation, model head, evaluation
# ----------------------------------------------------------------------------------------------------------
def random_affine(ink: torch.Tensor, rotate_deg: float, scale: float, shift: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Warp each image of ``ink`` (float ``[B, 1, H, W]``, 0 = white background) by its own random
    rotation in ``[-rotate_deg, rotate_deg]``, isotropic scale in ``[1-scale, 1+scale]`` and shift in
    ``[-shift, shift]`` (fraction of the size); one ``grid_sample`` on the batch's device. Pixels
    from outside the image are white. Randomness is drawn on ``generator``'s device."""
    B = ink.shape[0]
    if rotate_deg == 0 and scale == 0 and shift == 0:
        return ink
    gdev = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(B, 4, generator=generator, device=gdev).to(ink.device) * 2 - 1  # uniform [-1, 1]
    th = u[:, 0] * math.radians(rotate_deg)
    s = 1.0 + u[:, 1] * scale
    c, si = torch.cos(th) / s, torch.sin(th) / s  # the grid maps output -> input: inverse scale
    theta = torch.stack([torch.stack([c, -si, u[:, 2] * 2 * shift], 1),
                         torch.stack([si, c, u[:, 3] * 2 * shift], 1)], 1)  # [B, 2, 3]
    grid = F.affine_grid(theta.to(ink.dtype), list(ink.shape), align_corners=False)
    return F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _inputs(batch_u8: torch.Tensor, cfg: PretrainConfig, gen: torch.Generator, train: bool = True) -> torch.Tensor:
    """uint8 ``[B, H, W]`` -> network input ``[B, 1, 225, 225]`` (crop/flip + affine when ``train``)."""
    x = D.augment(batch_u8, generator=gen) if train else D.center_crop(batch_u8)
    ink = 1.0 - x.float() / 255.0
    if train:
        ink = random_affine(ink, cfg.rotate_deg, cfg.scale, cfg.shift, generator=gen)
    x = (1.0 - ink) - D.PIXEL_MEAN  # == data.to_input of the warped image
    if cfg.channels_last and x.is_cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _cos_logits(fc7: torch.Tensor, weight: torch.Tensor, scale: float) -> torch.Tensor:
    return scale * F.normalize(fc7.float(), dim=1) @ F.normalize(weight.float(), dim=1).t()




@torch.no_grad()
def _embed(model: SketchANet, images: torch.Tensor, cfg: PretrainConfig, device, batch: int = 256) -> torch.Tensor:
    """fc7 (float32, not normalised) of the centre crops of uint8 images, ``[N, 256]``."""
    was = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        x = _inputs(images[i:i + batch].to(device), cfg, None, train=False)
        with autocast(device, cfg.amp):
            out.append(model(x).float())
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0, model.fc7.out_features, device=device)


def evaluate(model: SketchANet, classifier: torch.Tensor | None, data: PretrainData, cfg: PretrainConfig,
             device) -> dict:
    """Held-out numbers: ``top1`` (test sketches classified by the cosine classifier; None without one)
    and ``map`` (test sketches retrieving the edge maps of all photos by normalised-fc7 distance)."""
    if len(data.test_sketches) == 0:
        return {"top1": None, "map": None}
    q = _embed(model, data.test_sketches, cfg, device)
    g = _embed(model, data.edges, cfg, device)
    labels = data.test_labels.to(q.device)
    top1 = None
    if classifier is not None:
        pred = _cos_logits(q, classifier, cfg.cos_scale).argmax(1)
        top1 = float((pred == labels).float().mean())
    qn, gn = F.normalize(q, dim=1), F.normalize(g, dim=1)
    dist = L.pairwise_squared_euclidean(qn, gn)
    mAP = M.mean_average_precision(dist.cpu(), data.test_labels, data.edge_labels)
    return {"top1": top1, "map": float(mAP)}


# ----------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------
@dataclass
class PretrainResult:
    model: SketchANet
    classifier: torch.Tensor
    provenance: dict
    history: dict
    out: Path | None


def _lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    rest = max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / rest)))


class CategoryTriplets:
    """Category-level triplet draws (stage ``triplet``), vectorised on the device: anchor = a random
    training sketch, positive = a random edge map of the anchor's category, negative = a random edge map
    of a uniformly random *other* category."""

    def __init__(self, sketch_labels: torch.Tensor, edge_labels: torch.Tensor, n_classes: int, device="cpu"):
        if n_classes < 2:
            raise ValueError("category-level triplets need at least 2 categories")
        counts = torch.bincount(edge_labels.cpu(), minlength=n_classes)
        if (counts == 0).any():
            raise ValueError("every category needs at least one edge map")
        self.sketch_labels = sketch_labels.to(device)
        self.order = torch.argsort(edge_labels.cpu(), stable=True).to(device)
        self.start = (torch.cumsum(counts, 0) - counts).to(device)
        self.count = counts.to(device)
        self.n_classes = int(n_classes)
        self.device = torch.device(device)

    def _edge_of(self, classes: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        k = torch.minimum((u * self.count[classes]).long(), self.count[classes] - 1)
        return self.order[self.start[classes] + k]

    def sample(self, b: int, generator: torch.Generator | None = None):
        """``(anchor sketch idx, positive edge idx, negative edge idx)``, int64 ``[b]`` each."""
        a = torch.randint(0, len(self.sketch_labels), (b,), generator=generator, device=self.device)
        ya = self.sketch_labels[a]
        u = torch.rand(3, b, generator=generator, device=self.device)
        yn = (ya + 1 + (u[0] * (self.n_classes - 1)).long().clamp_(max=self.n_classes - 2)) % self.n_classes
        return a, self._edge_of(ya, u[1]), self._edge_of(yn, u[2])


def pretrain(cfg: PretrainConfig, data: PretrainData, device=None, out=None, progress: bool = True,
             resume: bool = True) -> PretrainResult:
    """Run ``cfg.stages`` on ``data``; save the checkpoint to ``out`` (when given) and return the result.

    Resumes from ``<out>.resume`` when it exists and was written with the same :meth:`PretrainConfig.key`
    and data (``resume=False`` ignores it)."""
    from tqdm.auto import tqdm

    cfg.validate()
    device = _config.default_device(device) if not isinstance(device, torch.device) else device
    if cfg.categories is not None:
        data = data.subset(cfg.categories)
    n_classes = len(data.categories)
    t_start = time.perf_counter()
    seed_everything(cfg.seed)
    np.random.seed(cfg.seed)

    model = SketchANet(dropout=cfg.dropout)
    init_report = None
    if cfg.init:
        init_report = str(load_sketchanet_init(model, cfg.init, input_scale=cfg.init_input_scale))
    classifier = torch.nn.Parameter((torch.randn(n_classes, model.fc7.out_features) * 0.01).to(device))
    model.to(device)
    if cfg.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)

    sketches, s_lab = data.sketches.to(device), data.sketch_labels.to(device)
    edges, e_lab = data.edges.to(device), data.edge_labels.to(device)
    triplets = CategoryTriplets(data.sketch_labels, data.edge_labels, n_classes, device) \
        if "triplet" in cfg.stages else None
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    data_key = hashlib.sha1(json.dumps([data.categories, len(data.sketches), len(data.edges),
                                        int(data.sketches[:, ::16, ::16].sum()), int(data.edges[:, ::16, ::16].sum())]
                                       ).encode()).hexdigest()[:12]

    history: dict[str, list] = {"stage": [], "step": [], "loss": [], "eval_stage": [], "eval_step": [],
                                "eval_top1": [], "eval_map": []}
    stage_times: dict[str, float] = {}
    done = {s: 0 for s in cfg.stages}
    opt_state = None
    out = Path(out) if out is not None else None
    resume_path = Path(str(out) + ".resume") if out is not None else None
    if resume and resume_path is not None and resume_path.exists():
        st = torch.load(resume_path, map_location="cpu", weights_only=False)
        if st.get("config_key") == cfg.key() and st.get("data_key") == data_key:
            model.load_state_dict(st["model"])
            with torch.no_grad():
                classifier.copy_(st["classifier"])
            gen.set_state(st["generator"])
            torch.set_rng_state(st["torch_rng"])
            history, done, opt_state = st["history"], st["done"], st["optimizer"]
            stage_times = st.get("stage_times", {})
            print(f"resuming from {resume_path} ({', '.join(f'{k} {v}' for k, v in done.items())})", file=sys.stderr)

    def save_resume(stage: str, opt) -> None:
        if resume_path is None:
            return
        torch_save_atomic(resume_path, {
            "config_key": cfg.key(), "data_key": data_key, "model": model.state_dict(),
            "classifier": classifier.detach().cpu(), "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "history": history, "done": done, "optimizer": {"stage": stage, "state": opt.state_dict()},
            "stage_times": stage_times})

    def log_eval(stage: str, step: int) -> dict:
        r = evaluate(model, classifier if "classify" in cfg.stages else None, data, cfg, device)
        history["eval_stage"].append(stage)
        history["eval_step"].append(step)
        history["eval_top1"].append(r["top1"])
        history["eval_map"].append(r["map"])
        return r

    for stage in cfg.stages:
        total = cfg.steps_of(stage)
        if done[stage] >= total:
            continue
        params = list(model.parameters()) + ([classifier] if stage == "classify" else [])
        base_lr = cfg.lr if stage == "classify" else cfg.triplet_lr
        opt = torch.optim.AdamW(params, lr=base_lr, weight_decay=cfg.weight_decay)
        if opt_state is not None and opt_state.get("stage") == stage:
            opt.load_state_dict(opt_state["state"])
        opt_state = None
        model.train()
        t0 = time.perf_counter()
        bar = tqdm(range(done[stage], total), initial=done[stage], total=total, desc=f"pretrain {stage}",
                   disable=not progress, leave=False)
        log = LossLog(history, cfg.log_every, total, bar, step_key="step")
        for step in bar:
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, total, base_lr, cfg.warmup)
            if stage == "classify":
                h = cfg.batch_size // 2
                i_s = torch.randint(0, len(sketches), (h,), generator=gen, device=device)
                i_e = torch.randint(0, len(edges), (cfg.batch_size - h,), generator=gen, device=device)
                imgs = torch.cat([sketches[i_s], edges[i_e]])
                y = torch.cat([s_lab[i_s], e_lab[i_e]])
                x = _inputs(imgs, cfg, gen)
                with autocast(device, cfg.amp):
                    fc7 = model(x)
                loss = F.cross_entropy(_cos_logits(fc7, classifier, cfg.cos_scale), y,
                                       label_smoothing=cfg.label_smoothing)
            else:
                a, p, n = triplets.sample(cfg.triplet_batch, gen)
                x = _inputs(torch.cat([sketches[a], edges[p], edges[n]]), cfg, gen)
                with autocast(device, cfg.amp):
                    emb = model(x)
                s, ep, en = F.normalize(emb.float(), dim=1).chunk(3)
                loss = L.triplet_hinge(L.squared_euclidean(s, ep), L.squared_euclidean(s, en), cfg.margin)
            done[stage] = step + 1
            log.add(train_step(opt, loss), done[stage], stage=stage)
            if cfg.eval_every and done[stage] % cfg.eval_every == 0 and done[stage] < total:
                log_eval(stage, done[stage])
            if done[stage] % cfg.checkpoint_every == 0 and done[stage] < total:
                stage_times[stage] = stage_times.get(stage, 0.0) + time.perf_counter() - t0
                t0 = time.perf_counter()
                save_resume(stage, opt)
        if device.type == "cuda":
            torch.cuda.synchronize()
        stage_times[stage] = stage_times.get(stage, 0.0) + time.perf_counter() - t0
        log_eval(stage, total)
        if stage != cfg.stages[-1]:
            save_resume(stage, opt)  # a crash in the next stage restarts there

    final = {"top1": history["eval_top1"][-1] if history["eval_top1"] else None,
             "map": history["eval_map"][-1] if history["eval_map"] else None}
    if not history["eval_top1"]:
        final = log_eval("none", 0)
    provenance = {
        "format": FORMAT,
        "data": data.describe(),
        "packed": data.packed,
        "split": data.split,
        "categories": n_classes,
        "edge_extractor": data.edge_settings,
        "stages": list(cfg.stages),
        "steps": {s: cfg.steps_of(s) for s in cfg.stages},
        "batch": {"classify": cfg.batch_size, "triplet": cfg.triplet_batch},
        "lr": {"classify": cfg.lr, "triplet": cfg.triplet_lr},
        "config": cfg.to_dict(),
        "config_key": cfg.key(),
        "seed": cfg.seed,
        "profile": cfg.profile,
        "init": cfg.init or "scratch",
        "init_report": init_report,
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "stage_time_s": {k: round(v, 2) for k, v in stage_times.items()},
        "wall_time_s": round(time.perf_counter() - t_start, 2),
        "heldout_top1": final["top1"],
        "heldout_map": final["map"],
        "heldout_by_stage": {st: {"top1": t1, "map": mp} for st, step, t1, mp in zip(
            history["eval_stage"], history["eval_step"], history["eval_top1"], history["eval_map"])
            if st in cfg.stages and step == cfg.steps_of(st)},
        "heldout": f"{len(data.test_sketches)} test sketches (classification top-1, centre crop; mAP vs all "
                   f"{len(data.edges)} photo edge maps by normalised fc7)",
        "classifier": f"cosine classifier on L2-normalised fc7, scale {cfg.cos_scale}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if out is not None:
        torch_save_atomic(out, {
            "model": {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()},
            "classifier": classifier.detach().float().cpu(), "categories": list(data.categories),
            "history": history, "provenance": provenance})
        if resume_path is not None and resume_path.exists():
            resume_path.unlink()
    return PretrainResult(model=model, classifier=classifier.detach(), provenance=provenance, history=history,
                          out=out)


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sbir_lib.training.pretrain",
                                description="Offline Sketch-a-Net pretraining on Sketchy-mini sketches + "
                                            "photo edge maps.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{run,pack}")
    r = sub.add_parser("run", help="pretrain and save a checkpoint that --init / init= accept")
    r.add_argument("--profile", default=None,
                   help=f"one of {', '.join(_config.PROFILES)} (default $SBIR_PROFILE or quick)")
    r.add_argument("--stages", default=None, help=f"comma list of {', '.join(STAGES)} (default: both)")
    r.add_argument("--steps", type=int, default=None, help="classification steps (profile default)")
    r.add_argument("--triplet-steps", type=int, default=None, help="triplet steps (profile default)")
    r.add_argument("--batch-size", type=int, default=None, help="images per classification step")
    r.add_argument("--triplet-batch", type=int, default=None, help="triplets per triplet step")
    r.add_argument("--lr", type=float, default=None, help="classification learning rate")
    r.add_argument("--categories", type=int, default=None, help="use the first k categories (default: profile)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda when available)")
    r.add_argument("--packed", default=None, help="train from a file written by the pack command")
    r.add_argument("--root", default=None, help="data root (default $SBIR_DATA_ROOT or <repo>/data)")
    r.add_argument("--init", default=None, help="start from these weights (.pt checkpoint or the authors' .npy)")
    r.add_argument("--init-input-scale", type=float, default=None,
                   help="see load_sketchanet_init (default: 255 for the authors' .npy, 1 for torch checkpoints)")
    r.add_argument("--out", default=None,
                   help="checkpoint path (default checkpoints/sketchanet_sketchy_mini[.quick].pt)")
    r.add_argument("--no-resume", action="store_true", help="ignore an existing <out>.resume")
    r.add_argument("--no-progress", action="store_true")
    k = sub.add_parser("pack", help="write sketches + precomputed edge maps to one compressed .npz")
    k.add_argument("--out", required=True, help="the .npz to write")
    k.add_argument("--root", default=None, help="data root (default $SBIR_DATA_ROOT or <repo>/data)")
    k.add_argument("--categories", type=int, default=None, help="only the first k categories (default all)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "pack":
            t0 = time.perf_counter()
            data = prepare_data(root=args.root, categories=args.categories, progress=True)
            path = pack(args.out, data)
            print(f"packed {data.describe()} into {path} ({path.stat().st_size / 1e6:.1f} MB) "
                  f"in {time.perf_counter() - t0:.0f} s")
            return 0
        profile = args.profile or _config.default_profile()
        cfg = profile_config(profile, stages=args.stages, classify_steps=args.steps, triplet_steps=args.triplet_steps,
                             batch_size=args.batch_size, triplet_batch=args.triplet_batch, lr=args.lr,
                             categories=args.categories, seed=args.seed, init=args.init,
                             init_input_scale=args.init_input_scale)
        out = Path(args.out) if args.out else default_out(profile)
        if args.packed:
            data = load_packed(args.packed)
        else:
            data = prepare_data(root=args.root, categories=cfg.categories, progress=not args.no_progress)
        device = _config.default_device(args.device)
        print(f"pretraining on {data.describe()}; stages {','.join(cfg.stages)}; device {device}", file=sys.stderr)
        res = pretrain(cfg, data, device=device, out=out, progress=not args.no_progress, resume=not args.no_resume)
    except (D.DatasetMissingError, D.DatasetCorruptError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    pv = res.provenance
    top1 = "-" if pv["heldout_top1"] is None else f"{100 * pv['heldout_top1']:.1f}%"
    mAP = "-" if pv["heldout_map"] is None else f"{100 * pv['heldout_map']:.1f}%"
    print(f"saved {res.out}: held-out top-1 {top1}, mAP {mAP} ({pv['categories']} categories; {pv['heldout']}); "
          f"wall time {pv['wall_time_s']:.0f} s on {pv['device']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
