"""The sketch vs edge-map domain gap, and what the human triplet annotations of QMUL say.

Taught in: ``notebooks/00_data_and_domain_gap.ipynb``.

Fine-grained SBIR matches a free-hand *sketch* against the *edge map* of a photo (the DSSA network's
photo branch sees edge maps, not RGB photos; Song et al., ICCV 2017, Figure 1: "misalignment of the
domains"). Both are dark strokes on white, yet they differ in ways a pixel-level comparison cannot
forgive. This module measures that gap with simple, interpretable statistics:

- **Stroke statistics** (:func:`stroke_statistics`): per image, the ink density (fraction of pixels
  darker than :data:`INK_THRESHOLD`), the number of 8-connected ink components (a sketch is a few
  long strokes; an edge detector leaves many short fragments), the ink centroid and the extent of
  the ink's bounding box. :func:`domain_summary` gives medians per domain.
- **Misalignment of true pairs** (:func:`pair_offsets`): the distance between the ink centroids of a
  sketch and its own edge map, and the ratio of their bounding-box diagonals (drawn size).
- **Does the true match stand out?** Two distances between every sketch and every edge map of a split:
  the Dense-HOG distance (:func:`hog_distance_matrix`, reusing :func:`sbir_lib.models.classical.dense_hog`)
  and the symmetric chamfer distance (:func:`chamfer_matrix`: mean pixel distance from each ink pixel
  of one image to the nearest ink pixel of the other). :func:`true_vs_random` compares the distance of
  each sketch to its true edge map with its distance to the other edge maps, and gives the acc@1 /
  acc@10 of ranking by it (a training-free retrieval baseline). Without a domain gap the true match
  would be at distance ~0 and always ranked first.

The annotations (:func:`annotation_statistics`, :func:`annotation_preferences`): for each query sketch
``i`` of QMUL shoes and chairs, ``split.triplets[i]`` lists ``(more_similar, less_similar)`` photo pairs
judged by people. They encode perceived similarity, not identity: how often the "more similar" photo is the
query's true match is measured by ``more_is_true_match``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from sbir_lib.metrics import retrieval as M
from sbir_lib.models.classical import dense_hog

__all__ = [
    "INK_THRESHOLD",
    "ink_masks",
    "stroke_statistics",
    "domain_summary",
    "pair_offsets",
    "hog_distance_matrix",
    "chamfer_matrix",
    "true_vs_random",
    "annotation_statistics",
    "annotation_preferences",
]

#: A pixel is ink when darker than this (uint8; white background = 255). The faint light-grey frame along
#: the border of QMUL shoe/chair edge maps is lighter than this, so it does not count as ink.
INK_THRESHOLD = 128


def _as_uint8(images: Any) -> np.ndarray:
    """[N, H, W] uint8 numpy from a torch tensor / numpy array ([H, W] becomes [1, H, W])."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    arr = np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected grayscale images [N, H, W]; got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (0..255); got dtype {arr.dtype}")
    return arr


def ink_masks(images: Any, threshold: int = INK_THRESHOLD) -> np.ndarray:
    """Boolean ink masks [N, H, W]: pixels darker than ``threshold``."""
    return _as_uint8(images) < threshold


def stroke_statistics(images: Any, threshold: int = INK_THRESHOLD):
    """One row per image (pandas DataFrame) with

    ``ink`` (fraction of ink pixels), ``components`` (8-connected ink components,
    ``skimage.measure.label``), ``px_per_component`` (ink pixels per component), ``cy``/``cx`` (ink
    centroid as a fraction of height/width; NaN without ink), ``height``/``width`` (ink bounding-box
    extent as a fraction of the image; 0 without ink).
    """
    import pandas as pd
    from skimage.measure import label

    masks = ink_masks(images, threshold)
    n, h, w = masks.shape
    rows = []
    ys, xs = np.arange(h), np.arange(w)
    for m in masks:
        npx = int(m.sum())
        comps = int(label(m, connectivity=2).max()) if npx else 0
        if npx:
            ry, rx = m.any(1), m.any(0)
            y0, y1 = ys[ry][[0, -1]]
            x0, x1 = xs[rx][[0, -1]]
            cy, cx = np.nonzero(m)
            rows.append(dict(ink=npx / (h * w), components=comps, px_per_component=npx / comps,
                             cy=cy.mean() / h, cx=cx.mean() / w,
                             height=(y1 - y0 + 1) / h, width=(x1 - x0 + 1) / w))
        else:
            rows.append(dict(ink=0.0, components=0, px_per_component=0.0, cy=np.nan, cx=np.nan,
                             height=0.0, width=0.0))
    return pd.DataFrame(rows)


def domain_summary(splits: Mapping[str, Any], threshold: int = INK_THRESHOLD):
    """Median stroke statistics per dataset and domain (``sketch`` / ``edge map``).

    ``splits``: ``{dataset name: QMULSplit}`` (anything with ``.sketches`` and ``.edges``).
    Returns a DataFrame indexed by (dataset, domain) with the columns of :func:`stroke_statistics`.
    """
    import pandas as pd

    cols = ["ink", "components", "px_per_component", "height", "width"]
    parts = {}
    for name, split in splits.items():
        for domain, imgs in (("sketch", split.sketches), ("edge map", split.edges)):
            parts[(name, domain)] = stroke_statistics(imgs, threshold)[cols].median()
    df = pd.DataFrame(parts).T
    df.index.names = ["dataset", "domain"]
    return df


def pair_offsets(sketches: Any, edges: Any, threshold: int = INK_THRESHOLD):
    """How far a sketch sits from its own edge map (row ``i`` of each is the same instance).

    DataFrame, one row per pair: ``centroid_offset_px`` (distance between the ink centroids, in
    pixels of the input size), ``size_ratio`` (ink bounding-box diagonal of the sketch / of the edge
    map: > 1 means drawn larger).
    """
    import pandas as pd

    s, e = _as_uint8(sketches), _as_uint8(edges)
    if s.shape != e.shape:
        raise ValueError(f"sketches {s.shape} and edges {e.shape} must pair up row by row")
    h, w = s.shape[1:]
    ss, es = stroke_statistics(s, threshold), stroke_statistics(e, threshold)
    off = np.hypot((ss.cy - es.cy) * h, (ss.cx - es.cx) * w)
    diag = lambda st: np.hypot(st.height * h, st.width * w)  # noqa: E731
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = diag(ss) / diag(es)
    return pd.DataFrame({"centroid_offset_px": off, "size_ratio": ratio})


def hog_distance_matrix(sketches: Any, edges: Any, size: int = 128, pixels_per_cell: int = 16) -> np.ndarray:
    """[Q, G] squared Euclidean distances between the L2-normalised Dense-HOG vectors of every sketch
    and every edge map (:func:`sbir_lib.models.classical.dense_hog`; defaults: 128 px, 16 px cells, 1764-d).
    Values lie in [0, 4]."""
    fq = dense_hog(sketches, size=size, pixels_per_cell=pixels_per_cell).astype(np.float64)
    fg = dense_hog(edges, size=size, pixels_per_cell=pixels_per_cell).astype(np.float64)
    d = (fq ** 2).sum(1)[:, None] + (fg ** 2).sum(1)[None, :] - 2.0 * fq @ fg.T
    return np.maximum(d, 0.0)


def chamfer_matrix(a: Any, b: Any, threshold: int = INK_THRESHOLD) -> np.ndarray:
    """[Na, Nb] symmetric chamfer distances in pixels between the ink of every image of ``a`` and
    every image of ``b``.

    ``chamfer(x, y) = (mean over ink pixels p of x of dist(p, ink of y) + mean over ink of y of
    dist(., ink of x)) / 2``, with exact Euclidean distance transforms
    (``scipy.ndimage.distance_transform_edt``). 0 for identical ink; a stroke shifted by ``k`` pixels
    gives ~``k``. An image without ink gets ``inf``.
    """
    from scipy.ndimage import distance_transform_edt

    ma, mb = ink_masks(a, threshold), ink_masks(b, threshold)
    if ma.shape[1:] != mb.shape[1:]:
        raise ValueError(f"image sizes differ: {ma.shape[1:]} vs {mb.shape[1:]}")

    def dts(masks):
        out = np.empty(masks.shape, np.float32)
        for i, m in enumerate(masks):
            out[i] = distance_transform_edt(~m) if m.any() else np.inf
        return out

    dta, dtb = dts(ma), dts(mb)
    out = np.zeros((len(ma), len(mb)), np.float64)
    for i, m in enumerate(ma):  # a's ink against b's distance transforms
        ys, xs = np.nonzero(m)
        out[i] += dtb[:, ys, xs].mean(1, dtype=np.float64) if len(ys) else np.inf
    for j, m in enumerate(mb):  # b's ink against a's distance transforms
        ys, xs = np.nonzero(m)
        out[:, j] += dta[:, ys, xs].mean(1, dtype=np.float64) if len(ys) else np.inf
    return out / 2.0


def true_vs_random(dist: Any) -> dict:
    """Does the true match stand out under a distance? ``dist`` is [Q, G] with query ``i``'s true
    match at gallery ``i``.

    Returns ``d_true`` (mean distance to the true match), ``d_other`` (mean distance to the other
    gallery items), ``ratio`` (``d_true / d_other``: 0 = no domain gap, 1 = the true match looks like
    any other item), ``closer_than_median`` (fraction of queries whose true match is closer than the
    median of their other items) and ``acc@1`` / ``acc@10`` of ranking by ``dist``
    (:func:`sbir_lib.metrics.retrieval.acc_at_k`).
    """
    d = np.asarray(dist, dtype=np.float64)
    q, g = d.shape
    if q > g:
        raise ValueError(f"need Q <= G (query i's true match is gallery item i); got {d.shape}")
    true = d[np.arange(q), np.arange(q)]
    other = np.ones_like(d, dtype=bool)
    other[np.arange(q), np.arange(q)] = False
    others = d[other].reshape(q, g - 1)
    return {
        "d_true": float(true.mean()),
        "d_other": float(others.mean()),
        "ratio": float(true.mean() / others.mean()),
        "closer_than_median": float((true < np.median(others, axis=1)).mean()),
        "acc@1": M.acc_at_k(d, 1),
        "acc@10": M.acc_at_k(d, min(10, g)),
    }


def annotation_statistics(split) -> dict | None:
    """What the human triplet annotation of a split says (``None`` without annotation, e.g. handbags).

    ``queries``; ``pairs`` (all ``(more_similar, less_similar)`` pairs); ``pairs_per_query``;
    ``photos_per_query`` (mean number of distinct photos named in a query's pairs);
    ``more_is_true_match`` (fraction of pairs whose "more similar" photo is the query's true match);
    ``less_is_true_match`` (fraction where the true match was judged *less* similar);
    ``queries_with_true_match`` (fraction of queries whose true match appears in any pair).
    """
    trip = getattr(split, "triplets", None)
    if trip is None:
        return None
    n_pairs = more_true = less_true = has_true = 0
    photos = []
    for q, pairs in enumerate(trip):
        arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        n_pairs += len(arr)
        more_true += int((arr[:, 0] == q).sum())
        less_true += int((arr[:, 1] == q).sum())
        has_true += int((arr == q).any())
        photos.append(len(np.unique(arr)))
    nq = len(trip)
    return {
        "queries": nq,
        "pairs": n_pairs,
        "pairs_per_query": n_pairs / nq if nq else float("nan"),
        "photos_per_query": float(np.mean(photos)) if photos else float("nan"),
        "more_is_true_match": more_true / n_pairs if n_pairs else float("nan"),
        "less_is_true_match": less_true / n_pairs if n_pairs else float("nan"),
        "queries_with_true_match": has_true / nq if nq else float("nan"),
    }


def annotation_preferences(split, query: int):
    """The photos named in query ``query``'s annotated pairs, most preferred first (DataFrame).

    Columns ``photo`` (index in the split), ``wins`` (pairs where it is "more similar"), ``losses``
    (pairs where it is "less similar"), ``true_match`` (whether it is the query's own photo).
    Sorted by ``wins - losses`` (descending), then photo index.
    """
    import pandas as pd

    trip = getattr(split, "triplets", None)
    if trip is None:
        raise ValueError("this split has no triplet annotation (e.g. handbags)")
    if not 0 <= query < len(trip):
        raise ValueError(f"query must be in 0..{len(trip) - 1}; got {query}")
    arr = np.asarray(trip[query], dtype=np.int64).reshape(-1, 2)
    photos = np.unique(arr)
    wins = np.array([(arr[:, 0] == p).sum() for p in photos], dtype=np.int64)
    losses = np.array([(arr[:, 1] == p).sum() for p in photos], dtype=np.int64)
    df = pd.DataFrame({"photo": photos, "wins": wins, "losses": losses, "true_match": photos == query})
    df["_score"] = df.wins - df.losses
    df = df.sort_values(["_score", "photo"], ascending=[False, True], kind="stable")
    return df.drop(columns="_score").reset_index(drop=True)
