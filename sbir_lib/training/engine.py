"""The training core that every recipe shares: seeding, bf16 autocast, the config pattern, one
optimisation step and the loss log.

The three recipes built on it:

- :mod:`sbir_lib.training.triplet`: DSSA's triplet recipe (notebooks 01-05);
- :mod:`sbir_lib.training.class_pairs`: DASE/MEMS's class-pair recipe (notebooks 07-08);
- :mod:`sbir_lib.training.pretrain`: the offline Sketch-a-Net pretraining stand-in.

Each recipe draws a batch, turns it into a scalar loss, and hands it to :func:`train_step`, the few lines
notebook 01 shows::

    loss = loss_of_batch()          # forward pass: embeddings -> energy / logits -> loss
    train_step(optimizer, loss)     # zero the gradients, backpropagate, update
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from typing import Any, Iterable, Mapping

import numpy as np
import torch



def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (every run starts from its ``seed``)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX tiles or AVX512-BF16). Without it, PyTorch emulates bf16
    and an autocast forward pass is several times *slower* than float32 (an AVX2-only EPYC: 4.8 against 17.4
    crops/s through the cpu profile's trunk), so the CPU's bf16 paths ask this first."""
    cpu = getattr(torch, "cpu", None)
    checks = (getattr(cpu, "_is_amx_tile_supported", None), getattr(cpu, "_is_avx512_bf16_supported", None))
    return any(bool(f()) for f in checks if f is not None)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on a CUDA device when ``enabled``; a no-op context elsewhere (CPU runs stay float32)."""
    device = torch.device(device)
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def train_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
    """One optimisation step on ``loss``: zero the gradients, backpropagate, update the parameters.
    Returns the loss, detached (no device sync: the caller averages a few before reading one)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


class LossLog:
    """Running mean of the loss, written to ``history`` every ``every`` steps (and at the last one).

    Raises :class:`FloatingPointError`, naming the fix, as soon as a logged mean is not finite."""

    def __init__(self, history: dict[str, list], every: int, total: int, bar=None, step_key: str = "iteration"):
        self.history, self.every, self.total, self.bar = history, max(1, int(every)), total, bar
        self.step_key = step_key
        self.running: list[torch.Tensor] = []
        history.setdefault(step_key, [])
        history.setdefault("loss", [])

    def add(self, loss: torch.Tensor, done: int, **extra) -> float | None:
        """Record the detached ``loss`` of step ``done`` (1-based); returns the logged mean on a log step.
        ``extra``: values written beside it on log steps (e.g. a margin schedule)."""
        self.running.append(loss)
        if done % self.every and done != self.total:
            return None
        mean = float(torch.stack(self.running).mean())
        self.running.clear()
        self.history[self.step_key].append(done)
        self.history["loss"].append(round(mean, 6))
        for k, v in extra.items():
            self.history.setdefault(k, []).append(v)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{mean:.4f}")
        if not math.isfinite(mean):
            raise FloatingPointError(f"loss became {mean} at iteration {done}; lower the learning rate (lr)")
        return mean


# ----------------------------------------------------------------------------- the config pattern

def config_key(cfg: Any, ignore: Iterable[str] = ()) -> str:
    """A short hash of the settings of a config dataclass that change results (``ignore``: logging
    cadence and the like). Records store it; equal keys mean the same run."""
    d = dataclasses.asdict(cfg)
    for k in ignore:
        d.pop(k, None)
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def profile_config(cls, settings: Mapping[str, Any], /, **overrides):
    """The one config pattern of every recipe: ``cls(**settings, **overrides).validate()``.

    ``settings`` is the recipe's table of a :class:`sbir_lib.core.profiles.Profile` (``profile.triplet``, ...);
    overrides set to ``None`` are ignored; an unknown option raises, listing the allowed ones."""
    fields = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ValueError(f"unknown training option(s) {bad}; allowed: {sorted(fields)}")
    kw = dict(settings)
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**kw).validate()
