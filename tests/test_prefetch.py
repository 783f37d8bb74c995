"""Train once, then load (issue 15, item 8: the series on first use): the build lock, notebook 07's lecture
networks kept under runs/, the sketch pad waiting for a rebuild another process holds, and the series
runner's background prefetch (sbir_lib.core.io.build_lock, sbir_lib.course.dase_lab.train_or_load,
sbir_lib.course.query.load_network, sbir_lib.course.prefetch)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
import torch

from sbir_lib.core.io import build_lock
from sbir_lib.course import dase_lab
from sbir_lib.course import prefetch as PF
from sbir_lib.course import query as Q
from sbir_lib.data import paired
from sbir_lib.data import synthetic as SY
from sbir_lib.experiments import dase_mems as C
from sbir_lib.experiments import runner as E
from sbir_lib.training import class_pairs

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="build_lock is fcntl.flock (Linux, macOS)")

HOLDER = """
import sys, time
from sbir_lib.core.io import build_lock
with build_lock(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(60)
"""


def _wait_for(pred, timeout=30.0):
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_build_lock_waits_for_its_holder_even_one_that_is_killed(tmp_path):
    target = tmp_path / "net.pt"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        waited, got = [], []

        def second():
            with build_lock(target, on_wait=lambda: waited.append(time.monotonic())):
                got.append(time.monotonic())

        t = threading.Thread(target=second)
        t.start()
        _wait_for(lambda: waited)
        time.sleep(0.3)
        assert not got  # still waiting while the holder lives
        holder.kill()  # a crashed or killed holder releases the lock: the OS does it
        t.join(30)
        assert got and got[0] >= waited[0]
    finally:
        holder.kill()
        holder.wait()
    with build_lock(target, on_wait=lambda: pytest.fail("nobody holds it")):
        pass
    assert (tmp_path / "net.pt.lock").exists() and not target.exists()  # the lock builds nothing itself


# ----------------------------------------------------------------------------- notebook 07

@pytest.fixture(scope="module")
def cats():
    return paired.sketchy_split(SY.make_synthetic_categories(n_classes=4, per_class=6, n_test_per_class=2,
                                                              photos_per_class=8, size=32, seed=0),
                                gallery_per_class=3)


def _tiny(row: str, **kw):
    return C.profile_config("dase_sketchy", "quick", row, input_size=32, iterations=3, batch_size=4,
                            embed_dim=16, **kw)


def test_lecture_network_is_trained_once_then_loaded(cats, tmp_path):
    results = tmp_path / "results"
    cfg = _tiny("dase_softmax")
    first, how = dase_lab.train_or_load(cfg, cats, "cpu", results=results)
    assert how == "trained now"
    path = dase_lab.lecture_cache(cfg, cats, results)
    assert path.exists() and path.is_relative_to(tmp_path / "runs" / "results")
    again, how = dase_lab.train_or_load(cfg, cats, "cpu", results=results,
                                        log=lambda m: pytest.fail(f"no wait expected: {m}"))
    assert how.startswith("loaded (trained ")
    assert again.history == first.history and again.train_time_s == pytest.approx(first.train_time_s, abs=0.01)
    for k, v in first.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k
    a = class_pairs.evaluate(first.model, cfg, cats, torch.device("cpu"))["dist"]
    b = class_pairs.evaluate(again.model, cfg, cats, torch.device("cpu"))["dist"]
    assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    # anything the weights depend on makes another key: the configuration, the training data
    assert dase_lab.lecture_cache(_tiny("dase_softmax", seed=1), cats, results) != path
    fewer = paired.PairedData(**{**cats.__dict__, "train_photos": cats.train_photos.flip(0)})
    assert dase_lab.lecture_cache(cfg, fewer, results) != path
    runs, hows = dase_lab.lecture_networks({"plain": _tiny("plain_softmax"), "dase": cfg}, cats, "cpu",
                                           results=results)
    assert hows["plain"] == "trained now" and hows["dase"].startswith("loaded")
    assert set(runs) == {"plain", "dase"}


def test_lecture_configs_are_notebook_08s_rows():
    cfg = dase_lab.lecture_configs("quick")
    assert cfg["plain"] == C.profile_config("dase_sketchy", "quick", "plain_softmax")
    assert cfg["dase"] == C.profile_config("dase_sketchy", "quick", "dase_softmax")


# ----------------------------------------------------------------------------- notebook 09

def test_pad_rebuild_waits_for_the_other_process_and_loads_what_it_built(tmp_path):
    synth = SY.make_synthetic(n_train=8, n_test=6, size=256, seed=0)
    results = tmp_path / "results"
    E.run_one("table1", "synthetic", "base", 0, "quick", results=results, dataset=synth,
              overrides={"iterations": 2, "batch_size": 4}, progress=False, log=lambda *_: None)
    choice = Q.model_choices("synthetic", "quick", results)[0]
    *_, how = Q.load_network(choice.record, synth, rebuild=True, results=results, log=lambda *_: None)
    assert how == "rebuilt now"
    cached = Q.cache_path(choice.record)
    aside = tmp_path / "aside.pt"
    shutil.move(cached, aside)  # as if another process were still building it
    logs, got = [], []
    with build_lock(cached):
        t = threading.Thread(target=lambda: got.append(
            Q.load_network(choice.record, synth, rebuild=True, results=results, log=logs.append)))
        t.start()
        _wait_for(lambda: any("waiting for another process" in m for m in logs))
        shutil.move(aside, cached)  # the other process finishes
    t.join(60)
    assert got and got[0][2] == "rebuilt earlier"  # loaded, not trained a second time
    assert not any(m.startswith("rebuilding") for m in logs)


# ----------------------------------------------------------------------------- the worker

def test_prefetchable_and_start_without_builders(tmp_path):
    assert PF.prefetchable(["09", "1", "07", "07"]) == ["07", "09"]
    assert PF.prefetchable(["00", "05"]) == []
    assert PF.start(["00", "05"], "quick", tmp_path / "log") is None and not (tmp_path / "log").exists()
    assert PF.stop(None) is None


def test_worker_runs_builders_in_order_and_survives_a_failure(monkeypatch, capsys):
    done = []

    def ok(profile, log):
        done.append(("07", profile))
        log("built")
        return "both trained"

    def broken(profile, log):
        done.append(("09", profile))
        raise RuntimeError("no data")

    monkeypatch.setattr(PF, "BUILDERS", {"07": ok, "09": broken})
    assert PF.main(["--normal-priority", "--profile", "quick", "09", "07"]) == 1
    out = capsys.readouterr().out
    assert done == [("07", "quick"), ("09", "quick")]
    assert "[prefetch]   built" in out and "notebook 07: both trained" in out
    assert "notebook 09 failed (RuntimeError: no data); the notebook builds it itself" in out


def test_stop_ends_a_running_worker():
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    t0 = time.monotonic()
    assert PF.stop(worker) is not None and worker.poll() is not None
    assert time.monotonic() - t0 < 10


def test_builders_leave_alone_what_they_must_not_train(tmp_path, monkeypatch):
    """Without records the pad would record runs first: the worker leaves that to notebook 09. In the full
    profile without a GPU nothing is trained at all."""
    monkeypatch.setenv("SBIR_RESULTS_ROOT", str(tmp_path / "results"))
    monkeypatch.setenv("SBIR_DATA_ROOT", str(tmp_path / "no-data"))
    logs = []
    assert PF.BUILDERS["09"]("quick", logs.append).startswith("left to the notebook: no quick-profile record")
    if not torch.cuda.is_available():
        assert PF.BUILDERS["07"]("full", logs.append).startswith("nothing to train")
        assert PF.BUILDERS["09"]("full", logs.append).startswith("nothing to rebuild")
    assert not (tmp_path / "runs").exists()
    assert os.environ["SBIR_RESULTS_ROOT"] == str(tmp_path / "results")
