"""Parameters that do what they say (issue 15, item 5): ``course.setup`` checks and normalises the notebook
parameters (or their environment variables), a full-profile notebook without a GPU shows runs stopped early,
and every printed command records exactly the missing rows, never a full-profile run on synthetic data."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sbir_lib import course
from sbir_lib.core import records as R
from sbir_lib.course import dase_lab
from sbir_lib.experiments import runner as E
from sbir_lib.report import reproduction as RP
from sbir_lib.report import tables as TB


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("SBIR_RESULTS_ROOT", str(tmp_path))
    for var in ("SBIR_PROFILE", "SBIR_DATASET", "SBIR_SEED", "SBIR_SEEDS"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def write(results, experiment, dataset, row, seed, profile, acc1, partial_at=None, wall=60.0):
    n = 5
    dist = np.arange(n * n, dtype=np.float32).reshape(n, n)[::-1].copy()
    rec = {"experiment": experiment, "dataset": dataset, "row": row, "seed": seed, "profile": profile,
           "device": "NVIDIA H100", "metrics": {"acc@1": acc1, "acc@5": 0.9, "acc@10": 1.0},
           "acc_curve": [acc1, 1.0], "iterations": partial_at or 20000, "config": {"iterations": 20000},
           "wall_time_s": wall}
    path = R.record_path(results, experiment, dataset, row, seed, profile)
    if partial_at:
        rec["partial"] = True
        path = path.with_name(f"seed{seed}.it{partial_at}.json")
    R.write_record(path, rec, dist)
    return dist


def test_setup_normalises_and_reports_the_parameters(results, capsys):
    ctx = course.setup(" Full ", dataset="Chairs ", seed="2", seeds="0, 1", device="cpu")
    assert (ctx.profile, ctx.dataset_name, ctx.seed, ctx.seeds) == ("full", "chairs", 2, [0, 1])
    assert ctx.datasets == ("chairs",) and not ctx.train_missing
    out = capsys.readouterr().out
    assert out.startswith("profile=full  dataset=chairs  seed=2  seeds=0,1  device=cpu") and "nothing is trained" in out
    ctx = course.setup("quick", dataset=None, seed=None, seeds=None, device="cpu")
    assert (ctx.dataset_name, ctx.seed, ctx.seeds) == ("shoes", 0, [0])  # the defaults
    assert course.setup("quick", seed=3, device="cpu").seeds == [3]  # quick averages over the seed it shows
    assert course.setup("full", seed=3, device="cpu").seeds == [0, 1, 2]
    assert course.setup("quick", seeds=[2, 2, 0], device="cpu").seeds == [2, 0]
    six = course.setup("quick", dataset=None, all_datasets=True, device="cpu")
    assert six.dataset_name == "all" and six.datasets == ("shoes", "chairs", "handbags")


@pytest.mark.parametrize("kw, match", [
    (dict(profile="fast"), r"profile must be one of quick, cpu, full; got 'fast' \(from the notebook parameter `profile`\)"),
    (dict(dataset="bags"), r"dataset must be one of shoes, chairs, handbags; got 'bags' \(from the notebook parameter"),
    (dict(dataset="all"), r"shoes, chairs, handbags; got 'all'"),
    (dict(seed="-1"), r"seed must be a non-negative integer, e.g. 0; got '-1'"),
    (dict(seed=True), r"seed must be a non-negative integer"),
    (dict(seed=1.5), r"seed must be a non-negative integer"),
    (dict(seeds="0 x"), r"seeds must be one or more non-negative integers"),
    (dict(seeds=[]), r"seeds must be one or more"),
])
def test_setup_refuses_a_bad_parameter_naming_it(results, kw, match):
    kw = {"profile": "quick", **kw}
    with pytest.raises(ValueError, match=match):
        course.setup(kw.pop("profile"), device="cpu", **kw)


def test_setup_reads_the_environment_when_a_parameter_is_none(results, monkeypatch):
    monkeypatch.setenv("SBIR_PROFILE", " Full")
    monkeypatch.setenv("SBIR_DATASET", "HANDBAGS")
    monkeypatch.setenv("SBIR_SEED", " 1 ")
    monkeypatch.setenv("SBIR_SEEDS", "[1, 2]")
    ctx = course.setup(None, dataset=None, seed=None, seeds=None, device="cpu")
    assert (ctx.profile, ctx.dataset_name, ctx.seed, ctx.seeds) == ("full", "handbags", 1, [1, 2])
    assert course.setup("quick", dataset="shoes", device="cpu").dataset_name == "shoes"  # the parameter wins
    monkeypatch.setenv("SBIR_DATASET", "bags")
    with pytest.raises(ValueError, match=r"got 'bags' \(from \$SBIR_DATASET\)"):
        course.setup(None, dataset=None, device="cpu")
    assert course.setup("quick", device="cpu").dataset_name == "shoes"  # not a parameter of this notebook: unread


def test_full_without_gpu_shows_a_run_stopped_early_when_asked(results, monkeypatch, capsys):
    monkeypatch.setattr(course.Course, "dataset_key", lambda self, name: name)
    dist = write(results, "table2", "shoes", "base", 0, "full", 0.32, partial_at=6000)
    ctx = course.setup("full", dataset="shoes", device="cpu")
    capsys.readouterr()
    assert ctx.record("table2", "shoes", "base") is None  # never mixed in unasked
    rec = ctx.record("table2", "shoes", "base", partial=True)
    assert rec["partial"] and rec["metrics"]["acc@1"] == 0.32
    out = capsys.readouterr().out
    assert "stopped at iteration 6000 of 20000" in out and "table2/shoes/base/seed0.it6000.json" in out
    assert "--rows base --seeds 0 --profile full" in out
    assert np.array_equal(ctx.distances("table2", "shoes", "base", partial=True), dist)
    df = ctx.compare("table2", "shoes", keys=["base", "full"])
    assert np.isnan(df.set_index("variant").loc["base", "ours acc@1"])  # complete runs only in the table
    out = capsys.readouterr().out
    assert "--rows base full --seeds 0 1 2 --profile full" in out and "record them on a GPU" in out
    assert "not in the table: base seed 0, a run stopped at iteration 6000 of 20000" in out


def test_no_full_profile_run_is_suggested_or_trained_on_synthetic_data(results, monkeypatch, capsys):
    monkeypatch.setattr(course.Course, "dataset_key", lambda self, name: "synthetic")
    ctx = course.setup("full", device="cpu")
    ctx.train_missing = True  # as on a GPU
    assert not ctx.may_train("synthetic") and ctx.may_train("shoes")
    capsys.readouterr()
    assert ctx.record("table2", "shoes", "base") is None
    out = capsys.readouterr().out
    assert "--dataset synthetic" not in out and "data_download.py --dataset qmul-shoes" in out
    assert "--experiment table2 --dataset shoes --rows base --seeds 0 --profile full" in out
    df = ctx.compare("table2", "shoes", keys=["base"])
    assert not [c for c in df.columns if c.startswith("paper")] and "synthetic" in df.attrs["note"]
    quick = course.setup("quick", device="cpu")
    quick.train_missing = False
    assert "--dataset synthetic --rows base" in quick.record_command("table2", "shoes", ["base"], [0])
    assert "--dataset sketchy_mini" in dase_lab.record_command(ctx, "dase_sketchy", "synthetic_categories",
                                                               ["dase_mems"], [0])


def test_commands_name_exactly_the_missing_rows(results):
    assert E.run_command("table4", "shoes", ["full", "full"], [0, 1], "full") == (
        "python -m sbir_lib.experiments run --experiment table4 --dataset shoes --rows full --seeds 0 1 --profile full")
    long = TB.pretrain_long(["shoes"], "quick", results=results)
    (cmd,) = TB.pretrain_missing_commands(long, "quick")
    assert "--experiment pretrain --dataset shoes --rows base@untrained base " in cmd and "full@imagenet" in cmd
    write(results, "pretrain", "shoes", "base", 0, "quick", 0.1)
    (cmd,) = TB.pretrain_missing_commands(TB.pretrain_long(["shoes"], "quick", results=results), "quick")
    assert " base " not in cmd.split("--rows")[1]


def test_synthetic_runs_stay_out_of_the_cost_and_empty_frames_keep_their_columns(results):
    assert list(E.collect(results)) == E.COLLECT_COLUMNS  # nothing recorded: the columns all the same
    write(results, "table1", "shoes", "base", 0, "full", 0.5, wall=600.0)
    write(results, "table2", "synthetic", "base", 0, "full", 0.9, wall=6000.0)
    cost = RP.cost_frame("full", results)
    assert cost["runs"].sum() == 1 and cost.iloc[0]["total wall (h)"] == pytest.approx(600 / 3600)
    assert sorted(r["dataset"] for r in TB.all_records("full", results)) == ["shoes", "synthetic"]  # listed
    assert json.loads((results / "table2/synthetic/base/seed0.json").read_text())["dataset"] == "synthetic"
