"""The class-pair training recipe of DASE/MEMS (Lu et al., arXiv 1812.04275), taught in notebooks 07/08.

Sketches and photos of a class share one label. One backbone embeds both (the DASE blocks of
:mod:`sbir_lib.models.dase` tell it the domain), and a classification loss of :mod:`sbir_lib.losses.losses`
(softmax, CosFace, MEMS) pulls every embedding of class ``y`` to class ``y``'s prototype; the ``triplet``
loss uses the same batches (anchor a sketch, positive the photo of its class, negative another photo of
the batch). Retrieval ranks the gallery by squared Euclidean distance of the embeddings, L2-normalised
first except for MEMS, whose geometry is Euclidean (:func:`normalizes`).

A run can collapse (every embedding the same, all test distances equal): :func:`tied_fraction` measures
it, and metrics count ties against the query, so a collapsed run scores as badly as it is.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from sbir_lib.core import config as _config
from sbir_lib.core.progress import progress_bar
from sbir_lib.metrics.retrieval import metrics_of
from sbir_lib.training.engine import LossLog, autocast, config_key, seed_everything, train_step
from sbir_lib.models import dase as DA
from sbir_lib.data import augment as A
from sbir_lib.losses import losses as L
from sbir_lib.metrics import retrieval as M
from sbir_lib.data.paired import PairedData
from sbir_lib.data.samplers import ClassPairSampler

LOSSES = ("softmax", "cosface", "triplet", "mems")

TEST_DISTANCES = ("mean", "flipmin")

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
    mems_center_std: float | None = None  # None: 1/sqrt(embed_dim), norm ~1 (authors: exactly 1, losses.py:12)
    center_lr_mult: float = 1.0  # learning-rate factor of the MEMS centres (authors: 1, trainer.py:39-48)
    #: where the MEMS centres start: ``random`` (the authors' random centres, losses.py:12) or ``photos`` (each
    #: class's mean training-photo embedding under the initial network, "imprinting": a short instance-level run
    #: sees each of its hundreds of classes a few times only, too few for random centres to move)
    mems_center_init: str = "random"
    cosface_margin: float = L.DEFAULT_COSFACE_MARGIN
    cosface_scale: float = L.DEFAULT_COSFACE_SCALE
    cosface_anneal: float = 0.5  # fraction of the run over which the margin rises from 0 (authors' losses.py)
    triplet_margin: float = 0.3
    hidden_act: str = "sigmoid"
    #: dropout on Sketch-a-Net's fc6 only (passed to build_backbone, whose own default is 0.5; the ResNets and
    #: EfficientNet-Lite0 have none). 0: as the DSSA nets and the DASE authors' SE-ResNeXt-101 (resnext.py:154-155);
    #: their AlexNet has dropout p=0.5 before both fc layers (alexnet.py:44, 48), their ResNet-18 p=0.2 (resnet.py:65)
    dropout: float = 0.0
    embed_bn: bool = False  # batch norm (no affine) on the embedding: see sbir_lib.models.dase.DomainNet
    #: the backbone's batch norms keep their loaded statistics while training (eval mode; their scale and shift
    #: still train): for short fine-tuning of a pretrained trunk on small mixed sketch+photo batches, whose
    #: statistics would otherwise replace the pretrained ones. Not in the authors' code (a recorded deviation)
    bn_frozen: bool = False
    #: how the SE/DASE blocks start: ``random`` (as built) or ``open`` (every channel gated by
    #: :data:`sbir_lib.models.dase.OPEN_GATE` whatever the input, :func:`sbir_lib.models.dase.open_gates`), for
    #: blocks inserted into a pretrained network
    se_init: str = "random"
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
        if self.mems_center_init not in ("random", "photos"):
            p.append(f"mems_center_init must be one of random, photos, got {self.mems_center_init!r}")
        if self.se_init not in ("random", "open"):
            p.append(f"se_init must be one of random, open, got {self.se_init!r}")
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
        if self.arch == "sketchanet" and self.input_size != A.CROP:
            p.append(f"sketchanet needs input_size {A.CROP}, got {self.input_size}")
        if p:
            raise ValueError("; ".join(p))
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """A short hash of the settings that change results (not logging cadence; ``bn_frozen``,
        ``mems_center_init`` and ``se_init`` only when set, so the keys of runs recorded before they existed stay valid)."""
        unset = tuple(k for k, v in (("bn_frozen", False), ("mems_center_init", "random"),
                                             ("se_init", "random")) if getattr(self, k) == v)
        return config_key(self, ignore=("log_every",) + unset)

def _normalise(x: torch.Tensor, arch: str) -> torch.Tensor:
    """Float 0..255 ``[B, C, H, W]`` -> the network's input (Sketch-a-Net: 1 channel, ``x/255 - mean``;
    the others: ImageNet-normalised RGB)."""
    if arch == "sketchanet":
        if x.shape[1] != 1:
            raise ValueError("Sketch-a-Net takes 1-channel images (sketches, edge maps)")
        return x / 255.0 - A.PIXEL_MEAN
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
        return _normalise(A.augment(x_uint8, crop=cfg.input_size, generator=generator).float(), cfg.arch)
    return _normalise(A.random_resized_crop(x_uint8, cfg.input_size, (cfg.crop_scale, 1.0), True, generator),
                      cfg.arch)

def test_views(x_uint8: torch.Tensor, cfg: RunConfig) -> torch.Tensor:
    """Test inputs ``[V, B, C, s, s]``: Sketch-a-Net: centre crop (V=1), + its mirror (2) or the 10 DSSA
    views; others: the whole image resized to ``input_size`` (V=1) and its mirror (V=2; 10 means 2)."""
    if cfg.arch == "sketchanet":
        if cfg.test_views == 10:
            v = A.ten_views(x_uint8, cfg.input_size)
        else:
            c = A.center_crop(x_uint8, cfg.input_size)
            v = c[None] if cfg.test_views == 1 else torch.stack([c, c.flip(-1)])
        return torch.stack([_normalise(vi.float(), cfg.arch) for vi in v])
    x = A.as_bchw(x_uint8).float()
    if x.shape[-1] != cfg.input_size:
        x = F.interpolate(x, size=(cfg.input_size, cfg.input_size), mode="bilinear", antialias=True,
                          align_corners=False)
    x = _normalise(x, cfg.arch)
    return x[None] if cfg.test_views == 1 else torch.stack([x, x.flip(-1)])


def build(cfg: RunConfig, num_classes: int, anneal_steps: int | None = None):
    """``(model, head)``: the backbone of ``cfg`` and its loss head (``None`` for the triplet loss)."""
    model = DA.build_backbone(cfg.arch, cfg.blocks, cfg.embed_dim, cfg.init, hidden_act=cfg.hidden_act,
                              dropout=cfg.dropout, embed_bn=cfg.embed_bn)
    if cfg.se_init == "open":
        DA.open_gates(model, DA.OPEN_GATE)
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
    if isinstance(head, L.MEMSLoss) and cfg.mems_center_init == "photos":
        head.centers.data.copy_(class_means(embed(model, data.train_photos, "photo", cfg, device)[0],
                                            data.train_photo_labels.to(device), data.num_classes))
    model.train()
    if cfg.bn_frozen:
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m is not getattr(model, "embed_bn", None):
                m.eval()
    if head is not None:
        head.train()
    bar = progress_bar(range(cfg.iterations), desc=f"{cfg.blocks} blocks, {cfg.loss} seed{cfg.seed}", disable=not progress,
                       leave=False)
    log = LossLog(history, cfg.log_every, cfg.iterations, bar)
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
        with autocast(device, cfg.amp):
            emb = model(x, dom)
        emb = emb.float()
        if head is None:
            loss = _triplet_loss(emb[:b], emb[b:], c, cfg.triplet_margin, gen)
        else:
            loss = head(emb, torch.cat([c, c]))
        loss = train_step(opt, loss)
        sched.step()
        extra = {"mems_margin": round(head.margin, 4) if isinstance(head, L.MEMSLoss) else None}
        if isinstance(head, L.CosFaceLoss):
            extra["cosface_margin"] = round(head.margin, 4)
        log.add(loss, it + 1, **extra)
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
        with autocast(device, cfg.amp):
            e = model(x, DA.domain_vector(x.shape[0], domain, device))
        out.append(e.float().reshape(nv, nb, -1))
    return torch.cat(out, dim=1)

def class_means(emb: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[num_classes, D]``: the mean of ``emb``'s rows per label (a class without rows: zeros)."""
    out = torch.zeros(num_classes, emb.shape[1], device=emb.device).index_add_(0, labels, emb.float())
    n = torch.zeros(num_classes, device=emb.device).index_add_(0, labels, torch.ones_like(labels, dtype=torch.float))
    return out / n.clamp(min=1).unsqueeze(1)

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


def evaluate_untrained(cfg: RunConfig, data: PairedData, device=None) -> dict:
    """:func:`evaluate` on the network :func:`train_model` starts from (seeded as it seeds, built as it builds):
    the untrained control of every DASE/MEMS record (``metrics_untrained``, taught in notebook 08)."""
    device = _config.default_device(device) if not isinstance(device, torch.device) else device
    seed_everything(cfg.seed)
    model, _ = build(cfg, data.num_classes)
    return evaluate(model.to(device), cfg, data, device)
