"""Data for fine-grained and category-level SBIR: loaders, synthetic data, triplet sampling, augmentation.

Taught in: ``notebooks/00_data_and_domain_gap.ipynb`` (what a sketch, an edge map and a photo look like,
why they differ -- the domain gap -- and how training triplets are drawn).

What lives here
---------------
- **QMUL-V1 fine-grained data** (shoes, chairs, handbags; Yu et al., "Sketch Me That Shoe", CVPR 2016,
  the data DSSA, ICCV 2017 trains on): :func:`load_qmul` reads
  ``<data_root>/qmul_v1/<ds>/<ds>_{sketch,edge}_db_{train,test}.mat`` (key ``data``, uint8 ``(N,256,256)``,
  white background, row ``i`` of the sketch and edge arrays = the same instance, i.e. the true match),
  the RGB photos ``photos/<split>/<n>.jpg`` (shoes and chairs only) and the human relative-similarity
  annotation ``<ds>_annotation.json`` (shoes and chairs only; the upstream ``handbags_annotation.json``
  is a byte copy of the shoes file and is never read). The network's photo branch sees the *edge maps*;
  the RGB photos are for display.
- **Synthetic stand-ins** (:func:`make_synthetic`, :func:`make_synthetic_categories`) so every notebook and
  test runs without downloads: procedurally drawn shoe-like objects sharing a few coarse shape families and
  differing in small details (buckles, dots, stripes, notches ...), an abstracted, misaligned *sketch*, a
  clean-but-cluttered *edge map* and a flat-colour *photo* per instance. :func:`load_fg_dataset` returns
  real data when present, else the synthetic set with a warning that names the download command.
- **Sketchy-mini** (:func:`load_sketchy_mini`): 125 categories x (25 sketches, 25 photos) of real Sketchy
  data for category-level SBIR, with a deterministic, documented train/test split of the sketches.
- **Triplet sampling** (:class:`TripletSampler`), the DSSA authors' recipe (``sbir_sampling/sample_util.py``
  of their TensorFlow release): anchor = query sketch; (positive, negative) = a random human-annotated
  (more similar, less similar) pair of that sketch; with probability ``1 - hard_prob`` (0.25) the negative
  is replaced by a random photo that does not appear in any of that sketch's annotated pairs. Handbags
  (no annotation): positive = the true match, negative = a random other photo. One deviation: the authors
  cycle anchors in file order; we cycle them in a reshuffled order each epoch.
- **Augmentation on the device** (:func:`augment`, :func:`center_crop`, :func:`ten_views`, :func:`to_input`):
  256 -> 225 random crops with independent per-image offsets and horizontal flips (the authors' recipe),
  batched with advanced indexing (no per-image Python loops), so it runs wherever the batch lives.
  Testing uses the centre crop or the 10 views (4 corners + centre, each also mirrored).

Input normalisation
-------------------
:func:`to_input` maps uint8 to float ``x/255 - PIXEL_MEAN``. ``PIXEL_MEAN = 250.42/255`` is the constant the
DSSA authors subtract (Sketch-a-Net convention: one scalar mean, same for sketches and edge maps).
Measured on the QMUL shoes *training* sketches + edge maps (608 images, full 256x256): 250.04
(sketches 250.70, edge maps 249.38; on the 225 centre crops 248.87). The difference from 250.42 is
0.0015 on the [0,1] scale, negligible; we keep the authors' constant (``PIXEL_MEAN_MEASURED`` holds ours).
"""
from __future__ import annotations

import colorsys
import json
import logging
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from sbir_lib.core import config

logger = logging.getLogger(__name__)

__all__ = [
    "QMULSplit", "QMULDataset", "CategoryDataset", "DatasetMissingError", "DatasetCorruptError",
    "QMUL_NAMES", "QMUL_COUNTS", "PIXEL_MEAN", "PIXEL_MEAN_MEASURED", "CROP",
    "load_qmul", "load_fg_dataset", "real_data_available", "load_sketchy_mini",
    "make_synthetic", "make_synthetic_categories", "TripletSampler",
    "augment", "center_crop", "ten_views", "to_input",
]

QMUL_NAMES = ("shoes", "chairs", "handbags")
#: (train, test) sketch/photo pairs per QMUL-V1 dataset.
QMUL_COUNTS = {"shoes": (304, 115), "chairs": (200, 97), "handbags": (400, 168)}
#: datasets with a usable relative-similarity annotation json and RGB photos upstream.
QMUL_ANNOTATED = ("shoes", "chairs")
QMUL_WITH_PHOTOS = ("shoes", "chairs")
QMUL_SIZE = 256
#: the crop the network sees (Sketch-a-Net / DSSA input size).
CROP = 225

#: the scalar mean subtracted from inputs on the [0, 1] scale: the DSSA authors' 250.42 (out of 255).
PIXEL_MEAN = 250.42 / 255.0
#: what we measured over QMUL shoes training sketches + edge maps (full 256x256): 250.036 / 255.
PIXEL_MEAN_MEASURED = 250.036 / 255.0

_SKETCHY_DIR = "sketchy_mini"
_QMUL_DIR = "qmul_v1"


# ----------------------------------------------------------------------------------------------------------
# Containers and errors
# ----------------------------------------------------------------------------------------------------------
class DatasetMissingError(FileNotFoundError):
    """A dataset (or one of its files) is not under the data root. The message names the path looked at
    and the command that fetches it."""


class DatasetCorruptError(ValueError):
    """A dataset file exists but cannot be used (truncated, unreadable, wrong shape). Names the file."""

    def __init__(self, path, why: str):
        self.path = Path(path)
        self.why = why
        super().__init__(f"corrupt dataset file {self.path}: {why}. Delete it and download it again.")


@dataclass
class QMULSplit:
    """One split (train or test) of a fine-grained dataset; row ``i`` of every array is instance ``i``.

    ``sketches[i]`` (query) and ``edges[i]`` (gallery item, what the photo branch sees) are the true match.
    ``triplets[i]`` lists ``(more_similar, less_similar)`` photo index pairs annotated for query sketch ``i``
    (0-based indices into this split), or ``None`` when the dataset has no annotation (handbags).
    """

    sketches: torch.Tensor
    edges: torch.Tensor
    photos: torch.Tensor | None
    triplets: list[list[tuple[int, int]]] | None
    names: list[str]

    def __len__(self) -> int:
        return int(self.sketches.shape[0])

    def to(self, device) -> "QMULSplit":
        """A copy with the image tensors on ``device`` (e.g. keep the whole set on the GPU for augmentation)."""
        return replace(self, sketches=self.sketches.to(device), edges=self.edges.to(device),
                       photos=None if self.photos is None else self.photos.to(device))


@dataclass
class QMULDataset:
    name: str  # "shoes" | "chairs" | "handbags" | "synthetic"
    train: QMULSplit
    test: QMULSplit
    source: str  # "qmul_v1" or "synthetic(seed=..)"

    @property
    def is_synthetic(self) -> bool:
        return self.source.startswith("synthetic")

    def __repr__(self) -> str:
        return (f"QMULDataset(name={self.name!r}, train={len(self.train)}, test={len(self.test)}, "
                f"photos={self.train.photos is not None}, triplets={self.train.triplets is not None}, "
                f"source={self.source!r})")


@dataclass
class CategoryDataset:
    """Category-level SBIR data: query sketches with class labels; every photo is in the gallery."""

    name: str
    categories: list[str]
    train_sketches: torch.Tensor  # uint8 [Ntr,H,W]
    train_labels: torch.Tensor  # int64 [Ntr]
    test_sketches: torch.Tensor  # uint8 [Nte,H,W]
    test_labels: torch.Tensor  # int64 [Nte]
    photos: torch.Tensor  # uint8 [Np,H,W,3]
    photo_labels: torch.Tensor  # int64 [Np]
    source: str
    split: str  # the split rule, in words
    train_names: list[str] = field(default_factory=list)
    test_names: list[str] = field(default_factory=list)
    photo_names: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return (f"CategoryDataset(name={self.name!r}, classes={len(self.categories)}, "
                f"train={tuple(self.train_sketches.shape)}, test={tuple(self.test_sketches.shape)}, "
                f"photos={tuple(self.photos.shape)}, source={self.source!r})")


# ----------------------------------------------------------------------------------------------------------
# File readers (every failure becomes DatasetMissingError / DatasetCorruptError naming the file)
# ----------------------------------------------------------------------------------------------------------
def _check_qmul_name(name: str) -> str:
    if name not in QMUL_NAMES:
        raise ValueError(f"unknown QMUL dataset {name!r}; allowed: {', '.join(QMUL_NAMES)}")
    return name


def _missing(path: Path, dataset: str, what: str = "") -> DatasetMissingError:
    extra = f" ({what})" if what else ""
    return DatasetMissingError(
        f"{dataset} data not found: {path} does not exist{extra}. The data root is --root / root=, else "
        f"$SBIR_DATA_ROOT, else <repo>/data. Fetch it with: {config.download_command(dataset)}")


def _qmul_dir(name: str, root=None) -> Path:
    return config.data_root(root) / _QMUL_DIR / name


def _qmul_mat_path(name: str, kind: str, split: str, root=None) -> Path:
    return _qmul_dir(name, root) / f"{name}_{kind}_db_{split}.mat"


def _load_mat(path: Path, dataset: str, size: int = QMUL_SIZE) -> np.ndarray:
    if not path.is_file():
        raise _missing(path, dataset)
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises OSError / MatReadError / ValueError / IndexError on damage
        raise DatasetCorruptError(path, f"unreadable .mat (truncated or damaged?): {type(e).__name__}: {e}") from e
    if "data" not in mat:
        keys = [k for k in mat if not k.startswith("__")]
        raise DatasetCorruptError(path, f"no 'data' variable (found {keys})")
    arr = np.asarray(mat["data"])
    if arr.ndim != 3 or arr.shape[1:] != (size, size):
        raise DatasetCorruptError(path, f"bad shape {arr.shape}, expected (N, {size}, {size})")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number) or arr.min() < 0 or arr.max() > 255:
            raise DatasetCorruptError(path, f"bad dtype/range {arr.dtype}, expected uint8 in 0..255")
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)


def _load_json(path: Path, dataset: str) -> Any:
    if not path.is_file():
        raise _missing(path, dataset)
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, OSError) as e:  # JSONDecodeError is a ValueError
        raise DatasetCorruptError(path, f"unreadable json (truncated or damaged?): {e}") from e


def _read_image(path: Path, mode: str, size: int | None, dataset: str,
                expect: tuple[int, int] | None = None) -> np.ndarray:
    """Decode one image to uint8 (H,W) or (H,W,3); ``size`` resizes to size x size when it differs."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if expect is not None and im.size != expect:
                raise DatasetCorruptError(path, f"bad image size {im.size}, expected {expect}")
            if size is not None and im.format == "JPEG" and size < min(im.size):
                im.draft(mode, (size, size))  # fast DCT-domain downscale (power of two, >= size)
            im = im.convert(mode)
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except DatasetCorruptError:
        raise
    except FileNotFoundError as e:
        raise _missing(path, dataset) from e
    except Exception as e:  # PIL: UnidentifiedImageError, OSError('image file is truncated'), SyntaxError ...
        raise DatasetCorruptError(path, f"unreadable image (truncated or damaged?): {type(e).__name__}: {e}") from e
    return arr


def _n_workers() -> int:
    return max(2, min(16, 2 * (os.cpu_count() or 1)))


def _read_images(paths: Sequence[Path], mode: str, size: int | None, dataset: str,
                 expect: tuple[int, int] | None = None) -> np.ndarray:
    """Decode many images in a thread pool (PIL releases the GIL while decoding) into one array."""
    if not paths:
        shape = (0, size or 0, size or 0) + ((3,) if mode == "RGB" else ())
        return np.zeros(shape, np.uint8)
    first = _read_image(paths[0], mode, size, dataset, expect)
    out = np.empty((len(paths),) + first.shape, np.uint8)
    out[0] = first

    def work(i: int) -> None:
        a = _read_image(paths[i], mode, size, dataset, expect)
        if a.shape != first.shape:
            raise DatasetCorruptError(paths[i], f"bad image shape {a.shape}, expected {first.shape}")
        out[i] = a

    with ThreadPoolExecutor(max_workers=_n_workers()) as pool:
        for _ in pool.map(work, range(1, len(paths))):  # re-raises the first failure
            pass
    return out


def _parse_triplets(raw: Any, n: int, path: Path, split: str) -> list[list[tuple[int, int]]]:
    if not isinstance(raw, list) or len(raw) != n:
        got = len(raw) if isinstance(raw, list) else type(raw).__name__
        raise DatasetCorruptError(path, f"'{split}.triplets' should list {n} queries, got {got}")
    out: list[list[tuple[int, int]]] = []
    for i, pairs in enumerate(raw):
        try:
            arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        except (ValueError, TypeError) as e:
            raise DatasetCorruptError(path, f"'{split}.triplets[{i}]' is not a list of index pairs") from e
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise DatasetCorruptError(path, f"'{split}.triplets[{i}]' has a photo index outside 0..{n - 1}")
        out.append([(int(a), int(b)) for a, b in arr])
    return out


# ----------------------------------------------------------------------------------------------------------
# QMUL-V1
# ----------------------------------------------------------------------------------------------------------
def _qmul_required_files(name: str, root=None) -> list[Path]:
    d = _qmul_dir(name, root)
    files = [_qmul_mat_path(name, k, s, root) for s in ("train", "test") for k in ("sketch", "edge")]
    if name in QMUL_ANNOTATED:
        files.append(d / f"{name}_annotation.json")
    return files


def _photos_present(name: str, root=None) -> bool:
    if name not in QMUL_WITH_PHOTOS:
        return False
    ntr, nte = QMUL_COUNTS[name]
    d = _qmul_dir(name, root) / "photos"
    return (d / "train" / "1.jpg").is_file() and (d / "test" / f"{ntr + nte}.jpg").is_file()


def real_data_available(name: str, root=None) -> bool:
    """True when the files :func:`load_qmul` needs (``.mat`` + annotation json) exist under the data root.

    Existence only: a present but damaged file still raises :class:`DatasetCorruptError` on loading.
    ``"sketchy-mini"`` / ``"sketchy_mini"`` checks the Sketchy-mini folders; ``"synthetic"`` is always False.
    """
    if name == "synthetic":
        return False
    if name in ("sketchy-mini", "sketchy_mini"):
        d = config.data_root(root) / _SKETCHY_DIR
        return (d / "sketch").is_dir() and (d / "photo").is_dir()
    _check_qmul_name(name)
    return all(p.is_file() for p in _qmul_required_files(name, root))


def load_qmul(name: str, root=None, photos: bool | str = True) -> QMULDataset:
    """Load QMUL-V1 ``shoes`` | ``chairs`` | ``handbags`` from ``<data_root>/qmul_v1/<name>/``.

    ``photos``: True loads the RGB photos (shoes, chairs; handbags have none upstream -> ``None``),
    False skips them, ``"auto"`` loads them when present. Triplets come from ``<name>_annotation.json``
    (shoes, chairs); handbags get ``triplets=None``. Raises :class:`DatasetMissingError` (with the download
    command) or :class:`DatasetCorruptError` (naming the file) -- never returns partial data.
    """
    _check_qmul_name(name)
    if photos not in (True, False, "auto"):
        raise ValueError(f"photos must be True, False or 'auto'; got {photos!r}")
    ds_key = f"qmul-{name}"
    d = _qmul_dir(name, root)
    if not d.is_dir():
        raise _missing(d, ds_key)

    arrays: dict[tuple[str, str], np.ndarray] = {}
    for split in ("train", "test"):
        for kind in ("sketch", "edge"):
            arrays[(kind, split)] = _load_mat(_qmul_mat_path(name, kind, split, root), ds_key)
        ns, ne = arrays[("sketch", split)].shape[0], arrays[("edge", split)].shape[0]
        if ns != ne:
            raise DatasetCorruptError(_qmul_mat_path(name, "edge", split, root),
                                      f"{ne} edge maps but {ns} sketches in {name}_sketch_db_{split}.mat")

    ann = None
    if name in QMUL_ANNOTATED:
        ann_path = d / f"{name}_annotation.json"
        ann = _load_json(ann_path, ds_key)
        if not isinstance(ann, dict) or not all(isinstance(ann.get(s), dict) for s in ("train", "test")):
            raise DatasetCorruptError(ann_path, "expected {'train': {...}, 'test': {...}}")

    load_photos = photos is True or (photos == "auto" and _photos_present(name, root))
    load_photos = load_photos and name in QMUL_WITH_PHOTOS
    n_train = arrays[("sketch", "train")].shape[0]
    splits = {}
    for split, start in (("train", 1), ("test", n_train + 1)):
        n = arrays[("sketch", split)].shape[0]
        names = [str(start + i) for i in range(n)]
        trip = None
        if ann is not None:
            trip = _parse_triplets(ann[split].get("triplets"), n, d / f"{name}_annotation.json", split)
        ph = None
        if load_photos:
            pdir = d / "photos" / split
            if not pdir.is_dir():
                raise _missing(pdir, ds_key, "RGB photos; pass photos=False to load without them")
            ph = torch.from_numpy(_read_images([pdir / f"{s}.jpg" for s in names], "RGB", None, ds_key,
                                               expect=(QMUL_SIZE, QMUL_SIZE)))
        splits[split] = QMULSplit(sketches=torch.from_numpy(arrays[("sketch", split)]),
                                  edges=torch.from_numpy(arrays[("edge", split)]),
                                  photos=ph, triplets=trip, names=names)
    expected = QMUL_COUNTS[name]
    got = (len(splits["train"]), len(splits["test"]))
    if got != expected:
        logger.warning("QMUL %s has %s train/test pairs; the published release has %s", name, got, expected)
    return QMULDataset(name=name, train=splits["train"], test=splits["test"], source="qmul_v1")


def load_fg_dataset(name: str, root=None, allow_synthetic: bool = True, synthetic_kwargs: dict | None = None,
                    photos: bool | str = "auto") -> QMULDataset:
    """Real QMUL-V1 data when its files are under the data root, else (if allowed) synthetic data.

    ``name``: ``shoes`` | ``chairs`` | ``handbags`` | ``synthetic``. The fallback warns (``warnings.warn``
    and the log) that the data are synthetic and which command fetches the real set; its ``name`` is
    ``"synthetic"`` and ``source`` ``"synthetic(seed=..)"`` so results are never mislabelled. For a
    handbags fallback the synthetic set has no triplets (true-match sampling, like real handbags).
    Damaged real files raise :class:`DatasetCorruptError` rather than silently falling back.
    """
    kw = dict(synthetic_kwargs or {})
    if name == "synthetic":
        return make_synthetic(**kw)
    if name not in QMUL_NAMES:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(QMUL_NAMES + ('synthetic',))}")
    if real_data_available(name, root):
        return load_qmul(name, root=root, photos=photos)
    if not allow_synthetic:
        missing = [p for p in _qmul_required_files(name, root) if not p.is_file()]
        raise _missing(missing[0], f"qmul-{name}")
    if name not in QMUL_ANNOTATED:
        kw.setdefault("with_triplets", False)
    ds = make_synthetic(**kw)
    msg = (f"QMUL {name} not found under {_qmul_dir(name, root)}: using SYNTHETIC data ({ds.source}), not the "
           f"real benchmark. Fetch the real data with: {config.download_command('qmul-' + name)}")
    warnings.warn(msg, stacklevel=2)
    logger.warning(msg)
    return ds


# ----------------------------------------------------------------------------------------------------------
# Sketchy-mini (category level)
# ----------------------------------------------------------------------------------------------------------
def load_sketchy_mini(root=None, n_train_per_class: int = 20, size: int = 256,
                      categories: Sequence[str] | int | None = None) -> CategoryDataset:
    """Load ``<data_root>/sketchy_mini`` (125 categories x 25 sketches + 25 photos, 256x256).

    Split rule (deterministic, no randomness): within each category the sketch file names are sorted
    (plain string order, e.g. ``n02691156_10151-1.png`` ...); the first ``n_train_per_class`` (20) are
    training queries, the rest (5) test queries. Sketches of one photo have adjacent names, so at most one
    source photo per category has sketches on both sides of the split (harmless at category level).
    All photos (sorted by name) form the retrieval gallery. Labels index ``categories`` (sorted names).

    ``size`` != 256 resizes (bilinear, antialiased) for quick profiles. ``categories``: a list of names,
    an int k (the first k in sorted order) or None (all). Decoding uses a thread pool.
    """
    base = config.data_root(root) / _SKETCHY_DIR
    for sub in ("sketch", "photo"):
        if not (base / sub).is_dir():
            raise _missing(base / sub, "sketchy-mini")
    all_cats = sorted(p.name for p in (base / "sketch").iterdir() if p.is_dir())
    if categories is None:
        cats = all_cats
    elif isinstance(categories, int):
        cats = all_cats[:categories]
    else:
        cats = list(categories)
        unknown = [c for c in cats if c not in all_cats]
        if unknown:
            raise ValueError(f"unknown Sketchy-mini categories {unknown}; available: {', '.join(all_cats)}")
    if not cats:
        raise DatasetMissingError(f"no categories found under {base / 'sketch'}. Fetch the data with: "
                                  f"{config.download_command('sketchy-mini')}")
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")

    tr_paths, tr_lab, te_paths, te_lab, ph_paths, ph_lab = [], [], [], [], [], []
    for ci, c in enumerate(cats):
        sk = sorted(p.name for p in os.scandir(base / "sketch" / c) if p.name.lower().endswith(".png"))
        pdir = base / "photo" / c
        if not pdir.is_dir():
            raise _missing(pdir, "sketchy-mini")
        ph = sorted(p.name for p in os.scandir(pdir) if p.name.lower().endswith(".jpg"))
        if len(sk) <= n_train_per_class:
            raise ValueError(f"category {c!r} has {len(sk)} sketches; n_train_per_class={n_train_per_class} "
                             f"leaves none for testing")
        if not ph:
            raise _missing(pdir / "*.jpg", "sketchy-mini", "no photos")
        tr_paths += [base / "sketch" / c / f for f in sk[:n_train_per_class]]
        te_paths += [base / "sketch" / c / f for f in sk[n_train_per_class:]]
        tr_lab += [ci] * n_train_per_class
        te_lab += [ci] * (len(sk) - n_train_per_class)
        ph_paths += [pdir / f for f in ph]
        ph_lab += [ci] * len(ph)

    rs = None if size == 256 else size
    sk_all = _read_images(tr_paths + te_paths, "L", rs, "sketchy-mini")
    photos = _read_images(ph_paths, "RGB", rs, "sketchy-mini")
    if sk_all.shape[1:] != photos.shape[1:3]:
        raise DatasetCorruptError(ph_paths[0], f"photo size {photos.shape[1:3]} != sketch size {sk_all.shape[1:]}")
    ntr = len(tr_paths)
    rel = lambda p: f"{p.parent.name}/{p.stem}"  # noqa: E731
    return CategoryDataset(
        name="sketchy_mini", categories=list(cats),
        train_sketches=torch.from_numpy(sk_all[:ntr]), train_labels=torch.tensor(tr_lab, dtype=torch.int64),
        test_sketches=torch.from_numpy(sk_all[ntr:]), test_labels=torch.tensor(te_lab, dtype=torch.int64),
        photos=torch.from_numpy(photos), photo_labels=torch.tensor(ph_lab, dtype=torch.int64),
        source="sketchy_mini",
        split=(f"per category: sketch file names sorted, first {n_train_per_class} train, the rest test; "
               f"all photos are the gallery"),
        train_names=[rel(p) for p in tr_paths], test_names=[rel(p) for p in te_paths],
        photo_names=[rel(p) for p in ph_paths])


# ----------------------------------------------------------------------------------------------------------
# Synthetic data: procedural objects, sketch / edge map / photo renderers
# ----------------------------------------------------------------------------------------------------------
# Shoe-like side views in unit coordinates (x to the toe, y down); smoothed with Chaikin's algorithm.
_SHOE_FAMILIES = {
    "sneaker": dict(
        outline=[(0.12, 0.72), (0.86, 0.72), (0.93, 0.66), (0.91, 0.58), (0.80, 0.53), (0.64, 0.46),
                 (0.55, 0.37), (0.47, 0.35), (0.41, 0.44), (0.27, 0.43), (0.16, 0.40), (0.11, 0.53)],
        inner=[[(0.14, 0.665), (0.90, 0.665)], [(0.55, 0.38), (0.60, 0.50)]]),
    "boot": dict(
        outline=[(0.16, 0.78), (0.85, 0.78), (0.92, 0.72), (0.90, 0.63), (0.74, 0.57), (0.58, 0.50),
                 (0.53, 0.40), (0.52, 0.15), (0.24, 0.15), (0.22, 0.40), (0.16, 0.60)],
        inner=[[(0.18, 0.72), (0.89, 0.72)], [(0.24, 0.20), (0.52, 0.20)]]),
    "pump": dict(
        outline=[(0.19, 0.82), (0.24, 0.82), (0.26, 0.62), (0.42, 0.66), (0.62, 0.73), (0.82, 0.75),
                 (0.93, 0.71), (0.90, 0.63), (0.72, 0.57), (0.54, 0.53), (0.37, 0.49), (0.22, 0.42),
                 (0.16, 0.50), (0.18, 0.62)],
        inner=[[(0.26, 0.62), (0.20, 0.62)], [(0.54, 0.53), (0.45, 0.56), (0.37, 0.50)]]),
}
_FAMILY_NAMES = tuple(_SHOE_FAMILIES)
_N_SLOTS = 8
_DETAIL_TYPES = ("none", "buckle", "dots", "stripes", "notch", "ring", "cross", "zigzag")


def _chaikin(pts: np.ndarray, n_iter: int = 3, closed: bool = True) -> np.ndarray:
    for _ in range(n_iter):
        p = pts
        q = np.roll(p, -1, axis=0) if closed else p[1:]
        p0 = p if closed else p[:-1]
        a, b = 0.75 * p0 + 0.25 * q, 0.25 * p0 + 0.75 * q
        inter = np.stack([a, b], axis=1).reshape(-1, 2)
        pts = inter if closed else np.concatenate([p[:1], inter, p[-1:]])
    return pts


def _polygon_mask(poly: np.ndarray, size: int) -> np.ndarray:
    from skimage.draw import polygon as sk_polygon

    m = np.zeros((size, size), bool)
    rr, cc = sk_polygon(poly[:, 1] * size, poly[:, 0] * size, shape=(size, size))
    m[rr, cc] = True
    return m


def _slot_positions(outline: np.ndarray, k: int = _N_SLOTS, margin: float = 0.06) -> np.ndarray:
    """k well-spread interior points of a shape (farthest-point sampling on an eroded mask; deterministic)."""
    from scipy.ndimage import binary_erosion

    res = 96
    m = _polygon_mask(outline, res)
    er = binary_erosion(m, iterations=max(1, int(round(margin * res))))
    if er.sum() < k:
        er = m
    ys, xs = np.nonzero(er)
    pts = np.stack([(xs + 0.5) / res, (ys + 0.5) / res], axis=1)
    c = pts.mean(0)
    chosen = [int(np.argmin(((pts - c) ** 2).sum(1)))]
    d = ((pts - pts[chosen[0]]) ** 2).sum(1)
    for _ in range(k - 1):
        j = int(np.argmax(d))
        chosen.append(j)
        d = np.minimum(d, ((pts - pts[j]) ** 2).sum(1))
    return pts[chosen]


@lru_cache(maxsize=None)
def _shoe_family(name: str) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
    f = _SHOE_FAMILIES[name]
    outline = np.asarray(f["outline"], float)
    inner = tuple(np.asarray(s, float) for s in f["inner"])
    return outline, inner, _slot_positions(_chaikin(outline, 3))


def _radial_family(rng: np.random.Generator) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
    """A random closed shape -- a low-order Fourier blob or a rounded 3-6-gon, random aspect ratio and
    rotation -- plus 1-2 inner strokes: one category-level class."""
    if rng.random() < 0.5:
        n = 18
        th = np.linspace(0, 2 * np.pi, n, endpoint=False)
        r = np.ones(n)
        for k in range(1, 6):
            r += rng.uniform(0.1, 0.45) / k ** 0.5 * np.cos(k * th + rng.uniform(0, 2 * np.pi))
        r = np.clip(r, 0.3 * r.max(), None)
    else:
        n = int(rng.integers(3, 7))
        th = np.sort(rng.uniform(0, 2 * np.pi / n, n) * 0.5 + np.arange(n) * 2 * np.pi / n)
        r = rng.uniform(0.7, 1.0, n)
    asp = rng.uniform(0.55, 1.8)
    rot = rng.uniform(0, 2 * np.pi)
    pts = _rot(np.stack([r * np.cos(th) * asp ** 0.5, r * np.sin(th) / asp ** 0.5], 1), rot)
    pts -= (pts.max(0) + pts.min(0)) / 2
    outline = 0.5 + pts * (0.40 / np.abs(pts).max())
    sm = _chaikin(outline, 3)
    inner = []
    for _ in range(rng.integers(1, 3)):
        i, j = rng.choice(len(sm), 2, replace=False)
        a, b = sm[i], sm[j]
        inner.append(np.stack([a + 0.15 * (b - a), b - 0.15 * (b - a)]))
    return outline, tuple(inner), _slot_positions(sm)


def _circle(c, r, n=10) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n + 1)
    return np.stack([c[0] + r * np.cos(t), c[1] + r * np.sin(t)], 1)


def _rot(pts: np.ndarray, ang: float) -> np.ndarray:
    c, s = math.cos(ang), math.sin(ang)
    return pts @ np.array([[c, s], [-s, c]])


def _detail_strokes(kind: str, c: np.ndarray, s: float, ang: float) -> list[np.ndarray]:
    """Polylines (unit coords) of one small detail centred at c with size s."""
    if kind == "buckle":
        rect = np.array([(-1, -0.6), (1, -0.6), (1, 0.6), (-1, 0.6), (-1, -0.6)]) * s
        bar = np.array([(-0.3, -0.6), (-0.3, 0.6)]) * s
        return [c + _rot(rect, ang * 0.2), c + _rot(bar, ang * 0.2)]
    if kind == "dots":
        return [c + _rot(np.array([[dx * s, 0.0]]), ang)[0] + _circle((0, 0), 0.28 * s, 8) for dx in (-1, 0, 1)]
    if kind == "stripes":
        line = np.array([(-1.0, 0.0), (1.0, 0.0)]) * s
        return [c + _rot(line + np.array([0, dy * s]), ang) for dy in (-0.6, 0.0, 0.6)]
    if kind == "notch":
        return [c + _rot(np.array([(-1.0, -0.5), (0.0, 0.7), (1.0, -0.5)]) * s, ang)]
    if kind == "ring":
        return [c + _circle((0, 0), 0.8 * s, 12), c + _circle((0, 0), 0.3 * s, 8)]
    if kind == "cross":
        return [c + _rot(np.array([(-1.0, -1.0), (1.0, 1.0)]) * 0.8 * s, ang),
                c + _rot(np.array([(-1.0, 1.0), (1.0, -1.0)]) * 0.8 * s, ang)]
    if kind == "zigzag":
        return [c + _rot(np.array([(-1.2, 0.0), (-0.6, -0.5), (0.0, 0.0), (0.6, -0.5), (1.2, 0.0)]) * s, ang)]
    return []


_DISK_CACHE: dict[float, np.ndarray] = {}


def _disk(r: float) -> np.ndarray:
    key = round(float(r), 2)
    if key not in _DISK_CACHE:
        R = int(math.ceil(key))
        dy, dx = np.mgrid[-R:R + 1, -R:R + 1]
        keep = dx * dx + dy * dy <= key * key + 1e-9
        _DISK_CACHE[key] = np.stack([dy[keep], dx[keep]], 1)
    return _DISK_CACHE[key]


def _stroke_pixels(poly: np.ndarray, size: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (row, col) indices covered by a polyline of given pen radius (vectorised rasterisation)."""
    p = poly * size
    if len(p) == 1:
        pts = p
    else:
        d = p[1:] - p[:-1]
        n = np.maximum(1, np.ceil(np.hypot(d[:, 0], d[:, 1]) / 0.7).astype(int))
        seg = np.repeat(np.arange(len(d)), n)
        start = np.repeat(np.cumsum(n) - n, n)
        t = (np.arange(seg.size) - start) / np.repeat(n, n)
        pts = np.concatenate([p[:-1][seg] + t[:, None] * d[seg], p[-1:]])
    ij = np.round(pts[:, ::-1]).astype(np.int64)
    ij = (ij[:, None, :] + _disk(radius)[None]).reshape(-1, 2)
    ok = (ij[:, 0] >= 0) & (ij[:, 0] < size) & (ij[:, 1] >= 0) & (ij[:, 1] < size)
    return ij[ok, 0], ij[ok, 1]


def _draw(canvas: np.ndarray, poly: np.ndarray, radius: float, ink) -> None:
    size = canvas.shape[0]
    rr, cc = _stroke_pixels(poly, size, radius * size / 256.0)
    if canvas.ndim == 2:
        canvas[rr, cc] = np.minimum(canvas[rr, cc], np.uint8(ink))
    else:
        canvas[rr, cc] = np.asarray(ink, np.uint8)


def _affine(pts: np.ndarray, A: np.ndarray, t: np.ndarray, centre=(0.5, 0.5)) -> np.ndarray:
    c = np.asarray(centre)
    return (pts - c) @ A.T + c + t


def _wobble(poly: np.ndarray, rng: np.random.Generator, amp: float, step: float = 0.025) -> np.ndarray:
    """Resample a polyline to ~step spacing and add smooth random displacement (hand-drawn wobble)."""
    d = np.diff(poly, axis=0)
    L = np.concatenate([[0], np.cumsum(np.hypot(d[:, 0], d[:, 1]))])
    if L[-1] <= 0:
        return poly
    m = max(2, int(L[-1] / step) + 1)
    s = np.linspace(0, L[-1], m)
    q = np.stack([np.interp(s, L, poly[:, 0]), np.interp(s, L, poly[:, 1])], 1)
    noise = rng.normal(0, amp, q.shape)
    k = np.array([0.25, 0.5, 0.25])
    for _ in range(2):
        noise = np.stack([np.convolve(np.pad(noise[:, j], 1, mode="edge"), k, "valid") for j in range(2)], 1)
    return q + noise


@dataclass
class _Instance:
    outline: np.ndarray  # smoothed closed contour (unit coords)
    inner: list[np.ndarray]
    details: list[tuple[int, str, np.ndarray, float, float]]  # (slot, kind, centre, size, angle)
    attrs: np.ndarray  # detail type per slot (0 = none)
    family: int
    color: tuple[float, float, float]


def _make_instance(rng: np.random.Generator, family: int, fam, p_none: float = 0.35) -> _Instance:
    outline, inner, slots = fam
    sx, sy = rng.uniform(0.93, 1.06), rng.uniform(0.93, 1.06)
    A = np.diag([sx, sy])
    ctrl = outline + rng.normal(0, 0.007, outline.shape)
    smooth = _affine(_chaikin(ctrl, 3), A, np.zeros(2))
    inner_t = [_affine(s + rng.normal(0, 0.004, s.shape), A, np.zeros(2)) for s in inner]
    attrs = np.where(rng.random(len(slots)) < p_none, 0, rng.integers(1, len(_DETAIL_TYPES), len(slots)))
    details = []
    for k, (pos, t) in enumerate(zip(slots, attrs)):
        c = _affine(pos + rng.normal(0, 0.012, 2), A, np.zeros(2))
        details.append((k, _DETAIL_TYPES[t], c, float(rng.uniform(0.026, 0.04)), float(rng.uniform(0, np.pi))))
    h = rng.random()
    color = colorsys.hsv_to_rgb(h, rng.uniform(0.35, 0.8), rng.uniform(0.45, 0.9))
    return _Instance(smooth, inner_t, details, attrs.astype(np.int64), family, color)


def _render_edge(inst: _Instance, rng: np.random.Generator, size: int) -> np.ndarray:
    """Clean contour + all details at the true position, thin lines, plus texture/background clutter."""
    img = np.full((size, size), 255, np.uint8)
    closed = np.concatenate([inst.outline, inst.outline[:1]])
    _draw(img, closed, 0.6, rng.integers(20, 70))
    for s in inst.inner:
        _draw(img, s, 0.6, rng.integers(40, 110))
    for _, kind, c, sz, ang in inst.details:
        for s in _detail_strokes(kind, c, sz, ang):
            _draw(img, s, 0.6, rng.integers(30, 100))
    # clutter: short fragments inside the object (texture, shading edges) and a few outside
    mask = _polygon_mask(inst.outline, 64)
    ys, xs = np.nonzero(mask)
    n_in = int(rng.integers(12, 36))
    if len(ys):
        pick = rng.integers(0, len(ys), n_in)
        for y, x in zip(ys[pick], xs[pick]):
            p = np.array([(x + rng.random()) / 64, (y + rng.random()) / 64])
            a, L = rng.uniform(0, np.pi), rng.uniform(0.008, 0.035)
            seg = p + np.array([[-1.0], [1.0]]) * L * np.array([math.cos(a), math.sin(a)])
            _draw(img, seg, 0.5, rng.integers(110, 210))
    for _ in range(int(rng.integers(0, 4))):
        p = rng.uniform(0.05, 0.95, 2)
        a, L = rng.uniform(0, np.pi), rng.uniform(0.01, 0.04)
        _draw(img, p + np.array([[-1.0], [1.0]]) * L * np.array([math.cos(a), math.sin(a)]), 0.5,
              rng.integers(150, 230))
    return img


def _render_sketch(inst: _Instance, rng: np.random.Generator, size: int, p_omit: float = 0.25) -> np.ndarray:
    """Abstracted drawing: global shift/scale/rotation, wobbly broken strokes, thick variable lines,
    some details omitted or displaced."""
    img = np.full((size, size), 255, np.uint8)
    ang = math.radians(rng.uniform(-5, 5))
    sc = rng.uniform(0.9, 1.1) * np.array([1 + rng.uniform(-0.05, 0.05), 1 + rng.uniform(-0.05, 0.05)])
    A = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]]) @ np.diag(sc)
    t = rng.normal(0, 0.03, 2).clip(-0.06, 0.06)
    tf = lambda p: _affine(p, A, t)  # noqa: E731

    # outline as 2-4 strokes with small gaps/overlaps, each slightly misaligned
    pts = inst.outline
    n = len(pts)
    n_str = int(rng.integers(2, 5))
    cuts = np.sort(rng.choice(n, n_str, replace=False))
    for i in range(n_str):
        a = cuts[i] + int(rng.integers(-2, 3))
        b = (cuts[(i + 1) % n_str] if i + 1 < n_str else cuts[0] + n) + int(rng.integers(-2, 3))
        idx = np.arange(a, max(b, a + 2)) % n
        s = _wobble(pts[idx], rng, 0.004) + rng.normal(0, 0.006, 2)
        _draw(img, tf(s), rng.choice([1.0, 1.5, 2.0]), rng.integers(0, 60))
    for s in inst.inner:
        if rng.random() < 0.75:
            _draw(img, tf(_wobble(s, rng, 0.004) + rng.normal(0, 0.008, 2)), rng.choice([1.0, 1.5]),
                  rng.integers(0, 80))
    for _, kind, c, sz, dang in inst.details:
        if kind == "none" or rng.random() < p_omit:
            continue
        off = rng.normal(0, 0.012, 2)
        for s in _detail_strokes(kind, c + off, sz * rng.uniform(0.85, 1.2), dang + rng.normal(0, 0.15)):
            _draw(img, tf(_wobble(s, rng, 0.002, step=0.01)), rng.choice([1.0, 1.5]), rng.integers(0, 80))
    return img


def _render_photo(inst: _Instance, size: int) -> np.ndarray:
    img = np.full((size, size, 3), 255, np.uint8)
    col = np.asarray(inst.color)
    m = _polygon_mask(inst.outline, size)
    shade = np.linspace(1.08, 0.85, size)[:, None, None]  # soft top-down lighting
    img[m] = np.clip(col[None] * 255 * shade.repeat(size, 1)[m], 0, 255).astype(np.uint8)
    dark = tuple(int(v) for v in np.clip(col * 255 * 0.45, 0, 255))
    for s in inst.inner:
        _draw(img, s, 1.0, dark)
    for _, kind, c, sz, ang in inst.details:
        accent = tuple(int(v) for v in np.clip((1 - col) * 255 * 0.9, 0, 255))
        for s in _detail_strokes(kind, c, sz, ang):
            _draw(img, s, 1.2, accent)
    _draw(img, np.concatenate([inst.outline, inst.outline[:1]]), 0.8, (40, 40, 40))
    return img


def _similarity(attrs: np.ndarray, family: np.ndarray) -> np.ndarray:
    """Known instance similarity: 2 x (same shape family) + number of detail slots with the same detail
    (the same detail type, or both empty). The diagonal is +inf (an instance is most similar to itself)."""
    sim = (attrs[:, None, :] == attrs[None, :, :]).sum(-1).astype(float)
    sim += 2.0 * (family[:, None] == family[None, :])
    np.fill_diagonal(sim, np.inf)
    return sim


def _make_triplets(attrs: np.ndarray, family: np.ndarray, rng: np.random.Generator, n_per_query: int,
                   n_cand: int = 10, n_near: int = 4) -> list[list[tuple[int, int]]]:
    """QMUL-style annotation: per query, 10 candidate photos (the true match, its 4 nearest and 5 random
    others); every ordered pair (a, b) with sim(q, a) > sim(q, b) is a (more, less similar) triplet; keep a
    random ``n_per_query`` of them."""
    n = len(attrs)
    sim = _similarity(attrs, family)
    out = []
    for q in range(n):
        others = np.array([j for j in range(n) if j != q])
        if len(others) == 0:
            out.append([])
            continue
        s = sim[q, others] + rng.random(len(others)) * 1e-3  # random tie-break
        near = others[np.argsort(-s)[:n_near]]
        rest = np.setdiff1d(others, near)
        k = min(len(rest), n_cand - 1 - len(near))
        cand = np.concatenate([[q], near, rng.choice(rest, k, replace=False) if k > 0 else []]).astype(int)
        pairs = [(int(a), int(b)) for a in cand for b in cand if a != b and sim[q, a] > sim[q, b]]
        if len(pairs) > n_per_query:
            sel = rng.choice(len(pairs), n_per_query, replace=False)
            pairs = [pairs[i] for i in sorted(sel)]
        out.append(pairs)
    return out


def make_synthetic(n_train: int = 64, n_test: int = 32, size: int = 256, seed: int = 0,
                   n_triplets_per_query: int = 20, with_triplets: bool = True) -> QMULDataset:
    """A small fine-grained dataset of procedurally drawn shoe-like objects, deterministic by ``seed``.

    Each instance = one of 3 coarse shape families (sneaker, boot, pump) with small proportion changes, plus
    8 detail slots, each empty or holding a buckle / dots / stripes / notch / ring / cross / zigzag at an
    instance-specific position, size and angle. Per instance:

    - ``edges``: the clean contour and all details at the true position (thin lines) plus clutter
      (short texture fragments inside the object, a few outside) -- the photo-side input;
    - ``sketches``: an abstraction -- global shift/scale/rotation (a few degrees), wobbly contour broken
      into 2-4 misaligned strokes, thick variable lines, each detail omitted with probability 0.25;
    - ``photos``: flat-colour RGB renderings (for display);
    - ``triplets`` (if ``with_triplets``): per query, QMUL-style (more, less similar) pairs from the known
      similarity (same family + shared details), see :func:`_make_triplets`; indices within the split.

    White background (255), dark strokes, uint8. ~1 s for the default 96 instances at 256x256.
    """
    if n_train < 2 or n_test < 2:
        raise ValueError("need at least 2 train and 2 test instances")
    rng = np.random.default_rng(seed)
    fams = [_shoe_family(f) for f in _FAMILY_NAMES]
    splits = {}
    start = 1
    for split, n in (("train", n_train), ("test", n_test)):
        srng = np.random.default_rng(rng.integers(2 ** 63))
        fam_ids = srng.integers(0, len(fams), n)
        insts = [_make_instance(srng, int(f), fams[f]) for f in fam_ids]
        sk = np.stack([_render_sketch(i, srng, size) for i in insts])
        ed = np.stack([_render_edge(i, srng, size) for i in insts])
        ph = np.stack([_render_photo(i, size) for i in insts])
        trip = None
        if with_triplets:
            trip = _make_triplets(np.stack([i.attrs for i in insts]), fam_ids, srng, n_triplets_per_query)
        splits[split] = QMULSplit(torch.from_numpy(sk), torch.from_numpy(ed), torch.from_numpy(ph), trip,
                                  [str(start + i) for i in range(n)])
        start += n
    return QMULDataset("synthetic", splits["train"], splits["test"], f"synthetic(seed={seed})")


def make_synthetic_categories(n_classes: int = 10, per_class: int = 20, n_test_per_class: int = 5,
                              photos_per_class: int = 10, size: int = 256, seed: int = 0) -> CategoryDataset:
    """Category-level synthetic SBIR: class = a random closed shape family (+ inner strokes), drawn with
    the same renderers as :func:`make_synthetic`. Each class has ``photos_per_class`` instances (gallery
    photos, RGB); every sketch is drawn from a random instance of its class (as Sketchy's sketches are
    drawn from photos). Deterministic by ``seed``."""
    if n_classes < 2:
        raise ValueError("need at least 2 classes")
    rng = np.random.default_rng(seed)
    fams = [_radial_family(np.random.default_rng(rng.integers(2 ** 63))) for _ in range(n_classes)]
    tr, te, trl, tel, ph, phl, trn, ten, phn = [], [], [], [], [], [], [], [], []
    for c, fam in enumerate(fams):
        insts = [_make_instance(rng, c, fam, p_none=0.5) for _ in range(photos_per_class)]
        for j, inst in enumerate(insts):
            ph.append(_render_photo(inst, size))
            phl.append(c)
            phn.append(f"class{c:02d}/{j}")
        src = rng.integers(0, photos_per_class, per_class + n_test_per_class)
        for k, j in enumerate(src):
            img = _render_sketch(insts[j], rng, size)
            (tr if k < per_class else te).append(img)
            (trl if k < per_class else tel).append(c)
            (trn if k < per_class else ten).append(f"class{c:02d}/{j}-{k}")
    stack = lambda a, shp: torch.from_numpy(np.stack(a)) if a else torch.zeros(shp, dtype=torch.uint8)  # noqa: E731
    return CategoryDataset(
        name="synthetic_categories", categories=[f"class{c:02d}" for c in range(n_classes)],
        train_sketches=stack(tr, (0, size, size)), train_labels=torch.tensor(trl, dtype=torch.int64),
        test_sketches=stack(te, (0, size, size)), test_labels=torch.tensor(tel, dtype=torch.int64),
        photos=stack(ph, (0, size, size, 3)), photo_labels=torch.tensor(phl, dtype=torch.int64),
        source=f"synthetic(seed={seed})",
        split=f"per class: {per_class} train and {n_test_per_class} test sketches generated; all photos are the gallery",
        train_names=trn, test_names=ten, photo_names=phn)


# ----------------------------------------------------------------------------------------------------------
# Triplet sampling (the DSSA authors' recipe, vectorised)
# ----------------------------------------------------------------------------------------------------------
class TripletSampler:
    """Draw (anchor, positive, negative) index triplets for fine-grained SBIR training.

    Anchors (query sketches) are visited in a random order that is reshuffled every epoch, so each epoch
    sees every sketch once. For anchor ``a``:

    ``positives="annotated"`` (DSSA authors' recipe for shoes and chairs): a uniformly random annotated
    pair ``(more, less)`` of ``a`` gives ``positive = more``, ``negative = less``; with probability
    ``1 - hard_prob`` the negative is replaced by a uniformly random photo that appears in *none* of
    ``a``'s pairs and is not ``a``'s true match (so it is never the positive either). The annotated
    negative is kept as annotated, even in the rare pairs where it is the true match (1.3% of shoe pairs).

    ``positives="true_match"``: positive = ``a`` (the true match); negative = the ``less`` photo of a
    random annotated pair whose ``less`` is not ``a`` (probability ``hard_prob``), else a random photo
    other than ``a``.

    No annotation (``triplets=None``, e.g. handbags) or an anchor with no pairs: positive = ``a``,
    negative = a random other photo (the authors' handbags recipe).

    Random numbers come from a private ``torch.Generator`` seeded with ``seed``; every batch draws the same
    amount of randomness whatever the branch, and :meth:`state_dict` / :meth:`load_state_dict` resume
    an interrupted run exactly. Indices are built on the CPU and returned on ``device``.
    ``last_hard`` holds, for the latest batch, whether each negative came from the annotation.
    """

    MODES = ("annotated", "true_match")

    def __init__(self, split, positives: str = "annotated", hard_prob: float = 0.75, seed: int = 0,
                 device="cpu"):
        if isinstance(split, QMULSplit):
            n, triplets = len(split), split.triplets
        else:
            n, triplets = split
        n = int(n)
        if positives not in self.MODES:
            raise ValueError(f"positives must be one of {self.MODES}; got {positives!r}")
        if not 0.0 <= hard_prob <= 1.0:
            raise ValueError(f"hard_prob must be in [0, 1]; got {hard_prob}")
        if n < 2:
            raise ValueError("need at least 2 photos to draw negatives")
        if triplets is not None and len(triplets) != n:
            raise ValueError(f"triplets lists {len(triplets)} queries for {n} photos")
        self.n = n
        self.positives = positives
        self.hard_prob = float(hard_prob)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.has_annotation = triplets is not None
        self._gen = torch.Generator().manual_seed(self.seed)
        self._perm = torch.arange(n)
        self._pos = n  # forces a fresh permutation on the first draw
        self._epoch = -1
        self.last_hard = torch.zeros(0, dtype=torch.bool)
        self._build(triplets)

    def _build(self, triplets) -> None:
        n = self.n
        if triplets is None:
            triplets = [[] for _ in range(n)]
        counts = torch.tensor([len(t) for t in triplets], dtype=torch.int64)
        maxp = max(1, int(counts.max()))
        pairs = torch.zeros(n, maxp, 2, dtype=torch.int64)
        for i, t in enumerate(triplets):
            if len(t):
                pairs[i, :len(t)] = torch.as_tensor(t, dtype=torch.int64).reshape(-1, 2)
        if counts.sum() and (pairs.min() < 0 or pairs.max() >= n):
            raise ValueError(f"triplet photo indices must lie in 0..{n - 1}")
        self._pairs, self._npairs = pairs, counts
        # annotated mode: random-negative pool = photos in none of the anchor's pairs, minus the anchor
        valid = torch.arange(maxp)[None, :] < counts[:, None]  # [n, maxp]
        annotated = torch.zeros(n, n, dtype=torch.bool)
        rows = torch.arange(n)[:, None].expand(n, maxp)
        for k in (0, 1):
            annotated[rows[valid], pairs[..., k][valid]] = True
        self._annotated = annotated
        blocked = annotated | torch.eye(n, dtype=torch.bool)
        order = torch.argsort(blocked.to(torch.int8), dim=1, stable=True)  # allowed photos first
        self._rand_pool, self._nrand = order, (~blocked).sum(1)
        # true-match mode: hard pool = 'less similar' photos of pairs whose less != anchor (pair multiplicity)
        less = pairs[..., 1]
        ok = valid & (less != torch.arange(n)[:, None])
        order2 = torch.argsort((~ok).to(torch.int8), dim=1, stable=True)
        self._tm_pool, self._ntm = torch.gather(less, 1, order2), ok.sum(1)

    # -- anchors ------------------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Completed-or-current epoch index (0 during the first pass over the anchors)."""
        return max(self._epoch, 0)

    def _next_anchors(self, b: int) -> torch.Tensor:
        out, need = [], b
        while need > 0:
            if self._pos >= self.n:
                self._perm = torch.randperm(self.n, generator=self._gen)
                self._pos = 0
                self._epoch += 1
            take = min(need, self.n - self._pos)
            out.append(self._perm[self._pos:self._pos + take])
            self._pos += take
            need -= take
        return torch.cat(out)

    @staticmethod
    def _pick(u: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        """floor(u * count), clamped into 0..count-1 (0 when count == 0)."""
        return torch.minimum((u * count).long(), (count - 1).clamp(min=0))

    def sample(self, batch_size: int):
        """``(anchor_idx, pos_idx, neg_idx)``, three int64 tensors of length ``batch_size`` on ``device``."""
        b = int(batch_size)
        if b < 1:
            raise ValueError("batch_size must be >= 1")
        a = self._next_anchors(b)
        g = self._gen
        u_pair = torch.rand(b, generator=g, dtype=torch.float64)
        u_hard = torch.rand(b, generator=g, dtype=torch.float64)
        u_rand = torch.rand(b, generator=g, dtype=torch.float64)
        hard = u_hard < self.hard_prob
        other = (a + 1 + self._pick(u_rand, torch.full_like(a, self.n - 1))) % self.n  # any photo != a
        if self.positives == "annotated":
            cnt = self._npairs[a]
            k = self._pick(u_pair, cnt)
            pos_ann, neg_ann = self._pairs[a, k, 0], self._pairs[a, k, 1]
            rc = self._nrand[a]
            neg_rand = self._rand_pool[a, self._pick(u_rand, rc)]
            use_hard = hard | (rc == 0)
            neg = torch.where(use_hard, neg_ann, neg_rand)
            has = cnt > 0
            pos = torch.where(has, pos_ann, a)
            neg = torch.where(has, neg, other)
            self.last_hard = use_hard & has
        else:
            cnt = self._ntm[a]
            neg_hard = self._tm_pool[a, self._pick(u_pair, cnt)]
            use_hard = hard & (cnt > 0)
            pos = a.clone()
            neg = torch.where(use_hard, neg_hard, other)
            self.last_hard = use_hard
        d = self.device
        return a.to(d), pos.to(d), neg.to(d)

    def is_annotated(self, anchor: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        """Whether ``photo`` appears in any annotated pair of ``anchor`` (elementwise, CPU bool)."""
        return self._annotated[anchor.cpu(), photo.cpu()]

    # -- resume -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"n": self.n, "positives": self.positives, "hard_prob": self.hard_prob, "seed": self.seed,
                "perm": self._perm.clone(), "pos": self._pos, "epoch": self._epoch,
                "generator": self._gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if int(state["n"]) != self.n:
            raise ValueError(f"sampler state is for {state['n']} anchors, this sampler has {self.n}")
        if state.get("positives", self.positives) != self.positives:
            raise ValueError(f"sampler state is for positives={state['positives']!r}, not {self.positives!r}")
        self.hard_prob = float(state.get("hard_prob", self.hard_prob))
        self._perm = torch.as_tensor(state["perm"], dtype=torch.int64).clone()
        self._pos = int(state["pos"])
        self._epoch = int(state["epoch"])
        self._gen.set_state(torch.as_tensor(state["generator"], dtype=torch.uint8).clone())


# ----------------------------------------------------------------------------------------------------------
# Augmentation and input normalisation (batched, on whatever device the batch lives)
# ----------------------------------------------------------------------------------------------------------
def _as_bchw(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:
        return x.unsqueeze(1)
    if x.dim() == 4:
        return x
    raise ValueError(f"expected [B,H,W] or [B,C,H,W], got shape {tuple(x.shape)}")


def augment(x: torch.Tensor, crop: int = CROP, flip: bool = True,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Random ``crop`` x ``crop`` windows (independent offset per image, every valid offset 0..H-crop
    equally likely) and independent horizontal flips (probability 1/2), as one gather on ``x``'s device.

    ``x``: [B,H,W] or [B,C,H,W] (any dtype; uint8 stays uint8) -> [B,C,crop,crop] (C=1 for [B,H,W]).
    Randomness is drawn on ``generator``'s device (CPU default generator when None) in the order:
    row offsets, column offsets, flip bits; so a seeded generator gives the same crops on CPU and GPU.
    """
    x = _as_bchw(x)
    B, C, H, W = x.shape
    if crop > H or crop > W:
        raise ValueError(f"crop {crop} larger than the images ({H}x{W})")
    gdev = generator.device if generator is not None else torch.device("cpu")
    oy = torch.randint(0, H - crop + 1, (B,), generator=generator, device=gdev)
    ox = torch.randint(0, W - crop + 1, (B,), generator=generator, device=gdev)
    if flip:
        fl = torch.rand(B, generator=generator, device=gdev) < 0.5
    else:
        fl = torch.zeros(B, dtype=torch.bool, device=gdev)
    dev = x.device
    oy, ox, fl = oy.to(dev), ox.to(dev), fl.to(dev)
    ar = torch.arange(crop, device=dev)
    rows = oy[:, None] + ar  # [B, crop]
    cols = torch.where(fl[:, None], ox[:, None] + (crop - 1 - ar), ox[:, None] + ar)  # flipped -> reversed
    bidx = torch.arange(B, device=dev)[:, None, None]
    out = x.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]]  # [B, crop, crop, C]
    return out.permute(0, 3, 1, 2).contiguous()


def center_crop(x: torch.Tensor, crop: int = CROP) -> torch.Tensor:
    """The centre ``crop`` window (offset (H-crop)//2), [B,H,W] or [B,C,H,W] -> [B,C,crop,crop]."""
    x = _as_bchw(x)
    H, W = x.shape[-2:]
    if crop > H or crop > W:
        raise ValueError(f"crop {crop} larger than the images ({H}x{W})")
    y0, x0 = (H - crop) // 2, (W - crop) // 2
    return x[..., y0:y0 + crop, x0:x0 + crop].contiguous()


def ten_views(x: torch.Tensor, crop: int = CROP) -> torch.Tensor:
    """The 10 test views [10,B,C,crop,crop]: top-left, top-right, bottom-left, bottom-right, centre,
    then the same five mirrored left-right (view ``5+k`` = ``flip(view k)``)."""
    x = _as_bchw(x)
    H, W = x.shape[-2:]
    if crop > H or crop > W:
        raise ValueError(f"crop {crop} larger than the images ({H}x{W})")
    offs = [(0, 0), (0, W - crop), (H - crop, 0), (H - crop, W - crop), ((H - crop) // 2, (W - crop) // 2)]
    views = [x[..., y:y + crop, c:c + crop] for y, c in offs]
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
