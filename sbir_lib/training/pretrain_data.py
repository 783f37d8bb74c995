"""What the offline Sketch-a-Net pretraining trains on: category-level sketches and photo edge maps
(Sketchy-mini), plus, optionally, the instance pairs of the QMUL *training* splits.

Taught in: ``notebooks/05_reproduce_tables.ipynb`` ("Where accuracy comes from"); used by
:mod:`sbir_lib.training.pretrain`.

- :class:`PretrainData`: the training sketches and test sketches of a category-level set and the edge maps of
  all its photos, one label per category (:func:`prepare_data`: Sketchy-mini; :func:`synthetic_data`: a tiny
  stand-in for the tests).
- :class:`PairPool`: the (sketch, edge map of its photo) pairs of the QMUL training splits, with a validation
  split held out of each: exactly the instances :func:`sbir_lib.training.triplet.carve_validation` holds out
  (seed 0, ``validation_size`` of the profile), so the fine-tuning recipes
  chosen on those validation instances (:mod:`sbir_lib.experiments.init_recipe`) are chosen on pairs the
  pretraining never saw. The test splits are never read. :func:`qmul_pairs` builds it.
- :func:`pack` / :func:`load_packed`: everything above in one ``pretrain`` pack (:mod:`sbir_lib.data.pack`)
  for a GPU machine without the image folders.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sbir_lib.core.io import sha256_file
from sbir_lib.data import datasets as D
from sbir_lib.data import edges as E
from sbir_lib.data.pack import read_pack, write_pack
from sbir_lib.data.synthetic import make_synthetic_categories
from sbir_lib.core.profiles import as_profile
from sbir_lib.training.triplet import carve_validation

__all__ = ["PretrainData", "PairPool", "prepare_data", "synthetic_data", "qmul_pairs", "pack", "load_packed"]


def _check_images(obj, names) -> None:
    for name in names:
        t = getattr(obj, name)
        if t.dtype != torch.uint8 or t.dim() != 3:
            raise ValueError(f"{name} must be uint8 [N, H, W]; got {t.dtype} {tuple(t.shape)}")


@dataclass
class PairPool:
    """Instance pairs of fine-grained datasets: ``sketches[i]`` was drawn from the photo whose edge map is
    ``edges[i]``; ``group[i]`` indexes ``datasets`` (pairs of one dataset are contiguous). ``val_*``: the
    validation instances held out of each training split (never trained on; only for the reported acc@1)."""

    datasets: list[str]
    sketches: torch.Tensor
    edges: torch.Tensor
    group: torch.Tensor
    val_sketches: torch.Tensor
    val_edges: torch.Tensor
    val_group: torch.Tensor
    held_out: str = ""

    def __post_init__(self):
        _check_images(self, ("sketches", "edges", "val_sketches", "val_edges"))
        if not (len(self.sketches) == len(self.edges) == len(self.group)):
            raise ValueError("sketches, edges and group of a PairPool differ in length")
        if not (len(self.val_sketches) == len(self.val_edges) == len(self.val_group)):
            raise ValueError("val_sketches, val_edges and val_group of a PairPool differ in length")
        if len(self.group) and bool((self.group[1:] < self.group[:-1]).any()):
            raise ValueError("the pairs of one dataset must be contiguous (group sorted)")

    def __len__(self) -> int:
        return len(self.sketches)

    def ranges(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each dataset's pairs, in the order of :attr:`datasets`."""
        g = self.group.tolist()
        return [(g.index(k), len(g) - g[::-1].index(k)) if k in g else (0, 0) for k in range(len(self.datasets))]

    def describe(self) -> str:
        counts = torch.bincount(self.group, minlength=len(self.datasets)).tolist()
        return (f"{len(self)} QMUL training pairs ({', '.join(f'{d} {n}' for d, n in zip(self.datasets, counts))}); "
                f"{len(self.val_sketches)} validation pairs held out")


@dataclass
class PretrainData:
    """Sketches and photo edge maps of a category-level set, uint8 ``[N, H, W]`` (white background), and
    optionally a :class:`PairPool` of fine-grained instance pairs."""

    categories: list[str]
    sketches: torch.Tensor  # training sketches
    sketch_labels: torch.Tensor
    test_sketches: torch.Tensor  # held out: only for the reported accuracy
    test_labels: torch.Tensor
    edges: torch.Tensor  # edge maps of every photo
    edge_labels: torch.Tensor
    source: str
    split: str
    edge_settings: dict = field(default_factory=dict)
    packed: str | None = None  # "<file name> sha256=<...>" when read from a pack
    pairs: PairPool | None = None

    def __post_init__(self):
        _check_images(self, ("sketches", "test_sketches", "edges"))
        for imgs, labs in (("sketches", "sketch_labels"), ("test_sketches", "test_labels"), ("edges", "edge_labels")):
            if len(getattr(self, imgs)) != len(getattr(self, labs)):
                raise ValueError(f"{imgs} and {labs} differ in length")
        n = len(self.categories)
        for labs in ("sketch_labels", "edge_labels"):
            t = getattr(self, labs)
            if len(t) and (int(t.min()) < 0 or int(t.max()) >= n):
                raise ValueError(f"{labs} must lie in 0..{n - 1}")
        missing = sorted(set(range(n)) - set(self.edge_labels.tolist()))
        if missing:
            raise ValueError(f"categories without any edge map: {[self.categories[i] for i in missing][:5]}")
        if self.pairs is not None and self.pairs.sketches.shape[1:] != self.sketches.shape[1:]:
            raise ValueError(f"the pair images ({tuple(self.pairs.sketches.shape[1:])}) and the category images "
                             f"({tuple(self.sketches.shape[1:])}) must be of the same size")

    def describe(self) -> str:
        s = (f"{self.source}: {len(self.categories)} categories, {len(self.sketches)} training sketches + "
             f"{len(self.edges)} photo edge maps; {len(self.test_sketches)} held-out test sketches")
        return s + (f"; {self.pairs.describe()}" if self.pairs is not None else "")

    def subset(self, k: int) -> "PretrainData":
        """The first ``k`` categories (labels stay 0..k-1); the pair pool is kept whole."""
        if k >= len(self.categories):
            return self
        keep = lambda lab: lab < k  # noqa: E731
        ms, mt, me = keep(self.sketch_labels), keep(self.test_labels), keep(self.edge_labels)
        return dataclasses.replace(
            self, categories=self.categories[:k], sketches=self.sketches[ms], sketch_labels=self.sketch_labels[ms],
            test_sketches=self.test_sketches[mt], test_labels=self.test_labels[mt], edges=self.edges[me],
            edge_labels=self.edge_labels[me], source=f"{self.source} (first {k} categories)")

    def with_pairs(self, pairs: PairPool | None) -> "PretrainData":
        return dataclasses.replace(self, pairs=pairs)


def _from_category_dataset(cd: D.CategoryDataset, settings: E.EdgeSettings, progress: bool) -> PretrainData:
    edges = E.photos_to_edges(cd.photos, settings, progress=progress)
    return PretrainData(
        categories=list(cd.categories), sketches=cd.train_sketches, sketch_labels=cd.train_labels,
        test_sketches=cd.test_sketches, test_labels=cd.test_labels, edges=torch.from_numpy(edges),
        edge_labels=cd.photo_labels, source=cd.source, split=cd.split, edge_settings=settings.to_dict())


def qmul_pairs(datasets, profile: str, root=None, splits: dict | None = None) -> PairPool:
    """The training pairs of the QMUL ``datasets`` minus each one's validation split (seed 0,
    the profile's ``validation_size`` instances: the split every recipe search uses). ``splits``: the
    training :class:`~sbir_lib.data.datasets.QMULSplit` per name, instead of reading the data (tests).
    The edge maps are the ones the datasets ship (what the photo branch sees when fine-tuning)."""
    names = list(datasets)
    bad = [d for d in names if d not in D.QMUL_NAMES]
    if bad or not names:
        raise ValueError(f"pair datasets must be some of {', '.join(D.QMUL_NAMES)}; got {names}")
    val_size = as_profile(profile).validation_size
    parts, vals = [], []
    for k, name in enumerate(names):
        split = splits[name] if splits is not None else D.load_qmul(name, root=root, photos=False).train
        n_val = val_size if val_size < len(split) // 2 else len(split) // 4  # tiny splits (tests)
        train, val = carve_validation(split, n_val, seed=0)
        parts.append((train.sketches, train.edges, torch.full((len(train),), k, dtype=torch.long)))
        vals.append((val.sketches, val.edges, torch.full((len(val),), k, dtype=torch.long)))
    cat = lambda rows, i: torch.cat([r[i] for r in rows])  # noqa: E731
    return PairPool(datasets=names, sketches=cat(parts, 0), edges=cat(parts, 1), group=cat(parts, 2),
                    val_sketches=cat(vals, 0), val_edges=cat(vals, 1), val_group=cat(vals, 2),
                    held_out=f"validation split of each training split: carve_validation(val_size="
                             f"{val_size}, seed=0); test splits not read")


def prepare_data(root=None, categories: int | None = None, settings: E.EdgeSettings = E.DEFAULT_SETTINGS,
                 progress: bool = False, pairs=(), profile: str = "full") -> PretrainData:
    """Sketchy-mini training/test sketches + the edge maps of all its photos (:mod:`sbir_lib.data.edges`),
    and the :func:`qmul_pairs` of ``pairs`` (QMUL dataset names; none by default).

    Raises :class:`sbir_lib.data.datasets.DatasetMissingError` naming the download command when it is absent."""
    cd = D.load_sketchy_mini(root=root, categories=categories)
    data = _from_category_dataset(cd, settings, progress)
    return data.with_pairs(qmul_pairs(pairs, profile, root) if pairs else None)


def synthetic_data(n_classes: int = 4, per_class: int = 6, n_test_per_class: int = 2, photos_per_class: int = 4,
                   size: int = 256, seed: int = 0, settings: E.EdgeSettings = E.DEFAULT_SETTINGS) -> PretrainData:
    """A tiny stand-in built from :func:`sbir_lib.data.synthetic.make_synthetic_categories` (tests, no downloads)."""
    cd = make_synthetic_categories(n_classes=n_classes, per_class=per_class, n_test_per_class=n_test_per_class,
                                   photos_per_class=photos_per_class, size=size, seed=seed)
    return _from_category_dataset(cd, settings, progress=False)


_PAIR_ARRAYS = ("sketches", "edges", "group", "val_sketches", "val_edges", "val_group")


def pack(path, data: PretrainData) -> Path:
    """Write ``data`` as a ``pretrain`` pack (:mod:`sbir_lib.data.pack`: one compressed ``.npz`` of uint8
    images, labels, split, names, edge extractor settings and the pair pool, if any); return the path."""
    arrays = dict(sketches=data.sketches.numpy(), sketch_labels=data.sketch_labels.numpy().astype(np.int16),
                  test_sketches=data.test_sketches.numpy(), test_labels=data.test_labels.numpy().astype(np.int16),
                  edges=data.edges.numpy(), edge_labels=data.edge_labels.numpy().astype(np.int16))
    header = {"source": data.source, "split": data.split, "edge_settings": data.edge_settings,
              "categories": data.categories}
    if data.pairs is not None:
        p = data.pairs
        arrays.update({f"pairs_{k}": getattr(p, k).numpy().astype(np.int16) if "group" in k else getattr(p, k).numpy()
                       for k in _PAIR_ARRAYS})
        header["pairs"] = {"datasets": p.datasets, "held_out": p.held_out}
    return write_pack(path, "pretrain", arrays, header, compress=True)


def load_packed(path) -> PretrainData:
    """Read a ``pretrain`` pack written by :func:`pack` (``python -m sbir_lib.training.pretrain pack``)."""
    path = Path(path)
    arrays, meta = read_pack(path, "pretrain")
    t = lambda k, dt=None: torch.from_numpy(arrays[k].astype(dt) if dt else arrays[k])  # noqa: E731
    pairs = None
    if "pairs" in meta:
        pairs = PairPool(datasets=list(meta["pairs"]["datasets"]), held_out=meta["pairs"]["held_out"],
                         **{k: t(f"pairs_{k}", np.int64 if "group" in k else None) for k in _PAIR_ARRAYS})
    return PretrainData(
        categories=list(meta["categories"]), sketches=t("sketches"), sketch_labels=t("sketch_labels", np.int64),
        test_sketches=t("test_sketches"), test_labels=t("test_labels", np.int64), edges=t("edges"),
        edge_labels=t("edge_labels", np.int64), source=meta["source"], split=meta["split"],
        edge_settings=meta["edge_settings"], packed=f"{path.name} sha256={sha256_file(path)[:16]}", pairs=pairs)
