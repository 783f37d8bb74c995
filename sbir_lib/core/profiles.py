"""The profiles: one frozen :class:`Profile` per way of running the course, holding every recipe's settings.

Taught in: ``notebooks/00_data_and_domain_gap.ipynb`` (the profile cell every notebook starts with) and
``notebooks/05_reproducing_the_tables.ipynb`` (what each profile records).

- ``quick``: 2 CPU cores, seconds per run: the DSSA head of every row trained live on an ImageNet
  EfficientNet-Lite0 trunk adapted once on Sketchy-mini only (:data:`QUICK_TRUNK`), frozen and stored like the
  ``cpu`` profile's; one centre test view, one seed (the one the reader picks). Its ``pretrain`` init rows train
  tiny Sketch-a-Nets (:data:`QUICK_SKETCHANET`). The numbers show mechanisms, not the paper's accuracy.
- ``cpu``: the DSSA tables on 2 CPU cores: the head of every row trained on an ImageNet EfficientNet-Lite0 trunk
  adapted once to sketches (:mod:`sbir_lib.training.trunk_adapt`), frozen and stored on disk
  (:mod:`sbir_lib.training.trunk_store`); 10 test views, seeds 0-2.
- ``full``: the authors' recipe on a GPU (20,000 iterations of 128 triplets, 10 test views, seeds 0-2).

A recipe reads its settings from the profile (``profile.triplet``, ``profile.pretrain``, ``profile.classical``,
``profile.dase_mems[experiment]``, ...) and nothing else branches on a profile's name: a new profile is one
more :class:`Profile` in :data:`PROFILES`. The entry points (CLI, notebook parameters) turn a name into a
:class:`Profile` once (:func:`get_profile`) and pass it down; functions that take ``profile`` accept either.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Profile", "PROFILES", "PROFILE_NAMES", "DEFAULT_PROFILE", "get_profile", "as_profile"]

#: the crop side of the Sketch-a-Net input (225 from 256, as :data:`sbir_lib.data.augment.CROP`)
_CROP = 225
#: quick profile: every 5th Sketchy-mini category (25 of 125) for the category-level DASE/MEMS runs
QUICK_SKETCHY_EVERY = 5


@dataclass(frozen=True)
class Profile:
    """Everything that differs between two ways of running the same experiments.

    ``seeds``: the seeds a table reports (``None``: the one seed the reader picks, :meth:`report_seeds`).
    ``test_views``: the test protocol of the DSSA rows (1 = centre crop, 10 = the authors' 10 views).
    ``validation_size``: pairs carved from the training data for every recipe search (never the test split).
    ``device``: what the profile is made for (``cpu`` or ``cuda``); ``trains_on_cpu``: whether a missing run
    may be trained on a CPU by a notebook (a ``full`` run without a GPU takes hours: notebooks print its
    command instead). The settings tables hold options of the recipes' config dataclasses
    (:class:`sbir_lib.training.triplet.TrainConfig`, :class:`sbir_lib.training.pretrain.PretrainConfig`,
    :func:`sbir_lib.experiments.classical.resolve_config`, :class:`sbir_lib.training.class_pairs.RunConfig`).
    """

    name: str
    summary: str
    device: str
    trains_on_cpu: bool
    #: whether its numbers may stand beside the paper's (tiny CPU runs show mechanisms, not accuracy)
    paper_comparable: bool
    #: whether it records on the real benchmarks only (never on the synthetic stand-in)
    real_data_only: bool
    seeds: tuple[int, ...] | None
    test_views: int
    validation_size: int
    #: the DSSA triplet recipe (TrainConfig options)
    triplet: Mapping[str, Any]
    #: per experiment (``curve``, ``pretrain``): TrainConfig options on top of :attr:`triplet` for its trained
    #: rows (``pretrain``'s ``@untrained`` controls are always the tables' network, without them)
    experiments: Mapping[str, Mapping[str, Any]]
    #: the offline Sketch-a-Net pretraining (PretrainConfig options)
    pretrain: Mapping[str, Any]
    #: the classical Table 1 baselines: ``dense_hog``, ``hog_bow`` and ``ranksvm`` settings
    classical: Mapping[str, Mapping[str, Any]]
    #: per DASE/MEMS experiment: RunConfig options
    dase_mems: Mapping[str, Mapping[str, Any]]
    #: the learning rates :mod:`sbir_lib.experiments.init_recipe` tries per init
    init_lrs: tuple[float, ...]
    #: cached views per training image while searching a fine-tuning recipe
    init_cache_views: int
    #: the profile whose validation records chose the DASE/MEMS settings this one takes, when not its own
    settings_from: str | None = None
    #: rough seconds per grid job (:mod:`sbir_lib.experiments.grid` decides what fits a budget)
    grid_cost_s: Mapping[str, float] = field(default_factory=dict)

    @property
    def record_suffix(self) -> str:
        """``""`` for ``full`` (``seed0.json``), ``".<name>"`` otherwise (``seed0.quick.json``)."""
        return "" if self.name == "full" else f".{self.name}"

    def report_seeds(self, seed: int = 0) -> list[int]:
        """The seeds a table of this profile reports: :attr:`seeds`, or ``[seed]`` when the reader picks one."""
        return list(self.seeds) if self.seeds is not None else [int(seed)]

    @property
    def where(self) -> str:
        """`` on a GPU`` for a profile made for one (the record commands notebooks print say where to run)."""
        return " on a GPU" if self.device == "cuda" else ""

    def on_device(self, device_type: str) -> bool:
        """Whether a missing run may be trained here (``device_type``: ``cpu`` or ``cuda``)."""
        return self.trains_on_cpu or device_type != "cpu"

    def __str__(self) -> str:  # f"--profile {profile}" reads as the name
        return self.name


#: the quick profile's trunk: the ImageNet EfficientNet-Lite0 adapted on Sketchy-mini only (category-level triplets,
#: ``qmul_fraction 0``), so that QMUL reaches a quick network only through its head's training; committed
#: (``python -m sbir_lib.training.trunk_adapt run --qmul-fraction 0 --steps 1200 --out <this path>``)
QUICK_TRUNK = "results/trunk/efficientnet_lite0_b15.sketchy.pt"
#: the Sketch-a-Net recipe of the quick profile's ``pretrain`` init rows (from scratch, ``@sketchy_mini``,
#: ``@sketchy_qmul``, ``@imagenet``): the inits are Sketch-a-Nets (or the whole ImageNet network), not the trunk
QUICK_SKETCHANET = dict(backbone="sketchanet", init=None, trunk_store=False, cache_views=0, iterations=60, batch_size=16,
                        lr=1e-2, checkpoint_every=30, log_every=10, channels_last=True)

QUICK = Profile(
    name="quick",
    summary="DSSA heads trained live on a stored Sketchy-adapted trunk, seconds on a CPU; numbers show mechanisms, "
            "one seed",
    device="cpu", trains_on_cpu=True, paper_comparable=False, real_data_only=False, seeds=None, test_views=1, validation_size=32,
    # the DSSA head on the stored maps of 2 training views per image, about 10-30 s per run on 2 cores; lr 3e-3 and
    # 150 steps from a validation probe (carve_validation(60, seed 0), seeds 0-2) not yet recorded as a search
    triplet=dict(backbone="efficientnet_lite0_b15", init=QUICK_TRUNK, trunk_store=True, cache_views=2,
                 iterations=150, batch_size=32, lr=3e-3, checkpoint_every=100, log_every=10,
                 channels_last=False),
    experiments={"curve": {"val_size": 32, "eval_every": 25}, "pretrain": QUICK_SKETCHANET},
    pretrain=dict(categories=10, classify_steps=100, triplet_steps=20, batch_size=16, triplet_batch=8,
                  lr=1e-3, triplet_lr=1e-4, warmup=10, eval_every=0, log_every=10, checkpoint_every=50),
    classical={
        "dense_hog": dict(size=64, orientations=9, pixels_per_cell=8, cells_per_block=2, block_norm="L2-Hys"),
        "hog_bow": dict(size=64, orientations=9, pixels_per_cell=4, cells_per_block=4, block_norm="L2-Hys",
                        vocab_size=64, max_descriptors=20_000, min_ink=4, ink_threshold=0.9, grid=(1, 2),
                        norm="l1"),
        "ranksvm": dict(C=0.003, diff="abs", max_pairs=5_000, neg_per_query=None, add_true_match=True,
                        uniform_prior=10.0, max_iter=2000, tol=1e-4),
    },
    dase_mems={
        # lr, mems_center_init, mems_margin, center_lr_mult: chosen on the validation split
        # (results/tuning/dase_sketchy.quick.json); from scratch the authors' random centres scored higher
        "dase_sketchy": dict(arch="resnet18", input_size=64, iterations=80, batch_size=24, embed_dim=256,
                             n_categories=QUICK_SKETCHY_EVERY, lr=1e-3, test_views=2, test_distance="flipmin",
                             mems_center_init="random", mems_margin=2.0, center_lr_mult=1.0, log_every=10),
        # bn_frozen, se_init, mems_center_init, mems_anneal, center_lr_mult, mems_margin: chosen on the validation
        # split (results/tuning/dase_sketchy_imagenet.quick.json): the inserted blocks start open and the MEMS
        # centres at each category's mean photo embedding (random centres scored lower; frozen batch-norm
        # statistics collapsed at 64 px); the authors' annealing and centre learning rate kept
        "dase_sketchy_imagenet": dict(arch="efficientnet_lite0", init="imagenet", input_size=64, iterations=80,
                                      batch_size=24, embed_dim=256, n_categories=QUICK_SKETCHY_EVERY, lr=1e-3,
                                      test_views=2, test_distance="flipmin", bn_frozen=False, se_init="open",
                                      mems_center_init="photos", mems_anneal=0.5, center_lr_mult=1.0,
                                      mems_margin=3.0, log_every=10),
        # on the quick DSSA rows' trunk (:data:`QUICK_TRUNK`), fine-tuned whole at 96 px (about 25 s a run on 2 cores;
        # the scratch Sketch-a-Net of the full profile did not learn in a quick run); bn_frozen, se_init,
        # mems_center_init, lr, mems_margin, center_lr_mult: chosen on the validation split of shoes
        # (results/tuning/dase_qmul.quick.json)
        "dase_qmul": dict(arch="efficientnet_lite0", init=QUICK_TRUNK, input_size=96, iterations=40, batch_size=16,
                          embed_dim=256, bn_frozen=True, se_init="open", mems_center_init="photos",
                          lr=1e-4, mems_margin=2.0, center_lr_mult=1.0, test_views=1, log_every=10),
    },
    init_lrs=(1e-2, 3e-2, 1e-1), init_cache_views=2,
    grid_cost_s={"pretrain": 200.0, "cache_views": 600.0, "conv4": 60.0, "conv5": 30.0, "classical": 10.0,
                 "dase": 40.0, "pretrain_qmul": 300.0, "init_recipe": 1500.0},
)

FULL = Profile(
    name="full",
    summary="the papers' recipes (DSSA: 20,000 iterations of 128 triplets)",
    device="cuda", trains_on_cpu=False, paper_comparable=True, real_data_only=True, seeds=(0, 1, 2), test_views=10, validation_size=60,
    triplet=dict(iterations=20_000, batch_size=128, checkpoint_every=2000, compile=True),
    experiments={"curve": {"val_size": 60, "eval_every": 1000}},
    # 20k x 128 + 4k x 3 x 128 = 4.1 M images
    pretrain=dict(categories=None, classify_steps=20_000, triplet_steps=4_000, batch_size=128,
                  triplet_batch=128, lr=5e-4, triplet_lr=1e-4, warmup=500, eval_every=2_000, log_every=100,
                  checkpoint_every=2_000),
    classical={
        "dense_hog": dict(size=128, orientations=9, pixels_per_cell=16, cells_per_block=2, block_norm="L2-Hys"),
        "hog_bow": dict(size=128, orientations=9, pixels_per_cell=8, cells_per_block=4, block_norm="L2-Hys",
                        vocab_size=500, max_descriptors=200_000, min_ink=8, ink_threshold=0.9, grid=(1, 2),
                        norm="l1"),
        "ranksvm": dict(C=0.003, diff="abs", max_pairs=20_000, neg_per_query=None, add_true_match=True,
                        uniform_prior=10.0, max_iter=2000, tol=1e-4),
    },
    dase_mems={
        # the full profile takes the quick profile's validated choices (not re-validated at full scale)
        "dase_sketchy": dict(arch="resnet50", input_size=224, iterations=600, batch_size=64, embed_dim=512,
                             n_categories=None, lr=1e-3, warmup=30, test_views=2, test_distance="flipmin",
                             mems_margin=2.0, center_lr_mult=1.0, log_every=50),
        "dase_sketchy_imagenet": dict(arch="efficientnet_lite0", init="imagenet", input_size=224, iterations=600,
                                      batch_size=64, embed_dim=512, n_categories=None, lr=1e-3, warmup=30,
                                      test_views=2, test_distance="flipmin", se_init="open",
                                      mems_center_init="photos", mems_anneal=0.5, center_lr_mult=1.0,
                                      mems_margin=3.0, log_every=50),
        "dase_qmul": dict(arch="sketchanet", input_size=_CROP, iterations=3000, batch_size=64, embed_dim=256,
                          lr=1e-4, mems_margin=2.0, center_lr_mult=1.0, warmup=100, test_views=10,
                          log_every=100),
    },
    init_lrs=(1e-3, 3e-3, 1e-2), init_cache_views=10, settings_from="quick",
    # rough seconds per job on an H100/H200; benchmarks/grid_cost.py measures the DSSA ones on the device at hand
    grid_cost_s={"pretrain": 200.0, "cache_views": 240.0, "conv4": 40.0, "conv5": 10.0, "classical": 15.0,
                 "dase": 60.0, "pretrain_qmul": 250.0, "init_recipe": 360.0},
)

#: the adapted ImageNet trunk the cpu profile starts from (committed; ``python -m sbir_lib.training.trunk_adapt run``)
CPU_TRUNK = "results/trunk/efficientnet_lite0_b15.cpu.pt"

CPU = Profile(
    name="cpu",
    summary="the DSSA tables on an adapted ImageNet trunk (EfficientNet-Lite0), frozen and stored, 2 CPU cores",
    device="cpu", trains_on_cpu=True, paper_comparable=True, real_data_only=True, seeds=(0, 1, 2), test_views=10,
    validation_size=60,
    # the DSSA head (conv5's role: a 1x1 convolution, attention, CFF, fc6/fc7, the energy) on the frozen trunk's
    # stored maps; lr, batch and iterations chosen on validation (results/tuning/cpu_recipe.cpu.json; tests/test_cpu_recipe.py)
    # (lr 3e-3, 32 triplets, 100 iterations: tune-cpu's choice; every recipe tried saturates within ~100 steps)
    triplet=dict(backbone="efficientnet_lite0_b15", init=CPU_TRUNK, trunk_store=True, cache_views=8,
                 iterations=100, batch_size=32, lr=3e-3, checkpoint_every=100, log_every=10, channels_last=False),
    experiments={"curve": {"val_size": 60, "eval_every": 100}},
    pretrain=QUICK.pretrain, classical=FULL.classical, dase_mems=QUICK.dase_mems,
    init_lrs=QUICK.init_lrs, init_cache_views=8, settings_from="quick",
    grid_cost_s={"pretrain": 200.0, "cache_views": 600.0, "conv4": 70.0, "conv5": 50.0, "classical": 20.0,
                 "dase": 40.0, "pretrain_qmul": 300.0, "init_recipe": 1500.0},
)

#: the profile of a notebook or command that names none (``$SBIR_PROFILE`` is read by the entry points)
DEFAULT_PROFILE = "quick"
#: every profile by name, in the order the CLI lists them
PROFILES: dict[str, Profile] = {p.name: p for p in (QUICK, CPU, FULL)}
PROFILE_NAMES = tuple(PROFILES)


def get_profile(name: str) -> Profile:
    """The :class:`Profile` called ``name``; an unknown name is refused listing the profiles."""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {name!r}") from None


def as_profile(profile: "str | Profile") -> Profile:
    """``profile`` itself, or the profile of that name (:func:`get_profile`)."""
    return profile if isinstance(profile, Profile) else get_profile(profile)
