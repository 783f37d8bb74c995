"""Classical (pre-deep) fine-grained SBIR baselines: HOG-BoW + rankSVM and Dense-HOG + rankSVM.

The rows of DSSA's Table 1 (Song et al., ICCV 2017), taken from "Sketch Me That Shoe" (Yu et al., CVPR 2016).

Taught in: ``notebooks/05_reproducing_the_tables.ipynb``.

The recipe (every knob is in ``classical`` of :mod:`sbir_lib.core.profiles` and can be overridden):

- **Dense-HOG** (:func:`dense_hog`): each image is downscaled (block mean when the size divides,
  else anti-aliased resize) and one HOG (``skimage.feature.hog``) is computed over the whole image on
  a fixed cell grid; the concatenated block descriptors form one L2-normalised vector per image.
- **HOG-BoW** (:class:`HOGBoW`): the HOG *blocks* of a dense grid (``hog(..., feature_vector=False)``)
  are the local descriptors; blocks whose pixels hold (almost) no ink are skipped (the white
  background of sketches and edge maps carries nothing); a k-means vocabulary
  (``MiniBatchKMeans``) is fit on descriptors of the *training* sketches and edge maps; an image is
  the histogram of hard word assignments (optionally per cell of a spatial grid), then normalised
  (``"l1"``, ``"l2"``, ``"power"`` = square root then L2, or ``"none"``).
- **rankSVM** (:class:`RankSVM`): a (sketch, photo) pair is described by
  ``phi(s, p) = -|f(s) - f(p)|`` (or ``-(f(s) - f(p))**2``) and the score is ``w . phi(s, p)``.
  Each training triplet (s, p+, p-) asks for ``w . phi(s, p+) > w . phi(s, p-)``: a linear SVM with no
  intercept on ``x = phi(s, p+) - phi(s, p-)``. The textbook "``x`` labelled +1 and ``-x`` labelled
  -1" is implemented by flipping the sign of a random half of the ``x`` (with their labels): with no
  intercept, ``(x, +1)`` and ``(-x, -1)`` have the same hinge loss, so this is the same objective
  (each constraint counted once) at half the memory. The ``x`` are divided by their mean L2 norm so
  that ``C`` means the same for every feature. Triplets come from the human relative annotations
  ``(more_similar, less_similar)`` where a dataset has them (shoes, chairs; with ``add_true_match``
  also "true match beats a random photo" triplets); otherwise (handbags) the true match is the
  positive and random other photos (seeded) the negatives. The number of triplets is capped
  (``max_pairs``) for speed. ``uniform_prior > 0`` adds one feature column, the *unweighted*
  distance difference ``sum_d x_d`` (scaled up), so that the uniform weight vector is cheap under
  the L2 penalty: the SVM learns a correction to the plain L1 distance instead of a weight vector
  from nothing.
- The retrieval distance of a test sketch to a gallery photo is ``-w . phi(s, g) = w . |f(s) - f(g)|``
  (lower = more similar), computed in query chunks with broadcasting (no Python loop over Q*G).

The experiment around them (profiles, the validation split that chose the ``full`` settings, the entry
point :func:`sbir_lib.experiments.classical.run_classical_baseline`) is :mod:`sbir_lib.experiments.classical`.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

def as_image_array(images: Any) -> np.ndarray:
    """Numpy float32 [N, H, W] in [0, 1] (white = 1) from uint8/float numpy or torch [N,H,W] / [N,C,H,W].

    uint8 input is divided by 255; float input is taken as already in [0, 1] (values > 1.5 are
    assumed to be 0..255). A channel axis (1 or 3 channels, [N, C, H, W]) is averaged away.
    """
    if hasattr(images, "detach"):  # torch tensor, without importing torch
        images = images.detach().cpu().numpy()
    arr = np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4:
        if arr.shape[1] in (1, 3):
            arr = arr.mean(axis=1) if arr.shape[1] == 3 else arr[:, 0]
        elif arr.shape[-1] in (1, 3):
            arr = arr.mean(axis=-1) if arr.shape[-1] == 3 else arr[..., 0]
        else:
            raise ValueError(f"cannot read images of shape {arr.shape}: expected [N,H,W] or [N,C,H,W]")
    if arr.ndim != 3:
        raise ValueError(f"expected images [N,H,W]; got shape {arr.shape}")
    # C order always: scipy's loadmat gives Fortran-ordered arrays, and a different memory layout
    # changes float summation order (1e-7 differences that k-means can amplify)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr, dtype=np.float32) / np.float32(255.0)
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.size and float(arr.max()) > 1.5:
        arr = arr / np.float32(255.0)
    return arr

def resize_images(images: Any, size: int) -> np.ndarray:
    """Downscale a batch to [N, size, size] float32 in [0, 1] (block mean when the size divides)."""
    arr = as_image_array(images)
    n, h, w = arr.shape
    if (h, w) == (size, size):
        return arr
    if h % size == 0 and w % size == 0:
        fh, fw = h // size, w // size
        return arr.reshape(n, size, fh, size, fw).mean(axis=(2, 4), dtype=np.float32)
    from skimage.transform import resize

    out = resize(arr, (n, size, size), order=1, anti_aliasing=True, preserve_range=True,
                 mode="edge")
    return out.astype(np.float32)

def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)

def _hog_blocks(images: np.ndarray, orientations: int, pixels_per_cell, cells_per_block,
                block_norm: str, n_jobs: int = 1) -> np.ndarray:
    """HOG blocks of a [N, H, W] batch: [N, n_blocks_r, n_blocks_c, b_r, b_c, orientations]."""
    from skimage.feature import hog

    ppc, cpb = _pair(pixels_per_cell), _pair(cells_per_block)

    def one(img):
        return hog(img, orientations=orientations, pixels_per_cell=ppc, cells_per_block=cpb,
                   block_norm=block_norm, feature_vector=False)

    if n_jobs == 1 or len(images) < 64:
        blocks = [one(img) for img in images]
    else:
        from joblib import Parallel, delayed

        chunks = np.array_split(np.arange(len(images)), max(1, min(len(images) // 32, 64)))
        parts = Parallel(n_jobs=n_jobs)(delayed(lambda idx: [one(images[i]) for i in idx])(c)
                                        for c in chunks)
        blocks = [b for part in parts for b in part]
    return np.stack(blocks).astype(np.float32)

def _l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)

def dense_hog(images: Any, size: int = 128, orientations: int = 9,
              pixels_per_cell: int | Sequence[int] = 8, cells_per_block: int | Sequence[int] = 2,
              block_norm: str = "L2-Hys", n_jobs: int = 1) -> np.ndarray:
    """Dense-HOG: one L2-normalised HOG vector per image, float32 [N, D].

    The image is downscaled to ``size`` x ``size`` and HOG is computed over the whole image (fixed
    cell grid, blocks with a one-cell stride); D = n_blocks**2 * cells_per_block**2 * orientations
    (8100 for 128 px, 8 px cells, 2x2 blocks, 9 orientations).
    """
    x = resize_images(images, size)
    blocks = _hog_blocks(x, orientations, pixels_per_cell, cells_per_block, block_norm, n_jobs)
    return _l2_normalise(blocks.reshape(len(x), -1))

def _normalise_hist(h: np.ndarray, norm: str) -> np.ndarray:
    h = h.astype(np.float32)
    if norm == "none":
        return h
    if norm == "l1":
        return h / np.maximum(h.sum(axis=1, keepdims=True), 1e-12)
    if norm == "l2":
        return _l2_normalise(h)
    if norm == "power":
        return _l2_normalise(np.sqrt(h))
    raise ValueError(f"norm must be one of none, l1, l2, power; got {norm!r}")

class HOGBoW:
    """Bag of visual words over dense local HOG descriptors (one descriptor = one HOG block).

    ``fit(train_images)`` learns the vocabulary (``MiniBatchKMeans``, seeded) from the non-blank
    blocks of the training images (pass the training sketches *and* edge maps);
    ``transform(images)`` returns the normalised word histograms, float32 [N, vocab_size * cells]
    where ``cells = sum(g * g for g in grid)``.
    """

    def __init__(self, size: int = 128, orientations: int = 9,
                 pixels_per_cell: int | Sequence[int] = 8, cells_per_block: int | Sequence[int] = 4,
                 block_norm: str = "L2-Hys", vocab_size: int = 500, max_descriptors: int = 200_000,
                 min_ink: int = 8, ink_threshold: float = 0.9, grid: Sequence[int] = (1,),
                 norm: str = "power", seed: int = 0, n_jobs: int = 1):
        self.size = int(size)
        self.orientations = int(orientations)
        self.pixels_per_cell = _pair(pixels_per_cell)
        self.cells_per_block = _pair(cells_per_block)
        self.block_norm = block_norm
        self.vocab_size = int(vocab_size)
        self.max_descriptors = int(max_descriptors)
        self.min_ink = int(min_ink)
        self.ink_threshold = float(ink_threshold)
        self.grid = tuple(int(g) for g in grid)
        _normalise_hist(np.ones((1, 1)), norm)  # validate early
        self.norm = norm
        self.seed = int(seed)
        self.n_jobs = n_jobs
        self.kmeans_ = None

    # descriptors ------------------------------------------------------------------------
    def _ink_per_block(self, x: np.ndarray, nbr: int, nbc: int) -> np.ndarray:
        """Number of ink pixels under each HOG block: int [N, nbr, nbc]."""
        (pr, pc), (br, bc) = self.pixels_per_cell, self.cells_per_block
        ncr, ncc = nbr + br - 1, nbc + bc - 1
        ink = (x[:, : ncr * pr, : ncc * pc] < self.ink_threshold)
        cells = ink.reshape(len(x), ncr, pr, ncc, pc).sum(axis=(2, 4))
        # sum over each br x bc window of cells (stride 1) via a 2-D cumulative sum
        cs = np.zeros((len(x), ncr + 1, ncc + 1), dtype=np.int64)
        cs[:, 1:, 1:] = cells.cumsum(axis=1).cumsum(axis=2)
        return cs[:, br:, bc:] - cs[:, :-br, bc:] - cs[:, br:, :-bc] + cs[:, :-br, :-bc]

    def descriptors(self, images: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Local descriptors of the non-blank blocks.

        Returns ``(desc float32 [M, d], image_index int [M], region int [M, len(grid)])`` where
        ``region[:, l]`` is the cell of grid level l (row-major) that holds the block centre.
        """
        x = resize_images(images, self.size)
        blocks = _hog_blocks(x, self.orientations, self.pixels_per_cell, self.cells_per_block,
                             self.block_norm, self.n_jobs)
        n, nbr, nbc = blocks.shape[:3]
        keep = self._ink_per_block(x, nbr, nbc) >= self.min_ink  # [N, nbr, nbc]
        desc = blocks.reshape(n, nbr, nbc, -1)[keep]
        img_idx, r, c = np.nonzero(keep)
        (pr, pc), (br, bc) = self.pixels_per_cell, self.cells_per_block
        cy = (r * pr + br * pr / 2.0) / self.size  # block centre, relative
        cx = (c * pc + bc * pc / 2.0) / self.size
        region = np.stack([np.minimum((cy * g).astype(int), g - 1) * g
                           + np.minimum((cx * g).astype(int), g - 1) for g in self.grid], axis=1)
        return desc, img_idx, region

    # vocabulary -------------------------------------------------------------------------
    def fit(self, train_images: Any) -> "HOGBoW":
        from sklearn.cluster import MiniBatchKMeans

        desc, _, _ = self.descriptors(train_images)
        if len(desc) < self.vocab_size:
            raise ValueError(f"only {len(desc)} non-blank descriptors for a vocabulary of "
                             f"{self.vocab_size}: use more images, a smaller vocab_size or min_ink")
        rng = np.random.default_rng(self.seed)
        if len(desc) > self.max_descriptors:
            desc = desc[np.sort(rng.choice(len(desc), self.max_descriptors, replace=False))]
        self.kmeans_ = MiniBatchKMeans(n_clusters=self.vocab_size, random_state=self.seed,
                                       batch_size=max(4096, 3 * self.vocab_size), n_init=3,
                                       max_iter=100).fit(desc)
        return self

    def transform(self, images: Any) -> np.ndarray:
        if self.kmeans_ is None:
            raise RuntimeError("HOGBoW.fit(train_images) must be called before transform()")
        x = resize_images(images, self.size)
        n = len(x)
        desc, img_idx, region = self.descriptors(x)
        words = self.kmeans_.predict(desc) if len(desc) else np.zeros(0, dtype=int)
        k = self.vocab_size
        hists = []
        for level, g in enumerate(self.grid):
            bins = (img_idx * (g * g) + region[:, level]) * k + words
            hists.append(np.bincount(bins, minlength=n * g * g * k).reshape(n, g * g * k))
        return _normalise_hist(np.concatenate(hists, axis=1), self.norm)

    def fit_transform(self, images: Any) -> np.ndarray:
        return self.fit(images).transform(images)

def make_triplets(n_queries: int, n_gallery: int,
                  triplets: Sequence[Iterable[Sequence[int]]] | None = None, *,
                  max_pairs: int | None = 20_000, neg_per_query: int | None = None,
                  add_true_match: bool = False, seed: int = 0) -> np.ndarray:
    """Training triplets ``[P, 3]`` int64 rows ``(query, positive, negative)``.

    With ``triplets`` (one list of ``(more_similar, less_similar)`` gallery indices per query,
    the shoes/chairs human annotation) those are used (``more == less`` rows dropped); with
    ``add_true_match`` or without annotations (handbags), the true match (gallery index = query
    index) is the positive against ``neg_per_query`` random other photos per query (seeded; by
    default ``max_pairs`` spread over the queries). At most ``max_pairs`` rows are kept (a seeded
    uniform subsample).
    """
    rng = np.random.default_rng(seed)
    rows = []
    if triplets is not None:
        if len(triplets) != n_queries:
            raise ValueError(f"got triplets for {len(triplets)} queries, expected {n_queries}")
        for q, pairs in enumerate(triplets):
            if pairs is None or len(pairs) == 0:
                continue
            pr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
            pr = pr[pr[:, 0] != pr[:, 1]]
            rows.append(np.column_stack([np.full(len(pr), q, dtype=np.int64), pr]))
    if triplets is None or add_true_match:
        if n_gallery < 2:
            raise ValueError("need at least 2 gallery photos to sample negatives")
        if n_queries > n_gallery:
            raise ValueError("without annotations query i's true match is photo i: need "
                             "n_queries <= n_gallery")
        k = neg_per_query
        if k is None:
            k = math.ceil(max_pairs / n_queries) if max_pairs else 20
        k = int(min(max(k, 1), n_gallery - 1))
        for q in range(n_queries):
            neg = rng.choice(n_gallery - 1, size=k, replace=False)
            neg = neg + (neg >= q)  # skip the true match
            rows.append(np.column_stack([np.full(k, q), np.full(k, q), neg]).astype(np.int64))
    out = np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)
    if out.size and (out[:, 1:].max() >= n_gallery or out.min() < 0):
        raise ValueError(f"triplet photo index out of range [0, {n_gallery})")
    if max_pairs is not None and len(out) > max_pairs:
        out = out[np.sort(rng.choice(len(out), int(max_pairs), replace=False))]
    return out

class RankSVM:
    """Linear rankSVM on pairwise feature differences (no intercept).

    ``phi(s, p) = -|f(s) - f(p)|`` (``diff="abs"``) or ``-(f(s) - f(p))**2`` (``diff="sq"``);
    score ``w . phi`` (higher = more similar); :meth:`distance` returns ``-score`` [Q, G].

    The pair differences are divided by their mean L2 norm before ``LinearSVC`` (no intercept;
    ``C`` is therefore scale-free). ``uniform_prior = p > 0`` appends the column
    ``p / sqrt(D) * sum_d x_d``: a uniform weight ``u`` then costs ``(u / p)**2 * D`` instead of
    ``u**2 * D`` under the L2 penalty, so a strongly regularised model stays close to the plain
    (unweighted) distance; ``coef_`` folds that column back into the D per-dimension weights.
    Attributes after :meth:`fit`: ``coef_`` [D], ``n_pairs_``, ``train_acc_`` (fraction of training
    triplets ranked right), ``converged_``, ``pair_scale_``.
    """

    def __init__(self, C: float = 1.0, diff: str = "abs", max_pairs: int | None = 20_000,
                 neg_per_query: int | None = None, add_true_match: bool = False,
                 uniform_prior: float = 0.0, max_iter: int = 2000, tol: float = 1e-4,
                 seed: int = 0):
        if diff not in ("abs", "sq"):
            raise ValueError(f"diff must be 'abs' or 'sq'; got {diff!r}")
        self.C = float(C)
        self.diff = diff
        self.max_pairs = max_pairs
        self.neg_per_query = neg_per_query
        self.add_true_match = bool(add_true_match)
        self.uniform_prior = float(uniform_prior)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.seed = int(seed)
        self.coef_: np.ndarray | None = None
        self.n_pairs_: int = 0

    def _d(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = a - b
        return np.abs(d) if self.diff == "abs" else d * d

    def pair_features(self, fs: np.ndarray, fp: np.ndarray) -> np.ndarray:
        """``phi(s_i, p_i)`` row by row for aligned [P, D] arrays."""
        return -self._d(np.asarray(fs, np.float32), np.asarray(fp, np.float32))

    def fit(self, f_sketch: np.ndarray, f_photo: np.ndarray,
            triplets: Sequence[Iterable[Sequence[int]]] | None = None,
            trip_idx: np.ndarray | None = None) -> "RankSVM":
        """Learn w from the training sketches' / photos' features and triplets (see :func:`make_triplets`).

        ``trip_idx`` ([P, 3] (query, pos, neg)) overrides the triplet sampling.
        """
        from sklearn.svm import LinearSVC

        fs = np.asarray(f_sketch, dtype=np.float32)
        fp = np.asarray(f_photo, dtype=np.float32)
        if trip_idx is None:
            trip_idx = make_triplets(len(fs), len(fp), triplets, max_pairs=self.max_pairs,
                                     neg_per_query=self.neg_per_query,
                                     add_true_match=self.add_true_match, seed=self.seed)
        trip_idx = np.asarray(trip_idx, dtype=np.int64)
        if len(trip_idx) == 0:
            raise ValueError("no training triplets")
        rng = np.random.default_rng(self.seed + 1)
        y = np.where(rng.random(len(trip_idx)) < 0.5, 1.0, -1.0)
        y[0], y[-1] = 1.0, -1.0  # LinearSVC needs both classes
        dim = fs.shape[1]
        prior = self.uniform_prior > 0
        X = np.empty((len(trip_idx), dim + prior), dtype=np.float64)
        step = 4096
        for a in range(0, len(trip_idx), step):
            t = trip_idx[a:a + step]
            s = fs[t[:, 0]]
            # x = phi(s, p+) - phi(s, p-) = d(s, p-) - d(s, p+)
            X[a:a + step, :dim] = (self._d(s, fp[t[:, 2]]) - self._d(s, fp[t[:, 1]])) * y[a:a + step, None]
        # C is made independent of the feature scale: the difference vectors are divided by their
        # mean L2 norm (a positive rescaling of w; rankings do not change)
        self.pair_scale_ = float(np.linalg.norm(X[:, :dim], axis=1).mean()) or 1.0
        X[:, :dim] /= self.pair_scale_
        if prior:
            # one extra column: the unweighted distance difference, scaled so that a uniform
            # weight u costs (u / uniform_prior)**2 * dim instead of u**2 * dim
            X[:, dim] = X[:, :dim].sum(axis=1) * (self.uniform_prior / math.sqrt(dim))
        svm = LinearSVC(C=self.C, fit_intercept=False, max_iter=self.max_iter, tol=self.tol,
                        dual="auto", random_state=self.seed)
        import warnings
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            svm.fit(X, y)
        self.converged_ = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        coef = svm.coef_.ravel()
        self.train_acc_ = float((X @ coef * y > 0).mean())
        if prior:
            coef = coef[:dim] + coef[dim] * (self.uniform_prior / math.sqrt(dim))
        self.coef_ = coef.astype(np.float32)
        self.n_pairs_ = len(trip_idx)
        return self

    def distance(self, f_sketch: np.ndarray, f_gallery: np.ndarray,
                 chunk_bytes: int = 64 * 2**20) -> np.ndarray:
        """``dist[q, g] = -w . phi(s_q, g) = w . d(f(s_q), f(g))``, float32 [Q, G] (lower = closer)."""
        if self.coef_ is None:
            raise RuntimeError("RankSVM.fit() must be called before distance()")
        return weighted_distance(f_sketch, f_gallery, self.coef_, self.diff, chunk_bytes)

    def score(self, f_sketch: np.ndarray, f_gallery: np.ndarray) -> np.ndarray:
        """``w . phi(s_q, g)`` [Q, G] (higher = more similar)."""
        return -self.distance(f_sketch, f_gallery)

def weighted_distance(fq: np.ndarray, fg: np.ndarray, w: np.ndarray, diff: str = "abs",
                      chunk_bytes: int = 64 * 2**20) -> np.ndarray:
    """``sum_d w_d * |fq_d - fg_d|`` (or squared) for all query/gallery pairs, float32 [Q, G].

    ``"sq"`` uses the expansion ``w.q^2 - 2 (w*q).g + w.g^2`` (one matrix product); ``"abs"`` is
    not separable, so it broadcasts ``|fq[chunk, None] - fg[None]| @ w`` over query chunks of about
    ``chunk_bytes``.
    """
    fq = np.asarray(fq, dtype=np.float32)
    fg = np.asarray(fg, dtype=np.float32)
    w = np.asarray(w, dtype=np.float32).ravel()
    if fq.shape[1] != fg.shape[1] or w.shape[0] != fq.shape[1]:
        raise ValueError(f"dimension mismatch: queries {fq.shape}, gallery {fg.shape}, w {w.shape}")
    if diff == "sq":
        a = (fq * fq) @ w
        b = (fg * fg) @ w
        return (a[:, None] - 2.0 * (fq * w) @ fg.T + b[None, :]).astype(np.float32)
    if diff != "abs":
        raise ValueError(f"diff must be 'abs' or 'sq'; got {diff!r}")
    q, g, d = len(fq), len(fg), fq.shape[1]
    out = np.empty((q, g), dtype=np.float32)
    rows = max(1, int(chunk_bytes // max(1, g * d * 4)))
    for a in range(0, q, rows):
        out[a:a + rows] = np.abs(fq[a:a + rows, None, :] - fg[None, :, :]) @ w
    return out
