"""Sketch-specific augmentation: thicker and thinner strokes, strokes partly removed, batched on the device.

Taught in: ``notebooks/05_reproduce_tables.ipynb`` ("Where accuracy comes from"); used by the offline
Sketch-a-Net pretraining (:mod:`sbir_lib.training.pretrain`, setting ``stroke_aug``) on top of the crop, flip
and random affine of :mod:`sbir_lib.data.augment`.

Free-hand sketches of one object differ in pen width and in which parts were drawn at all. A network trained
on a few hundred sketches sees little of that variation, so each training image may get one of three
changes, all on *ink* images (float ``[B, 1, H, W]``, 0 = white paper, 1 = full ink):

- :func:`thicken`: grey-level dilation (a ``2 x 2`` max filter): every stroke 1 px wider.
- :func:`thin`: grey-level erosion (a ``2 x 2`` min filter): every stroke 1 px narrower. QMUL sketches are
  drawn with 1-2 px lines that erosion breaks up (a ``2 x 2`` erosion keeps 7-23% of their ink; Sketchy-mini
  sketches keep about 57%), so an image keeps its original ink when erosion leaves less than ``keep`` of its
  ink mass: in practice the thicker Sketchy pens are thinned towards the QMUL ones.
- :func:`erase_parts`: partial-stroke removal. QMUL and Sketchy sketches ship as pixels, not stroke
  sequences, so a "stroke part" is approximated by the ink inside ``n`` square windows (side ``size`` of
  the image side) centred on ink pixels, which is set to 0.

:func:`stroke_augment` applies one of them, chosen uniformly, to each image with probability ``p``.
Random numbers are drawn on ``generator``'s device in the order its docstring gives.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["thicken", "thin", "erase_parts", "stroke_augment", "OPS"]

#: the changes :func:`stroke_augment` chooses from, in the order of its op index
OPS = ("thicken", "thin", "erase")


def _check(ink: torch.Tensor) -> None:
    if ink.dim() != 4 or ink.shape[1] != 1 or not ink.is_floating_point():
        raise ValueError(f"expected float ink [B, 1, H, W], got {ink.dtype} {tuple(ink.shape)}")


def _draw_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def thicken(ink: torch.Tensor) -> torch.Tensor:
    """Grey-level dilation with a ``2 x 2`` square (the pixel and its right, lower and lower-right
    neighbours): strokes 1 px wider."""
    _check(ink)
    return F.max_pool2d(F.pad(ink, (0, 1, 0, 1)), 2, stride=1)


def thin(ink: torch.Tensor, keep: float = 0.5) -> torch.Tensor:
    """Grey-level erosion with a ``2 x 2`` square: strokes 1 px narrower. An image whose eroded ink mass is
    below ``keep`` times its original (its strokes are too thin to survive) is returned unchanged."""
    _check(ink)
    eroded = -F.max_pool2d(F.pad(-ink, (0, 1, 0, 1)), 2, stride=1)
    mass, mass_e = ink.sum((1, 2, 3)), eroded.sum((1, 2, 3))
    ok = (mass_e >= keep * mass).view(-1, 1, 1, 1)
    return torch.where(ok, eroded, ink)


def erase_parts(ink: torch.Tensor, n: int = 3, size: float = 0.12,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Set the ink inside ``n`` square windows per image (side ``size`` x the image side, centred on pixels
    drawn in proportion to their ink) to 0. Random numbers: one ``torch.multinomial`` draw of ``n`` centres
    per image (with replacement). A blank image stays blank."""
    _check(ink)
    B, _, H, W = ink.shape
    weights = ink.detach().flatten(1).float().to(_draw_device(generator)) + 1e-6  # a blank image: uniform
    centre = torch.multinomial(weights, n, replacement=True, generator=generator).to(ink.device)  # [B, n]
    cy, cx = (centre // W).view(B, n, 1, 1), (centre % W).view(B, n, 1, 1)
    half = max(1, round(size * max(H, W) / 2))
    ys = torch.arange(H, device=ink.device).view(1, 1, H, 1)
    xs = torch.arange(W, device=ink.device).view(1, 1, 1, W)
    inside = ((ys - cy).abs() < half) & ((xs - cx).abs() < half)  # [B, n, H, W]
    return ink.masked_fill(inside.any(1, keepdim=True), 0.0)


def stroke_augment(ink: torch.Tensor, p: float, generator: torch.Generator | None = None, n_parts: int = 3,
                   part_size: float = 0.12) -> torch.Tensor:
    """With probability ``p`` per image, one of :data:`OPS` (uniformly chosen). Random numbers, in order: a
    ``[B]`` uniform draw (whether), a ``[B]`` integer draw (which op), then :func:`erase_parts`'s draw (for
    the whole batch). ``p == 0`` returns ``ink`` unchanged and draws nothing."""
    _check(ink)
    if p <= 0:
        return ink
    B = ink.shape[0]
    dev = _draw_device(generator)
    apply = (torch.rand(B, generator=generator, device=dev) < p).to(ink.device)
    op = torch.randint(0, len(OPS), (B,), generator=generator, device=dev).to(ink.device)
    erased = erase_parts(ink, n_parts, part_size, generator=generator)
    out = ink
    for i, result in enumerate((thicken(ink), thin(ink), erased)):
        out = torch.where((apply & (op == i)).view(B, 1, 1, 1), result, out)
    return out
