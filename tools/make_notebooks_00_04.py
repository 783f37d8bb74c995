"""Build notebooks 00-04 of the DSSA series (cells only, no outputs) with nbformat.

    python tools/make_notebooks_00_04.py [NN ...]        # default: all five

Then execute them in place (fills the outputs that are committed)::

    python -m sbir_lib.notebooks run --profile quick --only 00 --inplace

Each notebook: a title, the ``parameters`` cell, ``ctx = course.setup(profile)``, then short cells that
call into ``sbir_lib``. Cells whose output is identical on every machine start with
``# NBVAL_CHECK_OUTPUT`` (nbval compares only those).
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
CHECK = "# NBVAL_CHECK_OUTPUT\n"


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, check: bool = False, tags=()):
    cell = new_code_cell((CHECK if check else "") + text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def preamble(title: str, intro: str):
    return [
        md(f"# {title}\n\n{intro.strip()}"),
        code('import os\n\nprofile = os.environ.get("SBIR_PROFILE", "quick")  # quick | full',
             tags=["parameters"]),
        code("from sbir_lib import course\n\nctx = course.setup(profile)"),
    ]


def write(name: str, cells) -> Path:
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(nb)
    path = NB_DIR / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


# ======================================================================================================
# 00 data and the domain gap
# ======================================================================================================
def nb00():
    cells = preamble("00 · The data and the sketch–photo domain gap", r"""
This course teaches **fine-grained sketch-based image retrieval (FG-SBIR)**: given a free-hand sketch
of *one particular* shoe, find *that* shoe among photos of similar shoes. We follow DSSA (Song et al.,
*Deep Spatial-Semantic Attention for Fine-Grained Sketch-Based Image Retrieval*, ICCV 2017) step by step:

| notebook | idea |
|---|---|
| **00** (this one) | the QMUL data, the human annotations, the sketch vs edge-map domain gap, training triplets |
| 01 | Triplet SN: a siamese Sketch-a-Net trained with a triplet loss; acc@K |
| 02 | spatial attention with a shortcut (Eqs. 2-4) |
| 03 | coarse-fine fusion (CFF) |
| 04 | HOLEF, the higher-order learnable energy function |
| 05, 06 | the paper's tables and figures, reproduced |

**Conventions.** Every notebook starts with the cell below tagged `parameters`: `profile` is `quick`
(tiny training runs that finish in minutes on a laptop CPU; they show every mechanism working, but their
accuracies are *not* comparable with the paper's) or `full` (the authors' recipe, on a GPU). Batch runs
set it with `python -m sbir_lib.notebooks run --profile quick` (papermill injects it).
`ctx = course.setup(profile)` then picks the device, seeds everything, and gives three helpers:
`ctx.dataset(name)` (the real data, or a synthetic stand-in with a visible note when it is not
downloaded), `ctx.record(experiment, dataset, variant)` (a recorded training run from `results/`,
trained now only if it is missing) and `ctx.compare(...)` (our runs beside the paper's numbers).
All the logic lives in the library `sbir_lib`; the notebooks only call it.
""")
    cells += [
        md(r"""
## The three QMUL datasets

Each dataset is a set of **instances**; an instance has a free-hand *sketch*, an *edge map* of its
product photo, and (shoes and chairs) the RGB *photo*. Row `i` of the sketch array and row `i` of the
edge-map array are the same instance: the sketch's **true match**. The network never sees the RGB
photos: its photo branch sees the edge maps (we show the photos only to help the eye).
Get the data with `python data_download.py --all`.
"""),
        code("""
import numpy as np
import pandas as pd
import torch

from sbir_lib import data as D, domain_gap as G, plotting as P

datasets = {name: ctx.dataset(name) for name in D.QMUL_NAMES}
"""),
        code("""
counts = pd.DataFrame([
    {"dataset": name, "train pairs": len(ds.train), "test pairs": len(ds.test),
     "image": "x".join(map(str, ds.train.sketches.shape[1:])),
     "RGB photos": ds.train.photos is not None, "triplet annotation": ds.train.triplets is not None}
    for name, ds in datasets.items()]).set_index("dataset")
print(counts.to_string())
""", check=True),
        md(r"""
Small test sets (115, 97 and 168 queries) mean one query is worth 0.87, 1.03 and 0.60 points of
accuracy: differences of a few points between methods are within the noise of a single run.

Three test instances of each dataset (photo, edge map, sketch):
"""),
        code("""
rows, titles = [], []
for name, ds in datasets.items():
    row, tit = [], []
    for i in (0, 1):
        photo = ds.test.photos[i] if ds.test.photos is not None else None
        row += [photo, ds.test.edges[i], ds.test.sketches[i]]
        tit += [f"{name} #{i} photo" if photo is not None else "", "edge map", "sketch"]
    rows.append(row)
    titles.append(tit)
fig = P.image_grid(rows, titles=titles, size=1.5)
P.save_figure(fig, "nb00_pairs");
"""),
        md(r"""
Handbags have no RGB photos upstream (the authors released only the edge maps), so that cell stays empty.

## What the human triplet annotations say

For shoes and chairs, people were shown a query sketch and pairs of candidate photos and asked which
one looks more like the sketch. `split.triplets[i]` lists, for query sketch `i`, the judged
`(more_similar, less_similar)` photo pairs (0-based indices within the split). Training samples its
(positive, negative) photos from these pairs. How often is the "more similar" photo the query's own
photo?
"""),
        code("""
ann = pd.DataFrame([{"split": f"{name} {split}", **G.annotation_statistics(getattr(ds, split))}
                    for name, ds in datasets.items() if ds.train.triplets is not None
                    for split in ("train", "test")]).set_index("split")
print(ann.round(3).to_string())
""", check=True),
        md(r"""
Every query's pairs are built from 10 photos, its true match among them; each test query has all
$\binom{10}{2}=45$ pairs and each training query 135 judgements (45 pairs, three times). The true match
is the "more similar" photo in only about **19%** of the pairs (`more_is_true_match`): the annotation
encodes *perceived similarity among look-alikes*, not identity. Now and then people even prefer
another shoe over the true one (`less_is_true_match`). One test query, its 10 annotated photos ordered by
how often they won their comparisons (the true match outlined in green):
"""),
        code("""
shoes = datasets["shoes"]
q = 0
prefs = G.annotation_preferences(shoes.test, q)
print(prefs.to_string(index=False))
""", check=True),
        code("""
gallery = shoes.test.photos if shoes.test.photos is not None else shoes.test.edges
imgs = [shoes.test.sketches[q]] + [gallery[p] for p in prefs.photo]
tit = [f"query #{q}"] + [f"{w} won, {l} lost" for w, l in zip(prefs.wins, prefs.losses)]
out = [None] + ["limegreen" if t else None for t in prefs.true_match]
fig = P.image_grid([imgs], titles=[tit], outlines=[out], size=1.5)
P.save_figure(fig, "nb00_annotation");
"""),
        md(r"""
## The domain gap between sketches and edge maps

Both domains are dark lines on white, so why not compare pixels? Because a sketch is drawn from
memory: a few long, confident strokes, placed and scaled freely, details exaggerated or left out.
An edge detector instead traces every contrast boundary of the photo, in short broken fragments, at
the photo's exact position. `sbir_lib.domain_gap` measures this on the test sets: the ink density
(fraction of pixels darker than 128), the number of 8-connected ink components, the ink pixels per
component, and the ink's bounding box (as a fraction of the image). Medians:
"""),
        code("""
summary = G.domain_summary({name: ds.test for name, ds in datasets.items()})
print(summary.round(3).to_string())
""", check=True),
        md(r"""
Similar amounts of ink, but organised differently: edge maps break into many more, much smaller pieces
than sketches. And a sketch does not sit where its photo's edges are. The distance between the ink
centroids of each sketch and its own edge map (pixels of the 256 x 256 image), and the ratio of their
bounding-box diagonals (above 1: drawn larger):
"""),
        code("""
offsets = pd.DataFrame({name: G.pair_offsets(ds.test.sketches, ds.test.edges).median()
                        for name, ds in datasets.items()}).T.add_prefix("median ")
print(offsets.round(2).to_string())
""", check=True),
        code("""
rows, titles = [], []
for name, ds in datasets.items():
    rows.append([P.ink_overlay(ds.test.sketches[i], ds.test.edges[i]) for i in range(4)])
    titles.append([f"{name} #{i}" for i in range(4)])
fig = P.image_grid(rows, titles=titles, size=1.8)
P.save_figure(fig, "nb00_overlay");
"""),
        md(r"""
Sketch ink in red on its own edge map in grey: the outline is roughly right, but shifted, rescaled and
simplified. This misalignment is what the DSSA paper's Figure 1 calls the domain gap, and what its
HOLEF energy (notebook 04) is designed to tolerate.

**Does the true match stand out without learning?** We compare every test sketch with every test edge
map under two hand-made distances: the squared distance between Dense-HOG descriptors (gradient
orientation histograms, the classical features of the paper's Table 1) and the symmetric *chamfer*
distance (mean pixel distance from each ink pixel to the nearest ink pixel of the other image).
`d_true` is the mean distance of a sketch to its own edge map, `d_other` to the others; `ratio` would be
0 with no domain gap and 1 if the true match looked like any other item; `acc@1`/`acc@10` are the
fractions of queries whose true match ranks first / in the top 10 when retrieving by that distance.
"""),
        code("""
gap = {}
for name, ds in datasets.items():
    gap[(name, "Dense-HOG")] = G.true_vs_random(G.hog_distance_matrix(ds.test.sketches, ds.test.edges))
    gap[(name, "chamfer (px)")] = G.true_vs_random(G.chamfer_matrix(ds.test.sketches, ds.test.edges))
gap = pd.DataFrame(gap).T
gap.index.names = ["dataset", "distance"]
print(gap.round(3).to_string())
"""),
        md(r"""
The true match is closer than a typical photo (ratio well below 1), but far from identical (ratio well
above 0): with 97-168 look-alike candidates, hand-made distances rank it first only for a minority of
queries (compare the table above with the paper's Table 1 classical rows, reproduced in notebook 05).
Learning an embedding in which sketch and edge map of one instance meet is the job of the rest of the
course.

## How training triplets are drawn

Training shows the network triplets (anchor sketch $s$, positive photo $p^+$, negative photo $p^-$) and
asks that $p^+$ be closer to $s$ than $p^-$ (notebook 01). `sbir_lib.data.TripletSampler` follows the
authors' recipe: the anchors cycle through all training sketches in a shuffled order; $(p^+, p^-)$ is a
random annotated `(more_similar, less_similar)` pair of the anchor; with probability 0.25 the negative
is replaced by a random photo that appears in none of the anchor's pairs. Without an annotation
(handbags) the positive is the true match and the negative a random other photo. Four triplets of
shoes (the photo branch sees edge maps):
"""),
        code("""
sampler = D.TripletSampler(shoes.train, seed=0)
a, p, n = sampler.sample(4)
hard = sampler.last_hard
rows, titles = [], []
for i in range(4):
    pos = "true match" if p[i] == a[i] else "annotated more-similar"
    neg = "annotated less-similar" if hard[i] else "random photo"
    rows.append([shoes.train.sketches[a[i]], shoes.train.edges[p[i]], shoes.train.edges[n[i]]])
    titles.append([f"anchor #{int(a[i])}", f"+ {pos}", f"- {neg}"])
fig = P.image_grid(rows, titles=titles, size=1.7)
P.save_figure(fig, "nb00_triplets");
"""),
        md("Over 20 epochs of anchors, how often is the positive the true match, and the negative from the annotation?"),
        code("""
def sampler_stats(split, epochs=20, seed=0):
    s = D.TripletSampler(split, seed=seed)
    a, p, n = s.sample(epochs * len(split))
    return {"positive is true match": float((p == a).float().mean()),
            "negative from annotation": float(s.last_hard.float().mean()),
            "negative is true match": float((n == a).float().mean())}

print(pd.DataFrame({name: sampler_stats(ds.train) for name, ds in datasets.items()}).round(3).to_string())
"""),
        md(r"""
With the annotation, only about one positive in five is the true match: the loss mostly teaches
*relative* similarity among look-alikes. Handbags (no annotation) always use the true match.

## Augmentation on the device, and the 10 test views

Training crops a random 225 x 225 window out of the 256 x 256 image (an independent offset per image)
and mirrors it with probability 1/2. `sbir_lib.data.augment` does this for a whole batch as one gather on
whatever device the batch lives on (the images stay on the GPU; no per-image Python loop). Six
augmentations of one training sketch:
"""),
        code("""
g = torch.Generator().manual_seed(0)
batch = shoes.train.sketches[:1].repeat(6, 1, 1)  # [6, 256, 256] uint8
aug = D.augment(batch, generator=g)               # [6, 1, 225, 225]
print(tuple(batch.shape), batch.dtype, "->", tuple(aug.shape), aug.dtype)
""", check=True),
        code("""
fig = P.image_grid([[batch[0]] + list(aug)], titles=[["original 256"] + [f"crop {i}" for i in range(6)]],
                   size=1.5)
P.save_figure(fig, "nb00_augment");
"""),
        md(r"""
At test time the full profile averages the distances over **10 views** of every sketch and edge map (the
four corner crops and the centre crop, each also mirrored; `sbir_lib.data.ten_views`); the quick profile
uses the centre crop only. Finally `sbir_lib.data.to_input` maps `uint8` to `x/255 - 250.42/255`, the
scalar mean the authors subtract.
"""),
        code("""
views = D.ten_views(shoes.test.sketches[:1])  # [10, 1, 1, 225, 225]
x = D.to_input(views[:, 0])
print(tuple(views.shape), "->", tuple(x.shape), x.dtype)
""", check=True),
        code("""
names = ["top-left", "top-right", "bottom-left", "bottom-right", "centre"]
fig = P.image_grid([list(views[:5, 0]), list(views[5:, 0])],
                   titles=[names, [f"{v}, mirrored" for v in names]], size=1.5)
P.save_figure(fig, "nb00_ten_views");
"""),
        md(r"""
## Summary

- QMUL-Shoe / QMUL-Chair / Handbag: 304/115, 200/97 and 400/168 train/test sketch–edge-map pairs;
  tiny test sets, so single-run accuracies move in steps of ~1 point.
- The human annotation ranks look-alikes: only ~19% of "more similar" photos are the true match.
- Sketches and edge maps differ in stroke structure (few long strokes vs many fragments), position and
  scale; hand-made distances see the true match as closer than average, yet rarely closest.
- Training draws (sketch, more-similar, less-similar) triplets, augments them on the device, and tests on
  the centre crop (quick) or 10 views (full).

Next: **01 · Triplet SN**, the siamese network and the triplet loss that learn the shared embedding.
"""),
    ]
    return cells


# ======================================================================================================
# 01 triplet loss
# ======================================================================================================
def nb01():
    cells = preamble("01 · Triplet SN: a siamese Sketch-a-Net and the triplet loss", r"""
The DSSA paper's baseline, **Triplet SN** (Yu et al., *Sketch Me That Shoe*, CVPR 2016), learns one
embedding $F_\theta$ for both sketches and photo edge maps, such that a sketch lands closer to its own
photo than to look-alikes. This notebook builds it up: the network, the triplet loss on a few numbers,
one training run, and how retrieval is scored (acc@K).
""")
    cells += [
        md(r"""
## A siamese Sketch-a-Net

*Sketch-a-Net* is a small CNN designed for sketches (large 15 x 15 first filters, no local response
normalisation). *Siamese* means that the sketch branch and the photo branch are **the same network
with the same weights**: one `sbir_lib.models.SketchANet` embeds both. Triplet SN adds fc6 (512) and
fc7 (256) heads; the 256-d fc7 output is the embedding (we L2-normalise it, see
`sbir_lib.models.VariantConfig.l2_normalize_fc7`). Output shapes of each stage for one 225 x 225 input,
and the parameters of each layer:
"""),
        code("""
import numpy as np
import pandas as pd
import torch

from sbir_lib import data as D, experiments as E, losses as L, metrics as M, models as MD, plotting as P

net = MD.SketchANet()
shapes = net.layer_shapes()
params = {name: MD.count_parameters(getattr(net, name)) for name in MD.LAYERS}
arch = pd.DataFrame({"output (C, H, W)": {k: str(v) for k, v in shapes.items()},
                     "parameters": {k: params.get(k, 0) for k in shapes}})
print(arch.to_string())
print(f"total: {MD.count_parameters(net):,} parameters")
""", check=True),
        md(r"""
78% of the weights sit in fc6, which maps the pooled 7 x 7 x 256 conv5 map (12,544 numbers) to 512.
The DSSA additions of notebooks 02-04 are small next to that:
"""),
        code("""
for v in ("base", "base+att", "base+att+cff", "full"):
    m = MD.DSSANet(v)
    print(f"{v:14s} network {MD.count_parameters(m):>10,}  energy {MD.count_parameters(m.make_energy()):>8,}"
          f"  embedding {m.embed_dim}-d")
""", check=True),
        md(r"""
## The triplet loss (Eq. 1), on numbers

A training triplet is an anchor sketch $s$, a positive photo $p^+$ (more similar to $s$) and a negative
$p^-$. With $D$ the squared Euclidean distance between embeddings,

$$\mathcal{L}_\theta(s, p^+, p^-) = \max\bigl(0,\ \Delta + D(F_\theta(s), F_\theta(p^+)) - D(F_\theta(s), F_\theta(p^-))\bigr),
\qquad D(a, b) = \lVert a - b \rVert_2^2 .$$

The loss is zero once the negative is farther than the positive by at least the margin $\Delta$
(`sbir_lib.losses.DEFAULT_MARGIN` = 0.3). Three 2-d triplets with the same anchor and positive, and a
negative that is far (*easy*), a bit farther than the positive (*semi-hard*) or closer than it (*hard*):
"""),
        code("""
s = torch.tensor([[0.0, 0.0]] * 3)
p_pos = torch.tensor([[0.1, 0.0]] * 3)
p_neg = torch.tensor([[1.0, 0.0], [0.5, 0.0], [0.05, 0.0]])
d_pos, d_neg = L.squared_euclidean(s, p_pos), L.squared_euclidean(s, p_neg)
per_triplet = torch.stack([L.triplet_hinge(d_pos[i:i + 1], d_neg[i:i + 1]) for i in range(3)])
print(pd.DataFrame({"D(s,p+)": d_pos, "D(s,p-)": d_neg, "loss": per_triplet},
                   index=["easy", "semi-hard", "hard"]).round(4).to_string())
print(f"batch loss = mean = {float(L.triplet_hinge(d_pos, d_neg)):.4f}")
""", check=True),
        md(r"""
Only triplets that violate the margin produce a gradient. Autograd's gradient of the batch loss with
respect to the three embeddings shows what a training step does (gradient descent moves each embedding
*against* its gradient): in the two active triplets the positive moves towards the anchor (its
gradient points away from $s$), the negative moves away from it, and the anchor moves so as to shrink
$D(s,p^+) - D(s,p^-)$; the easy triplet contributes nothing. In the network these gradients flow back
into the shared weights, through both branches.
"""),
        code("""
emb = [t.clone().requires_grad_(True) for t in (s, p_pos, p_neg)]
loss = L.triplet_hinge(L.squared_euclidean(emb[0], emb[1]), L.squared_euclidean(emb[0], emb[2]))
loss.backward()
for name, t in zip(("dL/ds", "dL/dp+", "dL/dp-"), emb):
    print(name, [[round(float(v), 4) + 0.0 for v in row] for row in t.grad])
""", check=True),
        md(r"""
## Training Triplet SN

`sbir_lib.train.train` draws triplets with `data.TripletSampler` (notebook 00), augments them on the
device, runs the three branches as one batch through the shared network, and minimises the mean hinge
with SGD (momentum 0.9). The **quick** profile trains 60 iterations of 16 triplets from scratch, about a
minute on 2 CPU cores; the **full** profile is the authors' recipe (20,000 iterations of 128 triplets;
the authors also start from a pretrained Sketch-a-Net, see the end of this notebook). The settings:
"""),
        code("""
from sbir_lib import train as T

cfg = T.profile_config(ctx.profile, variant="base")
print({k: getattr(cfg, k) for k in ("iterations", "batch_size", "optimizer", "lr", "momentum", "margin",
                                    "positives", "hard_prob", "test_views")})
"""),
        md(r"""
`ctx.record` returns the recorded run from `results/table2/shoes/base/` (Table 2's "Base" row) and
trains it only if it is missing:
"""),
        code("""
rec = ctx.record("table2", "shoes", "base")
if rec is None:
    print("No recorded run for this profile: the rest of this section is skipped.")
else:
    print(f"{rec['variant']} on {rec['dataset']} ({rec['data_source']}), profile {rec['profile']}, "
          f"seed {rec['seed']}, {rec['iterations']} iterations on {rec['device']}")
    print(f"acc@1 = {100 * rec['metrics']['acc@1']:.2f}%   acc@10 = {100 * rec['metrics']['acc@10']:.2f}%"
          f"   ({rec['n_queries']} test queries, gallery of {rec['n_gallery']})")
"""),
        md(r"""
**How retrieval is scored.** Every test sketch is a query; the gallery is all test edge maps. The *rank*
of a query is the number of gallery items closer to it than its true match (0 = retrieved first), and

$$\text{acc@}K = \frac{1}{Q}\,\bigl|\{\, q : \text{rank}(q) < K \,\}\bigr| ,$$

the fraction of queries whose true match is among the $K$ nearest (`sbir_lib.metrics.acc_at_k`). The
paper reports acc@1 and acc@10; a random ranking gives $K/G$. The training loss and the whole acc@K
curve of the run:
"""),
        code("""
import matplotlib.pyplot as plt

if rec is not None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    P.plot_history(ax1, rec["history"], label=f"base, {ctx.profile} profile")
    ax1.set_title("training loss (mean over each logging interval)", fontsize=9)
    P.plot_acc_curves(ax2, {"Triplet SN (ours)": rec["acc_curve"],
                            "random ranking": np.arange(1, rec["n_gallery"] + 1) / rec["n_gallery"]})
    ax2.set_title(f"test acc@K, QMUL-Shoe ({rec['n_queries']} queries)", fontsize=9)
    fig.tight_layout()
    P.save_figure(fig, "nb01_training");
"""),
        md(r"""
In the quick profile the loss may barely move: 60 steps of 16 triplets from random weights, and each
logged point averages only 10 noisy batches. The acc@K curve is what shows learning: it lies far above
a random ranking (but, for such a short run, not necessarily above the hand-made Dense-HOG distance of
notebook 00). The full profile's curves are in notebook 05.

A few retrievals, from the run's saved test distance matrix (`seed0[.quick].dist.npy` beside the
record): two queries retrieved best and two retrieved worst, with their five nearest gallery items
(the photos are shown; the network compared edge maps). The true match is outlined in green.
"""),
        code("""
dist = ctx.distances("table2", "shoes", "base")
if dist is not None:
    shoes = ctx.dataset("shoes")
    ranks = M.rank_of_true_match(dist)
    order = np.argsort(ranks, kind="stable")
    show = [int(i) for i in order[:2]] + [int(i) for i in order[-2:]]
    print("ranks of the true match:", {q: int(ranks[q]) for q in show})
    gallery = shoes.test.photos if shoes.test.photos is not None else shoes.test.edges
    fig = P.retrieval_rows(shoes.test.sketches, gallery, dist, show, k=5)
    P.save_figure(fig, "nb01_retrievals");
"""),
        md(r"""
## Why pretraining matters

Our quick run learns from scratch on 304 training sketches: far too little data for 8 million
parameters. The DSSA authors (like Triplet SN) start from a Sketch-a-Net **pretrained** on sketch
classification (TU-Berlin) and on ImageNet photos turned into edge maps, and then fine-tune with the
triplet loss (freezing the early layers). That pretrained model cannot be obtained offline, so the
course builds a stand-in: `sbir_lib.pretrain` pretrains Sketch-a-Net on the Sketchy-mini sketches and
photo edge maps. The comparison is recorded as experiment `pretrain`, rows `base` and `full` (from
scratch) and `base@sketchy_mini`, `full@sketchy_mini` (from the stand-in init). Whatever has been
recorded for this profile:
"""),
        code("""
pre = E.collect(experiment="pretrain", profile=ctx.profile)
if pre.empty:
    print(f"No 'pretrain' runs recorded for the {ctx.profile} profile yet. Produce them with:\\n"
          f"  python -m sbir_lib.pretrain run --profile {ctx.profile}\\n"
          f"  python -m sbir_lib.experiments run --experiment pretrain --dataset shoes --profile {ctx.profile}")
else:
    g = pre.groupby(["dataset", "variant"])
    view = g[["acc@1", "acc@10"]].mean().mul(100).round(2)
    view["seeds"] = g["seed"].count()
    view["init"] = g["init"].first()
    print(view.to_string())
"""),
        md(r"""
## Summary

- Triplet SN = one Sketch-a-Net for both domains (8.2 M parameters, 78% in fc6), 256-d embedding.
- The triplet hinge is zero for triplets that already respect the margin; violating ones pull the
  positive in and push the negative out.
- acc@K counts queries whose true match ranks in the top K; quick-profile numbers only show that
  learning happens (compare with the random-ranking line), not the paper's accuracy.

Next: **02 · spatial attention**, which lets the network weight the parts of the conv5 map that
matter for telling look-alikes apart.
"""),
    ]
    return cells


NOTEBOOKS = {
    "00": ("00_data_and_domain_gap", nb00),
    "01": ("01_triplet_loss", nb01),
}


def main(argv=None) -> int:
    which = (argv if argv is not None else sys.argv[1:]) or list(NOTEBOOKS)
    for k in which:
        name, build = NOTEBOOKS[k.zfill(2)]
        print("wrote", write(name, build()).relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
