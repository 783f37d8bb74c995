"""One trainer for every DSSA variant (Triplet SN, attention, CFF, HOLEF and the loss ablations).

Taught in ``notebooks/01_triplet_loss.ipynb`` (the training loop) and used by every table of
``05_reproducing_the_tables``. The objective is the triplet hinge of the paper's Eq. (5):

    L(s, p+, p-) = max(0, margin + D(F(s), F(p+)) - D(F(s), F(p-))) + R(D)

where D is the energy of :mod:`sbir_lib.losses.losses` (squared Euclidean, weighted Euclidean, Mahalanobis
or HOLEF with its regulariser R = lambda (||W - I||_1 + ||W - I||_F)).

Speed: the uint8 images stay on the device for the whole run, triplets are sampled as index
tensors (:class:`sbir_lib.data.samplers.TripletSampler`), crops and flips happen batched on the device
(:func:`sbir_lib.data.augment.augment`) and the three branches run as one forward pass through the shared
weights, under bf16 autocast on CUDA. Nothing per-sample runs in Python inside the loop.

Defaults follow the authors' recipe (SGD momentum 0.9, lr 1e-3, 128 triplets, 20,000 iterations;
Deep_SBIR_tf ``triplet_sbir_train.py`` lines 146, 182-187; DeepSBIR Caffe ``solver.prototxt``), with
weight decay 5e-4 on conv/fc/attention weights only, as Caffe's ``decay_mult`` does (never on biases,
on HOLEF's ``W`` or the other learned energies: :meth:`sbir_lib.models.dssa.DSSANet.param_groups`; the
TF code declares the same regulariser but never adds it to its loss), and biases at the learning
rate of the weights, as the TF code trains every variable (``bias_lr_mult=1``; the Caffe Triplet SN
gives its fc biases twice the rate, ``bias_lr_mult=2``). Every difference from the authors' code is a
named option here and a row of REPRODUCTION.md's "ours vs the authors" table;
the ``quick`` profile trains a DSSA head on a stored trunk instead, 10-30 s a run on 2 CPU cores. Model selection
never looks at the test set: the final model is evaluated. The acc@1-vs-iterations curve that
justifies the iteration count is measured on a validation split carved from the training data
(``val_size``), never on the test set.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sbir_lib.core import config as _config
from sbir_lib.core.profiles import Profile, as_profile
from sbir_lib.core.progress import progress_bar
from sbir_lib.training import engine
from sbir_lib.training import trunk_store
from sbir_lib.training.cached import ViewCache, build_cache, cached_batch, trunk_stage
from sbir_lib.training.engine import LossLog, autocast, config_key, seed_everything, train_step
from sbir_lib.data import augment as A
from sbir_lib.data.datasets import QMULSplit
from sbir_lib.data.samplers import TripletSampler
from sbir_lib.losses import losses as L
from sbir_lib.metrics.retrieval import metrics_of
from sbir_lib.models import dssa as MD
from sbir_lib.core.io import torch_save_atomic
from sbir_lib.models.sketchanet_init import load_sketchanet_init

FREEZE_CHOICES = ("auto", "none", "conv4", "conv5")
INIT_LAYERS = ("all", "conv")
AUGMENT_CHOICES = ("crop+flip", "crop", "none")
WEIGHT_DECAY_ON = ("weights", "all")
OPTIMIZER_CHOICES = ("sgd", "adam")
POSITIVE_CHOICES = ("annotated", "true_match")


@dataclass
class TrainConfig:
    """Everything that defines a training run; ``profile_config`` fills it per profile."""

    variant: str = "full"
    iterations: int = 20_000
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    #: "weights": conv/fc/attention weights only (the authors' policy); "all": every parameter including
    #: biases and the energy (this course's recipe before issue 11, kept to compare)
    weight_decay_on: str = "weights"
    #: learning-rate factor of the network's biases (``lr * bias_lr_mult``; never any weight decay under
    #: ``weight_decay_on="weights"``). 1.0: the DSSA authors' TF code, one learning rate for every variable
    #: (Deep_SBIR_tf ``triplet_sbir_train.py`` lines 182, 187-188); 2.0: the Caffe Triplet SN's ``lr_mult: 2``
    #: on the fc6/fc7 biases (seuliufeng/DeepSBIR ``experiments/train.prototxt`` lines 238-242, 271-275)
    bias_lr_mult: float = 1.0
    #: non-paper options applied to the variant (recorded in ``variant_config``): dropout on fc6 and a
    #: non-affine BatchNorm before the L2 normalisation
    dropout: float = 0.0
    embedding_bn: bool = False
    margin: float = 0.3
    holef_lambda: float = L.DEFAULT_REG_LAMBDA
    positives: str = "annotated"
    hard_prob: float = 0.75
    #: training views: "crop+flip" (the authors': random 225 crop + flip, image_proc.py:106-122), "crop"
    #: (no flip) or "none" (the centre crop: used by the overfitting check, never by a paper row)
    augment: str = "crop+flip"
    init: str | None = None
    #: which layers a Sketch-a-Net init loads: "all" (conv1-fc7, the authors') or "conv" (conv1-conv5; fc6/fc7
    #: keep their fresh initialisation: a category-level pretraining can collapse fc7 within one category)
    init_layers: str = "all"
    freeze: str = "auto"
    #: 0: the engine recomputes the frozen trunk at every step; K > 0: it is computed once for K views per
    #: training image (sbir_lib.training.cached) and the rest trains on those maps (runs with a frozen trunk)
    cache_views: int = 0
    #: "sketchanet" (the paper's), "efficientnet_lite0" (the ImageNet track; ``init="imagenet"`` implies it) or
    #: "efficientnet_lite0_b15" (the cpu profile's trunk, ending at the last MBConv block)
    backbone: str = "sketchanet"
    #: with ``cache_views``: the frozen trunk's maps of the training views (drawn once, shared by every row and
    #: seed) and of the test views are read from / written to the on-disk store (sbir_lib.training.trunk_store)
    trunk_store: bool = False
    test_views: int = 10
    val_size: int = 0
    eval_every: int = 0
    log_every: int = 50
    checkpoint_every: int = 1000
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    seed: int = 0

    def validate(self) -> "TrainConfig":
        MD.get_variant(self.variant)  # raises with the allowed names
        problems = []
        if self.init_layers not in INIT_LAYERS:
            problems.append(f"init_layers must be one of {INIT_LAYERS}, got {self.init_layers!r}")
        if self.init_layers != "all" and (not self.init or self.init == "imagenet"):
            problems.append("init_layers applies to a Sketch-a-Net init (init=<checkpoint>) only")
        if self.freeze not in FREEZE_CHOICES:
            problems.append(f"freeze must be one of {FREEZE_CHOICES}, got {self.freeze!r}")
        if self.optimizer not in OPTIMIZER_CHOICES:
            problems.append(f"optimizer must be one of {OPTIMIZER_CHOICES}, got {self.optimizer!r}")
        if self.augment not in AUGMENT_CHOICES:
            problems.append(f"augment must be one of {AUGMENT_CHOICES}, got {self.augment!r}")
        if self.weight_decay_on not in WEIGHT_DECAY_ON:
            problems.append(f"weight_decay_on must be one of {WEIGHT_DECAY_ON}, got {self.weight_decay_on!r}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.positives not in POSITIVE_CHOICES:
            problems.append(f"positives must be one of {POSITIVE_CHOICES}, got {self.positives!r}")
        if self.test_views not in (1, 2, 10):
            problems.append(f"test_views must be 1 (centre), 2 (centre + flip) or 10, got {self.test_views}")
        if self.backbone not in MD.BACKBONES:
            problems.append(f"backbone must be one of {MD.BACKBONES}, got {self.backbone!r}")
        if self.cache_views < 0:
            problems.append(f"cache_views must be >= 0 (0: no cache), got {self.cache_views}")
        if self.cache_views and self.augment == "none":
            problems.append("cache_views caches random views: it needs augment 'crop+flip' or 'crop'")
        for name in ("iterations", "batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (0.0 <= self.hard_prob <= 1.0):
            problems.append(f"hard_prob must be in [0, 1], got {self.hard_prob}")
        if self.lr <= 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if not self.bias_lr_mult >= 0:
            problems.append(f"bias_lr_mult must be >= 0, got {self.bias_lr_mult}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """A short hash of the settings that change results (not logging cadence; ``init_layers`` and
        ``bias_lr_mult`` only when they are not the default, so that the keys of runs recorded before they
        existed, which trained with the default, still match)."""
        default_only = (("init_layers",) if self.init_layers == "all" else ()) + (
            ("bias_lr_mult",) if self.bias_lr_mult == 1.0 else ()) + (("trunk_store",) if not self.trunk_store else ())
        return config_key(self, ignore=("log_every", "checkpoint_every", "eval_every", "compile") + default_only)


def profile_config(profile: "str | Profile", *, experiment: str | None = None, **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of a profile (``profile.triplet`` and its test protocol), then the options of
    ``experiment`` in ``profile.experiments`` (e.g. the quick profile's Sketch-a-Net ``pretrain`` rows), then
    ``overrides``."""
    p = as_profile(profile)
    settings = {**p.triplet, "test_views": p.test_views, **p.experiments.get(experiment or "", {})}
    return engine.profile_config(TrainConfig, settings, **overrides)


def variant_of(cfg: TrainConfig) -> MD.VariantConfig:
    """The model configuration a run trains: ``cfg.variant`` with the run's model options applied."""
    backbone = "efficientnet_lite0" if (cfg.init == "imagenet" and cfg.backbone == "sketchanet") else cfg.backbone
    return MD.get_variant(cfg.variant, dropout=cfg.dropout, embedding_bn=cfg.embedding_bn, backbone=backbone)


def frozen_stage(cfg: TrainConfig) -> str | None:
    """The last frozen layer of a run (``None``: everything trains)."""
    v = variant_of(cfg)
    return trunk_stage(cfg.freeze, v.attention, bool(cfg.init), v.backbone)


def build_network(cfg: TrainConfig, device=None, *, init: bool = True) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The network of ``cfg.variant`` and its energy (distance) module: the one builder of every DSSA row,
    for a run (``init=True``: the init loaded, the authors' frozen layers frozen; the authors' TF ``.npy``
    weights get their 0..255 input scale automatically) and for reloading kept weights (``init=False``: the
    bare network, on the CPU unless ``device``). Taught in ``notebooks/01_triplet_loss.ipynb``."""
    variant = variant_of(cfg)
    model = MD.DSSANet(variant)
    energy = L.make_energy(variant.energy, model.embed_dim, reg_lambda=cfg.holef_lambda)
    device = torch.device(device or "cpu")
    if not init:
        return model.to(device), energy.to(device)
    if cfg.init:
        if variant.backbone == "sketchanet":
            fresh = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("backbone.fc6", "backbone.fc7"))}
            load_sketchanet_init(model, cfg.init)
            if cfg.init_layers == "conv":  # keep the fresh fc6/fc7
                model.load_state_dict(fresh, strict=False)
        else:
            model.backbone.load_imagenet(cfg.init)
    # The authors freeze conv1-conv4 (DSSA) / conv1-conv5 (base) when fine-tuning a pretrained Sketch-a-Net;
    # from scratch everything must learn.
    stage = frozen_stage(cfg)
    if stage is not None:
        model.freeze(stage)
    model.to(device)
    energy.to(device)
    if cfg.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    return model, energy


def optimizer_groups(cfg: TrainConfig, model: MD.DSSANet, energy: torch.nn.Module) -> list[dict]:
    """Parameter groups with the run's weight-decay policy (``cfg.weight_decay_on``): the authors'
    (conv/fc/attention weights decay, biases and the energy's parameters do not) or ``"all"``.

    With ``cfg.bias_lr_mult != 1`` the network's biases (parameters named ``*.bias``) get a group of their own,
    ``"bias"``, with ``lr = cfg.lr * cfg.bias_lr_mult`` (Caffe's ``lr_mult`` on biases) and the decay of their
    policy (0 under ``"weights"``, as Caffe's ``decay_mult: 0``). With the default 1.0 the groups are exactly
    the ones runs recorded before the option had (so their checkpoints resume)."""
    energy_params = [p for p in energy.parameters() if p.requires_grad]
    biases = ({id(p) for n, p in model.named_parameters() if p.requires_grad and n.endswith(".bias")}
              if cfg.bias_lr_mult != 1.0 else set())
    if cfg.weight_decay_on == "all":
        params = [p for p in model.parameters() if p.requires_grad and id(p) not in biases] + energy_params
        groups = [{"name": "all", "params": params, "weight_decay": cfg.weight_decay}]
        bias_decay = cfg.weight_decay
    else:
        groups = [dict(g, params=[p for p in g["params"] if id(p) not in biases])
                  for g in model.param_groups(cfg.weight_decay)]
        groups = [g for g in groups if g["params"]]
        if energy_params:
            groups.append({"name": "energy", "params": energy_params, "weight_decay": 0.0})
        bias_decay = 0.0
    if biases:
        groups.append({"name": "bias", "params": [p for p in model.parameters() if id(p) in biases],
                       "weight_decay": bias_decay, "lr": cfg.lr * cfg.bias_lr_mult})
    return groups


def make_optimizer(cfg: TrainConfig, params):
    """SGD with momentum (the authors' recipe) or Adam, over parameters or :func:`optimizer_groups`."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)




def _prep(x_uint8: torch.Tensor, channels_last: bool, model=None) -> torch.Tensor:
    """uint8 crops -> ``model``'s input (Sketch-a-Net's ``x/255 - mean`` when no model is given)."""
    x = model.prepare(x_uint8) if model is not None else A.to_input(x_uint8)
    if channels_last and x.is_cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@torch.no_grad()
def embed_views(model, images: torch.Tensor, views: int, device, amp=True, batch: int = 256,
                channels_last=True) -> torch.Tensor:
    """Embeddings [V, N, D] of uint8 images [N, H, W] under 1 (centre), 2 or 10 test views."""
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].to(device, non_blocking=True)
        if views == 10:
            v = A.ten_views(x)  # [10, B, 1, c, c]
        else:
            c = A.center_crop(x)
            v = c[None] if views == 1 else torch.stack([c, c.flip(-1)])
        nv, b = v.shape[:2]
        with autocast(device, amp):
            e = model.embed(_prep(v.reshape(nv * b, *v.shape[2:]), channels_last, model))
        out.append(e.float().reshape(nv, b, -1))
    return torch.cat(out, dim=1)


@torch.no_grad()
def stored_embed_views(model, images: torch.Tensor, views: int, device, amp=True) -> torch.Tensor:
    """:func:`embed_views` with the frozen trunk's maps of the test views read from the store
    (:mod:`sbir_lib.training.trunk_store`; 1 = centre, 10 = the authors' ten views), the rest of the network
    on them: ``[V, N, D]``."""
    model.eval()
    v = "ten_views" if views == 10 else trunk_store.centre_views(len(images), (False, True)[:views], images.shape[-1])
    maps, _ = trunk_store.trunk_maps(model.backbone, images, v, stage="conv4", amp=amp)
    return torch.stack([model.embed_from(maps[:, j].float().to(device), "conv4").float() for j in range(maps.shape[1])])


@torch.no_grad()
def stored_intermediates(model, x: torch.Tensor, amp: bool = True) -> dict:
    """``model.intermediates(x)`` as a run on stored trunk maps computes it (:func:`stored_embed_views`): the frozen
    trunk's map rounded to the store's precision (:func:`sbir_lib.training.trunk_store.map_dtype`), then the rest
    of the network, so that a new input (a drawn query, notebook 09) meets the recorded gallery as the test did."""
    h = model.backbone.features_upto(x, "conv4").to(trunk_store.map_dtype(amp)).float()
    return model.intermediates_from(model.backbone.features_after(h, "conv4"))


@torch.no_grad()
def distance_matrix(model, energy, sketches, edges, views: int, device, amp=True, stored: bool = False) -> torch.Tensor:
    """Test distances [Q, G]: the energy of every (sketch, edge map) pair, averaged over views.

    Retrieval with a learned energy (weighted Euclidean, Mahalanobis, HOLEF) ranks by that energy. ``stored``:
    the frozen trunk's maps come from the store (:func:`stored_embed_views`, the ``cpu`` profile).
    """
    embed = stored_embed_views if stored else embed_views
    es = embed(model, sketches, views, device, amp)
    ep = embed(model, edges, views, device, amp)
    energy.eval()
    dist = sum(energy.pairwise(es[v], ep[v]).float() for v in range(es.shape[0])) / es.shape[0]
    return dist.cpu()


def evaluate(model, energy, split, views: int, device, amp=True, stored: bool = False) -> dict:
    """acc@1/5/10 and the whole acc@K curve of ``split`` (a :class:`~sbir_lib.data.datasets.QMULSplit`)."""
    dist = distance_matrix(model, energy, split.sketches, split.edges, views, device, amp, stored)
    return metrics_of(dist) | {"dist": dist}




def _subset(split, idx: torch.Tensor):
    """A :class:`QMULSplit` restricted to instances ``idx`` (annotations re-indexed, pairs
    that leave the subset dropped)."""
    idx_list = idx.tolist()
    remap = {int(o): n for n, o in enumerate(idx_list)}
    trip = None
    if split.triplets is not None:
        trip = []
        for o in idx_list:
            pairs = [(remap[a], remap[b]) for a, b in split.triplets[o] if a in remap and b in remap]
            trip.append(pairs)
    return QMULSplit(
        sketches=split.sketches[idx], edges=split.edges[idx],
        photos=None if split.photos is None else split.photos[idx],
        triplets=trip, names=[split.names[i] for i in idx_list],
    )


def carve_validation(split, val_size: int, seed: int):
    # wherever a setting is chosen (trunk-cache views, fine-tuning recipes, the pretraining's held-out pairs),
    # val_size is the profile's ``validation_size`` and seed 0
    """Split training data into (train, val) by a seeded permutation of instances."""
    if val_size <= 0:
        return split, None
    if val_size >= len(split):
        raise ValueError(f"val_size {val_size} must be smaller than the training set ({len(split)})")
    g = torch.Generator().manual_seed(10_000 + seed)
    perm = torch.randperm(len(split), generator=g)
    return _subset(split, perm[val_size:].sort().values), _subset(split, perm[:val_size].sort().values)


@dataclass
class TrainResult:
    model: torch.nn.Module
    energy: torch.nn.Module
    config: TrainConfig
    history: dict = field(default_factory=dict)
    wall_time_s: float = 0.0
    train_time_s: float = 0.0
    iterations_done: int = 0
    resumed_from: int = 0
    #: time and count of the steps after the first (the first includes cuDNN autotuning and, with
    #: ``compile=True``, compilation): the rate a long run settles at
    steady_time_s: float = 0.0
    steady_iterations: int = 0
    #: the frozen-trunk cache of a ``cache_views > 0`` run (stage, views, build time, bytes), else None
    cache: dict | None = None


def _checkpoint_state(cfg: TrainConfig, it: int, model, energy, opt, sampler, gen, history) -> dict:
    return {"config_key": cfg.key(), "config": cfg.to_dict(), "iteration": it,
            "model": model.state_dict(), "energy": energy.state_dict(),
            "optimizer": opt.state_dict(), "sampler": sampler.state_dict(),
            "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "history": history}


def _resume(path: Path | None, cfg: TrainConfig, model, energy, opt, sampler, gen, history) -> tuple[dict, int]:
    """Load a checkpoint of the same config key into the run's state: ``(history, iteration)``; else unchanged."""
    if path is None or not path.exists():
        return history, 0
    # RNG states must stay CPU ByteTensors (also for CUDA generators); load_state_dict moves the rest.
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("config_key") != cfg.key():
        return history, 0
    model.load_state_dict(state["model"])
    energy.load_state_dict(state["energy"])
    opt.load_state_dict(state["optimizer"])
    sampler.load_state_dict(state["sampler"])
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return state["history"], int(state["iteration"])


def _embedder(cfg: TrainConfig, model, train_split, device):
    """``(embed, caches, cache_info)``: what a step embeds with. With ``cache_views`` and a frozen trunk, the trunk
    runs once per (image, view) (:mod:`sbir_lib.training.cached`) and ``embed`` is the head on its maps; else the
    whole network. torch.compile (on a GPU) fuses the elementwise work around the convolutions
    (``benchmarks/profile_step.py`` measures the gain); it shares the parameters of ``model``."""
    compiled = lambda f: torch.compile(f) if (cfg.compile and device.type == "cuda") else f  # noqa: E731
    stage = frozen_stage(cfg) if cfg.cache_views else None
    if stage is None:
        return compiled(model.embed), None, None
    t_c = time.perf_counter()
    flip = cfg.augment == "crop+flip"
    if cfg.trunk_store:  # shared views, read from disk when stored (built and stored otherwise)
        caches, files = [], []
        for j, imgs in enumerate((train_split.sketches, train_split.edges)):
            views = trunk_store.train_views(len(imgs), cfg.cache_views, imgs.shape[-2], imgs.shape[-1], seed=j, flip=flip)
            maps, info = trunk_store.trunk_maps(model.backbone, imgs, views, stage=stage, amp=cfg.amp)
            caches.append(ViewCache(stage=stage, maps=maps.to(device), views=views))
            files.append(info)
        info = {"stage": stage, "views": cfg.cache_views, "build_time_s": round(time.perf_counter() - t_c, 3),
                "bytes": sum(c.nbytes() for c in caches), "dtype": str(caches[0].maps.dtype), "store": files}
        return compiled(lambda h: model.embed_from(h.float(), stage)), tuple(caches), info
    cache_gen = torch.Generator(device=device).manual_seed(cfg.seed + 2)  # rebuilt identically on resume
    caches = tuple(build_cache(model, imgs, cfg.cache_views, stage, cache_gen, device, amp=cfg.amp, flip=flip,
                               channels_last=cfg.channels_last) for imgs in (train_split.sketches, train_split.edges))
    if device.type == "cuda":
        torch.cuda.synchronize()
    info = {"stage": stage, "views": cfg.cache_views, "build_time_s": round(time.perf_counter() - t_c, 3),
            "bytes": sum(c.nbytes() for c in caches), "dtype": str(caches[0].maps.dtype)}
    return compiled(lambda h: model.embed_from(h, stage)), caches, info


def train(cfg: TrainConfig, dataset, device=None, checkpoint: str | Path | None = None,
          progress: bool = True, test_split=None) -> TrainResult:
    """Train ``cfg.variant`` on ``dataset.train`` (a :class:`~sbir_lib.data.datasets.QMULDataset`).

    ``checkpoint``: a path; when it exists with the same config key the run resumes from it
    (model, energy, optimiser, sampler and RNG state), and it is rewritten atomically every
    ``checkpoint_every`` iterations. ``test_split`` is never used for training decisions.
    """
    cfg.validate()
    device = _config.default_device(device) if not isinstance(device, torch.device) else device
    seed_everything(cfg.seed)
    train_split, val_split = carve_validation(dataset.train, cfg.val_size, cfg.seed)
    model, energy = build_network(cfg, device)
    opt = make_optimizer(cfg, optimizer_groups(cfg, model, energy))
    sketches = train_split.sketches.to(device)
    edges = train_split.edges.to(device)
    sampler = TripletSampler(train_split, positives=cfg.positives, hard_prob=cfg.hard_prob,
                             seed=cfg.seed, device=device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    ckpt_path = Path(checkpoint) if checkpoint else None
    history, start_it = _resume(ckpt_path, cfg, model, energy, opt, sampler, gen,
                                {"iteration": [], "loss": [], "val_iteration": [], "val_acc@1": [], "val_acc@10": []})

    def save_ckpt(it: int):
        if ckpt_path is not None:
            torch_save_atomic(ckpt_path, _checkpoint_state(cfg, it, model, energy, opt, sampler, gen, history))

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels
    embed, caches, cache_info = _embedder(cfg, model, train_split, device)
    t0, t_steady = time.perf_counter(), None
    model.train()
    energy.train()
    bar = progress_bar(range(start_it, cfg.iterations), initial=start_it, total=cfg.iterations,
                       desc=f"{cfg.variant} seed{cfg.seed}", disable=not progress, leave=False)
    log = LossLog(history, cfg.log_every, cfg.iterations, bar)
    for it in bar:
        a, p, n = sampler.sample(cfg.batch_size)
        if caches is not None:
            x = cached_batch(*caches, a, p, n, gen)  # [3B, C, H, W] trunk maps, one cached view per image
        else:
            imgs = torch.cat([sketches[a], edges[p], edges[n]])  # [3B, 256, 256] uint8
            x = _prep(A.augment(imgs, flip=cfg.augment == "crop+flip", generator=gen) if cfg.augment != "none"
                      else A.center_crop(imgs), cfg.channels_last, model)
        with autocast(device, cfg.amp):
            emb = embed(x).float()
        s, ep, en = emb.chunk(3)
        loss = L.triplet_hinge(energy.paired(s, ep), energy.paired(s, en), cfg.margin) + energy.regularizer()  # Eq. 1
        done = it + 1
        log.add(train_step(opt, loss), done)
        if t_steady is None:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t_steady = time.perf_counter()
        if val_split is not None and cfg.eval_every and (done % cfg.eval_every == 0 or done == cfg.iterations):
            r = evaluate(model, energy, val_split, 1, device, cfg.amp, cfg.trunk_store)
            for k, v in (("val_iteration", done), ("val_acc@1", r["acc@1"]), ("val_acc@10", r["acc@10"])):
                history.setdefault(k, []).append(v)
            model.train()
            energy.train()
        if done % cfg.checkpoint_every == 0 and done < cfg.iterations:
            save_ckpt(done)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t_end = time.perf_counter()
    train_time = t_end - t0
    save_ckpt(cfg.iterations)
    done_now = cfg.iterations - start_it
    return TrainResult(model=model, energy=energy, config=cfg, history=history,
                       wall_time_s=train_time + (cache_info["build_time_s"] if cache_info else 0.0),
                       train_time_s=train_time, iterations_done=done_now, resumed_from=start_it,
                       steady_time_s=(t_end - t_steady) if t_steady is not None else 0.0,
                       steady_iterations=max(done_now - 1, 0), cache=cache_info)
