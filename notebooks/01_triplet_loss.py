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
# # 01 · Triplet SN: a siamese Sketch-a-Net and the triplet loss
#
# *Source: `notebooks/01_triplet_loss.py`, paired with this notebook by jupytext (JupyterLab with jupytext saves both); after editing the `.py`, run `python tools/nbsync.py`.*
#
# The DSSA paper's baseline, **Triplet SN** (Yu et al., *Sketch Me That Shoe*, CVPR 2016), learns one
# embedding $F_\theta$ for both sketches and photo edge maps, such that a sketch lands closer to its own
# photo than to look-alikes. This notebook builds it up: the network, the triplet loss on a few numbers,
# one training run, and how retrieval is scored (acc@K).

# %% tags=["parameters"]
# Parameters (papermill: -p profile full -p dataset chairs -p seed 1). None: the environment variable, else the default;
# course.setup checks them all before anything runs.
profile = None  # quick | cpu | full                ($SBIR_PROFILE; default quick)
dataset = None  # shoes | chairs | handbags         ($SBIR_DATASET; default shoes)
seed = None     # the seed of the runs shown         ($SBIR_SEED; default 0)
seeds = None    # the seeds tables average, [0, 1]  ($SBIR_SEEDS; default 0 1 2 in full, the seed in quick)

# %%
from sbir_lib import course

ctx = course.setup(profile, dataset=dataset, seed=seed, seeds=seeds)

# %% [markdown]
# ## A siamese Sketch-a-Net
#
# *Sketch-a-Net* is a small CNN designed for sketches (large 15 x 15 first filters, no local response
# normalisation). *Siamese* means that the sketch branch and the photo branch are **the same network
# with the same weights**: one `sbir_lib.models.dssa.SketchANet` embeds both. Triplet SN adds fc6 (512) and
# fc7 (256) heads; the L2-normalised 256-d fc7 output is the embedding, as in the authors' code. There
# is no dropout: neither their TensorFlow nor their Caffe network has one. Output shapes of each stage for one 225 x 225 input,
# and the parameters of each layer:

# %%
# NBVAL_CHECK_OUTPUT
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

# %% [markdown]
# 78% of the weights sit in fc6, which maps the pooled 7 x 7 x 256 conv5 map (12,544 numbers) to 512.
# The DSSA additions of notebooks 02-04 are small next to that:

# %%
# NBVAL_CHECK_OUTPUT
for v in ("base", "base+att", "base+att+cff", "full"):
    m = MD.DSSANet(v)
    print(f"{v:14s} network {MD.count_parameters(m):>10,}  energy {MD.count_parameters(m.make_energy()):>8,}"
          f"  embedding {m.embed_dim}-d")

# %% [markdown]
# ## The triplet loss (Eq. 1), on numbers
#
# A training triplet is an anchor sketch $s$, a positive photo $p^+$ (more similar to $s$) and a negative
# $p^-$. With $D$ the squared Euclidean distance between embeddings,
#
# $$\mathcal{L}_\theta(s, p^+, p^-) = \max\bigl(0,\ \Delta + D(F_\theta(s), F_\theta(p^+)) - D(F_\theta(s), F_\theta(p^-))\bigr),
# \qquad D(a, b) = \lVert a - b \rVert_2^2 .$$
#
# The loss is zero once the negative is farther than the positive by at least the margin $\Delta$
# (`sbir_lib.losses.losses.DEFAULT_MARGIN` = 0.3). Three 2-d triplets with the same anchor and positive, and a
# negative that is far (*easy*), a bit farther than the positive (*semi-hard*) or closer than it (*hard*):

# %%
# NBVAL_CHECK_OUTPUT
s = torch.tensor([[0.0, 0.0]] * 3)
p_pos = torch.tensor([[0.1, 0.0]] * 3)
p_neg = torch.tensor([[1.0, 0.0], [0.5, 0.0], [0.05, 0.0]])
d_pos, d_neg = L.squared_euclidean(s, p_pos), L.squared_euclidean(s, p_neg)
per_triplet = torch.stack([L.triplet_hinge(d_pos[i:i + 1], d_neg[i:i + 1]) for i in range(3)])
print(pd.DataFrame({"D(s,p+)": d_pos, "D(s,p-)": d_neg, "loss": per_triplet},
                   index=["easy", "semi-hard", "hard"]).round(4).to_string())
print(f"batch loss = mean = {float(L.triplet_hinge(d_pos, d_neg)):.4f}")

# %% [markdown]
# The library's hinge is these two lines (the shape check guards against pairing the wrong distances):

# %%
from sbir_lib.course.context import show_source

show_source(L.triplet_hinge, "if d_pos.shape")


# %% [markdown] tags=["exercise"]
# **Exercise.** Write the triplet hinge of Eq. 1 yourself, as `my_hinge(d_pos, d_neg, margin)`, with `torch.clamp` instead
# of `relu`, and check it against `L.triplet_hinge` on 1,000 random distance pairs and three margins.

# %% tags=["solution"] jupyter={"source_hidden": true}
def my_hinge(d_pos, d_neg, margin=L.DEFAULT_MARGIN):
    return torch.clamp(margin + d_pos - d_neg, min=0).mean()

g = torch.Generator().manual_seed(0)
dp, dn = torch.rand(1000, generator=g) * 2, torch.rand(1000, generator=g) * 2
for m in (0.0, 0.3, 1.0):
    assert torch.allclose(my_hinge(dp, dn, m), L.triplet_hinge(dp, dn, m))
print("my_hinge == L.triplet_hinge")

# %% [markdown]
# Only triplets that violate the margin produce a gradient. Autograd's gradient of the batch loss with
# respect to the three embeddings shows what a training step does (gradient descent moves each embedding
# *against* its gradient): in the two active triplets the positive moves towards the anchor (its
# gradient points away from $s$), the negative moves away from it, and the anchor moves so as to shrink
# $D(s,p^+) - D(s,p^-)$; the easy triplet contributes nothing. In the network these gradients flow back
# into the shared weights, through both branches.

# %%
# NBVAL_CHECK_OUTPUT
emb = [t.clone().requires_grad_(True) for t in (s, p_pos, p_neg)]
loss = L.triplet_hinge(L.squared_euclidean(emb[0], emb[1]), L.squared_euclidean(emb[0], emb[2]))
loss.backward()
for name, t in zip(("dL/ds", "dL/dp+", "dL/dp-"), emb):
    print(name, [[round(float(v), 4) + 0.0 for v in row] for row in t.grad])

# %% [markdown] tags=["exercise"]
# **Exercise.** Derive the gradient of the batch loss with respect to the negatives by hand: for an *active* triplet
# ($\Delta + D^+ - D^- > 0$) it is $\partial\mathcal{L}/\partial p^- = 2\,(s - p^-)/N$ ($N$ = 3 triplets in the
# batch), and 0 otherwise. Check your formula against autograd's `emb[2].grad` above.

# %% tags=["solution"] jupyter={"source_hidden": true}
active = (L.DEFAULT_MARGIN + d_pos - d_neg > 0).float()[:, None]  # [3, 1]
by_hand = 2 * (s - p_neg) / len(s) * active
assert torch.allclose(by_hand, emb[2].grad)
print(by_hand + 0.0)  # + 0.0: no "-0."

# %% [markdown]
# ## Training Triplet SN
#
# `sbir_lib.training.triplet.train` draws triplets with `sbir_lib.data.samplers.TripletSampler` (notebook
# 00), augments them on the device, runs the three branches as one batch through the shared network, and
# minimises the mean hinge with SGD (momentum 0.9). The **quick** profile trains the network's head (conv5's
# role, then fc6/fc7 and the energy) on a frozen ImageNet EfficientNet-Lite0 trunk adapted once to Sketchy-mini
# sketches, whose maps of each training view are computed once and stored on disk: seconds on 2 CPU cores. The
# **full** profile is the authors' recipe on a Sketch-a-Net (20,000 iterations of 128 triplets; the authors start
# from a pretrained Sketch-a-Net, see the end of this notebook). The settings:

# %%
from sbir_lib.training import triplet as T

cfg = T.profile_config(ctx.profile, variant="base")
print({k: getattr(cfg, k) for k in ("backbone", "init", "iterations", "batch_size", "optimizer", "lr", "momentum",
                                    "margin", "positives", "hard_prob", "test_views")})

# %% [markdown]
# Each iteration turns its batch into one scalar loss and hands it to `sbir_lib.training.engine.train_step`
# (zero the gradients, backpropagate, update), which all three training recipes of the course call: this
# triplet recipe, the class-pair recipe of DASE/MEMS (notebooks 07-08) and the Sketch-a-Net pretraining.

# %%
# NBVAL_CHECK_OUTPUT
import inspect

from sbir_lib.training import engine

print(inspect.getsource(engine.train_step), end="")

# %% [markdown]
# And the loop that feeds it, in `sbir_lib.training.triplet.train`: draw a batch of (anchor, positive,
# negative) indices, stack the three image batches, augment them on the device, embed all $3B$ images in
# one pass of the shared network, split the embeddings into $s, p^+, p^-$, and take Eq. 1 (plus the energy's
# regulariser, zero for the Euclidean energy; notebook 04):

# %%
show_source(T.train, "for it in bar:", "log.add(")

# %% [markdown]
# `ctx.record` returns the recorded run of Table 2's "Base" row on this notebook's dataset and seed (the
# parameters `dataset` and `seed`; from `results/table2/<dataset>/base/`) and trains it only if it is missing.
# In the full profile without a GPU, a run stopped early is shown when the complete one is missing (`partial=True`;
# it says so, and it is not the recipe's result):

# %%
rec = ctx.record("table2", ctx.dataset_name, "base", partial=True)
if rec is None:
    print("No recorded run for this profile: the rest of this section is skipped.")
else:
    stopped = f" (stopped early: {rec['iterations']} of {rec['config']['iterations']})" if rec.get("partial") else ""
    print(f"{rec['row']} on {rec['dataset']} ({rec['data_source']}), profile {rec['profile']}, "
          f"seed {rec['seed']}, {rec['iterations']} iterations{stopped} on {rec['device']}")
    print(f"acc@1 = {100 * rec['metrics']['acc@1']:.2f}%   acc@10 = {100 * rec['metrics']['acc@10']:.2f}%"
          f"   ({rec['n_queries']} test queries, gallery of {rec['n_gallery']})")

# %% [markdown]
# **How retrieval is scored.** Every test sketch is a query; the gallery is all test edge maps. The *rank*
# of a query is the number of gallery items closer to it than its true match (0 = retrieved first), and
#
# $$\text{acc@}K = \frac{1}{Q}\,\bigl|\{\, q : \text{rank}(q) < K \,\}\bigr| ,$$
#
# the fraction of queries whose true match is among the $K$ nearest (`sbir_lib.metrics.retrieval.acc_at_k`). The
# paper reports acc@1 and acc@10; a random ranking gives $K/G$. The training loss and the whole acc@K
# curve of the run:

# %%
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

# %% [markdown]
# Did the run learn? The loss curve alone cannot say (each logged point averages a few noisy batches), and
# neither can a comparison with a random ranking: an untrained network already ranks far better than chance.
# The test is the same network evaluated **before any training step** (row `base@untrained` of the `pretrain`
# experiment, same seed and test views). The sentence below is generated from the two records, so it says what
# they say:

# %%
from sbir_lib.report import claims as C

unt = ctx.record("pretrain", ctx.dataset_name, "base@untrained")
if rec is not None and unt is not None:
    print(C.direction_sentence("trained Triplet SN", "the untrained network", C.stat([rec], "acc@1"),
                               C.stat([unt], "acc@1")))
    print(f"(a random ranking: acc@1 = {100 / rec['n_gallery']:.2f}%)")

# %% [markdown]
# A few retrievals, from the run's saved test distance matrix (`seed0[.quick].dist.npy` beside the
# record): two queries retrieved best and two retrieved worst, with their five nearest gallery items
# (the photos are shown; the network compared edge maps). The true match is outlined in green.

# %%
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

# %% [markdown] tags=["exercise"]
# **Exercise.** Score retrieval yourself. For a random 8 x 8 distance matrix (query $i$'s true match is gallery $i$),
# compute each query's rank as the number of *other* gallery items at a distance $\le$ that of the true match
# (ties count against the query, as in `sbir_lib.metrics.retrieval`), then acc@1 and acc@3; check them
# against `M.rank_of_true_match` and `M.acc_at_k`.

# %% tags=["solution"] jupyter={"source_hidden": true}
g = torch.Generator().manual_seed(1)
d = torch.rand(8, 8, generator=g).numpy()
true = d.diagonal()[:, None]
my_ranks = (d <= true).sum(axis=1) - 1  # the true match itself is not counted
assert (my_ranks == M.rank_of_true_match(d)).all()
for k in (1, 3):
    assert (my_ranks < k).mean() == M.acc_at_k(d, k)
print("ranks:", my_ranks, " acc@1 =", (my_ranks < 1).mean(), " acc@3 =", (my_ranks < 3).mean())

# %% [markdown]
# ## Why pretraining matters
#
# Trained from scratch on 304 training sketches, a Sketch-a-Net has far too little data for its 8 million
# parameters. The DSSA authors (like Triplet SN) start from a Sketch-a-Net **pretrained** on sketch
# classification (TU-Berlin) and on ImageNet photos turned into edge maps, and then fine-tune with the
# triplet loss (freezing the early layers); the quick and cpu profiles' trunk, adapted on Sketchy-mini, plays
# that role above. The authors' pretrained model cannot be obtained offline, so the course builds its own
# Sketch-a-Net inits and records, in experiment `pretrain`, the same two models (Triplet SN = `base`,
# DSSA = `full`) started five ways:
#
# - **untrained** (`@untrained`): the tables' network as initialised (in the quick profile the stored trunk
#   with a random head), never trained: what retrieval gets for free, the control of every trained row;
# - **from scratch**: a Sketch-a-Net trained from random weights (in the quick profile 60 iterations of 16);
# - **Sketchy-mini stand-in** (`@sketchy_mini`): Sketch-a-Net pretrained on Sketchy-mini sketches and photo
#   edge maps (`python -m sbir_lib.training.pretrain run`);
# - **Sketchy-mini + QMUL pairs** (`@sketchy_qmul`): the same plus the QMUL *training* pairs; sketch
#   augmentation and a longer schedule were tried too, each change kept only when it helped on held-out pairs
#   (`python -m sbir_lib.experiments tune-pretrain`);
# - **ImageNet** (`@imagenet`): the DSSA head on the whole ImageNet-pretrained EfficientNet-Lite0, fine-tuned.
#
# Notebook 05 discusses the table; here is what has been recorded for this profile:

# %%
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

# %% [markdown]
# Trained against untrained, counted from the records of Table 1's trained rows and their `@untrained` controls
# (this profile, then every profile that recorded several seeds; Welch's t over seeds, notebook 05):

# %%
from sbir_lib.core.profiles import PROFILE_NAMES

for p in dict.fromkeys([str(ctx.profile), *PROFILE_NAMES]):
    frame = C.untrained_frame([ctx.dataset_name], p, ctx.read_roots if p == str(ctx.profile) else None,
                              ctx.seeds if p == str(ctx.profile) else None)
    if (frame["verdict"] != "not run").any():
        print(f"{p} profile: {C.untrained_sentence(frame)}")

# %% [markdown]
# ## Summary
#
# - Triplet SN = one network for both domains (the paper's Sketch-a-Net: 8.2 M parameters, 78% in fc6), 256-d
#   embedding; the quick profile trains its head on a stored, frozen ImageNet trunk.
# - The triplet hinge is zero for triplets that already respect the margin; violating ones pull the
#   positive in and push the negative out.
# - acc@K counts queries whose true match ranks in the top K. Whether training beat the untrained network is
#   printed above from the records, never written by hand; quick-profile numbers are not the paper's accuracy.
#
# Next: **02 · spatial attention**, which lets the network weight the parts of the conv5 map that
# matter for telling look-alikes apart.
