"""Sketch-a-Net (Yu et al., BMVC 2015 / IJCV 2017), the backbone of Triplet SN and DSSA.

Taught in notebook 01. Five convolutions (conv1 15x15 stride 3, conv2 5x5, conv3-conv5 3x3) with max
pooling after conv1, conv2 and conv5 take a 1 x 225 x 225 input to a 256 x 7 x 7 map; fc6 (512) and fc7
(256) follow. :meth:`SketchANet.features_upto` / :meth:`SketchANet.features_after` split the network where a
frozen trunk ends (conv4 or conv5), for the trunk cache of :mod:`sbir_lib.training.cached`. The DSSA heads
(attention, coarse-fine fusion, HOLEF) are in :mod:`sbir_lib.models.dssa`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sbir_lib.data.augment import to_input

LAYERS: tuple[str, ...] = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")

CONV_LAYERS: tuple[str, ...] = LAYERS[:5]

CONV5_CHANNELS = 256

INPUT_SIZE = 225


class SketchANet(nn.Module):
    """Sketch-a-Net backbone with Triplet SN's fc6 (512) and fc7 (256) heads.

    ``features(x)``: ``[B, 1, 225, 225] -> [B, 256, 7, 7]`` (pooled conv5);
    ``head(f)``: ``[B, 256, 7, 7] -> [B, fc7_dim]`` (flatten, fc6, ReLU, [dropout if > 0], fc7);
    ``forward(x) = head(features(x))``. Layer names ``conv1..conv5, fc6, fc7``.
    """

    def __init__(self, fc6_dim: int = 512, fc7_dim: int = 256, dropout: float = 0.0, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=15, stride=3)
        self.conv2 = nn.Conv2d(64, 128, kernel_size=5)
        self.conv3 = nn.Conv2d(128, 256, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(256, 256, kernel_size=3, padding=1)
        self.conv5 = nn.Conv2d(256, CONV5_CHANNELS, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)
        self.feature_shape = (CONV5_CHANNELS, 7, 7)
        self.fc6 = nn.Linear(CONV5_CHANNELS * 7 * 7, fc6_dim)
        self.fc7 = nn.Linear(fc6_dim, fc7_dim)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal weights for the ReLU layers, Xavier for the linear fc7, zero biases."""
        for name in LAYERS:
            layer = getattr(self, name)
            if name == "fc7":
                nn.init.xavier_normal_(layer.weight)
            else:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    #: How conv1 (15x15, stride 3, one input channel) is computed: ``"s2d"`` rewrites it exactly as a
    #: 5x5 stride-1 convolution over the 9-channel space-to-depth (``pixel_unshuffle(x, 3)``) input,
    #: which GPU convolution kernels handle far better than a 1-channel 15x15 kernel; ``"native"`` calls
    #: ``self.conv1``. The parameters keep the usual ``[64, 1, 15, 15]`` layout either way.
    conv1_impl: str = "s2d"

    def conv1_forward(self, x: torch.Tensor) -> torch.Tensor:
        """conv1 of ``x`` (``[B, 1, H, W]``), by :attr:`conv1_impl` (identical results up to rounding)."""
        c = self.conv1
        if (self.conv1_impl == "s2d" and c.in_channels == 1 and c.stride == (3, 3) and c.padding == (0, 0)
                and x.shape[-1] % 3 == 0 and x.shape[-2] % 3 == 0):
            o, _, kh, kw = c.weight.shape
            w9 = c.weight.view(o, 1, kh // 3, 3, kw // 3, 3).permute(0, 1, 3, 5, 2, 4).reshape(o, 9, kh // 3, kw // 3)
            return F.conv2d(F.pixel_unshuffle(x, 3), w9, c.bias)
        return c(x)

    input_kind = "sketch"

    @staticmethod
    def prepare(x_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 crops -> the network's input, ``x/255 - 250.42/255`` (:func:`sbir_lib.data.augment.to_input`)."""
        return to_input(x_uint8)

    def freeze(self, upto: str | None = "conv4") -> list[str]:
        """Freeze ``conv1 .. upto`` (inclusive), unfreeze the rest (``None``: all); the frozen layers' names."""
        if upto is not None and upto not in LAYERS:
            raise ValueError(f"upto must be one of {', '.join(LAYERS)} or None; got {upto!r}")
        stop = -1 if upto is None else LAYERS.index(upto)
        frozen = []
        for i, name in enumerate(LAYERS):
            req = i > stop
            for p in getattr(self, name).parameters():
                p.requires_grad_(req)
            if not req:
                frozen.append(name)
        return frozen

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_after(self.features_upto(x, "conv4"), "conv4")

    def features_upto(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        """The network up to ``stage`` (``"conv4"``: ReLU(conv4), ``[B, 256, 15, 15]``; ``"conv5"``: pooled
        conv5, ``[B, 256, 7, 7]``): the part a frozen-trunk run computes once per view
        (:mod:`sbir_lib.training.cached`)."""
        _check_stage(stage)
        x = self.pool(F.relu(self.conv1_forward(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = F.relu(self.conv3(x))
        x = F.relu(self.conv4(x))
        return self.features_after(x, "conv4") if stage == "conv5" else x

    def features_after(self, h: torch.Tensor, stage: str) -> torch.Tensor:
        """The rest of :meth:`features` from the output of ``stage`` (see :meth:`features_upto`)."""
        _check_stage(stage)
        return self.pool(F.relu(self.conv5(h))) if stage == "conv4" else h

    def head(self, f: torch.Tensor) -> torch.Tensor:
        h = self.dropout(F.relu(self.fc6(f.flatten(1))))
        return self.fc7(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def layer_shapes(self, input_size: int = INPUT_SIZE) -> dict[str, tuple[int, ...]]:
        """Per-stage output shapes (without batch) for an ``input_size`` square input (for teaching)."""
        x = torch.zeros(1, self.conv1.in_channels, input_size, input_size)
        shapes: dict[str, tuple[int, ...]] = {"input": tuple(x.shape[1:])}
        x = F.relu(self.conv1(x)); shapes["conv1"] = tuple(x.shape[1:])
        x = self.pool(x); shapes["pool1"] = tuple(x.shape[1:])
        x = F.relu(self.conv2(x)); shapes["conv2"] = tuple(x.shape[1:])
        x = self.pool(x); shapes["pool2"] = tuple(x.shape[1:])
        for name in ("conv3", "conv4", "conv5"):
            x = F.relu(getattr(self, name)(x)); shapes[name] = tuple(x.shape[1:])
        x = self.pool(x); shapes["pool5"] = tuple(x.shape[1:])
        x = F.relu(self.fc6(x.flatten(1))); shapes["fc6"] = tuple(x.shape[1:])
        x = self.fc7(x); shapes["fc7"] = tuple(x.shape[1:])
        return shapes

#: Where a frozen trunk may end: the authors freeze conv1-conv4 (attention rows) or conv1-conv5 (the others).
TRUNK_STAGES: tuple[str, ...] = ("conv4", "conv5")

def _check_stage(stage: str) -> None:
    if stage not in TRUNK_STAGES:
        raise ValueError(f"stage must be one of {', '.join(TRUNK_STAGES)}; got {stage!r}")
