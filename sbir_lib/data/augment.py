"""Augmentation, test views and input normalisation: every image transform of the course, batched on the
device the batch lives on.

Taught in: ``notebooks/00_data_and_domain_gap.ipynb`` (crops, flips, the ten test views, the input
normalisation); used by the three training recipes (:mod:`sbir_lib.training.triplet`,
:mod:`sbir_lib.training.class_pairs`, :mod:`sbir_lib.training.pretrain`).

Every function takes a whole batch -- ``[B, H, W]`` or ``[B, C, H, W]`` (:func:`random_resized_crop` also
``[B, H, W, 3]``) -- and transforms it with one gather or one ``grid_sample`` call, no per-image Python loop.
Random numbers are drawn on ``generator``'s device (the CPU default generator when None) in the order each
docstring gives, so a seeded generator gives the same result whichever device holds the images.

Training
    - :func:`augment`: the DSSA authors' recipe (Triplet SN / DSSA, and the Sketch-a-Net rows of DASE/MEMS):
      a random ``crop`` x ``crop`` window (225 of 256; independent offset per image, row and column each
      uniform on ``0..H-crop-1`` = 0..30, as the authors' ``nr.randint(256 - 225)``, Deep_SBIR_tf
      ``sbir_sampling/image_proc.py`` lines 74, 114-115) and a horizontal flip with probability 1/2
      (``nr.random() > 0.5``, line 116). Every random crop of this kind (training, the
      frozen-trunk cache of :mod:`sbir_lib.training.cached`) is drawn by :func:`draw_views`.
    - :func:`random_affine`: a random rotation / isotropic scale / shift per image, on ink images
      (pretraining: applied after :func:`augment`).
    - :func:`random_resized_crop`: a random square window of random area, resampled to ``size``, and a
      flip (DASE/MEMS with ResNets).

Testing
    :func:`center_crop` (the centre window, offset ``(H-crop)//2`` = 15) and :func:`ten_views` (4 corners at
    offsets 0 and ``H-crop`` = 31, and the centre, each also mirrored): the authors' test views
    (Deep_SBIR_tf ``triplet_sbir_test.py`` lines 132-143; single view: lines 111-116).

Input normalisation
    :func:`to_input` maps uint8 to float ``x/255 - PIXEL_MEAN``. ``PIXEL_MEAN = 250.42/255`` is the constant
    the DSSA authors subtract (Sketch-a-Net convention: one scalar mean, the same for sketches and edge maps).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["CROP", "PIXEL_MEAN", "PIXEL_MEAN_MEASURED", "as_bchw", "augment", "center_crop", "ten_views",
           "to_input", "random_resized_crop", "random_affine"]

#: the crop the network sees (Sketch-a-Net / DSSA input size).
CROP = 225
#: the scalar mean subtracted from inputs on the [0, 1] scale: the DSSA authors' 250.42 (out of 255).
PIXEL_MEAN = 250.42 / 255.0
#: the same mean over the QMUL shoes training sketches + edge maps (full 256x256), out of 255; kept for
#: comparison (``tests/test_data.py`` re-measures it on the real data).
PIXEL_MEAN_MEASURED = 250.036 / 255.0


# ----------------------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------------------
def as_bchw(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, W]`` -> ``[B, 1, H, W]``; ``[B, H, W, 3]`` (RGB last) -> ``[B, 3, H, W]`` (a view);
    ``[B, C, H, W]`` unchanged. Any dtype."""
    if x.dim() == 3:
        return x.unsqueeze(1)
    if x.dim() == 4:
        return x.permute(0, 3, 1, 2) if x.shape[-1] == 3 and x.shape[1] != 3 else x
    raise ValueError(f"expected [B,H,W], [B,C,H,W] or [B,H,W,3], got shape {tuple(x.shape)}")


def _check_crop(crop: int, h: int, w: int) -> None:
    if crop > h or crop > w:
        raise ValueError(f"crop {crop} larger than the images ({h}x{w})")


def _draw_device(generator: torch.Generator | None) -> torch.device:
    """Where random numbers are drawn: the generator's device (CPU for the default generator)."""
    return generator.device if generator is not None else torch.device("cpu")


def _warp(x: torch.Tensor, theta: torch.Tensor, size: tuple[int, int], padding_mode: str) -> torch.Tensor:
    """Resample float ``x`` [B,C,H,W] through per-image affine maps ``theta`` [B,2,3] (output -> input, in
    normalised coordinates) to ``size``, bilinearly, in one ``grid_sample`` call."""
    grid = F.affine_grid(theta.to(x.dtype), [x.shape[0], x.shape[1], *size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


# ----------------------------------------------------------------------------------------------------------
# Crops and flips (DSSA), test views, input normalisation
# ----------------------------------------------------------------------------------------------------------
def augment(x: torch.Tensor, crop: int = CROP, flip: bool = True,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Random ``crop`` x ``crop`` windows (independent offsets per image, row uniform on ``0..H-crop-1`` and
    column on ``0..W-crop-1``: 0..30 for 225 of 256, as the authors draw them) and independent horizontal
    flips (probability 1/2), as one gather on ``x``'s device.

    ``x``: [B,H,W] or [B,C,H,W] (any dtype; uint8 stays uint8) -> [B,C,crop,crop] (C=1 for [B,H,W]).
    Random numbers, in this order: row offsets, column offsets, flip bits (:func:`draw_views`).
    """
    x = as_bchw(x)
    B, _, H, W = x.shape
    return crop_views(x, *draw_views(B, H, W, crop, flip, generator), crop=crop)


def draw_views(n: int, height: int, width: int, crop: int = CROP, flip: bool = True,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` random views of the :func:`augment` distribution: ``(row offsets, column offsets, flip bits)``,
    on the generator's device. Random numbers, in this order: row offsets, column offsets, flip bits.

    Offsets are uniform on ``0..height-crop-1`` / ``0..width-crop-1`` (0..30 for 225 of 256): the authors'
    ``x = nr.randint(self._boarder_size)`` with ``_boarder_size = 256 - 225`` (Deep_SBIR_tf
    ``sbir_sampling/image_proc.py`` lines 74, 114-115; numpy's upper bound is exclusive), so the last offset
    ``H-crop`` (31), which only the test corners use, is never drawn. Images no larger than the crop get offset 0
    (the authors pass a crop-sized image through unchanged, line 109).
    """
    _check_crop(crop, height, width)
    gdev = _draw_device(generator)
    oy = torch.randint(0, max(height - crop, 1), (n,), generator=generator, device=gdev)
    ox = torch.randint(0, max(width - crop, 1), (n,), generator=generator, device=gdev)
    if flip:
        fl = torch.rand(n, generator=generator, device=gdev) < 0.5
    else:
        fl = torch.zeros(n, dtype=torch.bool, device=gdev)
    return oy, ox, fl


def view_table(n: int, k: int, height: int, width: int, crop: int = CROP, flip: bool = True,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """``k`` random views of each of ``n`` images (:func:`draw_views`, image by image, ``k`` at a time) as a
    ``[n, k, 3]`` int64 table on the CPU: row offset, column offset, flip bit."""
    oy, ox, fl = draw_views(n * k, height, width, crop, flip, generator)
    return torch.stack([oy.cpu(), ox.cpu(), fl.cpu().long()], dim=1).view(n, k, 3)


def crop_view_table(x: torch.Tensor, views: torch.Tensor, crop: int = CROP) -> torch.Tensor:
    """The crops of a :func:`view_table` ``views [n, k, 3]`` of the images ``x [n, ...]``: ``[n * k, C, crop,
    crop]``, image by image, view by view."""
    v = views.reshape(-1, 3)
    return crop_views(as_bchw(x).repeat_interleave(views.shape[1], dim=0), v[:, 0], v[:, 1], v[:, 2].bool(), crop)


def crop_views(x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, fl: torch.Tensor,
               crop: int = CROP) -> torch.Tensor:
    """The views ``(oy, ox, fl)`` of :func:`draw_views` of the images ``x`` ([B,H,W] or [B,C,H,W], one view
    per image): window at row ``oy``, column ``ox``, mirrored left-right where ``fl``; -> [B,C,crop,crop]."""
    x = as_bchw(x)
    B, C, H, W = x.shape
    _check_crop(crop, H, W)
    dev = x.device
    oy, ox, fl = oy.to(dev), ox.to(dev), fl.to(dev)
    ar = torch.arange(crop, device=dev)
    rows = oy[:, None] + ar  # [B, crop]
    cols = torch.where(fl[:, None], ox[:, None] + (crop - 1 - ar), ox[:, None] + ar)  # flipped -> reversed
    bidx = torch.arange(B, device=dev)[:, None, None]
    out = x.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]]  # [B, crop, crop, C]
    return out.permute(0, 3, 1, 2).contiguous()


def _window(x: torch.Tensor, y: int, c: int, crop: int) -> torch.Tensor:
    return x[..., y:y + crop, c:c + crop]


def center_crop(x: torch.Tensor, crop: int = CROP) -> torch.Tensor:
    """The centre ``crop`` window (offset (H-crop)//2), [B,H,W] or [B,C,H,W] -> [B,C,crop,crop]."""
    x = as_bchw(x)
    H, W = x.shape[-2:]
    _check_crop(crop, H, W)
    return _window(x, (H - crop) // 2, (W - crop) // 2, crop).contiguous()


def ten_views(x: torch.Tensor, crop: int = CROP) -> torch.Tensor:
    """The 10 test views [10,B,C,crop,crop]: top-left, top-right, bottom-left, bottom-right, centre,
    then the same five mirrored left-right (view ``5+k`` = ``flip(view k)``).

    The authors' ten views (Deep_SBIR_tf ``triplet_sbir_test.py`` lines 132-143): corners at offsets 0 and
    ``H-crop`` (31 for 225 of 256), the centre at ``int((H-crop)*0.5)`` (15), each also reversed left-right
    (``[..., ::-1]``, an exact mirror of the window). They list the corners column-major (top-left,
    bottom-left, top-right, bottom-right); the test distance is the mean over views of matching views
    (lines 147-155, 212), so the order changes nothing but the rounding of that 10-term mean.
    """
    x = as_bchw(x)
    H, W = x.shape[-2:]
    _check_crop(crop, H, W)
    offs = [(0, 0), (0, W - crop), (H - crop, 0), (H - crop, W - crop), ((H - crop) // 2, (W - crop) // 2)]
    views = [_window(x, y, c, crop) for y, c in offs]
    views += [v.flip(-1) for v in views]
    return torch.stack(views).contiguous()


def to_input(x: torch.Tensor, mean: float | torch.Tensor = PIXEL_MEAN) -> torch.Tensor:
    """uint8 images -> float32 network input ``x/255 - mean`` on the same device.

    [B,H,W] becomes [B,1,H,W]; [B,C,H,W] and [V,B,C,H,W] (ten views) keep their shape.
    ``mean`` is on the [0,1] scale (default :data:`PIXEL_MEAN` = 250.42/255, the authors' constant).
    """
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return x.float().div_(255.0).sub_(mean)


# ----------------------------------------------------------------------------------------------------------
# Affine warps (one grid_sample per batch)
# ----------------------------------------------------------------------------------------------------------
def random_resized_crop(x: torch.Tensor, size: int, scale: tuple[float, float] = (0.6, 1.0), flip: bool = True,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Batched random resized square crops (area fraction uniform in ``scale``, position uniform inside
    the image) and horizontal flips (probability 1/2), resampled bilinearly to ``size``.

    ``x``: uint8 or float ``[B, H, W]``, ``[B, C, H, W]`` or ``[B, H, W, 3]`` -> float ``[B, C, size, size]``
    on the 0..255 scale. Random numbers: one ``[4, B]`` uniform draw (area, x position, y position, flip).
    """
    x = as_bchw(x).float()
    b = x.shape[0]
    u = torch.rand(4, b, generator=generator, device=_draw_device(generator)).to(x.device)
    s = torch.sqrt(scale[0] + (scale[1] - scale[0]) * u[0])  # side fraction
    tx = (1 - s) * (2 * u[1] - 1)
    ty = (1 - s) * (2 * u[2] - 1)
    fx = torch.where(u[3] < 0.5, -s, s) if flip else s
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = fx, tx, s, ty
    return _warp(x, theta, (size, size), "border")


def random_affine(ink: torch.Tensor, rotate_deg: float, scale: float, shift: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Warp each image of ``ink`` (float ``[B, 1, H, W]``, 0 = white background) by its own random
    rotation in ``[-rotate_deg, rotate_deg]``, isotropic scale in ``[1-scale, 1+scale]`` and shift in
    ``[-shift, shift]`` (fraction of the size). Pixels from outside the image are white (ink 0).
    Random numbers: one ``[B, 4]`` uniform draw (rotation, scale, x shift, y shift); none when all three
    ranges are 0 (``ink`` is returned as is)."""
    if rotate_deg == 0 and scale == 0 and shift == 0:
        return ink
    B = ink.shape[0]
    u = torch.rand(B, 4, generator=generator, device=_draw_device(generator)).to(ink.device) * 2 - 1  # [-1, 1]
    th = u[:, 0] * math.radians(rotate_deg)
    s = 1.0 + u[:, 1] * scale
    c, si = torch.cos(th) / s, torch.sin(th) / s  # the grid maps output -> input: inverse scale
    theta = torch.stack([torch.stack([c, -si, u[:, 2] * 2 * shift], 1),
                         torch.stack([si, c, u[:, 3] * 2 * shift], 1)], 1)  # [B, 2, 3]
    return _warp(ink, theta, tuple(ink.shape[-2:]), "zeros")
