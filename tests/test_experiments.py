"""Tests for the experiment runner (sbir_lib.experiments.runner) and training resume (sbir_lib.training.triplet).

Tiny configurations on synthetic data: a few iterations at batch 2, so each run takes seconds.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sbir_lib.core import records as R
from sbir_lib.experiments import cli
from sbir_lib.data import augment as A
from sbir_lib.data.synthetic import make_synthetic
from sbir_lib.experiments import runner as E
from sbir_lib.experiments import spec as spec_mod
from sbir_lib.metrics import retrieval as M
from sbir_lib.models import dssa as MD
from sbir_lib.training import triplet as T

torch.set_num_threads(2)

TINY = {"iterations": 2, "batch_size": 2, "checkpoint_every": 1, "log_every": 1}


@pytest.fixture(scope="module")
def syn():
    return make_synthetic(n_train=8, n_test=6, seed=0)


def _run(syn, tmp_path, row="base", experiment="table2", **kw):
    return E.run_one(experiment, "synthetic", row, 0, "quick", device="cpu", results=tmp_path,
                     dataset=syn, overrides=TINY, progress=False, log=lambda *a: None, **kw)


def test_run_one_writes_record_and_distances(syn, tmp_path):
    rec = _run(syn, tmp_path)
    path = R.record_path(tmp_path, "table2", "synthetic", "base", 0, "quick")
    assert path.name == "seed0.quick.json" and path.exists()
    on_disk = json.loads(path.read_text())
    for key in ("metrics", "acc_curve", "config", "init", "seed", "profile", "iterations", "wall_time_s",
                "device", "torch", "git_commit"):
        assert key in on_disk, key
    assert on_disk["iterations"] == 2 and on_disk["init"] == T.profile_config("quick").init  # the profile's trunk
    dist = np.load(R.dist_path(path))
    assert dist.dtype == np.float32 and dist.shape == (6, 6)
    # the metrics recompute exactly from the saved distances
    assert M.acc_at_k(dist, 1) == rec["metrics"]["acc@1"]
    assert E.verify(tmp_path, log=lambda *a: None)["ok"] == ["table2/synthetic/base/seed0.quick.json"]
    # no temporary files are left behind
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_recorded_runs_are_skipped_and_force_retrains(syn, tmp_path):
    first = _run(syn, tmp_path)
    path = R.record_path(tmp_path, "table2", "synthetic", "base", 0, "quick")
    stamp = path.stat().st_mtime_ns
    again = _run(syn, tmp_path)
    assert again == first and path.stat().st_mtime_ns == stamp
    forced = _run(syn, tmp_path, force=True)
    assert forced["created"] >= first["created"] and path.stat().st_mtime_ns != stamp


def test_checkpoints_live_beside_the_results_and_go_once_recorded(syn, tmp_path, monkeypatch):
    monkeypatch.delenv("SBIR_RUNS_ROOT", raising=False)
    results = tmp_path / "res"
    out = R.record_path(results, "table2", "synthetic", "base", 0, "quick")
    ckpt = R.checkpoint_path(results, out)
    assert ckpt == tmp_path / "runs" / "res" / "table2" / "synthetic" / "base" / "seed0.quick.pt"
    rec = _run(syn, results)
    assert not ckpt.exists()  # recorded: removed
    assert rec["resumed_from_iteration"] == 0 and rec["steps_run"] == 2 and rec["triplets_per_s"] > 0
    monkeypatch.setenv("SBIR_RUNS_ROOT", str(tmp_path / "elsewhere"))
    assert R.checkpoint_path(results, out).is_relative_to(tmp_path / "elsewhere")


def test_force_retrains_from_scratch_even_with_a_finished_checkpoint(syn, tmp_path, monkeypatch):
    monkeypatch.delenv("SBIR_RUNS_ROOT", raising=False)
    results = tmp_path / "res"
    out = R.record_path(results, "table2", "synthetic", "base", 0, "quick")
    ckpt = R.checkpoint_path(results, out)
    cfg = T.profile_config("quick", variant="base", seed=0, **TINY)
    T.train(cfg, syn, device="cpu", checkpoint=ckpt, progress=False)  # a finished run's last checkpoint
    assert ckpt.exists()
    rec = _run(syn, results, force=True)
    assert rec["resumed_from_iteration"] == 0 and rec["steps_run"] == 2 and rec["triplets_per_s"] > 0


def test_a_resumed_run_says_so_and_counts_only_its_steps(syn, tmp_path, monkeypatch):
    monkeypatch.delenv("SBIR_RUNS_ROOT", raising=False)
    results = tmp_path / "res"
    out = R.record_path(results, "table2", "synthetic", "base", 0, "quick")
    ckpt = R.checkpoint_path(results, out)
    # an interrupted run: its state after 1 of 2 iterations, under the 2-iteration run's key
    one = T.profile_config("quick", variant="base", seed=0, **(TINY | {"iterations": 1}))
    T.train(one, syn, device="cpu", checkpoint=ckpt, progress=False)
    state = torch.load(ckpt, weights_only=False)
    state["config_key"] = T.profile_config("quick", variant="base", seed=0, **TINY).key()
    torch.save(state, ckpt)
    rec = _run(syn, results)
    assert rec["resumed_from_iteration"] == 1 and rec["steps_run"] == 1
    assert not ckpt.exists()


def test_verify_finds_a_record_that_does_not_recompute(syn, tmp_path):
    _run(syn, tmp_path)
    path = R.record_path(tmp_path, "table2", "synthetic", "base", 0, "quick")
    rec = json.loads(path.read_text())
    rec["metrics"]["acc@1"] += 1 / 6
    path.write_text(json.dumps(rec))
    res = E.verify(tmp_path, log=lambda *a: None)
    assert [p for p, _ in res["mismatch"]] == ["table2/synthetic/base/seed0.quick.json"]
    assert cli.main(["verify", "--results", str(tmp_path)]) == 1
    rec["recomputable"], rec["not_recomputable_reason"] = False, "test"
    path.write_text(json.dumps(rec))
    assert cli.main(["verify", "--results", str(tmp_path)]) == 0


def test_committed_results_recompute():
    """Every record under results/ recomputes from its distance file (or is marked as not recomputable)."""
    from sbir_lib.core import config as C

    res = E.verify(C.results_root(), log=lambda *a: None)
    assert res["ok"], "no records found"
    assert res["mismatch"] == []


def test_identical_configuration_is_reused_across_tables(syn, tmp_path):
    _run(syn, tmp_path, experiment="table2", row="full")
    rec = _run(syn, tmp_path, experiment="table3", row="full")
    assert rec["reused_from"] == "table2/synthetic/full/seed0.quick.json"
    # weights are kept once, beside the original, and load_trained follows the reuse
    assert not R.weights_path(R.record_path(tmp_path, "table3", "synthetic", "full", 0, "quick")).exists()
    model, energy = E.load_trained("table3", "synthetic", "full", 0, "quick", results=tmp_path)
    assert isinstance(model, MD.DSSANet) and energy.W.shape == (512, 512)
    x = model.prepare(A.center_crop(syn.test.sketches[:2]))
    assert model.intermediates(x)["alpha"].shape == (2, 7, 7)


def test_load_trained_missing_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m sbir_lib.experiments run --experiment table4"):
        E.load_trained("table4", "shoes", "base+att", 0, "quick", results=tmp_path)


def test_write_record_is_atomic(tmp_path, monkeypatch):
    path = R.record_path(tmp_path, "table2", "synthetic", "base", 0, "quick")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(R, "write_json_atomic", boom)
    with pytest.raises(OSError):
        R.write_record(path, {"x": 1}, np.zeros((2, 2)))
    assert not path.exists()  # the JSON (whose presence marks a complete run) was never written
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_bad_names_list_the_allowed_ones(syn, tmp_path):
    with pytest.raises(ValueError, match="allowed: .*table1"):
        E.run(["table9"], ["synthetic"], [0], "quick", results=tmp_path)
    with pytest.raises(ValueError, match="allowed: .*shoes"):
        E.run(["table2"], ["shoe"], [0], "quick", results=tmp_path)
    with pytest.raises(ValueError, match="allowed: .*full"):
        E.run(["table2"], ["synthetic"], [0], "quick", rows=["ful"], results=tmp_path)
    with pytest.raises(ValueError, match="profile must be one of quick, cpu, full"):
        E.run(["table2"], ["synthetic"], [0], "fast", results=tmp_path)
    with pytest.raises(ValueError, match="unknown variant"):
        T.profile_config("quick", variant="nope")
    with pytest.raises(ValueError, match="freeze must be one of"):
        T.profile_config("quick", freeze="conv9")
    with pytest.raises(ValueError, match="unknown training option"):
        T.profile_config("quick", iters=3)
    assert cli.main(["run", "--experiment", "table9", "--profile", "quick"]) == 2


def test_init_row_without_checkpoint_says_how_to_make_it(syn, tmp_path, monkeypatch):
    monkeypatch.setattr(spec_mod, "init_checkpoint", lambda name, profile: tmp_path / "absent.pt")
    with pytest.raises(FileNotFoundError, match="python -m sbir_lib.training.pretrain run --profile quick"):
        _run(syn, tmp_path, experiment="pretrain", row="base@sketchy_mini")


def test_init_row_trains_from_the_checkpoint(syn, tmp_path, monkeypatch):
    ckpt = tmp_path / "sketchanet_test.pt"
    torch.save({"model": MD.SketchANet().state_dict()}, ckpt)
    monkeypatch.setattr(spec_mod, "init_checkpoint", lambda name, profile: ckpt)
    monkeypatch.setitem(E.EXTRA_EXPERIMENTS, "pretrain", ["base", "base@test"])
    rec = _run(syn, tmp_path, experiment="pretrain", row="base@test")
    assert rec["row"] == "base@test" and rec["init"].endswith("sketchanet_test.pt")
    assert rec["config"]["variant"] == "base"


def test_partial_records_are_left_out_of_summaries(syn, tmp_path):
    _run(syn, tmp_path)
    path = R.record_path(tmp_path, "table2", "synthetic", "base", 0, "quick")
    partial = json.loads(path.read_text()) | {"partial": True, "iterations": 1}
    path.with_name("seed0.it1.json").write_text(json.dumps(partial))
    assert len(E.collect(tmp_path)) == 1
    assert len(E.collect(tmp_path, include_partial=True)) == 2


def test_resume_equals_uninterrupted(syn, tmp_path):
    cfg = T.profile_config("quick", variant="base+att", iterations=4, batch_size=2, checkpoint_every=2,
                           log_every=1, seed=3)
    full = T.train(cfg, syn, device="cpu", progress=False)
    ckpt = tmp_path / "run.pt"
    # "interrupt" after 2 iterations: a run of 2 iterations with the same checkpoint cadence leaves the
    # state at iteration 2; rewrite its key so that the 4-iteration run accepts it
    half = T.profile_config("quick", variant="base+att", iterations=2, batch_size=2, checkpoint_every=2,
                            log_every=1, seed=3)
    T.train(half, syn, device="cpu", checkpoint=ckpt, progress=False)
    state = torch.load(ckpt, weights_only=False)
    state["config_key"] = cfg.key()
    torch.save(state, ckpt)
    resumed = T.train(cfg, syn, device="cpu", checkpoint=ckpt, progress=False)
    assert resumed.resumed_from == 2 and resumed.iterations_done == 2
    for (n, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-5), n
    assert resumed.history["loss"] == pytest.approx(full.history["loss"], abs=1e-5)


def test_conv1_space_to_depth_is_exact():
    torch.manual_seed(0)
    net = MD.SketchANet()
    x = torch.randn(2, 1, 225, 225)
    fast = net.conv1_forward(x)
    net.conv1_impl = "native"
    try:
        ref = net.conv1_forward(x)
    finally:
        net.conv1_impl = "s2d"
    assert fast.shape == (2, 64, 71, 71)
    assert torch.allclose(fast, ref, atol=1e-4)


def test_one_cli_for_both_papers(capsys):
    """`python -m sbir_lib.experiments` lists, and refuses options that do not apply, for DSSA and DASE/MEMS alike."""
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "table2 (" in out and "dase_sketchy (" in out and "dase_qmul (" in out
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--experiment", "table2", "--arch", "resnet18", "--profile", "quick"])
    assert e.value.code == 2
    assert "DASE/MEMS" in capsys.readouterr().err
    assert cli.main(["show-tuning", "--experiment", "dase_qmul", "--results", "/nonexistent"]) == 1
    assert "python -m sbir_lib.experiments tune" in capsys.readouterr().out


def test_old_records_load_in_the_current_layout(tmp_path):
    """Records from before the row/variant rename (``"variant": row``) are read with ``"row"``, in place."""
    p = tmp_path / "old.json"
    old = {"experiment": "dase_qmul", "variant": "dase_mems", "seed": 0, "dataset": "shoes", "profile": "quick",
           "metrics": {}}
    p.write_text(json.dumps(old))
    rec = R.load_record(p)
    assert rec == {**{("row" if k == "variant" else k): v for k, v in old.items()}} and list(rec)[1] == "row"
    assert R.upgrade({"row": "full", "config": {"variant": "full"}})["config"]["variant"] == "full"


def test_grid_plan_orders_by_value_and_stops_at_the_budget(tmp_path):
    from sbir_lib.experiments import grid

    jobs = grid.plan("full", seeds=(0, 1), datasets=("shoes", "chairs"))
    labels = [j.label() for j in jobs]
    assert [j.kind for j in jobs[:2]] == ["pretrain", "cache_views"] and labels[2] == "curve/shoes/base/seed0" and "table2/shoes/base/seed0" in labels
    assert labels.index("table2/chairs/full/seed0") < labels.index("table2/shoes/full/seed1")  # seed 0 first
    first_dase = next(i for i, j in enumerate(jobs) if j.kind == "dase")
    assert all(j.kind in ("pretrain", "cache_views", "pretrain_qmul", "init_recipe", "dssa", "classical")
               for j in jobs[:first_dase])
    # the initialisation track comes after seed 0 of the tables, before seed 1
    kinds = [j.kind for j in jobs]
    assert labels.index("table5/chairs/full/seed0") < kinds.index("pretrain_qmul") < labels.index("table2/shoes/base/seed1")
    assert labels.index("pretrain/chairs/full@sketchy_qmul/seed0") < labels.index("table2/shoes/base/seed1")
    dssa = [j for j in jobs if j.kind == "dssa"]
    assert all(j.overrides["init"].endswith("sketchanet_sketchy_mini.pt") for j in dssa if j.experiment != "pretrain")
    # a configuration shared by two tables trains once: the later job only copies the record
    t3_base = next(j for j in dssa if j.label() == "table3/shoes/base/seed0")
    assert t3_base.reuses and grid.estimate_s(t3_base, "full") == 1.0
    out = grid.run("full", 100.0, seeds=(0,), datasets=("shoes",), results=tmp_path, dase=False, dry_run=True,
                   log=lambda s: None)
    assert out["ran"] == [] and len(out["left"]) + len(out["skipped"]) == len(grid.plan("full", (0,), ("shoes",),
                                                                                           dase=False))


def test_weights_are_kept_only_where_the_course_reads_them():
    assert E.keeps_weights("chairs", "full", 0) and E.keeps_weights("shoes", "base+att-noshortcut", 0)
    assert not E.keeps_weights("chairs", "base+att", 0)  # notebook 02 reads the shoes runs only
    assert not E.keeps_weights("shoes", "full", 1) and not E.keeps_weights("shoes", "full@sketchy_mini", 0)
    assert not E.keeps_weights("shoes", "base", 0)


def test_cache_views_are_chosen_on_a_validation_split(tmp_path):
    from sbir_lib.experiments import cache_views as CV

    init = tmp_path / "init.pt"
    torch.save({"model": MD.DSSANet("base").backbone.state_dict()}, init)
    rec = CV.choose("quick", "synthetic", candidates=(1, 2), seeds=(0, 1), init=str(init), iterations=2,
                    device="cpu", results=tmp_path, log=lambda s: None)
    assert set(rec["scores_val_acc@1"]) == {"1", "2"}
    assert set(rec["scores_val_acc@1"]["1"]) == {"full/seed0", "base/seed0", "full/seed1", "base/seed1"}
    assert rec["chosen"] in (1, 2) and "test split is not used" in rec["split"] and rec["default"] == 2
    assert CV.chosen("quick", tmp_path) == rec["chosen"] and CV.chosen("full", tmp_path) is None
    from sbir_lib.report import reproduction as RP

    shown = "\n".join(RP.cache_views_markdown(tmp_path))  # REPRODUCTION.md's section on K
    assert f"Chosen K = {rec['chosen']}" in shown and "full/seed1" in shown


def test_the_cache_views_rule_keeps_the_largest_k_unless_smaller_ones_lose_nothing():
    """Issue 23: a smaller K is taken only when it and every K above it lose nothing on the paired mean."""
    from sbir_lib.experiments import cache_views as CV

    def scores(**by_k):
        return {int(k[1:]): {f"full/seed{i}": a for i, a in enumerate(accs)} for k, accs in by_k.items()}

    # more views help: the default (largest) K stays, though K=1 is within one standard error of it
    k, paired = CV.pick(scores(k1=[0.40, 0.42, 0.41], k5=[0.43, 0.44, 0.42], k20=[0.45, 0.45, 0.44]))
    assert k == 20 and paired[1] < 0 and paired[20] == 0
    # no loss from 5 views on: 5 is taken; 1 loses, so it is not, whatever a lucky seed says
    k, _ = CV.pick(scores(k1=[0.50, 0.30, 0.30], k5=[0.45, 0.45, 0.45], k20=[0.45, 0.44, 0.46]))
    assert k == 5
    # a smaller K that wins only because a K between it and the default loses is not taken
    k, _ = CV.pick(scores(k1=[0.50, 0.50, 0.50], k5=[0.40, 0.40, 0.40], k20=[0.45, 0.45, 0.45]))
    assert k == 20


def test_a_bad_sbir_profile_names_the_variable(monkeypatch):
    from sbir_lib.core import config

    monkeypatch.setenv("SBIR_PROFILE", "bogus")
    with pytest.raises(ValueError, match="SBIR_PROFILE='bogus'.*quick, cpu, full"):
        config.default_profile()
    monkeypatch.setenv("SBIR_PROFILE", " full ")
    assert config.default_profile() == "full"


def test_bias_lr_mult_param_groups_config_and_key(syn, tmp_path):
    """``bias_lr_mult``: the network's biases train at ``lr * mult`` (Caffe Triplet SN: 2, train.prototxt lines
    238-242) and never decay under the authors' policy; it is recorded in the config and, when not the default
    1 (the TF code's), in the config key."""
    import dataclasses

    from sbir_lib.training import engine

    cfg = T.profile_config("quick", experiment="pretrain", variant="full")  # a Sketch-a-Net recipe
    assert cfg.bias_lr_mult == 1.0 and cfg.to_dict()["bias_lr_mult"] == 1.0
    model, energy = T.build_network(cfg, torch.device("cpu"))
    trainable = [p for p in list(model.parameters()) + list(energy.parameters()) if p.requires_grad]
    biases = {id(p) for n, p in model.named_parameters() if p.requires_grad and n.endswith(".bias")}
    assert biases
    # the default keeps the groups (and so the optimiser state) of the runs recorded before the option
    default = T.optimizer_groups(cfg, model, energy)
    assert [g["name"] for g in default] == ["decay", "no_decay", "energy"] and all("lr" not in g for g in default)
    # and their config key: bias_lr_mult=1 is left out of the hash, as init_layers="all" and trunk_store=False
    assert cfg.key() == engine.config_key(cfg, ignore=("log_every", "checkpoint_every", "eval_every", "compile",
                                                       "init_layers", "bias_lr_mult", "trunk_store"))

    cfg2 = dataclasses.replace(cfg, bias_lr_mult=2.0).validate()
    assert cfg2.to_dict()["bias_lr_mult"] == 2.0 and cfg2.key() != cfg.key()
    groups = T.optimizer_groups(cfg2, model, energy)
    by_name = {g["name"]: g for g in groups}
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in trainable}  # each parameter once
    assert {id(p) for p in by_name["bias"]["params"]} == biases
    assert by_name["bias"]["lr"] == pytest.approx(2.0 * cfg.lr) and by_name["bias"]["weight_decay"] == 0.0
    assert by_name["decay"]["weight_decay"] == cfg.weight_decay and "lr" not in by_name["decay"]
    assert by_name["energy"]["weight_decay"] == 0.0
    opt = T.make_optimizer(cfg2, groups)
    lrs = {g["name"]: (g["lr"], g["weight_decay"]) for g in opt.param_groups}
    assert lrs["bias"] == (pytest.approx(2.0 * cfg.lr), 0.0) and lrs["decay"] == (cfg.lr, cfg.weight_decay)
    # one SGD step with unit gradients: a bias moves by exactly lr * mult (no decay), a weight by lr (1 + wd w)
    b, wt = model.backbone.fc7.bias, model.backbone.fc7.weight
    b0, w0 = b.detach().clone(), wt.detach().clone()
    for p in trainable:
        p.grad = torch.ones_like(p)
    opt.step()
    torch.testing.assert_close(b.detach(), b0 - 2.0 * cfg.lr)
    torch.testing.assert_close(wt.detach(), w0 - cfg.lr * (1 + cfg.weight_decay * w0))
    # the old all-decay recipe keeps its decay on biases, at the biases' learning rate
    g_all = {g["name"]: g for g in T.optimizer_groups(dataclasses.replace(cfg2, weight_decay_on="all"), model, energy)}
    assert g_all["bias"]["weight_decay"] == cfg.weight_decay and g_all["bias"]["lr"] == pytest.approx(2.0 * cfg.lr)
    with pytest.raises(ValueError, match="bias_lr_mult"):
        dataclasses.replace(cfg, bias_lr_mult=-1.0).validate()
    # a run records it
    rec = E.run_one("table2", "synthetic", "base", 0, "quick", device="cpu", results=tmp_path, dataset=syn,
                    overrides={**TINY, "bias_lr_mult": 2.0}, progress=False, log=lambda *a: None)
    assert rec["config"]["bias_lr_mult"] == 2.0
    assert rec["config_key"] == T.profile_config("quick", variant="base", seed=0, **TINY, bias_lr_mult=2.0).key()
