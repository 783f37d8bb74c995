"""How many cached views per training image a frozen-trunk run needs, chosen on a validation split.

    python -m sbir_lib.experiments tune-cache --profile full [--dataset shoes] [--views 1 2 5 10 20]

A run with ``cache_views = K`` (:mod:`sbir_lib.training.cached`) sees K crops/flips of each training image
instead of a fresh one every step. For each candidate K this trains the ``full`` (conv1-conv4 frozen) and
``base`` (conv1-conv5 frozen) rows from the pretraining checkpoint on the training data minus a validation
split carved from it (``val_size`` instances, seeded; the test split is never used) and scores acc@1 on the
validation split. The chosen K is the smallest whose mean validation acc@1 is within one standard error of
the best candidate's (binomial standard error on the validation queries): more views stop helping there.
The record, ``results/tuning/cache_views.<profile>.json``, holds every score; the grid
(:mod:`sbir_lib.experiments.grid`) reads its choice.
"""
from __future__ import annotations

import math
import time

import torch

from sbir_lib.core import config as _config
from sbir_lib.core.io import write_json_atomic
from sbir_lib.core.records import device_name, git_commit, init_checkpoint
from sbir_lib.experiments.settings import load_tuning, tuning_path
from sbir_lib.experiments import runner
from sbir_lib.training import pretrain as PT
from sbir_lib.training import triplet as T

CANDIDATES = (1, 2, 5, 10, 20)
VAL_SIZE = T.VALIDATION_SIZE
DEFAULT_VIEWS = 10  # used until a selection is recorded


def record_path(profile: str, results=None):
    return tuning_path("cache_views", profile, results)


def chosen(profile: str, results=None) -> int | None:
    """The recorded choice of K for ``profile``, or None."""
    rec = load_tuning("cache_views", profile, results)
    return None if rec is None else int(rec["chosen"])


def choose(profile: str, dataset: str = "shoes", candidates=CANDIDATES, variants=("full", "base"), seed: int = 0,
           init: str | None = None, iterations: int | None = None, device=None, root=None, results=None,
           log=print) -> dict:
    """Train ``variants`` x ``candidates`` on the training split minus a validation split, score acc@1 on it,
    choose K (module docstring) and write the record."""
    init = init or str(init_checkpoint(PT.INIT_NAME, profile))
    data = runner.load_dataset(dataset, root)
    device = _config.default_device(device)
    val = VAL_SIZE[profile]
    t0 = time.perf_counter()
    scores: dict[str, dict[str, float]] = {}
    its = T.profile_config(profile, iterations=iterations).iterations
    for k in candidates:
        for v in variants:
            cfg = T.profile_config(profile, variant=v, seed=seed, init=init, cache_views=k, val_size=val,
                                   iterations=its, eval_every=its)  # one validation score, at the end
            res = T.train(cfg, data, device=device, progress=False)
            acc = float(res.history["val_acc@1"][-1])
            scores.setdefault(str(k), {})[v] = round(acc, 4)
            log(f"cache_views={k:3d} {v:5s}: validation acc@1 {100 * acc:5.1f}% ({res.train_time_s:.0f} s)")
    mean = {k: sum(s.values()) / len(s) for k, s in scores.items()}
    best = max(mean.values())
    se = math.sqrt(max(best * (1 - best), 1e-12) / val)
    pick = min((int(k) for k, m in mean.items() if m >= best - se))
    rec = {"experiment": "cache_views", "profile": profile, "dataset": data.name, "seed": seed, "init": init,
           "variants": list(variants), "candidates": list(candidates), "val_size": val,
           "split": f"validation split: {val} training instances held out by a seeded permutation (seed {seed}); "
                    "the test split is not used",
           "iterations": its,
           "scores_val_acc@1": scores, "mean_val_acc@1": {k: round(m, 4) for k, m in mean.items()},
           "rule": "smallest K whose mean validation acc@1 is within one binomial standard error of the best",
           "standard_error": round(se, 4), "chosen": pick, "device": device_name(device),
           "torch": torch.__version__, "git_commit": git_commit(),
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "wall_time_s": round(time.perf_counter() - t0, 1)}
    write_json_atomic(record_path(profile, results), rec)
    log(f"chosen cache_views={pick}; wrote {record_path(profile, results)}")
    return rec
