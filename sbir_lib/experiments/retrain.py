"""Retraining recorded runs from nothing and comparing them with their records.

    python -m sbir_lib.experiments verify --retrain 3 [--profile cpu] [--retrain-seed 0]

``verify`` alone recomputes every record's metrics from its stored distances. ``--retrain N`` goes further for
a profile that trains on this machine (the ``cpu`` profile): it draws ``N`` of its trained DSSA records at random
(seeded; copies of a run recorded for another table and classical rows are left out), trains each again from
its specification into a temporary results folder, without reading or writing any checkpoint, and compares:
the largest difference of the distance matrices and the acc@1 / acc@10 of both. A retrain that reads the same
stored trunk maps on the same kind of processor comes out the same to float32 rounding; the record names its
device, so a difference elsewhere says which machines disagree.
"""
from __future__ import annotations

import random
import re
import tempfile
from pathlib import Path

import numpy as np

from sbir_lib.core.profiles import as_profile
from sbir_lib.core.records import dist_path
from sbir_lib.core.store import RecordStore, record_path
from sbir_lib.experiments import runner
from sbir_lib.experiments.spec import CLASSICAL

#: largest |distance difference| counted as "the same" (float32 rounding of sums over 10 views)
TOLERANCE = 1e-4


def candidates(results, profile: str) -> list:
    """The trained DSSA records of ``profile`` under ``results`` (no copies, no classical rows, no inits)."""
    records, _ = RecordStore(results).scan()
    name = re.compile(rf"^seed\d+{re.escape(as_profile(profile).record_suffix)}\.json$")
    return sorted((r for r in records if name.match(r.path.name) and not r.data.get("reused_from")
                   and (r.data.get("row") or r.data.get("variant")) not in CLASSICAL
                   and "@" not in str(r.data.get("row") or "") and str(r.data.get("experiment")).startswith("table")),
                  key=lambda r: str(r.path))


def retrain_check(n: int, profile: str = "cpu", results=None, seed: int = 0, root=None, device=None,
                  log=print) -> list[dict]:
    """Retrain ``n`` randomly drawn records of ``profile`` (module docstring); one result dict per run:
    ``{"record", "max_abs_diff", "acc@1": (recorded, retrained), "acc@10": ..., "same"}``."""
    store = RecordStore(results)
    pool = candidates(store.root, profile)
    if not pool:
        raise ValueError(f"no trained {profile}-profile DSSA record under {store.root} to retrain")
    picked = random.Random(seed).sample(pool, min(n, len(pool)))
    out = []
    with tempfile.TemporaryDirectory(prefix="sbir-retrain-") as tmp:
        for r in picked:
            rec = r.data
            row = rec.get("row") or rec["variant"]
            log(f"retraining {store.rel(r.path)} ...")
            fresh = runner.run_one(rec["experiment"], rec["dataset"], row, int(rec["seed"]), profile,
                                   results=Path(tmp) / "results", runs=Path(tmp) / "runs", root=root, device=device,
                                   progress=False, log=lambda *_: None)
            a = np.load(dist_path(r.path))
            b = np.load(dist_path(record_path(Path(tmp) / "results", rec["experiment"], rec["dataset"], row,
                                                     int(rec["seed"]), profile)))
            diff = float(np.abs(a - b).max())
            res = {"record": store.rel(r.path), "max_abs_diff": diff,
                   "acc@1": (rec["metrics"]["acc@1"], fresh["metrics"]["acc@1"]),
                   "acc@10": (rec["metrics"]["acc@10"], fresh["metrics"]["acc@10"]),
                   "recorded_on": rec.get("device"), "same": diff <= TOLERANCE}
            log(f"  {'same' if res['same'] else 'DIFFERENT'}: max |distance difference| {diff:.2e}; acc@1 "
                f"{100 * res['acc@1'][0]:.2f} recorded, {100 * res['acc@1'][1]:.2f} retrained")
            out.append(res)
    log(f"{sum(r['same'] for r in out)} of {len(out)} retrained runs came out the same")
    return out
