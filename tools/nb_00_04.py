"""Generator of notebooks 00-04, the DSSA lectures (see ``tools/nbgen.py``, the command that writes and
checks them)::

    python tools/nbgen.py 00 01 02 03 04     # write their sources (keeps the outputs of unchanged cells)
    python tools/nbgen.py --check            # every notebook against its generator

Then re-execute the notebooks whose code changed (fills the outputs that are committed)::

    python -m sbir_lib.course run --profile quick --only 01 --inplace

``NOTEBOOKS`` maps each number to (name, build); ``build()`` returns the cells. Importing this module writes
nothing.
"""
from __future__ import annotations

from nbgen import code, exercise, md, preamble, solution  # shared cell builders


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
accuracies are *not* comparable with the paper's) or `full` (the authors' recipe, on a GPU; without a GPU a
full-profile notebook trains nothing and shows what is recorded). The lecture notebooks 01-04 and 06 also take
`dataset` (`shoes`, `chairs` or `handbags`), `seed` and `seeds`. Batch runs set them with papermill
(`papermill -p profile full -p dataset chairs ...`, or `python -m sbir_lib.course run --profile quick`);
left at `None`, each reads its environment variable (`$SBIR_PROFILE`, `$SBIR_DATASET`, ...), else its default.
`ctx = course.setup(...)` then checks every value (a typo is refused, naming the allowed values), picks the
device, seeds everything, and gives three helpers:
`ctx.dataset(name)` (the real data, or a synthetic stand-in with a visible note when it is not
downloaded), `ctx.record(experiment, dataset, variant)` (a recorded training run from `results/`,
trained now only if it is missing) and `ctx.compare(...)` (our runs beside the paper's numbers).
All the logic lives in the library `sbir_lib`; the notebooks call it, and each shows the few library
lines that carry its idea (printed from the code that runs, with file and line numbers). Each ends its
sections with small **exercises**; their worked solutions are collapsed cells (click to expand) that check
themselves with an `assert`.
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
import pandas as pd
import torch

from sbir_lib.core import plotting as P
from sbir_lib.data import augment as AUG
from sbir_lib.data import datasets as D
from sbir_lib.data import samplers
from sbir_lib.report import domain_gap as G

datasets = {}  # keyed as the records are: "shoes", "chairs", "handbags", or one "synthetic" stand-in
for name in D.QMUL_NAMES:
    datasets.setdefault(ctx.dataset_key(name), ctx.dataset(name))
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
shoes = datasets[ctx.dataset_key("shoes")]
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
the photo's exact position. `sbir_lib.report.domain_gap` measures this on the test sets: the ink density
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
asks that $p^+$ be closer to $s$ than $p^-$ (notebook 01). `sbir_lib.data.samplers.TripletSampler` follows the
authors' recipe: the anchors cycle through all training sketches in a shuffled order; $(p^+, p^-)$ is a
random annotated `(more_similar, less_similar)` pair of the anchor; with probability 0.25 the negative
is replaced by a random photo that appears in none of the anchor's pairs. Without an annotation
(handbags) the positive is the true match and the negative a random other photo. Four triplets of
shoes (the photo branch sees edge maps):
"""),
        code("""
sampler = samplers.TripletSampler(shoes.train, seed=0)
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
    s = samplers.TripletSampler(split, seed=seed)
    a, p, n = s.sample(epochs * len(split))
    return {"positive is true match": float((p == a).float().mean()),
            "negative from annotation": float(s.last_hard.float().mean()),
            "negative is true match": float((n == a).float().mean())}

print(pd.DataFrame({name: sampler_stats(ds.train) for name, ds in datasets.items()}).round(3).to_string())
"""),
        md(r"""
With the annotation, only about one positive in five is the true match: the loss mostly teaches
*relative* similarity among look-alikes. Handbags (no annotation) always use the true match.

**The code.** The heart of `TripletSampler.sample`, for an annotated dataset: one random annotated pair
`k` per anchor gives the positive and the "hard" negative; with probability `1 - hard_prob` the negative
is a random photo from outside the anchor's pairs instead. Every choice is a tensor operation over the
whole batch (`torch.where`), no Python loop per triplet:
"""),
        code("""
from sbir_lib.course.context import show_source

show_source(samplers.TripletSampler.sample, 'if self.positives == "annotated":', "self.last_hard = use_hard & has")
"""),
        exercise(r"""
Draw 20 epochs of shoes triplets with another seed and check the sampler's promises with
`sampler.is_annotated(anchors, photos)` (does the photo appear in any annotated pair of the anchor?):
every positive is the anchor's own photo or an annotated one; every negative flagged `last_hard` comes from
the annotation; every other negative comes from *outside* the anchor's pairs.
"""),
        solution("""
s2 = samplers.TripletSampler(shoes.train, seed=1)
a2, p2, n2 = s2.sample(20 * len(shoes.train))
hard2 = s2.last_hard
assert bool(((p2 == a2) | s2.is_annotated(a2, p2)).all())
assert bool(s2.is_annotated(a2[hard2], n2[hard2]).all())
assert not bool(s2.is_annotated(a2[~hard2], n2[~hard2]).any())
print(f"{len(a2)} triplets: {float(hard2.float().mean()):.2f} with an annotated negative")
"""),
        md(r"""
## Augmentation on the device, and the 10 test views

Training crops a random 225 x 225 window out of the 256 x 256 image (an independent offset per image)
and mirrors it with probability 1/2. `sbir_lib.data.augment.augment` does this for a whole batch as one gather on
whatever device the batch lives on (the images stay on the GPU; no per-image Python loop). Six
augmentations of one training sketch:
"""),
        code("""
g = torch.Generator().manual_seed(0)
batch = shoes.train.sketches[:1].repeat(6, 1, 1)  # [6, 256, 256] uint8
aug = AUG.augment(batch, generator=g)             # [6, 1, 225, 225]
print(tuple(batch.shape), batch.dtype, "->", tuple(aug.shape), aug.dtype)
""", check=True),
        code("""
fig = P.image_grid([[batch[0]] + list(aug)], titles=[["original 256"] + [f"crop {i}" for i in range(6)]],
                   size=1.5)
P.save_figure(fig, "nb00_augment");
"""),
        md(r"""
At test time the full profile averages the distances over **10 views** of every sketch and edge map (the
four corner crops and the centre crop, each also mirrored; `sbir_lib.data.augment.ten_views`); the quick profile
uses the centre crop only. Finally `sbir_lib.data.augment.to_input` maps `uint8` to `x/255 - 250.42/255`, the
scalar mean the authors subtract.
"""),
        code("""
views = AUG.ten_views(shoes.test.sketches[:1])  # [10, 1, 1, 225, 225]
x = AUG.to_input(views[:, 0])
print(tuple(views.shape), "->", tuple(x.shape), x.dtype)
""", check=True),
        code("""
names = ["top-left", "top-right", "bottom-left", "bottom-right", "centre"]
fig = P.image_grid([list(views[:5, 0]), list(views[5:, 0])],
                   titles=[names, [f"{v}, mirrored" for v in names]], size=1.5)
P.save_figure(fig, "nb00_ten_views");
"""),
        md(r"""
**The code.** A random crop and flip of a whole batch is one gather (`sbir_lib.data.augment.crop_views`):
row indices `oy + 0..224` per image, column indices `ox + 0..224`, reversed where the image is mirrored,
and one advanced-indexing read of the batch:
"""),
        code("""
show_source(AUG.crop_views, "ar = torch.arange", "return out")
"""),
        exercise(r"""
Cut the centre 225 x 225 window of two test sketches by plain slicing and check it against
`AUG.center_crop`; then check that test view `5 + k` of `AUG.ten_views` is view `k` mirrored left-right.
"""),
        solution("""
imgs = shoes.test.sketches[:2]  # uint8 [2, 256, 256]
o = (256 - 225) // 2
assert torch.equal(imgs[:, o:o + 225, o:o + 225], AUG.center_crop(imgs)[:, 0])
v = AUG.ten_views(imgs)
assert torch.equal(v[4], AUG.center_crop(imgs))
assert all(torch.equal(v[5 + k], v[k].flip(-1)) for k in range(5))
print("centre crop and mirrored views check out")
"""),
        exercise(r"""
The *ink density* of `sbir_lib.report.domain_gap` is the fraction of pixels darker than `G.INK_THRESHOLD`
(128). Compute it for the first five test sketches with one tensor expression and check it against the
`ink` column of `G.stroke_statistics`.
"""),
        solution("""
imgs = shoes.test.sketches[:5]
ink = (imgs < G.INK_THRESHOLD).double().mean(dim=(1, 2))
assert torch.allclose(ink, torch.tensor(G.stroke_statistics(imgs)["ink"].to_numpy()))
print("ink density:", ink.numpy().round(4))
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
    cells = preamble("01 · Triplet SN: a siamese Sketch-a-Net and the triplet loss", params=("dataset", "seed", "seeds"),
                     intro=r"""
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
with the same weights**: one `sbir_lib.models.dssa.SketchANet` embeds both. Triplet SN adds fc6 (512) and
fc7 (256) heads; the L2-normalised 256-d fc7 output is the embedding, as in the authors' code. There
is no dropout: neither their TensorFlow nor their Caffe network has one. Output shapes of each stage for one 225 x 225 input,
and the parameters of each layer:
"""),
        code("""
import numpy as np
import pandas as pd
import torch

from sbir_lib.core import plotting as P
from sbir_lib.experiments import runner as E
from sbir_lib.losses import losses as L
from sbir_lib.metrics import retrieval as M
from sbir_lib.models import dssa as MD

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
(`sbir_lib.losses.losses.DEFAULT_MARGIN` = 0.3). Three 2-d triplets with the same anchor and positive, and a
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
        md("The library's hinge is these two lines (the shape check guards against pairing the wrong distances):"),
        code("""
from sbir_lib.course.context import show_source

show_source(L.triplet_hinge, "if d_pos.shape")
"""),
        exercise(r"""
Write the triplet hinge of Eq. 1 yourself, as `my_hinge(d_pos, d_neg, margin)`, with `torch.clamp` instead
of `relu`, and check it against `L.triplet_hinge` on 1,000 random distance pairs and three margins.
"""),
        solution("""
def my_hinge(d_pos, d_neg, margin=L.DEFAULT_MARGIN):
    return torch.clamp(margin + d_pos - d_neg, min=0).mean()

g = torch.Generator().manual_seed(0)
dp, dn = torch.rand(1000, generator=g) * 2, torch.rand(1000, generator=g) * 2
for m in (0.0, 0.3, 1.0):
    assert torch.allclose(my_hinge(dp, dn, m), L.triplet_hinge(dp, dn, m))
print("my_hinge == L.triplet_hinge")
"""),
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
        exercise(r"""
Derive the gradient of the batch loss with respect to the negatives by hand: for an *active* triplet
($\Delta + D^+ - D^- > 0$) it is $\partial\mathcal{L}/\partial p^- = 2\,(s - p^-)/N$ ($N$ = 3 triplets in the
batch), and 0 otherwise. Check your formula against autograd's `emb[2].grad` above.
"""),
        solution("""
active = (L.DEFAULT_MARGIN + d_pos - d_neg > 0).float()[:, None]  # [3, 1]
by_hand = 2 * (s - p_neg) / len(s) * active
assert torch.allclose(by_hand, emb[2].grad)
print(by_hand + 0.0)  # + 0.0: no "-0."
"""),
        md(r"""
## Training Triplet SN

`sbir_lib.training.triplet.train` draws triplets with `sbir_lib.data.samplers.TripletSampler` (notebook
00), augments them on the device, runs the three branches as one batch through the shared network, and
minimises the mean hinge with SGD (momentum 0.9). The **quick** profile trains 60 iterations of 16
triplets from scratch, about a minute on 2 CPU cores; the **full** profile is the authors' recipe (20,000 iterations of 128 triplets;
the authors also start from a pretrained Sketch-a-Net, see the end of this notebook). The settings:
"""),
        code("""
from sbir_lib.training import triplet as T

cfg = T.profile_config(ctx.profile, variant="base")
print({k: getattr(cfg, k) for k in ("iterations", "batch_size", "optimizer", "lr", "momentum", "margin",
                                    "positives", "hard_prob", "test_views")})
"""),
        md(r"""
Each iteration turns its batch into one scalar loss and hands it to `sbir_lib.training.engine.train_step`
(zero the gradients, backpropagate, update), which all three training recipes of the course call: this
triplet recipe, the class-pair recipe of DASE/MEMS (notebooks 07-08) and the Sketch-a-Net pretraining.
"""),
        code("""
import inspect

from sbir_lib.training import engine

print(inspect.getsource(engine.train_step), end="")
""", check=True),
        md(r"""
And the loop that feeds it, in `sbir_lib.training.triplet.train`: draw a batch of (anchor, positive,
negative) indices, stack the three image batches, augment them on the device, embed all $3B$ images in
one pass of the shared network, split the embeddings into $s, p^+, p^-$, and take Eq. 1 (plus the energy's
regulariser, zero for the Euclidean energy; notebook 04):
"""),
        code("""
show_source(T.train, "for it in bar:", "log.add(")
"""),
        md(r"""
`ctx.record` returns the recorded run of Table 2's "Base" row on this notebook's dataset and seed (the
parameters `dataset` and `seed`; from `results/table2/<dataset>/base/`) and trains it only if it is missing.
In the full profile without a GPU, a run stopped early is shown when the complete one is missing (`partial=True`;
it says so, and it is not the recipe's result):
"""),
        code("""
rec = ctx.record("table2", ctx.dataset_name, "base", partial=True)
if rec is None:
    print("No recorded run for this profile: the rest of this section is skipped.")
else:
    stopped = f" (stopped early: {rec['iterations']} of {rec['config']['iterations']})" if rec.get("partial") else ""
    print(f"{rec['row']} on {rec['dataset']} ({rec['data_source']}), profile {rec['profile']}, "
          f"seed {rec['seed']}, {rec['iterations']} iterations{stopped} on {rec['device']}")
    print(f"acc@1 = {100 * rec['metrics']['acc@1']:.2f}%   acc@10 = {100 * rec['metrics']['acc@10']:.2f}%"
          f"   ({rec['n_queries']} test queries, gallery of {rec['n_gallery']})")
"""),
        md(r"""
**How retrieval is scored.** Every test sketch is a query; the gallery is all test edge maps. The *rank*
of a query is the number of gallery items closer to it than its true match (0 = retrieved first), and

$$\text{acc@}K = \frac{1}{Q}\,\bigl|\{\, q : \text{rank}(q) < K \,\}\bigr| ,$$

the fraction of queries whose true match is among the $K$ nearest (`sbir_lib.metrics.retrieval.acc_at_k`). The
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
    ax2.set_title(f"test acc@K, {rec['dataset']} ({rec['n_queries']} queries)", fontsize=9)
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
dist = ctx.distances("table2", ctx.dataset_name, "base", partial=True)
if dist is not None:
    data = ctx.dataset(ctx.dataset_name)
    ranks = M.rank_of_true_match(dist)
    order = np.argsort(ranks, kind="stable")
    show = [int(i) for i in order[:2]] + [int(i) for i in order[-2:]]
    print("ranks of the true match:", {q: int(ranks[q]) for q in show})
    gallery = data.test.photos if data.test.photos is not None else data.test.edges
    fig = P.retrieval_rows(data.test.sketches, gallery, dist, show, k=5)
    P.save_figure(fig, "nb01_retrievals");
"""),
        exercise(r"""
Score retrieval yourself. For a random 8 x 8 distance matrix (query $i$'s true match is gallery $i$),
compute each query's rank as the number of *other* gallery items at a distance $\le$ that of the true match
(ties count against the query, as in `sbir_lib.metrics.retrieval`), then acc@1 and acc@3; check them
against `M.rank_of_true_match` and `M.acc_at_k`.
"""),
        solution("""
g = torch.Generator().manual_seed(1)
d = torch.rand(8, 8, generator=g).numpy()
true = d.diagonal()[:, None]
my_ranks = (d <= true).sum(axis=1) - 1  # the true match itself is not counted
assert (my_ranks == M.rank_of_true_match(d)).all()
for k in (1, 3):
    assert (my_ranks < k).mean() == M.acc_at_k(d, k)
print("ranks:", my_ranks, " acc@1 =", (my_ranks < 1).mean(), " acc@3 =", (my_ranks < 3).mean())
"""),
        md(r"""
## Why pretraining matters

Our quick run learns from scratch on 304 training sketches: far too little data for 8 million
parameters. The DSSA authors (like Triplet SN) start from a Sketch-a-Net **pretrained** on sketch
classification (TU-Berlin) and on ImageNet photos turned into edge maps, and then fine-tune with the
triplet loss (freezing the early layers). That pretrained model cannot be obtained offline, so the
course builds its own inits and records, in experiment `pretrain`, the same two models (Triplet SN =
`base`, DSSA = `full`) started five ways:

- **untrained**: the network as initialised, never trained (what retrieval gets for free);
- **from scratch**: the quick run above;
- **Sketchy-mini stand-in** (`@sketchy_mini`): Sketch-a-Net pretrained on Sketchy-mini sketches and photo
  edge maps (`python -m sbir_lib.training.pretrain run`);
- **Sketchy-mini + QMUL pairs** (`@sketchy_qmul`): the same plus the QMUL *training* pairs; sketch
  augmentation and a longer schedule were tried too, each change kept only when it helped on held-out pairs
  (`python -m sbir_lib.experiments tune-pretrain`);
- **ImageNet** (`@imagenet`): the DSSA head on an ImageNet-pretrained EfficientNet-Lite0 trunk.

Notebook 05 discusses the table; here is what has been recorded for this profile:
"""),
        code("""
from sbir_lib.report import figures as FG
from sbir_lib.report import tables as TB

pre_long = TB.pretrain_long(profile=ctx.profile)
missing = pre_long[pre_long["n"] == 0]
if len(missing):
    print(f"{len(missing)} of {len(pre_long)} cells not recorded for the {ctx.profile} profile; record them with:")
    for cmd in TB.pretrain_missing_commands(pre_long, ctx.profile):
        print("  " + cmd)
fig = FG.accuracy_sources(pre_long, f"Where accuracy comes from ({ctx.profile} profile)")
P.save_figure(fig, f"nb01_accuracy_sources_{ctx.profile}");
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


# ======================================================================================================
# 02 spatial attention
# ======================================================================================================
def nb02():
    cells = preamble("02 · Spatial attention with a shortcut", params=("dataset", "seed", "seeds"), intro=r"""
Telling two look-alike shoes apart often comes down to one local detail: a buckle, a stripe, the shape
of the toe. Triplet SN's fc layers mix the whole conv5 map into one vector, so a small detail has to
compete with everything else. DSSA adds a **spatial attention** module on conv5 that learns which
positions matter, and a **shortcut** that keeps the original features. This notebook works through
Eqs. 2-4 on a tiny tensor, looks at the attention maps of trained models, and compares our runs with
the paper's Tables 3 and 4.
""")
    cells += [
        md(r"""
## Eqs. 2-4

Let $f \in \mathbb{R}^{C \times 7 \times 7}$ be the pooled conv5 map ($C = 256$) and $f_{ij}$ the
feature vector at position $(i, j)$. The attention module computes

$$s_{ij} = F_{att}(f_{ij};\, \mathbf{W}_a) \qquad \text{(Eq. 2, a score per position)}$$

$$\alpha_{ij} = \operatorname{softmax}(s)_{ij} = \frac{\exp s_{ij}}{\sum_{k,l} \exp s_{kl}}
\qquad \text{(Eq. 3, a mask over the 49 positions, summing to 1)}$$

$$f^{att} = f + \alpha \odot f \qquad \text{(Eq. 4, the attended map with the shortcut)}$$

where $\alpha \odot f$ scales every channel at position $(i,j)$ by $\alpha_{ij}$. In
`sbir_lib.models.dssa.SpatialAttention`, $F_{att}$ is a 1x1 convolution $C \to 256$, a ReLU, and a 1x1
convolution $256 \to 1$ (the same small network applied at every position). Without the shortcut the
attended map is just $\alpha \odot f$. A worked example with $C = 2$ channels on a 2 x 2 map, and a
hand-set $F_{att}$ whose score is $\mathrm{relu}(f^{(1)}) + \mathrm{relu}(f^{(2)})$:
"""),
        code("""
import numpy as np
import torch

from sbir_lib.core import plotting as P
from sbir_lib.data import augment as AUG
from sbir_lib.models import dssa as MD

att = MD.SpatialAttention(channels=2, hidden=2, shortcut=True)
with torch.no_grad():
    att.conv1.weight.copy_(torch.eye(2).view(2, 2, 1, 1)); att.conv1.bias.zero_()
    att.conv2.weight.copy_(torch.ones(1, 2, 1, 1)); att.conv2.bias.zero_()
f = torch.tensor([[[[1.0, 0.0], [0.0, 2.0]],     # channel 1
                   [[1.0, 0.0], [0.0, -1.0]]]])  # channel 2     (shape [1, 2, 2, 2])
with torch.no_grad():
    s = att.scores(f)
    alpha = att.mask(s)
    f_att, _ = att(f)
    att.shortcut = False
    f_att_noshortcut, _ = att(f)
np.set_printoptions(precision=4, suppress=True)
print("scores s (Eq. 2):\\n", s[0].numpy())
print("alpha (Eq. 3), sums to", round(float(alpha.sum()), 4), ":\\n", alpha[0].numpy())
print("f + alpha*f (Eq. 4), channel 1:\\n", f_att[0, 0].numpy())
print("alpha*f without shortcut, channel 1:\\n", f_att_noshortcut[0, 0].numpy())
""", check=True),
        md(r"""
**The code.** `SpatialAttention` is these three methods: Eq. 2 is two 1x1 convolutions (the same small
network at every position), Eq. 3 a softmax over the flattened $H \times W$ positions, Eq. 4 one line:
"""),
        code("""
from sbir_lib.course.context import show_source

show_source(MD.SpatialAttention, "def scores", "return f_att, alpha")
"""),
        exercise(r"""
Write Eqs. 2-4 with plain tensor operations for a randomly initialised module
`MD.SpatialAttention(channels=8, hidden=4)` on a random map `f` of shape `[2, 8, 7, 7]`: the scores from
`conv1`/`conv2`'s weights and biases (a 1x1 convolution is `torch.einsum("oc,bchw->bohw", W, f)` plus the bias),
the mask by a softmax over the 49 positions, and $f + \alpha \odot f$. Check both outputs of the module.
"""),
        solution("""
torch.manual_seed(0)
mod = MD.SpatialAttention(channels=8, hidden=4)
fx = torch.randn(2, 8, 7, 7)
W1, b1 = mod.conv1.weight[:, :, 0, 0], mod.conv1.bias
W2, b2 = mod.conv2.weight[:, :, 0, 0], mod.conv2.bias
h = torch.relu(torch.einsum("oc,bchw->bohw", W1, fx) + b1[:, None, None])
scores = (torch.einsum("oc,bchw->bohw", W2, h) + b2[:, None, None])[:, 0]  # Eq. 2: [2, 7, 7]
a_mine = torch.softmax(scores.flatten(1), dim=1).view(2, 7, 7)  # Eq. 3
f_mine = fx + a_mine[:, None] * fx  # Eq. 4
with torch.no_grad():
    f_lib, a_lib = mod(fx)
assert torch.allclose(a_mine, a_lib, atol=1e-6) and torch.allclose(f_mine, f_lib, atol=1e-5)
print("Eqs. 2-4 by hand == SpatialAttention; mask sums:", a_mine.sum(dim=(1, 2)).tolist())
"""),
        md(r"""
## Why the shortcut matters

The softmax makes the mask *compete*: on a 7 x 7 map a uniform $\alpha$ is $1/49 \approx 0.02$, so
without the shortcut the attended map $\alpha \odot f$ is on average 49 times smaller than $f$, and
every position the mask does not pick is wiped out before fc6 sees it. Early in training (and for
misaligned sketches) the mask is noisy, so the network loses information it cannot get back. With the
shortcut, $f + \alpha \odot f = (1 + \alpha) \odot f$: every position keeps its features, and attention
can only *emphasise* (by a factor between 1 and 2). The paper's Table 4 (printed beside our runs at the
end of this notebook) shows the cost of dropping it: accuracy collapses for every model.
"""),
        exercise(r"""
Check the "49 times smaller" claim. Zero the second convolution of a `SpatialAttention` on 256 channels
(all scores 0), run it on a random 7 x 7 map with and without the shortcut, and verify that $\alpha = 1/49$
everywhere and that $\lVert f^{att} \rVert / \lVert f \rVert$ is $1/49$ without the shortcut and $50/49$
with it.
"""),
        solution("""
torch.manual_seed(0)
uni = MD.SpatialAttention()
with torch.no_grad():
    uni.conv2.weight.zero_(); uni.conv2.bias.zero_()
    fr = torch.randn(1, 256, 7, 7)
    with_sc, alpha_u = uni(fr)
    uni.shortcut = False
    without_sc, _ = uni(fr)
assert torch.allclose(alpha_u, torch.full_like(alpha_u, 1 / 49))
ratio = lambda a: float(a.norm() / fr.norm())  # noqa: E731
assert abs(ratio(without_sc) - 1 / 49) < 1e-5 and abs(ratio(with_sc) - 50 / 49) < 1e-5
print(f"||f_att|| / ||f||: without shortcut {ratio(without_sc):.4f} (1/49), with {ratio(with_sc):.4f} (50/49)")
"""),
        md(r"""
## Attention maps of trained models

`ctx.trained(...)` loads a recorded run's kept weights (conv1-conv5, the attention module and the
energy; fc6/fc7 are not stored, which is fine here since $\alpha$ depends only on conv5). The runner keeps
them for seed 0 of these two rows on QMUL-Shoe only (`sbir_lib.experiments.runner.keeps_weights`); for another
`dataset` or `seed` the cell below says so and the maps are skipped. We compare Table 4's "Base + attention"
with and without the shortcut, on the centre crops of four test sketches and their edge maps:
"""),
        code("""
models = {name: ctx.trained("table4", ctx.dataset_name, variant)
          for name, variant in (("shortcut", "base+att"), ("no shortcut", "base+att-noshortcut"))}
data = ctx.dataset(ctx.dataset_name)
idx = [0, 1, 2, 3]
crops = {"sketch": AUG.center_crop(data.test.sketches[idx])[:, 0],
         "edge map": AUG.center_crop(data.test.edges[idx])[:, 0]}

@torch.no_grad()
def stages(model, images):
    # conv5 map f, mask alpha and attended map of uint8 crops [B, 225, 225]
    return model.intermediates(AUG.to_input(images))

out = {(m, k): stages(mm[0], x) for m, mm in models.items() if mm is not None for k, x in crops.items()}
print("models loaded:", [m for m, mm in models.items() if mm is not None] or "none (see the commands above)")
"""),
        code("""
if out:
    images, alphas, titles = [], [], []
    for (m, k), o in out.items():
        for j, i in enumerate(idx):
            images.append(crops[k][j]); alphas.append(o["alpha"][j]); titles.append(f"#{i} {k}, {m}")
    fig = P.attention_grid(images, alphas, titles=titles, cols=len(idx), size=1.9)
    P.save_figure(fig, "nb02_attention");
"""),
        md(r"""
Where does each model put its attention: on the strokes of the object, or on the empty background?
Red is high $\alpha$; each map is stretched to its own range (min blue, max red), so a nearly uniform
mask looks as contrasted as a peaked one. How peaked are the masks really (a uniform mask has max $1/49 = 0.020$), and how large is
the attended map relative to the conv5 map, $\lVert f^{att} \rVert / \lVert f \rVert$ (2 for a shortcut
model whose mask were 1 everywhere, 1 for a mask of 0; about $1/49$ without shortcut for a uniform
mask)? Means over the four crops:
"""),
        code("""
import pandas as pd

if out:
    rows = {}
    for (m, k), o in out.items():
        ratio = o["attended"].flatten(1).norm(dim=1) / o["conv5"].flatten(1).norm(dim=1)
        rows[(m, k)] = {"max alpha": float(o["alpha"].flatten(1).max(1).values.mean()),
                        "||f_att|| / ||f||": float(ratio.mean())}
    print(pd.DataFrame(rows).T.round(3).to_string())
"""),
        md(r"""
Without the shortcut the features reaching fc6 are a small, mask-shaped remnant of conv5; with it they
stay close to conv5 while the mask re-weights positions. After the quick profile's 60 training steps
the masks can still be nearly uniform (compare their max with 0.020), so read the maps as a
demonstration of the mechanism; the full-profile maps (the paper's Figure 4) are in notebook 06.

## Tables 3 and 4: ours beside the paper

Table 3 trains each row of the ablation with and without attention, Table 4 each row with and without
the shortcut (acc@1, percent), on this notebook's `dataset` (QMUL-Shoe by default). `ctx.compare` reads
(or, if missing in the quick profile, trains) our runs and puts the paper's numbers beside them.
"""),
        code("""
t3 = ctx.compare("table3", ctx.dataset_name)
print(t3.attrs["note"])
print(t3.round(2).to_string(index=False))
"""),
        code("""
t4 = ctx.compare("table4", ctx.dataset_name)
print(t4.round(2).to_string(index=False))
"""),
        md(r"""
**Reading these numbers.** The paper's runs fine-tune a pretrained Sketch-a-Net for 20,000 iterations
of 128 triplets and test on 10 views; quick-profile runs train 60 iterations of 16 triplets from scratch
and test on the centre crop, so their accuracies are **not comparable** with the paper's, and with 115
queries and one seed, differences of a few points between quick rows are noise (one query = 0.87
points). The comparison that matters is the full profile's (notebook 05, averaged over three seeds).

## Summary

- Eq. 2 scores each of the 49 conv5 positions with a small shared network, Eq. 3 turns the scores into
  a mask that sums to 1, Eq. 4 adds the masked map to the original one.
- Without the shortcut the mask multiplies the features by ~1/49 on average and erases what it does not
  select; the paper's Table 4 shows accuracy collapsing without it.

Next: **03 · coarse-fine fusion**, which feeds the attention-pooled conv5 features straight into the
embedding.
"""),
    ]
    return cells


# ======================================================================================================
# 03 coarse-fine fusion
# ======================================================================================================
def nb03():
    cells = preamble("03 · Coarse-fine fusion (CFF)", params=("dataset", "seed", "seeds"), intro=r"""
Triplet SN embeds an image by its fc7 output: a summary of the whole conv5 map, squeezed through two
fully connected layers. That summary is good at the *coarse* shape (a boot vs a sandal) and poor at the
*fine* local details that separate two similar boots. DSSA's **coarse-fine fusion** concatenates fc7
with the attended conv5 map summed over positions, so the embedding keeps both. This notebook builds the fused
embedding, then asks the recorded runs which queries it fixes and which it breaks.
""")
    cells += [
        md(r"""
## The fused embedding

With $f_{ij}$ the conv5 feature vector at position $(i, j)$ of the 7 x 7 map and $\alpha_{ij}$ the
attention mask (notebook 02),

$$\underbrace{h = \mathrm{fc7}\bigl(\mathrm{fc6}(f^{att})\bigr)}_{\text{coarse, 256-d}}, \qquad
\underbrace{g = \sum_{i,j} f^{att}_{ij} = \sum_{i,j} \bigl(f_{ij} + \alpha_{ij} f_{ij}\bigr)}_{\text{fine, 256-d}}, \qquad
F_\theta(x) = \Bigl[\tfrac{h}{\lVert h \rVert},\ \tfrac{g}{\lVert g \rVert}\Bigr] \in \mathbb{R}^{512}.$$

This is exactly what the authors' code computes (`tf.reduce_sum(conv5 + conv5 * mask)`, Deep_SBIR_tf
`triplet_sbir_train.py` lines 71-74): the attended map *with its shortcut*, summed over the 49 positions.
Without the shortcut (Table 4's other column) it is $\sum_{ij} \alpha_{ij} f_{ij}$. The fine vector
has one value per channel, taken straight from the convolutional layers: nothing has to survive fc6's
compression of 12,544 numbers into 512.
Each half is L2-normalised, so the two contribute equally to the squared distance
($\lVert F(s) - F(p) \rVert^2 = \lVert \hat h_s - \hat h_p \rVert^2 + \lVert \hat g_s - \hat g_p \rVert^2$,
each term in $[0, 4]$). Without attention (the `base+cff` variant) $g$ is the plain sum of conv5 over
the 49 positions (after normalisation the same as its average). The stages of `sbir_lib.models.dssa.DSSANet("base+att+cff")` on a batch of two inputs:
"""),
        code("""
import pandas as pd
import torch

from sbir_lib.core import plotting as P
from sbir_lib.metrics import retrieval as M
from sbir_lib.models import dssa as MD

torch.manual_seed(0)
net = MD.DSSANet("base+att+cff").eval()
with torch.no_grad():
    out = net.intermediates(torch.randn(2, 1, 225, 225))
for k, v in out.items():
    print(f"{k:10s} {tuple(v.shape)}")
emb = out["embedding"]
print("norms of the coarse half:", emb[:, :256].norm(dim=1).round(decimals=4).tolist(),
      " fine half:", emb[:, 256:].norm(dim=1).round(decimals=4).tolist())
""", check=True),
        md("**The code.** The fusion in `DSSANet.intermediates_from`, after the attention and the fc layers:"),
        code("""
from sbir_lib.course.context import show_source

show_source(MD.DSSANet.intermediates_from, "if self.config.cff:", 'out["embedding"] = torch.cat')
"""),
        exercise(r"""
Rebuild the fused embedding from the stages in `out` (the cell above): L2-normalise `fc7`, sum the attended
map `attended` over its 7 x 7 positions and L2-normalise it, concatenate; check it against
`out["embedding"]`.
"""),
        solution("""
import torch.nn.functional as F

coarse = F.normalize(out["fc7"], dim=1)
fine = F.normalize(out["attended"].sum(dim=(2, 3)), dim=1)
mine = torch.cat([coarse, fine], dim=1)
assert mine.shape == (2, 512) and torch.allclose(mine, out["embedding"], atol=1e-6)
print("fused embedding rebuilt:", tuple(mine.shape))
"""),
        exercise(r"""
Because each half is unit-length, the squared distance of two fused embeddings splits into a coarse and a
fine term, each between 0 and 4. Check the split, and the bounds, on the two embeddings of `out`.
"""),
        solution("""
e0, e1 = out["embedding"]
d_all = float((e0 - e1).pow(2).sum())
d_coarse, d_fine = float((e0[:256] - e1[:256]).pow(2).sum()), float((e0[256:] - e1[256:]).pow(2).sum())
assert abs(d_all - (d_coarse + d_fine)) < 1e-5 and 0 <= d_coarse <= 4 and 0 <= d_fine <= 4
print(f"D = {d_all:.4f} = coarse {d_coarse:.4f} + fine {d_fine:.4f}")
"""),
        md(r"""
## Table 2 (and Table 3's no-attention CFF row)

On this notebook's `dataset` (QMUL-Shoe by default), three runs answer the question: `base` (Triplet SN: fc7 only), `base+att+cff` (Table 2's "Base + CFF",
with attention) and `base+cff` (Table 3's "Base + CFF" without attention, i.e. conv5 summed over positions).
Ours beside the paper (percent):
"""),
        code("""
t2 = ctx.compare("table2", ctx.dataset_name, keys=["base", "base+att+cff"])
print(t2.attrs["note"])
print(t2.round(2).to_string(index=False))
t3 = ctx.compare("table3", ctx.dataset_name, keys=["cff"])
print(t3.round(2).to_string(index=False))
"""),
        md(r"""
Quick-profile accuracies come from 60 training steps from scratch on one seed, tested on the centre
crop: they are not comparable with the paper's, and with 115 queries (QMUL-Shoe) one query is 0.87 points.

## Which queries does CFF fix, and which does it break?

Accuracy hides how many queries moved. Each run saved its test distance matrix; from it we get every
query's rank of the true match (0 = first) under each model and compare them query by query:
"""),
        code("""
runs = {"base": ("table2", "base"), "base+att+cff": ("table2", "base+att+cff"), "base+cff": ("table3", "base+cff")}
dists = {name: ctx.distances(exp, ctx.dataset_name, v, partial=True) for name, (exp, v) in runs.items()}
dists = {k: d for k, d in dists.items() if d is not None}
ranks = pd.DataFrame({k: M.rank_of_true_match(d) for k, d in dists.items()})
if {"base", "base+att+cff"} <= set(ranks):
    moves = {}
    for cff in [c for c in ("base+att+cff", "base+cff") if c in ranks]:
        b, c = ranks["base"], ranks[cff]
        moves[f"{cff} vs base"] = {
            "rank improved": (c < b).sum(), "rank worse": (c > b).sum(), "same": (c == b).sum(),
            "fixed @1 (now first)": ((b > 0) & (c == 0)).sum(), "broken @1": ((b == 0) & (c > 0)).sum(),
            "fixed @10": ((b >= 10) & (c < 10)).sum(), "broken @10": ((b < 10) & (c >= 10)).sum()}
    print(pd.DataFrame(moves).astype(int).to_string())
else:
    print("runs missing: see the commands above")
"""),
        md(r"""
"Fixed @1" counts queries whose true match was not first under `base` and is first with CFF; "broken
@1" the reverse. A change in acc@1 is (fixed - broken) / Q (Q test queries, 115 on QMUL-Shoe): a net change of a few queries can hide
many more moves in both directions, which is why single-seed comparisons are fragile. The rank of
every query under both models (log scale; points below the diagonal are improved by CFF):
"""),
        code("""
import matplotlib.pyplot as plt

if {"base", "base+att+cff"} <= set(ranks):
    fig, ax = plt.subplots(figsize=(3.8, 3.6))
    ax.scatter(ranks["base"] + 1, ranks["base+att+cff"] + 1, s=10, alpha=0.6)
    lim = [1, len(ranks) + 1]
    ax.plot(lim, lim, color="grey", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="rank + 1, base (fc7 only)", ylabel="rank + 1, base+att+cff")
    ax.set_title(f"{ctx.dataset_key(ctx.dataset_name)} test queries, {ctx.profile} profile", fontsize=9)
    fig.tight_layout()
    P.save_figure(fig, "nb03_ranks");
"""),
        md(r"""
Two queries CFF fixed the most and one it broke the most, with the five nearest photos under each model
(true match outlined):
"""),
        code("""
if {"base", "base+att+cff"} <= set(ranks):
    gain = ranks["base"] - ranks["base+att+cff"]
    order = gain.sort_values(kind="stable")
    show = [int(q) for q in order.index[::-1][:2]] + [int(order.index[0])]
    print({q: {"base": int(ranks.loc[q, "base"]), "base+att+cff": int(ranks.loc[q, "base+att+cff"])} for q in show})
    data = ctx.dataset(ctx.dataset_name)
    gallery = data.test.photos if data.test.photos is not None else data.test.edges
    fig = P.retrieval_rows(data.test.sketches, gallery,
                           {"base": dists["base"], "base+att+cff": dists["base+att+cff"]}, show, k=5)
    P.save_figure(fig, "nb03_fixed_broken");
"""),
        md(r"""
## Summary

- CFF = [fc7 / ||fc7||, attention-pooled conv5 / ||.||]: a 512-d embedding whose fine half bypasses
  fc6 and keeps per-channel local evidence.
- In the paper, CFF is the largest single gain of Table 2 on all three datasets (the rows printed above).
- Per-query ranks show how many queries a component fixes and breaks; with small test sets and one
  seed, a net accuracy difference is a small difference of two large numbers.

Next: **04 · HOLEF**, a learned distance that compares every feature of the sketch with every feature
of the photo.
"""),
    ]
    return cells


# ======================================================================================================
# 04 HOLEF
# ======================================================================================================
def nb04():
    cells = preamble("04 · HOLEF: a higher-order learnable energy function", params=("dataset", "seed", "seeds"),
                     intro=r"""
The triplet loss of notebook 01 compares a sketch embedding and a photo embedding dimension by
dimension: $\sum_i (s_i - p_i)^2$. If a sketch's evidence lands in a *different* dimension than the
photo's (the sketch is misaligned, so a feature fires in a neighbouring channel or position), that
distance cannot forgive it. DSSA's **HOLEF** compares *every* dimension of the sketch with *every*
dimension of the photo, with learned weights. This notebook works through Eqs. 5-7 on small numbers,
compares the losses of the paper's Table 5, and looks at a learned weight matrix.
""")
    cells += [
        md(r"""
## Outer subtraction (Eq. 5)

For two $d$-dimensional embeddings $s = F_\theta(s)$ and $p = F_\theta(p)$, the outer subtraction is the
$d \times d$ matrix of all pairwise differences,

$$(s \ominus p)_{ij} = s_i - p_j .$$

Its diagonal holds the usual element-wise differences $s_i - p_i$; the off-diagonal entries compare
dimension $i$ of the sketch with dimension $j \ne i$ of the photo. With $d = 3$:
"""),
        code("""
import pandas as pd
import torch

from sbir_lib.core import plotting as P
from sbir_lib.losses import losses as L

s = torch.tensor([1.0, 2.0, 3.0])
p = torch.tensor([1.0, 0.0, 2.0])
outer = s[:, None] - p[None, :]
print("s (-) p =\\n", outer.numpy())
print("squared =\\n", (outer ** 2).numpy())
""", check=True),
        md(r"""
## The HOLEF energy (Eq. 6)

The energy weights every squared entry with a learned matrix $W \in \mathbb{R}^{d \times d}$:

$$D_W(s, p) = \sum_{i,j} W_{ij}\,(s_i - p_j)^2 .$$

With $W = I$ only the diagonal survives and $D_I(s, p) = \sum_i (s_i - p_i)^2$, the squared Euclidean
distance of Triplet SN. So HOLEF *starts* as the Euclidean triplet loss (we initialise $W = I$) and
learns how much cross-dimension differences should count. `sbir_lib.losses.losses.holef_distance` never builds
the $d \times d$ matrix; it expands the square,
$D_W(s,p) = (s \circ s)^\top W \mathbf{1} + \mathbf{1}^\top W (p \circ p) - 2\, s^\top W p$
(two matrix-vector products and one bilinear form). Checked on the example above and on random data
against the literal Eq. 6 (`holef_distance_naive`):
"""),
        code("""
S, Pp = s[None], p[None]
print("D_I(s, p)              =", float(L.holef_distance(S, Pp, torch.eye(3))))
print("squared Euclidean      =", float(L.squared_euclidean(S, Pp)))
W = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
print("D_W(s, p), W_12 = 0.5  =", float(L.holef_distance(S, Pp, W)), " (adds 0.5 * (s_1 - p_2)^2 = 0.5 * 1)")
g = torch.Generator().manual_seed(0)
a, b, Wr = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g), torch.randn(16, 16, generator=g)
print("expanded == literal Eq. 6 on random data:",
      torch.allclose(L.holef_distance(a, b, Wr), L.holef_distance_naive(a, b, Wr), atol=1e-4))
""", check=True),
        md("**The code.** `holef_distance`, the energy every HOLEF run trains and ranks with (a batch of pairs):"),
        code("""
from sbir_lib.course.context import show_source

show_source(L.holef_distance, "row = w.sum")
"""),
        exercise(r"""
Write Eqs. 5-6 literally for a batch: build the outer subtraction $[N, d, d]$ with broadcasting
(`s[:, :, None] - p[:, None, :]`), square it, weight it by $W$ and sum. Check your energy against
`L.holef_distance` on the random `a`, `b`, `Wr` above, and check that $W = I$ gives the squared Euclidean
distance.
"""),
        solution("""
def my_holef(s_, p_, w_):
    outer = s_[:, :, None] - p_[:, None, :]  # [N, d, d], entry (i, j) = s_i - p_j  (Eq. 5)
    return (outer.pow(2) * w_).sum(dim=(1, 2))  # Eq. 6

assert torch.allclose(my_holef(a, b, Wr), L.holef_distance(a, b, Wr), atol=1e-4)
assert torch.allclose(my_holef(a, b, torch.eye(16)), L.squared_euclidean(a, b), atol=1e-5)
print("literal Eq. 6 == holef_distance; W = I gives the squared Euclidean distance")
"""),
        md(r"""
## The HOLEF triplet loss and its regulariser (Eq. 7)

$$\mathcal{L}_\theta(s, p^+, p^-) = \max\bigl(0,\ \Delta + D_W(s, p^+) - D_W(s, p^-)\bigr)
+ \lambda \lVert W - I \rVert_1 + \lambda \lVert W - I \rVert_F .$$

For the 512-d CFF embedding, $W$ has 262,144 free parameters. The regulariser keeps it near the identity
(the Euclidean distance it starts from): the $\ell_1$ term makes most deviations exactly small/sparse,
the Frobenius term penalises large ones. The paper does not give $\lambda$; ours is
`sbir_lib.losses.losses.DEFAULT_REG_LAMBDA`. On the 3 x 3 example:
"""),
        code("""
W2 = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [-0.2, 0.0, 1.1]])
dev = W2 - torch.eye(3)
print("W - I =\\n", dev.numpy().round(4))
print("||W - I||_1 =", round(float(dev.abs().sum()), 4), "  ||W - I||_F =", round(float(torch.linalg.norm(dev)), 4))
lam = L.DEFAULT_REG_LAMBDA
print(f"lambda = {lam}:  penalty = lambda * (0.8 + 0.5477) =", round(float(L.identity_penalty(W2, lam)), 8))
""", check=True),
        exercise(r"""
(a) Compute the penalty of Eq. 7 for `W2` yourself, with `abs().sum()` and `torch.linalg.norm`, and check
it against `L.identity_penalty`. (b) A *diagonal* $W = \mathrm{diag}(w)$ turns HOLEF into the weighted
Euclidean distance $\sum_i w_i (s_i - p_i)^2$ of Table 5: check it with the weights of a
`L.WeightedEuclideanEnergy(16)` (its `weights`) and its `paired` distance on `a`, `b`.
"""),
        solution("""
mine = lam * ((W2 - torch.eye(3)).abs().sum() + torch.linalg.norm(W2 - torch.eye(3)))
assert torch.allclose(mine, L.identity_penalty(W2, lam))
we = L.WeightedEuclideanEnergy(16)
with torch.no_grad():
    assert torch.allclose(L.holef_distance(a, b, torch.diag(we.weights)), we.paired(a, b), atol=1e-5)
print(f"penalty {float(mine):.8f}; diagonal HOLEF == weighted Euclidean")
"""),
        md(r"""
Note that $W$ is unconstrained (as in the paper): a learned $D_W$ is an energy to rank by, not a metric,
and it can even be negative for some pairs. Table 5 compares it with two better-behaved learned
distances on the same attention + CFF model: a **weighted Euclidean** distance
$\sum_i w_i (s_i - p_i)^2$ (a diagonal $W$, $w_i > 0$) and a **Mahalanobis** distance
$(s - p)^\top M (s - p)$ with $M = L L^\top \succeq 0$ (`sbir_lib.losses.losses.WeightedEuclideanEnergy`,
`MahalanobisEnergy`), all regularised towards the identity in the same way.

## Table 5: ours beside the paper

On this notebook's `dataset` (QMUL-Shoe by default):
"""),
        code("""
from sbir_lib.report import tables as TB

t5 = ctx.compare("table5", ctx.dataset_name)
display(TB.styled(t5, 2, caption=t5.attrs["note"], index=False,
                  note="no number: the paper has none for this data (synthetic stand-in), or the run is not recorded"))
n_gallery = len(ctx.dataset(ctx.dataset_name).test)
print(f"chance level (random ranking of {n_gallery} edge maps): acc@1 = {100 / n_gallery:.2f}%, "
      f"acc@10 = {100 * min(10, n_gallery) / n_gallery:.2f}%")
"""),
        md(r"""
Quick-profile numbers come from a short run from scratch, one seed, centre crop: they are not
comparable with the paper's. Compare each row with chance instead: a row near chance has learned
little within the quick budget. The learned energies add parameters (262,144 for HOLEF's $W$, 512 for
the weighted Euclidean, 262,144 for the Mahalanobis $L$) that must be trained in the same few steps as
the network. The training losses of the four runs:
"""),
        code("""
import matplotlib.pyplot as plt

from sbir_lib.models import dssa as MD

recs = {key: ctx.record("table5", ctx.dataset_name, v, partial=True) for key, v in MD.TABLE_ROWS["table5"].items()}
if any(r is not None for r in recs.values()):
    fig, ax = plt.subplots(figsize=(5, 3))
    for key, r in recs.items():
        if r is not None:
            P.plot_history(ax, r["history"], label=key)
    ax.set_title(f"training loss, table5 runs ({ctx.profile} profile)", fontsize=9)
    fig.tight_layout()
    P.save_figure(fig, "nb04_losses");
"""),
        md(r"""
The full profile's comparison, over three seeds, is in notebook 05.

## The learned W

The runner keeps the trained energy of seed 0 of the `full` model (attention + CFF + HOLEF; for another
`seed` there is none), so we can look at $W - I$. The embedding's first 256 dimensions are the coarse fc7 half, the last 256 the fine
conv5 half (notebook 03):
"""),
        code("""
trained = ctx.trained("table5", ctx.dataset_name, "full")
if trained is None:
    print("no kept weights for this profile: see the command above")
else:
    Wl = trained[1].W.detach().double()
    Dv = Wl - torch.eye(Wl.shape[0], dtype=Wl.dtype)
    h = Wl.shape[0] // 2
    blocks = {(r, c): float(Dv[rs, cs].abs().mean()) for r, rs in (("coarse", slice(0, h)), ("fine", slice(h, None)))
              for c, cs in (("coarse", slice(0, h)), ("fine", slice(h, None)))}
    print(f"W: {tuple(Wl.shape)}, ||W - I||_1 = {float(Dv.abs().sum()):.4f}, ||W - I||_F = {float(torch.linalg.norm(Dv)):.4f},"
          f" max |W - I| = {float(Dv.abs().max()):.2e}")
    print("diagonal entries that moved:", int((Dv.diagonal() != 0).sum()), "of", Wl.shape[0])
    rs, cs = Wl.sum(1), Wl.sum(0)
    print(f"row sums of W (weights of s_i^2): {float(rs.min()):.3f} .. {float(rs.max()):.3f};"
          f"  column sums (weights of p_j^2): {float(cs.min()):.3f} .. {float(cs.max()):.3f}  (all 1 for W = I)")
    print("mean |W - I| per block (rows: sketch half, columns: photo half):")
    print(pd.Series(blocks).unstack().to_string(float_format=lambda v: f"{v:.2e}"))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    P.matrix_heatmap(axes[0], Dv, title=f"W - I (all {Wl.shape[0]} dims), {ctx.profile} profile")
    P.matrix_heatmap(axes[1], Dv[:32, :32], title="W - I, first 32 dims (coarse half)")
    fig.tight_layout()
    P.save_figure(fig, "nb04_learned_w");
"""),
        md(r"""
Each entry of $W - I$ is small, but the expanded form of Eq. 6 weights $s_i^2$ by the *row sum*
$\sum_j W_{ij}$ and $p_j^2$ by the *column sum* $\sum_i W_{ij}$, each a sum of 512 entries: many small
changes in the same direction can move them far from 1 (compare the printed ranges), and then $D_W$ is no
longer close to the Euclidean distance it started from. This is why the regulariser of Eq. 7 matters,
and why a learned $d \times d$ energy needs a careful learning rate.

The weights are kept in bfloat16 to keep the files small. Near 1 bfloat16 can only represent steps of
$2^{-8}$ to $2^{-7}$ (0.004-0.008), so small changes of the *diagonal* are rounded away in the stored
$W$; the off-diagonal entries, near 0, keep their relative precision. The off-diagonal pattern is what
HOLEF adds over a (weighted) Euclidean distance.

## Summary

- Eq. 5: the outer subtraction compares every sketch dimension with every photo dimension.
- Eq. 6: $D_W = \sum_{ij} W_{ij}(s_i - p_j)^2$; $W = I$ is exactly the squared Euclidean distance, so
  HOLEF starts from Triplet SN's loss and learns cross-dimension terms.
- Eq. 7: the triplet hinge on $D_W$ plus $\lambda(\lVert W - I \rVert_1 + \lVert W - I \rVert_F)$ keeps $W$
  near the identity. In the paper's Table 5 (printed above) HOLEF beats the Euclidean, weighted
  Euclidean and Mahalanobis losses on the same attention + CFF model.

Next: **05** reproduces all five tables of the paper, **06** its figures.
"""),
    ]
    return cells


NOTEBOOKS = {
    "00": ("00_data_and_domain_gap", nb00),
    "01": ("01_triplet_loss", nb01),
    "02": ("02_spatial_attention", nb02),
    "03": ("03_coarse_fine_fusion", nb03),
    "04": ("04_holef", nb04),
}


if __name__ == "__main__":  # python tools/nb_00_04.py [NN ...] [--check | --fresh]: nbgen for these notebooks
    import nbgen

    raise SystemExit(nbgen.main(default=list(NOTEBOOKS)))
