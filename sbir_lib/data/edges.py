"""Photo -> QMUL-like edge map: the extractor behind the offline Sketch-a-Net pretraining.

Taught in: ``notebooks/01_triplet_loss.ipynb`` (section on pretraining: what the photo branch of a
pretrained Sketch-a-Net has seen) and used by :mod:`sbir_lib.training.pretrain`, which turns the Sketchy-mini
photos into edge maps so that a sketch and the edge map of a photo of the same category form a
classification (and a category-level triplet) training set.

Why edge maps: Triplet SN and DSSA (Song et al., ICCV 2017) never feed RGB photos to the network; the
photo branch sees the photo's *edge map* (QMUL-V1 ships them as ``<ds>_edge_db_<split>.mat``), and the
authors pretrain Sketch-a-Net on edge maps of ImageNet photos. We cannot obtain their edge detector's
output for new photos offline, so we make our own and tune it against the QMUL ones.

The extractor (every step is scikit-image / SciPy; the settings are :class:`EdgeSettings`)
-------------------------------------------------------------------------------------------------
1. grayscale (``skimage.color.rgb2gray``);
2. Canny (``skimage.feature.canny``) with Gaussian ``sigma`` and hysteresis thresholds given as
   *quantiles* of the gradient magnitude (``use_quantiles=True``), so every photo gets a similar amount
   of ink whatever its contrast -- QMUL edge maps have roughly constant ink too;
3. thinning to one-pixel curves (``skimage.morphology.thin``);
4. cleanup: connected curves (8-connectivity) shorter than ``min_length`` pixels are removed
   (texture speckle);
5. rendering like the QMUL maps: the binary curves are blurred with a Gaussian of ``blur`` pixels and
   scaled by ``gain`` (ink per pixel of curve), then drawn dark on white: ``255 * (1 - clip(ink, 0, 1))``.
   QMUL strokes are one-pixel lines with anti-aliased flanks, not the hard binary pixels Canny gives.

Output: uint8 ``(256, 256)``, white (255) background, dark strokes -- the format of the QMUL
``*_edge_db_*.mat`` arrays (:func:`sbir_lib.data.datasets.load_qmul`).

How the defaults were chosen (``python -m sbir_lib.data.edges`` measures the agreement and can save the
comparison figure ``figures/edges_compare.png``, :func:`compare_figure`)
----------------------------------------------------------------------------------------------------
Geometry (steps 2-4): a grid search over ``sigma``, the high quantile, the low/high ratio and ``min_length``,
scored by the edge F-measure (2-pixel tolerance, :func:`edge_fscore`) of our curves against the skeleton of
the QMUL edge map of the *same* photo, on QMUL **training** photos only (never a test image).
Appearance (step 5): ``blur`` and ``gain`` chosen so that stroke-pixel fraction, stroke width and
centre grey level (:func:`summarize_stats`) match the QMUL training edge maps
(:data:`QMUL_REFERENCE_STATS`). :func:`qmul_agreement` reports both, QMUL map vs ours, per dataset.

Known differences: the QMUL maps have a faint grey frame along the image border (a detector artefact) which
we do not draw, and their strokes are broken into many more pieces (ours are long connected curves). On
cluttered natural photos (Sketchy, from ImageNet) Canny also traces background and object-internal
texture: the quantile thresholds keep the amount of ink at the QMUL level, but the curves are less
object-centric than on product photos with white backgrounds.
"""
from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sbir_lib.core.plotting import save_figure, show_image
from sbir_lib.data import datasets as D

__all__ = ["EdgeSettings", "DEFAULT_SETTINGS", "QMUL_REFERENCE_STATS", "edge_curves", "render_curves",
           "photo_to_edges", "photos_to_edges", "edge_stats", "summarize_stats", "edge_fscore",
           "compare_figure", "qmul_agreement"]


@dataclass(frozen=True)
class EdgeSettings:
    """The extractor's knobs (see the module docstring for how each default was chosen)."""

    sigma: float = 2.0  # Canny Gaussian (pixels, on the 256x256 photo)
    low_quantile: float = 0.79  # hysteresis thresholds as quantiles of the gradient magnitude
    high_quantile: float = 0.93
    min_length: int = 20  # curves (8-connected components) with fewer pixels are removed
    blur: float = 0.8  # Gaussian (pixels) that turns one-pixel curves into anti-aliased strokes
    gain: float = 1.2  # ink per curve pixel (1.0 = the blurred curve holds one black pixel per pixel)

    def validate(self) -> "EdgeSettings":
        problems = []
        if not self.sigma > 0:
            problems.append(f"sigma must be > 0, got {self.sigma}")
        if not 0.0 <= self.low_quantile <= self.high_quantile <= 1.0:
            problems.append(f"need 0 <= low_quantile <= high_quantile <= 1, got {self.low_quantile}, "
                            f"{self.high_quantile}")
        if self.min_length < 0:
            problems.append(f"min_length must be >= 0, got {self.min_length}")
        if self.blur < 0:
            problems.append(f"blur must be >= 0, got {self.blur}")
        if not self.gain > 0:
            problems.append(f"gain must be > 0, got {self.gain}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"extractor": "skimage canny(use_quantiles) + thin + "
                                                        "remove short curves + gaussian render"}


DEFAULT_SETTINGS = EdgeSettings()

#: Medians over 100 QMUL-V1 *training* edge maps per dataset (3-pixel frame excluded), by
#: :func:`summarize_stats`: stroke-pixel fraction (< 200), stroke width (ink mass / skeleton length),
#: grey level at the stroke centre, skeleton length (pixels).
QMUL_REFERENCE_STATS = {
    "shoes": {"stroke_fraction": 0.040, "stroke_width": 1.20, "centre_grey": 114.5, "length": 1142},
    "chairs": {"stroke_fraction": 0.054, "stroke_width": 1.15, "centre_grey": 120.0, "length": 1626},
}


def _gray(photo: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2gray

    photo = np.asarray(photo)
    if photo.ndim == 3 and photo.shape[-1] == 3:
        return rgb2gray(photo)
    if photo.ndim == 2:
        return photo.astype(np.float64) / (255.0 if photo.dtype == np.uint8 else 1.0)
    raise ValueError(f"expected an (H, W, 3) RGB or (H, W) grey photo, got shape {photo.shape}")


def edge_curves(photo: np.ndarray, settings: EdgeSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """Steps 1-4: the cleaned one-pixel edge curves of ``photo`` as a bool ``(H, W)`` mask."""
    from skimage.feature import canny
    from skimage.measure import label
    from skimage.morphology import thin

    g = _gray(photo)
    e = canny(g, sigma=settings.sigma, low_threshold=settings.low_quantile,
              high_threshold=settings.high_quantile, use_quantiles=True)
    e = thin(e)
    if settings.min_length > 1 and e.any():
        lab = label(e, connectivity=2)
        keep = np.bincount(lab.ravel()) >= settings.min_length
        keep[0] = False
        e = keep[lab]
    return e


def render_curves(curves: np.ndarray, settings: EdgeSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """Step 5: bool curves -> uint8 QMUL-style map (white background, anti-aliased dark strokes)."""
    from scipy.ndimage import gaussian_filter

    ink = curves.astype(np.float32)
    if settings.blur > 0:
        ink = gaussian_filter(ink, settings.blur, mode="constant", truncate=3.0)
    ink = np.clip(ink * settings.gain, 0.0, 1.0)
    return np.rint(255.0 * (1.0 - ink)).astype(np.uint8)


def photo_to_edges(photo: np.ndarray, settings: EdgeSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """One photo (uint8 ``(H, W, 3)`` RGB or ``(H, W)`` grey) -> uint8 ``(H, W)`` edge map."""
    return render_curves(edge_curves(photo, settings), settings)


def photos_to_edges(photos, settings: EdgeSettings = DEFAULT_SETTINGS, workers: int | None = None,
                    progress: bool = False) -> np.ndarray:
    """Edge maps of a stack of photos (``[N, H, W, 3]`` uint8 array or tensor) -> uint8 ``[N, H, W]``.

    Runs in a thread pool (``workers``, default: the number of CPU cores; the SciPy/scikit-image
    filters release the GIL for most of their time)."""
    import os

    settings.validate()
    if hasattr(photos, "numpy"):
        photos = photos.detach().cpu().numpy()
    photos = np.asarray(photos)
    if photos.ndim not in (3, 4):
        raise ValueError(f"expected [N, H, W, 3] or [N, H, W] photos, got shape {photos.shape}")
    out = np.empty(photos.shape[:3], np.uint8)
    workers = workers or max(1, min(8, os.cpu_count() or 1))

    def work(i: int) -> None:
        out[i] = photo_to_edges(photos[i], settings)

    it = range(len(photos))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(work, it)
        if progress:
            from sbir_lib.core.progress import progress_bar

            results = progress_bar(results, total=len(photos), desc="edge maps", leave=False)
        for _ in results:
            pass
    return out


# ----------------------------------------------------------------------------------------------------------
# Statistics used for tuning (ours vs QMUL)
# ----------------------------------------------------------------------------------------------------------
def edge_stats(edge_map: np.ndarray, frame: int = 3, threshold: int = 200) -> dict:
    """Simple appearance statistics of one uint8 edge map (white background), ``frame`` border pixels
    excluded: ``stroke_fraction`` (pixels darker than ``threshold``), ``stroke_width`` (ink mass, in
    pixels of full black, per skeleton pixel of the stroke mask), ``centre_grey`` (median grey level on
    that skeleton), ``length`` (skeleton pixels), ``components`` (8-connected stroke pieces) and
    ``mean`` (mean grey level)."""
    from skimage.measure import label
    from skimage.morphology import skeletonize

    x = np.asarray(edge_map)
    if x.ndim != 2:
        raise ValueError(f"expected one (H, W) edge map, got shape {x.shape}")
    if frame:
        x = x[frame:-frame, frame:-frame]
    x = x.astype(np.float32)
    mask = x < threshold
    skel = skeletonize(mask)
    length = int(skel.sum())
    ink = (255.0 - x) / 255.0
    return {
        "stroke_fraction": float(mask.mean()),
        "stroke_width": float(ink.sum() / max(length, 1)),
        "centre_grey": float(np.median(x[skel])) if length else 255.0,
        "length": length,
        "components": int(label(mask, connectivity=2).max()),
        "mean": float(x.mean()),
    }


def summarize_stats(edge_maps: Sequence[np.ndarray] | np.ndarray, **kw) -> dict:
    """Median of each :func:`edge_stats` value over a set of edge maps."""
    rows = [edge_stats(np.asarray(e), **kw) for e in edge_maps]
    if not rows:
        raise ValueError("no edge maps")
    return {k: float(np.median([r[k] for r in rows])) for k in rows[0]}


def edge_fscore(curves: np.ndarray, reference_map: np.ndarray, tol: float = 2.0, frame: int = 3,
                threshold: int = 200) -> tuple[float, float, float]:
    """(precision, recall, F) of bool ``curves`` against the skeleton of a uint8 reference edge map
    (strokes darker than ``threshold``), matching pixels within ``tol`` pixels (distance transforms;
    the usual boundary-benchmark tolerance matching, without one-to-one assignment)."""
    from scipy.ndimage import distance_transform_edt
    from skimage.morphology import skeletonize

    ref = skeletonize(np.asarray(reference_map) < threshold)
    pred = np.asarray(curves, bool).copy()
    if frame:
        for a in (ref, pred):
            a[:frame] = a[-frame:] = False
            a[:, :frame] = a[:, -frame:] = False
    if not pred.any() or not ref.any():
        return 0.0, 0.0, 0.0
    p = float((distance_transform_edt(~ref)[pred] <= tol).mean())
    r = float((distance_transform_edt(~pred)[ref] <= tol).mean())
    return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)


def qmul_agreement(names: Sequence[str] = ("shoes", "chairs"), n: int = 30, settings: EdgeSettings = DEFAULT_SETTINGS,
                   root=None) -> "list[dict]":
    """Per dataset: our extractor on ``n`` evenly spaced QMUL **training** photos vs the QMUL edge maps
    of those photos -- mean edge precision/recall/F (:func:`edge_fscore`) and the median appearance
    statistics (:func:`summarize_stats`) of both. Needs the real QMUL data with RGB photos."""
    rows = []
    for name in names:
        ds = D.load_qmul(name, root=root, photos=True)
        tr = ds.train
        if tr.photos is None:
            raise ValueError(f"QMUL {name} has no RGB photos; use one of {', '.join(D.QMUL_WITH_PHOTOS)}")
        idx = np.linspace(0, len(tr) - 1, min(n, len(tr))).round().astype(int)
        photos = tr.photos[idx].numpy()
        refs = tr.edges[idx].numpy()
        curves = [edge_curves(p, settings) for p in photos]
        f = np.array([edge_fscore(c, r) for c, r in zip(curves, refs)]).mean(0)
        ours = summarize_stats([render_curves(c, settings) for c in curves])
        theirs = summarize_stats(refs)
        rows.append({"dataset": name, "photos": len(idx), "precision": float(f[0]), "recall": float(f[1]),
                     "F": float(f[2])} | {f"qmul_{k}": v for k, v in theirs.items()}
                    | {f"ours_{k}": v for k, v in ours.items()})
    return rows


# ----------------------------------------------------------------------------------------------------------
# Figure: QMUL photo | QMUL edge map | ours, plus Sketchy-mini photos with our edge maps
# ----------------------------------------------------------------------------------------------------------
def compare_figure(qmul: Sequence[str] = ("shoes", "chairs"), n_qmul: int = 2, n_sketchy: int = 6,
                   settings: EdgeSettings = DEFAULT_SETTINGS, root=None, seed: int = 0):
    """A matplotlib figure. QMUL rows: **training** photos | the QMUL edge map | our extractor on the same
    photo (``n_qmul`` evenly spaced photos per dataset in ``qmul``; two triples per row). Sketchy rows:
    ``n_sketchy`` Sketchy-mini photos (random, by ``seed``) | our edge map (three pairs per row).
    Absent datasets are skipped with a note in the title; at least one must be present."""
    import matplotlib.pyplot as plt


    triples, notes = [], []
    for name in qmul:
        if name not in D.QMUL_WITH_PHOTOS:
            raise ValueError(f"QMUL {name!r} has no RGB photos; allowed: {', '.join(D.QMUL_WITH_PHOTOS)}")
        try:
            ds = D.load_qmul(name, root=root, photos=True)
        except D.DatasetMissingError:
            notes.append(f"QMUL {name} not downloaded")
            continue
        idx = np.linspace(0, len(ds.train) - 1, n_qmul + 2).round().astype(int)[1:-1]
        for i in idx:
            ph = ds.train.photos[i].numpy()
            triples.append([(ph, f"QMUL {name} train #{ds.train.names[i]}"),
                            (ds.train.edges[i].numpy(), "QMUL edge map"),
                            (photo_to_edges(ph, settings), "ours (same photo)")])
    pairs = []
    if n_sketchy:
        try:
            sk = D.load_sketchy_mini(root=root)
        except D.DatasetMissingError:
            notes.append("Sketchy-mini not downloaded")
        else:
            rng = np.random.default_rng(seed)
            for j in rng.choice(len(sk.photos), n_sketchy, replace=False):
                ph = sk.photos[j].numpy()
                pairs.append([(ph, f"Sketchy-mini: {sk.categories[int(sk.photo_labels[j])]}"),
                              (photo_to_edges(ph, settings), "ours")])
    if not triples and not pairs:
        raise D.DatasetMissingError("compare_figure needs QMUL shoes/chairs or Sketchy-mini; " + "; ".join(notes))
    rows = [sum(triples[i:i + 2], []) for i in range(0, len(triples), 2)]
    rows += [sum(pairs[i:i + 3], []) for i in range(0, len(pairs), 3)]
    fig, axes = plt.subplots(len(rows), 6, figsize=(13, 2.35 * len(rows)), squeeze=False)
    for r, panels in enumerate(rows):
        for c in range(6):
            if c < len(panels):
                show_image(axes[r, c], panels[c][0], panels[c][1], fontsize=7)
            else:
                axes[r, c].axis("off")
    sup = "Photo -> edge map: QMUL-V1's edge maps vs our extractor (sbir_lib.data.edges, default settings)"
    if notes:
        sup += " (" + "; ".join(notes) + ")"
    fig.suptitle(sup, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def _main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m sbir_lib.data.edges",
                                description="Measure the edge extractor against QMUL training edge maps; "
                                            "optionally save the comparison figure.")
    p.add_argument("--n", type=int, default=30, help="QMUL training photos per dataset (default 30)")
    p.add_argument("--figure", action="store_true", help="save edges_compare.{png,pdf} under $SBIR_FIGURES_ROOT (default the git-ignored runs/figures)")
    p.add_argument("--root", default=None, help="data root (default: $SBIR_DATA_ROOT or <repo>/data)")
    a = p.parse_args(argv)
    import pandas as pd

    rows = qmul_agreement(n=a.n, root=a.root)
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(pd.DataFrame(rows).set_index("dataset").T.round(3).to_string())
    if a.figure:
        print("saved", *save_figure(compare_figure(root=a.root), "edges_compare"))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
