"""Paired sketch/photo retrieval data with class labels, the input of the class-pair recipe (DASE/MEMS).

A :class:`PairedData` holds training sketches and photos with labels, test query sketches and a gallery.
Two ways to make one:

- :func:`sketchy_split`, category level (Sketchy-mini): the query sketches keep the loader's split (per
  category the first 20 sketch names train, the other 5 test). The photos are split too, so that no gallery
  photo is ever trained on. Per category the gallery holds the photos the test sketches were drawn from,
  filled up to ``gallery_per_class`` (10) with the last photos (sorted names) that no training sketch was
  drawn from; the other photos train.
- :func:`qmul_instances`, instance level (QMUL): each training instance is its own class.

:func:`validation_split` carves a validation split out of the *training* part (the test queries and the
gallery are untouched), for choosing settings (:mod:`sbir_lib.experiments.tuning`):

- category level: per category, ``photos_per_class`` (5 of the 15) training photos become the validation
  gallery and ``sketches_per_class`` (4 of the 20) training sketches the validation queries, preferring
  sketches drawn from those photos; the rest trains.
- instance level: ``instance_fraction`` (20%) of the training instances, drawn by a seeded permutation, are
  held out whole (sketch and edge map); query ``i`` must retrieve validation photo ``i``.

Taught in notebook 07; the experiments that use it are in :mod:`sbir_lib.experiments.dase_mems`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from sbir_lib.core import config as _config
from sbir_lib.data import datasets as D

@dataclass
class PairedData:
    """Training and test images of a sketch/photo retrieval task with class labels.

    Images are uint8: sketches ``[N, H, W]``; photos ``[N, H, W, 3]`` (RGB) or ``[N, H, W]`` (QMUL edge
    maps). Test queries ``test_sketches`` are ranked against the ``gallery``; a gallery item is relevant
    when its label equals the query's (instance level: label = instance index, one relevant item).
    """

    name: str
    source: str
    level: str  # "category" | "instance"
    categories: list[str]
    train_sketches: torch.Tensor
    train_sketch_labels: torch.Tensor
    train_photos: torch.Tensor
    train_photo_labels: torch.Tensor
    test_sketches: torch.Tensor
    test_labels: torch.Tensor
    gallery: torch.Tensor
    gallery_labels: torch.Tensor
    split: str = ""
    names: dict = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    @property
    def is_synthetic(self) -> bool:
        return self.source.startswith("synthetic")

    def summary(self) -> dict:
        """Counts (for printing / records)."""
        return {"classes": self.num_classes, "train_sketches": len(self.train_sketches),
                "train_photos": len(self.train_photos), "test_sketches": len(self.test_sketches),
                "gallery": len(self.gallery), "image_size": int(self.train_sketches.shape[-1])}

    def __repr__(self) -> str:
        s = self.summary()
        return (f"PairedData(name={self.name!r}, level={self.level!r}, " +
                ", ".join(f"{k}={v}" for k, v in s.items()) + f", source={self.source!r})")

def sketchy_split(ds: D.CategoryDataset, gallery_per_class: int = 10) -> PairedData:
    """Split the photos of a :class:`sbir_lib.data.datasets.CategoryDataset` into training photos and a held-out
    gallery (rule in the module docstring); the sketches keep their split. Works on Sketchy-mini
    (names ``category/imageid[-k]``) and the synthetic categories (names ``classNN/j[-k]``)."""
    if gallery_per_class < 1:
        raise ValueError(f"gallery_per_class must be >= 1; got {gallery_per_class}")
    src = lambda n: n.rsplit("-", 1)[0]  # noqa: E731  sketch name -> its photo's name
    tr_src = {src(n) for n in ds.train_names}
    te_src = {src(n) for n in ds.test_names}
    pl = ds.photo_labels.tolist()
    gallery, train = [], []
    for c in range(len(ds.categories)):
        idx = [i for i, lab in enumerate(pl) if lab == c]
        if len(idx) <= gallery_per_class:
            raise ValueError(f"category {ds.categories[c]!r} has {len(idx)} photos; gallery_per_class="
                             f"{gallery_per_class} leaves none for training")
        g = [i for i in idx if ds.photo_names[i] in te_src]
        rest = [i for i in reversed(idx) if i not in g]
        fill = [i for i in rest if ds.photo_names[i] not in tr_src] + [i for i in rest if ds.photo_names[i] in tr_src]
        g = sorted(g + fill[: max(0, gallery_per_class - len(g))])
        gallery += g
        train += [i for i in idx if i not in set(g)]
    gi, ti = torch.tensor(gallery), torch.tensor(train)
    return PairedData(
        name=ds.name, source=ds.source, level="category", categories=list(ds.categories),
        train_sketches=ds.train_sketches, train_sketch_labels=ds.train_labels,
        train_photos=ds.photos[ti], train_photo_labels=ds.photo_labels[ti],
        test_sketches=ds.test_sketches, test_labels=ds.test_labels,
        gallery=ds.photos[gi], gallery_labels=ds.photo_labels[gi],
        split=(f"{ds.split}; photos: per category the test sketches' source photos plus the last photos no "
               f"training sketch was drawn from, up to {gallery_per_class}, form the gallery; the rest train"),
        names={"train_sketches": list(ds.train_names), "test_sketches": list(ds.test_names),
               "gallery": [ds.photo_names[i] for i in gallery], "train_photos": [ds.photo_names[i] for i in train]})

def qmul_instances(ds: D.QMULDataset) -> PairedData:
    """Instance-level view of a fine-grained dataset: training instance ``i`` is class ``i`` (its sketch
    and its edge map); test sketch ``i`` must retrieve test edge map ``i``."""
    ntr, nte = len(ds.train), len(ds.test)
    ar_tr, ar_te = torch.arange(ntr), torch.arange(nte)
    return PairedData(
        name=ds.name, source=ds.source, level="instance", categories=[f"instance{i}" for i in range(ntr)],
        train_sketches=ds.train.sketches, train_sketch_labels=ar_tr, train_photos=ds.train.edges,
        train_photo_labels=ar_tr.clone(), test_sketches=ds.test.sketches, test_labels=ar_te,
        gallery=ds.test.edges, gallery_labels=ar_te.clone(),
        split="the dataset's train/test split; each training instance is its own class",
        names={"test": list(ds.test.names)})

def every_kth_category(root, k: int) -> list[str]:
    base = _config.data_root(root) / "sketchy_mini" / "sketch"
    cats = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    return cats[::k]

def subset_categories(ds: D.CategoryDataset, keep: list[str]) -> D.CategoryDataset:
    old = {c: i for i, c in enumerate(ds.categories)}
    remap = torch.full((len(ds.categories),), -1, dtype=torch.long)
    for new, c in enumerate(keep):
        remap[old[c]] = new

    def pick(labels, *arrays_and_names):
        m = remap[labels] >= 0
        idx = m.nonzero().squeeze(1)
        return [remap[labels][idx]] + [a[idx] if isinstance(a, torch.Tensor) else [a[i] for i in idx.tolist()]
                                       for a in arrays_and_names]

    trl, trs, trn = pick(ds.train_labels, ds.train_sketches, ds.train_names)
    tel, tes, ten = pick(ds.test_labels, ds.test_sketches, ds.test_names)
    phl, ph, phn = pick(ds.photo_labels, ds.photos, ds.photo_names)
    return D.CategoryDataset(name=ds.name, categories=list(keep), train_sketches=trs, train_labels=trl,
                             test_sketches=tes, test_labels=tel, photos=ph, photo_labels=phl, source=ds.source,
                             split=ds.split, train_names=trn, test_names=ten, photo_names=phn)


def validation_split(data: PairedData, seed: int = 0, sketches_per_class: int = 4, photos_per_class: int = 5,
                     instance_fraction: float = 0.2) -> PairedData:
    """A :class:`PairedData` whose training part is ``data``'s training part minus a
    validation split, and whose queries / gallery are that validation split (rules in the module docstring). ``data``'s test queries and gallery are not used."""
    rng = np.random.default_rng(seed)
    if data.level == "instance":
        n = len(data.train_sketches)
        n_val = int(round(instance_fraction * n))
        if not 1 <= n_val < n - 1:
            raise ValueError(f"instance_fraction {instance_fraction} of {n} training instances leaves no "
                             "validation or too little training")
        perm = rng.permutation(n)
        val, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        vi, ti = torch.as_tensor(val), torch.as_tensor(tr)
        if not (torch.equal(data.train_sketch_labels, torch.arange(n))
                and torch.equal(data.train_photo_labels, torch.arange(n))):
            raise ValueError("instance-level data must have training sketch i and photo i of class i")
        names = list(data.names.get("train", [])) if data.names else []
        return PairedData(
            name=data.name, source=data.source, level="instance",
            categories=[f"instance{i}" for i in tr.tolist()],
            train_sketches=data.train_sketches[ti], train_sketch_labels=torch.arange(len(tr)),
            train_photos=data.train_photos[ti], train_photo_labels=torch.arange(len(tr)),
            test_sketches=data.train_sketches[vi], test_labels=torch.arange(n_val),
            gallery=data.train_photos[vi], gallery_labels=torch.arange(n_val),
            split=(f"validation split (seed {seed}): {n_val} of the {n} training instances ({instance_fraction:.0%}, "
                   f"a seeded permutation) held out whole; the test split is not used"),
            names={"train_instances": tr.tolist(), "val_instances": val.tolist(),
                   **({"val": [names[i] for i in val]} if names else {})})

    sk_names = list(data.names.get("train_sketches", [])) if data.names else []
    ph_names = list(data.names.get("train_photos", [])) if data.names else []
    src = (lambda n: n.rsplit("-", 1)[0])  # noqa: E731  sketch name -> its photo's name
    sl, pl = data.train_sketch_labels.tolist(), data.train_photo_labels.tolist()
    val_sk, val_ph = [], []
    for c in range(data.num_classes):
        sks = [i for i, lab in enumerate(sl) if lab == c]
        phs = [i for i, lab in enumerate(pl) if lab == c]
        if len(sks) <= sketches_per_class or len(phs) <= photos_per_class:
            raise ValueError(f"class {data.categories[c]!r} has {len(sks)} training sketches and {len(phs)} "
                             f"training photos: a validation split of {sketches_per_class} + {photos_per_class} "
                             "would leave none for training")
        vp = sorted(rng.choice(phs, photos_per_class, replace=False).tolist())
        order = rng.permutation(sks).tolist()
        if sk_names and ph_names:
            chosen_ph = {ph_names[i] for i in vp}
            order = [i for i in order if src(sk_names[i]) in chosen_ph] + \
                    [i for i in order if src(sk_names[i]) not in chosen_ph]
        val_sk += sorted(order[:sketches_per_class])
        val_ph += vp
    vs, vp_all = set(val_sk), set(val_ph)
    tr_sk = [i for i in range(len(sl)) if i not in vs]
    tr_ph = [i for i in range(len(pl)) if i not in vp_all]
    t = torch.as_tensor
    return PairedData(
        name=data.name, source=data.source, level="category", categories=list(data.categories),
        train_sketches=data.train_sketches[t(tr_sk)], train_sketch_labels=data.train_sketch_labels[t(tr_sk)],
        train_photos=data.train_photos[t(tr_ph)], train_photo_labels=data.train_photo_labels[t(tr_ph)],
        test_sketches=data.train_sketches[t(val_sk)], test_labels=data.train_sketch_labels[t(val_sk)],
        gallery=data.train_photos[t(val_ph)], gallery_labels=data.train_photo_labels[t(val_ph)],
        split=(f"validation split (seed {seed}): per category {photos_per_class} training photos (a seeded draw) "
               f"are the validation gallery and {sketches_per_class} training sketches (those drawn from these "
               "photos first) the validation queries; the rest trains; the test split is not used"),
        names=({"train_sketches": [sk_names[i] for i in tr_sk], "val_sketches": [sk_names[i] for i in val_sk],
                "train_photos": [ph_names[i] for i in tr_ph], "val_photos": [ph_names[i] for i in val_ph]}
               if sk_names and ph_names else {}))
