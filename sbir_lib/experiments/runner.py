"""Experiment runner: trains and records every row of the DSSA paper's Tables 1-5.

Used by ``notebooks/05_reproducing_the_tables.ipynb`` (tables read the records written here) and
run from the shell::

    python -m sbir_lib.experiments run --experiment table2 --dataset shoes --seeds 0 1 2 --profile quick
    python -m sbir_lib.experiments run --all --profile full --device cuda
    python -m sbir_lib.experiments summary --experiment table2
    python -m sbir_lib.experiments verify      # recompute every record from its distance file

Each run writes, atomically,

    results/<experiment>/<dataset>/<variant>/seed<k>.json        (profile full)
    results/<experiment>/<dataset>/<variant>/seed<k>.quick.json  (profile quick)

with the metrics (acc@1, acc@5, acc@10, the acc@K curve), config, init, seed, profile, iterations,
wall time, device, torch version and git commit, and ``seed<k>[.quick].dist.npy`` beside it: the
float32 test distance matrix, from which ``python -m sbir_lib.experiments verify`` recomputes every
metric exactly. Recorded runs are
skipped (``--force`` retrains). A variant already trained with the same configuration for another
table is reused: its record is copied with ``reused_from`` naming the original, so Tables 1-5 need
each distinct configuration trained once.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from sbir_lib.core import config as _config
from sbir_lib.core.io import save_npy_atomic, torch_save_atomic, write_json_atomic
from sbir_lib.core.store import RecordStore
from sbir_lib.core.records import (
    as_stored,
    base_record,
    checkpoint_path,
    dist_path,
    load_record,
    record_path,
    recorded,
    weights_path,
    write_record,
)
from sbir_lib.data import datasets as D
from sbir_lib.data.synthetic import make_synthetic
from sbir_lib.experiments import dase_mems, init_recipe
from sbir_lib.experiments.spec import CLASSICAL, RunSpec, split_row  # noqa: F401  (re-exported)
from sbir_lib.experiments.classical import run_classical_baseline
from sbir_lib.metrics.retrieval import metrics_of
from sbir_lib.core import tablespec as TS
from sbir_lib.training import triplet as T
from sbir_lib.training.engine import seed_everything

DATASETS = ("shoes", "chairs", "handbags")
EXTRA_DATASETS = ("synthetic",)


# Extra experiments beyond the paper's tables (their training overrides: ``experiments`` of each profile).
# ``curve``: acc@1 against iterations on a validation split carved from the *training* data,
# recorded in each run's history (val_iteration, val_acc@1): the evidence for the iteration count.
EXTRA_EXPERIMENTS = {
    "curve": ["base", "full"],
    # From scratch vs the offline Sketch-a-Net pretraining of ``sbir_lib.training.pretrain`` (issue [pretrain]):
    # a row ``variant@NAME`` trains ``variant`` from ``checkpoints/sketchanet_NAME[.quick].pt``.
    "pretrain": ["base@untrained", "full@untrained", "base", "full", "base@sketchy_mini", "full@sketchy_mini",
                 "base@sketchy_qmul", "full@sketchy_qmul", "base@imagenet", "full@imagenet"],
}


def experiments() -> dict[str, list[str]]:
    """Experiment name -> the rows (variant or classical method names) it records."""

    exps = {t.key: t.networks() for t in TS.TABLES.values()}  # the registry: each table's networks in order
    exps.update(EXTRA_EXPERIMENTS)
    exps.update(dase_mems.EXPERIMENTS)
    return dict(sorted(exps.items()))


def datasets_of(experiment: str) -> tuple[str, ...]:
    """The dataset names an experiment accepts."""
    if experiment in dase_mems.DATASETS:
        return tuple(dase_mems.DATASETS[experiment])
    return DATASETS + EXTRA_DATASETS


def check_names(kind: str, names: Iterable[str], allowed: Iterable[str]) -> list[str]:
    allowed = list(allowed)
    names = list(names)
    bad = [n for n in names if n not in allowed]
    if bad:
        raise ValueError(f"unknown {kind} {', '.join(map(repr, bad))}; allowed: {', '.join(allowed)}")
    return names


def run_command(experiment: str, dataset: str, rows, seeds, profile: str) -> str:
    """The command that records exactly ``rows`` of ``experiment`` on ``dataset`` for ``seeds`` in ``profile``
    (never a whole table: the notebooks print it for the runs they miss)."""
    rows = [rows] if isinstance(rows, str) else list(dict.fromkeys(rows))
    seeds = [seeds] if isinstance(seeds, int) else list(dict.fromkeys(int(s) for s in seeds))
    return (f"python -m sbir_lib.experiments run --experiment {experiment} --dataset {dataset} "
            f"--rows {' '.join(rows)} --seeds {' '.join(map(str, seeds))} --profile {profile}")


def _find_reusable(results: Path, dataset: str, variant: str, seed: int, profile: str, key: str,
                   skip: Path) -> Path | None:
    name = record_path(results, "x", dataset, variant, seed, profile).name
    for cand in sorted(Path(results).glob(f"*/{dataset}/{variant}/{name}")):
        if cand == skip:
            continue
        rec = load_record(cand)
        if rec and rec.get("config_key") == key and not rec.get("reused_from") and dist_path(cand).exists():
            return cand
    return None


#: Variants whose trained weights (conv1-conv5, attention, energy; bf16) are kept beside the seed-0
#: record, for the attention maps of notebooks 02/06 (Figure 4) and the learned W of notebook 04.
#: fc6/fc7 are left out to keep the files small (~4 MB); rankings come from the saved distances.
WEIGHT_VARIANTS = ("full", "base+att", "base+att-noshortcut")
#: ``(dataset, row)`` whose seed-0 run keeps its *complete* network (fc6/fc7 included, float16, ~16 MB):
#: the sketch pad's default model (notebook 09, DSSA on shoes), which must answer a drawn query on any machine.
#: Retraining is not bit-reproducible across processors (issue 23), so such a record is evaluated with the
#: float16 weights it keeps: its distances are exactly those of the committed network. The working tree
#: travels to a GPU machine within 64 MiB, so only this one network is kept whole.
COMPLETE_WEIGHTS = (("shoes", "full"),)
#: the precision of a complete kept network
KEPT_DTYPE = "float16"


def keeps_weights(dataset: str, row: str, seed: int, user: bool = False) -> bool:
    """Whether a run keeps its weights: seed 0 of the rows the course reads them from (``full`` on every
    dataset for Figures 4/5 and notebook 04's W; the attention rows of notebook 02 on shoes), never an
    ``@init`` row. Weights are the bulk of ``results/``; the rest of a record is its distances. ``user``: a run a
    notebook trained into the user's own folder (:func:`sbir_lib.core.config.user_results_root`) keeps them for
    every seed and dataset of those rows, since the notebook that trained it goes on to show them."""
    variant, init_name = split_row(row)
    return (init_name is None and variant in WEIGHT_VARIANTS
            and (user or (seed == 0 and (variant == "full" or dataset in ("shoes", "synthetic")))))


def keeps_complete_weights(dataset: str, row: str, seed: int) -> bool:
    """Whether a run keeps its whole network (:data:`COMPLETE_WEIGHTS`, seed 0), evaluated as kept."""
    return seed == 0 and (dataset, row) in COMPLETE_WEIGHTS


def round_to_kept(model) -> None:
    """Round the floating-point weights of ``model`` in place to :data:`KEPT_DTYPE` (and back to their own
    dtype): the network a complete weights file holds, so that the record evaluated after this call is
    exactly the committed network's."""
    import torch

    dtype = getattr(torch, KEPT_DTYPE)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.to(dtype).to(t.dtype))


def save_weights(path: Path, model, energy, variant: str, complete: bool = False) -> None:
    """Keep the backbone convolutions and the attention module (bf16) and the energy (float32) of a run;
    ``complete``: the whole network, fc6/fc7 included, in :data:`KEPT_DTYPE` (after :func:`round_to_kept`,
    so the file holds exactly the evaluated network)."""
    import torch

    if complete:
        keep = {k: v.detach().to("cpu", getattr(torch, KEPT_DTYPE)) for k, v in model.state_dict().items()}
        note = (f"the complete network in {KEPT_DTYPE}, the one the record's distances were computed with "
                "(sbir_lib.course.query.load_network reloads it)")
    else:
        keep = {k: v.detach().to("cpu", torch.bfloat16) for k, v in model.state_dict().items()
                if not k.startswith(("backbone.fc6", "backbone.fc7"))}
        note = ("fc6/fc7 omitted: attention maps, conv5 features and the energy are exact; embeddings are not "
                "(use the saved distances)")
    torch_save_atomic(path, {"variant": variant, "model": keep, "complete": complete,
                             # float32: near 1, bf16 steps (0.004-0.008) would hide small changes of W
                             "energy": {k: v.detach().to("cpu", torch.float32)
                                        for k, v in energy.state_dict().items()},
                             "note": note})


def load_trained(experiment: str, dataset: str, variant: str, seed: int = 0, profile: str = "full",
                 results=None, device="cpu"):
    """``(model, energy)`` of a recorded run whose weights were kept (:func:`keeps_weights`).

    The model's conv1-conv5 and attention, and the energy (e.g. HOLEF's ``W``), are the trained ones;
    fc6/fc7 are not stored (so ``model.embed`` is not the trained embedding: use the record's
    distance matrix for rankings). Raises ``FileNotFoundError`` naming the command that records it.
    """
    import torch


    root = _config.results_root(results)
    rec = record_path(root, experiment, dataset, variant, seed, profile)
    meta = load_record(rec) or {}
    if meta.get("reused_from"):  # weights live beside the original run only
        rec = root / meta["reused_from"]
    wp = weights_path(rec)
    if not wp.exists():
        rule = (f"weights are kept for seed 0 of full on every dataset and of "
                f"{', '.join(v for v in WEIGHT_VARIANTS if v != 'full')} on shoes")
        how = ("this run does not keep them" if not keeps_weights(dataset, variant, seed) else
               "record them with: " + run_command(experiment, dataset, variant, seed, profile)
               + (" --force" if meta else ""))
        raise FileNotFoundError(f"no kept weights at {wp}; {rule}: {how}")
    state = torch.load(wp, map_location="cpu", weights_only=True)
    cfg = (T.TrainConfig(**meta["config"]) if meta.get("config")  # the network the record trained
           else T.profile_config(profile, variant=split_row(variant)[0]))
    model, energy = T.build_network(cfg, init=False)
    missing = model.load_state_dict({k: t.float() for k, t in state["model"].items()}, strict=False)
    if any(not k.startswith(("backbone.fc6", "backbone.fc7")) for k in missing.missing_keys):
        raise ValueError(f"{wp} does not match variant {variant!r}: missing {missing.missing_keys}")
    energy.load_state_dict({k: t.float() for k, t in state["energy"].items()})
    return model.to(device).eval(), energy.to(device).eval()


def run_one(experiment: str, dataset_name: str, row: str, seed: int, profile, *, device=None,
            root=None, results=None, force=False, init=None, overrides=None, progress=True,
            dataset=None, log=print, runs=None, packed=None, user=False) -> dict:
    """Train/evaluate one row of one table for one seed, or return its existing record: the run is resolved
    once into a :class:`~sbir_lib.experiments.spec.RunSpec` and recorded by the runner of its kind. ``user``: a
    notebook's own run into the user's folder (it keeps its weights, :func:`keeps_weights`)."""
    spec = RunSpec.resolve(experiment, dataset_name, row, seed, profile, init)
    opts = RunOptions(device=device, root=root, results=_config.results_root(results), force=force,
                      overrides=dict(overrides or {}), progress=progress, dataset=dataset, log=log, runs=runs,
                      packed=packed, user=user)
    if spec.kind == "dase_mems":  # loads its own data (category level / packed) and checks its own records
        return RUNNERS["dase_mems"](spec, opts)
    out = spec.record_path(opts.results)
    existing = recorded(out, opts.results, force, log)
    if existing is not None:
        return existing
    if opts.dataset is None:
        opts.dataset = load_dataset(dataset_name, root)
    opts.device = _config.default_device(device)
    return RUNNERS[spec.kind](spec, opts)


@dataclass
class RunOptions:
    """How a run is carried out (not what it is: that is its :class:`RunSpec`)."""

    device: Any = None
    root: Any = None
    results: Path = Path("results")
    force: bool = False
    overrides: dict = field(default_factory=dict)
    progress: bool = True
    dataset: Any = None
    log: Callable = print
    runs: Any = None
    packed: str | None = None  # a Sketchy-mini pack for the DASE/MEMS runs (the CLI's --packed)
    user: bool = False  # a notebook's own run into the user's folder (keeps its weights)


def _run_dase_mems(spec: RunSpec, o: RunOptions) -> dict:
    return dase_mems.run_one(spec.experiment, spec.dataset, spec.row, spec.seed, spec.profile.name,
                             device=o.device, root=o.root, results=o.results, force=o.force, progress=o.progress,
                             log=o.log, dataset=o.dataset, overrides=o.overrides, init=spec.init.given,
                             packed=o.packed)


def _run_classical(spec: RunSpec, o: RunOptions) -> dict:
    """Table 1's HOG + rankSVM rows (:mod:`sbir_lib.experiments.classical`), on the CPU."""
    import torch

    out, data = spec.record_path(o.results), o.dataset
    t0 = time.perf_counter()
    r = run_classical_baseline(spec.row, data.train.sketches, data.train.edges, data.test.sketches,
                               data.test.edges, train_triplets=data.train.triplets, seed=spec.seed,
                               profile=spec.profile.name)
    dist = torch.as_tensor(r["dist"])
    rec = _base_record(spec, data, "cpu")
    rec.update(config=r["config"], config_key=None, init=None, iterations=None,
               wall_time_s=round(time.perf_counter() - t0, 2), **_metrics(dist))
    write_record(out, rec, dist)
    o.log(f"wrote  {out.relative_to(o.results)}  acc@1={rec['metrics']['acc@1']:.3f}")
    return rec


def _train_config(spec: RunSpec, o: RunOptions) -> tuple[T.TrainConfig, str | None]:
    """The training configuration of a DSSA run, and what chose its fine-tuning recipe (``None``: nothing)."""
    extra = dict(o.overrides)
    chosen_on = None
    init_name = split_row(spec.row)[1]
    if spec.experiment == "pretrain" and init_name in init_recipe.INITS:
        # the fine-tuning recipe of this init, chosen on a validation split (issue [init]); explicit overrides win
        recipe, chosen_on = init_recipe.chosen_overrides(init_name, spec.variant, spec.profile.name)
        extra = {**recipe, **extra}
    cfg = T.profile_config(spec.profile, experiment=spec.experiment, variant=spec.variant, seed=spec.seed,
                           init=spec.init.config_value, **extra)
    return cfg, chosen_on


def _run_dssa(spec: RunSpec, o: RunOptions) -> dict:
    """A trained DSSA row: reuse an identical configuration recorded for another table, else train it."""
    out, results, dataset, device = spec.record_path(o.results), o.results, o.dataset, o.device
    cfg, chosen_on = _train_config(spec, o)
    key = cfg.key()
    if not o.force:
        src = _find_reusable(results, spec.dataset, spec.row, spec.seed, spec.profile, key, out)
        if src is not None:
            rec = load_record(src)
            rec["experiment"] = spec.experiment
            rec["reused_from"] = str(src.relative_to(results))
            save_npy_atomic(dist_path(out), np.load(dist_path(src)))
            write_json_atomic(out, rec)
            o.log(f"reuse  {out.relative_to(results)} <- {rec['reused_from']}")
            return rec

    ckpt = checkpoint_path(results, out, o.runs)
    if o.force and ckpt.exists():
        ckpt.unlink()  # --force retrains from scratch, never from an old checkpoint
    t0 = time.perf_counter()
    res = T.train(cfg, dataset, device=device, checkpoint=ckpt, progress=o.progress)
    complete = keeps_complete_weights(spec.dataset, spec.row, spec.seed)
    if complete:  # the record is the kept network's, which any machine can reload (issue 23)
        round_to_kept(res.model)
    ev = T.evaluate(res.model, res.energy, dataset.test, cfg.test_views, device, cfg.amp, cfg.trunk_store)
    wall = time.perf_counter() - t0
    rec = _base_record(spec, dataset, device)
    rec.update(
        config=cfg.to_dict(), config_key=key, init=cfg.init or "scratch",
        iterations=cfg.iterations, resumed_from_iteration=res.resumed_from, steps_run=res.iterations_done,
        train_time_s=round(res.train_time_s, 2), wall_time_s=round(wall, 2),
        # throughput of the steps this process ran (None when it only evaluated a finished checkpoint)
        triplets_per_s=(round(res.iterations_done * cfg.batch_size / max(res.train_time_s, 1e-9), 1)
                        if res.iterations_done else None),
        variant_config=T.variant_of(cfg).to_dict(), frozen_trunk=T.frozen_stage(cfg), trunk_cache=res.cache,
        history=res.history, **_metrics(ev["dist"]),
    )
    if chosen_on is not None:
        rec["settings_chosen_on"] = chosen_on
    if complete:
        rec["weights_kept"] = f"complete network, {KEPT_DTYPE} (the record's distances are computed with it)"
    if keeps_weights(spec.dataset, spec.row, spec.seed, o.user) or complete:
        save_weights(weights_path(out), res.model, res.energy, spec.row, complete=complete)
    write_record(out, rec, ev["dist"])
    ckpt.unlink(missing_ok=True)  # recorded: the checkpoint has served its purpose
    o.log(f"wrote  {out.relative_to(results)}  acc@1={rec['metrics']['acc@1']:.3f} "
          f"acc@10={rec['metrics']['acc@10']:.3f}  ({wall:.0f} s)")
    return rec


def _run_untrained(spec: RunSpec, o: RunOptions) -> dict:
    """The ``<variant>@untrained`` rows: the tables' network as :func:`sbir_lib.training.triplet.train` builds it
    with the seed (the profile's init, the authors' initialisers for the rest), evaluated without a single
    training step: the control every trained table row is compared with (no experiment options apply)."""
    out, device = spec.record_path(o.results), o.device
    t0 = time.perf_counter()
    cfg = T.profile_config(spec.profile, variant=spec.variant, seed=spec.seed, **o.overrides)
    seed_everything(cfg.seed)
    model, energy = T.build_network(cfg, device)
    ev = T.evaluate(model.eval(), energy.eval(), o.dataset.test, cfg.test_views, device, cfg.amp, cfg.trunk_store)
    rec = _base_record(spec, o.dataset, device)
    rec.update(config=cfg.to_dict(), config_key=cfg.key(), init="untrained", iterations=0, steps_run=0,
               wall_time_s=round(time.perf_counter() - t0, 2), **_metrics(ev["dist"]))
    write_record(out, rec, ev["dist"])
    o.log(f"wrote  {out.relative_to(o.results)}  acc@1={rec['metrics']['acc@1']:.3f} (untrained)")
    return rec


#: the runner of each :attr:`RunSpec.kind`
RUNNERS: dict[str, Callable[[RunSpec, RunOptions], dict]] = {
    "dase_mems": _run_dase_mems, "classical": _run_classical, "untrained": _run_untrained, "dssa": _run_dssa}


def _metrics(dist) -> dict:
    m = metrics_of(as_stored(dist))
    return {"metrics": {k: m[k] for k in ("acc@1", "acc@5", "acc@10")}, "acc_curve": m["acc_curve"]}


def _base_record(spec: RunSpec, dataset, device) -> dict:
    return base_record(spec.experiment, dataset.name, dataset.source, spec.row, spec.seed, spec.profile.name,
                       device, n_queries=len(dataset.test), n_gallery=len(dataset.test))

def load_dataset(name: str, root=None):
    """Real data for shoes/chairs/handbags (an error naming the download command when absent);
    ``synthetic`` for the generated stand-in."""

    check_names("dataset", [name], DATASETS + EXTRA_DATASETS)
    if name == "synthetic":
        return make_synthetic(seed=0)
    return D.load_qmul(name, root, photos=False)


def run(experiments_: list[str], datasets: list[str], seeds: list[int], profile: str, rows=None,
        **kw) -> list[dict]:
    """Run (or skip, when recorded) every row of each experiment for each dataset and seed.

    ``rows``: only these rows (variant or classical method names), e.g. to spread a grid over calls."""
    exps = experiments()
    check_names("experiment", experiments_, exps)
    if rows:
        check_names("row", rows, sorted({r for e in experiments_ for r in exps[e]}))
    for e in experiments_:
        check_names(f"dataset for {e}", datasets, datasets_of(e))
    _config.check_profile(profile)
    log = kw.pop("log", print)
    records = []
    for ds in datasets:
        dataset = None
        for exp in experiments_:
            for row in exps[exp]:
                if rows and row not in rows:
                    continue
                for seed in seeds:
                    out = record_path(_config.results_root(kw.get("results")), exp, ds, row, seed, profile)
                    if exp in dase_mems.EXPERIMENTS:  # loads its own data (category level / packed)
                        records.append(run_one(exp, ds, row, seed, profile, log=log, **kw))
                        continue
                    if dataset is None and (kw.get("force") or not out.exists()):
                        dataset = load_dataset(ds, kw.get("root"))
                    records.append(run_one(exp, ds, row, seed, profile, dataset=dataset, log=log, **kw))
    return records


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


#: the columns of :func:`collect`'s frame (also when it is empty)
COLLECT_COLUMNS = ["experiment", "dataset", "row", "seed", "profile", "init", "acc@1", "acc@5", "acc@10", "mAP@all",
                   "P@200", "iterations", "wall_time_s", "device", "data_source", "partial", "path"]


def collect(results=None, experiment: str | None = None, dataset: str | None = None,
            profile: str | None = None, include_partial: bool = False, log=_stderr):
    """All records as a pandas DataFrame (one row per run).

    Records of runs stopped before their iteration count (``"partial": true``, files
    ``seed<k>.it<N>.json``, evaluated from the checkpoint) are left out unless ``include_partial``. A damaged
    record is left out and named, with its fix, through ``log``: the others are still read."""
    import pandas as pd

    store = RecordStore(results)
    results = store.root
    rows = []
    records, damaged = store.scan()
    for err in damaged:
        log(f"left out: {err}")
    for r in records:
        p, rec = r.path, r.data
        if r.partial and not include_partial:
            continue
        if experiment and rec.get("experiment") != experiment and p.parts[-4] != experiment:
            continue
        if dataset and rec.get("dataset") != dataset:
            continue
        if profile and rec.get("profile") != profile:
            continue
        rows.append({
            "experiment": p.parts[-4], "dataset": rec["dataset"], "row": rec["row"],
            "seed": rec["seed"], "profile": rec["profile"], "init": rec.get("init"),
            "acc@1": rec["metrics"].get("acc@1"), "acc@5": rec["metrics"].get("acc@5"),
            "acc@10": rec["metrics"].get("acc@10"), "mAP@all": rec["metrics"].get("mAP@all"),
            "P@200": rec["metrics"].get("P@200"), "iterations": rec.get("iterations"),
            "wall_time_s": rec.get("wall_time_s"), "device": rec.get("device"),
            "data_source": rec.get("data_source"), "partial": bool(rec.get("partial")),
            "path": str(p.relative_to(results)),
        })
    return pd.DataFrame(rows, columns=COLLECT_COLUMNS)  # the columns even when nothing is recorded


def summary(results=None, experiment=None, dataset=None, profile=None, log=_stderr):
    """Mean and std (over seeds) of acc@1 / acc@10 (and mAP@all / P@200 for category-level runs) in
    percent, per experiment, dataset and variant (damaged records named through ``log`` and left out)."""
    df = collect(results, experiment, dataset, profile, log=log)
    if df.empty:
        return df
    g = df.groupby(["experiment", "dataset", "profile", "row"], sort=True)
    cols = [c for c in ("acc@1", "acc@10", "mAP@all", "P@200") if df[c].notna().any()]
    out = g[cols].agg(["mean", "std"]) * 100
    out.columns = [f"{m} {s}" for m, s in out.columns]
    out["seeds"] = g["seed"].count()
    return out.round(2)


def recompute(record: dict, path: Path) -> dict[str, dict]:
    """Every metric of a record, recomputed from the files beside it alone: ``{"metrics": {...}}`` (and
    for DSSA records ``"acc_curve"``); DASE/MEMS records are recomputed by :func:`sbir_lib.experiments.dase_mems.recompute`."""
    if record.get("experiment", Path(path).parts[-4]) in dase_mems.EXPERIMENTS:
        return dase_mems.recompute(record, Path(path))
    m = metrics_of(np.load(dist_path(Path(path))))
    return {"metrics": {k: m[k] for k in record.get("metrics", {})}, "acc_curve": m["acc_curve"]}


def _mismatches(stored, fresh, where: str, tol: float) -> list[str]:
    if isinstance(stored, dict):
        out = []
        for k, v in fresh.items():
            out += _mismatches(stored.get(k), v, f"{where}.{k}", tol)
        return out
    if isinstance(fresh, list):
        if not isinstance(stored, list) or len(stored) != len(fresh):
            return [f"{where}: {len(stored or [])} values stored, {len(fresh)} recomputed"]
        bad = [i for i, (a, b) in enumerate(zip(stored, fresh)) if abs(a - b) > tol]
        return [f"{where}[{bad[0]}]: {stored[bad[0]]} stored, {fresh[bad[0]]} recomputed "
                f"({len(bad)} differ)"] if bad else []
    if stored is None or fresh is None or not abs(float(stored) - float(fresh)) <= tol:
        return [f"{where}: {stored} stored, {fresh} recomputed"]
    return []


def verify(results=None, log=print) -> dict[str, list]:
    """Recompute every metric of every record under ``results`` from its distance file(s).

    Returns ``{"ok": [paths], "mismatch": [(path, [messages])], "not_recomputable": [(path, why)],
    "damaged": [(path, message naming the fix)]}``; a damaged record never stops the others being checked.
    A record marked ``"recomputable": false`` (with ``"not_recomputable_reason"``) is listed, not
    failed; a record whose distance file is missing is a mismatch. The acc@K curve is stored rounded to
    6 decimals and compared at that precision; every other value must agree to 1e-12.
    """
    store = RecordStore(results)
    results = store.root
    out: dict[str, list] = {"ok": [], "mismatch": [], "not_recomputable": [], "damaged": []}
    records, damaged = store.scan()
    out["damaged"] = [(store.rel(e.path), str(e)) for e in damaged]
    for r in records:
        p, rec, rel = r.path, r.data, store.rel(r.path)
        if rec.get("recomputable") is False:
            out["not_recomputable"].append((rel, rec.get("not_recomputable_reason", "marked so")))
            continue
        try:
            fresh = recompute(rec, p)
        except (FileNotFoundError, ValueError, KeyError, AttributeError) as e:
            out["mismatch"].append((rel, [f"cannot recompute: {e!r}"]))
            continue
        bad = []
        for key, vals in fresh.items():
            tol = 5e-7 if key == "acc_curve" else 1e-12
            bad += _mismatches(rec.get(key), vals, key, tol)
        if bad:
            out["mismatch"].append((rel, bad))
        else:
            out["ok"].append(rel)
    for rel, msgs in out["mismatch"]:
        log(f"MISMATCH {rel}: " + "; ".join(msgs))
    for rel, why in out["not_recomputable"]:
        log(f"not recomputable {rel}: {why}")
    for rel, why in out["damaged"]:
        log(f"DAMAGED {why}")
    log(f"{len(out['ok'])} records recompute exactly, {len(out['mismatch'])} mismatch, "
        f"{len(out['not_recomputable'])} marked not recomputable, {len(out['damaged'])} damaged")
    return out
