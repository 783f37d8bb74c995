"""Offline Sketch-a-Net pretraining on Sketchy-mini sketches and photo edge maps (and QMUL training pairs).

Taught in: ``notebooks/01_triplet_loss.ipynb`` ("Where the initial weights come from") and
``notebooks/05_reproduce_tables.ipynb`` ("Where accuracy comes from"). Used by the ``pretrain`` experiment
(:mod:`sbir_lib.experiments.runner`; rows ``base@<init>``, ``full@<init>`` for each init of :data:`INITS`).

Triplet SN and DSSA (Song et al., ICCV 2017) start from a Sketch-a-Net trained to classify edge maps of ImageNet
photos and TU-Berlin sketches, then triplet-trained on many categories. Those weights and data are not available
offline; this module follows the same recipe on Sketchy-mini:

- data (:mod:`sbir_lib.training.pretrain_data`): the training sketches of
  :func:`sbir_lib.data.datasets.load_sketchy_mini`'s split and the edge maps (:mod:`sbir_lib.data.edges`) of
  all its photos, one label per category; the test sketches are held out. The init ``sketchy_mini`` (the
  stand-in for the authors' Sketch-a-Net) reads no QMUL image.
- init ``sketchy_qmul`` (:data:`INITS`: the offline init of issue [init] that adds instance pairs) adds the QMUL shoes, chairs
  and handbags *training* pairs minus each one's validation split (:class:`~sbir_lib.training.pretrain_data.PairPool`):
  a fraction ``pair_fraction`` of each classification batch is pairs, each pair its own class (sketch and
  edge map share the label: instance classification), and the same fraction of each triplet batch is
  instance triplets (a sketch, its photo's edge map, another edge map of the same dataset). Sketch
  augmentation (:mod:`sbir_lib.data.sketch_augment`: thicker / thinner strokes, parts erased, probability
  ``stroke_aug`` per image) and a longer schedule were tried too and kept only where they helped on the
  held-out pairs (:mod:`sbir_lib.experiments.init_recipe`).
- stage ``classify``: Sketch-a-Net (:class:`sbir_lib.models.dssa.SketchANet`) with a cosine classifier on the
  L2-normalised fc7, ``logits = s * <fc7/|fc7|, w_c/|w_c|>`` (``s`` = ``cos_scale``; the space DSSA's triplet
  loss later uses), cross-entropy with label smoothing; batches of half sketches, half edge maps, augmented
  on the device (:mod:`sbir_lib.data.augment`: 225 crop + flip, then a random rotation / scale / shift);
  AdamW, linear warm-up then cosine decay, bf16 on CUDA.
- stage ``triplet`` (optional): category-level triplets (:class:`sbir_lib.data.samplers.CategoryTriplets`)
  and the triplet hinge (:func:`sbir_lib.losses.losses.triplet_hinge`, Eq. 1) on squared Euclidean distances
  of the L2-normalised fc7 -- the ``base`` variant's loss.

Held-out numbers in the provenance: ``top1`` (test sketches classified, centre crop) and ``map`` (test sketches
retrieving the edge maps of all photos by normalised fc7; those photos were trained on: a diagnostic); with a
pair pool, ``qmul_val`` (acc@1 / acc@10 of each QMUL validation split, its sketches retrieving its edge maps by
normalised fc7, no fine-tuning).
Profiles (``pretrain`` of :mod:`sbir_lib.core.profiles`): ``quick`` (2 CPU cores, the first 10 categories), ``full`` (a GPU, all 125).

Checkpoint (``--out``; default ``checkpoints/sketchanet_sketchy_mini.pt``, quick profile
``checkpoints/sketchanet_sketchy_mini.quick.pt``, where the ``pretrain`` experiment looks)::

    {"model": SketchANet state_dict (float32), "classifier": [C, 256], "categories": [...],
     "history": {...}, "provenance": {data, split, stages, steps, batch, lr, seed, profile, device,
     torch, git commit, wall time, held-out top-1 / mAP, edge extractor settings, ...}}

It loads with ``torch.load(weights_only=True)`` and :func:`sbir_lib.models.sketchanet_init.load_sketchanet_init`
(which reads ``"model"``). A run saves ``<out>.resume`` every ``checkpoint_every`` steps and resumes from it
when started again with the same settings; it is deleted when the run completes.

Commands::

    python -m sbir_lib.training.pretrain run --profile quick
    python -m sbir_lib.training.pretrain pack --out sketchy_mini_pretrain.npz   # sketches + edge maps
    python -m sbir_lib.training.pretrain run --profile full --device cuda --packed sketchy_mini_pretrain.npz
    python -m sbir_lib.training.pretrain run --init /path/sketchnet_init.npy --stages triplet
    python -m sbir_lib.experiments run --experiment pretrain --dataset shoes --profile full
    python -m sbir_lib.experiments run --experiment table2 --dataset shoes --init checkpoints/sketchanet_sketchy_mini.pt

``pack`` writes everything training needs (uint8 sketches, precomputed edge maps, labels, split, category names,
extractor settings) as a ``pretrain`` pack (:mod:`sbir_lib.data.pack`) for a GPU machine without the image
folders; ``--packed`` trains from it. ``--init`` takes a checkpoint or the DSSA authors' ``sketchnet_init.npy``.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sbir_lib.core import config as _config
from sbir_lib.core.profiles import PROFILE_NAMES, Profile, as_profile
from sbir_lib.core.progress import progress_bar
from sbir_lib.core.io import torch_save_atomic
from sbir_lib.core.records import git_commit, init_checkpoint
from sbir_lib.data import augment as A
from sbir_lib.data import datasets as D
from sbir_lib.data import sketch_augment as SA
from sbir_lib.data.samplers import CategoryTriplets
from sbir_lib.losses import losses as L
from sbir_lib.metrics import retrieval as M
from sbir_lib.models.sketchanet import SketchANet
from sbir_lib.models.sketchanet_init import load_sketchanet_init
from sbir_lib.training import engine
from sbir_lib.training.engine import LossLog, autocast, config_key, seed_everything, train_step
from sbir_lib.training.pretrain_data import PairPool, PretrainData, load_packed, pack, prepare_data, synthetic_data

__all__ = ["STAGES", "INITS", "PretrainConfig", "PretrainData", "PairPool", "PretrainResult",
           "profile_config", "prepare_data", "synthetic_data", "pack", "load_packed", "pretrain", "evaluate",
           "evaluate_pairs", "default_out", "main"]

STAGES = ("classify", "triplet")
FORMAT = "sbir_lib.training.pretrain/1"
INIT_NAME = "sketchy_mini"  # the ``@sketchy_mini`` rows of the ``pretrain`` experiment
#: the offline inits this module makes: settings on top of the profile's (the ``@<name>`` rows of the
#: ``pretrain`` experiment). ``sketchy_qmul``'s were chosen on held-out data by
#: :mod:`sbir_lib.experiments.init_recipe` (record ``results/tuning/pretrain_sketchy_qmul.<profile>.json``;
#: ``tests/test_pretrain.py`` checks that they agree).
INITS: dict[str, dict[str, Any]] = {
    "sketchy_mini": {},
    "sketchy_qmul": dict(pairs=D.QMUL_NAMES, pair_fraction=0.5),
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
    #: QMUL datasets whose training pairs (minus validation) join (pretrain_data.qmul_pairs); () = none
    pairs: tuple[str, ...] = ()
    pair_fraction: float = 0.0  # of each classification batch (images) and triplet batch (triplets)
    stroke_aug: float = 0.0  # probability per training image of one sketch_augment op
    init_input_scale: float | None = None
    eval_every: int = 0
    log_every: int = 100
    checkpoint_every: int = 2_000
    amp: bool = True
    channels_last: bool = True
    seed: int = 0

    def validate(self) -> "PretrainConfig":
        problems = []
        if self.profile not in PROFILE_NAMES:
            problems.append(f"profile must be one of {', '.join(PROFILE_NAMES)}, got {self.profile!r}")
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
        bad_pairs = [d for d in self.pairs if d not in D.QMUL_NAMES]
        if bad_pairs:
            problems.append(f"pairs must be some of {', '.join(D.QMUL_NAMES)}; got {', '.join(bad_pairs)}")
        if not 0 <= self.pair_fraction < 1 or (self.pair_fraction > 0) != bool(self.pairs):
            problems.append(f"pair_fraction must be in (0, 1) with pairs and 0 without; got {self.pair_fraction} "
                            f"with pairs {list(self.pairs)}")
        if self.pair_fraction > 0 and (self.triplet_batch - round(self.triplet_batch * self.pair_fraction) < 1
                                       or self.batch_size - 2 * round(self.batch_size * self.pair_fraction / 2) < 2):
            problems.append(f"pair_fraction {self.pair_fraction} leaves no category-level images in a batch")
        if not 0 <= self.stroke_aug <= 1:
            problems.append(f"stroke_aug must be in [0, 1], got {self.stroke_aug}")
        if problems:
            raise ValueError("; ".join(problems))
        self.stages = stages
        self.pairs = tuple(self.pairs)
        return self

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["stages"] = list(self.stages)
        d["pairs"] = list(self.pairs)
        return d

    def key(self) -> str:
        """A short hash of the settings that change results (not logging/checkpoint cadence)."""
        return config_key(self, ignore=("log_every", "checkpoint_every", "eval_every"))

    def steps_of(self, stage: str) -> int:
        return self.classify_steps if stage == "classify" else self.triplet_steps


def profile_config(profile: "str | Profile", init_name: str = INIT_NAME, **overrides) -> PretrainConfig:
    """The :class:`PretrainConfig` of a profile (``profile.pretrain``) for the init ``init_name`` (:data:`INITS`) with
    overrides (``None`` values ignored); ``double_steps=True`` doubles both stages' steps."""
    prof = as_profile(profile)
    if init_name not in INITS:
        raise ValueError(f"unknown init {init_name!r}; allowed: {', '.join(INITS)}")
    for key in ("stages", "pairs"):
        if isinstance(overrides.get(key), str):
            overrides[key] = tuple(s.strip() for s in overrides[key].split(",") if s.strip())
    settings = {**INITS[init_name], **{k: v for k, v in overrides.items() if v is not None}}
    if settings.pop("double_steps", False):  # a schedule twice as long as the profile's (or the given one)
        for key in ("classify_steps", "triplet_steps"):
            settings[key] = 2 * settings.get(key, prof.pretrain[key])
    return engine.profile_config(PretrainConfig, prof.pretrain, **{"profile": prof.name, **settings})


def default_out(profile: str, init_name: str = INIT_NAME) -> Path:
    """``checkpoints/sketchanet_<init_name>[.quick].pt``: where the ``pretrain`` experiment looks."""

    return init_checkpoint(init_name, _config.check_profile(profile))


# ----------------------------------------------------------------------------------------------------------
# Model input, head, evaluation
# ----------------------------------------------------------------------------------------------------------
def _inputs(batch_u8: torch.Tensor, cfg: PretrainConfig, gen: torch.Generator, train: bool = True) -> torch.Tensor:
    """uint8 ``[B, H, W]`` -> network input ``[B, 1, 225, 225]`` (crop/flip + affine when ``train``)."""
    x = A.augment(batch_u8, generator=gen) if train else A.center_crop(batch_u8)
    ink = 1.0 - x.float() / 255.0
    if train:
        ink = SA.stroke_augment(A.as_bchw(ink), cfg.stroke_aug, generator=gen)
        ink = A.random_affine(ink, cfg.rotate_deg, cfg.scale, cfg.shift, generator=gen)
    x = (1.0 - ink) - A.PIXEL_MEAN  # == augment.to_input of the warped image
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
        pred = _cos_logits(q, classifier[:len(data.categories)], cfg.cos_scale).argmax(1)  # categories only
        top1 = float((pred == labels).float().mean())
    qn, gn = F.normalize(q, dim=1), F.normalize(g, dim=1)
    dist = L.pairwise_squared_euclidean(qn, gn)
    mAP = M.mean_average_precision(dist.cpu(), data.test_labels, data.edge_labels)
    return {"top1": top1, "map": float(mAP)}


def evaluate_pairs(model: SketchANet, pool: PairPool, cfg: PretrainConfig, device) -> dict[str, dict[str, float]]:
    """acc@1 / acc@10 per dataset of the pool's validation pairs: each validation sketch retrieves among its
    dataset's validation edge maps by normalised-fc7 squared distance (centre crops, no fine-tuning)."""
    out = {}
    for k, name in enumerate(pool.datasets):
        m = pool.val_group == k
        if not bool(m.any()):
            continue
        q = F.normalize(_embed(model, pool.val_sketches[m], cfg, device), dim=1)
        g = F.normalize(_embed(model, pool.val_edges[m], cfg, device), dim=1)
        acc = M.metrics_of(L.pairwise_squared_euclidean(q, g).cpu())
        out[name] = {"acc@1": round(float(acc["acc@1"]), 4), "acc@10": round(float(acc["acc@10"]), 4),
                     "queries": int(m.sum())}
    return out


def _other_in_group(i: torch.Tensor, group: torch.Tensor, starts: torch.Tensor, sizes: torch.Tensor,
                    gen: torch.Generator) -> torch.Tensor:
    """For each pair index ``i``, a uniformly drawn other pair of the same dataset (one ``[len(i)]`` uniform
    draw); a dataset of one pair gives the pair itself."""
    start, size = starts[group[i]], sizes[group[i]]
    u = torch.rand(len(i), generator=gen, device=gen.device).to(i.device)
    step = 1 + (u * (size - 1).clamp(min=0)).long().clamp(max=(size - 2).clamp(min=0))
    return start + (i - start + step) % size


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


def _data_key(data: PretrainData, pool: PairPool | None) -> str:
    """A short fingerprint of the data a resume file was written with."""
    parts = [data.categories, len(data.sketches), len(data.edges), int(data.sketches[:, ::16, ::16].sum()),
             int(data.edges[:, ::16, ::16].sum())] + ([len(pool), int(pool.sketches[:, ::16, ::16].sum())] if pool else [])
    return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:12]


class _Batches:
    """The data of one pretraining on the device and the loss of one step of each stage (same random draws, in
    the same order, from ``gen``): category classification with instance classes for the QMUL pairs, and
    category (+ instance) triplets."""

    def __init__(self, cfg: PretrainConfig, data: PretrainData, pool: PairPool | None, device, gen: torch.Generator):
        self.cfg, self.device, self.gen, self.pool = cfg, device, gen, pool
        self.n_classes = len(data.categories)
        self.n_pairs = len(pool) if pool is not None else 0
        self.sketches, self.s_lab = data.sketches.to(device), data.sketch_labels.to(device)
        self.edges, self.e_lab = data.edges.to(device), data.edge_labels.to(device)
        if pool is not None:
            self.p_sk, self.p_ed, self.p_grp = pool.sketches.to(device), pool.edges.to(device), pool.group.to(device)
            rng = torch.tensor(pool.ranges(), device=device)
            self.p_start, self.p_size = rng[:, 0], rng[:, 1] - rng[:, 0]
        self.triplets = CategoryTriplets(data.sketch_labels, data.edge_labels, self.n_classes, device=device,
                                         generator=gen) if "triplet" in cfg.stages else None

    def classify_loss(self, model: SketchANet, classifier: torch.Tensor) -> torch.Tensor:
        cfg, gen, dev = self.cfg, self.gen, self.device
        n_p = round(cfg.batch_size * cfg.pair_fraction / 2) if self.pool is not None else 0  # pairs: 2 images
        rest = cfg.batch_size - 2 * n_p
        h = rest // 2
        i_s = torch.randint(0, len(self.sketches), (h,), generator=gen, device=dev)
        i_e = torch.randint(0, len(self.edges), (rest - h,), generator=gen, device=dev)
        imgs, y = [self.sketches[i_s], self.edges[i_e]], [self.s_lab[i_s], self.e_lab[i_e]]
        if n_p:
            i_p = torch.randint(0, self.n_pairs, (n_p,), generator=gen, device=dev)
            imgs += [self.p_sk[i_p], self.p_ed[i_p]]
            y += [self.n_classes + i_p] * 2
        x = _inputs(torch.cat(imgs), cfg, gen)
        with autocast(dev, cfg.amp):
            fc7 = model(x)
        return F.cross_entropy(_cos_logits(fc7, classifier, cfg.cos_scale), torch.cat(y),
                               label_smoothing=cfg.label_smoothing)

    def triplet_loss(self, model: SketchANet) -> torch.Tensor:
        cfg, gen, dev = self.cfg, self.gen, self.device
        n_t = round(cfg.triplet_batch * cfg.pair_fraction) if self.pool is not None else 0
        a, p, n = self.triplets.sample(cfg.triplet_batch - n_t)
        anc, pos, neg = [self.sketches[a]], [self.edges[p]], [self.edges[n]]
        if n_t:  # instance triplets: a QMUL sketch, its photo's edge map, another of the same dataset
            i_p = torch.randint(0, self.n_pairs, (n_t,), generator=gen, device=dev)
            anc.append(self.p_sk[i_p])
            pos.append(self.p_ed[i_p])
            neg.append(self.p_ed[_other_in_group(i_p, self.p_grp, self.p_start, self.p_size, gen)])
        x = _inputs(torch.cat(anc + pos + neg), cfg, gen)
        with autocast(dev, cfg.amp):
            emb = model(x)
        s, ep, en = F.normalize(emb.float(), dim=1).chunk(3)
        return L.triplet_hinge(L.squared_euclidean(s, ep), L.squared_euclidean(s, en), cfg.margin)


def _provenance(cfg: PretrainConfig, data: PretrainData, model, device, history: dict, final: dict,
                stage_times: dict, init_report, t_start: float) -> dict:
    """What a pretraining checkpoint says about itself (data, recipe, device, held-out scores, timings)."""
    return {
        "format": FORMAT, "data": data.describe(), "packed": data.packed, "split": data.split,
        "categories": len(data.categories), "edge_extractor": data.edge_settings, "stages": list(cfg.stages),
        "steps": {s: cfg.steps_of(s) for s in cfg.stages},
        "batch": {"classify": cfg.batch_size, "triplet": cfg.triplet_batch},
        "lr": {"classify": cfg.lr, "triplet": cfg.triplet_lr},
        "config": cfg.to_dict(), "config_key": cfg.key(), "seed": cfg.seed, "profile": cfg.profile,
        "init": cfg.init or "scratch", "init_report": init_report,
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "torch": str(torch.__version__), "python": platform.python_version(), "git_commit": git_commit(),
        "stage_time_s": {k: round(v, 2) for k, v in stage_times.items()},
        "wall_time_s": round(time.perf_counter() - t_start, 2),
        "heldout_top1": final["top1"], "heldout_map": final["map"],
        "pairs": data.pairs.describe() if cfg.pair_fraction > 0 else None,
        "qmul_val": evaluate_pairs(model, data.pairs, cfg, device) if data.pairs is not None else None,
        "heldout_by_stage": {st: {"top1": t1, "map": mp} for st, step, t1, mp in zip(
            history["eval_stage"], history["eval_step"], history["eval_top1"], history["eval_map"])
            if st in cfg.stages and step == cfg.steps_of(st)},
        "heldout": f"{len(data.test_sketches)} test sketches (classification top-1, centre crop; mAP vs all "
                   f"{len(data.edges)} photo edge maps by normalised fc7)",
        "classifier": f"cosine classifier on L2-normalised fc7, scale {cfg.cos_scale}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _load_resume(path: Path | None, cfg: PretrainConfig, data_key: str, model, classifier, gen) -> dict | None:
    """The state of an interrupted pretraining with the same config and data, loaded into the run; else None."""
    if path is None or not path.exists():
        return None
    st = torch.load(path, map_location="cpu", weights_only=False)
    if st.get("config_key") != cfg.key() or st.get("data_key") != data_key:
        return None
    model.load_state_dict(st["model"])
    with torch.no_grad():
        classifier.copy_(st["classifier"])
    gen.set_state(st["generator"])
    torch.set_rng_state(st["torch_rng"])
    print(f"resuming from {path} ({', '.join(f'{k} {v}' for k, v in st['done'].items())})", file=sys.stderr)
    return st


def pretrain(cfg: PretrainConfig, data: PretrainData, device=None, out=None, progress: bool = True,
             resume: bool = True) -> PretrainResult:
    """Run ``cfg.stages`` on ``data``; save the checkpoint to ``out`` (when given) and return the result.

    Resumes from ``<out>.resume`` when it exists and was written with the same :meth:`PretrainConfig.key`
    and data (``resume=False`` ignores it)."""
    cfg.validate()
    device = _config.default_device(device) if not isinstance(device, torch.device) else device
    if cfg.categories is not None:
        data = data.subset(cfg.categories)
    t_start = time.perf_counter()
    seed_everything(cfg.seed)
    np.random.seed(cfg.seed)
    model = SketchANet(dropout=cfg.dropout)
    init_report = str(load_sketchanet_init(model, cfg.init, input_scale=cfg.init_input_scale)) if cfg.init else None
    if cfg.pair_fraction > 0 and data.pairs is None:
        raise ValueError(f"pair_fraction {cfg.pair_fraction} needs the QMUL pairs {list(cfg.pairs)} in the data: "
                         "python -m sbir_lib.training.pretrain run --init-name sketchy_qmul "
                         "(or pack with --pairs shoes,chairs,handbags)")
    pool = data.pairs if cfg.pair_fraction > 0 else None
    # one class per category, then (instance classification) one per QMUL training pair
    n_out = len(data.categories) + (len(pool) if pool is not None else 0)
    classifier = torch.nn.Parameter((torch.randn(n_out, model.fc7.out_features) * 0.01).to(device))
    model.to(device)
    if cfg.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    batches = _Batches(cfg, data, pool, device, gen)
    data_key = _data_key(data, pool)

    history: dict[str, list] = {"stage": [], "step": [], "loss": [], "eval_stage": [], "eval_step": [],
                                "eval_top1": [], "eval_map": []}
    stage_times: dict[str, float] = {}
    done = {s: 0 for s in cfg.stages}
    opt_state = None
    out = Path(out) if out is not None else None
    resume_path = Path(str(out) + ".resume") if out is not None else None
    st = _load_resume(resume_path, cfg, data_key, model, classifier, gen) if resume else None
    if st is not None:
        history, done, opt_state, stage_times = st["history"], st["done"], st["optimizer"], st.get("stage_times", {})

    def save_resume(stage: str, opt) -> None:
        if resume_path is not None:
            torch_save_atomic(resume_path, {
                "config_key": cfg.key(), "data_key": data_key, "model": model.state_dict(),
                "classifier": classifier.detach().cpu(), "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(), "history": history, "done": done,
                "optimizer": {"stage": stage, "state": opt.state_dict()}, "stage_times": stage_times})

    def log_eval(stage: str, step: int) -> dict:
        r = evaluate(model, classifier if "classify" in cfg.stages else None, data, cfg, device)
        for k, v in (("eval_stage", stage), ("eval_step", step), ("eval_top1", r["top1"]), ("eval_map", r["map"])):
            history[k].append(v)
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
        bar = progress_bar(range(done[stage], total), initial=done[stage], total=total, desc=f"pretrain {stage}",
                           disable=not progress, leave=False)
        log = LossLog(history, cfg.log_every, total, bar, step_key="step")
        for step in bar:
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, total, base_lr, cfg.warmup)
            loss = batches.classify_loss(model, classifier) if stage == "classify" else batches.triplet_loss(model)
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
    provenance = _provenance(cfg, data, model, device, history, final, stage_times, init_report, t_start)
    if out is not None:
        torch_save_atomic(out, {
            "model": {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()},
            "classifier": classifier.detach().float().cpu(), "categories": list(data.categories),
            "history": history, "provenance": provenance})
        resume_path.unlink(missing_ok=True)
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
                   help=f"one of {', '.join(PROFILE_NAMES)} (default $SBIR_PROFILE or quick)")
    r.add_argument("--init-name", default=INIT_NAME, choices=list(INITS),
                   help="which offline init to make (its settings and default checkpoint path; default "
                        f"{INIT_NAME}: the stand-in for the authors' Sketch-a-Net)")
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
    k.add_argument("--pairs", default="", help="also pack these QMUL datasets' training pairs (minus validation), "
                                               "e.g. shoes,chairs,handbags (what --init-name sketchy_qmul trains on)")
    k.add_argument("--profile", default="full", help="whose validation split the pairs leave out (default full)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "pack":
            t0 = time.perf_counter()
            pairs = tuple(d.strip() for d in args.pairs.split(",") if d.strip())
            data = prepare_data(root=args.root, categories=args.categories, progress=True, pairs=pairs,
                                profile=_config.check_profile(args.profile))
            path = pack(args.out, data)
            print(f"packed {data.describe()} into {path} ({path.stat().st_size / 1e6:.1f} MB) "
                  f"in {time.perf_counter() - t0:.0f} s")
            return 0
        profile = args.profile or _config.default_profile()
        cfg = profile_config(profile, args.init_name, stages=args.stages, classify_steps=args.steps, triplet_steps=args.triplet_steps,
                             batch_size=args.batch_size, triplet_batch=args.triplet_batch, lr=args.lr,
                             categories=args.categories, seed=args.seed, init=args.init,
                             init_input_scale=args.init_input_scale)
        out = Path(args.out) if args.out else default_out(profile, args.init_name)
        if args.packed:
            data = load_packed(args.packed)
        else:
            data = prepare_data(root=args.root, categories=cfg.categories, progress=not args.no_progress,
                                pairs=cfg.pairs, profile=profile)
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
