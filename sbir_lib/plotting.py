"""Plotting helpers; the one place figures are saved from.

Every notebook writes its figures through :func:`save_figure`, which puts a PNG and a PDF under
``figures/`` (``config.figures_root``). Figures 4 and 5 of the DSSA paper are rebuilt in
``notebooks/06_figures.ipynb``; image grids are used from ``00_data_and_domain_gap`` on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from . import config
from .io import atomic_path


def save_figure(fig, name: str, root=None, formats: Sequence[str] = ("png", "pdf"), dpi: int = 120):
    """Save ``fig`` as ``figures/<name>.png`` and ``.pdf`` atomically; return the paths."""
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"figure name must be a plain file stem, got {name!r}")
    out = config.figures_root(root)
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        with atomic_path(path, suffix=f".{fmt}") as tmp:
            # metadata without dates keeps committed PDFs/PNGs stable across re-runs
            meta = {"CreationDate": None} if fmt == "pdf" else ({"Software": None} if fmt == "png" else None)
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=meta)
        paths.append(path)
    return paths


def _to_numpy_image(img):
    if hasattr(img, "detach"):
        img = img.detach().cpu().numpy()
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    return img


def show_image(ax, img, title: str | None = None, outline: str | None = None, fontsize: int = 8):
    """Draw a uint8 grayscale or RGB image on ``ax`` without ticks; optional coloured outline."""
    img = _to_numpy_image(img)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(outline is not None)
        if outline is not None:
            spine.set_edgecolor(outline)
            spine.set_linewidth(3)
    if title:
        ax.set_title(title, fontsize=fontsize)


def image_grid(rows: Sequence[Sequence], titles=None, row_labels=None, size: float = 1.6, outlines=None):
    """A figure with one image per cell; ``rows`` is a list of lists of images."""
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols, size * n_rows), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            if j < len(row) and row[j] is not None:
                title = titles[i][j] if titles is not None else None
                outline = outlines[i][j] if outlines is not None else None
                show_image(ax, row[j], title, outline)
            else:
                ax.axis("off")
        if row_labels is not None:
            axes[i][0].set_ylabel(row_labels[i], fontsize=9)
    fig.tight_layout()
    return fig


def overlay_attention(ax, img, attn, title: str | None = None, alpha: float = 0.5):
    """Show a grayscale image with an attention map (any grid, e.g. 7x7) upsampled on top."""
    from PIL import Image

    img = _to_numpy_image(img)
    attn = np.asarray(attn.detach().cpu() if hasattr(attn, "detach") else attn, dtype=np.float32)
    attn = (attn - attn.min()) / (attn.max() - attn.min() + 1e-8)
    h, w = img.shape[:2]
    up = np.asarray(Image.fromarray((attn * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR))
    show_image(ax, img, title)
    ax.imshow(up, cmap="jet", alpha=alpha, vmin=0, vmax=255)
