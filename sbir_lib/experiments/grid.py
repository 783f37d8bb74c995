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
from typing import Any, Callable

from sbir_lib.core import config as _config
from sbir_lib.core import tablespec as TS
from sbir_lib.core.profiles import as_profile
from sbir_lib.core.records import init_checkpoint, load_record, record_path
from sbir_lib.experiments import cache_views as CV
from sbir_lib.experiments import dase_mems, init_recipe, runner
from sbir_lib.experiments.settings import load_tuning
from sbir_lib.models import dssa as MD
from sbir_lib.models.weights import efficientnet_lite0_weights_path
from sbir_lib.training import pretrain as PT

DSSA_DATASETS = ("shoes", "chairs", "handbags")


@dataclass
class Job:
    kind: str  # a key of KINDS: pretrain | cache_views | pretrain_qmul | init_recipe | dssa | classical | dase
    experiment: str = ""
    dataset: str = ""
    row: str = ""
    seed: int = 0
    overrides: dict = field(default_factory=dict)
    #: a configuration an earlier job of the plan trains (another table's same row): the runner copies it
    reuses: bool = False

    def label(self) -> str:
        return KINDS[self.kind].label or f"{self.experiment}/{self.dataset}/{self.row}/seed{self.seed}"


@dataclass
class GridRun:
    """The settings of one ``grid`` call that its jobs read."""

    profile: str
    device: Any = None
    results: Any = None
    root: Any = None
    cache_views: int | None = None
    iterations: int | None = None
    pretrain_pack: str | None = None
    log: Callable = print


@dataclass(frozen=True)
class JobKind:
    """What a kind of job is: its label (``""``: a recorded run's path), whether it is done, its cost key in the
    profile's ``grid_cost_s`` (``None``: by the row's frozen stage) and how it runs."""

    label: str
    done: Callable[[Job, str, Any], bool]
    cost: str | None
    run: Callable[[Job, GridRun], None]


def plan(profile: str, seeds=(0, 1, 2), datasets=DSSA_DATASETS, init_name: str = PT.INIT_NAME,
         dase: bool = True) -> list[Job]:
    """Every job of the grid, most valuable first (the module docstring's order)."""
    exps = runner.experiments()
    tables = TS.grid_order()  # the registry's tables, most valuable first
    init = str(init_checkpoint(init_name, profile))
    jobs = [Job("pretrain"), Job("cache_views")]
    # the evidence for the iteration count: acc@1 against iterations on a validation split (base and full)
    jobs += [Job("dssa", "curve", ds, row, 0, {"init": init}) for ds in datasets for row in exps["curve"]]
    seen = set()
    for seed in seeds:
        for ds in datasets:
            for spec in tables:
                for row in spec.networks("dssa"):
                    jobs.append(Job("dssa", spec.key, ds, row, seed, {"init": init}, reuses=(ds, row, seed) in seen))
                    seen.add((ds, row, seed))
        if seed == seeds[0]:  # the initialisation track after the first seed of the tables
            jobs += [Job("pretrain_qmul"), Job("init_recipe")]
            jobs += [Job("dssa", "pretrain", ds, row, seed) for ds in datasets for row in exps["pretrain"]]
    jobs += [Job("classical", spec.key, ds, row, seed) for spec in tables for seed in seeds for ds in datasets
             for row in spec.networks("classical")]
    if dase:
        for exp in dase_mems.EXPERIMENTS:
            real = [d for d in dase_mems.DATASETS[exp] if not d.startswith("synthetic")]
            jobs += [Job("dase", exp, ds, row, 0) for ds in real for row in dase_mems.EXPERIMENTS[exp]]
    return jobs


def done(job: Job, profile: str, results=None) -> bool:
    """Whether ``job`` is recorded already (pretraining: its checkpoint exists)."""
    return KINDS[job.kind].done(job, profile, results)


def _recorded(job: Job, profile: str, results) -> bool:
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
    key = KINDS[job.kind].cost or ("conv4" if MD.get_variant(runner.split_row(job.row)[0]).attention else "conv5")
    return costs[key]


def run(profile: str, budget_s: float, *, seeds=(0, 1, 2), datasets=DSSA_DATASETS, device=None, results=None,
        root=None, cache_views: int | None = None, iterations: int | None = None, dase: bool = True,
        pretrain_pack: str | None = None, dry_run: bool = False, log=print) -> dict:
    """Run the plan's unrecorded jobs in order until the next one's estimate exceeds the budget left.
    Returns ``{"ran": [...], "skipped": [...], "left": [...], "seconds": ...}`` (labels). ``pretrain_pack``:
    the pretraining data packed by ``python -m sbir_lib.training.pretrain pack`` (an offline GPU machine)."""
    t0 = time.perf_counter()
    out = {"ran": [], "skipped": [], "left": [], "seconds": 0.0}
    ctx = GridRun(profile, device, results, root, cache_views, iterations, pretrain_pack, log)
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
        KINDS[job.kind].run(job, ctx)
        out["ran"].append(job.label())
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _pretrain(init_name: str):
    def go(job: Job, g: GridRun) -> None:
        cfg = PT.profile_config(g.profile, init_name)
        extra = {"pairs": cfg.pairs, "profile": g.profile} if cfg.pairs else {}
        data = (PT.load_packed(g.pretrain_pack) if g.pretrain_pack else
                PT.prepare_data(root=g.root, categories=cfg.categories, **extra))
        PT.pretrain(cfg, data, device=_config.default_device(g.device), out=PT.default_out(g.profile, init_name),
                    progress=False)
    return go


def _choose_cache_views(job: Job, g: GridRun) -> None:
    if g.cache_views is None:  # a fixed K was not asked for: choose it
        CV.choose(g.profile, device=g.device, root=g.root, results=g.results, log=g.log)


def _tune_init(job: Job, g: GridRun) -> None:
    inits = tuple(i for i in init_recipe.INITS if i != "imagenet" or _imagenet_weights())
    init_recipe.tune_init(g.profile, inits=inits, device=g.device, root=g.root, results=g.results, log=g.log)


def _record(job: Job, g: GridRun) -> None:
    over = dict(job.overrides)
    if job.kind == "dssa" and job.experiment != "pretrain":  # pretrain rows: their init's own recipe
        over["cache_views"] = (g.cache_views if g.cache_views is not None
                               else CV.chosen(g.profile, g.results) or CV.DEFAULT_VIEWS)
        if g.iterations is not None:
            over["iterations"] = g.iterations
    init = over.pop("init", None)
    runner.run_one(job.experiment, job.dataset, job.row, job.seed, g.profile, device=g.device, root=g.root,
                   results=g.results, init=init, overrides=over or None, progress=False, log=g.log)


#: every kind of grid job, keyed by :attr:`Job.kind`
KINDS: dict[str, JobKind] = {
    "pretrain": JobKind("pretrain Sketch-a-Net on Sketchy-mini",
                        lambda j, p, r: init_checkpoint(PT.INIT_NAME, p).exists(), "pretrain", _pretrain(PT.INIT_NAME)),
    "cache_views": JobKind("choose the cached views per image on a validation split (shoes)",
                           lambda j, p, r: CV.chosen(p, r) is not None, "cache_views", _choose_cache_views),
    "pretrain_qmul": JobKind("pretrain Sketch-a-Net on Sketchy-mini + QMUL training pairs (sketchy_qmul)",
                             lambda j, p, r: init_checkpoint("sketchy_qmul", p).exists(), "pretrain_qmul",
                             _pretrain("sketchy_qmul")),
    "init_recipe": JobKind("choose the fine-tuning recipe per init on a validation split (shoes)",
                           lambda j, p, r: load_tuning("init_recipe", p, r) is not None, "init_recipe", _tune_init),
    "dssa": JobKind("", _recorded, None, _record),
    "classical": JobKind("", _recorded, "classical", _record),
    "dase": JobKind("", _recorded, "dase", _record),
}
