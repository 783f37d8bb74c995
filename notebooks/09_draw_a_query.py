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
# # 09 · Draw your own query
#
# *Source: `notebooks/09_draw_a_query.py`, paired with this notebook by jupytext (JupyterLab with jupytext saves both); after editing the `.py`, run `python tools/nbsync.py`.*
#
# Every notebook so far queried with QMUL's own test sketches. Here **you draw the query**, with the mouse,
# and the trained networks of the tables retrieve photos while you draw. It is the whole fine-grained SBIR
# pipeline in one loop:
#
# 1. the strokes become a $256 \times 256$ image drawn the way QMUL sketches are drawn (thin lines, centred,
#    scaled to fill the frame), because that is the only kind of input the network has ever seen;
# 2. its centre crop goes through the trained network (the profile's trunk, then the head: Triplet SN's, or with
#    attention and coarse-fine fusion for DSSA) to one embedding $F(s)$;
# 3. each gallery photo's embedding $F(p_g)$ (its edge map through the same network) was computed once, so the
#    query only costs one forward pass and the energy $D(s, p_g)$ to every photo (squared Euclidean for Triplet
#    SN, HOLEF for DSSA, notebook 04);
# 4. the photos are sorted by $D$. The rank of a target photo $t$ is
#    $r_t = \#\{g \neq t : D(s, p_g) \le D(s, p_t)\}$, shown as $r_t + 1$ (1 = retrieved first).
#
# A finished stroke triggers a new query (after a short pause, so a quick series of strokes runs one query).
# You can also load a test sketch and perturb it, to see what the network relies on. The `dataset`
# parameter picks the category the pad starts with (the shoe drawn in code below stays a shoe).

# %% tags=["parameters"]
# Parameters (papermill: -p profile full -p dataset chairs). None: the environment variable, else the default;
# course.setup checks them all before anything runs.
profile = None  # quick | cpu | full                ($SBIR_PROFILE; default quick)
dataset = None  # shoes | chairs | handbags         ($SBIR_DATASET; default shoes)

# %%
from sbir_lib import course

ctx = course.setup(profile, dataset=dataset)

# %%
import dataclasses

import numpy as np
import pandas as pd

from sbir_lib.course import query, sketchpad
from sbir_lib.course.context import show_source

# %% [markdown]
# ## What a QMUL sketch looks like
#
# Before drawing anything, measure the target look on the training sketches: the image side, the longer side
# of the ink's bounding box (median over sketches) and the stroke width, estimated as the ink's mass
# (darkness, in pixels) divided by the length of its skeleton. A drawn query is rendered with these numbers.

# %%
style = query.measure_style(ctx.dataset(ctx.dataset_name).train.sketches.numpy())
print(f"image {style.size} x {style.size} px; longer side of the ink {style.extent:.0f} px (median); "
      f"stroke width {style.line_width:.2f} px")

# %% [markdown]
# ## From strokes to an image
#
# The pad records each stroke as the list of points the mouse passed through, on a canvas twice the size of
# the image. Here is a shoe "drawn" in code: four strokes (sole, upper, toe cap, heel) and two lace lines.
# `query.render_strokes` scales their bounding box to the measured extent, centres it, and draws the lines
# four times larger before averaging down, which gives the grey antialiased edges of the real sketches.

# %%
shoe = [  # canvas points (x, y) of each stroke, as the mouse gives them
    [(70, 330), (150, 345), (300, 350), (420, 345), (455, 330)],                       # sole
    [(70, 330), (80, 300), (140, 280), (220, 255), (280, 205), (330, 170), (410, 165),
     (445, 195), (455, 330)],                                                           # upper
    [(80, 300), (110, 318), (160, 322)],                                                # toe cap
    [(420, 345), (422, 300), (455, 295)],                                               # heel
    [(250, 232), (290, 262)], [(280, 205), (318, 238)],                                 # laces
]
fig = sketchpad.strokes_figure(shoe, style)

# %% [markdown]
# The frame is the whole trick: the strokes' bounding box, widened by one stroke width, is scaled to the
# measured extent and its centre moved to the image centre.

# %%
show_source(query.fit_frame)

# %% [markdown]
# ## Which network
#
# The pad offers **Triplet SN** (variant `base`), **DSSA** (`full`) and the pretrained-init row with the best
# acc@1 in the `pretrain` experiment (notebook 05), each the seed-0 run of this notebook's profile.
#
# A drawn query needs the *whole* trained network. The seed-0 DSSA run on shoes keeps it: its complete weights
# (float16, 16 MB) are committed beside its record, and the record's test distances were computed with exactly
# those weights, so the pad loads the recorded network on any machine, with no training. The other runs keep
# at most conv1-5 and the attention (enough for the attention figures), not fc6/fc7, the bulk of the weights:
# picking one of them **rebuilds** it by training the record's configuration again (a few minutes on 2 CPU
# cores, then kept under the git-ignored `runs/`). A rebuild is *not* the recorded network: training is not
# bit-reproducible across processors (on another machine a rebuilt shoes DSSA scored acc@1 5.2% where the
# record says 9.6%). Either way the pad **checks** the network: it recomputes the test distance matrix and
# compares it with the recorded one, within a stated tolerance (`query.RELOAD_RTOL`, float rounding of
# another processor's kernels), and says whether this is the recorded network. Without any record, the pad
# prints the `python -m sbir_lib.experiments run ...` command that trains one.

# %%
pad = sketchpad.SketchPad(ctx)
ready = pad.ready()  # DSSA on shoes: the committed network, loaded

# %% [markdown]
# A query then costs one forward pass: the gallery's embeddings are computed once, and the query's distance
# to each of them is the run's own energy, averaged over the test views exactly as the recorded test
# distances are:

# %%
show_source(query.Retriever.query, "t0 =", "perf_counter() - t0")
show_source(query.Retriever._to_gallery, "g =")

# %% [markdown]
# ## The pad
#
# Draw on the white canvas (press, drag, release: one stroke), **clear** or **undo** the last stroke, pick the
# dataset, the model and a target photo. Below the pad: the query as the network sees it, DSSA's attention
# mask over it, the top 10 photos with their distances $D$, and the target's rank. **Ready-made strokes**:
# *load sketch* puts a test sketch on the pad (its photo becomes the target) and you can draw over it; the
# *perturb* sliders drop a part, shift or thicken the drawing, and *rank under each perturbation* plots how
# far the target moves.
#
# The widget needs a running kernel in JupyterLab; the committed notebook stores no widget state, so the same
# pad is driven from code below, which is what a run without a browser (papermill, CI) shows.

# %%
if ready:
    display(pad.widget())

# %% [markdown]
# ## A test sketch as the query
#
# The first test sketch whose true match DSSA retrieves in its top 10 (a fixed rule, by the recorded
# distances), loaded as pixels: the ranking equals the recorded row of the test distance matrix behind the
# tables (the check above covers every test sketch). The true match is outlined green.

# %%
if ready:
    pad.load_sketch(pad.example_query())
    fig = pad.figure()

# %% [markdown]
# And the shoe drawn in code above, as a query: no target is picked, so no rank, only what it retrieves.

# %%
if ready:
    pad.clear()
    pad.target = None  # no target photo: the loaded sketch's photo was one
    for stroke in shoe:
        pad.add_stroke(stroke)
    fig = pad.figure()

# %% [markdown]
# ## Perturb: how the true match's rank moves
#
# The test sketch again, now under each perturbation of the panel: a third of the drawing dropped on one side,
# shifted right or down, strokes thickened. One batched call ranks all the versions.

# %%
if ready:
    pad.load_sketch(pad.example_query())
    table = pad.sweep()
    fig = pad.sweep_figure(table)

# %% [markdown]
# ## Fast enough to draw with
#
# One query is one forward pass plus the energy to each gallery embedding (those are computed once, when the
# model is loaded). Measured here, on whatever this notebook runs on:

# %%
if ready:
    lat = pad.latency()
    print(f"{lat['model']}: one query against {lat['gallery']} photos in {1000 * lat['median s']:.0f} ms "
          f"(median of 20; slowest {1000 * lat['max s']:.0f} ms) on {ctx.device}")

# %% [markdown]
# ## Exercises
#
# Three questions to answer on the pad. Each has a worked solution right after it (collapsed: click the cell
# to expand it) that answers the question in code and checks itself.

# %% [markdown] tags=["exercise"]
# **Exercise.** **Draw the same shoe three ways** (the outline only; the outline with its details; everything with a heavy
# pen). Which strokes does DSSA's attention weigh most? Compare, per third of the drawing, the share of the
# attention that falls on ink there with the share of the ink that lies there.

# %% tags=["solution"] jupyter={"source_hidden": true}
if ready:
    # the three versions from the coded shoe: its first two strokes, all six, all six with a 4x wider pen
    pad.select(model="DSSA")
    heavy = dataclasses.replace(pad.style(), line_width=4 * pad.style().line_width)
    versions = {"outline only": query.render_strokes(shoe[:2], pad.style()),
                "with details": query.render_strokes(shoe, pad.style()),
                "heavy pen": query.render_strokes(shoe, heavy)}
    fig = pad.attention_figure(list(versions.values()), list(versions))
    shares = pad.attention_table(list(versions.values()), list(versions))
    weight = shares["attention share"] / shares["ink share"]
    for version, part in weight.idxmax(axis=1).items():
        print(f"{version:13s} attention weighs the {part} third most: {weight.loc[version, part]:.2f} x its ink share")
    assert ((shares >= 0) & (shares <= 1)).all().all() and set(weight.columns) == set(query.PARTS)
    display(shares)

# %% [markdown]
# Read the table part by part (the thirds overlap at the corners, so a row does not sum to one): where the
# attention share is larger than the ink share, the mask weighs those strokes more than their amount of ink.
# The softmax mask sums to one over the $7 \times 7$ positions, so it can only move weight around, and some of
# it falls on white paper (the figure shows where). These are the masks of this notebook's profile: a
# quick-profile network's head has trained for seconds, so compare them with a full-profile run before reading much
# into them.

# %% [markdown] tags=["exercise"]
# **Exercise.** **How far can five sketches be trusted?** A sweep of one sketch says little; a median over a few test sketches
# says more, but how much more? Sweep two different sets of five test sketches with DSSA and compare the median
# rank of the true match per perturbation.

# %% tags=["solution"] jupyter={"source_hidden": true}
if ready:
    # ten test sketches evenly spread over the test set (a fixed rule), dealt alternately into two sets of five
    n = len(pad.data().test)
    first, second = np.linspace(0, n - 1, 10).round().astype(int).reshape(5, 2).T
    both = pd.concat({"set A": pad.median_sweep(first)[pad.model],
                      "set B": pad.median_sweep(second)[pad.model]}, axis=1)
    fig = pad.sweep_figure(both, images=False, what="median rank of the true match")
    assert list(both.columns) == ["set A", "set B"] and both.index[0] == "as drawn" and (both >= 1).all().all()
    display(both.assign(**{"B - A": both["set B"] - both["set A"]}))

# %% [markdown]
# Same network, same perturbations: only the five sketches differ, and the last column is how much that alone
# moves the median rank. A perturbation hurts when its median grows from the *as drawn* row in **both** sets;
# a change smaller than the gap between the sets is within the noise of the choice of sketches. The same holds
# for comparing two models: select **Triplet SN** in the pad (rebuilt on first use, about two minutes on 2 CPU
# cores) and `pad.median_sweep(first, models=["Triplet SN", "DSSA"])` puts the two side by side; a difference
# between them means something only where it is larger than the difference between the two sets here.

# %% [markdown] tags=["exercise"]
# **Exercise.** **Does drawing like a QMUL sketch matter?** Render the coded shoe without centring and scaling (where it
# lies on the canvas), and with a pen four times wider. Where does the photo it found first end up?

# %% tags=["solution"] jupyter={"source_hidden": true}
if ready:
    qmul_like = query.render_strokes(shoe, pad.style())
    found = int(pad.retriever().query(qmul_like).top[0])
    raw = query.render_strokes(shoe, pad.style(), query.Frame(1 / sketchpad.CANVAS_SCALE, 0.0, 0.0))
    thick = query.render_strokes(shoe, dataclasses.replace(pad.style(), line_width=4 * pad.style().line_width))
    ranks = pad.retriever().ranks(np.stack([qmul_like, raw, thick]), found)
    for name, r in zip(["like a QMUL sketch", "where it lies on the canvas", "four times wider pen"], ranks):
        print(f"{name:28s} photo {found} at rank {r + 1}")
    assert ranks[0] == 0  # the photo found first is first for the drawing that found it

# %% [markdown]
# The first line is 1 by construction. The network only knows sketches centred and scaled to the frame, with
# thin lines: a drawing off-centre or with a heavy pen is a different input, and the photo can move down the
# list. That is why the pad renders every drawing the QMUL way before embedding it.
