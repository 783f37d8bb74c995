"""Choosing the DASE/MEMS settings on a validation split carved from the training data, never on the test split.

Used by :func:`sbir_lib.experiments.dase_mems.run_one` (every record names, per setting, what chose it:
``"settings_chosen_on"``) and run from the shell::

    python -m sbir_lib.experiments tune --experiment dase_sketchy --profile quick
    python -m sbir_lib.experiments tune --experiment dase_qmul --profile quick --dataset shoes
    python -m sbir_lib.experiments show --experiment dase_qmul --profile quick
    # the same through the runner's CLI: python -m sbir_lib.experiments tune --experiment ...

**The validation split** (:func:`validation_split`, seeded) comes out of the *training* part of a
:class:`sbir_lib.data.paired.PairedData`; the test queries and the gallery are untouched:

- category level (Sketchy-mini): per category, ``photos_per_class`` (5 of the 15) training photos become the
  validation gallery and ``sketches_per_class`` (4 of the 20) training sketches the validation queries,
  preferring sketches drawn from those photos (as the test split puts the test sketches' photos in its
  gallery); the rest trains. Every category keeps training sketches and photos.
- instance level (QMUL): ``instance_fraction`` (20%) of the training instances, drawn by a seeded
  permutation, are held out whole (sketch and edge map); query ``i`` must retrieve validation photo ``i``.

**The search** (:data:`SEARCH`): a few candidates per setting, one seed, the experiment's profile, each
trained on the reduced training set and scored on the validation split (category level: ``mAP@all``;
instance level: ``acc@10``, less coarse than acc@1 on 40-80 validation queries; ties go to ``acc@1``, then
to the earlier candidate). Stages run in order, each starting from the values chosen before it. A
candidate whose embeddings collapse (``tied_fraction > 0.05``) is never chosen. The selection is written to
``results/tuning/<experiment>.<profile>.json``; its ``chosen`` values are copied by hand into
``dase_mems`` of :mod:`sbir_lib.core.profiles` (``tests/test_category.py::test_profiles_use_the_validated_settings`` checks that they agree). The final runs
then train on the whole training set with the chosen values and are evaluated once on the test split.

**What is not searched** (:data:`AUTHORS_SETTINGS`): settings taken from the authors' code
(github.com/Ben-Louis/SBIR-DASE-MEMS, commit 589f789), cited by file and line. The authors have no
validation split: their ``datasets/split_data.py`` writes train and test lists only.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import torch

from sbir_lib.experiments import dase_mems as C
from sbir_lib.training import class_pairs
from sbir_lib.core import config as _config
from sbir_lib.core.records import device_name, git_commit, write_checked_json
from sbir_lib.data.paired import validation_split
from sbir_lib.experiments.settings import AUTHORS_SETTINGS, CRITERION, SEARCH, TUNING_DATASET, load_tuning, tuning_path
from sbir_lib.core.io import write_json_atomic

def _score(metrics: dict, level: str, tied: float) -> tuple:
    if tied > 0.05:
        return (-math.inf, -math.inf)
    return tuple(float(metrics[k]) for k in CRITERION[level])

def _earlier_runs(experiment: str, profile: str, results, dataset: str, seed: int) -> dict:
    """``{(row, config key): result}`` of the candidates an earlier, unfinished call recorded (same data, seed)."""
    old = load_tuning(experiment, profile, results, partial=True)
    if not old or old.get("dataset") != dataset or old.get("seed") != seed:
        return {}
    return {(r["row"], r["config_key"]): {k: v for k, v in r.items() if k != "same_as_earlier_candidate"}
            for st in old.get("stages", []) for c in st["candidates"] for r in c["runs"] if r.get("config_key")}


def _candidate_run(row: str, cfg, val, device, done: dict, progress: bool, log, what: str) -> dict:
    """Train and score one candidate row on the validation split, or reuse its earlier result (``done``)."""
    key = (row, cfg.key())
    if key in done:
        return {**done[key], "same_as_earlier_candidate": True}
    res = class_pairs.train_model(cfg, val, device, progress=progress)
    ev = class_pairs.evaluate(res.model, cfg, val, device)
    done[key] = {"row": row, "metrics": {k: round(float(v), 6) for k, v in ev["metrics"].items()},
                 "tied_queries": round(ev["tied"], 4), "train_time_s": round(res.train_time_s, 1),
                 "config_key": cfg.key()}
    log(f"  {what}: " + "  ".join(f"{k}={v:.3f}" for k, v in ev["metrics"].items())
        + (f"  (collapsed: {ev['tied']:.0%} tied)" if ev["tied"] > 0.05 else ""))
    return done[key]


def tune(experiment: str, profile: str = "quick", dataset: str | None = None, seed: int = 0, device=None,
         root=None, results=None, search=None, overrides=None, write: bool = True, progress: bool = False,
         resume: bool = True, log=print) -> dict:
    """Run :data:`SEARCH` for ``experiment`` on the validation split of ``dataset`` (default
    :data:`TUNING_DATASET`), write the selection to :func:`tuning_path` (unless ``write=False``) and return
    it. ``search``: stages replacing :data:`SEARCH`'s; ``overrides``: fixed :class:`RunConfig` fields for
    every candidate (e.g. fewer iterations in tests).

    The record is rewritten after every candidate (``"complete": false`` until the end); with ``resume``, a
    candidate already in the record (same dataset, seed and configuration) is not retrained. A stage whose
    every candidate collapses keeps the values in force before it (the first candidate's, i.e. the profile's
    or the authors'), and says so (``"all_collapsed": true``)."""

    if experiment not in C.EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; allowed: {', '.join(C.EXPERIMENTS)}")
    _config.check_profile(profile)
    dataset = dataset or TUNING_DATASET[experiment]
    stages = search if search is not None else SEARCH[experiment]
    device = _config.default_device(device) if not isinstance(device, torch.device) else device
    base = dict(overrides or {})
    cfg0 = C.profile_config(experiment, profile, stages[0][0][0], seed, **base)
    full = C.load_data(experiment, dataset, profile, root, cfg=cfg0)
    val = validation_split(full, seed)
    chosen: dict = {}
    out_stages = []
    # (row, config key) -> result: a candidate repeated by a later stage (or an earlier call) is not retrained
    done = _earlier_runs(experiment, profile, results, dataset, seed) if (resume and write) else {}
    header = dict(experiment=experiment, profile=profile, dataset=dataset, seed=seed)

    def save(stages_so_far, complete: bool) -> None:
        if write:
            write_json_atomic(tuning_path(experiment, profile, results),
                              {**header, "complete": complete, "stages": stages_so_far, "chosen": dict(chosen)})
    t0 = time.perf_counter()
    for rows, grid in stages:
        names = list(grid)
        cands = []
        for values in itertools.product(*(grid[n] for n in names)):
            setting = dict(zip(names, values))
            per_row = [_candidate_run(row, C.profile_config(experiment, profile, row, seed,
                                                            **{**base, **chosen, **setting}),
                                      val, device, done, progress, log, f"{experiment} {row} {setting}")
                       for row in rows]
            scores = [_score(r["metrics"], val.level, r["tied_queries"]) for r in per_row]
            score = tuple(float(np.mean([s[i] for s in scores])) for i in range(len(CRITERION[val.level])))
            cands.append({"settings": setting, "runs": per_row, "score": [None if math.isinf(v) else round(v, 6)
                                                                          for v in score], "_score": score})
            save(out_stages + [{"rows": list(rows), "grid": {n: list(grid[n]) for n in names},
                                "candidates": [{k: v for k, v in c.items() if k != "_score"} for c in cands]}],
                 complete=False)
        best = max(cands, key=lambda c: c["_score"])  # max keeps the first of equal scores
        collapsed = math.isinf(best["_score"][0])
        if collapsed:  # nothing to choose: keep the first candidate (the profile's / authors' values)
            best = cands[0]
            log(f"  every candidate of {names} collapsed; keeping {best['settings']}")
        chosen.update(best["settings"])
        for c in cands:
            c.pop("_score")
        out_stages.append({"rows": list(rows), "grid": {n: list(grid[n]) for n in names}, "candidates": cands,
                           "chosen": dict(best["settings"]), **({"all_collapsed": True} if collapsed else {})})
    rec = {
        **header, "complete": True,
        "criterion": f"mean over the stage's rows of {CRITERION[val.level][0]} on the validation split "
                     f"(ties: {CRITERION[val.level][1]}, then the first candidate); collapsed candidates excluded",
        "criterion_metrics": list(CRITERION[val.level]),
        "split": val.split, "validation": val.summary(),
        "fixed_overrides": base, "stages": out_stages, "chosen": chosen,
        "not_searched": {k: v for k, v in AUTHORS_SETTINGS.items() if k not in chosen},
        "note": "one seed, one short run per candidate: the choice is as noisy as these runs",
        "device": device_name(device), "torch": torch.__version__, "git_commit": git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_time_s": round(time.perf_counter() - t0, 1),
    }
    if write:
        write_checked_json(tuning_path(experiment, profile, results), rec)
    return rec
