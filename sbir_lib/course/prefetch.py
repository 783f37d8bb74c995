"""Prefetch: the networks a notebook of the series will need, built ahead by a background process.

    python -m sbir_lib.course.prefetch [--profile quick|full] NN [NN ...]    # what `course run` starts

Two notebooks of the series train before they can teach: notebook 07 its two lecture ResNets
(:func:`sbir_lib.course.dase_lab.lecture_networks`) and notebook 09 the sketch pad's DSSA network, rebuilt
from its record (:func:`sbir_lib.course.query.load_network`). Both are kept under the git-ignored ``runs/``
folder, so only the first run of the series in a checkout trains them. The other notebooks mostly leave one of
the two CPU cores idle (plotting, tables, one-thread Python), so ``course run`` starts this worker when the
series begins, at idle priority (Linux ``SCHED_IDLE``: it runs only on a core nothing else wants, and gives it
up the moment a notebook does; elsewhere ``nice`` 19): it builds those networks in the idle time, and the
notebooks that need them load them (or wait for the rest, and then the worker has both cores: both sides
hold :func:`sbir_lib.core.io.build_lock`, so nothing is trained twice). A plain low ``nice`` is not enough:
two processes of two-thread PyTorch on two cores slow each other's parallel regions many times over
(measured: notebook 08 took 209 s instead of 19 s beside a ``nice`` 10 worker).

The worker builds exactly what the notebook would, with the same functions, configuration, data and thread
count, so a prefetched network is the one the notebook would have trained;
if the worker fails or is stopped, the notebook trains it itself. It never records runs: where a notebook
would first record a missing run (no records here), the worker leaves that notebook alone.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from sbir_lib.core.profiles import PROFILE_NAMES


def lower_priority() -> str:
    """Make this process (and the threads it starts later: call it before PyTorch starts its own) run only
    when a CPU is otherwise idle: ``SCHED_IDLE`` on Linux, else ``nice`` 19. Returns which."""
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return "SCHED_IDLE"
        except OSError:
            pass
    os.nice(19)
    return "nice 19"


def _nb07(profile: str, log: Callable[[str], None]) -> str:
    from sbir_lib.course import context, dase_lab
    from sbir_lib.experiments import dase_mems

    ctx = context.setup(profile)
    name = dase_lab.dataset_for("dase_sketchy", note=log, packed=ctx.sketchy_pack)
    if not dase_lab.may_train(ctx, name):
        return "nothing to train (notebook 07 shows the recorded runs)"
    cfg = dase_lab.lecture_configs(ctx.profile)
    data = dase_mems.load_data("dase_sketchy", name, ctx.profile, packed=ctx.sketchy_pack, cfg=cfg["dase"])
    _, how = dase_lab.lecture_networks(cfg, data, ctx.device, log=log)
    return ", ".join(f"{b}: {h}" for b, h in how.items())


def _nb09(profile: str, log: Callable[[str], None]) -> str:
    from sbir_lib.course import context, query, sketchpad
    from sbir_lib.core import tablespec as paper

    ctx = context.setup(profile, dataset=None)
    if not ctx.train_missing:
        return "nothing to rebuild (no training here)"
    lacking = [d for d in paper.DATASETS if not query.model_choices(ctx.dataset_key(d), ctx.profile)]
    if lacking:  # the pad would record these runs first: left to the notebook
        return f"left to the notebook: no {ctx.profile}-profile record of the pad's models on {', '.join(lacking)}"
    pad = sketchpad.SketchPad(ctx, log=log)
    pad.ready()
    return f"{pad.model} on {pad.dataset}: ready"


#: notebook number -> the builder of what it needs; a notebook without one needs nothing built ahead
BUILDERS: dict[str, Callable[[str, Callable[[str], None]], str]] = {"07": _nb07, "09": _nb09}


def prefetchable(numbers) -> list[str]:
    """The notebooks among ``numbers`` (``"07"``, ...) that have something to build ahead, in series order."""
    return [n for n in sorted({str(n).zfill(2) for n in numbers}) if n in BUILDERS]


def start(numbers, profile: str, log_path: Path) -> subprocess.Popen | None:
    """Start the worker for the notebooks ``numbers`` in ``profile`` (the environment of the caller, so the
    same data, results and runs folders), its output to ``log_path``; ``None`` if none has anything to build."""
    todo = prefetchable(numbers)
    if not todo:
        return None
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as fh:
        return subprocess.Popen([sys.executable, "-m", "sbir_lib.course.prefetch", "--profile", profile, *todo],
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def stop(worker: subprocess.Popen | None, timeout: float = 10.0) -> int | None:
    """End the worker if it still runs (the series is over, or stopped): SIGTERM, then SIGKILL after
    ``timeout`` s. Whatever it had not finished is simply not kept (every file is written atomically and the
    locks are released by the OS). Returns its exit code (``None`` without a worker)."""
    if worker is None:
        return None
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return worker.returncode


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sbir_lib.course.prefetch",
                                 description="build ahead what notebooks of the series will need "
                                             "(started by `python -m sbir_lib.course run`)")
    ap.add_argument("--profile", default=None, help=" | ".join(PROFILE_NAMES) + " (default: $SBIR_PROFILE or quick)")
    ap.add_argument("--normal-priority", action="store_true",
                    help="keep the normal priority (default: idle priority, see lower_priority)")
    ap.add_argument("notebooks", nargs="+", metavar="NN", help=f"notebook numbers; with a builder: {', '.join(BUILDERS)}")
    args = ap.parse_args(argv)
    from sbir_lib.core import config as _config

    profile = _config.check_profile(args.profile) if args.profile else _config.default_profile()
    if not args.normal_priority:
        print(f"[prefetch] priority: {lower_priority()}", flush=True)
    failed = 0
    for n in prefetchable(args.notebooks):
        t0 = time.perf_counter()
        print(f"[prefetch] notebook {n} ...", flush=True)
        try:
            what = BUILDERS[n](profile, lambda m: print(f"[prefetch]   {m}", flush=True))
        except Exception as e:  # the notebook will do it itself, and show the error where it happens
            failed += 1
            print(f"[prefetch] notebook {n} failed ({type(e).__name__}: {e}); the notebook builds it itself",
                  flush=True)
            continue
        print(f"[prefetch] notebook {n}: {what} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
