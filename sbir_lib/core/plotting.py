"""Plotting helpers; the one place figures are saved from.

Every notebook writes its figures through :func:`save_figure`, which puts a PNG and a PDF under
``config.figures_root``: the git-ignored ``runs/figures/`` by default, a series run's output folder, or the
committed ``figures/`` only with ``python -m sbir_lib.course run --inplace``. Figures 4 and 5 of the DSSA paper are rebuilt in
``notebooks/06_figures.ipynb``; image grids are used from ``00_data_and_domain_gap`` on.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from sbir_lib.core import config
from sbir_lib.core.io import atomic_path


#: metadata per format without dates or versions, so a figure saved again from the same numbers is
#: byte-identical (committed figures do not churn on re-runs)
STABLE_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None, "Creator": None},
                   "svg": {"Date": None, "Creator": None}}
#: the hash salt of SVG element ids (random per process otherwise)
SVG_HASHSALT = "sbir-course"


def save_figure(fig, name: str, root=None, formats: Sequence[str] = ("png", "pdf"), dpi: int = 120):
    """Save ``fig`` as ``<figures>/<name>.png`` and ``.pdf`` atomically; return the paths. The folder is
    ``root``, else ``$SBIR_FIGURES_ROOT`` (``python -m sbir_lib.course run`` points it at its output
    folder, or with ``--inplace`` at the committed ``figures/``), else the git-ignored ``runs/figures/``. The files carry no dates (:data:`STABLE_METADATA`): the same figure saved
    twice gives the same bytes."""
    import matplotlib

    if not name or "/" in name or "\\" in name:
        raise ValueError(f"figure name must be a plain file stem, got {name!r}")
    out = config.figures_root(root)
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        with atomic_path(path, suffix=f".{fmt}") as tmp, matplotlib.rc_context({"svg.hashsalt": SVG_HASHSALT}):
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=STABLE_METADATA.get(fmt))
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


def overlay_attention(ax, img, attn, title: str | None = None, alpha: float = 0.5, vmin: float | None = None,
                      vmax: float | None = None, cmap: str = "jet"):
    """Show a grayscale image with an attention map (any grid, e.g. 7x7) upsampled on top.

    Without ``vmin``/``vmax`` the map is stretched to its own minimum and maximum (min-max scaling: shows
    *where* it peaks, not how much). With them it is drawn on that absolute scale (clipped), so maps of
    several images compare and a colour bar (:func:`attention_colorbar`) reads off ``alpha``. Returns the
    overlay's image."""
    from PIL import Image

    img = _to_numpy_image(img)
    attn = np.asarray(attn.detach().cpu() if hasattr(attn, "detach") else attn, dtype=np.float32)
    if vmin is None and vmax is None:
        attn = (attn - attn.min()) / (attn.max() - attn.min() + 1e-8)
    else:
        lo = float(attn.min()) if vmin is None else float(vmin)
        hi = float(attn.max()) if vmax is None else float(vmax)
        attn = np.clip((attn - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    h, w = img.shape[:2]
    up = np.asarray(Image.fromarray((attn * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR))
    show_image(ax, img, title)
    return ax.imshow(up, cmap=cmap, alpha=alpha, vmin=0, vmax=255)


def attention_colorbar(fig, axes, vmin: float, vmax: float, uniform: float | None = None, label: str = "alpha",
                       uniform_label: str | None = None, cmap: str = "jet", fontsize: int = 8):
    """A colour bar beside ``axes`` for maps drawn with ``overlay_attention(..., vmin, vmax)``; ``uniform``
    (e.g. ``1/49`` for a 7x7 softmax) is marked on it by a dashed line and a tick labelled
    ``uniform_label`` (default "uniform" and the value)."""
    from matplotlib import cm, colors

    sm = cm.ScalarMappable(norm=colors.Normalize(vmin, vmax), cmap=cmap)
    cb = fig.colorbar(sm, ax=axes, fraction=0.03, pad=0.02)
    cb.set_label(label, fontsize=fontsize)
    cb.ax.tick_params(labelsize=fontsize)
    if uniform is not None and vmin <= uniform <= vmax:
        cb.ax.axhline(uniform, color="white", lw=2)
        cb.ax.axhline(uniform, color="black", lw=1, ls="--")
        ticks = [float(t) for t in cb.get_ticks() if vmin <= t <= vmax and abs(t - uniform) > 0.08 * (vmax - vmin)]
        ticks = sorted(ticks + [uniform])
        cb.set_ticks(ticks, labels=[(uniform_label or f"uniform {uniform:.3f}") if t == uniform else f"{t:g}"
                                    for t in ticks])
    return cb


# ----------------------------------------------------------------------------------------------------------
# Helpers of notebooks 00-04 (data, training curves, retrievals, attention, learned matrices)
# ----------------------------------------------------------------------------------------------------------
def ink_overlay(sketch, edge, threshold: int = 128) -> np.ndarray:
    """RGB uint8 image: the edge map's ink in grey, the sketch's ink in red on top (``00``: how far a
    sketch sits from its own edge map). Both are grayscale uint8 [H, W] (white background)."""
    s, e = _to_numpy_image(sketch), _to_numpy_image(edge)
    if s.shape != e.shape or s.ndim != 2:
        raise ValueError(f"expected two grayscale images of one size; got {s.shape} and {e.shape}")
    out = np.full(s.shape + (3,), 255, np.uint8)
    out[e < threshold] = (150, 150, 150)
    out[s < threshold] = (220, 30, 30)
    return out


def plot_history(ax, history: dict, label: str | None = None, key: str = "loss"):
    """Training curve ``history[key]`` against ``history["iteration"]`` (a record's ``history``)."""
    it, val = history.get("iteration", []), history.get(key, [])
    if len(it) != len(val):
        raise ValueError(f"history has {len(it)} iterations but {len(val)} values of {key!r}")
    ax.plot(it, val, marker="o" if len(it) < 30 else None, ms=3, label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel(key)
    if label:
        ax.legend(fontsize=8)
    return ax


def plot_acc_curves(ax, curves: dict, max_k: int | None = None, percent: bool = True):
    """acc@K against K for several runs: ``curves = {label: acc_curve}`` (``acc_curve[k-1]`` = acc@k,
    as stored in a record). ``max_k`` cuts the x axis."""
    for label, curve in curves.items():
        c = np.asarray(curve, dtype=float)[:max_k]
        ax.plot(np.arange(1, len(c) + 1), c * (100 if percent else 1), label=label)
    ax.set_xlabel("K")
    ax.set_ylabel("acc@K (%)" if percent else "acc@K")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    return ax


def retrieval_rows(queries, gallery, dists, query_idx: Sequence[int], k: int = 5, size: float = 1.3,
                   query_overlays=None):
    """One row per (query, model): the query sketch, then its ``k`` nearest gallery images.

    ``dists``: a [Q, G] distance matrix, or ``{model label: [Q, G]}`` for one row per model. Query
    ``i``'s true match is gallery item ``i``; it is outlined green where retrieved, and the query's
    title gives its rank (0 = first). ``query_overlays``: optional ``{query index: attention map}``
    drawn on the query with :func:`overlay_attention`.
    """
    import matplotlib.pyplot as plt

    if not isinstance(dists, dict):
        dists = {None: dists}
    rows = [(q, lab, np.asarray(d, dtype=np.float64)) for q in query_idx for lab, d in dists.items()]
    fig, axes = plt.subplots(len(rows), k + 1, figsize=(size * (k + 1), size * 1.15 * len(rows)),
                             squeeze=False)
    for r, (q, lab, d) in enumerate(rows):
        order = np.argsort(d[q], kind="stable")
        rank = int((d[q] < d[q, q]).sum())
        title = f"#{q}, rank {rank}"
        if query_overlays is not None and q in query_overlays:
            overlay_attention(axes[r][0], queries[q], query_overlays[q], title)
        else:
            show_image(axes[r][0], queries[q], title)
        if lab is not None:
            axes[r][0].set_ylabel(lab, fontsize=8)
        for j in range(k):
            g = int(order[j])
            show_image(axes[r][j + 1], gallery[g], f"{j + 1}", outline="limegreen" if g == q else None)
    fig.tight_layout()
    return fig


def attention_grid(images, alphas, titles=None, cols: int | None = None, size: float = 1.6,
                   alpha: float = 0.5):
    """A grid of images with their attention maps (e.g. 7x7 ``alpha``) overlaid (``02``)."""
    import matplotlib.pyplot as plt

    n = len(images)
    if len(alphas) != n:
        raise ValueError(f"{n} images but {len(alphas)} attention maps")
    cols = cols or n
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * 1.1 * rows), squeeze=False)
    for i in range(rows * cols):
        ax = axes[i // cols][i % cols]
        if i < n:
            overlay_attention(ax, images[i], alphas[i], titles[i] if titles is not None else None, alpha)
        else:
            ax.axis("off")
    fig.tight_layout()
    return fig


def matrix_heatmap(ax, matrix, title: str | None = None, symmetric: bool = True, cmap: str = "RdBu_r"):
    """Heat map of a matrix (e.g. HOLEF's learned ``W - I``, ``04``) with a colour bar; ``symmetric``
    centres the colour scale on 0."""
    m = np.asarray(matrix.detach().cpu() if hasattr(matrix, "detach") else matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"expected a matrix; got shape {m.shape}")
    kw = {}
    if symmetric:
        lim = float(np.abs(m).max()) or 1.0
        kw = dict(vmin=-lim, vmax=lim)
    im = ax.imshow(m, cmap=cmap, interpolation="nearest", **kw)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title, fontsize=9)
    return im


def plot_recipe_frontier(ax, record: dict, percent: bool = True):
    """The cpu recipe search (``results/tuning/cpu_recipe.cpu.json``, :mod:`sbir_lib.experiments.cpu_recipe`; notebook
    05): each recipe's smoothed validation acc@1 against the hours the whole grid would take at that many iterations,
    the budget as a vertical line and the chosen point circled."""
    scale = 100.0 if percent else 1.0
    for name in record["recipes"]:
        pts = [p for p in record["points"] if p["recipe"] == name]
        ax.plot([p["grid_h"] for p in pts], [scale * p["smoothed_val_acc@1"] for p in pts], marker="o", ms=3,
                label=name)
    c = record.get("chosen")
    if c:
        ax.plot([c["grid_h"]], [scale * c["smoothed_val_acc@1"]], "o", ms=12, mfc="none", mec="k",
                label=f"chosen: {c['recipe']}, {c['iterations']} it.")
    ax.axvline(record["budget_h"], color="grey", ls="--", lw=1, label=f"budget {record['budget_h']:g} h")
    ax.set_xlabel(f"hours for the whole cpu grid ({record['grid_runs']} runs, 2 CPU cores)")
    ax.set_ylabel("validation acc@1" + (" (%)" if percent else "") + ", smoothed")
    ax.legend(fontsize=7)
    return ax
