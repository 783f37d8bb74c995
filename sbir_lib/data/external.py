"""Loaders for the full category-level SBIR benchmarks, for users who download them.

Used by :mod:`sbir_lib.experiments.dase_mems` (``load_sketchy`` / ``load_tuberlin_ext`` give the same
:class:`~sbir_lib.data.paired.PairedData` as Sketchy-mini, so every DASE/MEMS row trains on them); mentioned
in ``notebooks/08_mems.ipynb``. Neither dataset can be fetched by a script: the registry
(``python data_download.py --dataset sketchy`` / ``--dataset tuberlin``) prints the manual steps.

- **The Sketchy Database** (Sangkloy et al., SIGGRAPH 2016), official ``rendered_256x256`` archive, unpacked
  under the data root::

      sketchy/256x256/sketch/tx_000000000000/<category>/<photo_id>-<k>.png   (75,471 sketches)
      sketchy/256x256/photo/tx_000000000000/<category>/<photo_id>.jpg        (12,500 photos, 125 categories)

  Every sketch names the photo it was drawn from, so the split is by photo: per category,
  ``test_photos_per_class`` photos (a seeded random choice) form the gallery and *their* sketches are the
  queries; the other photos and their sketches train.
- **TU-Berlin Extension**: the TU-Berlin sketches (Eitz et al., SIGGRAPH 2012; ``tuberlin/png/<category>/<n>.png``
  from the official ``sketches_png.zip``) with the natural images of the extension by Zhang et al. (2016),
  which are *not* in that archive: obtain them from the release your protocol uses and place them as
  ``tuberlin/images/<category>/*.jpg`` (other common folder names are recognised, see ``TUBERLIN_LAYOUTS``;
  or pass ``sketch_dir`` / ``photo_dir``). Sketches are not linked to photos: per category
  ``test_sketches_per_class`` sketches are queries and ``test_photos_per_class`` photos the gallery (seeded
  random choices), the rest train. Category folders present on only one side are skipped (and listed).

The split sizes are parameters with our defaults, not any paper's protocol: set them to the protocol you
follow. ``max_*_per_class`` caps what is decoded (the full sets do not fit a laptop's memory at 256 px).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from sbir_lib.core import config as _config
from sbir_lib.data import datasets as D
from sbir_lib.data.paired import PairedData

__all__ = ["SKETCHY_DIRS", "TUBERLIN_LAYOUTS", "load_sketchy", "load_tuberlin_ext"]

SKETCHY_DIRS = ("sketchy/256x256/sketch/tx_000000000000", "sketchy/256x256/photo/tx_000000000000")
# (sketch folder, photo folder) pairs under the data root, tried in order
TUBERLIN_LAYOUTS = (
    ("tuberlin/png", "tuberlin/images"),
    ("tuberlin/png", "tuberlin/ImageResized"),
    ("tuberlin/png_ready", "tuberlin/ImageResized"),
    ("TUBerlin/png_ready", "TUBerlin/ImageResized"),
    ("TU-Berlin/sketches", "TU-Berlin/images"),
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _files(d: Path, suffixes=IMAGE_SUFFIXES) -> list[str]:
    return sorted(e.name for e in os.scandir(d) if e.is_file() and e.name.lower().endswith(suffixes))


def _categories(sketch_dir: Path, photo_dir: Path, categories) -> tuple[list[str], list[str]]:
    sk = {p.name for p in sketch_dir.iterdir() if p.is_dir()}
    ph = {p.name for p in photo_dir.iterdir() if p.is_dir()}
    both = sorted(sk & ph)
    skipped = sorted(sk ^ ph)
    if categories is not None:
        want = list(categories)
        unknown = [c for c in want if c not in both]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; available: {', '.join(both)}")
        both = want
    if not both:
        raise D.DatasetMissingError(f"no category folders common to {sketch_dir} and {photo_dir}")
    return both, skipped


def _paired(name, source, cats, split, size, tr_s, tr_sl, tr_p, tr_pl, te_s, te_l, ga, ga_l):
    rs = None if size == 256 else size
    read = lambda paths, mode: torch.from_numpy(D.read_images(paths, mode, rs, name))  # noqa: E731
    lab = lambda v: torch.tensor(v, dtype=torch.int64)  # noqa: E731
    return PairedData(
        name=name, source=source, level="category", categories=cats,
        train_sketches=read(tr_s, "L"), train_sketch_labels=lab(tr_sl),
        train_photos=read(tr_p, "RGB"), train_photo_labels=lab(tr_pl),
        test_sketches=read(te_s, "L"), test_labels=lab(te_l), gallery=read(ga, "RGB"), gallery_labels=lab(ga_l),
        split=split, names={"test_sketches": [f"{p.parent.name}/{p.stem}" for p in te_s],
                            "gallery": [f"{p.parent.name}/{p.stem}" for p in ga]})


def load_sketchy(root=None, size: int = 224, test_photos_per_class: int = 10, max_train_photos_per_class: int | None = None,
                 max_sketches_per_photo: int | None = None, categories: Sequence[str] | None = None,
                 seed: int = 0):
    """The full Sketchy release (layout in the module docstring) as a :class:`~sbir_lib.data.paired.PairedData`.

    Per category: a seeded random ``test_photos_per_class`` photos are the gallery and their sketches the
    queries; the other photos (at most ``max_train_photos_per_class``) and their sketches (at most
    ``max_sketches_per_photo`` each) train. Images are resized to ``size``.
    """
    base = _config.data_root(root)
    sk_dir, ph_dir = base / SKETCHY_DIRS[0], base / SKETCHY_DIRS[1]
    for d in (sk_dir, ph_dir):
        if not d.is_dir():
            raise D.DatasetMissingError(f"Sketchy not found: {d} does not exist. It is a manual download; "
                                        f"`python data_download.py --dataset sketchy` prints the steps.")
    cats, _ = _categories(sk_dir, ph_dir, categories)
    rng = np.random.default_rng(seed)
    lists = {k: [] for k in ("trs", "trsl", "trp", "trpl", "tes", "tel", "ga", "gal")}
    for ci, c in enumerate(cats):
        photos = _files(ph_dir / c)
        by_photo: dict[str, list[str]] = {}
        for f in _files(sk_dir / c):
            by_photo.setdefault(f.rsplit("-", 1)[0], []).append(f)
        if len(photos) <= test_photos_per_class:
            raise ValueError(f"category {c!r} has {len(photos)} photos; test_photos_per_class="
                             f"{test_photos_per_class} leaves none for training")
        test = set(rng.choice(len(photos), test_photos_per_class, replace=False).tolist())
        train_idx = [i for i in range(len(photos)) if i not in test]
        if max_train_photos_per_class is not None:
            train_idx = train_idx[:max_train_photos_per_class]
        for i in sorted(test):
            stem = Path(photos[i]).stem
            lists["ga"].append(ph_dir / c / photos[i]); lists["gal"].append(ci)
            for f in by_photo.get(stem, []):
                lists["tes"].append(sk_dir / c / f); lists["tel"].append(ci)
        for i in train_idx:
            stem = Path(photos[i]).stem
            lists["trp"].append(ph_dir / c / photos[i]); lists["trpl"].append(ci)
            for f in by_photo.get(stem, [])[:max_sketches_per_photo]:
                lists["trs"].append(sk_dir / c / f); lists["trsl"].append(ci)
    split = (f"per category {test_photos_per_class} random photos (seed {seed}) are the gallery and their "
             f"sketches the queries; the other photos and their sketches train")
    return _paired("sketchy", "sketchy_rendered_256x256", cats, split, size, lists["trs"], lists["trsl"],
                   lists["trp"], lists["trpl"], lists["tes"], lists["tel"], lists["ga"], lists["gal"])


def _find_tuberlin(base: Path) -> tuple[Path, Path]:
    tried = []
    for s, p in TUBERLIN_LAYOUTS:
        if (base / s).is_dir() and (base / p).is_dir():
            return base / s, base / p
        tried.append(f"{base / s} + {base / p}")
    raise D.DatasetMissingError(
        "TU-Berlin Extension not found; looked for (sketches + photos): " + "; ".join(tried) +
        ". The sketches are a manual download (`python data_download.py --dataset tuberlin` prints the steps); "
        "the extension's photos come from the release your protocol uses (or pass sketch_dir= and photo_dir=).")


def load_tuberlin_ext(root=None, size: int = 224, test_sketches_per_class: int = 10,
                      test_photos_per_class: int = 50, max_train_sketches_per_class: int | None = None,
                      max_train_photos_per_class: int | None = None, categories: Sequence[str] | None = None,
                      seed: int = 0, sketch_dir=None, photo_dir=None):
    """TU-Berlin sketches + the extension's photos as a :class:`~sbir_lib.data.paired.PairedData` (layouts in
    the module docstring). Per category, seeded random choices: ``test_sketches_per_class`` query sketches,
    ``test_photos_per_class`` gallery photos; the rest train (capped by the ``max_*`` arguments)."""
    base = _config.data_root(root)
    if (sketch_dir is None) != (photo_dir is None):
        raise ValueError("give both sketch_dir and photo_dir, or neither")
    if sketch_dir is None:
        sk_dir, ph_dir = _find_tuberlin(base)
    else:
        sk_dir, ph_dir = Path(sketch_dir), Path(photo_dir)
        for d in (sk_dir, ph_dir):
            if not d.is_dir():
                raise D.DatasetMissingError(f"{d} does not exist")
    cats, _ = _categories(sk_dir, ph_dir, categories)
    rng = np.random.default_rng(seed)
    lists = {k: [] for k in ("trs", "trsl", "trp", "trpl", "tes", "tel", "ga", "gal")}
    for ci, c in enumerate(cats):
        sks, phs = _files(sk_dir / c), _files(ph_dir / c)
        for what, files, n in (("sketches", sks, test_sketches_per_class), ("photos", phs, test_photos_per_class)):
            if len(files) <= n:
                raise ValueError(f"category {c!r} has {len(files)} {what}; {n} for testing leaves none for training")
        ts = set(rng.choice(len(sks), test_sketches_per_class, replace=False).tolist())
        tp = set(rng.choice(len(phs), test_photos_per_class, replace=False).tolist())
        tr_s = [i for i in range(len(sks)) if i not in ts][:max_train_sketches_per_class]
        tr_p = [i for i in range(len(phs)) if i not in tp][:max_train_photos_per_class]
        lists["tes"] += [sk_dir / c / sks[i] for i in sorted(ts)]; lists["tel"] += [ci] * len(ts)
        lists["ga"] += [ph_dir / c / phs[i] for i in sorted(tp)]; lists["gal"] += [ci] * len(tp)
        lists["trs"] += [sk_dir / c / sks[i] for i in tr_s]; lists["trsl"] += [ci] * len(tr_s)
        lists["trp"] += [ph_dir / c / phs[i] for i in tr_p]; lists["trpl"] += [ci] * len(tr_p)
    split = (f"per category {test_sketches_per_class} random query sketches and {test_photos_per_class} random "
             f"gallery photos (seed {seed}); the rest train")
    return _paired("tuberlin_ext", f"tuberlin_ext({sk_dir.parent.name})", cats, split, size, lists["trs"],
                   lists["trsl"], lists["trp"], lists["trpl"], lists["tes"], lists["tel"], lists["ga"], lists["gal"])
