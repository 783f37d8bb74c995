"""One-file packs of a category dataset for offline GPU machines.

``python -m sbir_lib.experiments pack --out PATH.npz`` writes Sketchy-mini re-encoded at one input size
(JPEG photos, PNG sketches). ``$SBIR_SKETCHY_PACK=PATH`` (or ``run --packed PATH``) makes every loader
read it instead of the folders.
"""

from __future__ import annotations

import io as _io
import os
from pathlib import Path

import numpy as np
import torch

from sbir_lib.data import datasets as D

PACK_ENV = "SBIR_SKETCHY_PACK"

def _encode(arr: np.ndarray, fmt: str, quality: int) -> bytes:
    from PIL import Image

    buf = _io.BytesIO()
    im = Image.fromarray(arr)
    if fmt == "JPEG":
        im.save(buf, format="JPEG", quality=quality)
    else:
        im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()

def _concat(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    return np.frombuffer(b"".join(blobs), np.uint8).copy(), offsets

def pack_sketchy_mini(out: str | os.PathLike, size: int = 224, quality: int = 75, root=None) -> dict:
    """Write Sketchy-mini at ``size`` px into one ``.npz``: photos as JPEG (``quality``), sketches as
    PNG, with names, labels and the sketch split of :func:`sbir_lib.data.datasets.load_sketchy_mini`. Returns
    counts and the file size."""
    return pack_category_dataset(D.load_sketchy_mini(root, size=size), out, quality)

def pack_category_dataset(ds: D.CategoryDataset, out: str | os.PathLike, quality: int = 75) -> dict:
    """Write a :class:`sbir_lib.data.datasets.CategoryDataset` as one ``.npz`` (see :func:`pack_sketchy_mini`)."""
    from concurrent.futures import ThreadPoolExecutor

    size = int(ds.photos.shape[1])
    sk = torch.cat([ds.train_sketches, ds.test_sketches]).numpy()
    ph = ds.photos.numpy()
    with ThreadPoolExecutor(max_workers=D._n_workers()) as pool:
        sk_b = list(pool.map(lambda a: _encode(a, "PNG", quality), sk))
        ph_b = list(pool.map(lambda a: _encode(a, "JPEG", quality), ph))
    skd, sko = _concat(sk_b)
    phd, pho = _concat(ph_b)
    arrays = dict(
        format=np.array(1), name=np.array(ds.name), size=np.array(size), quality=np.array(quality),
        source=np.array(ds.source), split=np.array(ds.split), categories=np.array(ds.categories),
        n_train=np.array(len(ds.train_sketches)),
        sketch_labels=torch.cat([ds.train_labels, ds.test_labels]).numpy(),
        sketch_names=np.array(ds.train_names + ds.test_names), sketch_data=skd, sketch_offsets=sko,
        photo_labels=ds.photo_labels.numpy(), photo_names=np.array(ds.photo_names), photo_data=phd,
        photo_offsets=pho)
    from sbir_lib.core.io import atomic_path

    out = Path(out)
    with atomic_path(out, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return {"path": str(out), "bytes": out.stat().st_size, "sketches": len(sk), "photos": len(ph), "size": size}

def load_packed(path: str | os.PathLike, size: int | None = None) -> D.CategoryDataset:
    """Read a pack written by :func:`pack_sketchy_mini` back into a :class:`sbir_lib.data.datasets.CategoryDataset`
    (``size`` other than the packed size resizes, bilinear with antialiasing)."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Sketchy-mini pack at {path}; write one with "
                                f"python -m sbir_lib.experiments pack --out {path}")
    z = np.load(path, allow_pickle=False)
    packed = int(z["size"])
    size = size or packed

    def decode(data, offsets, mode):
        def one(i):
            im = Image.open(_io.BytesIO(data[offsets[i]:offsets[i + 1]].tobytes())).convert(mode)
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR, reducing_gap=None)
            return np.asarray(im, np.uint8)

        with ThreadPoolExecutor(max_workers=D._n_workers()) as pool:
            return np.stack(list(pool.map(one, range(len(offsets) - 1))))

    sk = torch.from_numpy(decode(z["sketch_data"], z["sketch_offsets"], "L"))
    ph = torch.from_numpy(decode(z["photo_data"], z["photo_offsets"], "RGB"))
    ntr = int(z["n_train"])
    lab = torch.from_numpy(z["sketch_labels"].astype(np.int64))
    names = [str(n) for n in z["sketch_names"]]
    return D.CategoryDataset(
        name=str(z["name"]), categories=[str(c) for c in z["categories"]],
        train_sketches=sk[:ntr], train_labels=lab[:ntr], test_sketches=sk[ntr:], test_labels=lab[ntr:],
        photos=ph, photo_labels=torch.from_numpy(z["photo_labels"].astype(np.int64)), source=str(z["source"]),
        split=str(z["split"]) + f" (from the pack {path.name}, {packed} px)",
        train_names=names[:ntr], test_names=names[ntr:], photo_names=[str(n) for n in z["photo_names"]])
