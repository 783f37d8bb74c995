"""The classical rows of DSSA's Table 1: HOG-BoW + rankSVM and Dense-HOG + rankSVM (from "Sketch Me That
Shoe", Yu et al., CVPR 2016), their profiles and one entry point, :func:`run_classical_baseline`
(sketches are the queries, edge maps the gallery; row ``i`` of each is the same instance). The features and
the rankSVM are in :mod:`sbir_lib.models.classical`; notebook 05 shows the table.

:func:`train_val_split` carves a validation split out of the training set (triplets re-indexed): the
``full`` settings below were chosen on it (25% of each training set held out, mean over 3 random splits),
never on the test set. What was compared, and what won on validation: a small ``C`` (0.003 on scaled
differences) over C=1 for both features on all three datasets; ``uniform_prior`` and ``add_true_match``;
``|diff|`` over squared differences; coarser Dense-HOG cells (128 px, 16 px cells) over 8 px cells and
256 px; for BoW 32 px patches over 16 px, L1-normalised histograms over power / L2, and a 1 + 2x2 spatial
pyramid over the plain histogram. The records under ``results/table1/`` hold the measured numbers.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Sequence

import numpy as np

from sbir_lib.core.profiles import Profile, as_profile
from sbir_lib.models.classical import HOGBoW, RankSVM, dense_hog, resize_images

METHODS = ("hog_bow_ranksvm", "dense_hog_ranksvm")

#: The settings (``classical`` of each :class:`sbir_lib.core.profiles.Profile`). ``quick`` runs in seconds on 2 CPU cores (small images, small vocabulary,
#: few triplets); ``full`` is the reproduction of the Table 1 rows.
#:
#: ``dense_hog``: ``size`` (images are downscaled to size x size), ``orientations``,
#: ``pixels_per_cell``, ``cells_per_block``, ``block_norm`` (``skimage.feature.hog`` arguments).
#: ``hog_bow``: the same HOG arguments for the local descriptors (one descriptor = one HOG block,
#: i.e. a patch of ``pixels_per_cell * cells_per_block`` pixels, stride one cell), ``vocab_size``
#: (k of k-means), ``max_descriptors`` (k-means is fit on at most this many training descriptors),
#: ``min_ink`` (a block with fewer ink pixels -- darker than ``ink_threshold`` -- is skipped),
#: ``grid`` (spatial-pyramid levels: ``(1,)`` = plain BoW, ``(1, 2)`` adds a 2x2 grid), ``norm``.
#: ``ranksvm``: ``C`` (LinearSVC), ``diff`` (``"abs"``: ``|f(s)-f(p)|``, ``"sq"``: squared),
#: ``max_pairs`` (cap on the number of training triplets), ``neg_per_query`` (random negatives per
#: query when there are no annotations; ``None`` = spread ``max_pairs`` over the queries),
#: ``add_true_match`` (also add "true match beats a random photo" triplets to annotated data),
#: ``uniform_prior`` (0 = plain rankSVM; > 0 = learn a correction to the unweighted distance, see
#: :class:`RankSVM`), ``max_iter``, ``tol``. Both profiles use the validation-chosen recipe (module
#: docstring); ``quick`` halves the image size and uses 64 words and 5,000 triplets.
#: The profile's ``classical`` key of each method's features.
_FEATURE_KEY = {"hog_bow_ranksvm": "hog_bow", "dense_hog_ranksvm": "dense_hog"}

def train_val_split(n: int, triplets: Sequence | None = None, val_fraction: float = 0.25,
                    seed: int = 0) -> dict[str, Any]:
    """Carve a validation split out of a *training* set (never tune on the test set).

    Returns ``dict(train_idx, val_idx, train_triplets)``: index arrays into the training arrays
    (sketch i and edge i stay together) and, when ``triplets`` is given, the annotations of the
    kept queries restricted to pairs whose two photos are both kept, re-indexed into the
    sub-gallery (``None`` otherwise).
    """
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_val = max(1, int(round(n * val_fraction)))
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    new_tr = None
    if triplets is not None:
        remap = -np.ones(n, dtype=np.int64)
        remap[train_idx] = np.arange(len(train_idx))
        new_tr = []
        for q in train_idx:
            pr = np.asarray(triplets[q] if triplets[q] is not None else [], dtype=np.int64).reshape(-1, 2)
            pr = remap[pr]
            new_tr.append([tuple(p) for p in pr[(pr >= 0).all(axis=1)].tolist()])
    return dict(train_idx=train_idx, val_idx=val_idx, train_triplets=new_tr)

def _merge(base: dict, over: dict | None) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out

def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    return method

def resolve_config(method: str, profile: "str | Profile" = "quick", overrides: dict | None = None) -> dict:
    """``{"features": {...}, "ranksvm": {...}}`` for ``method`` under ``profile`` plus ``overrides``.

    ``overrides`` may hold ``"features"`` and/or ``"ranksvm"`` dicts (partial; merged on top).
    """
    _check_method(method)
    p = as_profile(profile).classical
    base = {"features": p[_FEATURE_KEY[method]], "ranksvm": p["ranksvm"]}
    unknown = set(overrides or {}) - set(base)
    if unknown:
        raise ValueError(f"overrides may only hold 'features' and 'ranksvm'; got {sorted(unknown)}")
    return _merge(base, overrides)

def extract_features(method: str, cfg_features: dict, train_sketches, train_edges, *others,
                     seed: int = 0, n_jobs: int = 1) -> tuple[list[np.ndarray], dict]:
    """Features of the training sketches / edges and of any further image batches ``others``."""
    _check_method(method)
    batches = [train_sketches, train_edges, *others]
    info: dict[str, Any] = {}
    if method == "dense_hog_ranksvm":
        feats = [dense_hog(b, **cfg_features, n_jobs=n_jobs) for b in batches]
    else:
        bow = HOGBoW(**cfg_features, seed=seed, n_jobs=n_jobs)
        train_all = np.concatenate([resize_images(train_sketches, bow.size),
                                    resize_images(train_edges, bow.size)])
        bow.fit(train_all)
        feats = [bow.transform(resize_images(b, bow.size)) for b in batches]
        info["kmeans_inertia"] = float(bow.kmeans_.inertia_)
    info["feature_dim"] = int(feats[0].shape[1])
    return feats, info

def run_classical_baseline(method: str, train_sketches, train_edges, test_sketches, test_edges,
                           train_triplets=None, seed: int = 0, profile: str = "quick",
                           overrides: dict | None = None, n_jobs: int = 1) -> dict[str, Any]:
    """Train a classical baseline on the training split and score the test split.

    ``method``: ``"hog_bow_ranksvm"`` or ``"dense_hog_ranksvm"``. Images: numpy or torch
    [N, H, W] (uint8, white background); row i of sketches and edges is the same instance.
    ``train_triplets``: per training query, a list of ``(more_similar, less_similar)`` edge indices
    (shoes, chairs) or ``None`` (handbags: true match vs random negatives).

    Returns ``dict(dist=float32 [Q, G] (test sketches x test edges, lower = closer),
    config=dict, wall_time_s=float)``.
    """
    _check_method(method)
    t0 = time.perf_counter()
    cfg = resolve_config(method, profile, overrides)
    (f_trs, f_tre, f_tes, f_tee), info = extract_features(
        method, cfg["features"], train_sketches, train_edges, test_sketches, test_edges,
        seed=seed, n_jobs=n_jobs)
    t_feat = time.perf_counter() - t0
    svm = RankSVM(**cfg["ranksvm"], seed=seed).fit(f_trs, f_tre, train_triplets)
    t_svm = time.perf_counter() - t0 - t_feat
    dist = svm.distance(f_tes, f_tee)
    wall = time.perf_counter() - t0
    config = dict(method=method, profile=profile, seed=seed, features=cfg["features"],
                  ranksvm=cfg["ranksvm"], n_train_triplets=svm.n_pairs_,
                  triplet_source="annotation" if train_triplets is not None else "true_match_vs_random",
                  svm_converged=svm.converged_, svm_train_acc=svm.train_acc_,
                  feature_time_s=t_feat, svm_time_s=t_svm, **info)
    return dict(dist=dist.astype(np.float32), config=config, wall_time_s=float(wall))
