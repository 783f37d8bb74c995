"""Tests for sbir_lib.training.engine: the core the triplet, class-pair and pretraining recipes share."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from sbir_lib.training import engine


def test_train_step_updates_and_returns_detached_loss():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = torch.optim.SGD([w], lr=0.1)
    loss = (w ** 2).sum()
    out = engine.train_step(opt, loss)
    assert not out.requires_grad and float(out) == pytest.approx(5.0)
    assert torch.allclose(w.detach(), torch.tensor([0.8, -1.6]))  # w - 0.1 * 2w


def test_loss_log_means_every_k_steps_and_refuses_nan():
    h: dict = {}
    log = engine.LossLog(h, every=2, total=5)
    means = [log.add(torch.tensor(float(v)), i + 1, margin=i) for i, v in enumerate([1, 3, 5, 7, 9])]
    assert means == [None, 2.0, None, 6.0, 9.0]
    assert h["iteration"] == [2, 4, 5] and h["loss"] == [2.0, 6.0, 9.0] and h["margin"] == [1, 3, 4]
    bad = engine.LossLog({}, every=1, total=3, step_key="step")
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        bad.add(torch.tensor(float("nan")), 1)


@dataclasses.dataclass
class _Cfg:
    lr: float = 0.1
    steps: int = 3
    log_every: int = 1

    def validate(self):
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        return self


def test_profile_config_pattern_and_key():
    settings = {"steps": 2}  # a profile's recipe table (sbir_lib.core.profiles)
    c = engine.profile_config(_Cfg, settings, lr=None)
    assert c.steps == 2 and c.lr == 0.1  # None overrides are ignored
    assert settings == {"steps": 2}  # the profile's table is never modified
    with pytest.raises(ValueError, match="unknown training option"):
        engine.profile_config(_Cfg, settings, lrr=1.0)
    with pytest.raises(ValueError, match="lr must be"):
        engine.profile_config(_Cfg, {"steps": 20}, lr=-1.0)
    a, b = _Cfg(log_every=1), _Cfg(log_every=50)
    assert engine.config_key(a, ignore=("log_every",)) == engine.config_key(b, ignore=("log_every",))
    assert engine.config_key(a) != engine.config_key(b)


def test_autocast_is_a_no_op_on_the_cpu():
    with engine.autocast(torch.device("cpu"), True):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32
