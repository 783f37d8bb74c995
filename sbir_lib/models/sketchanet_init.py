"""Initialising Sketch-a-Net / DSSA from a file: a torch checkpoint or the authors' TensorFlow weights.

Taught in ``notebooks/01_triplet_loss.ipynb`` (where a pretrained Sketch-a-Net comes from) and used by
:mod:`sbir_lib.training.triplet` (``--init``), :mod:`sbir_lib.training.pretrain` and :mod:`sbir_lib.models.dase`.

The DSSA authors' TensorFlow code (yuqian1023/Deep_SBIR_tf) reads ``sketchnet_init.npy`` as
``{scope: {"weights": w, "biases": b}}`` or ``{scope: [w, b]}`` and writes its trained models as the
flat ``{variable_name: array}`` of ``tf.global_variables()`` (``triplet_sbir_train.py`` lines 93-117 and
217): ``conv1_s1/weights:0`` ... ``fc7_sketch/biases:0``, the attention's ``conv1/weights:0`` and
``conv2/weights:0`` at top level, plus optimiser slots (``.../Momentum:0``) and ``Variable:0``, which are
ignored. Those networks see ``x - 250.42`` on the 0..255 pixel scale (``triplet_sbir_train.py`` line 170);
ours see ``x/255 - 250.42/255`` (:func:`sbir_lib.data.augment.to_input`), so TF weights get conv1 scaled by 255,
which is exactly equivalent (``input_scale``, automatic for ``.npy`` files).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from sbir_lib.models.sketchanet import LAYERS, SketchANet

__all__ = ["AUTHOR_SCOPES", "InitReport", "TF_INPUT_SCALE", "load_sketchanet_init", "read_tf_npy"]

#: the authors' TF scope of each Sketch-a-Net layer (``triplet_sbir_train.py`` lines 61-77)
AUTHOR_SCOPES: dict[str, str] = {"conv1": "conv1_s1", "conv2": "conv2_s1", "conv3": "conv3_s1",
                                 "conv4": "conv4_s1", "conv5": "conv5_s1", "fc6": "fc6_s1", "fc7": "fc7_sketch"}
#: the attention's TF scopes (top level, ``triplet_sbir_train.py`` lines 21 and 25) -> our module names
AUTHOR_ATTENTION_SCOPES: dict[str, str] = {"conv1": "conv1", "conv2": "conv2"}
#: conv1 multiplier for weights trained on the 0..255 scale (``x - 250.42``)
TF_INPUT_SCALE = 255.0
_FLAT_KEY = re.compile(r"^(?P<scope>.+)/(?P<kind>weights|biases|kernel|bias):\d+$")


@dataclass
class InitReport:
    """What ``load_sketchanet_init`` did: layers loaded, model layers not in the file, file entries
    unused, and the input scale conv1 was multiplied by."""

    source: str
    format: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    input_scale: float = 1.0

    def __str__(self) -> str:
        return (f"init from {self.source} ({self.format}, input scale {self.input_scale:g}): loaded "
                f"{', '.join(self.loaded) or '-'}; missing {', '.join(self.missing) or '-'}; "
                f"ignored {', '.join(self.ignored) or '-'}")


def read_tf_npy(path: str | os.PathLike) -> tuple[dict[str, Any], str, list[str]]:
    """``(layers, format, ignored)`` of a TF ``.npy``: ``{scope: [weights, biases] | {weights, biases}}``
    (format ``tf_npy``) or the flat ``{"scope/weights:0": w, "scope/biases:0": b, ...}`` that
    ``triplet_sbir_train.py`` saves (format ``tf_npy_flat``; entries that are not weights or biases,
    e.g. ``.../Momentum:0`` slots, are returned in ``ignored``). **Unpickles the file: trusted files only.**"""
    raw = np.load(path, allow_pickle=True, encoding="latin1")
    if isinstance(raw, np.ndarray) and raw.dtype == object and raw.shape == ():
        raw = raw.item()
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a pickled dict {{layer: [weights, biases]}} or "
                         f"{{variable_name: array}}; got {type(raw).__name__}")
    raw = {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in raw.items()}
    flat = [k for k in raw if "/" in k or ":" in k]
    if not flat:
        return raw, "tf_npy", []
    layers: dict[str, dict[str, Any]] = {}
    ignored = []
    for k, v in raw.items():
        m = _FLAT_KEY.match(k)
        if m is None:
            ignored.append(k)
            continue
        kind = "weights" if m.group("kind") in ("weights", "kernel") else "biases"
        layers.setdefault(m.group("scope"), {})[kind] = v
    incomplete = [s for s, d in layers.items() if len(d) != 2]
    for s in incomplete:
        ignored.extend(f"{s}/{k}" for k in layers.pop(s))
    return layers, "tf_npy_flat", sorted(ignored)


_TF_WEIGHT_KEYS = ("weights", "weight", "w", "kernel", "W")
_TF_BIAS_KEYS = ("biases", "bias", "b")


def _split_wb(layer: str, entry: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(entry, Mapping):
        w = next((entry[k] for k in _TF_WEIGHT_KEYS if k in entry), None)
        b = next((entry[k] for k in _TF_BIAS_KEYS if k in entry), None)
        if w is None or b is None:
            raise ValueError(f"layer {layer!r}: expected keys weights/biases, got {sorted(entry)}")
    elif isinstance(entry, (list, tuple)) and len(entry) == 2:
        w, b = entry
    else:
        raise ValueError(f"layer {layer!r}: expected [weights, biases], got {type(entry).__name__}")
    return np.asarray(w), np.asarray(b)


def _find_tf_key(layer: str, keys: list[str], name_map: Mapping[str, str] | None) -> str | None:
    if name_map and layer in name_map:
        if name_map[layer] not in keys:
            raise ValueError(f"name_map[{layer!r}] = {name_map[layer]!r} is not in the file; it has {', '.join(keys)}")
        return name_map[layer]
    if AUTHOR_SCOPES[layer] in keys:
        return AUTHOR_SCOPES[layer]
    if layer in keys:
        return layer
    cands = [k for k in keys if k.startswith(layer) and not k[len(layer):len(layer) + 1].isdigit()]
    if len(cands) > 1:
        raise ValueError(f"layer {layer!r} matches several entries ({', '.join(cands)}); "
                         f"choose one with name_map={{{layer!r}: ...}}")
    return cands[0] if cands else None


def _tf_to_torch_weight(layer: str, w: np.ndarray, target: nn.Module, feature_shape: tuple[int, int, int],
                        fc6_layout: str) -> np.ndarray:
    expected = tuple(target.weight.shape)
    if isinstance(target, nn.Conv2d):
        if w.ndim != 4:
            raise ValueError(f"layer {layer!r}: a TF conv kernel is [kh, kw, in, out]; got shape {w.shape}")
        t = w.transpose(3, 2, 0, 1)  # [out, in, kh, kw]
    elif w.ndim == 4:  # an fc layer stored as a conv kernel [kh, kw, in, out] (Sketch-a-Net style)
        t = w.transpose(3, 2, 0, 1).reshape(w.shape[3], -1)  # flattens (in, kh, kw) = torch's CHW order
    elif w.ndim == 2:
        c, h, wd = feature_shape
        if layer == "fc6" and fc6_layout == "hwc" and w.shape[0] == c * h * wd:
            # TF flattened the [H, W, C] map: row index (y * W + x) * C + ch; torch's is ch * H * W + y * W + x
            t = w.reshape(h, wd, c, w.shape[1]).transpose(3, 2, 0, 1).reshape(w.shape[1], -1)
        else:
            t = w.T  # [in, out] -> [out, in]
    else:
        raise ValueError(f"layer {layer!r}: a TF fc weight is [in, out]; got shape {w.shape}")
    if tuple(t.shape) != expected:
        raise ValueError(f"layer {layer!r}: shape mismatch: TF weight {tuple(w.shape)} converts to "
                         f"{tuple(t.shape)} but the model expects {expected}")
    return np.ascontiguousarray(t)


def _copy_(param: torch.Tensor, value, layer: str, what: str) -> None:
    v = torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
    if tuple(v.shape) != tuple(param.shape):
        raise ValueError(f"layer {layer!r}: {what} shape mismatch: file has {tuple(v.shape)}, "
                         f"model expects {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(v.to(dtype=param.dtype, device=param.device))


def _unwrap_state_dict(obj: Any) -> dict[str, Any]:
    for _ in range(3):
        if isinstance(obj, Mapping):
            for key in ("model", "state_dict", "model_state_dict", "net"):
                if key in obj and isinstance(obj[key], Mapping):
                    obj = obj[key]
                    break
            else:
                break
    if not isinstance(obj, Mapping):
        raise ValueError(f"checkpoint is not a state dict (got {type(obj).__name__})")
    out = {}
    for k, v in obj.items():
        if isinstance(k, str) and isinstance(v, torch.Tensor):
            out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def load_sketchanet_init(model: nn.Module, path: str | os.PathLike, *, strict: bool = False,
                         name_map: Mapping[str, str] | None = None, fc6_layout: str = "hwc",
                         input_scale: float | None = None, trust_pickle: bool = False) -> InitReport:
    """Initialise ``model`` (a ``DSSANet`` or ``SketchANet``) from a file; return an ``InitReport``.

    Formats:

    - a torch checkpoint (``.pt``/``.pth``/...): a state dict of a ``SketchANet`` (``conv1.weight``...)
      or a ``DSSANet`` (``backbone.conv1.weight``..., ``attention.*``), possibly under a ``"model"`` /
      ``"state_dict"`` key and/or with a ``module.`` prefix. Attention weights are loaded into a
      ``DSSANet`` with attention when present. Loaded with ``torch.load(weights_only=True)`` unless
      ``trust_pickle=True``.
    - the DSSA authors' TensorFlow ``.npy`` (:func:`read_tf_npy`): ``{layer: [weights, biases]}`` or the
      flat ``{variable_name: array}`` of a trained model, whose attention (top-level ``conv1``/``conv2``)
      is loaded into a ``DSSANet`` with attention. The authors' scope names (``AUTHOR_SCOPES``) win over
      prefix matches, so the attention's ``conv1`` never lands in Sketch-a-Net's conv1. Conv kernels ``[kh, kw, in, out] -> [out, in, kh, kw]``;
      fc weights ``[in, out] -> [out, in]``; fc6's input is TF's HWC flattening of the ``7 x 7 x 256``
      map and is permuted to torch's CHW order (``fc6_layout="chw"`` if the file is already CHW).
      fc layers stored as conv kernels (``[7, 7, 256, 512]``) are accepted too. Names match exactly or
      by prefix (``conv1_s1`` for ``conv1``); ``name_map`` picks entries explicitly. **This unpickles
      the file: load only files you trust.**

    ``input_scale``: conv1's weights are multiplied by it (biases untouched), which is exactly
    equivalent to feeding ``input_scale * x``. Our inputs are ``x/255 - mean`` (``sbir_lib.data.datasets``); a
    network trained on the 0..255 scale (``x - 250.42``) needs ``255``. ``None`` (default) picks
    ``TF_INPUT_SCALE`` = 255 for ``.npy`` (the authors' TF weights) and 1 for torch checkpoints (ours,
    trained on our input scale); the report records the value used.

    Any shape mismatch raises ``ValueError`` naming the layer. ``strict=True`` also raises when a
    backbone layer is missing from the file.
    """
    if fc6_layout not in ("hwc", "chw"):
        raise ValueError(f"fc6_layout must be one of hwc, chw; got {fc6_layout!r}")
    if isinstance(getattr(model, "backbone", None), SketchANet):  # a DSSANet on Sketch-a-Net
        backbone, attention = model.backbone, model.attention
    elif isinstance(model, SketchANet):
        backbone, attention = model, None
    else:
        raise TypeError(f"model must be a Sketch-a-Net or a DSSANet on Sketch-a-Net; got {type(model).__name__}"
                        + (" with another backbone (--init imagenet loads the ImageNet track's trunk)"
                           if hasattr(model, "backbone") else ""))
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no init weights at {path}")

    if path.suffix == ".npy":
        raw, fmt, ignored = read_tf_npy(path)
        keys = list(raw)
        report = InitReport(str(path), fmt)
        used = set()
        for layer in LAYERS:
            key = _find_tf_key(layer, keys, name_map)
            if key is None:
                report.missing.append(layer)
                continue
            w, b = _split_wb(key, raw[key])
            target = getattr(backbone, layer)
            wt = _tf_to_torch_weight(layer, w, target, backbone.feature_shape, fc6_layout)
            _copy_(target.weight, wt, layer, "weight")
            _copy_(target.bias, b.reshape(-1), layer, "bias")
            report.loaded.append(layer)
            used.add(key)
        att_scopes = [s for s in AUTHOR_ATTENTION_SCOPES.values() if s in raw and s not in used]
        if attention is not None and len(att_scopes) == len(AUTHOR_ATTENTION_SCOPES):
            for ours, scope in AUTHOR_ATTENTION_SCOPES.items():
                w, b = _split_wb(scope, raw[scope])
                target = getattr(attention, ours)
                _copy_(target.weight, np.ascontiguousarray(np.asarray(w).transpose(3, 2, 0, 1)), "attention",
                       f"{ours}.weight")
                _copy_(target.bias, np.asarray(b).reshape(-1), "attention", f"{ours}.bias")
                used.add(scope)
            report.loaded.append("attention")
        elif attention is not None:
            report.missing.append("attention")
        report.ignored = [k for k in keys if k not in used] + ignored
        if input_scale is None:
            input_scale = TF_INPUT_SCALE
    else:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
        sd = _unwrap_state_dict(obj)
        report = InitReport(str(path), "torch")
        used = set()
        for layer in LAYERS:
            target = getattr(backbone, layer)
            found = False
            for prefix in ("", "backbone."):
                wk, bk = f"{prefix}{layer}.weight", f"{prefix}{layer}.bias"
                if wk in sd and bk in sd:
                    _copy_(target.weight, sd[wk], layer, "weight")
                    _copy_(target.bias, sd[bk], layer, "bias")
                    used.update((wk, bk))
                    found = True
                    break
            (report.loaded if found else report.missing).append(layer)
        if attention is not None:
            att_keys = {k[len("attention."):]: k for k in sd if k.startswith("attention.")}
            if att_keys:
                own = attention.state_dict()
                if set(att_keys) != set(own):
                    raise ValueError(f"layer 'attention': checkpoint has {sorted(att_keys)}, model has {sorted(own)}")
                for sub, param in attention.named_parameters():
                    _copy_(param, sd[att_keys[sub]], "attention", sub)
                used.update(att_keys.values())
                report.loaded.append("attention")
            else:
                report.missing.append("attention")
        report.ignored = sorted(k for k in sd if k not in used)
        if input_scale is None:
            input_scale = 1.0
    report.input_scale = float(input_scale)
    if input_scale != 1.0 and "conv1" in report.loaded:
        with torch.no_grad():
            backbone.conv1.weight.mul_(float(input_scale))
    backbone_missing = [m for m in report.missing if m in LAYERS]
    if strict and backbone_missing:
        raise ValueError(f"{path}: no weights for layer(s) {', '.join(backbone_missing)} (strict=True); {report}")
    return report
