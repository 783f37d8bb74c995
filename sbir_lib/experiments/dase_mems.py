"""The DASE/MEMS experiments (Lu et al., arXiv 1812.04275): their registry, profiles and runner.

Taught in notebooks 07 (DASE) and 08 (MEMS); run through the one CLI (``python -m sbir_lib.experiments run
--experiment dase_sketchy``). Rows are ``<blocks>_<loss>``: blocks ``plain`` (no SE), ``se`` (plain SE) or
``dase`` (domain-aware SE in the early stages, SE in the last); losses ``softmax``, ``cosface``, ``triplet``,
``mems`` (:mod:`sbir_lib.losses.losses`), trained with the class-pair recipe of
:mod:`sbir_lib.training.class_pairs`.

- ``dase_sketchy``: category level on Sketchy-mini (``synthetic_categories`` stands in without the data);
  metrics ``mAP@all``, ``P@200`` (at most 10/200 with 10 relevant photos per class in our gallery), ``P@10``,
  ``acc@1``.
- ``dase_sketchy_imagenet``: the same grid on an ImageNet-initialised EfficientNet-Lite0, the one ImageNet
  initialisation available offline (:mod:`sbir_lib.models.dase`).
- ``dase_qmul``: instance level on QMUL shoes / chairs / handbags: Sketch-a-Net with or without DASE, each
  training instance its own class; metrics acc@1/5/10 and the acc@K curve, as the DSSA records.

Each setting's origin (the authors' code, cited by file and line, or the validation split carved from the
training data) is recorded per run in ``settings_chosen_on`` (:mod:`sbir_lib.experiments.settings`); the
differences from the authors' recipe are rows of REPRODUCTION.md's "ours vs the authors" table. Records follow
:mod:`sbir_lib.core.records` and also hold the test labels, so ``verify`` recomputes their metrics from the
distance files alone, and the abstract's two geometric claims measured on the test embeddings (``claims``,
:mod:`sbir_lib.metrics.geometry`). A run that collapses (all test distances equal) scores as badly as it is
(ties count against the query); ``tied_queries`` says so and the tables flag it.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import torch

from sbir_lib.core import config as _config
from sbir_lib.core.profiles import Profile, as_profile
from sbir_lib.core.records import (
    base_record,
    dist_l2_path,
    dist_untrained_path,
    dist_path,
    record_path,
    recorded,
    write_record,
)
from sbir_lib.data import datasets as D
from sbir_lib.data.pack import load_packed
from sbir_lib.data.paired import (
    PairedData,
    every_kth_category,
    qmul_instances,
    sketchy_split,
    subset_categories,
)
from sbir_lib.data.synthetic import make_synthetic, make_synthetic_categories
from sbir_lib.experiments.settings import settings_provenance
from sbir_lib.metrics.geometry import claims_of
from sbir_lib.training import engine
from sbir_lib.training.class_pairs import (
    LOSSES,
    RunConfig,
    evaluate,
    evaluate_untrained,
    metrics_from_dist,
    normalizes,
    train_model,
)

ROW_BLOCKS = {"plain": "none", "se": "se", "dase": "dase"}

EXPERIMENTS: dict[str, list[str]] = {
    "dase_sketchy": [f"{b}_{loss}" for loss in LOSSES for b in ROW_BLOCKS],
    "dase_sketchy_imagenet": [f"{b}_{loss}" for loss in LOSSES for b in ROW_BLOCKS],
    "dase_qmul": ["plain_triplet", "dase_triplet", "plain_mems", "dase_mems"],
}

DATASETS: dict[str, tuple[str, ...]] = {
    "dase_sketchy": ("sketchy_mini", "synthetic_categories"),
    "dase_sketchy_imagenet": ("sketchy_mini", "synthetic_categories"),
    "dase_qmul": ("shoes", "chairs", "handbags", "synthetic"),
}

LEVEL = {"dase_sketchy": "category", "dase_sketchy_imagenet": "category", "dase_qmul": "instance"}

def check_row(experiment: str, row: str) -> tuple[str, str]:
    """``(blocks, loss)`` of a row name, after checking it belongs to ``experiment``."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; allowed: {', '.join(EXPERIMENTS)}")
    if row not in EXPERIMENTS[experiment]:
        raise ValueError(f"unknown row {row!r} of {experiment}; allowed: {', '.join(EXPERIMENTS[experiment])}")
    b, loss = row.split("_", 1)
    return ROW_BLOCKS[b], loss

def profile_config(experiment: str, profile: "str | Profile", row: str, seed: int = 0, **overrides) -> RunConfig:
    """The :class:`RunConfig` of ``row`` of ``experiment`` in ``profile`` (its ``dase_mems[experiment]``)."""
    blocks, loss = check_row(experiment, row)
    return engine.profile_config(RunConfig, as_profile(profile).dase_mems[experiment], blocks=blocks, loss=loss, seed=seed,
                                 **overrides)

def load_data(experiment: str, dataset_name: str, profile: str, root=None, packed: str | None = None,
              cfg: RunConfig | None = None) -> PairedData:
    """The :class:`PairedData` of an experiment's dataset at the profile's input size (the last one read is
    kept: :func:`_read_data`).

    ``dase_sketchy``: ``sketchy_mini`` (from the pack ``packed`` when given: the CLI's ``--packed``, a
    notebook's ``ctx.sketchy_pack``; else the folders; a missing folder raises with the download command) or
    ``synthetic_categories``. ``dase_qmul``: ``shoes`` | ``chairs`` | ``handbags`` (real data; missing data
    raises with the download command) or ``synthetic``.
    """
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; allowed: {', '.join(EXPERIMENTS)}")
    if dataset_name not in DATASETS[experiment]:
        raise ValueError(f"unknown dataset {dataset_name!r} for {experiment}; allowed: "
                         f"{', '.join(DATASETS[experiment])}")
    cfg = cfg or profile_config(experiment, profile, EXPERIMENTS[experiment][0])
    return _read_data(experiment, dataset_name, cfg.input_size, cfg.n_categories, str(_config.data_root(root)),
                      packed if dataset_name == "sketchy_mini" else None)


@functools.lru_cache(maxsize=1)  # one dataset in memory (the full profile's is ~0.6 GB)
def _read_data(experiment: str, dataset_name: str, input_size: int, n_categories: int | None, root: str,
               packed: str | None) -> PairedData:
    if experiment == "dase_qmul":
        if dataset_name == "synthetic":
            return qmul_instances(make_synthetic(seed=0))
        return qmul_instances(D.load_qmul(dataset_name, root, photos=False))
    if dataset_name == "synthetic_categories":
        return sketchy_split(make_synthetic_categories(n_classes=12, per_class=20, n_test_per_class=5,
                                                       photos_per_class=20, size=input_size, seed=0))
    if packed:
        cds = load_packed(packed, size=input_size)
        if n_categories:
            cds = subset_categories(cds, cds.categories[::n_categories])
    else:
        cats = every_kth_category(root, n_categories) if n_categories else None
        cds = D.load_sketchy_mini(root, size=input_size, categories=cats)
    return sketchy_split(cds)


def _base_record(experiment, data: PairedData, row, seed, profile, device) -> dict:
    return base_record(experiment, data.name, data.source, row, seed, profile, device,
                       n_queries=len(data.test_sketches), n_gallery=len(data.gallery))

def _as_paired(experiment: str, dataset_name: str, profile: str, root, dataset, cfg: RunConfig,
               packed: str | None = None) -> PairedData:
    if dataset is None:
        return load_data(experiment, dataset_name, profile, root, packed=packed, cfg=cfg)
    if isinstance(dataset, PairedData):
        return dataset
    if isinstance(dataset, D.QMULDataset):
        if LEVEL[experiment] != "instance":
            raise ValueError(f"{experiment} is category level; a fine-grained QMULDataset was given")
        return qmul_instances(dataset)
    if isinstance(dataset, D.CategoryDataset):
        if LEVEL[experiment] != "category":
            raise ValueError(f"{experiment} is instance level; a CategoryDataset was given")
        return sketchy_split(dataset)
    raise TypeError(f"dataset must be a PairedData, QMULDataset or CategoryDataset; got {type(dataset).__name__}")

def run_one(experiment: str, dataset_name: str, row: str, seed: int, profile: str, *, device=None, root=None,
            results=None, force=False, progress=True, log=print, dataset=None, overrides=None, init=None,
            packed: str | None = None) -> dict:
    """Train and evaluate one row of a DASE/MEMS experiment for one seed and record it, or return the
    existing record (``force`` retrains). Same layout and fields as :func:`sbir_lib.experiments.runner.run_one`.

    ``overrides``: :class:`RunConfig` fields that replace the profile's (recorded in ``config``); ``init``:
    ``scratch`` | ``imagenet`` | a weights path (same as ``overrides={"init": ...}``). ``dataset``: an already
    loaded :class:`PairedData`, :class:`~sbir_lib.data.datasets.QMULDataset` or :class:`~sbir_lib.data.datasets.CategoryDataset`
    (else :func:`load_data` loads it)."""

    if dataset_name not in DATASETS.get(experiment, ()):
        check_row(experiment, row)  # unknown experiment -> its own message
        raise ValueError(f"unknown dataset {dataset_name!r} for {experiment}; allowed: "
                         f"{', '.join(DATASETS[experiment])}")
    overrides = dict(overrides or {})
    if init is not None:
        overrides["init"] = str(init)
    cfg = profile_config(experiment, profile, row, seed, **overrides)
    results = _config.results_root(results)
    out = record_path(results, experiment, dataset_name, row, seed, profile)
    existing = recorded(out, results, force, log)
    if existing is not None:
        return existing
    data = _as_paired(experiment, dataset_name, profile, root, dataset, cfg, packed)
    device = _config.default_device(device) if not isinstance(device, torch.device) else device
    untrained = evaluate_untrained(cfg, data, device)
    t0 = time.perf_counter()
    res = train_model(cfg, data, device, progress)
    ev = evaluate(res.model, cfg, data, device, l2=not normalizes(cfg))  # MEMS: also L2-normalised
    wall = time.perf_counter() - t0
    rec = _base_record(experiment, data, row, seed, profile, device)
    views = {"mean": f"mean over {cfg.test_views} test view(s)",
             "flipmin": "minimum over the 4 flip combinations (the authors' tester.py)"}[cfg.test_distance]
    rec.update(
        config=cfg.to_dict(), config_key=cfg.key(), init=res.model.init_report.get("init", cfg.init),
        init_report=res.model.init_report, iterations=cfg.iterations, train_time_s=round(res.train_time_s, 2),
        wall_time_s=round(wall, 2), images_per_s=round(res.images_per_s, 1), data=data.summary(),
        split=data.split, settings_chosen_on=settings_provenance(experiment, profile, cfg, results),
        weight_decay_policy=f"{cfg.weight_decay} on every network parameter (as the authors' trainer.py:39), "
                            "none on the loss's centres / classifier weights",
        retrieval_distance="squared Euclidean" + (" of L2-normalised embeddings" if normalizes(cfg) else "")
                           + f", {views}",
        tied_queries=round(ev["tied"], 4), history=res.history, metrics=ev["metrics"])
    if "acc_curve" in ev:
        rec["acc_curve"] = ev["acc_curve"]
    if "metrics_l2" in ev:
        rec["metrics_l2"] = ev["metrics_l2"]
    rec["metrics_untrained"] = untrained["metrics"]
    rec["untrained_note"] = ("the same network before its first step (same seed, init and test views): the control "
                             "a trained row must beat")
    eq, eg = ev["emb"]
    rec["claims"] = claims_of(eq[0], eg[0], data.test_labels, data.gallery_labels, normalizes(cfg), ev["dist"])
    if "dist_l2" in ev:
        rec["claims_l2"] = claims_of(eq[0], eg[0], data.test_labels, data.gallery_labels, True, ev["dist_l2"])
    rec["claims_note"] = ("sbir_lib.metrics.geometry on the test embeddings (first test view); "
                          "max_intra_lt_min_inter_retrieval from the stored distance matrix")
    rec["query_labels"] = [int(v) for v in data.test_labels.tolist()]
    rec["gallery_labels"] = [int(v) for v in data.gallery_labels.tolist()]
    write_record(out, rec, ev["dist"], ev.get("dist_l2"), untrained["dist"])
    if ev["tied"] > 0.05:
        log(f"WARNING: {ev['tied']:.0%} of the queries have tied distances: the embeddings collapsed and the "
            f"metrics of {out.relative_to(results)} are not meaningful")
    shown = "  ".join(f"{k}={v:.3f}" for k, v in ev["metrics"].items())
    log(f"wrote  {out.relative_to(results)}  {shown}  ({wall:.0f} s)")
    return rec

def recompute(record: dict, record_path: Path) -> dict[str, dict[str, float]]:
    """The metrics of a DASE/MEMS ``record`` recomputed from the files beside ``record_path`` alone (no
    dataset): ``{"metrics": ...}`` from ``seed<k>[.quick].dist.npy`` and, when the record has them,
    ``{"metrics_l2": ...}`` from ``.dist_l2.npy`` and ``{"metrics_untrained": ...}`` from ``.dist_untrained.npy``;
    same keys as the record's. Category-level records carry
    their ``query_labels`` / ``gallery_labels``; instance-level ones match query ``i`` to gallery ``i``.
    Used by ``python -m sbir_lib.experiments verify``."""

    record_path = Path(record_path)
    level = LEVEL.get(record.get("experiment"), "category")
    ql, gl = record.get("query_labels"), record.get("gallery_labels")
    if level == "category" and (ql is None or gl is None):
        raise ValueError(f"{record_path} has no query_labels / gallery_labels: it predates recomputable "
                         "records; re-record it with --force")
    files = {"metrics": dist_path(record_path)}
    if "metrics_l2" in record:
        files["metrics_l2"] = dist_l2_path(record_path)
    if "metrics_untrained" in record:
        files["metrics_untrained"] = dist_untrained_path(record_path)
    out = {}
    for key, f in files.items():
        if not f.exists():
            raise FileNotFoundError(f"{f} is missing: {key} of {record_path} cannot be recomputed")
        m = metrics_from_dist(np.load(f), level, ql, gl)["metrics"]
        out[key] = {k: m[k] for k in record[key]}
    return out

def run(experiments: list[str], datasets: list[str] | None, seeds: list[int], profile: str, rows=None,
        **kw) -> list[dict]:
    """Every row (or ``rows``) x dataset x seed of ``experiments``; recorded runs are skipped."""
    recs = []
    for exp in experiments:
        if exp not in EXPERIMENTS:
            raise ValueError(f"unknown experiment {exp!r}; allowed: {', '.join(EXPERIMENTS)}")
        real = [d for d in DATASETS[exp] if not d.startswith("synthetic")]
        for ds in datasets or real:
            for row in rows or EXPERIMENTS[exp]:
                for seed in seeds:
                    recs.append(run_one(exp, ds, row, seed, profile, **kw))
    return recs
