"""Where each DASE/MEMS setting comes from: the validation search (what is searched, and its record under
``results/tuning/``) or the authors' code (cited by file and line). Every record names, per setting, what
chose it (``settings_chosen_on``, :func:`settings_provenance`); :mod:`sbir_lib.experiments.tuning` runs the
search.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from sbir_lib.training.class_pairs import RunConfig
from sbir_lib.core import config as _config
from sbir_lib.core.profiles import as_profile

#: Candidates per experiment: stages ``(rows, {setting: candidates})``; rows are scored on the mean criterion.
SEARCH: dict[str, list[tuple[tuple[str, ...], dict[str, list]]]] = {
    # from scratch: the learning rate of a short run first (the authors' 1e-3 first), then where the MEMS centres
    # start (the authors' random centres first) and the margin
    "dase_sketchy": [(("dase_softmax", "dase_mems"), {"lr": [1e-3, 3e-3]}),
                     (("dase_mems",), {"mems_center_init": ["random", "photos"]}),
                     (("dase_mems",), {"mems_margin": [2.0, 3.0, 4.0], "center_lr_mult": [1.0, 10.0]})],
    # ImageNet-initialised EfficientNet-Lite0: first what dase_qmul needed for fine-tuning a pretrained network
    # briefly (its batch-norm statistics, the gates of the inserted blocks, where the centres start); then, as
    # with the authors' schedule (margin reached at half the run) every margin-2 candidate collapsed in an
    # earlier search, the annealing span (authors' first) and the margin
    "dase_sketchy_imagenet": [(("dase_softmax", "dase_mems"), {"bn_frozen": [False, True],
                                                               "se_init": ["random", "open"]}),
                              (("dase_mems",), {"mems_center_init": ["random", "photos"]}),
                              (("dase_mems",), {"mems_anneal": [0.5, 1.0], "center_lr_mult": [1.0, 10.0]}),
                              (("dase_mems",), {"mems_margin": [2.0, 3.0, 4.0]})],
    # the trunk fine-tuned from a pretrained start: its batch-norm statistics and the gates of the SE/DASE blocks
    # inserted into it first (the authors' values first: batch norms training, random gates, random MEMS centres)
    "dase_qmul": [(("dase_triplet", "dase_mems"), {"bn_frozen": [False, True], "se_init": ["random", "open"]}),
                  (("dase_mems",), {"mems_center_init": ["random", "photos"]}),
                  (("dase_triplet", "dase_mems"), {"lr": [1e-4, 1e-3]}),
                  (("dase_mems",), {"mems_margin": [2.0, 3.0, 4.0], "center_lr_mult": [1.0, 10.0]})],
}

TUNED_SETTINGS = {exp: tuple(dict.fromkeys(k for _, grid in stages for k in grid)) for exp, stages in SEARCH.items()}

CRITERION = {"category": ("mAP@all", "acc@1"), "instance": ("acc@10", "acc@1")}

TUNING_DATASET = {"dase_sketchy": "sketchy_mini", "dase_sketchy_imagenet": "sketchy_mini", "dase_qmul": "shoes"}

_REPO = "Ben-Louis/SBIR-DASE-MEMS@589f789"

#: Settings that follow the authors' code (not searched), with where the code says so.
AUTHORS_SETTINGS = {
    "mems_anneal": f"the authors' code ({_REPO} main.py:38-39 and models/losses.py:75-80): the MEMS margin rises "
                   "linearly from 1 over the first 100,000 of 200,000 steps; scaled to our run: the first half",
    "cosface_anneal": f"the authors' code ({_REPO} models/losses.py:59-65 with main.py:39): the CosFace margin "
                      "rises linearly from 0 over the first half of the run",
    "cosface_margin": "the authors' README.md:63 (--margin=0.35 --scale=32 for CosFace)",
    "cosface_scale": "the authors' README.md:63 (--scale=32)",
    "test_distance": "the authors' tester.py:41-45, 73-81 (min over the 4 flip combinations) for the category "
                     "level; dase_qmul keeps DSSA's test views (mean over the views) to compare with DSSA",
    "weight_decay": "the authors' trainer.py:39-45 (1e-4 on the network, none on the loss's parameters)",
}

def tuning_path(experiment: str, profile: str, results=None) -> Path:
    return _config.results_root(results) / "tuning" / f"{experiment}.{profile}.json"

def load_tuning(experiment: str, profile: str, results=None, partial: bool = False) -> dict | None:
    """The selection record of ``experiment`` / ``profile``, or ``None``; an unfinished one only with ``partial``."""
    p = tuning_path(experiment, profile, results)
    rec = json.loads(p.read_text()) if p.exists() else None
    return rec if rec is not None and (partial or rec.get("complete", True)) else None

def settings_provenance(experiment: str, profile: str, cfg: RunConfig, results=None) -> dict[str, str]:
    """For a run's ``cfg``: what chose each DASE/MEMS setting (the validation record, the authors' code, or
    nothing: a profile default / an override), one line per setting; recorded as ``settings_chosen_on``."""
    root = _config.results_root(results)
    out: dict[str, str] = {}
    own = load_tuning(experiment, profile, root)
    source = as_profile(profile).settings_from  # the profile whose validated settings this one takes
    inherited = load_tuning(experiment, source, root) if source else None
    rel = lambda p: str(p.relative_to(root.parent)) if p.is_relative_to(root.parent) else str(p)  # noqa: E731
    for name in TUNED_SETTINGS.get(experiment, ()):
        if not _applies(name, cfg):
            continue
        value = getattr(cfg, name)
        if own is not None and name in own["chosen"]:
            if _same(own["chosen"][name], value):
                none = any(st.get("all_collapsed") and name in st["grid"] for st in own["stages"])
                out[name] = (("every candidate collapsed on the " if none else "") +
                             f"{own['split']}, on {own['dataset']} ({rel(tuning_path(experiment, profile, root))})"
                             + ("; the first candidate (the authors' / profile's value) kept" if none else ""))
                default = getattr(RunConfig, name, None)
                if name in AUTHORS_SETTINGS and default is not None and not _same(default, value):
                    out[name] += (f"; differs from the authors' value {default}: {AUTHORS_SETTINGS[name]} "
                                  "(it did worse on the validation split, see the record)")
            else:
                out[name] = (f"override: {value} is not the validated value {own['chosen'][name]} "
                             f"({rel(tuning_path(experiment, profile, root))})")
        elif inherited is not None and name in inherited["chosen"] and _same(inherited["chosen"][name], value):
            out[name] = (f"validation split of the {source} profile ({rel(tuning_path(experiment, source, root))}); "
                         f"not re-validated in the {profile} profile")
        else:
            out[name] = f"not validated: profile default (no {rel(tuning_path(experiment, profile, root))})"
    for name, why in AUTHORS_SETTINGS.items():
        if not _applies(name, cfg) or name in out:  # searched on the validation split for this experiment
            continue
        if name == "test_distance":
            why = (AUTHORS_SETTINGS[name] if cfg.test_distance == "flipmin" else
                   f"{cfg.test_distance} over {cfg.test_views} test view(s): DSSA's protocol, not the authors' "
                   "flip-min (tester.py:73-81)")
        out[name] = why
    return out

def _applies(name: str, cfg: RunConfig) -> bool:
    """Whether setting ``name`` plays a part in a run of ``cfg`` (MEMS settings only for MEMS, ...)."""
    if name.startswith("mems_") or name == "center_lr_mult":
        return cfg.loss == "mems"
    if name.startswith("cosface_"):
        return cfg.loss == "cosface"
    if name == "se_init":
        return cfg.blocks != "none"
    return True

def _same(a, b) -> bool:
    numbers = all(isinstance(v, (int, float)) for v in (a, b))
    return math.isclose(float(a), float(b), rel_tol=1e-9) if numbers else a == b
