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
# # 06 · Figures 4 and 5, and a retrieval explorer
#
# *Source: `notebooks/06_figures.py`, paired with this notebook by jupytext (JupyterLab with jupytext saves both); after editing the `.py`, run `python tools/nbsync.py`.*
#
# The paper has two qualitative figures. **Figure 4** shows the attention masks of the trained model over
# sketch–photo pairs; **Figure 5** shows the top-10 retrievals of DSSA next to those of Triplet SN for the same
# query sketch. We rebuild both from our trained runs, add a few numbers that qualitative figures leave out,
# and end with an explorer to look at any query.
#
# Recall the attention module (notebook 02) on the pooled $7 \times 7 \times 256$ conv5 map $f$:
#
# $$s_{ij} = F_{att}(f_{ij}; \mathbf{W}_a), \qquad
# \alpha_{ij} = \frac{\exp(s_{ij})}{\sum_{k,l}\exp(s_{kl})}, \qquad f^{att} = f + \alpha \odot f .$$
#
# $\alpha$ is what Figure 4 draws, upsampled from $7 \times 7$ to the $225 \times 225$ input crop.

# %% tags=["parameters"]
# Parameters (papermill: -p profile full -p dataset chairs -p seed 1). None: the environment variable, else the default;
# course.setup checks them all before anything runs.
profile = None  # quick | cpu | full                ($SBIR_PROFILE; default quick)
dataset = None  # shoes | chairs | handbags | all   ($SBIR_DATASET; default all)
seed = None     # the seed of the runs shown         ($SBIR_SEED; default 0)

# %%
from sbir_lib import course

ctx = course.setup(profile, dataset=dataset, seed=seed, all_datasets=True)

# %%
from sbir_lib.report import figures as FG

# %% [markdown]
# ## Which runs
#
# The figures use seed `seed` (0 by default) of `full` (DSSA) and `base` (Triplet SN) on every category (or
# only `dataset`, when it names one); the runner keeps the weights the masks need for seed 0 only. The `full`-profile runs (the GPU
# reproduction) are used where they are recorded, otherwise this notebook's profile (trained now if missing,
# in the `quick` profile); each line says which. The runner keeps the trained conv1–5 and attention weights of
# `full` for the masks; rankings come from the recorded test distances, exactly those behind the tables.

# %%
srcs = FG.sources(ctx, ctx.datasets, seed=ctx.seed)
for s in srcs.values():
    print(s.describe())
bundles = FG.bundles(ctx, srcs)

# %% [markdown]
# ## Figure 4: attention masks
#
# Three test pairs per category, chosen by a fixed rule (evenly spaced test indices), not picked by eye.
# Each sketch shows its own mask; each photo shows the mask the network computes on its edge map (what
# the photo branch sees), drawn over the RGB photo for shoes and chairs and over the edge map for handbags,
# which have no photos. The upper block draws every mask on one absolute scale (jet: blue low, red high; the
# colour bar gives $\alpha$, and its dashed line is the uniform $1/49$, so a mask close to uniform looks flat, as
# it is). The lower block stretches each mask to its own minimum and maximum: it shows *where* a mask peaks,
# however little it does.

# %%
fig = FG.figure4(bundles, save="fig4_attention")

# %% [markdown]
# A figure shows a handful of pairs; over **all** test pairs: how far from uniform ($1/49$) the masks are, and
# whether a sketch and its own photo attend to the same places (correlation of the two $7 \times 7$ masks)
# more than a sketch and some other photo.

# %%
FG.attention_summary(bundles).round(3)

# %% [markdown]
# **The code.** A mask of Figure 4 is the trained model's $\alpha$ on the centre crop, the test-time view
# (`FG.attention_maps`), then drawn upsampled from $7 \times 7$ to the crop's size:

# %%
from sbir_lib.course.context import show_source

show_source(FG.attention_maps)

# %% [markdown] tags=["exercise"]
# **Exercise.** Whatever its weights, a DSSA model's mask is a probability distribution over the 49 positions. Check it
# on an *untrained* `MD.DSSANet("full")` (seeded) and four random uint8 images of 256 x 256 through
# `FG.attention_maps`: every mask is non-negative and sums to 1; how far is its maximum from uniform ($1/49$)?

# %% tags=["solution"] jupyter={"source_hidden": true}
import torch

from sbir_lib.models import dssa as MD

torch.manual_seed(0)
untrained = MD.DSSANet("full").eval()
imgs = torch.randint(0, 256, (4, 256, 256), dtype=torch.uint8)
al = FG.attention_maps(untrained, imgs)  # numpy [4, 7, 7]
assert al.shape == (4, 7, 7) and (al >= 0).all() and abs(al.sum(axis=(1, 2)) - 1).max() < 1e-5
print("max alpha per image:", al.max(axis=(1, 2)).round(4), " uniform:", round(1 / 49, 4))

# %% [markdown]
# ## Figure 5: retrievals, ours vs Triplet SN
#
# For each category two queries by a fixed rule: among the queries DSSA retrieves in its top 10, the one where
# its rank of the true match improves most over Triplet SN's; and, the other way round, the one where Triplet
# SN does best relative to DSSA (the paper shows only the first kind). Top row: DSSA, with its attention mask
# over the query; bottom row: Triplet SN. The true match is outlined green; "match at r" is its rank.

# %%
fig = FG.figure5(bundles, save="fig5_retrieval")

# %% [markdown]
# Over all queries, from the same distance matrices: how often does DSSA rank the true match higher than
# Triplet SN?

# %%
FG.rank_comparison(bundles).round(2)

# %% [markdown] tags=["exercise"]
# **Exercise.** `rank_comparison` starts from each query's rank of its true match. Compute the ranks yourself from a
# distance matrix, counting the gallery items at a distance $\le$ the true match's (ties count against the
# query), and check them against `M.rank_of_true_match`: on DSSA's recorded test distances of the first
# category shown above, or on a random 30 x 30 matrix when none is recorded here.

# %% tags=["solution"] jupyter={"source_hidden": true}
import numpy as np

from sbir_lib.metrics import retrieval as M

dist = next(iter(bundles.values())).dist_ours if bundles else np.random.default_rng(0).random((30, 30))
mine = (dist <= dist.diagonal()[:, None]).sum(axis=1) - 1
assert (mine == M.rank_of_true_match(dist)).all()
print(f"{len(mine)} queries; acc@1 = {(mine == 0).mean():.3f}, acc@10 = {(mine < 10).mean():.3f}")

# %% [markdown]
# ## Explore any query
#
# Pick a category and a query sketch: the query with DSSA's attention mask, and the ranked galleries of both
# models side by side (true match outlined). The widget needs a live kernel; the committed notebook does not
# store widget state, so a static example of the same view follows it.

# %%
FG.explorer(bundles)

# %%
fig = FG.explorer_example(bundles, save="nb06_explorer_example")
