# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · The data and the sketch–photo domain gap
#
# *Source: `notebooks/00_data_and_domain_gap.py`, paired with this notebook by jupytext (JupyterLab with jupytext saves both); after editing the `.py`, run `python tools/nbsync.py`.*
#
# This course teaches **fine-grained sketch-based image retrieval (FG-SBIR)**: given a free-hand sketch
# of *one particular* shoe, find *that* shoe among photos of similar shoes. We follow DSSA (Song et al.,
# *Deep Spatial-Semantic Attention for Fine-Grained Sketch-Based Image Retrieval*, ICCV 2017) step by step:
#
# | notebook | idea |
# |---|---|
# | **00** (this one) | the QMUL data, the human annotations, the sketch vs edge-map domain gap, training triplets |
# | 01 | Triplet SN: a siamese Sketch-a-Net trained with a triplet loss; acc@K |
# | 02 | spatial attention with a shortcut (Eqs. 2-4) |
# | 03 | coarse-fine fusion (CFF) |
# | 04 | HOLEF, the higher-order learnable energy function |
# | 05, 06 | the paper's tables and figures, reproduced |
#
# **Conventions.** Every notebook starts with the cell below tagged `parameters`: `profile` is `quick`
# (tiny training runs that finish in minutes on a laptop CPU; they show every mechanism working, but their
# accuracies are *not* comparable with the paper's) or `full` (the authors' recipe, on a GPU; without a GPU a
# full-profile notebook trains nothing and shows what is recorded). The lecture notebooks 01-04 and 06 also take
# `dataset` (`shoes`, `chairs` or `handbags`), `seed` and `seeds`. Batch runs set them with papermill
# (`papermill -p profile full -p dataset chairs ...`, or `python -m sbir_lib.course run --profile quick`);
# left at `None`, each reads its environment variable (`$SBIR_PROFILE`, `$SBIR_DATASET`, ...), else its default.
# `ctx = course.setup(...)` then checks every value (a typo is refused, naming the allowed values), picks the
# device, seeds everything, and gives three helpers:
# `ctx.dataset(name)` (the real data, or a synthetic stand-in with a visible note when it is not
# downloaded), `ctx.record(experiment, dataset, variant)` (a recorded training run from `results/`,
# trained now only if it is missing) and `ctx.compare(...)` (our runs beside the paper's numbers).
# All the logic lives in the library `sbir_lib`; the notebooks call it, and each shows the few library
# lines that carry its idea (printed from the code that runs, with file and line numbers). Each ends its
# sections with small **exercises**; their worked solutions are collapsed cells (click to expand) that check
# themselves with an `assert`.

# %% tags=["parameters"]
# Parameters (papermill: -p profile full). None: the environment variable, else the default;
# course.setup checks them all before anything runs.
profile = None  # quick | cpu | full                ($SBIR_PROFILE; default quick)

# %%
from sbir_lib import course

ctx = course.setup(profile)

# %% [markdown]
# ## The three QMUL datasets
#
# Each dataset is a set of **instances**; an instance has a free-hand *sketch*, an *edge map* of its
# product photo, and (shoes and chairs) the RGB *photo*. Row `i` of the sketch array and row `i` of the
# edge-map array are the same instance: the sketch's **true match**. The network never sees the RGB
# photos: its photo branch sees the edge maps (we show the photos only to help the eye).
# Get the data with `python data_download.py --all`.

# %%
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

# %%
# NBVAL_CHECK_OUTPUT
counts = pd.DataFrame([
    {"dataset": name, "train pairs": len(ds.train), "test pairs": len(ds.test),
     "image": "x".join(map(str, ds.train.sketches.shape[1:])),
     "RGB photos": ds.train.photos is not None, "triplet annotation": ds.train.triplets is not None}
    for name, ds in datasets.items()]).set_index("dataset")
print(counts.to_string())

# %% [markdown]
# Small test sets (115, 97 and 168 queries) mean one query is worth 0.87, 1.03 and 0.60 points of
# accuracy: differences of a few points between methods are within the noise of a single run.
#
# Three test instances of each dataset (photo, edge map, sketch):

# %%
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

# %% [markdown]
# Handbags have no RGB photos upstream (the authors released only the edge maps), so that cell stays empty.
#
# ## What the human triplet annotations say
#
# For shoes and chairs, people were shown a query sketch and pairs of candidate photos and asked which
# one looks more like the sketch. `split.triplets[i]` lists, for query sketch `i`, the judged
# `(more_similar, less_similar)` photo pairs (0-based indices within the split). Training samples its
# (positive, negative) photos from these pairs. How often is the "more similar" photo the query's own
# photo?

# %%
# NBVAL_CHECK_OUTPUT
ann = pd.DataFrame([{"split": f"{name} {split}", **G.annotation_statistics(getattr(ds, split))}
                    for name, ds in datasets.items() if ds.train.triplets is not None
                    for split in ("train", "test")]).set_index("split")
print(ann.round(3).to_string())

# %% [markdown]
# Every query's pairs are built from 10 photos, its true match among them; each test query has all
# $\binom{10}{2}=45$ pairs and each training query 135 judgements (45 pairs, three times). The true match
# is the "more similar" photo in only about **19%** of the pairs (`more_is_true_match`): the annotation
# encodes *perceived similarity among look-alikes*, not identity. Now and then people even prefer
# another shoe over the true one (`less_is_true_match`). One test query, its 10 annotated photos ordered by
# how often they won their comparisons (the true match outlined in green):

# %%
# NBVAL_CHECK_OUTPUT
shoes = datasets[ctx.dataset_key("shoes")]
q = 0
prefs = G.annotation_preferences(shoes.test, q)
print(prefs.to_string(index=False))

# %%
gallery = shoes.test.photos if shoes.test.photos is not None else shoes.test.edges
imgs = [shoes.test.sketches[q]] + [gallery[p] for p in prefs.photo]
tit = [f"query #{q}"] + [f"{w} won, {l} lost" for w, l in zip(prefs.wins, prefs.losses)]
out = [None] + ["limegreen" if t else None for t in prefs.true_match]
fig = P.image_grid([imgs], titles=[tit], outlines=[out], size=1.5)
P.save_figure(fig, "nb00_annotation");

# %% [markdown]
# ## The domain gap between sketches and edge maps
#
# Both domains are dark lines on white, so why not compare pixels? Because a sketch is drawn from
# memory: a few long, confident strokes, placed and scaled freely, details exaggerated or left out.
# An edge detector instead traces every contrast boundary of the photo, in short broken fragments, at
# the photo's exact position. `sbir_lib.report.domain_gap` measures this on the test sets: the ink density
# (fraction of pixels darker than 128), the number of 8-connected ink components, the ink pixels per
# component, and the ink's bounding box (as a fraction of the image). Medians:

# %%
# NBVAL_CHECK_OUTPUT
summary = G.domain_summary({name: ds.test for name, ds in datasets.items()})
print(summary.round(3).to_string())

# %% [markdown]
# Similar amounts of ink, but organised differently: edge maps break into many more, much smaller pieces
# than sketches. And a sketch does not sit where its photo's edges are. The distance between the ink
# centroids of each sketch and its own edge map (pixels of the 256 x 256 image), and the ratio of their
# bounding-box diagonals (above 1: drawn larger):

# %%
# NBVAL_CHECK_OUTPUT
offsets = pd.DataFrame({name: G.pair_offsets(ds.test.sketches, ds.test.edges).median()
                        for name, ds in datasets.items()}).T.add_prefix("median ")
print(offsets.round(2).to_string())

# %%
rows, titles = [], []
for name, ds in datasets.items():
    rows.append([P.ink_overlay(ds.test.sketches[i], ds.test.edges[i]) for i in range(4)])
    titles.append([f"{name} #{i}" for i in range(4)])
fig = P.image_grid(rows, titles=titles, size=1.8)
P.save_figure(fig, "nb00_overlay");

# %% [markdown]
# Sketch ink in red on its own edge map in grey: the outline is roughly right, but shifted, rescaled and
# simplified. This misalignment is what the DSSA paper's Figure 1 calls the domain gap, and what its
# HOLEF energy (notebook 04) is designed to tolerate.
#
# **Does the true match stand out without learning?** We compare every test sketch with every test edge
# map under two hand-made distances: the squared distance between Dense-HOG descriptors (gradient
# orientation histograms, the classical features of the paper's Table 1) and the symmetric *chamfer*
# distance (mean pixel distance from each ink pixel to the nearest ink pixel of the other image).
# `d_true` is the mean distance of a sketch to its own edge map, `d_other` to the others; `ratio` would be
# 0 with no domain gap and 1 if the true match looked like any other item; `acc@1`/`acc@10` are the
# fractions of queries whose true match ranks first / in the top 10 when retrieving by that distance.

# %%
gap = {}
for name, ds in datasets.items():
    gap[(name, "Dense-HOG")] = G.true_vs_random(G.hog_distance_matrix(ds.test.sketches, ds.test.edges))
    gap[(name, "chamfer (px)")] = G.true_vs_random(G.chamfer_matrix(ds.test.sketches, ds.test.edges))
gap = pd.DataFrame(gap).T
gap.index.names = ["dataset", "distance"]
print(gap.round(3).to_string())

# %% [markdown]
# The true match is closer than a typical photo (ratio well below 1), but far from identical (ratio well
# above 0): with 97-168 look-alike candidates, hand-made distances rank it first only for a minority of
# queries (compare the table above with the paper's Table 1 classical rows, reproduced in notebook 05).
# Learning an embedding in which sketch and edge map of one instance meet is the job of the rest of the
# course.
#
# ## How training triplets are drawn
#
# Training shows the network triplets (anchor sketch $s$, positive photo $p^+$, negative photo $p^-$) and
# asks that $p^+$ be closer to $s$ than $p^-$ (notebook 01). `sbir_lib.data.samplers.TripletSampler` follows the
# authors' recipe: the anchors cycle through all training sketches in a shuffled order; $(p^+, p^-)$ is a
# random annotated `(more_similar, less_similar)` pair of the anchor; with probability 0.25 the negative
# is replaced by a random photo that appears in none of the anchor's pairs. Without an annotation
# (handbags) the positive is the true match and the negative a random other photo. Four triplets of
# shoes (the photo branch sees edge maps):

# %%
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


# %% [markdown]
# Over 20 epochs of anchors, how often is the positive the true match, and the negative from the annotation?

# %%
def sampler_stats(split, epochs=20, seed=0):
    s = samplers.TripletSampler(split, seed=seed)
    a, p, n = s.sample(epochs * len(split))
    return {"positive is true match": float((p == a).float().mean()),
            "negative from annotation": float(s.last_hard.float().mean()),
            "negative is true match": float((n == a).float().mean())}

print(pd.DataFrame({name: sampler_stats(ds.train) for name, ds in datasets.items()}).round(3).to_string())

# %% [markdown]
# With the annotation, only about one positive in five is the true match: the loss mostly teaches
# *relative* similarity among look-alikes. Handbags (no annotation) always use the true match.
#
# **The code.** The heart of `TripletSampler.sample`, for an annotated dataset: one random annotated pair
# `k` per anchor gives the positive and the "hard" negative; with probability `1 - hard_prob` the negative
# is a random photo from outside the anchor's pairs instead. Every choice is a tensor operation over the
# whole batch (`torch.where`), no Python loop per triplet:

# %%
from sbir_lib.course.context import show_source

show_source(samplers.TripletSampler.sample, 'if self.positives == "annotated":', "self.last_hard = use_hard & has")

# %% [markdown] tags=["exercise"]
# **Exercise.** Draw 20 epochs of shoes triplets with another seed and check the sampler's promises with
# `sampler.is_annotated(anchors, photos)` (does the photo appear in any annotated pair of the anchor?):
# every positive is the anchor's own photo or an annotated one; every negative flagged `last_hard` comes from
# the annotation; every other negative comes from *outside* the anchor's pairs.

# %% tags=["solution"] jupyter={"source_hidden": true}
s2 = samplers.TripletSampler(shoes.train, seed=1)
a2, p2, n2 = s2.sample(20 * len(shoes.train))
hard2 = s2.last_hard
assert bool(((p2 == a2) | s2.is_annotated(a2, p2)).all())
assert bool(s2.is_annotated(a2[hard2], n2[hard2]).all())
assert not bool(s2.is_annotated(a2[~hard2], n2[~hard2]).any())
print(f"{len(a2)} triplets: {float(hard2.float().mean()):.2f} with an annotated negative")

# %% [markdown]
# ## Augmentation on the device, and the 10 test views
#
# Training crops a random 225 x 225 window out of the 256 x 256 image (an independent offset per image)
# and mirrors it with probability 1/2. `sbir_lib.data.augment.augment` does this for a whole batch as one gather on
# whatever device the batch lives on (the images stay on the GPU; no per-image Python loop). Six
# augmentations of one training sketch:

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
batch = shoes.train.sketches[:1].repeat(6, 1, 1)  # [6, 256, 256] uint8
aug = AUG.augment(batch, generator=g)             # [6, 1, 225, 225]
print(tuple(batch.shape), batch.dtype, "->", tuple(aug.shape), aug.dtype)

# %%
fig = P.image_grid([[batch[0]] + list(aug)], titles=[["original 256"] + [f"crop {i}" for i in range(6)]],
                   size=1.5)
P.save_figure(fig, "nb00_augment");

# %% [markdown]
# At test time the full profile averages the distances over **10 views** of every sketch and edge map (the
# four corner crops and the centre crop, each also mirrored; `sbir_lib.data.augment.ten_views`); the quick profile
# uses the centre crop only. Finally `sbir_lib.data.augment.to_input` maps `uint8` to `x/255 - 250.42/255`, the
# scalar mean the authors subtract.

# %%
# NBVAL_CHECK_OUTPUT
views = AUG.ten_views(shoes.test.sketches[:1])  # [10, 1, 1, 225, 225]
x = AUG.to_input(views[:, 0])
print(tuple(views.shape), "->", tuple(x.shape), x.dtype)

# %%
names = ["top-left", "top-right", "bottom-left", "bottom-right", "centre"]
fig = P.image_grid([list(views[:5, 0]), list(views[5:, 0])],
                   titles=[names, [f"{v}, mirrored" for v in names]], size=1.5)
P.save_figure(fig, "nb00_ten_views");

# %% [markdown]
# **The code.** A random crop and flip of a whole batch is one gather (`sbir_lib.data.augment.crop_views`):
# row indices `oy + 0..224` per image, column indices `ox + 0..224`, reversed where the image is mirrored,
# and one advanced-indexing read of the batch:

# %%
show_source(AUG.crop_views, "ar = torch.arange", "return out")

# %% [markdown] tags=["exercise"]
# **Exercise.** Cut the centre 225 x 225 window of two test sketches by plain slicing and check it against
# `AUG.center_crop`; then check that test view `5 + k` of `AUG.ten_views` is view `k` mirrored left-right.

# %% tags=["solution"] jupyter={"source_hidden": true}
imgs = shoes.test.sketches[:2]  # uint8 [2, 256, 256]
o = (256 - 225) // 2
assert torch.equal(imgs[:, o:o + 225, o:o + 225], AUG.center_crop(imgs)[:, 0])
v = AUG.ten_views(imgs)
assert torch.equal(v[4], AUG.center_crop(imgs))
assert all(torch.equal(v[5 + k], v[k].flip(-1)) for k in range(5))
print("centre crop and mirrored views check out")

# %% [markdown] tags=["exercise"]
# **Exercise.** The *ink density* of `sbir_lib.report.domain_gap` is the fraction of pixels darker than `G.INK_THRESHOLD`
# (128). Compute it for the first five test sketches with one tensor expression and check it against the
# `ink` column of `G.stroke_statistics`.

# %% tags=["solution"] jupyter={"source_hidden": true}
imgs = shoes.test.sketches[:5]
ink = (imgs < G.INK_THRESHOLD).double().mean(dim=(1, 2))
assert torch.allclose(ink, torch.tensor(G.stroke_statistics(imgs)["ink"].to_numpy()))
print("ink density:", ink.numpy().round(4))

# %% [markdown]
# ## Summary
#
# - QMUL-Shoe / QMUL-Chair / Handbag: 304/115, 200/97 and 400/168 train/test sketch–edge-map pairs;
#   tiny test sets, so single-run accuracies move in steps of ~1 point.
# - The human annotation ranks look-alikes: only ~19% of "more similar" photos are the true match.
# - Sketches and edge maps differ in stroke structure (few long strokes vs many fragments), position and
#   scale; hand-made distances see the true match as closer than average, yet rarely closest.
# - Training draws (sketch, more-similar, less-similar) triplets, augments them on the device, and tests on
#   the centre crop (quick) or 10 views (full).
#
# Next: **01 · Triplet SN**, the siamese network and the triplet loss that learn the shared embedding.
