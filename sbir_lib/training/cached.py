"""Training on a cached frozen trunk: the frozen layers computed once per (image, view), not every step.

The authors fine-tune a pretrained Sketch-a-Net with conv1-conv4 frozen (attention rows) or conv1-conv5
frozen (the others). With a frozen trunk, its output is a fixed function of each augmented image, so a run
can compute it once for ``K`` views per training image, drawn from exactly the distribution the uncached
engine samples every step (:func:`sbir_lib.data.augment.draw_views`: a random 225 crop of 256 at offsets
0..30, as the authors', + flip), and then train only the rest of the network (conv5, attention, fc6/fc7, the
energy) on the cached maps, each triplet image taking one of its ``K`` views at random. ``K``
(``TrainConfig.cache_views``) is a recorded setting; with ``K`` views per image instead of 1,922 possible
ones (31 x 31 offsets x 2 flips), a cached run sees less augmentation, which is why ``K`` is chosen on a
validation split.

- :func:`trunk_stage`: where the frozen trunk of a run ends (``"conv4"``, ``"conv5"`` or ``None``).
- :class:`ViewCache`, :func:`build_cache`: the cached trunk outputs ``[N, K, C, H, W]`` (bf16 on a GPU)
  and the views they came from (row/column offsets and flips), so every cached map can be recomputed.
- :func:`cached_batch`: the trunk maps of a batch of triplets, one random view per image.

:func:`sbir_lib.training.triplet.train` uses them when ``cache_views > 0`` and the trunk is frozen; the
tests check that the head on a cached view equals the full network on that view, and that a training step
from the cache gives the uncached engine's gradients. ``benchmarks/grid_cost.py`` measures the speed-up.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from sbir_lib.data import augment as AUG
from sbir_lib.models import dssa as MD
from sbir_lib.training.engine import autocast


def trunk_stage(freeze: str, attention: bool, pretrained: bool, backbone: str = "sketchanet") -> str | None:
    """The last frozen layer of a run (``TrainConfig.freeze``; ``"auto"`` follows the authors: conv4 for
    attention rows, conv5 for the others, when fine-tuning a pretrained init; nothing from scratch). The
    ImageNet trunk is frozen whole and its 1x1 conv (conv5's role) is new, so it always ends at ``"conv4"``."""
    if freeze == "auto":
        stage = ("conv4" if attention else "conv5") if pretrained else None
    else:
        stage = None if freeze == "none" else freeze
    return "conv4" if (stage is not None and backbone != "sketchanet") else stage


@dataclass
class ViewCache:
    """Frozen-trunk outputs of ``K`` views of each of ``N`` images.

    ``maps [N, K, C, H, W]`` (on the device, ``dtype``; stored ``[N, K, H, W, C]`` when ``channels_last``, so
    that a batch gathered from it is a channels-last tensor without a copy); ``views``: the views'
    ``(oy, ox, flip)``, ``[N, K, 3]`` int64 on the CPU; ``stage``: the trunk's last layer."""

    stage: str
    maps: torch.Tensor
    views: torch.Tensor
    channels_last: bool = False

    def take(self, i: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The maps of images ``i``, views ``v``: ``[B, C, H, W]`` (channels-last strides when stored so)."""
        m = self.maps[i, v]
        return m.permute(0, 3, 1, 2) if self.channels_last else m

    @property
    def k(self) -> int:
        return self.maps.shape[1]

    def nbytes(self) -> int:
        return self.maps.numel() * self.maps.element_size()


@torch.no_grad()
def build_cache(model: MD.DSSANet, images: torch.Tensor, k: int, stage: str, generator: torch.Generator,
                device, dtype: torch.dtype | None = None, amp: bool = True, flip: bool = True, batch: int = 512,
                channels_last: bool = True) -> ViewCache:
    """Run the frozen trunk (up to ``stage``) of ``model`` on ``k`` random views of each uint8 image
    ``images [N, H, W]``. Views are drawn with ``generator`` image by image (``k`` at a time, in order), from
    the distribution of :func:`sbir_lib.data.augment.augment`. ``dtype``: bf16 on CUDA, float32 elsewhere."""
    if k < 1:
        raise ValueError(f"cache views must be >= 1, got {k}")
    device = torch.device(device)
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    n, h, w = images.shape[0], images.shape[-2], images.shape[-1]
    views = AUG.view_table(n, k, h, w, flip=flip, generator=generator)
    model.eval()
    out = None
    per = max(1, batch // k)
    for i in range(0, n, per):
        j = min(n, i + per)
        crops = AUG.crop_view_table(images[i:j].to(device), views[i:j])
        inp = model.prepare(crops)
        if channels_last and inp.is_cuda:
            inp = inp.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            m = model.backbone.features_upto(inp, stage)
        if channels_last and device.type == "cuda":
            m = m.permute(0, 2, 3, 1)  # stored [.., H, W, C]: batches come out channels-last
        m = m.to(dtype).contiguous()
        m = m.view(j - i, k, *m.shape[1:])
        if out is None:
            out = torch.empty((n, k, *m.shape[2:]), dtype=dtype, device=device)
        out[i:j] = m
    return ViewCache(stage=stage, maps=out, views=views, channels_last=channels_last and device.type == "cuda")


def cached_batch(sketches: ViewCache, edges: ViewCache, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
    """The trunk maps of the triplets ``(a, p, n)`` (sketch ``a``, edge maps ``p`` and ``n``), one view of
    each image drawn uniformly from its ``K`` cached views: ``[3B, C, H, W]`` in the order of the uncached
    engine's batch (anchors, positives, negatives)."""
    b = a.numel()
    dev = sketches.maps.device
    idx = torch.randint(0, sketches.k, (3 * b,), generator=generator, device=generator.device).to(dev)
    x = torch.cat([sketches.take(a, idx[:b]), edges.take(p, idx[b:2 * b]), edges.take(n, idx[2 * b:])])
    return x.contiguous(memory_format=torch.channels_last) if sketches.channels_last else x
