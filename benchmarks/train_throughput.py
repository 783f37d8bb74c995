"""Training throughput: the sbir_lib engine vs a plain DataLoader pipeline, side by side.

    python benchmarks/train_throughput.py [--dataset shoes] [--variant full] [--iterations 50]
                                          [--batch-size 128] [--device cuda] [--workers 4]

Both train the same DSSA model with the same SGD step on the same triplets recipe:

- **engine** (``sbir_lib.training.triplet.train``): uint8 images resident on the device, index-tensor triplet
  sampling, batched crops/flips on the device, one forward pass for the three branches, bf16
  autocast and channels_last on CUDA.
- **plain**: a ``torch.utils.data.Dataset`` that returns one triplet at a time through PIL and
  torchvision transforms (RandomCrop 225, RandomHorizontalFlip, ToTensor, Normalize), batched by a
  ``DataLoader`` with worker processes, fp32.

Prints triplets/s of each, the ratio, the achieved TFLOP/s (FLOPs of one training step counted
with ``torch.utils.flop_counter``) and the projected time of a 20,000-iteration run, and writes a
JSON record under ``results/benchmarks/``. Never used as a timed assertion in tests.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sbir_lib.core import config
from sbir_lib.data import augment as AUG
from sbir_lib.data.synthetic import load_fg_dataset
from sbir_lib.models import dssa as MD
from sbir_lib.training import triplet as T
from sbir_lib.core.records import git_commit
from sbir_lib.core.records import device_name
from sbir_lib.core.io import write_json_atomic


class PlainTriplets(torch.utils.data.Dataset):
    """Per-sample PIL + torchvision pipeline (what a first implementation usually looks like)."""

    def __init__(self, split, length: int, seed: int = 0):
        import torchvision.transforms as TV

        self.sketches = split.sketches.numpy()
        self.edges = split.edges.numpy()
        self.triplets = split.triplets
        self.length = length
        self.rng = np.random.default_rng(seed)
        self.tf = TV.Compose([TV.RandomCrop(AUG.CROP), TV.RandomHorizontalFlip(), TV.ToTensor(),
                              TV.Normalize([AUG.PIXEL_MEAN], [1.0])])

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        from PIL import Image

        a = i % len(self.sketches)
        if self.triplets is not None and self.triplets[a]:
            p, n = self.triplets[a][self.rng.integers(len(self.triplets[a]))]
        else:
            p, n = a, (a + 1 + self.rng.integers(len(self.edges) - 1)) % len(self.edges)
        imgs = [Image.fromarray(self.sketches[a]), Image.fromarray(self.edges[p]),
                Image.fromarray(self.edges[n])]
        return tuple(self.tf(im) for im in imgs)


def step_flops(model, energy, batch: int, device) -> float:
    """FLOPs of one training step (forward + backward) on ``batch`` triplets."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(3 * batch, 1, AUG.CROP, AUG.CROP, device=device)
    with FlopCounterMode(display=False) as fc:
        s, p, n = model.embed(x).float().chunk(3)
        loss = (energy.paired(s, p) - energy.paired(s, n)).relu().mean() + energy.regularizer()
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(fc.get_total_flops())


def bench_plain(cfg, split, device, iterations: int, warmup: int, workers: int) -> float:
    model, energy = T.build_network(cfg, device)
    params = list(model.parameters()) + list(energy.parameters())
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    ds = PlainTriplets(split, (iterations + warmup) * cfg.batch_size, seed=cfg.seed)
    dl = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                                     pin_memory=device.type == "cuda", drop_last=True,
                                     persistent_workers=False)
    model.train()
    t0 = None
    for i, (s, p, n) in enumerate(dl):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        x = torch.cat([s, p, n]).to(device, non_blocking=True)
        es, ep, en = model.embed(x).chunk(3)
        loss = T.L.triplet_hinge(energy.paired(es, ep), energy.paired(es, en), cfg.margin) + energy.regularizer()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return iterations * cfg.batch_size / (time.perf_counter() - t0)


def bench_engine(cfg, dataset, device, iterations: int, warmup: int) -> float:
    """Triplets/s of ``sbir_lib.training.triplet.train`` after its first step (cuDNN autotuning, compilation)."""
    T.train(T.TrainConfig(**{**cfg.to_dict(), "iterations": warmup}), dataset, device=device, progress=False)
    res = T.train(T.TrainConfig(**{**cfg.to_dict(), "iterations": iterations + 1}), dataset, device=device,
                  progress=False)
    return res.steady_iterations * cfg.batch_size / res.steady_time_s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="shoes", help="shoes | chairs | handbags | synthetic")
    ap.add_argument("--variant", default="full")
    ap.add_argument("--iterations", type=int, default=None, help="timed iterations (default 50 GPU, 5 CPU)")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None, help="triplets per batch (default 128 GPU, 16 CPU)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--out", default=None, help="JSON output (default results/benchmarks/<device>.json)")
    ap.add_argument("--compile", action="store_true", help="the engine with torch.compile (TrainConfig.compile)")
    args = ap.parse_args(argv)

    device = config.default_device(args.device)
    gpu = device.type == "cuda"
    iters = args.iterations or (50 if gpu else 5)
    warmup = args.warmup if args.warmup is not None else (10 if gpu else 1)
    batch = args.batch_size or (128 if gpu else 16)
    dataset = load_fg_dataset(args.dataset)
    cfg = T.profile_config("full", variant=args.variant, batch_size=batch, compile=args.compile)
    model, energy = T.build_network(cfg, device)
    flops = step_flops(model, energy, batch, device)
    del model, energy

    engine = bench_engine(cfg, dataset, device, iters, warmup)
    plain = bench_plain(cfg, dataset.train, device, iters, warmup, args.workers)
    per_triplet = flops / batch
    rec = {
        "benchmark": "train_throughput", "dataset": dataset.name, "data_source": dataset.source,
        "variant": args.variant, "batch_size": batch, "iterations": iters, "warmup": warmup,
        "engine_compile": args.compile, "conv1_impl": MD.SketchANet.conv1_impl,
        "device": device_name(device), "torch": torch.__version__, "git_commit": git_commit(),
        "dataloader_workers": args.workers,
        "engine_triplets_per_s": round(engine, 2), "plain_triplets_per_s": round(plain, 2),
        "ratio": round(engine / plain, 2),
        "train_gflop_per_triplet": round(per_triplet / 1e9, 3),
        "engine_tflops": round(engine * per_triplet / 1e12, 3),
        "plain_tflops": round(plain * per_triplet / 1e12, 3),
        "projected_20k_iterations_min": round(20_000 * 128 / engine / 60, 1),
    }
    print(f"device: {rec['device']}   variant {args.variant}, batch {batch} triplets, {iters} timed iterations")
    print(f"engine : {engine:9.1f} triplets/s  {rec['engine_tflops']:.3f} TFLOP/s")
    print(f"plain  : {plain:9.1f} triplets/s  {rec['plain_tflops']:.3f} TFLOP/s  ({args.workers} workers)")
    print(f"ratio  : {rec['ratio']:.2f}x   projected 20,000 x 128-triplet run: "
          f"{rec['projected_20k_iterations_min']} min")
    out = Path(args.out) if args.out else config.results_root() / "benchmarks" / (
        "train_throughput_" + ("".join(c if c.isalnum() else "_" for c in rec["device"]).strip("_")[:40]) + ".json")
    write_json_atomic(out, rec)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
