"""Profile one DSSA training step on a GPU under different speed settings.

    python benchmarks/profile_step.py [--variant full] [--batch-size 128] [--iterations 30]

Times the engine's step (augment on the device, one forward pass of the three branches, triplet
loss, backward, SGD step) with cudnn.benchmark on/off, channels_last on/off, bf16 autocast on/off and
torch.compile, and prints the top CUDA kernels of the fastest setting. A tool for choosing the
engine's defaults (see ``sbir_lib.training.triplet``); it writes a JSON record when ``--out`` is given.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from sbir_lib.data import augment as AUG
from sbir_lib.losses import losses as L
from sbir_lib.training import triplet as T
from sbir_lib.training.engine import autocast
from sbir_lib.core.records import device_name


def time_step(variant, batch, iters, *, cudnn_bench, channels_last, amp, compile_, device, freeze="none",
              conv1="s2d"):
    from sbir_lib.models import dssa as MD

    torch.backends.cudnn.benchmark = cudnn_bench
    MD.SketchANet.conv1_impl = conv1
    cfg = T.profile_config("full", variant=variant, batch_size=batch, channels_last=channels_last, amp=amp)
    model, energy = T.build_network(cfg, device)
    if freeze != "none":
        model.freeze(freeze)
    params = [p for p in list(model.parameters()) + list(energy.parameters()) if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    imgs = torch.randint(0, 256, (3 * batch, 256, 256), dtype=torch.uint8, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    embed = torch.compile(model.embed) if compile_ else model.embed

    def step():
        x = T._prep(AUG.augment(imgs, generator=gen), channels_last)
        with autocast(device, amp):
            emb = embed(x).float()
        s, p, n = emb.chunk(3)
        loss = L.triplet_hinge(energy.paired(s, p), energy.paired(s, n), 0.3) + energy.regularizer()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / iters
    return dt, step


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="full")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--procs", type=int, default=1,
                    help="run N training processes at once on the GPU and report the aggregate rate")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        dt, _ = time_step(args.variant, args.batch_size, args.iterations, device=torch.device("cuda"),
                          cudnn_bench=True, channels_last=True, amp=True, compile_=False)
        print(json.dumps({"ms_per_step": dt * 1e3}))
        return
    device = torch.device("cuda")
    if args.procs > 1:
        return concurrent(args)
    settings = [
        dict(cudnn_bench=True, channels_last=True, amp=True, compile_=False, conv1="native"),
        dict(cudnn_bench=True, channels_last=True, amp=True, compile_=False, conv1="s2d"),
        dict(cudnn_bench=True, channels_last=False, amp=True, compile_=False, conv1="s2d"),
        dict(cudnn_bench=True, channels_last=True, amp=True, compile_=False, conv1="s2d", freeze="conv4"),
    ]
    if args.compile:
        settings.append(dict(cudnn_bench=True, channels_last=True, amp=True, compile_=True, conv1="s2d"))
    rows = []
    best = None
    for s in settings:
        dt, step = time_step(args.variant, args.batch_size, args.iterations, device=device, **s)
        rows.append({**s, "ms_per_step": round(dt * 1e3, 2),
                     "min_per_20k": round(dt * 20000 / 60, 2)})
        print(rows[-1], flush=True)
        if best is None or dt < best[0]:
            best = (dt, step, s)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            best[1]()
        torch.cuda.synchronize()
    print("fastest:", best[2])
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"device": device_name(device), "variant": args.variant, "batch": args.batch_size,
                       "torch": torch.__version__, "rows": rows}, fh, indent=2)


def concurrent(args):
    """Several independent training processes sharing the GPU (how a seed/variant grid can be run)."""
    import subprocess
    import sys

    cmd = [sys.executable, __file__, "--worker", "--variant", args.variant, "--batch-size",
           str(args.batch_size), "--iterations", str(args.iterations)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(args.procs)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    ms = [o["ms_per_step"] for o in outs]
    agg = sum(1e3 / m for m in ms)
    print(f"{args.procs} processes: ms/step each {[round(m, 1) for m in ms]}, aggregate {agg:.1f} steps/s "
          f"= {agg * args.batch_size:.0f} triplets/s (wall {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
