"""Tests for issue [init]'s choices on held-out data (sbir_lib.experiments.init_recipe): the pretraining search
keeps a change only when it helps and saves the kept checkpoint; the lr search per init writes a record the
runner applies to the ``@<init>`` rows; the untrained rows; the "where accuracy comes from" frames and figure.
Tiny synthetic data, CPU."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sbir_lib.core.profiles import PROFILES
import torch

from sbir_lib.data.synthetic import make_synthetic
from sbir_lib.experiments import init_recipe as IR
from sbir_lib.experiments import runner
from sbir_lib.experiments.settings import tuning_path
from sbir_lib.metrics.retrieval import metrics_of
from sbir_lib.report import figures as FG
from sbir_lib.report import reproduction as REP
from sbir_lib.report import tables as TB
from sbir_lib.training import pretrain as P
from sbir_lib.training import pretrain_data as PD
from sbir_lib.training import triplet as T
from sbir_lib.training.engine import seed_everything

TINY = dict(classify_steps=2, triplet_steps=1, batch_size=4, triplet_batch=2, warmup=1, log_every=1,
            categories=None)


@pytest.fixture(scope="module")
def pre_data():
    data = P.synthetic_data(n_classes=3, per_class=4, n_test_per_class=2, photos_per_class=2, seed=1)
    splits = {"shoes": make_synthetic(n_train=12, n_test=4, seed=3).train}
    return data.with_pairs(PD.qmul_pairs(["shoes"], "quick", splits=splits))


@pytest.fixture()
def ckpts(tmp_path, monkeypatch):
    where = lambda name, profile: tmp_path / "ckpt" / f"sketchanet_{name}.{profile}.pt"  # noqa: E731
    (tmp_path / "ckpt").mkdir()
    monkeypatch.setattr(IR, "init_checkpoint", where)
    return where


def test_tune_pretrain_keeps_only_changes_that_help(pre_data, ckpts, tmp_path):
    stages = [("augmentation", [{}, {"stroke_aug": 0.5}]), ("pairs", [{}, {"pairs": ("shoes",), "pair_fraction": 0.5}])]
    rec = IR.tune_pretrain("quick", results=tmp_path, device="cpu", stages=stages, data=pre_data, overrides=TINY,
                           log=lambda *a: None)
    assert json.loads(tuning_path("pretrain_sketchy_qmul", "quick", tmp_path).read_text()) == rec
    assert ckpts("sketchy_qmul", "quick").exists()
    for st in rec["stages"]:
        a, b = (tuple(c["criterion"]) for c in st["candidates"])
        assert st["kept"] == (b > a)
        assert set(st["candidates"][0]["qmul_val"]) == {"shoes"}
    # the second stage started from what the first kept
    first_kept = rec["stages"][0]["candidates"][1 if rec["stages"][0]["kept"] else 0]["settings"]
    assert rec["stages"][1]["candidates"][0]["settings"] == first_kept
    # ... without training it again: 3 distinct pretrainings for 4 candidates
    assert len({c["checkpoint"] for st in rec["stages"] for c in st["candidates"]}) == 3
    torch.load(ckpts("sketchy_qmul", "quick"), weights_only=True)["model"]  # a loadable init


def test_tune_init_chooses_an_lr_per_init_and_the_runner_applies_it(pre_data, ckpts, tmp_path, monkeypatch):
    P.pretrain(P.profile_config("quick", **TINY), pre_data, device="cpu", out=ckpts("sketchy_mini", "quick"),
               progress=False)
    data = make_synthetic(n_train=40, n_test=8, seed=0)
    rec = IR.tune_init("quick", inits=("sketchy_mini",), variants=("base",), lrs=(1e-2, 1e-3), iterations=2,
                       device="cpu", results=tmp_path, data=data, log=lambda *a: None)
    rows = rec["scores"]["sketchy_mini"]["base"]
    key = lambda r: (r["val_acc@1"], r["val_acc@10"])  # noqa: E731
    # 1. the layers loaded, at the first lr; 2. the other lr with that choice; 3. conv5 trained too
    assert [(r["lr"], r.get("init_layers")) for r in rows[:2]] == [(1e-2, "all"), (1e-2, "conv")]
    layers = "conv" if key(rows[1]) > key(rows[0]) else "all"
    assert rows[2]["lr"] == 1e-3 and rows[2].get("init_layers", "all") == layers
    lr_rows = [rows[1] if layers == "conv" else rows[0], rows[2]]
    best_lr = max(lr_rows, key=key)  # ties: the earlier
    if key(lr_rows[0]) == key(lr_rows[1]):
        best_lr = lr_rows[0]
    assert rows[3]["freeze"] == "conv4" and rows[3]["lr"] == best_lr["lr"]
    pick = rec["chosen"]["sketchy_mini"]["base"]
    assert pick["lr"] == best_lr["lr"] and pick.get("init_layers", "all") == layers
    assert pick.get("freeze") == ("conv4" if key(rows[3]) > key(best_lr) else None)
    over, why = IR.chosen_overrides("sketchy_mini", "base", "quick", results=tmp_path)
    assert over == {**pick, "cache_views": PROFILES["quick"].init_cache_views} and "tune-init" in why
    assert IR.chosen_overrides("imagenet", "base", "quick", results=tmp_path) == ({}, None)
    frame = TB.init_recipe_frame("quick", tmp_path)
    assert list(frame.columns)[:2] == ["lr 0.01", "lr 0.01, conv only"] and list(frame.columns)[-1] == "chosen"
    with pytest.raises(FileNotFoundError, match="tune-pretrain"):  # no sketchy_qmul checkpoint yet
        IR.tune_init("quick", inits=("sketchy_qmul",), variants=("base",), data=data, results=tmp_path, lrs=(1e-2,),
                     iterations=1, log=lambda *a: None)


def test_embedding_spread_measures_each_init_and_names_what_is_missing(ckpts, tmp_path):
    data = make_synthetic(n_train=40, n_test=4, seed=0)
    spread = IR.embedding_spread("quick", inits=("scratch", "sketchy_qmul"), data=data)
    assert spread.loc["scratch", "sketch to other photos"] > 0 and spread.loc["scratch", "note"] == ""
    assert np.isnan(spread.loc["sketchy_qmul", "sketch to its photo"])
    assert "tune-pretrain" in spread.loc["sketchy_qmul", "note"]
    nodata = IR.embedding_spread("quick", inits=("scratch",), root=tmp_path)  # no real data here
    assert "data_download.py" in nodata.loc["scratch", "note"]


def test_embedding_spread_is_recorded_and_shown_from_the_record(tmp_path):
    """The checkpoints are git-ignored: notebook 05 and REPRODUCTION.md show the recorded measurement."""
    with pytest.raises(FileNotFoundError, match="nothing measured, nothing recorded"):
        IR.record_embedding_spread("quick", root=tmp_path / "no-data", results=tmp_path)
    now = IR.spread_table("quick", results=tmp_path, root=tmp_path / "no-data")  # nothing recorded: measured here
    assert now.attrs["source"].startswith("measured now") and "data_download.py" in now.loc["scratch", "note"]
    data = make_synthetic(n_train=40, n_test=4, seed=0)
    path = IR.record_embedding_spread("quick", results=tmp_path, data=data)
    rec = json.loads(path.read_text())
    assert path == tuning_path("embedding_spread", "quick", tmp_path) and rec["git_commit"] and rec["device"]
    shown = IR.spread_table("quick", results=tmp_path, root=tmp_path / "no-data")
    assert shown.attrs["source"].startswith("recorded ") and rec["git_commit"] in shown.attrs["source"]
    assert list(shown.index) == list(IR.embedding_spread("quick", data=data).index)
    measured = IR.embedding_spread("quick", inits=("scratch",), data=data)
    assert shown.loc["scratch", "sketch to its photo"] == pytest.approx(measured.loc["scratch", "sketch to its photo"],
                                                                         abs=1e-6)
    assert IR.SPREAD_COLUMNS[0] in REP.reproduction_markdown("quick", tmp_path)


def test_untrained_rows_record_the_initial_network(tmp_path):
    data = make_synthetic(n_train=16, n_test=6, seed=0)
    rec = runner.run_one("pretrain", "synthetic", "base@untrained", 0, "quick", results=tmp_path, dataset=data,
                         device="cpu", log=lambda *a: None)
    assert rec["init"] == "untrained" and rec["iterations"] == 0
    dist = np.load(tmp_path / "pretrain" / "synthetic" / "base@untrained" / "seed0.quick.dist.npy")
    assert metrics_of(torch.as_tensor(dist))["acc@1"] == pytest.approx(rec["metrics"]["acc@1"])
    again = runner.run_one("pretrain", "synthetic", "base@untrained", 0, "quick", results=tmp_path, dataset=data,
                           device="cpu", log=lambda *a: None, force=True)
    assert again["metrics"] == rec["metrics"]  # the seed fixes the initial network


def test_where_accuracy_comes_from_frame_and_figure(tmp_path):
    long = TB.pretrain_long(["shoes"], "quick", results=tmp_path)
    assert list(long["init"][:5]) == list(TB.PRETRAIN_INITS) and (long["n"] == 0).all()
    frame = TB.pretrain_frame(["shoes"], "quick", results=tmp_path)
    assert frame.loc[("QMUL-Shoe", "Triplet SN"), "imagenet - scratch (acc@1)"] == TB.DASH
    fig = FG.accuracy_sources(long)
    ax = fig.axes[0]
    assert ax.get_ylabel().startswith("acc@1") and "(not recorded)" in ax.get_legend().get_texts()[0].get_text()
    assert TB.pretrain_search_frame("quick", tmp_path) is None


def test_sketchy_qmul_settings_agree_with_the_recorded_search():
    rec_path = tuning_path("pretrain_sketchy_qmul", "quick")
    if not rec_path.exists():
        pytest.skip(f"no search recorded at {rec_path}")
    chosen = json.loads(rec_path.read_text())["chosen"]
    chosen = {k: tuple(v) if isinstance(v, list) else v for k, v in chosen.items()}
    assert P.INITS["sketchy_qmul"] == chosen


def test_init_layers_conv_keeps_the_fresh_head(pre_data, ckpts):
    path = ckpts("sketchy_mini", "quick")
    P.pretrain(P.profile_config("quick", **TINY), pre_data, device="cpu", out=path, progress=False)
    nets = {}
    for layers in ("all", "conv", None):
        cfg = T.profile_config("quick", experiment="pretrain", variant="base", init=str(path) if layers else None,
                               init_layers=layers or "all")
        seed_everything(0)
        nets[layers] = T.build_network(cfg, torch.device("cpu"))[0].state_dict()
    for k in nets["conv"]:
        src = nets[None] if k.startswith(("backbone.fc6", "backbone.fc7")) else nets["all"]
        assert torch.equal(nets["conv"][k], src[k]), k
    assert not torch.equal(nets["all"]["backbone.fc7.weight"], nets[None]["backbone.fc7.weight"])
    with pytest.raises(ValueError, match="init_layers"):
        T.profile_config("quick", experiment="pretrain", init_layers="conv")  # no init to take layers from
    # the default leaves the keys of earlier records unchanged
    assert T.profile_config("quick", experiment="pretrain").key() == T.profile_config(
        "quick", experiment="pretrain", init_layers="all").key()
