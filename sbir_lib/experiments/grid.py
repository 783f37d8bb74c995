"""The reproduction grid in order of value, under a time budget: what ``tools/gpu_run.sh`` runs on a GPU.

    python -m sbir_lib.experiments grid --profile full --budget-s 500 [--dry-run]

Jobs, most valuable first; a job already recorded is skipped, so a second sitting continues where the last
one stopped:

1. ``pretrain``: the Sketchy-mini pretraining (:mod:`sbir_lib.training.pretrain`) when its checkpoint is
   missing: every DSSA row fine-tunes from it; then the number of cached views per image, chosen on a
   validation split (:mod:`sbir_lib.experiments.cache_views`) unless ``--cache-views`` fixes it;
2. the ``curve`` rows (base and full, acc@1 against iterations on a validation split carved from the training
   data, every dataset): the evidence for the iteration count;
3. the deep rows of Tables 1-5 from that init with the authors' frozen trunk through the trunk cache
   (``cache_views``), seed 0 on every dataset first (Table 2's rows before the others), then seeds 1 and 2;
   a configuration shared by several tables trains once (the runner reuses its record);
   After seed 0 of the tables: the initialisation track (issue [init]): the ``sketchy_qmul`` pretraining with
   the settings of :data:`sbir_lib.training.pretrain.INITS` (its pack must hold the QMUL pairs: ``pack
   --pairs shoes,chairs,handbags``), the fine-tuning recipe per init (:func:`sbir_lib.experiments.init_recipe.tune_init`;
   the ImageNet init only where its weights are installed), then seed 0 of every row of the ``pretrain``
   experiment ("where accuracy comes from") on every dataset;
4. the classical Table 1 rows (CPU work, seconds each);
5. the DASE/MEMS experiments.

Before each job the planner estimates its time (:func:`estimate_s`) and stops when the budget left is
smaller; ``--dry-run`` prints the plan with the estimates. Every run is an ordinary record of
:mod:`sbir_lib.experiments.runner` (the ``init`` and ``cache_views`` it used are in its config).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from sbir_lib.core import config as _config
from sbir_lib.core.profiles import as_profile
from sbir_lib.core.records import init_checkpoint, load_record, record_path
from sbir_lib.experiments import cache_views as CV
from sbir_lib.experiments import dase_mems, init_recipe, runner
from sbir_lib.experiments.settings import load_tuning
from sbir_lib.models import dssa as MD
from sbir_lib.models.dase import efficientnet_lite0_weights_path
from sbir_lib.training import pretrain as PT

DSSA_DATASETS = ("shoes", "chairs", "handbags")


@dataclass
class Job:
    kind: str  # pretrain | cache_views | pretrain_qmul | init_recipe | dssa | classical | dase
    experiment: str = ""
    dataset: str = ""
    row: str = ""
    seed: int = 0
    overrides: dict = field(default_factory=dict)
    #: a configuration an earlier job of the plan trains (another table's same row): the runner copies it
    reuses: bool = False

    def label(self) -> str:
        if self.kind == "pretrain":
            return "pretrain Sketch-a-Net on Sketchy-mini"
        if self.kind == "cache_views":
            return "choose the cached views per image on a validation split (shoes)"
        if self.kind == "pretrain_qmul":
            return "pretrain Sketch-a-Net on Sketchy-mini + QMUL training pairs (sketchy_qmul)"
        if self.kind == "init_recipe":
            return "choose the fine-tuning recipe per init on a validation split (shoes)"
        return f"{self.experiment}/{self.dataset}/{self.row}/seed{self.seed}"


def plan(profile: str, seeds=(0, 1, 2), datasets=DSSA_DATASETS, init_name: str = PT.INIT_NAME,
         dase: bool = True) -> list[Job]:
    """Every job of the grid, most valuable first (the module docstring's order)."""
    exps = runner.experiments()
    tables = [f"table{i}" for i in (2, 1, 3, 4, 5)]
    init = str(init_checkpoint(init_name, profile))
    jobs = [Job("pretrain"), Job("cache_views")]
    # the evidence for the iteration count: acc@1 against iterations on a validation split (base and full)
    jobs += [Job("dssa", "curve", ds, row, 0, {"init": init}) for ds in datasets for row in exps["curve"]]
    seen = set()
    for seed in seeds:
        for ds in datasets:
            for exp in tables:
                for row in exps[exp]:
                    if row in runner.CLASSICAL:
                        continue
                    jobs.append(Job("dssa", exp, ds, row, seed, {"init": init}, reuses=(ds, row, seed) in seen))
                    seen.add((ds, row, seed))
        if seed == seeds[0]:  # the initialisation track after the first seed of the tables
            jobs += [Job("pretrain_qmul"), Job("init_recipe")]
            jobs += [Job("dssa", "pretrain", ds, row, seed) for ds in datasets for row in exps["pretrain"]]
    jobs += [Job("classical", "table1", ds, row, seed) for seed in seeds for ds in datasets for row in runner.CLASSICAL]
    if dase:
        for exp in dase_mems.EXPERIMENTS:
            real = [d for d in dase_mems.DATASETS[exp] if not d.startswith("synthetic")]
            jobs += [Job("dase", exp, ds, row, 0) for ds in real for row in dase_mems.EXPERIMENTS[exp]]
    return jobs


def done(job: Job, profile: str, results=None) -> bool:
    """Whether ``job`` is recorded already (pretraining: its checkpoint exists)."""
    if job.kind == "pretrain":
        return init_checkpoint(PT.INIT_NAME, profile).exists()
    if job.kind == "cache_views":
        return CV.chosen(profile, results) is not None
    if job.kind == "pretrain_qmul":
        return init_checkpoint("sketchy_qmul", profile).exists()
    if job.kind == "init_recipe":
        return load_tuning("init_recipe", profile, results) is not None
    path = record_path(_config.results_root(results), job.experiment, job.dataset, job.row, job.seed, profile)
    return load_record(path) is not None


def _imagenet_weights() -> bool:
    try:
        efficientnet_lite0_weights_path()
    except (FileNotFoundError, ImportError, RuntimeError):
        return False
    return True


def estimate_s(job: Job, profile: str, costs: dict | None = None) -> float:
    costs = costs or as_profile(profile).grid_cost_s  # rough seconds per job, only to fit the budget
    if job.reuses:
        return 1.0
    if job.kind == "dssa":
        return costs["conv4" if MD.get_variant(runner.split_row(job.row)[0]).attention else "conv5"]
    return costs[job.kind]


def run(profile: str, budget_s: float, *, seeds=(0, 1, 2), datasets=DSSA_DATASETS, device=None, results=None,
        root=None, cache_views: int | None = None, iterations: int | None = None, dase: bool = True,
        pretrain_pack: str | None = None, dry_run: bool = False, log=print) -> dict:
    """Run the plan's unrecorded jobs in order until the next one's estimate exceeds the budget left.
    Returns ``{"ran": [...], "skipped": [...], "left": [...], "seconds": ...}`` (labels). ``pretrain_pack``:
    the pretraining data packed by ``python -m sbir_lib.training.pretrain pack`` (an offline GPU machine)."""
    t0 = time.perf_counter()
    out = {"ran": [], "skipped": [], "left": [], "seconds": 0.0}
    jobs = plan(profile, seeds, datasets, dase=dase)
    for i, job in enumerate(jobs):
        if done(job, profile, results):
            out["skipped"].append(job.label())
            continue
        need = estimate_s(job, profile)
        left = budget_s - (time.perf_counter() - t0)
        if dry_run or need > left:
            if not dry_run:
                log(f"budget: {left:.0f} s left, {job.label()} needs ~{need:.0f} s; stopping (run again to continue)")
                out["left"] += [j.label() for j in jobs[i:] if not done(j, profile, results)]
                break
            log(f"would run {job.label()} (~{need:.0f} s)")
            out["left"].append(job.label())
            continue
        log(f"[{time.perf_counter() - t0:6.0f} s] {job.label()}")
        if job.kind == "pretrain":
            cfg = PT.profile_config(profile)
            data = (PT.load_packed(pretrain_pack) if pretrain_pack else
                    PT.prepare_data(root=root, categories=cfg.categories))
            PT.pretrain(cfg, data, device=_config.default_device(device), out=PT.default_out(profile), progress=False)
        elif job.kind == "cache_views":
            if cache_views is None:  # a fixed K was not asked for: choose it
                CV.choose(profile, device=device, root=root, results=results, log=log)
        elif job.kind == "pretrain_qmul":
            cfg = PT.profile_config(profile, "sketchy_qmul")
            data = (PT.load_packed(pretrain_pack) if pretrain_pack else
                    PT.prepare_data(root=root, categories=cfg.categories, pairs=cfg.pairs, profile=profile))
            PT.pretrain(cfg, data, device=_config.default_device(device), out=PT.default_out(profile, "sketchy_qmul"),
                        progress=False)
        elif job.kind == "init_recipe":
            inits = tuple(i for i in init_recipe.INITS if i != "imagenet" or _imagenet_weights())
            init_recipe.tune_init(profile, inits=inits, device=device, root=root, results=results, log=log)
        else:
            over = dict(job.overrides)
            if job.kind == "dssa" and job.experiment != "pretrain":  # pretrain rows: their init's own recipe
                over["cache_views"] = (cache_views if cache_views is not None
                                       else CV.chosen(profile, results) or CV.DEFAULT_VIEWS)
                if iterations is not None:
                    over["iterations"] = iterations
            init = over.pop("init", None)
            runner.run_one(job.experiment, job.dataset, job.row, job.seed, profile, device=device, root=root,
                           results=results, init=init, overrides=over or None, progress=False, log=log)
        out["ran"].append(job.label())
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out
