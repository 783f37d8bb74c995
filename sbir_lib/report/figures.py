"""Figures 4 and 5 of the DSSA paper from our trained runs, an interactive retrieval explorer, and the
paper-vs-ours overview plot of the tables.

Taught in ``notebooks/06_figures.ipynb`` (Figures 4, 5 and the explorer) and
``notebooks/05_reproducing_the_tables.ipynb`` (:func:`paper_vs_ours`).

- **Figure 4** (:func:`figure4`): the attention mask ``alpha_ij = softmax(s_ij)`` (Eq. 3, over the 7 x 7
  positions of the pooled conv5 map) of the trained DSSA model (variant ``full``), upsampled over sketch /
  photo pairs of all three categories. The photo branch sees the edge map; its mask is drawn over the RGB
  photo where one exists (shoes, chairs) and over the edge map for handbags (no photos upstream). Drawn on
  one absolute scale with a colour bar marking the uniform ``1/49``, and min-max scaled per mask beside it.
- **Figure 5** (:func:`figure5`): the top-10 retrievals of our model (attention over the query) and of
  Triplet SN (variant ``base``) for the same query sketch, the true match outlined green. Rankings come
  from the recorded test distances (``seed0[.quick].dist.npy``), never recomputed.
- :func:`explorer`: an ipywidgets explorer (dataset, query, k) showing the same two rankings side by side.

Which runs: :func:`find_source` prefers the ``full``-profile records (the real reproduction, made on a GPU),
then the ``cpu`` profile's (:data:`SOURCE_PROFILES`), and falls back to the notebook's profile; every figure says
which it used. The runs are seed 0 of
``full`` and ``base`` in the first table experiment that has both (the runner keeps the trained
conv1-5 / attention weights of seed-0 ``full`` runs: :func:`sbir_lib.experiments.runner.load_trained`).
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import numpy as np
import torch

from sbir_lib.core import records as R
from sbir_lib.core import config as _config
from sbir_lib.data.augment import center_crop
from sbir_lib.experiments import runner as E
from sbir_lib.metrics import retrieval as M
from sbir_lib.core import tablespec as TS
from sbir_lib.core.plotting import attention_colorbar, overlay_attention, save_figure, show_image

OURS, BASELINE = "full", "base"
OURS_LABEL, BASELINE_LABEL = "Ours (DSSA)", "Triplet SN"
MATCH_COLOUR = "limegreen"
#: the widest figure (inches) shown unscaled in a JupyterLab notebook column (about 950 px at matplotlib's
#: 100 dpi); wider figures are scaled down there, and their text with them
NOTEBOOK_WIDTH_IN = 9.5
#: the smallest font size (points, at the size JupyterLab shows a figure) of the figures' labels
MIN_FONTSIZE = 8


# ====================================================================================== which runs

@dataclass(frozen=True)
class Source:
    """The recorded runs a figure uses for one dataset (one seed, 0 by default, of ``full`` and ``base``)."""

    dataset: str  # the records' dataset key (shoes | chairs | handbags | synthetic)
    profile: str
    experiment: str
    ours: dict
    baseline: dict
    seed: int = 0

    def describe(self, here: str | None = None) -> str:
        """One line: which runs, their accuracy, and the device the records were made on next to this
        machine's (``here``, default :func:`this_machine`): recorded runs are shown, not recomputed here."""
        r = self.ours
        devices = ", ".join(dict.fromkeys(str(x.get("device")) for x in (r, self.baseline)))
        return (f"{_title(self.dataset)}: {self.profile}-profile runs of `{self.experiment}` (seed {self.seed}, "
                f"{r.get('iterations')} iterations; ours acc@1 {100 * r['metrics']['acc@1']:.2f}%, Triplet SN "
                f"{100 * self.baseline['metrics']['acc@1']:.2f}%); records made on {devices} "
                f"(this machine: {here or this_machine()})")


def this_machine() -> str:
    """The device this kernel computes on, as a course line names it: ``cpu`` or ``cuda (<GPU name>)``."""
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"


def _title(dataset: str) -> str:
    return TS.DATASET_TITLES.get(dataset, dataset)


#: the profiles whose trained networks Figures 4 and 5 show first, in order: the GPU reproduction, then the DSSA
#: trained on two CPU cores (an adapted ImageNet trunk); the notebook's own profile comes last
SOURCE_PROFILES = ("full", "cpu")


def find_source(dataset: str, profiles=("full", "quick"), results=None, seed: int = 0) -> Source | None:
    """The first (profile, experiment) with ``seed``'s records, distances of ``full`` and ``base`` and the
    kept weights of ``full`` on ``dataset`` (a records' dataset key), or ``None``."""
    root = _config.results_root(results)
    for prof in dict.fromkeys(profiles):
        for exp in TS.keys():  # any table that records both networks
            ro = R.record_path(root, exp, dataset, OURS, seed, prof)
            rb = R.record_path(root, exp, dataset, BASELINE, seed, prof)
            if not all(p.exists() for p in (ro, rb, R.dist_path(ro), R.dist_path(rb))):
                continue
            rec_o = R.load_record(ro)
            # a run copied from another table keeps its weights beside the original only (load_trained follows)
            orig = root / rec_o["reused_from"] if rec_o.get("reused_from") else ro
            if R.weights_path(orig).exists():
                return Source(dataset, prof, exp, rec_o, R.load_record(rb), seed)
    return None


def sources(ctx, datasets=TS.DATASETS, results=None, seed: int | None = None) -> dict[str, Source]:
    """``{dataset name: Source}``: the full-profile runs of ``seed`` (default ``ctx.seed``) where recorded, else the
    cpu profile's (the DSSA trained on two CPU cores: :data:`SOURCE_PROFILES`), else the notebook profile's (trained now through ``ctx.record`` when missing and training is allowed).
    Datasets without any usable run are left out, with the command that records exactly the missing rows;
    without the real data the one synthetic stand-in is shown once."""
    seed = getattr(ctx, "seed", 0) if seed is None else seed
    out, keys = {}, set()
    for name in datasets:
        key = ctx.dataset_key(name)
        if key in keys:  # several datasets fell back to the same synthetic stand-in
            continue
        keys.add(key)
        src = find_source(key, SOURCE_PROFILES + (ctx.profile,), results, seed)
        if src is None and ctx.train_missing:
            for v in (OURS, BASELINE):
                ctx.record("table1", name, v, seed)
            src = find_source(key, SOURCE_PROFILES + (ctx.profile,), results, seed)
        if src is None:
            if not E.keeps_weights(key, OURS, seed):
                print(f"{_title(key)}: no run of seed {seed} keeps its weights (the runner keeps those of seed 0), "
                      f"and the masks need them")
            else:
                print(f"{_title(key)}: no run with kept weights; "
                      + ctx.record_command("table1", name, [OURS, BASELINE], [seed]))
            continue
        out[name] = src
    return out


# ====================================================================================== data of a figure

@dataclass
class Bundle:
    """What a figure needs for one dataset: the test images, both models' distances, the trained DSSA."""

    source: Source
    sketches: torch.Tensor  # uint8 [N, 256, 256] query sketches
    edges: torch.Tensor  # uint8 [N, 256, 256] gallery edge maps (what the network sees)
    photos: torch.Tensor | None  # uint8 [N, 256, 256, 3] RGB photos (None: handbags)
    dist_ours: np.ndarray  # float32 [N, N]
    dist_baseline: np.ndarray
    model: torch.nn.Module
    _alpha: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.sketches.shape[0])

    @property
    def name(self) -> str:
        return self.source.dataset

    def gallery(self, i: int):
        """Gallery item ``i`` as shown: the RGB photo where one exists, else the edge map."""
        return self.photos[i] if self.photos is not None else self.edges[i]

    def attention(self, idx, kind: str = "sketch") -> np.ndarray:
        """``alpha`` [len(idx), 7, 7] of the trained DSSA model for sketches or edge maps ``idx``
        (centre 225 x 225 crop, the test-time view)."""
        idx = [int(i) for i in np.atleast_1d(idx)]
        todo = [i for i in idx if (kind, i) not in self._alpha]
        if todo:
            imgs = (self.sketches if kind == "sketch" else self.edges)[todo]
            for i, a in zip(todo, attention_maps(self.model, imgs)):
                self._alpha[(kind, i)] = a
        return np.stack([self._alpha[(kind, i)] for i in idx])

    def ranks(self, which: str = "ours") -> np.ndarray:
        """0-based rank of each query's true match under ``ours`` or ``baseline``."""
        return M.rank_of_true_match(self.dist_ours if which == "ours" else self.dist_baseline)


@torch.no_grad()
def attention_maps(model, images: torch.Tensor) -> np.ndarray:
    """Eq. 3's ``alpha`` [B, 7, 7] of ``model`` for uint8 images [B, 256, 256] (centre crop, as tested), prepared as
    the model's trunk expects (Sketch-a-Net's ``x/255 - mean``, or the ImageNet trunk's RGB normalisation)."""
    x = model.prepare(center_crop(images).to(next(model.parameters()).device))
    alpha = model.intermediates(x)["alpha"]
    if alpha is None:
        raise ValueError("this model has no attention module")
    return alpha.float().cpu().numpy()


def load_bundle(ctx, name: str, source: Source, results=None) -> Bundle:
    """The :class:`Bundle` of dataset ``name`` (test split with photos) for ``source``."""
    ds = ctx.dataset(name, photos=True)
    root = _config.results_root(results)

    def dist(variant):
        path = R.dist_path(R.record_path(root, source.experiment, source.dataset, variant, source.seed,
                                         source.profile))
        return np.load(path).astype(np.float32)

    d_ours, d_base = dist(OURS), dist(BASELINE)
    n = len(ds.test)
    if d_ours.shape != (n, n) or d_base.shape != (n, n):
        raise ValueError(f"the recorded distances {d_ours.shape} of {source.experiment}/{source.dataset} do not "
                         f"match the {n} test pairs of the loaded {name} data ({ds.source}); re-record the runs")
    model, _ = E.load_trained(source.experiment, source.dataset, OURS, source.seed, source.profile, results=results)
    return Bundle(source, ds.test.sketches, ds.test.edges, ds.test.photos, d_ours, d_base, model)


def bundles(ctx, srcs: dict[str, Source], results=None) -> dict[str, Bundle]:
    return {name: load_bundle(ctx, name, s, results) for name, s in srcs.items()}


def _crop(img) -> np.ndarray:
    """Centre 225 x 225 crop of a uint8 [H, W] or [H, W, 3] image (the window the attention covers)."""
    t = torch.as_tensor(np.asarray(img))
    if t.dim() == 3:
        return center_crop(t.permute(2, 0, 1))[0].permute(1, 2, 0).numpy()
    return center_crop(t[None])[0, 0].numpy()


def _thumb(img, size: int | None):
    """Downscale a uint8 image for a dense grid (keeps committed figures small)."""
    a = np.asarray(img)
    if size is None or a.shape[0] <= size:
        return a
    from PIL import Image

    return np.asarray(Image.fromarray(a).resize((size, size), Image.LANCZOS))


# ====================================================================================== Figure 4

def pair_indices(n: int, k: int) -> list[int]:
    """``k`` test pairs spread evenly over ``0..n-1`` (a fixed rule, not hand-picked)."""
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k + 2)[1:-1]})


def _none_to_show(what: str):
    print(f"{what}: no dataset has recorded runs to draw (see the commands above)")


def _save(fig, save: str | None, dpi: int = 120):
    if save:
        save_figure(fig, save, dpi=dpi)
    return fig


#: what :func:`figure4` draws: the masks on one absolute scale, each stretched to its own range, or both
FIGURE4_SCALES = ("absolute", "minmax", "both")


def figure4(bnds: dict[str, Bundle], n_pairs: int = 3, size: float = 1.35, save: str | None = None,
            scale: str = "both"):
    """Figure 4: per dataset (one row), ``n_pairs`` sketch / photo pairs with DSSA's attention mask.

    ``scale="absolute"``: every mask on one scale, ``0`` to the largest ``alpha`` shown, with a colour bar
    on which the uniform level ``1/49`` is marked (a mask near uniform looks flat, as it is).
    ``"minmax"``: each mask stretched to its own minimum and maximum (where it peaks, not how much), labelled
    so. ``"both"`` (default): the absolute panels above the min-max ones. ``save``: a figure name for
    :func:`sbir_lib.core.plotting.save_figure`. ``None`` (and a note) without data."""
    import matplotlib.pyplot as plt

    if scale not in FIGURE4_SCALES:
        raise ValueError(f"scale must be one of {', '.join(FIGURE4_SCALES)}; got {scale!r}")
    if not bnds:
        return _none_to_show("Figure 4")
    names = list(bnds)
    maps = {}
    for name, b in bnds.items():
        idx = pair_indices(len(b), n_pairs)
        maps[name] = (idx, b.attention(idx, "sketch"), b.attention(idx, "edge"))
    grid = maps[names[0]][1].shape[-2] * maps[names[0]][1].shape[-1]
    uniform = 1.0 / grid
    vmax = max(float(max(a_s.max(), a_e.max())) for _, a_s, a_e in maps.values())
    blocks = ["absolute", "minmax"] if scale == "both" else [scale]
    fig = plt.figure(figsize=(size * 2 * n_pairs + 1.0, (size * 1.15 * len(names) + 0.45) * len(blocks)),
                     layout="constrained")
    subs = np.atleast_1d(fig.subfigures(len(blocks), 1))
    for sub, block in zip(subs, blocks):
        axes = sub.subplots(len(names), 2 * n_pairs, squeeze=False)
        lim = {"vmin": 0.0, "vmax": vmax} if block == "absolute" else {}
        for r, name in enumerate(names):
            b = bnds[name]
            idx, a_s, a_e = maps[name]
            what = "photo" if b.photos is not None else "edge map"
            for j, i in enumerate(idx):
                overlay_attention(axes[r][2 * j], _crop(b.sketches[i]), a_s[j], f"sketch {i}", **lim)
                overlay_attention(axes[r][2 * j + 1], _crop(b.gallery(i)), a_e[j], f"{what} {i}", **lim)
            axes[r][0].set_ylabel(f"{_title(name)}\n({b.source.profile} run)", fontsize=9)
        if block == "absolute":
            attention_colorbar(sub, axes, 0.0, vmax, uniform, label="alpha (same scale in every panel)",
                               uniform_label=f"1/{grid} (uniform)")
            sub.suptitle(f"Absolute scale: alpha from 0 to {vmax:.3f}, the largest shown; the dashed line on "
                         f"the colour bar is the uniform 1/{grid}", fontsize=9)
        else:
            cb = attention_colorbar(sub, axes, 0.0, 1.0, label="each mask's own range")
            cb.set_ticks([0.0, 1.0], labels=["its min", "its max"])
            sub.suptitle("Min-max scaled: each mask stretched to its own minimum and maximum (where it peaks, "
                         "not how much)", fontsize=9)
    fig.suptitle("Attention masks of our model (DSSA, Eq. 3) on test sketch / photo pairs", fontsize=10)
    return _save(fig, save)


def attention_summary(bnds: dict[str, Bundle]):
    """Measured facts about the masks of Figure 4, over every test pair of each dataset: how peaked
    ``alpha`` is (mean of its maximum vs the uniform ``1/49``) and whether a sketch and its own photo
    attend to the same places (mean correlation of the two masks) more than a sketch and another photo
    (each sketch paired with the next photo, ``i`` vs ``i+1 mod N``)."""
    import pandas as pd

    rows = []
    for name, b in bnds.items():
        idx = list(range(len(b)))
        a_s = b.attention(idx, "sketch").reshape(len(b), -1)
        a_e = b.attention(idx, "edge").reshape(len(b), -1)
        z_s = (a_s - a_s.mean(1, keepdims=True)) / (a_s.std(1, keepdims=True) + 1e-12)
        z_e = (a_e - a_e.mean(1, keepdims=True)) / (a_e.std(1, keepdims=True) + 1e-12)
        rows.append({"dataset": _title(name), "run": b.source.profile, "pairs": len(b),
                     "uniform alpha": 1.0 / a_s.shape[1],
                     "mean max alpha (sketch)": float(a_s.max(1).mean()),
                     "mean max alpha (photo)": float(a_e.max(1).mean()),
                     "mask corr., true pair": float((z_s * z_e).mean(1).mean()),
                     "mask corr., other photo": float((z_s * np.roll(z_e, -1, axis=0)).mean(1).mean())})
    return pd.DataFrame(rows).set_index("dataset") if rows else pd.DataFrame()


def rank_comparison(bnds: dict[str, Bundle], k: int = 10):
    """Per dataset, from the recorded distances: acc@1 / acc@k of both models and on how many queries
    ours ranks the true match better, equally or worse than Triplet SN."""
    import pandas as pd

    rows = []
    for name, b in bnds.items():
        ro, rb = b.ranks("ours"), b.ranks("baseline")
        rows.append({"dataset": _title(name), "run": b.source.profile, "queries": len(b),
                     "ours acc@1": 100 * float((ro < 1).mean()), f"ours acc@{k}": 100 * float((ro < k).mean()),
                     "Triplet SN acc@1": 100 * float((rb < 1).mean()),
                     f"Triplet SN acc@{k}": 100 * float((rb < k).mean()),
                     "ours better": int((ro < rb).sum()), "tie": int((ro == rb).sum()),
                     "Triplet SN better": int((ro > rb).sum())})
    return pd.DataFrame(rows).set_index("dataset") if rows else pd.DataFrame()


# ====================================================================================== Figure 5

def pick_queries(b: Bundle, k: int = 10) -> list[tuple[int, str]]:
    """Two queries per dataset by a fixed rule (not hand-picked): among the queries our model retrieves
    within its top ``k``, the one whose true-match rank improves most over Triplet SN's; and among those
    Triplet SN retrieves within its top ``k``, the one where it beats ours most (ties: lowest index; if no
    query qualifies, all queries are considered)."""
    r_ours, r_base = b.ranks("ours"), b.ranks("baseline")
    gain = (r_base - r_ours).astype(np.float64)

    def best(score, eligible):
        score = np.where(eligible, score, -np.inf) if eligible.any() else score
        return int(np.argmax(score))

    q1 = best(gain, r_ours < k)
    out = [(q1, "ours gains most")]
    q2 = best(-gain, r_base < k)
    if q2 != q1:
        out.append((q2, "Triplet SN gains most"))
    return out


def _retrieval_row(axes, b: Bundle, q: int, which: str, k: int, thumb: int | None, label: str | None = None):
    """Draw query ``q`` (with DSSA's attention when ``which == "ours"``) and its top ``k`` gallery items."""
    d = b.dist_ours if which == "ours" else b.dist_baseline
    order = np.argsort(d[q], kind="stable")[:k]
    rank = int((d[q] < d[q, q]).sum())
    name = OURS_LABEL if which == "ours" else BASELINE_LABEL
    title = f"{name}\nmatch at {rank + 1}"
    if which == "ours":
        overlay_attention(axes[0], _thumb(_crop(b.sketches[q]), thumb), b.attention([q])[0], title)
    else:
        show_image(axes[0], _thumb(_crop(b.sketches[q]), thumb), title)
    if label:
        axes[0].set_ylabel(label, fontsize=MIN_FONTSIZE)
    for j, g in enumerate(order):
        show_image(axes[j + 1], _thumb(b.gallery(int(g)), thumb), str(j + 1),
                   outline=MATCH_COLOUR if int(g) == q else None)
    for ax in axes[k + 1:]:
        ax.axis("off")


def _cell_size(size: float, k: int) -> float:
    """The side (inches) of one image of a ``k + 1``-column retrieval grid: ``size``, or less so that the
    grid fits :data:`NOTEBOOK_WIDTH_IN` (JupyterLab would scale a wider figure down, labels included)."""
    return min(size, NOTEBOOK_WIDTH_IN / (k + 1))


def figure5(bnds: dict[str, Bundle], queries: dict | None = None, k: int = 10, size: float = 0.85,
            thumb: int | None = 96, save: str | None = None):
    """Figure 5: for each dataset and query, our top-``k`` (attention over the query) above Triplet SN's,
    the true match outlined green. ``queries``: ``{dataset: [(index, why), ...]}`` (default
    :func:`pick_queries`); ``save`` as in :func:`figure4`. At most :data:`NOTEBOOK_WIDTH_IN` wide, labels
    at least :data:`MIN_FONTSIZE` points."""
    import matplotlib.pyplot as plt

    if not bnds:
        return _none_to_show("Figure 5")
    size = _cell_size(size, k)
    rows = [(name, q, why) for name, b in bnds.items()
            for q, why in (queries or {}).get(name, pick_queries(b, k))]
    fig, axes = plt.subplots(2 * len(rows), k + 1, figsize=(size * (k + 1), size * 1.3 * 2 * len(rows)),
                             squeeze=False)
    for r, (name, q, why) in enumerate(rows):
        b = bnds[name]
        label = f"{_title(name)} #{q}\n{why}"
        _retrieval_row(axes[2 * r], b, q, "ours", k, thumb, label)
        _retrieval_row(axes[2 * r + 1], b, q, "baseline", k, thumb)
    fig.suptitle(f"Top-{k}: ours (upper row, attention on the query, min-max scaled) vs Triplet SN (lower row); "
                 "true match in green", fontsize=9)
    fig.tight_layout()
    return _save(fig, save, dpi=100)  # 132 photos: a lower resolution keeps the committed files small


# ====================================================================================== explorer

def explorer_view(b: Bundle, q: int, k: int = 10, size: float = 1.3, thumb: int | None = None):
    """One query of dataset bundle ``b``: our top ``k`` (with attention) above Triplet SN's. Images are
    ``size`` inches, less where ``k + 1`` of them would not fit :data:`NOTEBOOK_WIDTH_IN`, so the labels keep
    their :data:`MIN_FONTSIZE` points as JupyterLab shows the figure."""
    import matplotlib.pyplot as plt

    if not 0 <= q < len(b):
        raise ValueError(f"query must be in 0..{len(b) - 1}; got {q}")
    size = _cell_size(size, k)
    fig, axes = plt.subplots(2, k + 1, figsize=(size * (k + 1), size * 2.7 + 0.3), squeeze=False)
    _retrieval_row(axes[0], b, q, "ours", k, thumb, f"{_title(b.name)} #{q}")
    _retrieval_row(axes[1], b, q, "baseline", k, thumb)
    fig.suptitle(f"{_title(b.name)}, query {q} ({b.source.profile}-profile runs; attention min-max scaled)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def explorer_example(bnds: dict[str, Bundle], k: int = 10, save: str | None = None):
    """A static :func:`explorer_view` (the committed notebook stores no widget state): the first
    dataset's query chosen by :func:`pick_queries`. ``None`` (and a note) without data."""
    if not bnds:
        return _none_to_show("Explorer example")
    b = next(iter(bnds.values()))
    return _save(explorer_view(b, pick_queries(b, k)[0][0], k), save)


def explorer(bnds: dict[str, Bundle], k: int = 10):
    """An ipywidgets explorer: choose a dataset, a query sketch and ``k``; see the query with DSSA's
    attention and both models' ranked galleries side by side (true match outlined). Returns the widget."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    if not bnds:
        return W.Label("Nothing to explore: no dataset has recorded runs (see the commands above).")
    names = list(bnds)
    ds = W.Dropdown(options=[(_title(n), n) for n in names], value=names[0], description="dataset")
    q = W.IntSlider(value=0, min=0, max=len(bnds[names[0]]) - 1, description="query",
                    continuous_update=False)
    kk = W.IntSlider(value=k, min=1, max=20, description="top k", continuous_update=False)
    out = W.Output()

    def render(*_):
        # the figure goes into the widget's state in one assignment, not through ``with out: display(fig)``:
        # capturing a cell's output into an Output widget sometimes never completes under papermill
        # (jupyter/nbclient#312; seen here in 2 of 3 series runs with a busy second core)
        fig = explorer_view(bnds[ds.value], q.value, kk.value)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        plt.close(fig)
        out.outputs = ({"output_type": "display_data", "metadata": {},
                        "data": {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
                                 "text/plain": f"explorer: {_title(ds.value)}, query {q.value}, top {kk.value}"}},)

    def on_dataset(change):
        q.max = len(bnds[change["new"]]) - 1
        render()

    ds.observe(on_dataset, names="value")
    q.observe(render, names="value")
    kk.observe(render, names="value")
    render()
    return W.VBox([W.HBox([ds, q, kk]), out])


# ====================================================================================== tables overview

def paper_vs_ours(long, title: str = "", ax=None):
    """Scatter of our mean against the paper's number for every table cell run (``long``:
    :func:`sbir_lib.report.tables.long_table` frames concatenated), coloured by table, with y = x. Error
    bars (seed std) only on cells with 2+ seeds, and one legend entry for them only where there are any:
    a one-seed run has no spread to show."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if ax is None:
        fig, ax = plt.subplots(figsize=(5.2, 5))
    else:
        fig = ax.figure
    ok = long[(long["status"] == "ok") & long["paper"].notna()]
    spread = ok[(ok["n"] >= 2) & ok["std"].notna()]
    for table, g in ok.groupby("table", sort=True):
        pts = ax.scatter(g["paper"], g["mean"], s=18, alpha=0.8, label=table)
        e = spread[spread["table"] == table]
        if len(e):
            ax.errorbar(e["paper"], e["mean"], yerr=e["std"], fmt="none", ecolor=pts.get_facecolor()[0],
                        capsize=2, alpha=0.8, label="_nolegend_")
    ax.plot([0, 100], [0, 100], color="grey", lw=1, ls="--", label="ours = paper")
    handles, _ = ax.get_legend_handles_labels()
    if len(spread):
        handles.append(Line2D([], [], color="black", marker="|", ls="-", lw=1, ms=8,
                              label=f"± seed std ({len(spread)} cells with 2+ seeds)"))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_aspect("equal")
    ax.set_xlabel("paper (%)")
    ax.set_ylabel("ours, mean over seeds (%)")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    n = len(ok)
    ax.set_title(f"{title} ({n} cells)" if title else f"{n} cells", fontsize=10)
    if n == 0:
        ax.text(50, 50, "no recorded runs", ha="center", va="center", color="grey")
    return fig


#: the colours of :func:`accuracy_sources`, one per init (sbir_lib.report.tables.PRETRAIN_INITS)
INIT_COLOURS = {"untrained": "#bbbbbb", "scratch": "#4c72b0", "sketchy_mini": "#dd8452",
                "sketchy_qmul": "#c44e52", "imagenet": "#55a868"}
INIT_LABELS = {"untrained": "untrained (no training)", "scratch": "from scratch",
               "sketchy_mini": "Sketchy-mini stand-in", "sketchy_qmul": "Sketchy-mini + QMUL pairs",
               "imagenet": "ImageNet EfficientNet-Lite0"}


def accuracy_sources(long, title: str = "", ax=None):
    """Where accuracy comes from: acc@1 per init as grouped bars for each (dataset, model) of ``long``
    (:func:`sbir_lib.report.tables.pretrain_long`), error bars only where there are 2+ seeds, the paper's
    acc@1 as a black bar across each group. Inits not recorded leave a gap, named in the legend."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 3.8))
    else:
        fig = ax.figure
    groups = list(dict.fromkeys(zip(long["dataset"], long["model"])))
    inits = list(dict.fromkeys(long["init"]))
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    width = 0.8 / max(1, len(inits))
    handles = []
    for j, init in enumerate(inits):
        g = long[long["init"] == init].set_index(["dataset", "model"]).reindex(groups)
        x = np.arange(len(groups)) + (j - (len(inits) - 1) / 2) * width
        ok = g["n"].fillna(0).to_numpy() > 0
        label = INIT_LABELS.get(init, init) + ("" if ok.any() else " (not recorded)")
        ax.bar(x[ok], g["acc@1"].to_numpy()[ok], width, color=INIT_COLOURS.get(init))
        handles.append(Patch(color=INIT_COLOURS.get(init), label=label))
        two = ok & (g["n"].fillna(0).to_numpy() >= 2)
        if two.any():
            ax.errorbar(x[two], g["acc@1"].to_numpy()[two], yerr=g["acc@1 std"].to_numpy()[two], fmt="none",
                        ecolor="black", capsize=2, lw=1)
    paper = long.drop_duplicates(["dataset", "model"]).set_index(["dataset", "model"]).reindex(groups)["paper acc@1"]
    for i, v in enumerate(paper.to_numpy()):
        if np.isfinite(v):
            ax.hlines(v, i - 0.45, i + 0.45, colors="black", lw=2)
    if np.isfinite(paper.to_numpy(dtype=float)).any():
        handles.append(Line2D([], [], color="black", lw=2, label="paper"))
    ax.set_xticks(np.arange(len(groups)), [f"{d}\n{m}" for d, m in groups], fontsize=9)
    ax.set_ylabel("acc@1 on the test split (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(handles=handles, fontsize=8, ncol=3, loc="upper left")
    ax.set_title(title or "Where accuracy comes from", fontsize=10)
    return fig


__all__ = ["Bundle", "Source", "accuracy_sources", "attention_maps", "attention_summary", "bundles", "explorer", "explorer_example",
           "explorer_view", "figure4", "figure5", "find_source", "load_bundle", "pair_indices", "paper_vs_ours",
           "pick_queries", "rank_comparison", "sources", "this_machine"]
