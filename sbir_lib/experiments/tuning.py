"""Choosing the DASE/MEMS settings on a validation split carved from the training data, never on the test split.

Used by :func:`sbir_lib.experiments.category.run_one` (every record names, per setting, what chose it:
``"settings_chosen_on"``) and run from the shell::

    python -m sbir_lib.experiments tune --experiment dase_sketchy --profile quick
    python -m sbir_lib.experiments tune --experiment dase_qmul --profile quick --dataset shoes
    python -m sbir_lib.experiments show --experiment dase_qmul --profile quick
    # the same through the runner's CLI: python -m sbir_lib.experiments tune --experiment ...

**The validation split** (:func:`validation_split`, seeded) comes out of the *training* part of a
:class:`sbir_lib.experiments.category.PairedData`; the test queries and the gallery are untouched:

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
:data:`sbir_lib.experiments.category.PROFILES` (``tests/test_category.py::test_profiles_use_the_validated_settings`` checks that they agree). The final runs
then train on the whole training set with the chosen values and are evaluated once on the test split.

**What is not searched** (:data:`AUTHORS_SETTINGS`): settings taken from the authors' code
(github.com/Ben-Louis/SBIR-DASE-MEMS, commit 589f789), cited by file and line. The authors have no
validation split: their ``datasets/split_data.py`` writes train and test lists only.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sbir_lib.experiments import category as C
from sbir_lib.core import config as _config

__all__ = ["AUTHORS_SETTINGS", "CRITERION", "SEARCH", "TUNED_SETTINGS", "load_tuning", "settings_provenance",
           "tune", "tuning_path", "validation_split"]

#: Candidates per experiment: stages ``(rows, {setting: candidates})``; rows are scored on the mean criterion.
SEARCH: dict[str, list[tuple[tuple[str, ...], dict[str, list]]]] = {
    "dase_sketchy": [(("dase_mems",), {"mems_margin": [2.0, 3.0, 4.0], "center_lr_mult": [1.0, 10.0]})],
    # ImageNet-initialised EfficientNet-Lite0: with the authors' schedule (margin reached at half the run) every
    # margin-2 candidate collapsed in the quick profile, so the annealing span is searched too (authors' first)
    "dase_sketchy_imagenet": [(("dase_mems",), {"mems_anneal": [0.5, 1.0], "center_lr_mult": [1.0, 10.0]}),
                              (("dase_mems",), {"mems_margin": [2.0, 3.0, 4.0]})],
    "dase_qmul": [(("dase_triplet", "dase_mems"), {"lr": [1e-4, 1e-3]}),
                  (("dase_mems",), {"mems_margin": [2.0, 3.0, 4.0], "center_lr_mult": [1.0, 10.0]})],
}
TUNED_SETTINGS = {exp: tuple(dict.fromkeys(k for _, grid in stages for k in grid)) for exp, stages in SEARCH.items()}
CRITERION = {"category": ("mAP@all", "acc@1"), "instance": ("acc@10", "acc@1")}
TUNING_DATASET = {"dase_sketchy": "sketchy_mini", "dase_sketchy_imagenet": "sketchy_mini", "dase_qmul": "shoes"}

_REPO = "Ben-Louis/SBIR-DASE-MEMS@589f789"
#: Settings that follow the authors' code (not searched), with where the code says so.
AUTHORS_SETTINGS = {
    "mems_anneal": f"the authors' code ({_REPO} main.py:38-39 and models/losses.py:75-80): the MEMS margin rises "
                   "linearly from 1 over the first 100,000 of 200,000 steps; scaled to our run: the first half",
    "cosface_anneal": f"the authors' code ({_REPO} models/losses.py:59-65 with main.py:39): the CosFace margin "
                      "rises linearly from 0 over the first half of the run",
    "cosface_margin": f"the authors' README.md:63 (--margin=0.35 --scale=32 for CosFace)",
    "cosface_scale": f"the authors' README.md:63 (--scale=32)",
    "test_distance": f"the authors' tester.py:41-45, 73-81 (min over the 4 flip combinations) for the category "
                     "level; dase_qmul keeps DSSA's test views (mean over the views) to compare with DSSA",
    "weight_decay": f"the authors' trainer.py:39-45 (1e-4 on the network, none on the loss's parameters)",
}


def tuning_path(experiment: str, profile: str, results=None) -> Path:
    return _config.results_root(results) / "tuning" / f"{experiment}.{profile}.json"


def load_tuning(experiment: str, profile: str, results=None, partial: bool = False) -> dict | None:
    """The selection record of ``experiment`` / ``profile``, or ``None``; an unfinished one only with ``partial``."""
    p = tuning_path(experiment, profile, results)
    rec = json.loads(p.read_text()) if p.exists() else None
    return rec if rec is not None and (partial or rec.get("complete", True)) else None


# ====================================================================================== the split

def validation_split(data: C.PairedData, seed: int = 0, sketches_per_class: int = 4, photos_per_class: int = 5,
                     instance_fraction: float = 0.2) -> C.PairedData:
    """A :class:`~sbir_lib.experiments.category.PairedData` whose training part is ``data``'s training part minus a
    validation split, and whose queries / gallery are that validation split (rules in the module
    docstring). ``data``'s test queries and gallery are not used."""
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
        return C.PairedData(
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
    return C.PairedData(
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


# ====================================================================================== the search

def _score(metrics: dict, level: str, tied: float) -> tuple:
    if tied > 0.05:
        return (-math.inf, -math.inf)
    return tuple(float(metrics[k]) for k in CRITERION[level])


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
    from sbir_lib.experiments.runner import device_name

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
    done: dict = {}  # (row, config key) -> result: a candidate repeated by a later stage is not retrained
    old = load_tuning(experiment, profile, results, partial=True) if (resume and write) else None
    if old and old.get("dataset") == dataset and old.get("seed") == seed:
        for st in old.get("stages", []):
            for c in st["candidates"]:
                for r in c["runs"]:
                    if r.get("config_key"):
                        done[(r["row"], r["config_key"])] = {k: v for k, v in r.items()
                                                             if k != "same_as_earlier_candidate"}
    header = dict(experiment=experiment, profile=profile, dataset=dataset, seed=seed)

    def save(stages_so_far, complete: bool) -> None:
        if write:
            from sbir_lib.core.io import write_json_atomic

            write_json_atomic(tuning_path(experiment, profile, results),
                              {**header, "complete": complete, "stages": stages_so_far, "chosen": dict(chosen)})
    t0 = time.perf_counter()
    for rows, grid in stages:
        names = list(grid)
        cands = []
        for values in itertools.product(*(grid[n] for n in names)):
            setting = dict(zip(names, values))
            per_row = []
            for row in rows:
                cfg = C.profile_config(experiment, profile, row, seed, **{**base, **chosen, **setting})
                if (row, cfg.key()) in done:
                    per_row.append({**done[(row, cfg.key())], "same_as_earlier_candidate": True})
                    continue
                res = C.train_model(cfg, val, device, progress=progress)
                ev = C.evaluate(res.model, cfg, val, device)
                per_row.append({"row": row, "metrics": {k: round(float(v), 6) for k, v in ev["metrics"].items()},
                                "tied_queries": round(ev["tied"], 4), "train_time_s": round(res.train_time_s, 1),
                                "config_key": cfg.key()})
                done[(row, cfg.key())] = per_row[-1]
                log(f"  {experiment} {row} {setting}: " + "  ".join(f"{k}={v:.3f}" for k, v in ev["metrics"].items())
                    + (f"  (collapsed: {ev['tied']:.0%} tied)" if ev["tied"] > 0.05 else ""))
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
        "device": device_name(device), "torch": torch.__version__, "git_commit": _config_git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_time_s": round(time.perf_counter() - t0, 1),
    }
    if write:
        from sbir_lib.core.io import write_json_atomic

        write_json_atomic(tuning_path(experiment, profile, results), rec)
    return rec


def _config_git_commit() -> str:
    gc = getattr(_config, "git_commit", None)
    if gc is None:
        from sbir_lib.experiments.runner import git_commit as gc
    return gc()


# ====================================================================================== provenance

def settings_provenance(experiment: str, profile: str, cfg: C.RunConfig, results=None) -> dict[str, str]:
    """For a run's ``cfg``: what chose each DASE/MEMS setting (the validation record, the authors' code, or
    nothing: a profile default / an override), one line per setting; recorded as ``settings_chosen_on``."""
    root = _config.results_root(results)
    out: dict[str, str] = {}
    own = load_tuning(experiment, profile, root)
    quick = load_tuning(experiment, "quick", root) if profile != "quick" else None
    rel = lambda p: str(p.relative_to(root.parent)) if p.is_relative_to(root.parent) else str(p)  # noqa: E731
    for name in TUNED_SETTINGS.get(experiment, ()):
        if not _applies(name, cfg):
            continue
        value = getattr(cfg, name)
        if own is not None and name in own["chosen"]:
            if _same(own["chosen"][name], value):
                none = any(st.get("all_collapsed") and name in st["grid"] for st in own["stages"])
                out[name] = (("every candidate collapsed on the " if none else "") +
                             f"{own['split']}, on {own['dataset']} ({rel(tuning_path(experiment, profile, root))})"
                             + ("; the first candidate (the authors' / profile's value) kept" if none else ""))
                default = getattr(C.RunConfig, name, None)
                if name in AUTHORS_SETTINGS and default is not None and not _same(default, value):
                    out[name] += (f"; differs from the authors' value {default}: {AUTHORS_SETTINGS[name]} "
                                  "(it did worse on the validation split, see the record)")
            else:
                out[name] = (f"override: {value} is not the validated value {own['chosen'][name]} "
                             f"({rel(tuning_path(experiment, profile, root))})")
        elif quick is not None and name in quick["chosen"] and _same(quick["chosen"][name], value):
            out[name] = (f"validation split of the quick profile ({rel(tuning_path(experiment, 'quick', root))}); "
                         f"not re-validated in the {profile} profile")
        else:
            out[name] = f"not validated: profile default (no {rel(tuning_path(experiment, profile, root))})"
    for name, why in AUTHORS_SETTINGS.items():
        if not _applies(name, cfg) or name in out:  # searched on the validation split for this experiment
            continue
        if name == "test_distance":
            why = (AUTHORS_SETTINGS[name] if cfg.test_distance == "flipmin" else
                   f"{cfg.test_distance} over {cfg.test_views} test view(s): DSSA's protocol, not the authors' "
                   "flip-min (tester.py:73-81)")
        out[name] = why
    return out


def _applies(name: str, cfg: C.RunConfig) -> bool:
    """Whether setting ``name`` plays a part in a run of ``cfg`` (MEMS settings only for MEMS, ...)."""
    if name.startswith("mems_") or name == "center_lr_mult":
        return cfg.loss == "mems"
    if name.startswith("cosface_"):
        return cfg.loss == "cosface"
    return True


def _same(a, b) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-9) if isinstance(a, (int, float)) else a == b


# ====================================================================================== CLI

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sbir_lib.experiments", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tune", help="choose the settings on the validation split and write results/tuning/")
    t.add_argument("--experiment", required=True, help=", ".join(C.EXPERIMENTS))
    t.add_argument("--profile", default=None, help="quick | full (default: $SBIR_PROFILE or quick)")
    t.add_argument("--dataset", default=None, help="default: " + ", ".join(f"{k}: {v}" for k, v in TUNING_DATASET.items()))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None)
    t.add_argument("--root", default=None)
    t.add_argument("--results", default=None)
    s = sub.add_parser("show", help="print a selection record")
    s.add_argument("--experiment", required=True)
    s.add_argument("--profile", default="quick")
    s.add_argument("--results", default=None)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "show":
            rec = load_tuning(args.experiment, args.profile, args.results)
            if rec is None:
                print(f"no selection recorded at {tuning_path(args.experiment, args.profile, args.results)}")
                return 1
            print(f"{args.experiment} ({args.profile}) on {rec['dataset']}: chosen {rec['chosen']}\n  {rec['split']}")
            for st in rec["stages"]:
                for c in st["candidates"]:
                    print(f"  {c['settings']}: score {c['score']}")
            return 0
        profile = _config.check_profile(args.profile) if args.profile else _config.default_profile()
        rec = tune(args.experiment, profile, args.dataset, args.seed, args.device, args.root, args.results)
        print(f"chosen {rec['chosen']}; wrote {tuning_path(args.experiment, profile, args.results)} "
              f"({rec['wall_time_s']:.0f} s)")
        return 0
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
