"""Ours vs the authors' code: every setting of the DSSA recipe, side by side, with citations.

Printed in ``REPRODUCTION.md`` (section "Ours vs the authors' code") by
:func:`sbir_lib.report.reproduction.reproduction_markdown`. The authors' column cites their code (file:line at
these commits):

- **TF** = yuqian1023/Deep_SBIR_tf @838c17c (DSSA and ``deep_sbir`` = Triplet SN in TensorFlow):
  ``triplet_sbir_train.py``, ``triplet_sbir_test.py``, ``ops.py``, ``sbir_sampling/``;
- **Caffe** = seuliufeng/DeepSBIR @0997478 (the original Triplet SN): ``experiments/train.prototxt``,
  ``experiments/solver.prototxt``, ``experiments/train_sbir.sh``.

The *ours* column is read from this code's defaults (the ``full`` profile of :mod:`sbir_lib.training.triplet` and
:class:`sbir_lib.models.dssa.VariantConfig`), so it cannot drift from what runs. Every *different* row names
the option that would change it and why we differ.
"""
from __future__ import annotations

from dataclasses import dataclass

from sbir_lib.data.augment import CROP
from sbir_lib.models import dssa as MD
from sbir_lib.training import triplet as T

__all__ = ["Row", "rows", "frame"]


@dataclass(frozen=True)
class Row:
    setting: str
    authors: str
    ours: str
    same: str  # "same" | "different" | "partly"
    why: str = ""


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
            "extra columns of the `pretrain` experiment (issue [init])"),
        Row("fine-tuning recipe per init",
            "one recipe: conv1-fc7 loaded, lr 0.001 constant, the frozen layers above (TF train:84-119, 182; "
            "Caffe solver.prototxt:2-6)",
            "the `@<init>` rows of the `pretrain` experiment use, per init and variant, the layers loaded "
            "(`init_layers` all | conv: fresh fc6/fc7), the lr and (base) the frozen layers chosen in turn on the "
            "shoes validation split (`python -m sbir_lib.experiments tune-init`, recorded in each run's "
            "`settings_chosen_on`); the table rows keep the authors' recipe",
            "different",
            "another init can need another lr; it is chosen on data carved from the training split, never on test"),
        Row("frozen layers",
            "DSSA: conv1-conv4 frozen, conv5/fc6/fc7/attention trained (TF train:58, 67, 76-77, 20); "
            "Triplet SN: conv1-conv5 frozen (TF train:35, 44, 47-48; Caffe lr_mult 0, train.prototxt:24-193)",
            f"`freeze={cfg.freeze!r}`: the authors' choice with a pretrained init; nothing frozen from scratch",
            "same",
            "from scratch every layer must learn"),
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
            f"random {CROP} crop of 256 + flip p=0.5, batched on the device (`sbir_lib.data.augment.augment`)", "partly",
            "our flip mirrors the crop exactly"),
        Row("frozen trunk per step",
            "recomputed for every batch (the frozen layers run in every forward pass, TF train:35-77)",
            f"`cache_views={cfg.cache_views}`: recomputed every step, as theirs; `cache_views=K` computes the frozen "
            "trunk once for K views per training image (`sbir_lib.training.cached`) and samples one of them per step",
            "same" if cfg.cache_views == 0 else "different",
            "with K > 0 a run sees K crops/flips of each image instead of a fresh one every step; the maps and "
            "gradients of a view are the same (tested); the GPU grid (`tools/gpu_run.sh`) sets K, recorded per run"),
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
        Row("precision", "fp32", "bf16 autocast on CUDA, fp32 on CPU; distances stored as float32", "different",
            "speed (the engine's throughput); metrics recompute exactly from the stored distances"),
    ]


def frame():
    """:func:`rows` as a pandas DataFrame (columns setting, authors' code, ours, same?, why)."""
    import pandas as pd

    return pd.DataFrame([{"setting": r.setting, "authors' code": r.authors, "ours": r.ours, "same?": r.same,
                          "why / option": r.why} for r in rows()])
