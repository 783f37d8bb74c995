"""What the DSSA grid costs: the uncached engine vs the cached frozen trunk, side by side in one run.

    python benchmarks/grid_cost.py [--device cuda] [--batch-size 128] [--iterations 20] [--views 10]

For a frozen-trunk row of each kind, ``full`` (conv1-conv4 frozen: conv5, attention, fc6/fc7 and HOLEF
train) and ``base`` (conv1-conv5 frozen: fc6/fc7 train), both engines run the same training step on the
same device:

- **engine**: ``sbir_lib.training.triplet``'s step as it runs without a cache: crops/flips of uint8 images
  on the device, the whole network forward (frozen layers included), loss, backward, SGD;
- **cached**: the step of ``cache_views > 0`` runs (:mod:`sbir_lib.training.cached`): one cached trunk
  map per triplet image, the trainable part forward, loss, backward, SGD.

Per row and engine it prints and records ms per step, TFLOP/s (FLOPs of one step counted with
``torch.utils.flop_counter``), the fraction of the device's bf16 peak (known GPUs only), the projected
minutes of a 20,000-iteration run (plus the cache build for the cached engine) and of the whole grid of
Tables 1-5 (each distinct configuration once, 3 datasets x 3 seeds). Writes
``results/benchmarks/grid_cost_<device>.json``. Timings are measurements, never asserted in tests.
"""
from __future__ import annotations

import argparse
import re
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from sbir_lib.core import config
from sbir_lib.core.io import write_json_atomic
from sbir_lib.core.records import device_name, git_commit
from sbir_lib.data import augment as AUG
from sbir_lib.data.synthetic import load_fg_dataset
from sbir_lib.experiments import runner as E
from sbir_lib.losses import losses as L
from sbir_lib.models import dssa as MD
from sbir_lib.training import triplet as T
from sbir_lib.training.cached import build_cache, cached_batch
from sbir_lib.training.engine import autocast, train_step

#: Dense bf16 tensor-core peak (FLOP/s) by GPU name, from the vendors' data sheets.
BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12}
ITERATIONS = 20_000  # the authors' run length
DATASETS, SEEDS = 3, 3


def peak_of(name: str) -> float | None:
    for key, peak in BF16_PEAK.items():
        if re.search(rf"\b{key}\b", name):
            return peak
    return None


def grid_variants() -> dict[str, list[str]]:
    """The distinct deep configurations of Tables 1-5, by the stage their trunk freezes at."""
    deep = sorted({r for e, rows in E.experiments().items() if e.startswith("table") for r in rows
                   if r not in E.CLASSICAL})
    return {"conv4": [v for v in deep if MD.get_variant(v).attention],
            "conv5": [v for v in deep if not MD.get_variant(v).attention]}


def make_step(variant: str, stage: str, cached: bool, split, batch: int, views: int, device):
    """A closure running one training step of ``variant`` with its trunk frozen at ``stage``."""
    cfg = T.profile_config("full", variant=variant, batch_size=batch, freeze=stage)
    torch.manual_seed(0)
    model, energy = T.build_network(cfg, device)
    opt = T.make_optimizer(cfg, T.optimizer_groups(cfg, model, energy))
    gen = torch.Generator(device=device).manual_seed(0)
    sk, ed = split.sketches.to(device), split.edges.to(device)
    n = len(split)
    info = {}
    if cached:
        t0 = time.perf_counter()
        caches = [build_cache(model, imgs, views, stage, torch.Generator(device=device).manual_seed(1), device)
                  for imgs in (split.sketches, split.edges)]
        if device.type == "cuda":
            torch.cuda.synchronize()
        info = {"cache_build_s": round(time.perf_counter() - t0, 3),
                "cache_mib": round(sum(c.nbytes() for c in caches) / 2**20, 1)}
        embed = lambda h: model.embed_from(h, stage)  # noqa: E731
    else:
        embed = model.embed
    if cfg.compile and device.type == "cuda":
        embed = torch.compile(embed)
    model.train()

    def step():
        a, p, q = (torch.randint(0, n, (batch,), generator=gen, device=device) for _ in range(3))
        if cached:
            x = cached_batch(*caches, a, p, q, gen)
        else:
            x = T._prep(AUG.augment(torch.cat([sk[a], ed[p], ed[q]]), generator=gen), cfg.channels_last)
        with autocast(device, cfg.amp):
            emb = embed(x).float()
        s, ep, en = emb.chunk(3)
        loss = L.triplet_hinge(energy.paired(s, ep), energy.paired(s, en), cfg.margin) + energy.regularizer()
        train_step(opt, loss)

    return step, info


def measure(step, iterations: int, device) -> tuple[float, float]:
    """``(seconds per step, FLOPs per step)`` after warm-up steps (compilation, cuDNN autotuning)."""
    for _ in range(3):
        step()
    with FlopCounterMode(display=False) as fc:
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(iterations):
        step()
    sync()
    return (time.perf_counter() - t0) / iterations, float(fc.get_total_flops())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python benchmarks/grid_cost.py", description=__doc__.split("\n")[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--dataset", default="shoes", help="shoes | chairs | handbags (synthetic when absent)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 128 on a GPU, 16 on the CPU")
    ap.add_argument("--iterations", type=int, default=None, help="timed steps (default 20 on a GPU, 3 on the CPU)")
    ap.add_argument("--views", type=int, default=10, help="cached views per training image")
    ap.add_argument("--train-size", type=int, default=None, help="use the first N training instances (smoke tests)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    device = config.default_device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch_size or (128 if gpu else 16)
    iters = args.iterations or (20 if gpu else 3)
    ds = load_fg_dataset(args.dataset)
    split = T._subset(ds.train, torch.arange(min(args.train_size, len(ds.train)))) if args.train_size else ds.train
    name = device_name(device)
    peak = peak_of(name) if gpu else None
    variants = grid_variants()
    rows = []
    for variant, stage in (("full", "conv4"), ("base", "conv5")):
        for cached in (False, True):
            step, info = make_step(variant, stage, cached, split, batch, args.views, device)
            s, flops = measure(step, iters, device)
            tflops = flops / s / 1e12
            run_min = (s * ITERATIONS + info.get("cache_build_s", 0.0)) / 60
            rows.append({"row": variant, "frozen": f"conv1-{stage}", "engine": "cached" if cached else "engine",
                         "ms_per_step": round(1e3 * s, 3), "gflop_per_step": round(flops / 1e9, 2),
                         "tflop_s": round(tflops, 3), "bf16_peak_fraction": round(tflops * 1e12 / peak, 4) if peak else None,
                         "min_per_20k": round(run_min, 3), **info})
            print(f"{variant:5s} {rows[-1]['engine']:7s} {1e3 * s:9.2f} ms/step  {tflops:8.3f} TFLOP/s  "
                  f"{run_min:8.2f} min per {ITERATIONS} iterations", flush=True)
    by = {(r["row"], r["engine"]): r for r in rows}
    grid = {}
    for engine in ("engine", "cached"):
        per_run = {"conv4": by[("full", engine)]["min_per_20k"], "conv5": by[("base", engine)]["min_per_20k"]}
        grid[engine] = round(sum(per_run[st] * len(vs) for st, vs in variants.items()) * DATASETS * SEEDS, 1)
    ratio = {v: round(by[(v, "engine")]["ms_per_step"] / by[(v, "cached")]["ms_per_step"], 2) for v in ("full", "base")}
    print(f"cached / engine speed-up: full {ratio['full']}x, base {ratio['base']}x; whole grid "
          f"({sum(map(len, variants.values()))} configurations x {DATASETS} datasets x {SEEDS} seeds): "
          f"{grid['engine']} min -> {grid['cached']} min")
    rec = {"benchmark": "grid_cost", "device": name, "torch": torch.__version__, "git_commit": git_commit(),
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "dataset": ds.name,
           "train_instances": len(split), "batch_size": batch, "timed_iterations": iters, "cache_views": args.views,
           "bf16_peak_flops": peak, "rows": rows, "speedup": ratio, "grid_minutes": grid,
           "grid_configurations": variants, "iterations_per_run": ITERATIONS}
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40]
    out = args.out or config.results_root() / "benchmarks" / f"grid_cost_{slug}.json"
    write_json_atomic(out, rec)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
