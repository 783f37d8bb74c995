"""The frozen trunk computed once per dataset and view set and kept on disk: what makes the ``cpu`` profile fit
two CPU cores.

With the ImageNet trunk frozen whole (:class:`sbir_lib.models.imagenet.EfficientNetBackbone`), its output is a
fixed function of each image view. :mod:`sbir_lib.training.cached` already computes it once per run; this
module computes it once per (trunk weights, stage, views, images) and stores it under
``<data root>/trunk_cache/``, so that every row, seed, notebook and test that asks for the same maps reads
them instead of recomputing (on two cores the trunk costs about 35 ms per crop; a run reads thousands).

- :class:`StoreKey`: what a stored file holds: the trunk's name and a digest of its weights, the stage, the
  views (their offsets and flips) and a digest of the uint8 images. The file name is a digest of the key.
- :func:`trunk_maps`: the maps ``[N, K, C, H, W]`` of ``K`` views of each image, read from the store when a
  file with the same key is there *and* its bytes hash to the SHA-256 its sidecar recorded, else computed and
  written atomically (the map file, then the sidecar: a stop in between leaves no sidecar, so nothing
  half-written is ever read). A file whose key or hash does not match is rebuilt, never silently reused.
- :func:`train_views` and :func:`test_views`: the views the ``cpu`` profile stores: ``K`` random crops + flips
  per training image drawn from a fixed generator (the same for every row and seed, so that all share one
  file) and the authors' 10 test views (:func:`sbir_lib.data.augment.ten_views`).

Taught in ``notebooks/05_reproducing_the_tables.ipynb`` (the cpu column) and used by
:func:`sbir_lib.training.triplet.train` / :func:`sbir_lib.training.triplet.evaluate` when the run's
``trunk_store`` is set.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from sbir_lib.core import config as _config
from sbir_lib.core.io import sha256_file, torch_save_atomic, write_json_atomic
from sbir_lib.data import augment as AUG
from sbir_lib.training.engine import cpu_bf16_native

STORE_FORMAT = 1
TEST_OFFSETS = "ten_views"


@dataclass(frozen=True)
class StoreKey:
    """What one stored file holds (module docstring)."""

    trunk: str
    weights: str
    stage: str
    views: str
    images: str
    dtype: str
    format: int = STORE_FORMAT

    def stem(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:24]


def digest_tensors(tensors) -> str:
    """SHA-256 (first 16 hex digits) of tensors' bytes, in order (weights in state-dict order, images)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def store_root(root=None) -> Path:
    """Where stored trunk maps live: ``<data root>/trunk_cache`` (git-ignored with the data)."""
    return _config.data_root(root) / "trunk_cache"


def train_views(n: int, k: int, height: int = 256, width: int = 256, seed: int = 0, flip: bool = True) -> torch.Tensor:
    """``[n, k, 3]`` views ``(row offset, column offset, flip)``: ``k`` per image from the training augmentation
    (:func:`sbir_lib.data.augment.draw_views`), drawn with a generator seeded ``seed`` (not the run's seed: the
    views are shared by every row and seed)."""
    return AUG.view_table(n, k, height, width, flip=flip, generator=torch.Generator().manual_seed(10_000 + seed))


def centre_views(n: int, flips: tuple[bool, ...] = (False,), size: int = 256) -> torch.Tensor:
    """``[n, len(flips), 3]`` views: the centre crop of each image (offset ``(size - crop) // 2``), mirrored where
    ``flips`` says (the 1- and 2-view test protocols and the validation views)."""
    c = (size - AUG.CROP) // 2
    return torch.tensor([[c, c, int(f)] for f in flips]).expand(n, len(flips), 3).contiguous()


def _crops(images: torch.Tensor, views: torch.Tensor | str) -> torch.Tensor:
    """The crops ``[n * k, 1, c, c]`` of uint8 ``images [n, H, W]`` (views: ``[n, k, 3]`` or ``"ten_views"``),
    image by image, view by view."""
    if isinstance(views, str):
        return AUG.ten_views(images).transpose(0, 1).reshape(-1, 1, AUG.CROP, AUG.CROP)  # [n, 10, ...]
    return AUG.crop_view_table(images, views)


@torch.no_grad()
def compute_maps(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, views: torch.Tensor | str,
                 dtype: torch.dtype = torch.bfloat16, amp: bool = True, batch: int = 64,
                 log: Callable[[str], None] | None = None) -> torch.Tensor:
    """``fn`` (uint8 crops ``[b, 1, c, c]`` -> maps) on the views of ``images``: ``[n, k, C, H, W]`` in ``dtype``
    on the CPU. ``amp``: bf16 autocast and channels-last inputs (on AMX cores about twice as fast
    as float32 for the trunk's forward pass; ``benchmarks/cpu_track.py``)."""
    k = 10 if isinstance(views, str) else views.shape[1]
    n = len(images)
    per = max(1, batch // k)
    out = None
    t0 = time.perf_counter()
    for i in range(0, n, per):
        j = min(n, i + per)
        crops = _crops(images[i:j], views if isinstance(views, str) else views[i:j])
        if amp:
            crops = crops.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            m = fn(crops)
        m = m.to(dtype).contiguous().view(j - i, k, *m.shape[1:])
        if out is None:
            out = torch.empty((n, k, *m.shape[2:]), dtype=dtype)
        out[i:j] = m
        if log is not None and (i // per) % 25 == 24:
            log(f"  trunk maps: {j}/{n} images ({time.perf_counter() - t0:.0f} s)")
    return out


def trunk_maps_of(fn: Callable[[torch.Tensor], torch.Tensor], weights: str, images: torch.Tensor,
                  views: torch.Tensor | str, *, trunk: str, stage: str, root=None, dtype: torch.dtype = torch.bfloat16,
                  amp: bool = True, log: Callable[[str], None] = print) -> tuple[torch.Tensor, dict]:
    """The stored maps of ``fn`` (a frozen trunk whose weights digest to ``weights``) on ``images`` under
    ``views`` (module docstring): ``(maps [n, k, C, H, W], info)``; ``info`` says whether they were read or
    built, the file and how long it took. ``amp`` applies only where the CPU computes bf16 in hardware
    (:func:`sbir_lib.training.engine.cpu_bf16_native`; emulated bf16 is slower than float32): the key says which
    precision computed the maps, so an AMX machine and an AVX2 one keep separate files."""
    amp = amp and cpu_bf16_native()
    view_tag = TEST_OFFSETS if isinstance(views, str) else "offsets:" + digest_tensors([views])
    key = StoreKey(trunk=trunk, weights=weights, stage=stage, views=view_tag, images=digest_tensors([images]),
                   dtype=str(dtype).replace("torch.", "") + ("+amp" if amp else ""))
    folder = store_root(root)
    path, meta_path = folder / f"{key.stem()}.pt", folder / f"{key.stem()}.json"
    t0 = time.perf_counter()
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == asdict(key) and meta.get("sha256") == sha256_file(path):
            maps = torch.load(path, map_location="cpu", weights_only=True)
            return maps, {"file": path.name, "read": True, "seconds": round(time.perf_counter() - t0, 2)}
        log(f"trunk cache {path.name}: its key or SHA-256 does not match what it recorded; rebuilding it")
    for p in (meta_path, path):  # the sidecar first: a file without one is never read
        p.unlink(missing_ok=True)
    maps = compute_maps(fn, images, views, dtype, amp, log=log)
    build_s = round(time.perf_counter() - t0, 2)
    torch_save_atomic(path, maps)
    write_json_atomic(meta_path, {"key": asdict(key), "sha256": sha256_file(path), "shape": list(maps.shape),
                                  "build_time_s": build_s, "threads": torch.get_num_threads(),
                                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return maps, {"file": path.name, "read": False, "seconds": build_s}


def map_dtype(amp: bool = True) -> torch.dtype:
    """The precision the store keeps a run's maps in (bf16 under ``amp``, else float32)."""
    return torch.bfloat16 if amp else torch.float32


def trunk_maps(backbone, images: torch.Tensor, views: torch.Tensor | str, *, stage: str = "conv4", root=None,
               amp: bool = True, log: Callable[[str], None] = print) -> tuple[torch.Tensor, dict]:
    """:func:`trunk_maps_of` for the frozen trunk of a DSSA backbone (:class:`sbir_lib.models.imagenet.EfficientNetBackbone`)."""
    backbone.eval()
    fn = lambda crops: backbone.features_upto(backbone.prepare(crops), stage)  # noqa: E731
    return trunk_maps_of(fn, digest_tensors(backbone.trunk.state_dict().values()), images, views,
                         trunk=f"efficientnet_lite0:{backbone.trunk_end}", stage=stage, root=root,
                         dtype=map_dtype(amp), amp=amp, log=log)
