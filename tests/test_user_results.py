"""A notebook's own runs go to the user's folder, never into the committed records; notebooks read both (issue 26, 7-8)."""
from __future__ import annotations

import numpy as np
import pytest

from sbir_lib import course
from sbir_lib.core import config as C
from sbir_lib.core import records as R
from sbir_lib.experiments import runner as E


def _rec(root, experiment, dataset, variant, seed, acc1, wall=None, profile="quick", n=5):
    dist = np.arange(n * n, dtype=np.float32).reshape(n, n)[::-1].copy()
    rec = {"experiment": experiment, "dataset": dataset, "variant": variant, "row": variant, "seed": seed,
           "profile": profile, "metrics": {"acc@1": acc1, "acc@5": 0.9, "acc@10": 1.0}, "acc_curve": [acc1, 1.0]}
    if wall is not None:
        rec["wall_time_s"] = wall
    R.write_record(R.record_path(root, experiment, dataset, variant, seed, profile), rec, dist)


@pytest.fixture
def roots(tmp_path, monkeypatch):
    committed, user = tmp_path / "results", tmp_path / "user"
    monkeypatch.setenv("SBIR_RESULTS_ROOT", str(committed))
    monkeypatch.setenv("SBIR_USER_RESULTS", str(user))
    monkeypatch.delenv(C.RECORD_INTO_RESULTS, raising=False)
    monkeypatch.delenv(C.NO_TRAIN, raising=False)
    monkeypatch.setattr(course.Course, "dataset_key", lambda self, name: name)
    return committed, user


def test_the_user_folder_defaults_to_a_git_ignored_folder_of_the_checkout(monkeypatch):
    monkeypatch.delenv("SBIR_USER_RESULTS", raising=False)
    monkeypatch.delenv("SBIR_RESULTS_ROOT", raising=False)
    assert C.user_results_root() == C.repo_root() / "user_results"
    assert "/user_results/" in (C.repo_root() / ".gitignore").read_text().split()


def test_what_a_notebook_trains_goes_to_the_user_folder_and_keeps_its_weights(roots, monkeypatch, capsys):
    committed, user = roots
    _rec(committed, "table3", "shoes", "base+att", 0, 0.3, wall=60.0)
    calls = []

    def fake_run_one(experiment, ds, variant, seed, profile, **kw):
        calls.append(kw)
        _rec(kw["results"], experiment, ds, variant, seed, 0.4)
        return R.load_record(R.record_path(kw["results"], experiment, ds, variant, seed, profile))

    monkeypatch.setattr(E, "run_one", fake_run_one)
    ctx = course.setup("quick", device="cpu")
    assert ctx.user_runs and ctx.read_roots == (committed, user)
    capsys.readouterr()
    rec = ctx.record("table3", "shoes", "base+att", seed=1)
    out = capsys.readouterr().out
    assert rec["metrics"]["acc@1"] == 0.4
    assert calls[0]["results"] == user and calls[0]["user"] is True
    assert "training 1 run not recorded (base+att seed 1)" in out and "about 60 s" in out and str(user) in out
    assert C.NO_TRAIN in out
    assert not R.record_path(committed, "table3", "shoes", "base+att", 1, "quick").exists()
    # read back from the user folder, the committed seed 0 from the results folder, both in the comparison
    assert ctx.record("table3", "shoes", "base+att", seed=1)["metrics"]["acc@1"] == 0.4 and len(calls) == 1
    from sbir_lib.report import tables as TB
    runs = TB.load_runs("table3", "shoes", "base+att", "quick", results=list(ctx.read_roots))
    assert [r["seed"] for r in runs] == [0, 1]


def test_a_users_run_of_an_attention_row_keeps_its_weights_on_any_seed_and_dataset():
    assert not E.keeps_weights("chairs", "base+att", 1)
    assert E.keeps_weights("chairs", "base+att", 1, user=True)
    assert not E.keeps_weights("chairs", "base", 1, user=True)  # rows no notebook reads weights of
    assert not E.keeps_weights("shoes", "full@imagenet", 0, user=True)


def test_compare_announces_every_run_before_training_any(roots, monkeypatch, capsys):
    committed, user = roots
    order = []
    monkeypatch.setattr(course.Course, "announce", lambda self, e, d, runs: order.append(("announce", list(runs))))

    def fake_run_one(experiment, ds, variant, seed, profile, **kw):
        order.append(("train", variant, seed))
        _rec(kw["results"], experiment, ds, variant, seed, 0.4)
        return {}

    monkeypatch.setattr(E, "run_one", fake_run_one)
    ctx = course.setup("quick", device="cpu", seeds=[0, 1])
    ctx.compare("table2", "shoes", keys=["base", "full"])
    assert order[0] == ("announce", [("base", 0), ("base", 1), ("full", 0), ("full", 1)])
    assert [o[0] for o in order[1:]] == ["train"] * 4
    assert not any(committed.rglob("*.json"))


def test_inplace_records_into_the_results_folder(roots, monkeypatch):
    committed, _ = roots
    monkeypatch.setenv(C.RECORD_INTO_RESULTS, "1")
    ctx = course.setup("quick", device="cpu")
    assert ctx.write_root == committed and not ctx.user_runs


def test_no_train_shows_only_what_is_recorded(roots, monkeypatch, capsys):
    monkeypatch.setenv(C.NO_TRAIN, "1")
    ctx = course.setup("quick", device="cpu")
    assert not ctx.train_missing
    assert f"{C.NO_TRAIN} is set" in capsys.readouterr().out
    assert ctx.record("table2", "shoes", "base") is None


def test_the_estimate_reads_only_this_profiles_records(roots):
    """A full-profile record has no suffix (``seed0.json``), so its file pattern also matches ``seed0.quick.json``."""
    committed, _ = roots
    _rec(committed, "table2", "shoes", "base", 0, 0.3, wall=999.0, profile="quick")
    assert course.setup("full", device="cpu").estimate_s("shoes", "base") == (None, 0)
    assert course.setup("quick", device="cpu").estimate_s("shoes", "base") == (999.0, 1)
