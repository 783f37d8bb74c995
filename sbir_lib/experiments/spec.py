"""What one run is: a typed :class:`RunSpec` with a tagged :class:`Init`, resolved once at the entry point.

Taught in: ``notebooks/05_reproducing_the_tables.ipynb`` (every table cell is one run of this shape).

A table row is recorded under its name, e.g. ``full`` or ``full@sketchy_mini``; the part after ``@`` names how
the network starts. :meth:`RunSpec.resolve` parses it once (with an explicit ``--init``, which wins except over
``@untrained``), checks that a stand-in checkpoint exists (an error naming the command that makes it), and
says which runner records it (:attr:`RunSpec.kind`, the key of :data:`sbir_lib.experiments.runner.RUNNERS`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sbir_lib.core import config as _config
from sbir_lib.core.profiles import Profile, as_profile
from sbir_lib.core.records import init_checkpoint, record_path
from sbir_lib.experiments import dase_mems

__all__ = ["Init", "RunSpec", "CLASSICAL", "split_row"]

#: the classical Table 1 rows (HOG features + rankSVM, no network)
CLASSICAL = ("hog_bow_ranksvm", "dense_hog_ranksvm")

InitKind = Literal["scratch", "untrained", "imagenet", "checkpoint", "file"]


def split_row(row: str) -> tuple[str, str | None]:
    """``"full@sketchy_mini"`` -> ``("full", "sketchy_mini")``; ``"full"`` -> ``("full", None)``."""
    variant, _, init_name = row.partition("@")
    return variant, (init_name or None)


@dataclass(frozen=True)
class Init:
    """How a network starts.

    ``scratch``: the authors' initialisers (the profile's own ``init`` setting, if it has one, applies);
    ``untrained``: evaluated as initialised, without a training step; ``imagenet``: the ImageNet
    EfficientNet-Lite0 trunk (:mod:`sbir_lib.models.imagenet`); ``checkpoint``: a pretrained Sketch-a-Net
    stand-in ``checkpoints/sketchanet_<name>[.<profile>].pt`` (:mod:`sbir_lib.training.pretrain`); ``file``:
    weights given by path (a ``.pt`` state dict or the authors' TF ``.npy``)."""

    kind: InitKind = "scratch"
    name: str | None = None
    path: str | None = None
    #: the ``--init`` text as given (``None``: not given); DASE/MEMS runs validate it in their own config
    given: str | None = None

    @property
    def config_value(self) -> str | None:
        """The ``init`` option of :class:`sbir_lib.training.triplet.TrainConfig` (``None``: the profile's)."""
        if self.kind in ("checkpoint", "file"):
            return self.path
        return "imagenet" if self.kind == "imagenet" else None

    @classmethod
    def of(cls, row_init: str | None, explicit: str | None, profile: Profile) -> "Init":
        """The init of a row ``variant@row_init`` run with ``--init explicit`` (``None``: not given)."""
        if row_init == "untrained":
            return cls("untrained", given=explicit)
        if explicit is not None and explicit != "scratch":
            return (cls("imagenet", given=explicit) if explicit == "imagenet"
                    else cls("file", path=str(explicit), given=explicit))
        if row_init is None:
            return cls("scratch", given=explicit)
        if row_init == "imagenet":
            return cls("imagenet", given=explicit)
        ckpt = init_checkpoint(row_init, profile)
        if not ckpt.exists():
            raise FileNotFoundError(
                f"the row's init {row_init!r} needs the pretrained Sketch-a-Net {ckpt}; make it with: "
                f"python -m sbir_lib.training.pretrain run --profile {profile.name} --init-name {row_init}")
        root = _config.repo_root()
        shown = str(ckpt.relative_to(root)) if root and ckpt.is_relative_to(root) else str(ckpt)
        return cls("checkpoint", name=row_init, path=shown, given=explicit)


@dataclass(frozen=True)
class RunSpec:
    """One run: a row of an experiment on a dataset for a seed, in a profile, from an init.

    ``kind`` is the runner that records it: ``dase_mems`` (category-/instance-level DASE/MEMS runs),
    ``classical`` (Table 1's HOG rows), ``untrained`` (``@untrained`` rows) or ``dssa`` (every trained DSSA
    row)."""

    experiment: str
    dataset: str
    row: str
    seed: int
    profile: Profile
    init: Init
    kind: str

    @property
    def variant(self) -> str:
        """The network the row trains (the row without its ``@init``)."""
        return split_row(self.row)[0]

    def record_path(self, results: Path) -> Path:
        return record_path(results, self.experiment, self.dataset, self.row, self.seed, self.profile)

    @classmethod
    def resolve(cls, experiment: str, dataset: str, row: str, seed: int, profile: "str | Profile",
                init: str | None = None) -> "RunSpec":
        """Parse ``row`` and ``init`` once (the entry point's job) into a spec its runner reads."""
        prof = as_profile(profile)
        if experiment in dase_mems.EXPERIMENTS:  # its own inits (RunConfig.init), checked by its runner
            return cls(experiment, dataset, row, int(seed), prof, Init.of(None, init, prof), "dase_mems")
        if row in CLASSICAL:
            return cls(experiment, dataset, row, int(seed), prof, Init(), "classical")
        the_init = Init.of(split_row(row)[1], init, prof)
        kind = "untrained" if the_init.kind == "untrained" else "dssa"
        return cls(experiment, dataset, row, int(seed), prof, the_init, kind)
