"""Batched augmentation and test views on the device (one ``affine_grid`` / ``grid_sample`` call per
batch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

def _bchw_float(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.dim() == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    return x.float()

def random_resized_crop(x: torch.Tensor, size: int, scale: tuple[float, float] = (0.6, 1.0), flip: bool = True,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Batched random resized square crops (area fraction uniform in ``scale``, position uniform inside
    the image) and horizontal flips (probability 1/2), resampled bilinearly to ``size`` in one
    ``affine_grid`` / ``grid_sample`` call on ``x``'s device.

    ``x``: uint8 or float ``[B, H, W]``, ``[B, C, H, W]`` or ``[B, H, W, 3]`` -> float ``[B, C, size, size]``
    on the 0..255 scale (feed it to :func:`sbir_lib.models.dase.to_rgb_input` after ``.round().clamp(0, 255)``,
    or use :func:`_rgb_from_float`).
    """
    x = _bchw_float(x)
    b = x.shape[0]
    gdev = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(4, b, generator=generator, device=gdev).to(x.device)
    s = torch.sqrt(scale[0] + (scale[1] - scale[0]) * u[0])  # side fraction
    tx = (1 - s) * (2 * u[1] - 1)
    ty = (1 - s) * (2 * u[2] - 1)
    fx = torch.where(u[3] < 0.5, -s, s) if flip else s
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = fx, tx, s, ty
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
