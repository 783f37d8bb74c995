"""The cpu profile's recipe search (sbir_lib.experiments.cpu_recipe): the rule, the frontier, the record, the profile."""
import dataclasses
import json

import pytest

from sbir_lib.core import profiles as P
from sbir_lib.experiments import cpu_recipe as C


def _curves():
    # recipe a: cheap and decent; b: better but slower steps; c: best, far too slow
    return {"a": {"shoes": {"iteration": [100, 200], "val_acc@1": [0.30, 0.40]},
                  "chairs": {"iteration": [100, 200], "val_acc@1": [0.50, 0.60]}},
            "b": {"shoes": {"iteration": [100, 200], "val_acc@1": [0.35, 0.45]},
                  "chairs": {"iteration": [100, 200], "val_acc@1": [0.55, 0.65]}},
            "c": {"shoes": {"iteration": [100, 200], "val_acc@1": [0.60, 0.70]},
                  "chairs": {"iteration": [100, 200], "val_acc@1": [0.60, 0.70]}}}


def test_pick_is_the_best_point_within_the_budget():
    pts = C.points(_curves(), {"a": 0.05, "b": 0.1, "c": 10.0}, runs=117)
    assert len(pts) == 6
    a200 = next(p for p in pts if p["recipe"] == "a" and p["iterations"] == 200)
    assert a200["mean_val_acc@1"] == pytest.approx(0.5)
    assert a200["smoothed_val_acc@1"] == pytest.approx(0.45)  # the neighbour at 100 iterations scored 0.4
    assert a200["grid_h"] == pytest.approx(117 * (200 * 0.05 + C.RUN_OVERHEAD_S) / 3600, abs=1e-3)
    best = C.pick(pts, budget_h=1.0)
    assert (best["recipe"], best["iterations"]) == ("b", 100)  # c is better but costs 65 h; b's two tie smoothed
    assert C.pick(pts, budget_h=0.4)["recipe"] == "a"
    with pytest.raises(ValueError, match="no recipe fits"):
        C.pick(pts, budget_h=0.01)


def test_ties_go_to_the_cheaper_point_and_the_frontier_only_climbs():
    pts = C.points({"a": _curves()["a"], "a2": _curves()["a"]}, {"a": 0.05, "a2": 0.07}, runs=10)
    assert C.pick(pts, budget_h=100)["recipe"] == "a"
    front = C.frontier(C.points(_curves(), {"a": 0.05, "b": 0.1, "c": 10.0}, runs=117))
    hours = [p["grid_h"] for p in front]
    accs = [p["smoothed_val_acc@1"] for p in front]
    assert hours == sorted(hours) and accs == sorted(accs) and len(set(accs)) == len(accs)
    assert front[-1]["recipe"] == "c"


def test_the_grid_is_every_distinct_network_of_the_tables_on_three_datasets_and_seeds():
    assert C.grid_runs() == 13 * 3 * 3


def test_the_cpu_profile_trains_with_the_recorded_choice():
    rec = json.loads(C.record_path().read_text())
    assert rec["complete"] and rec["profile"] == "cpu"
    c = rec["chosen"]
    t = P.CPU.triplet
    assert (t["lr"], t["batch_size"], t["iterations"]) == (c["lr"], c["batch_size"], c["iterations"])
    assert c["grid_h"] <= rec["budget_h"]
    # the record recomputes: its choice is the rule applied to its own curves and step times
    steps = C.mean_step_s(rec["step_s_by_dataset"])
    again = C.pick(C.points(rec["curves"], steps, rec["grid_runs"]), rec["budget_h"])
    assert (again["recipe"], again["iterations"]) == (c["recipe"], c["iterations"])


def test_search_records_resumes_and_chooses(tmp_path, monkeypatch):
    """Two tiny recipes on the synthetic stand-in: a partial record after each curve, a second call trains nothing."""
    monkeypatch.setenv("SBIR_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setattr(C, "MAX_TRIPLETS", 64)
    monkeypatch.setattr(C, "EVAL_TRIPLETS", 32)
    small = dataclasses.replace(P.CPU, validation_size=8,
                                triplet={**P.CPU.triplet, "init": "imagenet", "cache_views": 1})
    monkeypatch.setattr(C, "as_profile", lambda name: small)
    log = []
    rec = C.search(("lr1e-2", "lr2e-2-b64"), ("synthetic",), results=tmp_path / "results", log=log.append)
    assert rec["complete"] and rec["chosen"]["recipe"] in ("lr1e-2", "lr2e-2-b64")
    assert rec["curves"]["lr1e-2"]["synthetic"]["iteration"] == [1, 2]
    assert rec["curves"]["lr2e-2-b64"]["synthetic"]["iteration"] == [1]
    assert len(log) == 3  # two curves and the choice
    log.clear()
    again = C.search(("lr1e-2", "lr2e-2-b64"), ("synthetic",), results=tmp_path / "results", log=log.append)
    assert len(log) == 1 and again["curves"] == rec["curves"]
