"""The benchmarks run (tiny settings, CPU) and write their records; their timings are never asserted."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_grid_cost_runs_and_records(tmp_path):
    gc = _load("grid_cost")
    out = tmp_path / "grid.json"
    assert gc.main(["--device", "cpu", "--dataset", "synthetic", "--batch-size", "2", "--iterations", "1",
                    "--views", "2", "--train-size", "4", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert {(r["row"], r["engine"]) for r in rec["rows"]} == {("full", "engine"), ("full", "cached"),
                                                              ("base", "engine"), ("base", "cached")}
    assert all(r["gflop_per_step"] > 0 and r["ms_per_step"] > 0 for r in rec["rows"])
    assert rec["bf16_peak_flops"] is None and rec["train_instances"] == 4
    # the grid: every deep configuration of Tables 1-5, split by where its trunk freezes
    assert sum(map(len, rec["grid_configurations"].values())) == 13
    assert set(rec["grid_minutes"]) == {"engine", "cached"}
    assert gc.peak_of("NVIDIA H200") == 989e12 and gc.peak_of("cpu (x86_64, 2 threads)") is None
