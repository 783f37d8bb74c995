"""Choosing, on held-out data, how the QMUL-pairs offline init is pretrained and how each init is fine-tuned.

Taught in: ``notebooks/05_reproduce_tables.ipynb`` ("Where accuracy comes from"). Run from the shell::

    python -m sbir_lib.experiments tune-pretrain --profile quick    # the sketchy_qmul pretraining, change by change
    python -m sbir_lib.experiments tune-init --profile quick        # lr per init and variant, on a validation split
    python -m sbir_lib.experiments embedding-spread --profile quick # record each init's starting embedding spread

Neither ever reads a test split. The held-out data are the validation instances carved from each QMUL training
split (:func:`sbir_lib.training.triplet.carve_validation`, seed 0, the profile's ``validation_size`` instances),
which the ``sketchy_qmul`` pretraining leaves out of its pair pool, and the Sketchy-mini test sketches.

**tune-pretrain** (:func:`tune_pretrain`, record ``results/tuning/pretrain_sketchy_qmul.<profile>.json``). The
changes of :data:`PRETRAIN_STAGES` are tried one after the other on top of the Sketchy-mini stand-in's recipe;
a change is kept when it raises the criterion: the mean over shoes, chairs and handbags of the validation acc@1
of the pretrained network itself (fc7, no fine-tuning: what a frozen trunk hands the fine-tuning), ties going to
the held-out Sketchy top-1. The record lists every candidate's held-out top-1 / mAP on the Sketchy-mini test
sketches and its acc@1 / acc@10 per QMUL validation split; the kept settings are copied by hand into
:data:`sbir_lib.training.pretrain.INITS` (``tests/test_pretrain_pairs.py`` checks that they agree) and the kept
candidate's checkpoint is saved where the ``@sketchy_qmul`` rows look (:func:`sbir_lib.core.records.init_checkpoint`).

**tune-init** (:func:`tune_init`, record ``results/tuning/init_recipe.<profile>.json``). For each init of
:data:`INITS` and each variant (``base``: conv1-conv5 frozen; ``full``: conv1-conv4 frozen), the learning rates
of the profile's ``init_lrs`` fine-tune on the training split minus the validation split of :data:`TUNING_DATASET`
and are scored by validation acc@1 (ties: acc@10, then the earlier candidate). For a Sketch-a-Net init, first
which layers it loads (:data:`INIT_LAYER_CANDIDATES`: conv1-fc7 as the authors, or the convolutions only with a
fresh fc6/fc7), then the lr, then, for ``base``, the frozen layers of :data:`FREEZE_CANDIDATES`; each stage keeps
what the earlier ones chose. What else a recipe could
vary is fixed and said in the record: the iterations (the profile's, the authors' 20,000 in ``full``), batch
norm (EfficientNet's stays in eval mode with its trunk frozen, :mod:`sbir_lib.models.imagenet`), no warm-up
(the authors' constant lr). The
chosen lr per (init, variant) is read by :func:`chosen_overrides`, which the runner applies to the
``pretrain`` experiment's ``@<init>`` rows; each record says so in ``settings_chosen_on``.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import torch

from sbir_lib.core import config as _config
from sbir_lib.core.profiles import as_profile
from sbir_lib.core.records import device_name, git_commit, write_checked_json, init_checkpoint, provenance
from sbir_lib.data import datasets as D
from sbir_lib.experiments.settings import load_tuning, tuning_path
from sbir_lib.training import pretrain as PT
from sbir_lib.training import triplet as T
from sbir_lib.training.engine import seed_everything

__all__ = ["PRETRAIN_STAGES", "INITS", "FREEZE_CANDIDATES", "INIT_LAYER_CANDIDATES", "TUNING_DATASET", "tune_pretrain", "tune_init",
           "chosen_overrides", "embedding_spread", "record_embedding_spread", "spread_table"]

#: the changes tried on top of the stand-in's recipe, in order; each stage's first candidate is "no change"
PRETRAIN_STAGES: list[tuple[str, list[dict]]] = [
    ("QMUL training pairs (instance classes + instance triplets)",
     [{}, {"pairs": D.QMUL_NAMES, "pair_fraction": 0.5}]),
    ("sketch augmentation (thicker / thinner strokes, parts erased)", [{}, {"stroke_aug": 0.5}]),
    ("schedule: twice the steps", [{}, {"double_steps": True}]),
]
#: inits whose fine-tuning recipe is chosen (scratch keeps the authors' recipe: nothing is frozen)
INITS = ("sketchy_mini", "sketchy_qmul", "imagenet")
#: the frozen layers tried for ``base`` from a Sketch-a-Net init, after the lr: the authors' conv1-conv5, or
#: conv5 trained too (a pretrained fc7 can be nearly collapsed within one category; see notebook 05)
FREEZE_CANDIDATES = ("auto", "conv4")
#: which layers a Sketch-a-Net init loads, tried first: conv1-fc7 (the authors') or conv1-conv5 with a fresh head
INIT_LAYER_CANDIDATES = ("all", "conv")
TUNING_DATASET = "shoes"


def _criterion(pv: dict) -> tuple:
    val = pv.get("qmul_val") or {}
    mean = sum(v["acc@1"] for v in val.values()) / max(1, len(val))
    return (round(mean, 4), round(pv.get("heldout_top1") or 0.0, 4))


def tune_pretrain(profile: str = "quick", root=None, results=None, device=None, stages=None, data=None,
                  overrides=None, log=print) -> dict:
    """Run :data:`PRETRAIN_STAGES` (or ``stages``), write the record, save the kept candidate's checkpoint as
    the ``sketchy_qmul`` init of ``profile``; return the record. ``data``: a
    :class:`~sbir_lib.training.pretrain_data.PretrainData` with pairs instead of reading the data (tests);
    ``overrides``: fixed pretraining settings for every candidate (tests: fewer steps)."""
    _config.check_profile(profile)
    stages = PRETRAIN_STAGES if stages is None else stages
    device = _config.default_device(device)
    base_cfg = PT.profile_config(profile, **(overrides or {}))
    if data is None:
        data = PT.prepare_data(root=root, categories=base_cfg.categories, pairs=D.QMUL_NAMES, profile=profile)
    t0 = time.perf_counter()
    kept: dict = {}
    seen: dict[str, dict] = {}
    out_stages = []
    work = init_checkpoint("sketchy_qmul", profile).parent / "search"
    best_ckpt = None
    for title, candidates in stages:
        rows = []
        for cand in candidates:
            settings = {**kept, **cand}
            key = repr(sorted((k, list(v) if isinstance(v, (tuple, list)) else v) for k, v in settings.items()))
            if key not in seen:
                cfg = PT.profile_config(profile, **{**(overrides or {}), **settings})
                out = work / f"candidate_{len(seen)}.{profile}.pt"
                res = PT.pretrain(cfg, data, device=device, out=out, progress=False)
                pv = res.provenance
                seen[key] = {"settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
                             "criterion": list(_criterion(pv)), "heldout_top1": pv["heldout_top1"],
                             "heldout_map": pv["heldout_map"], "qmul_val": pv["qmul_val"],
                             "wall_time_s": pv["wall_time_s"], "checkpoint": str(out)}
                c = seen[key]
                per = ", ".join(f"{d} {100 * v['acc@1']:.1f}" for d, v in pv["qmul_val"].items())
                log(f"pretrain {c['settings']}: QMUL val acc@1 mean {100 * c['criterion'][0]:.1f}% "
                    f"({per}); Sketchy "
                    f"top-1 {100 * (pv['heldout_top1'] or 0):.1f}% mAP {100 * (pv['heldout_map'] or 0):.1f}% "
                    f"({pv['wall_time_s']:.0f} s)")
            rows.append(seen[key])
        best = max(range(len(rows)), key=lambda i: (tuple(rows[i]["criterion"]), -i))
        kept = dict(rows[best]["settings"])
        best_ckpt = rows[best]["checkpoint"]
        out_stages.append({"change": title, "candidates": rows, "kept": best != 0})
    kept = {k: tuple(v) if isinstance(v, list) else v for k, v in kept.items()}
    target = init_checkpoint("sketchy_qmul", profile)
    shutil.copyfile(best_ckpt, target)
    rec = {"experiment": "pretrain_sketchy_qmul", "profile": profile, "stages": out_stages,
           "chosen": {k: list(v) if isinstance(v, tuple) else v for k, v in kept.items()},
           "criterion": "mean over the QMUL validation splits of acc@1 of the pretrained fc7 (no fine-tuning); "
                        "ties: held-out Sketchy-mini top-1",
           "held_out": data.pairs.held_out if data.pairs is not None else None,
           "checkpoint": str(target), "device": device_name(device), "torch": torch.__version__,
           "git_commit": git_commit(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "wall_time_s": round(time.perf_counter() - t0, 1)}
    write_checked_json(tuning_path("pretrain_sketchy_qmul", profile, results), rec)
    log(f"kept {rec['chosen']}; checkpoint {target}; wrote {tuning_path('pretrain_sketchy_qmul', profile, results)}")
    return rec


def _init_arg(init: str, profile: str) -> str:
    if init == "imagenet":
        return "imagenet"
    path = init_checkpoint(init, profile)
    if not path.exists():
        cmd = ("python -m sbir_lib.experiments tune-pretrain" if init == "sketchy_qmul"
               else "python -m sbir_lib.training.pretrain run")
        raise FileNotFoundError(f"no {init} checkpoint at {path}; make it with: {cmd} --profile {profile}")
    return str(path)


def tune_init(profile: str = "quick", inits=INITS, variants=("base", "full"), dataset: str = TUNING_DATASET,
              lrs=None, seed: int = 0, iterations: int | None = None, device=None, root=None, results=None,
              data=None, log=print) -> dict:
    """Fine-tune every (init, variant, lr) on ``dataset``'s training split minus its validation split, score
    validation acc@1, choose the lr per (init, variant) and write the record (module docstring)."""
    _config.check_profile(profile)
    lrs = tuple(lrs or as_profile(profile).init_lrs)
    data = data if data is not None else D.load_qmul(dataset, root, photos=False)
    device = _config.default_device(device)
    val = as_profile(profile).validation_size
    t0 = time.perf_counter()
    scores: dict = {}
    chosen: dict = {}
    def score(init, init_arg, v, **settings) -> dict:
        cfg = T.profile_config(profile, experiment="pretrain", variant=v, seed=seed, init=init_arg, val_size=val,
                               cache_views=as_profile(profile).init_cache_views, iterations=iterations, **settings)
        cfg = dataclasses.replace(cfg, eval_every=cfg.iterations)  # one validation score, at the end
        res = T.train(cfg, data, device=device, progress=False)
        h = res.history
        row = {**settings, "val_acc@1": round(float(h["val_acc@1"][-1]), 4),
               "val_acc@10": round(float(h["val_acc@10"][-1]), 4), "train_time_s": round(res.train_time_s, 1)}
        log(f"{init:13s} {v:4s} {settings}: validation acc@1 {100 * row['val_acc@1']:5.1f}% "
            f"acc@10 {100 * row['val_acc@10']:5.1f}% ({res.train_time_s:.0f} s)")
        return row

    def best(rows) -> dict:
        return rows[max(range(len(rows)), key=lambda i: (rows[i]["val_acc@1"], rows[i]["val_acc@10"], -i))]

    for init in inits:
        init_arg = _init_arg(init, profile)
        sketchanet = init != "imagenet"
        for v in variants:
            pick: dict = {}
            rows: list[dict] = []
            # 1. which layers the init loads (Sketch-a-Net inits), at the profile's lr
            if sketchanet:
                layers = [score(init, init_arg, v, lr=lrs[0], init_layers=x) for x in INIT_LAYER_CANDIDATES]
                rows += layers
                if best(layers)["init_layers"] != "all":
                    pick["init_layers"] = best(layers)["init_layers"]
            # 2. the lr, with that choice
            first = [r for r in rows if r.get("init_layers", "all") == pick.get("init_layers", "all")]
            lr_rows = first + [score(init, init_arg, v, lr=lr, **pick) for lr in lrs[len(first):]]
            rows += lr_rows[len(first):]
            pick = {"lr": best(lr_rows)["lr"], **pick}
            # 3. the frozen layers (base from a Sketch-a-Net init), with those choices
            if v == "base" and sketchanet:
                frozen = [best(lr_rows)] + [score(init, init_arg, v, **pick, freeze=f) for f in FREEZE_CANDIDATES[1:]]
                rows += frozen[1:]
                if best(frozen).get("freeze", "auto") != "auto":
                    pick["freeze"] = best(frozen)["freeze"]
            scores.setdefault(init, {})[v] = rows
            chosen.setdefault(init, {})[v] = pick
    rec = {"experiment": "init_recipe", "profile": profile, "dataset": dataset, "seed": seed,
           "inits": list(inits), "variants": list(variants), "lr_candidates": list(lrs), "val_size": val,
           "split": f"validation split: {val} training instances held out by a seeded permutation (seed {seed}); "
                    "the test split is not used",
           "iterations": T.profile_config(profile, experiment="pretrain", iterations=iterations).iterations,
           "cache_views": as_profile(profile).init_cache_views,
           "fixed": {"iterations": "the profile's (full: the authors' 20,000)",
                     "frozen": "the authors' rule (conv1-conv4 with attention, conv1-conv5 without; "
                               "EfficientNet-Lite0: the whole trunk), except where base's search chose otherwise",
                     "batch_norm": "EfficientNet's trunk batch norms stay in eval mode (frozen trunk)",
                     "warmup": "none (the authors' constant lr)"},
           "scores": scores, "chosen": chosen,
           "rule": "in turn: the layers loaded (Sketch-a-Net inits), the lr, the frozen layers (base from a "
                   "Sketch-a-Net init); each by highest validation acc@1, ties: acc@10, then the earlier candidate",
           "device": device_name(device), "torch": torch.__version__, "git_commit": git_commit(),
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "wall_time_s": round(time.perf_counter() - t0, 1)}
    write_checked_json(tuning_path("init_recipe", profile, results), rec)
    log(f"chosen {chosen}; wrote {tuning_path('init_recipe', profile, results)}")
    return rec


def chosen_overrides(init: str, variant: str, profile: str, results=None) -> tuple[dict, str | None]:
    """``(overrides, provenance)`` for fine-tuning ``variant`` from ``init`` in ``profile``: the recorded
    choice of :func:`tune_init` plus the cache it was chosen with, or ``({}, None)`` when none is recorded."""
    rec = load_tuning("init_recipe", profile, results)
    choice = (rec or {}).get("chosen", {}).get(init, {}).get(variant)
    if choice is None:
        return {}, None
    where = (f"lr chosen on the validation split of {rec['dataset']} ({rec['val_size']} training instances, "
             f"seed {rec['seed']}) by tune-init: results/tuning/init_recipe.{profile}.json")
    return {**choice, "cache_views": rec["cache_views"]}, where


@torch.no_grad()
def embedding_spread(profile: str = "quick", dataset: str = TUNING_DATASET, inits=("scratch",) + INITS, root=None,
                     data=None):
    """How spread out each init's starting embedding is on one dataset, before any fine-tuning: the mean squared
    distance between normalised ``base`` embeddings of a validation sketch and its own photo's edge map, and of a
    sketch and the other validation edge maps (centre crops; compare with the triplet margin 0.3). The validation
    split of :func:`tune_init` is used, never the test split. An init whose checkpoint or weights are missing
    here gives a row of NaN and says why in ``note``. Taught in notebook 05."""
    import pandas as pd

    nan = float("nan")
    if data is None:
        try:
            data = D.load_qmul(dataset, root, photos=False)
        except D.DatasetMissingError as e:  # no real data: say so in every row
            return pd.DataFrame([{"init": i, "sketch to its photo": nan, "sketch to other photos": nan,
                                  "note": str(e)} for i in inits]).set_index("init")
    _, val = T.carve_validation(data.train, as_profile(profile).validation_size, seed=0)
    rows = []
    for init in inits:
        row = {"init": init, "sketch to its photo": nan, "sketch to other photos": nan, "note": ""}
        try:
            init_arg = None if init == "scratch" else _init_arg(init, profile)
            cfg = T.profile_config(profile, experiment="pretrain", variant="base", init=init_arg)
            seed_everything(0)
            model, energy = T.build_network(cfg, torch.device("cpu"))
            d = T.distance_matrix(model.eval(), energy.eval(), val.sketches, val.edges, 1, torch.device("cpu"))
            n = len(d)
            row["sketch to its photo"] = float(d.diag().mean())
            row["sketch to other photos"] = float((d.sum() - d.diag().sum()) / (n * (n - 1)))
        except (FileNotFoundError, ImportError, RuntimeError) as e:
            row["note"] = str(e)
        rows.append(row)
    return pd.DataFrame(rows).set_index("init")


SPREAD_COLUMNS = ("sketch to its photo", "sketch to other photos")


def record_embedding_spread(profile: str = "quick", root=None, results=None, data=None) -> Path:
    """Measure :func:`embedding_spread` here (where the init checkpoints and the ImageNet weights are) and keep
    it as ``results/tuning/embedding_spread.<profile>.json``, with where and when it was measured, so that a
    checkout without the git-ignored checkpoints shows the same numbers (:func:`spread_table`). Refuses to
    record without the real data (the frame would only say that it is missing); ``data``: another dataset
    (tests)."""
    frame = embedding_spread(profile, root=root, data=data)
    if frame[list(SPREAD_COLUMNS)].isna().all().all():
        raise FileNotFoundError(f"nothing measured, nothing recorded: {frame['note'].iloc[0]}")
    rec = {"experiment": "embedding_spread", "profile": profile, "dataset": TUNING_DATASET,
           "split": f"the validation split of tune-init ({as_profile(profile).validation_size} pairs carved from the "
                    f"training split, seed 0), centre crops, the base variant before any fine-tuning",
           **provenance(torch.device("cpu")),
           "rows": {init: {c: (None if v != v else round(float(v), 6)) for c, v in row.items() if c in SPREAD_COLUMNS}
                    | {"note": row["note"]} for init, row in frame.to_dict("index").items()}}
    path = tuning_path("embedding_spread", profile, results)
    write_checked_json(path, rec)
    return path


def spread_table(profile: str = "quick", results=None, root=None):
    """:func:`embedding_spread` as notebook 05 shows it: the recorded measurement
    (:func:`record_embedding_spread`) where there is one, with ``attrs["source"]`` saying where and when it was
    measured; else measured now (rows whose checkpoint or weights are missing here say so in ``note``)."""
    import pandas as pd

    rec = load_tuning("embedding_spread", profile, results)
    if rec is None:
        frame = embedding_spread(profile, root=root)
        frame.attrs["source"] = "measured now, on this machine"
        return frame
    frame = pd.DataFrame.from_dict(rec["rows"], orient="index").rename_axis("init")
    frame[list(SPREAD_COLUMNS)] = frame[list(SPREAD_COLUMNS)].astype(float)
    frame.attrs["source"] = (f"recorded {rec['created'][:10]} on {rec['device']} (commit {rec['git_commit']}, "
                             f"torch {rec['torch']})")
    return frame
