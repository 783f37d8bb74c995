"""Tests for sbir_lib.course.context: setup, the train-or-load cache and the paper comparison (no training)."""
from __future__ import annotations

import math

import numpy as np
import torch
import pytest

from sbir_lib.core import records as R
from sbir_lib import course
from sbir_lib.experiments import runner as E


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("SBIR_RESULTS_ROOT", str(tmp_path))
    return tmp_path


def fake_record(results, experiment, dataset, variant, acc1, seed=0, profile="quick", n=5):
    dist = np.arange(n * n, dtype=np.float32).reshape(n, n)[::-1].copy()
    rec = {"experiment": experiment, "dataset": dataset, "variant": variant, "seed": seed, "profile": profile,
           "metrics": {"acc@1": acc1, "acc@5": 0.9, "acc@10": 1.0}, "acc_curve": [acc1, 1.0]}
    R.write_record(R.record_path(results, experiment, dataset, variant, seed, profile), rec, dist)
    return dist


def test_setup_checks_profile():
    with pytest.raises(ValueError, match="quick, full"):
        course.setup("fast")


def test_setup_quick(capsys):
    ctx = course.setup("quick", device="cpu")
    assert ctx.profile == "quick" and ctx.seeds == [0] and ctx.train_missing
    assert "profile=quick" in capsys.readouterr().out


def test_full_without_gpu_reads_only(results, capsys):
    ctx = course.setup("full", device="cpu")
    assert not ctx.train_missing and ctx.seeds == [0, 1, 2]
    capsys.readouterr()
    assert ctx.record("table2", "shoes", "base") is None
    out = capsys.readouterr().out
    assert "not recorded" in out and "python -m sbir_lib.experiments run --experiment table2" in out
    assert ctx.distances("table2", "shoes", "base") is None
    assert ctx.trained("table4", "shoes", "base+att") is None


def test_record_distances_and_compare(results, monkeypatch, capsys):
    ctx = course.setup("quick", device="cpu")
    ctx.train_missing = False
    monkeypatch.setattr(course.Course, "dataset_key", lambda self, name: name)
    dist = fake_record(results, "table2", "shoes", "base", 0.25)
    fake_record(results, "table2", "shoes", "full", 0.5)
    assert ctx.record("table2", "shoes", "base")["metrics"]["acc@1"] == 0.25
    assert np.array_equal(ctx.distances("table2", "shoes", "base"), dist)

    df = ctx.compare("table2", "shoes")
    assert list(df.variant) == ["base", "base+att+cff", "base+att+holef", "full"]
    row = df.set_index("variant")
    assert row.loc["base", "ours acc@1"] == pytest.approx(25.0)
    assert row.loc["full", "ours acc@10"] == pytest.approx(100.0)
    assert row.loc["base", "paper acc@1"] == pytest.approx(52.17)
    assert math.isnan(row.loc["base+att+cff", "ours acc@1"]) and row.loc["base+att+cff", "seeds"] == 0
    out = capsys.readouterr().out
    assert "table2: no quick-profile record for base+att+cff, base+att+holef" in out
    assert "--rows base+att+cff base+att+holef --seeds 0 --profile quick" in out

    fake_record(results, "table4", "shoes", "base+att", 0.4)
    df4 = ctx.compare("table4", "shoes", keys=["att"])
    assert list(df4.column) == ["with shortcut", "without shortcut"]
    assert list(df4.variant) == ["base+att", "base+att-noshortcut"]
    assert df4["ours acc@1"].iloc[0] == pytest.approx(40.0) and math.isnan(df4["ours acc@1"].iloc[1])
    assert list(df4["paper acc@1"]) == [54.78, 15.65]


def test_compare_rejects_bad_names(results):
    ctx = course.setup("quick", device="cpu")
    with pytest.raises(ValueError, match="table1"):
        ctx.compare("table9", "shoes")
    with pytest.raises(ValueError, match="handbags"):
        ctx.compare("table2", "bags")
    with pytest.raises(ValueError, match="allowed"):
        ctx.compare("table2", "shoes", keys=["nope"])


def test_trained_follows_reused_from(results, monkeypatch):
    from sbir_lib.models import dssa as MD

    ctx = course.setup("quick", device="cpu")
    ctx.train_missing = False
    monkeypatch.setattr(course.Course, "dataset_key", lambda self, name: name)
    model = MD.DSSANet("base+att")
    with torch.no_grad():
        model.attention.conv2.bias.fill_(0.25)
    src = R.record_path(results, "table3", "shoes", "base+att", 0, "quick")
    fake_record(results, "table3", "shoes", "base+att", 0.3)
    E.save_weights(R.weights_path(src), model, model.make_energy(), "base+att")
    fake_record(results, "table4", "shoes", "base+att", 0.3)
    rec = R.load_record(R.record_path(results, "table4", "shoes", "base+att", 0, "quick"))
    rec["reused_from"] = "table3/shoes/base+att/seed0.quick.json"
    E.write_json_atomic(R.record_path(results, "table4", "shoes", "base+att", 0, "quick"), rec)
    loaded = ctx.trained("table4", "shoes", "base+att")
    assert loaded is not None
    assert float(loaded[0].attention.conv2.bias.detach()) == 0.25
    fake_record(results, "table4", "shoes", "base+att-noshortcut", 0.1)  # no weights, not reused
    assert ctx.trained("table4", "shoes", "base+att-noshortcut") is None
