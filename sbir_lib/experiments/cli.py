"""``python -m sbir_lib.experiments``: the one command line for every experiment of both papers.

    python -m sbir_lib.experiments list                      # experiments, rows, datasets
    python -m sbir_lib.experiments run --experiment table2 --dataset shoes --seeds 0 1 2 --profile quick
    python -m sbir_lib.experiments run --all --profile full --device cuda      # DSSA Tables 1-5
    python -m sbir_lib.experiments run --experiment dase_sketchy --rows dase_mems --arch resnet18
    python -m sbir_lib.experiments summary --experiment table2
    python -m sbir_lib.experiments verify                    # recompute every record from its distances
    python -m sbir_lib.experiments verify --retrain 3        # ... and retrain 3 cpu records from nothing
    python -m sbir_lib.experiments tune --experiment dase_qmul --profile quick  # settings on a validation split
    python -m sbir_lib.experiments show-tuning --experiment dase_qmul
    python -m sbir_lib.experiments pack --out sketchy_pack.npz                 # data for an offline GPU
    python -m sbir_lib.experiments grid --profile full --budget-s 500          # the grid, by value, in a budget
    python -m sbir_lib.experiments tune-cache --profile full                    # cached views per image (validation)
    python -m sbir_lib.experiments tune-cpu                                     # the cpu profile's head recipe
    python -m sbir_lib.experiments tune-pretrain --profile quick                # the QMUL-pairs init (held out)
    python -m sbir_lib.experiments tune-init --profile quick                    # lr per init (validation)
    python -m sbir_lib.experiments embedding-spread --profile quick             # each init's embedding spread

Recorded runs are skipped (``--force`` retrains). ``--init`` takes ``scratch``, ``imagenet`` (DASE/MEMS
backbones with offline ImageNet weights) or a path (a Sketch-a-Net checkpoint ``.pt`` or the authors' TF
``.npy``); ``--arch`` and ``--packed`` apply to the DASE/MEMS experiments.
"""
from __future__ import annotations

import argparse
import os
import sys

from sbir_lib.core import config as _config
from sbir_lib.core.profiles import PROFILE_NAMES
from sbir_lib.core import records as R
from sbir_lib.data.pack import PACK_ENV, pack_sketchy_mini
from sbir_lib.experiments import cache_views, cpu_recipe, dase_mems, grid, init_recipe, runner, settings, tuning
from sbir_lib.models import dase as DA


def seed_arg(text: str) -> int:
    """A ``--seeds`` value: a non-negative integer (NumPy's generators take no negative seed), checked before
    anything runs."""
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0 or seed >= 2**32:
        raise argparse.ArgumentTypeError(f"seeds are integers from 0 to 2**32-1, got {text!r}")
    return seed


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m sbir_lib.experiments", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and record runs (recorded ones are skipped)")
    r.add_argument("--experiment", action="append", default=[], help="an experiment of `list` (repeatable)")
    r.add_argument("--dataset", action="append", default=[],
                   help="a dataset of the experiment (repeatable; default: the experiment's real datasets)")
    r.add_argument("--all", action="store_true", help="every table of the DSSA paper (table1..table5)")
    r.add_argument("--seeds", type=seed_arg, nargs="+", default=[0])
    r.add_argument("--rows", nargs="+", default=None, metavar="ROW", help="only these rows of the experiments")
    r.add_argument("--profile", default=None, help=" | ".join(PROFILE_NAMES) + " (default: $SBIR_PROFILE or quick)")
    r.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    r.add_argument("--force", action="store_true", help="retrain even when recorded")
    r.add_argument("--init", default=None, help="scratch | imagenet | PATH (.pt checkpoint or the authors' TF .npy)")
    r.add_argument("--arch", default=None, help="DASE/MEMS backbone: " + ", ".join(DA.ARCHS))
    r.add_argument("--packed", default=None, help=f"Sketchy-mini pack (.npz; or ${PACK_ENV})")
    r.add_argument("--iterations", type=int, default=None, help="override the profile's iteration count")
    r.add_argument("--root", default=None, help="data root (default $SBIR_DATA_ROOT or ./data)")
    r.add_argument("--results", default=None, help="results folder (default ./results)")
    r.add_argument("--no-progress", action="store_true")
    s = sub.add_parser("summary", help="mean +- std over seeds per row")
    s.add_argument("--experiment", default=None)
    s.add_argument("--dataset", default=None)
    s.add_argument("--profile", default=None)
    s.add_argument("--results", default=None)
    sub.add_parser("list", help="experiments, their rows and datasets")
    v = sub.add_parser("verify", help="recompute every record's metrics from its distance file; exit 1 on a mismatch, 3 when a "
                                         "record is damaged (each named with its fix)")
    v.add_argument("--results", default=None)
    v.add_argument("--retrain", type=int, default=0, metavar="N",
                   help="also retrain N randomly drawn trained records of --profile from nothing and compare (exit 1 "
                        "when one differs)")
    v.add_argument("--profile", default="cpu", help="the profile --retrain draws from (default cpu)")
    v.add_argument("--retrain-seed", type=int, default=0, help="which N records --retrain draws (default 0)")
    v.add_argument("--root", default=None, help="data root (default $SBIR_DATA_ROOT or ./data)")
    t = sub.add_parser("tune", help="choose DASE/MEMS settings on a validation split; writes results/tuning/")
    t.add_argument("--experiment", required=True, help=", ".join(dase_mems.EXPERIMENTS))
    t.add_argument("--profile", default=None, help=" | ".join(PROFILE_NAMES) + " (default: $SBIR_PROFILE or quick)")
    t.add_argument("--dataset", default=None,
                   help="default: " + ", ".join(f"{k}: {v}" for k, v in settings.TUNING_DATASET.items()))
    t.add_argument("--seed", type=seed_arg, default=0)
    t.add_argument("--device", default=None)
    t.add_argument("--root", default=None)
    t.add_argument("--results", default=None)
    st = sub.add_parser("show-tuning", help="print a recorded selection")
    st.add_argument("--experiment", required=True)
    st.add_argument("--profile", default="quick")
    st.add_argument("--results", default=None)
    g = sub.add_parser("grid", help="the reproduction grid in order of value under a time budget (tools/gpu_run.sh)")
    g.add_argument("--profile", default=None, help=" | ".join(PROFILE_NAMES) + " (default: $SBIR_PROFILE or quick)")
    g.add_argument("--budget-s", type=float, required=True, help="stop before a job that would not fit")
    g.add_argument("--seeds", type=seed_arg, nargs="+", default=[0, 1, 2])
    g.add_argument("--dataset", action="append", default=[], help="DSSA datasets (default shoes, chairs, handbags)")
    g.add_argument("--cache-views", type=int, default=None, help="cached views per training image (0: no cache)")
    g.add_argument("--iterations", type=int, default=None, help="override the DSSA rows' iteration count")
    g.add_argument("--no-dase", action="store_true", help="leave out the DASE/MEMS experiments")
    g.add_argument("--pretrain-pack", default=None, help="pretraining data pack (python -m sbir_lib.training.pretrain pack)")
    g.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    g.add_argument("--device", default=None)
    g.add_argument("--root", default=None)
    g.add_argument("--results", default=None)
    c = sub.add_parser("tune-cache", help="choose the cached views per image (cache_views) on a validation split")
    c.add_argument("--profile", default=None, help=" | ".join(PROFILE_NAMES) + " (default: $SBIR_PROFILE or quick)")
    c.add_argument("--dataset", default="shoes")
    c.add_argument("--views", type=int, nargs="+", default=list(cache_views.CANDIDATES))
    c.add_argument("--seeds", type=seed_arg, nargs="+", default=list(cache_views.SEEDS))
    c.add_argument("--iterations", type=int, default=None, help="override the profile's iteration count")
    c.add_argument("--init", default=None, help="default: the pretraining checkpoint of the profile")
    c.add_argument("--device", default=None)
    c.add_argument("--root", default=None)
    c.add_argument("--results", default=None)
    cr = sub.add_parser("tune-cpu", help="choose the cpu profile's head recipe (lr, batch, iterations) on validation "
                                         "splits against the grid's cost")
    cr.add_argument("--recipes", nargs="+", default=list(cpu_recipe.RECIPES), choices=list(cpu_recipe.RECIPES))
    cr.add_argument("--dataset", action="append", default=[], help="default: shoes, chairs, handbags")
    cr.add_argument("--device", default=None)
    cr.add_argument("--root", default=None)
    cr.add_argument("--results", default=None)
    tp = sub.add_parser("tune-pretrain", help="pretrain the sketchy_qmul init change by change; keep what helps "
                                              "on held-out data")
    ti = sub.add_parser("tune-init", help="choose the fine-tuning recipe (layers loaded, lr, frozen layers) "
                                          "per init and variant on a validation split")
    es = sub.add_parser("embedding-spread", help="record how spread out each init's starting embedding is "
                                                 "(notebook 05; needs the init checkpoints)")
    for q in (tp, ti, es):
        q.add_argument("--profile", default=None, help=" | ".join(PROFILE_NAMES) + " (default: $SBIR_PROFILE or quick)")
        q.add_argument("--root", default=None)
        q.add_argument("--results", default=None)
    for q in (tp, ti):
        q.add_argument("--device", default=None)
    ti.add_argument("--inits", nargs="+", default=list(init_recipe.INITS), choices=list(init_recipe.INITS))
    ti.add_argument("--iterations", type=int, default=None, help="override the profile's iteration count")
    p = sub.add_parser("pack", help="write Sketchy-mini as one .npz for an offline GPU machine")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--quality", type=int, default=75, help="photos' JPEG quality (75: ~40 MiB at 224 px)")
    p.add_argument("--root", default=None)
    for name in WRITERS:
        sub.choices[name].add_argument(
            "--allow-dirty", action="store_true",
            help="record into the committed results/ although the checkout has uncommitted changes "
                 "(the record is marked dirty_allowed; default: refused, commit first)")
    return ap


def _run(ap, args) -> int:
    exps = [e for e in runner.experiments() if e.startswith("table")] if args.all else args.experiment
    if not exps:
        ap.error("give --experiment NAME (repeatable) or --all; allowed: " + ", ".join(runner.experiments()))
    dsa_only = [o for o, v in (("--arch", args.arch), ("--packed", args.packed)) if v]
    if dsa_only and not all(e in dase_mems.EXPERIMENTS for e in exps):
        ap.error(f"{', '.join(dsa_only)} apply to the DASE/MEMS experiments ({', '.join(dase_mems.EXPERIMENTS)}) only")
    profile = _config.check_profile(args.profile) if args.profile else _config.default_profile()
    overrides = {k: v for k, v in (("iterations", args.iterations), ("arch", args.arch)) if v}
    for exp in exps:
        real = [d for d in runner.datasets_of(exp) if not d.startswith("synthetic")]
        runner.run([exp], args.dataset or real, args.seeds, profile, rows=args.rows, device=args.device,
                   root=args.root, results=args.results, force=args.force, init=args.init,
                   overrides=overrides or None, progress=not args.no_progress,
                   packed=args.packed or os.environ.get(PACK_ENV) or None)
    return 0


def _show_tuning(args) -> int:
    rec = settings.load_tuning(args.experiment, args.profile, args.results)
    if rec is None:
        print(f"no selection recorded at {settings.tuning_path(args.experiment, args.profile, args.results)}; "
              f"make it with: python -m sbir_lib.experiments tune --experiment {args.experiment} "
              f"--profile {args.profile}")
        return 1
    print(f"{args.experiment} ({args.profile}) on {rec['dataset']}: chosen {rec['chosen']}\n  {rec['split']}")
    for stage in rec["stages"]:
        for c in stage["candidates"]:
            print(f"  {c['settings']}: score {c['score']}")
    return 0


#: the exit status of ``verify`` / ``summary`` when a record is damaged (1: a record does not recompute;
#: 2: a command-line or setup error)
EXIT_DAMAGED = 3

#: the subcommands that write records: they take ``--allow-dirty``
WRITERS = ("run", "tune", "grid", "tune-cache", "tune-cpu", "embedding-spread", "tune-pretrain", "tune-init")


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    with R.allowing_dirty(getattr(args, "allow_dirty", False)):
        return _dispatch(ap, args)


def _dispatch(ap, args) -> int:
    try:
        if args.cmd == "list":
            for name, rows in runner.experiments().items():
                print(f"{name} ({', '.join(runner.datasets_of(name))}): {', '.join(rows)}")
            return 0
        if args.cmd == "verify":
            out = runner.verify(args.results)
            status = EXIT_DAMAGED if out["damaged"] else (1 if out["mismatch"] else 0)
            if args.retrain and status == 0:
                from sbir_lib.experiments.retrain import retrain_check
                same = retrain_check(args.retrain, _config.check_profile(args.profile), args.results,
                                     args.retrain_seed, args.root)
                status = 0 if all(r["same"] for r in same) else 1
            return status
        if args.cmd == "summary":
            damaged = []
            df = runner.summary(args.results, args.experiment, args.dataset, args.profile, log=damaged.append)
            print("no recorded runs" if df.empty else df.to_string())
            for msg in damaged:
                print(msg, file=sys.stderr)
            return EXIT_DAMAGED if damaged else 0
        if args.cmd == "show-tuning":
            return _show_tuning(args)
        if args.cmd == "tune":
            profile = _config.check_profile(args.profile) if args.profile else _config.default_profile()
            rec = tuning.tune(args.experiment, profile, args.dataset, args.seed, args.device, args.root, args.results)
            print(f"chosen {rec['chosen']}; wrote {settings.tuning_path(args.experiment, profile, args.results)} "
                  f"({rec['wall_time_s']:.0f} s)")
            return 0
        if args.cmd == "grid":
            profile = _config.check_profile(args.profile) if args.profile else _config.default_profile()
            res = grid.run(profile, args.budget_s, seeds=tuple(args.seeds),
                           datasets=tuple(args.dataset) or grid.DSSA_DATASETS, device=args.device,
                           results=args.results, root=args.root, cache_views=args.cache_views,
                           iterations=args.iterations, dase=not args.no_dase, pretrain_pack=args.pretrain_pack,
                           dry_run=args.dry_run)
            print(f"grid: {len(res['ran'])} ran, {len(res['skipped'])} already recorded, {len(res['left'])} left "
                  f"({res['seconds']:.0f} s)")
            return 0
        if args.cmd == "tune-cache":
            profile = _config.check_profile(args.profile) if args.profile else _config.default_profile()
            cache_views.choose(profile, args.dataset, tuple(args.views), seeds=tuple(args.seeds), init=args.init,
                               iterations=args.iterations,
                               device=args.device, root=args.root, results=args.results)
            return 0
        if args.cmd == "tune-cpu":
            cpu_recipe.search(tuple(args.recipes), tuple(args.dataset) or cpu_recipe.DATASETS, device=args.device,
                              root=args.root, results=args.results)
            return 0
        if args.cmd == "embedding-spread":
            profile = _config.check_profile(args.profile) if args.profile else _config.default_profile()
            print(f"recorded {init_recipe.record_embedding_spread(profile, args.root, args.results)}")
            return 0
        if args.cmd in ("tune-pretrain", "tune-init"):
            profile = _config.check_profile(args.profile) if args.profile else _config.default_profile()
            if args.cmd == "tune-pretrain":
                init_recipe.tune_pretrain(profile, root=args.root, results=args.results, device=args.device)
            else:
                init_recipe.tune_init(profile, inits=tuple(args.inits), iterations=args.iterations,
                                      device=args.device, root=args.root, results=args.results)
            return 0
        if args.cmd == "pack":
            info = pack_sketchy_mini(args.out, args.size, args.quality, args.root)
            print(f"wrote {info['path']}: {info['sketches']} sketches + {info['photos']} photos at "
                  f"{info['size']} px, {info['bytes'] / 2**20:.1f} MiB")
            return 0
        return _run(ap, args)
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as e:
        # ImportError / RuntimeError: optional ImageNet weights missing offline (sbir_lib.models.dase)
        print(f"error: {e}", file=sys.stderr)
        return 2
