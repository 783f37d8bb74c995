"""Offline Sketch-a-Net pretraining on Sketchy-mini sketches and photo edge maps.

Taught in: ``notebooks/01_triplet_loss.ipynb`` ("Where the initial weights come from"). Used by the ``pretrain``
experiment (:mod:`sbir_lib.experiments.runner`; rows ``base@sketchy_mini``, ``full@sketchy_mini``).

Triplet SN and DSSA (Song et al., ICCV 2017) start from a Sketch-a-Net trained to classify edge maps of ImageNet
photos and TU-Berlin sketches, then triplet-trained on many categories. Those weights and data are not available
offline; this module follows the same recipe on Sketchy-mini:

- data (:func:`prepare_data`): the training sketches of :func:`sbir_lib.data.datasets.load_sketchy_mini`'s
  split and the edge maps (:mod:`sbir_lib.data.edges`) of all its photos, one label per category; the test
  sketches are held out. No QMUL image is read.
- stage ``classify``: Sketch-a-Net (:class:`sbir_lib.models.dssa.SketchANet`) with a cosine classifier on the
  L2-normalised fc7, ``logits = s * <fc7/|fc7|, w_c/|w_c|>`` (``s`` = ``cos_scale``; the space DSSA's triplet
  loss later uses), cross-entropy with label smoothing; batches of half sketches, half edge maps, augmented
  on the device (:mod:`sbir_lib.data.augment`: 225 crop + flip, then a random rotation / scale / shift);
  AdamW, linear warm-up then cosine decay, bf16 on CUDA.
- stage ``triplet`` (optional): category-level triplets (:class:`sbir_lib.data.samplers.CategoryTriplets`)
  and the triplet hinge (:func:`sbir_lib.losses.losses.triplet_hinge`, Eq. 1) on squared Euclidean distances
  of the L2-normalised fc7 -- the ``base`` variant's loss.

Held-out numbers in the provenance: ``top1`` (test sketches classified, centre crop) and ``map`` (test sketches
retrieving the edge maps of all photos by normalised fc7; those photos were trained on: a diagnostic).
Profiles (:data:`PROFILES`): ``quick`` (2 CPU cores, the first 10 categories), ``full`` (a GPU, all 125).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sbir_lib.core import config as _config
from sbir_lib.core.io import sha256_file, torch_save_atomic
from sbir_lib.core.records import git_commit, init_checkpoint
from sbir_lib.data import augment as A
from sbir_lib.data import datasets as D
from sbir_lib.data import edges as E
from sbir_lib.data.pack import read_pack, write_pack
from sbir_lib.data.samplers import CategoryTriplets
from sbir_lib.data.synthetic import make_synthetic_categories
from sbir_lib.losses import losses as L
from sbir_lib.metrics import retrieval as M
from sbir_lib.models.sketchanet import SketchANet
from sbir_lib.models.sketchanet_init import load_sketchanet_init
from sbir_lib.training import engine
from sbir_lib.training.engine import LossLog, autocast, config_key, seed_everything, train_step

__all__ = ["STAGES", "PROFILES", "PretrainConfig", "PretrainData", "PretrainResult", "profile_config",
           "prepare_data", "synthetic_data", "pack", "load_packed", "pretrain", "evaluate", "default_out", "main"]

STAGES = ("classify", "triplet")
FORMAT = "sbir_lib.training.pretrain/1"
INIT_NAME = "sketchy_mini"  # the ``@sketchy_mini`` rows of the ``pretrain`` experiment

PROFILES: dict[str, dict[str, Any]] = {
    # 2 CPU cores.
    "quick": dict(categories=10, classify_steps=100, triplet_steps=20, batch_size=16, triplet_batch=8,
                  lr=1e-3, triplet_lr=1e-4, warmup=10, eval_every=0, log_every=10, checkpoint_every=50),
    # A GPU: 20k x 128 + 4k x 3 x 128 = 4.1 M images.
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
        if self.profile not in _config.PROFILE_NAMES:
            problems.append(f"profile must be one of {', '.join(_config.PROFILE_NAMES)}, got {self.profile!r}")
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
    if isinstance(overrides.get("stages"), str):
        overrides["stages"] = tuple(s.strip() for s in overrides["stages"].split(",") if s.strip())
    return engine.profile_config(PretrainConfig, PROFILES, profile, **{"profile": profile, **overrides})


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
    """A tiny stand-in built from :func:`sbir_lib.data.synthetic.make_synthetic_categories` (tests, no downloads)."""
    cd = make_synthetic_categories(n_classes=n_classes, per_class=per_class, n_test_per_class=n_test_per_class,
                                   photos_per_class=photos_per_class, size=size, seed=seed)
    return _from_category_dataset(cd, settings, progress=False)


def pack(path, data: PretrainData) -> Path:
    """Write ``data`` as a ``pretrain`` pack (:mod:`sbir_lib.data.pack`: one compressed ``.npz`` of uint8
    images, labels, split, names and edge extractor settings); return the path."""
    arrays = dict(sketches=data.sketches.numpy(), sketch_labels=data.sketch_labels.numpy().astype(np.int16),
                  test_sketches=data.test_sketches.numpy(), test_labels=data.test_labels.numpy().astype(np.int16),
                  edges=data.edges.numpy(), edge_labels=data.edge_labels.numpy().astype(np.int16))
    header = {"source": data.source, "split": data.split, "edge_settings": data.edge_settings,
              "categories": data.categories}
    return write_pack(path, "pretrain", arrays, header, compress=True)


def load_packed(path) -> PretrainData:
    """Read a ``pretrain`` pack written by :func:`pack` (``python -m sbir_lib.training.pretrain pack``)."""
    path = Path(path)
    arrays, meta = read_pack(path, "pretrain")
    t = lambda k, dt=None: torch.from_numpy(arrays[k].astype(dt) if dt else arrays[k])  # noqa: E731
    return PretrainData(
        categories=list(meta["categories"]), sketches=t("sketches"), sketch_labels=t("sketch_labels", np.int64),
        test_sketches=t("test_sketches"), test_labels=t("test_labels", np.int64), edges=t("edges"),
        edge_labels=t("edge_labels", np.int64), source=meta["source"], split=meta["split"],
        edge_settings=meta["edge_settings"], packed=f"{path.name} sha256={sha256_file(path)[:16]}")


# ----------------------------------------------------------------------------------------------------------
# Model input, head, evaluation
# ----------------------------------------------------------------------------------------------------------
def _inputs(batch_u8: torch.Tensor, cfg: PretrainConfig, gen: torch.Generator, train: bool = True) -> torch.Tensor:
    """uint8 ``[B, H, W]`` -> network input ``[B, 1, 225, 225]`` (crop/flip + affine when ``train``)."""
    x = A.augment(batch_u8, generator=gen) if train else A.center_crop(batch_u8)
    ink = 1.0 - x.float() / 255.0
    if train:
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
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    triplets = CategoryTriplets(data.sketch_labels, data.edge_labels, n_classes, device=device, generator=gen) \
        if "triplet" in cfg.stages else None
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
                a, p, n = triplets.sample(cfg.triplet_batch)
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
        "format": FORMAT, "data": data.describe(), "packed": data.packed, "split": data.split,
        "categories": n_classes, "edge_extractor": data.edge_settings, "stages": list(cfg.stages),
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
                   help=f"one of {', '.join(_config.PROFILE_NAMES)} (default $SBIR_PROFILE or quick)")
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
