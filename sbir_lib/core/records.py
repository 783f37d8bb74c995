"""The record store: where a run's record lives, how it is read and written, and the fields every
record of every experiment carries (device, torch version, git commit, time).

Layout, for both papers (notebook 05 reads it)::

    results/<experiment>/<dataset>/<row>/seed<k>[.quick].json      the record (metrics, config, provenance)
    results/<experiment>/<dataset>/<row>/seed<k>[.quick].dist.npy  its float32 test distance matrix
    ... .dist_l2.npy   (DASE/MEMS with MEMS: the L2-normalised distances of ``metrics_l2``)
    ... .dist_untrained.npy  (DASE/MEMS: the run's network before training, ``metrics_untrained``)
    ... .weights.pt    (a few DSSA rows: trained weights for the attention figures)

A record is complete when its JSON exists: the distance files are written first, the JSON last, each
atomically, so a crash never leaves a record without its distances. ``python -m sbir_lib.experiments
verify`` recomputes every metric from the distance files.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from sbir_lib.core import config as _config
from sbir_lib.core.io import save_npy_atomic, write_json_atomic
from sbir_lib.core.profiles import Profile, as_profile
from sbir_lib.core.store import RecordError, RecordStore, read_record, record_path, upgrade  # noqa: F401  (re-exported)


def _beside(record: Path, ending: str) -> Path:
    record = Path(record)
    return record.with_name(record.name[: -len(".json")] + ending)


def dist_path(record: Path) -> Path:
    """The float32 test distance matrix beside a record."""
    return _beside(record, ".dist.npy")


def dist_l2_path(record: Path) -> Path:
    """The distances of L2-normalised embeddings beside a MEMS record (its ``metrics_l2``)."""
    return _beside(record, ".dist_l2.npy")


def dist_untrained_path(record: Path) -> Path:
    """The distances of a DASE/MEMS run's network before its first step (its ``metrics_untrained``)."""
    return _beside(record, ".dist_untrained.npy")


def weights_path(record: Path) -> Path:
    """Trained weights kept beside a record (a few DSSA rows, for the attention figures)."""
    return _beside(record, ".weights.pt")


def checkpoint_path(results: Path, record: Path, runs=None) -> Path:
    """Where the run of ``record`` keeps its training checkpoint (under :func:`sbir_lib.core.config.runs_root`)."""
    return _config.runs_root(results, runs) / Path(record).relative_to(results).with_suffix(".pt")


def init_checkpoint(name: str, profile: "str | Profile") -> Path:
    """``checkpoints/sketchanet_<name>[.<profile>].pt``: where pretraining writes the init named ``name``
    (``python -m sbir_lib.training.pretrain run``) and where the ``@<name>`` rows read it."""
    suffix = as_profile(profile).record_suffix
    base = _config.repo_root() or Path.cwd()
    return Path(base) / "checkpoints" / f"sketchanet_{name}{suffix}.pt"


def load_record(path: Path) -> dict | None:
    """The record at ``path``; None when there is none; an error naming the fix when it is corrupt.

    Validated on read (:class:`sbir_lib.core.store.Record`): a damaged file raises
    :class:`~sbir_lib.core.store.RecordError` naming it and the command that records it again. Records written
    before the layout named the experiment's row ``row`` (they called it ``variant``) are read as the current
    layout."""
    rec = read_record(path)
    return None if rec is None else rec.data


def recorded(path: Path, results: Path, force: bool = False, log=print) -> dict | None:
    """The record at ``path`` when the run is already recorded (and ``force`` is off): a runner skips it."""
    existing = None if force else load_record(path)
    if existing is not None:
        log(f"skip   {Path(path).relative_to(results)} (recorded; --force retrains)")
    return existing


def as_stored(dist) -> np.ndarray:
    """The distance matrix as records store it: a float32 numpy array. Compute a record's metrics from
    this, so that ``verify`` recomputes them exactly from the file."""
    if hasattr(dist, "detach"):
        dist = dist.detach().cpu().float().numpy()
    return np.ascontiguousarray(np.asarray(dist, dtype=np.float32))


#: whether records made from a tree with uncommitted changes may go into the committed results folder
#: (``--allow-dirty`` of the command lines, through :func:`allowing_dirty`)
_ALLOW_DIRTY: contextvars.ContextVar[bool] = contextvars.ContextVar("sbir_allow_dirty", default=False)


class DirtyTreeError(RuntimeError):
    """A record made from uncommitted code would have gone into the committed results folder."""


@contextlib.contextmanager
def allowing_dirty(allowed: bool = True):
    """Within this block, :func:`check_clean` lets records of a dirty tree into ``results/`` (marked)."""
    token = _ALLOW_DIRTY.set(bool(allowed))
    try:
        yield
    finally:
        _ALLOW_DIRTY.reset(token)


def check_clean(path: Path, record: dict) -> dict:
    """``record`` as it may be written to ``path``: a record whose ``git_commit`` ends in ``-dirty`` (made from
    a tree with uncommitted changes) is refused when ``path`` lies in the committed results folder (links
    followed: a notebook run's scratch folder links it), unless :func:`allowing_dirty`, which marks it
    ``"dirty_allowed": true``. Every committed record thus comes from a commit one can check out (issue 23)."""
    if not str(record.get("git_commit", "")).endswith("-dirty"):
        return record
    committed = _config.committed_results().resolve()
    if not Path(path).resolve().is_relative_to(committed):
        return record
    if not _ALLOW_DIRTY.get():
        raise DirtyTreeError(
            f"refusing to write {path}: the checkout has uncommitted changes (git commit "
            f"{record['git_commit']}), so the record could not be traced to its code. Commit first (git commit) "
            f"and run again, or pass --allow-dirty to record it marked as made from a dirty tree.")
    return {**record, "dirty_allowed": True}


def write_checked_json(path: Path, record: dict) -> None:
    """Write a record without distances (a tuning record) atomically, refused like :func:`write_record` when it
    comes from a dirty tree into the committed results folder (:func:`check_clean`)."""
    write_json_atomic(path, check_clean(path, record))


def write_record(path: Path, record: dict, dist, dist_l2=None, dist_untrained=None) -> None:
    """Write the distance matrix (float32), the L2 and untrained ones when given, then the JSON record, each atomically
    (JSON last: its presence means the run is complete). Records of a dirty tree are refused in the committed
    results folder (:func:`check_clean`)."""
    record = check_clean(path, record)
    json.dumps(record)  # a record that cannot be written leaves no distance file behind either
    save_npy_atomic(dist_path(path), as_stored(dist))
    if dist_l2 is not None:
        save_npy_atomic(dist_l2_path(path), as_stored(dist_l2))
    if dist_untrained is not None:
        save_npy_atomic(dist_untrained_path(path), as_stored(dist_untrained))
    write_json_atomic(path, record)


def device_name(device) -> str:
    """A device as records name it: the GPU's name, or the CPU and its thread count."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def git_commit() -> str:
    """``git describe`` of the checkout, or ``$SBIR_GIT_COMMIT`` (set it where the code runs without its
    ``.git``, e.g. on a GPU machine that received a copy of the working tree): the commit every record names."""
    if os.environ.get("SBIR_GIT_COMMIT"):
        return os.environ["SBIR_GIT_COMMIT"]
    root = _config.repo_root() or Path.cwd()
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=root,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(device) -> dict:
    """The fields every record carries about where and when it was made."""
    import torch

    return {"device": device_name(device), "torch": torch.__version__, "git_commit": git_commit(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def base_record(experiment: str, dataset: str, data_source: str, row: str, seed: int, profile: str, device,
                n_queries: int, n_gallery: int) -> dict:
    """The common head of every run record (DSSA and DASE/MEMS alike)."""
    rec = {"experiment": experiment, "dataset": dataset, "data_source": data_source, "row": row,
           "seed": seed, "profile": profile}
    rec.update(provenance(device))
    rec.update(n_queries=n_queries, n_gallery=n_gallery)
    return rec
