"""Real data for fine-grained and category-level SBIR: the QMUL-V1 and Sketchy-mini loaders.

Taught in: ``notebooks/00_data_and_domain_gap.ipynb`` (what a sketch, an edge map and a photo look like,
and why they differ -- the domain gap).

- **QMUL-V1 fine-grained data** (shoes, chairs, handbags; Yu et al., "Sketch Me That Shoe", CVPR 2016,
  the data DSSA, ICCV 2017 trains on): :func:`load_qmul` reads
  ``<data_root>/qmul_v1/<ds>/<ds>_{sketch,edge}_db_{train,test}.mat`` (key ``data``, uint8 ``(N,256,256)``,
  white background, row ``i`` of the sketch and edge arrays = the same instance, i.e. the true match),
  the RGB photos ``photos/<split>/<n>.jpg`` (shoes and chairs only) and the human relative-similarity
  annotation ``<ds>_annotation.json`` (shoes and chairs only; the upstream ``handbags_annotation.json``
  is a byte copy of the shoes file and is never read). The network's photo branch sees the *edge maps*;
  the RGB photos are for display.
- **Sketchy-mini** (:func:`load_sketchy_mini`): 125 categories x (25 sketches, 25 photos) of real Sketchy
  data for category-level SBIR, with a deterministic, documented train/test split of the sketches.
- The containers (:class:`QMULSplit`, :class:`QMULDataset`, :class:`CategoryDataset`) and the two errors
  every loader raises instead of returning partial data: :class:`DatasetMissingError` (names the path and
  the download command) and :class:`DatasetCorruptError` (names the file).

The other data jobs have their own modules: synthetic stand-ins and the real-or-synthetic choice
(:mod:`sbir_lib.data.synthetic`), batch samplers (:mod:`sbir_lib.data.samplers`), augmentation and input
normalisation (:mod:`sbir_lib.data.augment`), one-file packs for offline machines (:mod:`sbir_lib.data.pack`).
"""
from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from sbir_lib.core import config

logger = logging.getLogger(__name__)

__all__ = [
    "QMULSplit", "QMULDataset", "CategoryDataset", "DatasetMissingError", "DatasetCorruptError",
    "QMUL_NAMES", "QMUL_COUNTS", "QMUL_ANNOTATED", "QMUL_WITH_PHOTOS", "QMUL_SIZE",
    "load_qmul", "real_data_available", "photos_present", "qmul_dir", "load_sketchy_mini",
    "read_images", "n_workers",
]

QMUL_NAMES = ("shoes", "chairs", "handbags")
#: (train, test) sketch/photo pairs per QMUL-V1 dataset.
QMUL_COUNTS = {"shoes": (304, 115), "chairs": (200, 97), "handbags": (400, 168)}
#: datasets with a usable relative-similarity annotation json and RGB photos upstream.
QMUL_ANNOTATED = ("shoes", "chairs")
QMUL_WITH_PHOTOS = ("shoes", "chairs")
QMUL_SIZE = 256

_SKETCHY_DIR = "sketchy_mini"
_QMUL_DIR = "qmul_v1"


# ----------------------------------------------------------------------------------------------------------
# Containers and errors
# ----------------------------------------------------------------------------------------------------------
class DatasetMissingError(FileNotFoundError):
    """A dataset (or one of its files) is not under the data root. The message names the path looked at
    and the command that fetches it."""


class DatasetCorruptError(ValueError):
    """A dataset file exists but cannot be used (truncated, unreadable, wrong shape). Names the file and
    what to do (``advice``; default: download it again)."""

    def __init__(self, path, why: str, advice: str = "Delete it and download it again."):
        self.path = Path(path)
        self.why = why
        super().__init__(f"corrupt dataset file {self.path}: {why}. {advice}")


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


def _missing(path: Path, dataset: str, what: str = "", root=None) -> DatasetMissingError:
    extra = f" ({what})" if what else ""
    return DatasetMissingError(
        f"{dataset} data not found: {path} does not exist{extra}. The data root is --root / root=, else "
        f"$SBIR_DATA_ROOT, else <repo>/data. Fetch it with: {config.download_command(dataset, root)}")


def qmul_dir(name: str, root=None) -> Path:
    """``<data_root>/qmul_v1/<name>``, the folder of one QMUL-V1 dataset."""
    return config.data_root(root) / _QMUL_DIR / name


def _qmul_mat_path(name: str, kind: str, split: str, root=None) -> Path:
    return qmul_dir(name, root) / f"{name}_{kind}_db_{split}.mat"


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


def n_workers() -> int:
    """Threads for decoding images (PIL releases the GIL while decoding)."""
    return max(2, min(16, 2 * (os.cpu_count() or 1)))


def read_images(paths: Sequence[Path], mode: str, size: int | None, dataset: str,
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

    with ThreadPoolExecutor(max_workers=n_workers()) as pool:
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
    d = qmul_dir(name, root)
    files = [_qmul_mat_path(name, k, s, root) for s in ("train", "test") for k in ("sketch", "edge")]
    if name in QMUL_ANNOTATED:
        files.append(d / f"{name}_annotation.json")
    return files


def photos_present(name: str, root=None) -> bool:
    """Whether the RGB photos of QMUL ``name`` are under the data root (shoes and chairs have them)."""
    if name not in QMUL_WITH_PHOTOS:
        return False
    ntr, nte = QMUL_COUNTS[name]
    d = qmul_dir(name, root) / "photos"
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
    d = qmul_dir(name, root)
    if not d.is_dir():
        raise _missing(d, ds_key, root=root)

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

    load_photos = photos is True or (photos == "auto" and photos_present(name, root))
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
                raise _missing(pdir, ds_key, "RGB photos; pass photos=False to load without them", root=root)
            ph = torch.from_numpy(read_images([pdir / f"{s}.jpg" for s in names], "RGB", None, ds_key,
                                               expect=(QMUL_SIZE, QMUL_SIZE)))
        splits[split] = QMULSplit(sketches=torch.from_numpy(arrays[("sketch", split)]),
                                  edges=torch.from_numpy(arrays[("edge", split)]),
                                  photos=ph, triplets=trip, names=names)
    expected = QMUL_COUNTS[name]
    got = (len(splits["train"]), len(splits["test"]))
    if got != expected:
        logger.warning("QMUL %s has %s train/test pairs; the published release has %s", name, got, expected)
    return QMULDataset(name=name, train=splits["train"], test=splits["test"], source="qmul_v1")


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
            raise _missing(base / sub, "sketchy-mini", root=root)
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
            raise _missing(pdir, "sketchy-mini", root=root)
        ph = sorted(p.name for p in os.scandir(pdir) if p.name.lower().endswith(".jpg"))
        if len(sk) <= n_train_per_class:
            raise ValueError(f"category {c!r} has {len(sk)} sketches; n_train_per_class={n_train_per_class} "
                             f"leaves none for testing")
        if not ph:
            raise _missing(pdir / "*.jpg", "sketchy-mini", "no photos", root=root)
        tr_paths += [base / "sketch" / c / f for f in sk[:n_train_per_class]]
        te_paths += [base / "sketch" / c / f for f in sk[n_train_per_class:]]
        tr_lab += [ci] * n_train_per_class
        te_lab += [ci] * (len(sk) - n_train_per_class)
        ph_paths += [pdir / f for f in ph]
        ph_lab += [ci] * len(ph)

    rs = None if size == 256 else size
    sk_all = read_images(tr_paths + te_paths, "L", rs, "sketchy-mini")
    photos = read_images(ph_paths, "RGB", rs, "sketchy-mini")
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
