"""One-file packs of a dataset (``.npz``), for GPU machines that cannot read the image folders.

One format: :func:`write_pack` writes and :func:`read_pack` reads a NumPy ``.npz`` (no pickles) of named
arrays plus ``header``, UTF-8 JSON stored as a uint8 array::

    {"format": "sbir_lib.data.pack", "version": 2, "kind": "<kind>", ...the kind's fields}

Two kinds:

``category`` (:func:`pack_sketchy_mini`, :func:`pack_category_dataset`, read by :func:`load_packed`)
    A :class:`~sbir_lib.data.datasets.CategoryDataset` (Sketchy-mini) re-encoded at one size: sketches as
    PNG and photos as JPEG, each set's encoded bytes concatenated (``sketch_data``, ``photo_data``) with
    ``offsets`` (``sketch_offsets``, ``photo_offsets``; image ``i`` is ``data[offsets[i]:offsets[i+1]]``),
    int64 ``sketch_labels`` (training sketches first, then test) and ``photo_labels``. Header: ``name``,
    ``size``, ``quality``, ``source``, ``split``, ``categories``, ``n_train``, ``sketch_names``,
    ``photo_names``. Written by ``python -m sbir_lib.experiments pack --out PATH.npz``;
    ``$SBIR_SKETCHY_PACK=PATH`` (or ``run --packed PATH``) makes every Sketchy-mini loader read it: read once at the entry points (the CLI, ``course.setup``: ``ctx.sketchy_pack``) and passed down.
``pretrain`` (:func:`sbir_lib.training.pretrain_data.pack` / :func:`sbir_lib.training.pretrain_data.load_packed`)
    Pretraining data, compressed: uint8 ``sketches``, ``test_sketches`` and precomputed photo ``edges``
    ``[N, H, W]``, int16 ``sketch_labels``, ``test_labels``, ``edge_labels``. Header: ``source``, ``split``,
    ``categories``, ``edge_settings``. Written by ``python -m sbir_lib.training.pretrain pack --out PATH.npz``.

Files in the two earlier layouts still load (:func:`read_pack` turns their header into this one): category
packs whose header was a set of scalar arrays (``format`` = 1, ``name``, ``size`` ...) and pretraining packs
with a ``meta`` JSON array of format ``sbir_lib.training.pretrain.pack/1`` or ``sbir_lib.pretrain.pack/1``.
Anything else fails with :class:`~sbir_lib.data.datasets.DatasetCorruptError` naming the command that
writes a current pack.
"""

from __future__ import annotations

import io as _io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from sbir_lib.core.io import atomic_path
from sbir_lib.data import datasets as D

__all__ = ["PACK_FORMAT", "PACK_VERSION", "PACK_COMMANDS", "PACK_ENV", "write_pack", "read_pack",
           "pack_sketchy_mini", "pack_category_dataset", "load_packed"]

PACK_FORMAT = "sbir_lib.data.pack"
PACK_VERSION = 2
#: the command that writes a pack of each kind (named in every error about a pack).
PACK_COMMANDS = {"category": "python -m sbir_lib.experiments pack",
                 "pretrain": "python -m sbir_lib.training.pretrain pack"}
PACK_ENV = "SBIR_SKETCHY_PACK"
_LEGACY_PRETRAIN = ("sbir_lib.training.pretrain.pack/1", "sbir_lib.pretrain.pack/1")
_LEGACY_CATEGORY_FIELDS = ("name", "size", "quality", "source", "split", "categories", "n_train", "sketch_names",
                           "photo_names")


# ----------------------------------------------------------------------------------------------------------
# The format: one writer, one reader
# ----------------------------------------------------------------------------------------------------------
def write_pack(path: str | os.PathLike, kind: str, arrays: dict[str, np.ndarray], header: dict,
               compress: bool = False) -> Path:
    """Write ``arrays`` and ``header`` (JSON-serialisable) as a pack of ``kind``, atomically; return the path.
    ``compress``: deflate the arrays (worth it for raw images, not for PNG/JPEG bytes)."""
    if kind not in PACK_COMMANDS:
        raise ValueError(f"unknown pack kind {kind!r}; allowed: {', '.join(PACK_COMMANDS)}")
    path = _npz(path)
    if "header" in arrays:
        raise ValueError("'header' is the pack's own array; rename that array")
    head = {"format": PACK_FORMAT, "version": PACK_VERSION, "kind": kind, **header}
    blob = np.frombuffer(json.dumps(head).encode("utf-8"), dtype=np.uint8)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            (np.savez_compressed if compress else np.savez)(fh, header=blob, **arrays)
    return path


def _npz(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"pack files end in .npz; got {path.name}")
    return path


def read_pack(path: str | os.PathLike, kind: str) -> tuple[dict[str, np.ndarray], dict]:
    """``(arrays, header)`` of the pack of ``kind`` at ``path`` (earlier layouts converted, see the module).

    Raises ``FileNotFoundError`` (no file) or :class:`~sbir_lib.data.datasets.DatasetCorruptError`
    (damaged, not a pack, another kind or a newer version), each naming the command that writes one."""
    path = Path(path)
    command = f"{PACK_COMMANDS[kind]} --out {path}"
    rewrite = f"Write it again with: {command}"
    if not path.is_file():
        raise FileNotFoundError(f"no {kind} pack at {path}; write one with: {command}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = _header(arrays)
    except Exception as e:  # zipfile.BadZipFile, KeyError, ValueError, OSError on damage
        raise D.DatasetCorruptError(path, f"unreadable pack ({type(e).__name__}: {e})", rewrite) from e
    if header is None or header.get("format") != PACK_FORMAT:
        raise D.DatasetCorruptError(path, f"not a {PACK_FORMAT} file", rewrite)
    if int(header.get("version", 0)) > PACK_VERSION:
        raise D.DatasetCorruptError(path, f"pack version {header['version']} is newer than this code reads "
                                          f"({PACK_VERSION})", rewrite)
    if header.get("kind") != kind:
        raise D.DatasetCorruptError(path, f"a {header.get('kind')!r} pack, not a {kind!r} one", rewrite)
    return arrays, header


def _header(arrays: dict[str, np.ndarray]) -> dict | None:
    """Pop the header out of ``arrays`` (converting the two earlier layouts); None when there is none."""
    if "header" in arrays:
        return json.loads(arrays.pop("header").tobytes().decode("utf-8"))
    if "meta" in arrays:  # pretraining packs before version 2
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
        if meta.get("format") not in _LEGACY_PRETRAIN:
            return None
        return {"format": PACK_FORMAT, "version": 1, "kind": "pretrain",
                **{k: meta[k] for k in ("source", "split", "categories", "edge_settings")}}
    if "format" in arrays and "sketch_data" in arrays and int(arrays["format"]) == 1:  # category packs, v1
        arrays.pop("format")
        old = {k: arrays.pop(k) for k in _LEGACY_CATEGORY_FIELDS}
        return {"format": PACK_FORMAT, "version": 1, "kind": "category",
                **{k: old[k].tolist() for k in _LEGACY_CATEGORY_FIELDS}}
    return None


# ----------------------------------------------------------------------------------------------------------
# Category datasets (Sketchy-mini)
# ----------------------------------------------------------------------------------------------------------
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
    """Write Sketchy-mini at ``size`` px as a ``category`` pack: photos as JPEG (``quality``), sketches as
    PNG, with names, labels and the sketch split of :func:`sbir_lib.data.datasets.load_sketchy_mini`. Returns
    counts and the file size."""
    out = _npz(out)  # checked before decoding the whole set
    return pack_category_dataset(D.load_sketchy_mini(root, size=size), out, quality)


def pack_category_dataset(ds: D.CategoryDataset, out: str | os.PathLike, quality: int = 75) -> dict:
    """Write a :class:`~sbir_lib.data.datasets.CategoryDataset` as a ``category`` pack (see the module)."""
    size = int(ds.photos.shape[1])
    sk = torch.cat([ds.train_sketches, ds.test_sketches]).numpy()
    ph = ds.photos.numpy()
    with ThreadPoolExecutor(max_workers=D.n_workers()) as pool:
        sk_b = list(pool.map(lambda a: _encode(a, "PNG", quality), sk))
        ph_b = list(pool.map(lambda a: _encode(a, "JPEG", quality), ph))
    skd, sko = _concat(sk_b)
    phd, pho = _concat(ph_b)
    arrays = dict(sketch_labels=torch.cat([ds.train_labels, ds.test_labels]).numpy(), sketch_data=skd,
                  sketch_offsets=sko, photo_labels=ds.photo_labels.numpy(), photo_data=phd, photo_offsets=pho)
    header = dict(name=ds.name, size=size, quality=int(quality), source=ds.source, split=ds.split,
                  categories=list(ds.categories), n_train=len(ds.train_sketches),
                  sketch_names=list(ds.train_names + ds.test_names), photo_names=list(ds.photo_names))
    out = write_pack(out, "category", arrays, header)
    return {"path": str(out), "bytes": out.stat().st_size, "sketches": len(sk), "photos": len(ph), "size": size}


def load_packed(path: str | os.PathLike, size: int | None = None) -> D.CategoryDataset:
    """Read a ``category`` pack back into a :class:`~sbir_lib.data.datasets.CategoryDataset` (``size`` other
    than the packed size resizes, bilinear with antialiasing)."""
    from PIL import Image

    path = Path(path)
    z, h = read_pack(path, "category")
    packed = int(h["size"])
    size = size or packed

    def decode(data, offsets, mode):
        def one(i):
            im = Image.open(_io.BytesIO(data[offsets[i]:offsets[i + 1]].tobytes())).convert(mode)
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR, reducing_gap=None)
            return np.asarray(im, np.uint8)

        with ThreadPoolExecutor(max_workers=D.n_workers()) as pool:
            return np.stack(list(pool.map(one, range(len(offsets) - 1))))

    sk = torch.from_numpy(decode(z["sketch_data"], z["sketch_offsets"], "L"))
    ph = torch.from_numpy(decode(z["photo_data"], z["photo_offsets"], "RGB"))
    ntr = int(h["n_train"])
    lab = torch.from_numpy(z["sketch_labels"].astype(np.int64))
    names = [str(n) for n in h["sketch_names"]]
    return D.CategoryDataset(
        name=str(h["name"]), categories=[str(c) for c in h["categories"]],
        train_sketches=sk[:ntr], train_labels=lab[:ntr], test_sketches=sk[ntr:], test_labels=lab[ntr:],
        photos=ph, photo_labels=torch.from_numpy(z["photo_labels"].astype(np.int64)), source=str(h["source"]),
        split=str(h["split"]) + f" (from the pack {path.name}, {packed} px)",
        train_names=names[:ntr], test_names=names[ntr:], photo_names=[str(n) for n in h["photo_names"]])
