"""How many cached views per training image a frozen-trunk run needs, chosen on a validation split.

    python -m sbir_lib.experiments tune-cache --profile full [--dataset shoes] [--views 1 2 5 10 20] [--seeds 0 1 2]

A run with ``cache_views = K`` (:mod:`sbir_lib.training.cached`) sees K crops/flips of each training image
instead of a fresh one every step, as the authors' code does (a random crop and flip per image per step). For
each candidate K and seed this trains the ``full`` (conv1-conv4 frozen) and ``base`` (conv1-conv5 frozen) rows
from the pretraining checkpoint on the training data minus a validation split carved from it (``val_size``
instances, seeded; the test split is never used) and scores acc@1 on the validation split: a validation curve
over K with one score per (seed, row).

**The rule cannot quietly drop augmentation** (issue 23). The default is the largest candidate,
:data:`DEFAULT_VIEWS`, the closest to a fresh view every step. A smaller K is taken only when a paired
comparison shows no loss: for it *and every candidate between it and the default*, the mean over (seed, row)
pairs of ``acc(K) - acc(default)`` is at least 0. (The earlier rule, the smallest K within one binomial
standard error of the best on ~60 validation queries, had almost no power and picked K = 1-2.)
The record, ``results/tuning/cache_views.<profile>.json``, holds every score, the paired differences and the
choice; the grid (:mod:`sbir_lib.experiments.grid`) reads it, and every run records the K it used
(``config.cache_views`` and ``trunk_cache``).
"""
from __future__ import annotations

import time

import torch

from sbir_lib.core import config as _config
from sbir_lib.core.profiles import as_profile
from sbir_lib.core.records import device_name, git_commit, write_checked_json, init_checkpoint
from sbir_lib.experiments.settings import load_tuning, tuning_path
from sbir_lib.experiments import runner
from sbir_lib.training import pretrain as PT
from sbir_lib.training import triplet as T

CANDIDATES = (1, 2, 5, 10, 20)
#: K without a recorded choice, and the reference every smaller K is compared with: the largest candidate
DEFAULT_VIEWS = max(CANDIDATES)
SEEDS = (0, 1, 2)


def record_path(profile: str, results=None):
    return tuning_path("cache_views", profile, results)


def chosen(profile: str, results=None) -> int | None:
    """The recorded choice of K for ``profile``, or None."""
    rec = load_tuning("cache_views", profile, results)
    return None if rec is None else int(rec["chosen"])


def pick(scores: dict[int, dict[str, float]]) -> tuple[int, dict[int, float]]:
    """``(K, paired differences)`` by the module's rule from ``scores[K]["<row>/seed<s>"] = val acc@1``: the
    default is the largest K; a smaller K only when it and every candidate above it lose nothing on the mean
    paired difference to the default. ``paired[K]`` is that mean difference."""
    ks = sorted(scores)
    ref = ks[-1]
    pairs = sorted(scores[ref])
    paired = {k: sum(scores[k][p] - scores[ref][p] for p in pairs) / len(pairs) for k in ks}
    choice = ref
    for k in reversed(ks[:-1]):
        if paired[k] < 0:
            break
        choice = k
    return choice, paired


def choose(profile: str, dataset: str = "shoes", candidates=CANDIDATES, variants=("full", "base"), seeds=SEEDS,
           init: str | None = None, iterations: int | None = None, device=None, root=None, results=None,
           log=print) -> dict:
    """Train ``variants`` x ``candidates`` x ``seeds`` on the training split minus a validation split, score
    acc@1 on it, choose K by :func:`pick` and write the record."""
    init = init or str(init_checkpoint(PT.INIT_NAME, profile))
    data = runner.load_dataset(dataset, root)
    device = _config.default_device(device)
    val = as_profile(profile).validation_size
    t0 = time.perf_counter()
    scores: dict[int, dict[str, float]] = {}
    its = T.profile_config(profile, experiment="pretrain", iterations=iterations).iterations
    for k in sorted(candidates):
        for seed in seeds:
            for v in variants:
                # the seed carves the validation split too: each (seed, row) pair compares K on one split
                cfg = T.profile_config(profile, experiment="pretrain", variant=v, seed=seed, init=init, cache_views=k,
                                       val_size=val,
                                       iterations=its, eval_every=its)  # one validation score, at the end
                res = T.train(cfg, data, device=device, progress=False)
                acc = float(res.history["val_acc@1"][-1])
                scores.setdefault(k, {})[f"{v}/seed{seed}"] = round(acc, 4)
                log(f"cache_views={k:3d} seed {seed} {v:5s}: validation acc@1 {100 * acc:5.1f}% "
                    f"({res.train_time_s:.0f} s)")
    choice, paired = pick(scores)
    mean = {k: sum(s.values()) / len(s) for k, s in scores.items()}
    rec = {"experiment": "cache_views", "profile": profile, "dataset": data.name, "seeds": list(seeds),
           "init": init, "variants": list(variants), "candidates": sorted(candidates), "val_size": val,
           "split": f"validation split: {val} training instances held out by a permutation seeded with the run's "
                    "seed (the same split for every K of a seed); the test split is not used",
           "iterations": its,
           "scores_val_acc@1": {str(k): s for k, s in scores.items()},
           "mean_val_acc@1": {str(k): round(m, 4) for k, m in mean.items()},
           "paired_diff_vs_default": {str(k): round(d, 4) for k, d in paired.items()},
           "default": max(candidates),
           "rule": "the largest candidate, unless a smaller K and every candidate between it and the largest lose "
                   "nothing: mean over (seed, row) pairs of acc(K) - acc(largest) >= 0",
           "chosen": choice, "device": device_name(device),
           "torch": torch.__version__, "git_commit": git_commit(),
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "wall_time_s": round(time.perf_counter() - t0, 1)}
    write_checked_json(record_path(profile, results), rec)
    log(f"chosen cache_views={choice}; wrote {record_path(profile, results)}")
    return rec
