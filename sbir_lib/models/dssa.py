"""Sketch-a-Net, spatial attention and coarse-fine fusion: the DSSA network and its ablations.

Taught in: ``notebooks/01_triplet_loss.ipynb`` (the Sketch-a-Net / Triplet SN backbone),
``notebooks/02_spatial_attention.ipynb`` (Eqs. 2-4: attention scores, softmax mask,
shortcut connection), ``notebooks/03_coarse_fine_fusion.ipynb`` (the CFF embedding) and
``notebooks/04_holef.ipynb`` / ``notebooks/05_reproducing_the_tables.ipynb`` (the ``VARIANTS``
registry: one named configuration per row of Tables 1-5).

Paper (Song et al., ICCV 2017; equation numbers are this course's, in the order of
``../shared/reference/dssa_iccv17_presentation.txt``), on the conv5 feature map ``f`` (here the pooled ``7 x 7 x 256`` map;
the attention softmax runs over its 49 positions):

- Eq. 2, attention scores ``s_ij = F_att(f_ij; W_a)``: a 1x1 conv 256 -> 256, ReLU, 1x1 conv -> 1.
- Eq. 3, attention mask ``alpha_ij = softmax(s_ij)`` over all positions (``attention_norm="sigmoid"``
  is an option we add: an independent gate per position).
- Eq. 4, attended map with shortcut ``f_att = f + alpha (.) f`` (without shortcut ``alpha (.) f``,
  Table 4's "without shortcut" column).
- Coarse-fine fusion: the coarse ``fc7`` (computed from ``f_att``: flatten -> fc6 -> fc7)
  is concatenated with the fine vector, the attended map summed over positions,
  ``sum_ij f_att_ij`` = ``sum_ij (f_ij + alpha_ij f_ij)`` with the shortcut and ``sum_ij alpha_ij f_ij``
  without it (256-d), each L2-normalised: a 512-d embedding. This is the authors' computation
  (Deep_SBIR_tf ``triplet_sbir_train.py`` lines 71-74, ``triplet_sbir_test.py`` lines 76-79:
  ``reduce_sum(conv5 + conv5 * mask)``). Without attention the fine vector is ``sum_ij f_ij`` (the same
  direction as the average-pooled map).

Sketch-a-Net (the shared siamese backbone; sketches and photo edge maps go through the same weights)::

    input   1 x 225 x 225  (mean-subtracted by sbir_lib.data.datasets)
    conv1   64 @ 15x15 / 3, ReLU     -> 64 x 71 x 71,   maxpool 3/2 -> 35 x 35
    conv2  128 @ 5x5,       ReLU     -> 128 x 31 x 31,  maxpool 3/2 -> 15 x 15
    conv3  256 @ 3x3 pad 1, ReLU     -> 256 x 15 x 15
    conv4  256 @ 3x3 pad 1, ReLU     -> 256 x 15 x 15
    conv5  256 @ 3x3 pad 1, ReLU     -> 256 x 15 x 15,  maxpool 3/2 -> 256 x 7 x 7
    fc6    12544 -> 512, ReLU          (no dropout: neither the TF nor the Caffe network has one;
                                         ``dropout=p`` is a recorded non-paper option)
    fc7    512 -> 256

Embedding without CFF: the L2-normalised ``fc7`` (256-d), as in both of the authors' networks
(Deep_SBIR_tf ``triplet_sbir_train.py`` line 49; DeepSBIR Caffe ``train.prototxt`` line 289).

Initialisation of the layers the authors do not load from a file: the attention convolutions get
TF's ``truncated_normal(0, 0.1)`` weights and zero biases (``triplet_sbir_train.py`` line 18;
``attention_init="tf"``). The authors never train Sketch-a-Net from scratch; our from-scratch runs use
He-normal weights (a named deviation, see REPRODUCTION.md).

``embedding_bn=True`` (a non-paper option, off in every paper row) puts a non-affine BatchNorm on fc7
(and on the fine vector) before the L2 normalisation, which spreads the embeddings of an untrained
network out of the narrow cone they start in.

Variants (``VARIANTS``; names spell out the components: ``att`` = attention with shortcut,
``cff`` = coarse-fine fusion, ``holef`` = HOLEF loss, otherwise Euclidean triplet loss)::

    name                               att  shortcut  cff  energy              table rows
    base                               -    -         -    euclidean           T1 "Triplet SN", T2 "Base", T3 "Base" w/o att
    base+att                           yes  yes       -    euclidean           T3 "Base" with att, T4 "Base + attention" with shortcut
    base+att-noshortcut                yes  no        -    euclidean           T4 "Base + attention" w/o shortcut
    base+cff                           -    -         yes  euclidean           T3 "Base + CFF" w/o att
    base+att+cff                       yes  yes       yes  euclidean           T2 "Base + CFF", T3 with att, T4 with shortcut,
                                                                               T5 "Triplet loss with Euclidean"
    base+att+cff-noshortcut            yes  no        yes  euclidean           T4 "Base + CFF" w/o shortcut
    base+holef                         -    -         -    holef               T2 "Base + HOLEF", T3 w/o att
    base+att+holef                     yes  yes       -    holef               T3 "Base + HOLEF" with att
    base+cff+holef                     -    -         yes  holef               T3 "Our model" w/o att
    full                               yes  yes       yes  holef               T1 "Our model", T2 "Full", T3/T4 "Our model"
                                                                               (with att / shortcut), T5 "Our HOLEF"
    full-noshortcut                    yes  no        yes  holef               T4 "Our model" w/o shortcut
    base+att+cff+weighted_euclidean    yes  yes       yes  weighted_euclidean  T5 "... with Weighted Euclidean"
    base+att+cff+mahalanobis           yes  yes       yes  mahalanobis         T5 "... with Mahalanobis"

Each of the paper's Table 2 rows repeats one cell of Table 3 (acc@1), which fixes its network: "Base"
equals Table 3's Base *without* attention (``base``), "Base + CFF" and "Full" its *with* attention column
(``base+att+cff``, ``full``), "Base + HOLEF" its *without* attention column (56.52 / 74.23 / 40.48; on
Handbag both HOLEF cells are 40.48), hence ``base+holef`` (``tests/test_tables.py`` derives these from
:mod:`sbir_lib.core.tablespec`). Which variant each row (and column, for Tables 3-4) of each table trains
is written once, in that registry.

Initialisation: :func:`sbir_lib.models.sketchanet_init.load_sketchanet_init` loads a torch checkpoint (SketchANet or DSSANet) or the
DSSA authors' TensorFlow ``.npy`` weights (``{layer: [weights, biases]}`` or the flat
``{variable_name: array}`` that ``triplet_sbir_train.py`` saves), feeding TF weights the 0..255 input
scale they were trained on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sbir_lib.losses import losses as _losses
from sbir_lib.models.imagenet import BACKBONES, EfficientNetBackbone
from sbir_lib.models.sketchanet import LAYERS  # noqa: F401  (notebook 01 reads the layer names as MD.LAYERS)
from sbir_lib.models.sketchanet import CONV5_CHANNELS, SketchANet

ENERGIES: tuple[str, ...] = tuple(_losses.ENERGIES)  # euclidean, weighted_euclidean, mahalanobis, holef

ATTENTION_NORMS: tuple[str, ...] = ("softmax", "sigmoid")

ATTENTION_INITS: tuple[str, ...] = ("tf", "torch")

def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class SpatialAttention(nn.Module):
    """Eqs. 2-4: scores by a 2-layer 1x1-conv net, a mask over positions, optional shortcut.

    ``forward(f) -> (f_att, alpha)`` with ``f [B, C, H, W]``, ``alpha [B, H, W]``;
    ``normalize="softmax"`` makes ``alpha`` sum to 1 over the ``H*W`` positions, ``"sigmoid"`` gates
    each position independently. ``f_att = f + alpha * f`` (shortcut) or ``alpha * f``.
    """

    def __init__(self, channels: int = CONV5_CHANNELS, hidden: int = 256, normalize: str = "softmax",
                 shortcut: bool = True, init: str = "tf"):
        super().__init__()
        if normalize not in ATTENTION_NORMS:
            raise ValueError(f"normalize must be one of {', '.join(ATTENTION_NORMS)}; got {normalize!r}")
        if init not in ATTENTION_INITS:
            raise ValueError(f"init must be one of {', '.join(ATTENTION_INITS)}; got {init!r}")
        self.conv1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.conv2 = nn.Conv2d(hidden, 1, kernel_size=1)
        self.normalize = normalize
        self.shortcut = bool(shortcut)
        if init == "tf":
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' init: weights ~ truncated normal (mean 0, std 0.1, cut at 2 std, as TF's
        ``truncated_normal_initializer``), biases 0 (Deep_SBIR_tf ``triplet_sbir_train.py`` line 18)."""
        for conv in (self.conv1, self.conv2):
            nn.init.trunc_normal_(conv.weight, mean=0.0, std=0.1, a=-0.2, b=0.2)
            nn.init.zeros_(conv.bias)

    def scores(self, f: torch.Tensor) -> torch.Tensor:
        """Eq. 2, ``s = F_att(f)``: ``[B, C, H, W] -> [B, H, W]``."""
        return self.conv2(F.relu(self.conv1(f))).squeeze(1)

    def mask(self, s: torch.Tensor) -> torch.Tensor:
        """Eq. 3, ``alpha`` from the scores ``[B, H, W]``."""
        if self.normalize == "softmax":
            return torch.softmax(s.flatten(1), dim=1).view_as(s)
        return torch.sigmoid(s)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = self.mask(self.scores(f))
        attended = alpha.unsqueeze(1) * f
        f_att = f + attended if self.shortcut else attended
        return f_att, alpha

    def extra_repr(self) -> str:
        return f"normalize={self.normalize!r}, shortcut={self.shortcut}"

@dataclass
class VariantConfig:
    """One model + loss configuration. Defaults are the full DSSA model.

    ``attention``/``shortcut``/``attention_norm``/``attention_hidden``: the attention module
    (``shortcut`` and the other two are ignored without attention); ``cff``: coarse-fine fusion;
    ``energy``: the distance the triplet loss uses (one of ``ENERGIES``) (the margin is the run's, :class:`sbir_lib.training.triplet.TrainConfig`);
    ``reg_lambda``: the learned energies' regulariser weight (Eq. 7); ``dropout``: on fc6 (0 in the
    authors' networks; > 0 is a non-paper option); ``fc6_dim``/``fc7_dim``: head widths;
    ``attention_init``: ``"tf"`` (the authors' truncated normal, std 0.1) or ``"torch"`` (PyTorch's
    default); ``embedding_bn``: a non-affine BatchNorm before each L2 normalisation (non-paper option).
    fc7 (and, with CFF, the fine vector) is always L2-normalised, as in the authors' code.
    """

    attention: bool = True
    shortcut: bool = True
    cff: bool = True
    energy: str = "holef"
    attention_norm: str = "softmax"
    attention_hidden: int = 256
    dropout: float = 0.0
    fc6_dim: int = 512
    fc7_dim: int = 256
    attention_init: str = "tf"
    embedding_bn: bool = False
    #: "sketchanet" (the paper's) or "efficientnet_lite0" (the ImageNet track, sbir_lib.models.imagenet)
    backbone: str = "sketchanet"
    reg_lambda: float = _losses.DEFAULT_REG_LAMBDA
    description: str = field(default="", compare=False)

    def validate(self) -> "VariantConfig":
        """Raise ``ValueError`` naming the bad field and its allowed values; return ``self``."""
        for name in ("attention", "shortcut", "cff", "embedding_bn"):
            v = getattr(self, name)
            if not isinstance(v, (bool, np.bool_)):
                raise ValueError(f"{name} must be a bool (True or False); got {v!r}")
        if self.energy not in ENERGIES:
            raise ValueError(f"energy must be one of {', '.join(ENERGIES)}; got {self.energy!r}")
        if self.attention_norm not in ATTENTION_NORMS:
            raise ValueError(f"attention_norm must be one of {', '.join(ATTENTION_NORMS)}; got {self.attention_norm!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}; got {self.backbone!r}")
        if self.attention_init not in ATTENTION_INITS:
            raise ValueError(f"attention_init must be one of {', '.join(ATTENTION_INITS)}; got {self.attention_init!r}")
        for name in ("attention_hidden", "fc6_dim", "fc7_dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer; got {v!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be a float in [0, 1); got {self.dropout!r}")
        if not isinstance(self.reg_lambda, (int, float)) or float(self.reg_lambda) < 0:
            raise ValueError(f"reg_lambda must be a non-negative float; got {self.reg_lambda!r}")
        return self

    @property
    def embed_dim(self) -> int:
        return self.fc7_dim + CONV5_CHANNELS if self.cff else self.fc7_dim

    def replace(self, **changes: Any) -> "VariantConfig":
        """A validated copy with some fields changed (unknown fields -> ValueError)."""
        _check_fields(changes)
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "VariantConfig":
        _check_fields(d)
        return cls(**dict(d)).validate()

def _check_fields(d: Mapping[str, Any]) -> None:
    allowed = [f.name for f in dataclasses.fields(VariantConfig)]
    bad = [k for k in d if k not in allowed]
    if bad:
        raise ValueError(f"unknown VariantConfig field(s) {', '.join(map(repr, bad))}; allowed: {', '.join(allowed)}")

def _v(attention: bool, cff: bool, energy: str, shortcut: bool = True, description: str = "") -> VariantConfig:
    return VariantConfig(attention=attention, shortcut=shortcut, cff=cff, energy=energy,
                         description=description).validate()

VARIANTS: dict[str, VariantConfig] = {
    "base": _v(False, False, "euclidean",
               description="Triplet SN: T1 'Triplet SN', T2 'Base', T3 'Base' without attention"),
    "base+att": _v(True, False, "euclidean",
                   description="T3 'Base' with attention; T4 'Base + attention' with shortcut"),
    "base+att-noshortcut": _v(True, False, "euclidean", shortcut=False,
                              description="T4 'Base + attention' without shortcut"),
    "base+cff": _v(False, True, "euclidean", description="T3 'Base + CFF' without attention"),
    "base+att+cff": _v(True, True, "euclidean",
                       description="T2 'Base + CFF'; T3 'Base + CFF' with attention; T4 'Base + CFF' with "
                                   "shortcut; T5 'Triplet loss with Euclidean'"),
    "base+att+cff-noshortcut": _v(True, True, "euclidean", shortcut=False,
                                  description="T4 'Base + CFF' without shortcut"),
    "base+holef": _v(False, False, "holef",
                     description="T2 'Base + HOLEF'; T3 'Base + HOLEF' without attention"),
    "base+att+holef": _v(True, False, "holef", description="T3 'Base + HOLEF' with attention"),
    "base+cff+holef": _v(False, True, "holef", description="T3 'Our model' without attention"),
    "full": _v(True, True, "holef",
               description="DSSA: T1 'Our model'; T2 'Full: Base + CFF + HOLEF'; T3 'Our model' with "
                           "attention; T4 'Our model' with shortcut; T5 'Our HOLEF'"),
    "full-noshortcut": _v(True, True, "holef", shortcut=False, description="T4 'Our model' without shortcut"),
    "base+att+cff+weighted_euclidean": _v(True, True, "weighted_euclidean",
                                          description="T5 'Triplet loss with Weighted Euclidean'"),
    "base+att+cff+mahalanobis": _v(True, True, "mahalanobis",
                                   description="T5 'Triplet loss with Mahalanobis'"),
}

def get_variant(name: str, **overrides: Any) -> VariantConfig:
    """A validated copy of ``VARIANTS[name]``, optionally with fields overridden.

    Unknown names raise ``ValueError`` listing the allowed ones.
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; allowed: {', '.join(VARIANTS)}")
    return VARIANTS[name].replace(**overrides)

def _resolve_config(config: "VariantConfig | str | Mapping[str, Any]") -> VariantConfig:
    if isinstance(config, str):
        return get_variant(config)
    if isinstance(config, VariantConfig):
        return dataclasses.replace(config).validate()
    if isinstance(config, Mapping):
        return VariantConfig.from_dict(config)
    raise TypeError(f"config must be a VariantConfig, a variant name or a dict; got {type(config).__name__}")

class DSSANet(nn.Module):
    """The DSSA embedding network (or an ablation), built from a ``VariantConfig`` or variant name.

    One module embeds both sketches and photo edge maps (siamese, shared weights).
    ``embed(x) -> [B, embed_dim]``; ``forward(x, return_attention=False)`` returns the embedding,
    or ``(embedding, alpha)`` with ``alpha [B, 7, 7]`` (``None`` without attention).
    ``intermediates(x)`` returns every stage (conv5, alpha, attended map, fc7, fine vector, embedding).
    """

    def __init__(self, config: "VariantConfig | str | Mapping[str, Any]" = "full"):
        super().__init__()
        cfg = _resolve_config(config)
        self.config = cfg
        if cfg.backbone == "sketchanet":
            self.backbone = SketchANet(fc6_dim=cfg.fc6_dim, fc7_dim=cfg.fc7_dim, dropout=cfg.dropout)
        else:
            self.backbone = EfficientNetBackbone(fc6_dim=cfg.fc6_dim, fc7_dim=cfg.fc7_dim, dropout=cfg.dropout,
                                                 trunk_end="block15" if cfg.backbone.endswith("_b15") else "head")
        self.attention = (SpatialAttention(CONV5_CHANNELS, cfg.attention_hidden, cfg.attention_norm, cfg.shortcut,
                                           init=cfg.attention_init)
                          if cfg.attention else None)
        self.embed_dim = cfg.embed_dim
        # non-paper option: centre and scale each half over the batch before L2 (running stats at test)
        self.fc7_bn = nn.BatchNorm1d(cfg.fc7_dim, affine=False) if cfg.embedding_bn else None
        self.fine_bn = nn.BatchNorm1d(CONV5_CHANNELS, affine=False) if (cfg.embedding_bn and cfg.cff) else None

    # --------------------------------------------------------------- forward
    def intermediates(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        return self.intermediates_from(self.backbone.features(x))

    def embed_from(self, h: torch.Tensor, stage: str) -> torch.Tensor:
        """The embedding from the output of the frozen trunk ``stage`` (``"conv4"`` | ``"conv5"``,
        :meth:`SketchANet.features_upto`): ``embed(x) == embed_from(backbone.features_upto(x, stage), stage)``."""
        return self.intermediates_from(self.backbone.features_after(h, stage))["embedding"]

    def intermediates_from(self, f: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Every stage after the pooled conv5 map ``f`` (``[B, 256, 7, 7]``)."""
        if self.attention is not None:
            f_att, alpha = self.attention(f)
        else:
            f_att, alpha = f, None
        fc7 = self.backbone.head(f_att)
        out: dict[str, torch.Tensor | None] = {"conv5": f, "alpha": alpha, "attended": f_att, "fc7": fc7}
        coarse = F.normalize(fc7 if self.fc7_bn is None else self.fc7_bn(fc7), dim=1)
        if self.config.cff:
            # the fine vector: the attended map summed over positions, sum(f + alpha f) with the shortcut,
            # sum(alpha f) without (triplet_sbir_train.py lines 71-74); sum(f) without attention
            fine = f_att.sum(dim=(2, 3))
            out["fine"] = fine
            fine_n = F.normalize(fine if self.fine_bn is None else self.fine_bn(fine), dim=1)
            out["embedding"] = torch.cat([coarse, fine_n], dim=1)
        else:
            out["fine"] = None
            out["embedding"] = coarse
        return out

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        out = self.intermediates(x)
        if return_attention:
            return out["embedding"], out["alpha"]
        return out["embedding"]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    # --------------------------------------------------------------- loss helpers
    def make_energy(self) -> _losses.Energy:
        """The energy of this variant's loss, sized to ``embed_dim``."""
        return _losses.make_energy(self.config.energy, self.embed_dim, reg_lambda=self.config.reg_lambda)

    # --------------------------------------------------------------- training helpers
    def prepare(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 crops -> this network's input (Sketch-a-Net: ``x/255 - mean``; ImageNet track: RGB-normalised)."""
        return self.backbone.prepare(x_uint8)

    def freeze(self, upto: str | None = "conv4") -> list[str]:
        """Freeze the backbone up to ``upto`` (Sketch-a-Net: ``conv1 .. upto`` inclusive; the ImageNet trunk:
        whole); unfreeze the rest. ``upto=None`` unfreezes everything. Returns the names of the frozen parts."""
        return self.backbone.freeze(upto)

    def param_groups(self, weight_decay: float = 0.0) -> list[dict[str, Any]]:
        """Optimizer groups for the trainable parameters, weight decay the authors' way: ``decay``
        holds the conv/fc weights of the backbone and the attention (``weight_decay``), ``no_decay``
        the biases (0; Caffe ``decay_mult: 0``, DeepSBIR ``train.prototxt``). Empty groups are left out.
        The energy's parameters (HOLEF's ``W``, which decay would pull towards 0 rather than I) are not
        here: the trainer adds them without decay.
        """
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (decay if name.endswith(".weight") and p.dim() > 1 else no_decay).append(p)
        groups = [{"name": "decay", "params": decay, "weight_decay": float(weight_decay)},
                  {"name": "no_decay", "params": no_decay, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    def extra_repr(self) -> str:
        c = self.config
        return (f"attention={c.attention}, shortcut={c.shortcut}, cff={c.cff}, energy={c.energy!r}, "
                f"embed_dim={self.embed_dim}")
