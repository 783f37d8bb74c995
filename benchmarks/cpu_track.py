"""What the cpu profile costs on this machine, part by part, measured side by side in one run.

    python benchmarks/cpu_track.py [--threads 2] [--steps 20]

- **trunk store build**: crops per second through the frozen EfficientNet-Lite0 trunk (to block 15), float32
  against bf16 autocast with channels-last inputs (what :mod:`sbir_lib.training.trunk_store` uses);
- **training**: ms per step of the head of a ``base`` row (conv5's 1x1 convolution, fc6/fc7) and a ``full`` row
  (plus attention, CFF and HOLEF) on stored maps, the cpu profile's batch (32 triplets);
- **evaluation**: seconds to embed the 10 test views of 115 sketches and 115 edge maps from stored maps;
- **batched heads**: three heads (three seeds of one row) trained one at a time against all at once (parameters
  stacked, one ``torch.func.vmap`` step), side by side in the same process.

Writes ``results/benchmarks/cpu_track_cpu.json`` with the projected cost of the cpu grid (every distinct row
of Tables 1-5, 3 datasets x 3 seeds, at the profile's iterations). Random weights and maps: the cost does not
depend on them. Timings are measurements, never asserted in tests.
"""
from __future__ import annotations

import argparse
import time

import torch

from sbir_lib.core import config
from sbir_lib.core.io import write_json_atomic
from sbir_lib.core.profiles import CPU
from sbir_lib.core.records import device_name, git_commit
from sbir_lib.core.tablespec import TABLES
from sbir_lib.models import dssa as MD
from sbir_lib.training import triplet as T
from sbir_lib.training import trunk_store as TS
from sbir_lib.training.cached import ViewCache, cached_batch
from sbir_lib.training.engine import train_step


def _timed(fn, n: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def build_rate(n_images: int = 16, views: int = 4) -> dict:
    model = MD.DSSANet(MD.get_variant("full", backbone="efficientnet_lite0_b15")).eval()
    bb = model.backbone
    imgs = torch.randint(0, 256, (n_images, 256, 256), dtype=torch.uint8)
    v = TS.train_views(n_images, views)
    fn = lambda c: bb.features_upto(bb.prepare(c), "conv4")  # noqa: E731
    out = {}
    for name, amp in (("float32", False), ("bf16+channels_last", True)):
        s = _timed(lambda: TS.compute_maps(fn, imgs, v, torch.bfloat16, amp=amp), 2)
        out[name] = round(n_images * views / s, 1)
    out["speed-up"] = round(out["bf16+channels_last"] / out["float32"], 2)
    return out


def step_ms(variant: str, steps: int, n_train: int = 304) -> float:
    cfg = T.profile_config(CPU, variant=variant, init=None)
    model, energy = T.build_network(cfg, "cpu", init=False)
    model.freeze("conv4")
    opt = T.make_optimizer(cfg, T.optimizer_groups(cfg, model, energy))
    maps = torch.randn(n_train, cfg.cache_views, 320, 8, 8).to(torch.bfloat16)
    cache = ViewCache("conv4", maps, torch.zeros(n_train, cfg.cache_views, 3, dtype=torch.long))
    g = torch.Generator().manual_seed(0)
    model.train()

    def step():
        a = torch.randint(0, n_train, (cfg.batch_size,), generator=g)
        x = cached_batch(cache, cache, a, a.roll(1), a.roll(2), g)
        s, p, n = model.embed_from(x.float(), "conv4").chunk(3)
        train_step(opt, T.L.triplet_hinge(energy.paired(s, p), energy.paired(s, n), cfg.margin))

    return 1000 * _timed(step, steps)


class _Head(torch.nn.Module):
    """A DSSA network's head on stored maps, as a module whose ``forward`` is ``embed_from`` (for ``functional_call``)."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, x):
        return self.m.embed_from(x, "conv4")


def batched_heads_ms(variant: str, heads: int, steps: int, batch: int = 32) -> dict:
    """ms per step of ``heads`` independent heads (e.g. three seeds of one row): one at a time (each its own
    forward, backward and SGD step) against all at once (their trainable parameters stacked, one ``torch.func.vmap``
    forward and one backward over the summed losses, one SGD step). The same arithmetic per head either way."""
    from torch.func import functional_call, stack_module_state, vmap
    cfg = T.profile_config(CPU, variant=variant, init=None)
    nets = [T.build_network(cfg, "cpu", init=False) for _ in range(heads)]
    for m, _ in nets:
        m.freeze("conv4")
        m.train()
    x = torch.randn(heads, 3 * batch, 320, 8, 8)
    opts = [torch.optim.SGD([p for p in list(m.parameters()) + list(e.parameters()) if p.requires_grad], lr=1e-3,
                            momentum=0.9) for m, e in nets]

    def loss_of(emb, energy_call):
        s, p, n = emb.chunk(3)
        return T.L.triplet_hinge(energy_call(s, p), energy_call(s, n), cfg.margin)

    def single():
        for (m, e), opt, xi in zip(nets, opts, x):
            train_step(opt, loss_of(m.embed_from(xi, "conv4"), e.paired))

    heads_mod = [_Head(m) for m, _ in nets]
    hp, _ = stack_module_state(heads_mod)
    hp = {k: v.detach().requires_grad_() for k, v in hp.items() if v.requires_grad}
    ep, _ = stack_module_state([e for _, e in nets])
    ep = {k: v.detach().requires_grad_() for k, v in ep.items()}
    head0, energy0 = heads_mod[0], nets[0][1]
    opt = torch.optim.SGD(list(hp.values()) + list(ep.values()), lr=1e-3, momentum=0.9)

    def one(hpi, epi, xi):
        emb = functional_call(head0, hpi, (xi,))
        return loss_of(emb, lambda a, b: functional_call(energy0, epi, (a, b)))  # Energy.forward is paired

    def batched():
        train_step(opt, vmap(one)(hp, ep, x).sum())

    single_ms, batched_ms = 1000 * _timed(single, steps), 1000 * _timed(batched, steps)
    return {"heads": heads, "one_at_a_time_ms": round(single_ms, 1), "batched_ms": round(batched_ms, 1),
            "speed_up": round(single_ms / batched_ms, 2)}


def eval_s(n: int = 115) -> float:
    model = MD.DSSANet(MD.get_variant("full", backbone="efficientnet_lite0_b15")).eval()
    maps = torch.randn(n, 10, 320, 8, 8).to(torch.bfloat16)

    @torch.no_grad()
    def run():
        for _ in range(2):  # sketches and edge maps
            torch.stack([model.embed_from(maps[:, j].float(), "conv4") for j in range(10)])

    return _timed(run, 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = {v for t in TABLES.values() for v in t.networks("dssa")}
    res = {"device": device_name(torch.device("cpu")), "threads": args.threads, "git_commit": git_commit(),
           "trunk_store_crops_per_s": build_rate(),
           "step_ms": {v: round(step_ms(v, args.steps), 1) for v in ("base", "full")},
           "eval_10_views_s": round(eval_s(), 2),
           "batched_heads": {v: batched_heads_ms(v, 3, args.steps) for v in ("base", "full")}}
    its = CPU.triplet["iterations"]
    per_run = {v: its * ms / 1000 + res["eval_10_views_s"] for v, ms in res["step_ms"].items()}
    attention = sum(MD.get_variant(r).attention for r in rows)
    res["grid"] = {"distinct_rows": len(rows), "runs": 9 * len(rows), "iterations": its,
                   "projected_hours": round(9 * (attention * per_run["full"] + (len(rows) - attention) * per_run["base"])
                                            / 3600, 2),
                   "note": "rows with attention at the full row's step cost, the others at base's; plus the one-time "
                           "store build (crops / the bf16 rate)"}
    print(res)
    write_json_atomic(config.results_root() / "benchmarks" / "cpu_track_cpu.json", res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
