"""Embedding geometry of a DSSA variant at initialisation: is the margin reachable?

Measures, on the test split of a dataset (centre view), for a freshly initialised network built exactly
as :func:`sbir_lib.training.triplet.build_network` builds it for a run (same seed, same init):

- ``cos_fc7`` / ``cos_fine``: the mean cosine between the embeddings of different test images (sketches
  and edge maps together) for the L2-normalised fc7 half and the fine half (CFF variants);
- ``d_true`` / ``d_other``: the mean squared distance between a sketch and its own edge map, and
  between a sketch and the other edge maps (compare with the triplet margin, 0.3);
- ``d_train_vs_eval``: the mean squared distance between one image's embedding in training mode and in
  evaluation mode (dropout / batch-norm noise; 0 for the authors' network, which has neither).

Issue 11 quotes the numbers of the recipe before the fidelity fixes (He init, dropout 0.5). Run::

    python tools/embedding_stats.py --dataset shoes --variants base full --seed 0
"""
from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from sbir_lib.data import augment as A
from sbir_lib.experiments import runner as E
from sbir_lib.training import triplet as T


@torch.no_grad()
def stats(variant: str, dataset, seed: int = 0, **overrides) -> dict:
    cfg = T.profile_config("quick", variant=variant, seed=seed, **overrides)
    T.seed_everything(cfg.seed)
    model, _ = T.build_network(cfg, torch.device("cpu"))
    te = dataset.test
    x = A.to_input(A.center_crop(torch.cat([te.sketches, te.edges])))
    model.eval()
    out = model.intermediates(x)
    emb = out["embedding"]
    n = len(te)
    s, e = emb[:n], emb[n:]

    def mean_cos(v):
        v = F.normalize(v, dim=1)
        c = v @ v.T
        return float((c.sum() - c.diagonal().sum()) / (c.numel() - len(c)))

    d = torch.cdist(s, e).pow(2)
    off = ~torch.eye(n, dtype=torch.bool)
    res = {"variant": variant, "seed": seed, "cos_fc7": mean_cos(out["fc7"]),
           "cos_fine": mean_cos(out["fine"]) if out["fine"] is not None else None,
           "d_true": float(d.diagonal().mean()), "d_other": float(d[off].mean())}
    model.train()
    torch.manual_seed(seed)
    res["d_train_vs_eval"] = float((model(x[:64]) - emb[:64]).pow(2).sum(1).mean())
    res.update(overrides)
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="shoes")
    ap.add_argument("--variants", nargs="+", default=["base", "full"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embedding-bn", action="store_true", help="with the non-paper embedding BatchNorm")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    ds = E.load_dataset(args.dataset)
    for v in args.variants:
        extra = {"embedding_bn": True} if args.embedding_bn else {}
        print(json.dumps(stats(v, ds, args.seed, **extra)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
