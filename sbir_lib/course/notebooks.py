"""Batch execution of the notebook series with papermill (the README's main command).

    python -m sbir_lib.course run [--profile quick|full] [--only NN ...] [--out DIR] [--inplace]

Runs ``notebooks/NN_*.ipynb`` in order with kernel ``python3``, injecting ``profile`` into each
notebook's cell tagged ``parameters``. A run leaves the checkout as it found it: the executed copies go to
the output folder (``--out``, default the git-ignored ``notebooks/_executed/<profile>/``) and so do the
figures the notebooks save (``<out>/figures/``, through ``$SBIR_FIGURES_ROOT``). Records are read from
``<out>/results/`` (``$SBIR_RESULTS_ROOT``), a scratch folder that links the results folder's real-data runs
(:func:`scratch_results`), then from ``<out>/user_results/`` (``$SBIR_USER_RESULTS``), where every run the
notebooks train is recorded: the committed records are never written to, except with ``--inplace``.

Notebooks 07 and 09 train before they teach (07 its two lecture networks, 09 the sketch pad's network),
once per checkout: the results are kept under the git-ignored ``runs/``. So that a first run of the series
does not wait for them, ``run`` starts :mod:`sbir_lib.course.prefetch` at idle priority beside the notebooks
(``--no-prefetch``: not); it builds them on the core the other notebooks leave idle, its log in
``<out>/prefetch.log``.

``--inplace`` refreshes the committed notebooks and the committed figures (``figures/``) instead, after
stripping what must not be committed from the notebooks (papermill's absolute paths, widget state) and
writing the kernelspec as JupyterLab does (:data:`KERNELSPEC`); synthetic runs still go to the scratch
folder. Saved figures carry no dates (:func:`sbir_lib.core.plotting.save_figure`), so re-running with
unchanged numbers leaves them byte-identical.

No committed output goes stale: ``--inplace`` stamps each notebook with :func:`records_digest`, a digest of
every record under ``results/`` (what its tables and figures are derived from); if the series itself recorded
runs after a notebook was executed, that notebook is run once more. ``--stale`` runs only the committed
notebooks whose stamp no longer matches the records (:func:`stale`; ``tests/test_course.py`` fails on any).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from sbir_lib.core import config as _config
from sbir_lib.core.profiles import PROFILE_NAMES
from sbir_lib.core.io import write_bytes_atomic

#: the kernelspec as JupyterLab writes it (a notebook with another one is marked modified on opening);
#: every notebook and its ``.py`` source carry it (``tools/nbsync.py --check``) and ``run(..., inplace=True)`` keeps it
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
#: an object's memory address at the end of its default repr (``<pandas...Styler at 0x7f...>``)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")
#: the environment variables :func:`run` sets for its kernels (restored afterwards)
RUN_ENV = ("SBIR_PROFILE", "SBIR_PROGRESS", "SBIR_FIGURES_ROOT", "SBIR_RESULTS_ROOT", "OMP_WAIT_POLICY",
           "SBIR_USER_RESULTS", "SBIR_RECORD_INTO_RESULTS")
#: the notebook metadata key ``run(..., inplace=True)`` writes: ``{"profile": ..., "records": digest}``
STAMP = "sbir_records"


def notebooks_dir() -> Path:
    root = _config.repo_root()
    if root is None:
        raise FileNotFoundError("the notebooks/ folder was not found: run from a source checkout "
                                "(git clone ...; python -m pip install -e '.[dev]')")
    return root / "notebooks"


def list_notebooks(only: list[str] | None = None) -> list[Path]:
    nbs = sorted(p for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if only:
        allowed = [p.name[:2] for p in nbs]
        bad = [o for o in only if o.zfill(2) not in allowed]
        if bad:
            raise ValueError(f"no notebook numbered {', '.join(bad)}; allowed: {', '.join(allowed)}")
        nbs = [p for p in nbs if p.name[:2] in {o.zfill(2) for o in only}]
    return nbs


#: records no notebook reads (only the GPU grid and REPRODUCTION.md do): left out of :func:`records_digest`, so
#: recording them does not make every committed notebook stale (``tests/test_course.py`` checks that no notebook
#: source names them)
NOT_READ_BY_NOTEBOOKS = ("tuning/cache_views.",)


def records_digest(results=None) -> str:
    """A digest of every record under the results folder (``results``, default
    :func:`sbir_lib.core.config.results_root`) that a notebook may read: the paths and bytes of its JSON files,
    runs on synthetic stand-ins and :data:`NOT_READ_BY_NOTEBOOKS` left out. Any such record added, removed or
    changed changes it."""
    root = _config.results_root(results)
    h = hashlib.sha256()
    if root.is_dir():
        for p in sorted(root.rglob("*.json")):
            rel = p.relative_to(root)
            if rel.as_posix().startswith(NOT_READ_BY_NOTEBOOKS):
                continue
            if p.is_file() and not any(_is_synthetic(part) for part in rel.parts):
                h.update(rel.as_posix().encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:20]


def stamp_of(path: Path) -> dict:
    """The ``{"profile", "records"}`` stamp :func:`run` wrote into a notebook (``{}`` if none)."""
    return json.loads(Path(path).read_text()).get("metadata", {}).get(STAMP, {})


def stale(results=None, only=None) -> list[Path]:
    """The committed notebooks whose outputs may no longer show the records: never stamped by an
    ``--inplace`` run, or stamped with another :func:`records_digest` than today's."""
    now = records_digest(results)
    return [p for p in list_notebooks(only) if stamp_of(p).get("records") != now]


def clean_notebook(path: Path, stamp: dict | None = None) -> None:
    """Remove machine-specific and bulky metadata (papermill paths and injected parameters,
    widget state) in place, write the kernelspec as JupyterLab does (:data:`KERNELSPEC`) and, if given, the
    records ``stamp`` (:data:`STAMP`)."""
    nb = json.loads(path.read_text())
    md = nb.setdefault("metadata", {})
    md.pop("widgets", None)
    md["kernelspec"] = dict(KERNELSPEC)
    if stamp is not None:
        md[STAMP] = dict(stamp)
    pm = md.get("papermill")
    if pm is not None:
        for k in ("input_path", "output_path", "start_time", "end_time", "duration", "exception"):
            pm.pop(k, None)
    # papermill's injected parameters would pin the committed notebook to one profile
    nb["cells"] = [c for c in nb.get("cells", [])
                   if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    for cell in nb["cells"]:
        cmd = cell.get("metadata", {})
        pmc = cmd.get("papermill")
        if pmc is not None:
            for k in ("start_time", "end_time", "duration", "exception", "status"):
                pmc.pop(k, None)
            if not pmc:  # left empty: jupytext drops it too (tools/nbsync.py, JupyterLab's pairing)
                cmd.pop("papermill")
        cmd.pop("execution", None)
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            data.pop("application/vnd.jupyter.widget-view+json", None)
            if "text/plain" in data:  # "<...Styler at 0x7f...>": a memory address would churn on every run
                text = data["text/plain"]
                data["text/plain"] = ([_ADDRESS.sub(">", t) for t in text] if isinstance(text, list)
                                      else _ADDRESS.sub(">", text))

    write_bytes_atomic(path, (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode())


#: ipykernel logs this at every kernel start when the kernel talks TCP on localhost, as papermill's does:
#: noise in ``course run``'s output, hidden by :data:`KERNEL_CONFIG` (nothing else the kernel logs is).
TCP_WARNING = "Kernel is running over TCP without encryption"

#: an IPython config file for the kernels ``run`` starts (passed as ``--IPKernelApp.extra_config_file``):
#: a logging filter on the kernel's console handler that drops the one message :data:`TCP_WARNING`.
KERNEL_CONFIG = f"""\
# written by sbir_lib.course.notebooks.run: hide ipykernel's one TCP warning (see TCP_WARNING there)
import logging


class HideTcpWarning(logging.Filter):
    def filter(self, record):
        return {TCP_WARNING!r} not in record.getMessage()


c.IPKernelApp.logging_config = {{
    "filters": {{"sbir_hide_tcp_warning": {{"()": HideTcpWarning}}}},
    "handlers": {{"console": {{"filters": ["sbir_hide_tcp_warning"]}}}},
}}
"""


def output_dir(profile: str, out=None) -> Path:
    """Where :func:`run` writes: ``out``, else ``notebooks/_executed/<profile>/`` (git-ignored)."""
    return Path(out).expanduser().resolve() if out else notebooks_dir() / "_executed" / profile


def _is_synthetic(name: str) -> bool:
    return name.startswith("synthetic")


def scratch_results(scratch, results=None) -> Path:
    """Make ``scratch`` a results folder for a notebook run and return it: every entry of the results
    folder (``results``, default :func:`sbir_lib.core.config.results_root`) is linked into it except the
    runs on synthetic stand-ins (``<experiment>/synthetic*``), which live in ``scratch`` only. Runs on the
    real data are thus read (and new ones recorded) where they always are; synthetic runs made without the
    real data never land in the committed results. Links left by an earlier call are refreshed; folders
    the scratch holds itself are kept. Where links cannot be made (OSError), the entry is left out: what a
    notebook needs from it is recorded afresh in the scratch folder."""
    scratch, committed = Path(scratch), _config.results_root(results).resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    if scratch.resolve() == committed:
        raise ValueError(f"the scratch results folder {scratch} is the results folder itself")

    def link(dst: Path, src: Path):
        if dst.is_symlink():
            dst.unlink()
        elif dst.exists():
            return  # the scratch folder's own (e.g. a run recorded here before the results folder had it)
        try:
            dst.symlink_to(src, target_is_directory=src.is_dir())
        except OSError:
            pass

    if committed.is_dir():
        for entry in sorted(committed.iterdir()):
            if not entry.is_dir():
                link(scratch / entry.name, entry)
                continue
            (scratch / entry.name).mkdir(exist_ok=True)
            for child in sorted(entry.iterdir()):
                if not _is_synthetic(child.name):
                    link(scratch / entry.name / child.name, child)
    return scratch


def run(profile: str, only=None, inplace=False, out=None, log=print, only_stale=False,
        prefetch: bool = False) -> list[Path]:
    """Execute notebooks ``only`` (numbers; default all) of the series in ``profile``; executed copies and
    figures go to :func:`output_dir` (``out``) unless ``inplace``, records to ``<out>/results``
    (:func:`scratch_results`). With ``inplace`` each notebook is stamped with :func:`records_digest`, and a
    notebook that ran before the series recorded new runs is run once more; ``only_stale`` keeps only the
    notebooks :func:`stale` lists; ``prefetch`` starts :mod:`sbir_lib.course.prefetch` beside them (stopped
    when the series ends). Returns the executed notebooks' paths."""
    import papermill as pm

    from sbir_lib.course import prefetch as PF

    _config.check_profile(profile)
    committed = _config.results_root()
    nbs = stale(committed, only) if only_stale else list_notebooks(only)
    if only_stale and not nbs:
        log("no notebook is stale: every one was run with today's records")
    out_dir = output_dir(profile, out)
    out_dir.mkdir(parents=True, exist_ok=True)
    env_before = {k: os.environ.get(k) for k in RUN_ENV}
    results = scratch_results(out_dir / "results")
    os.environ["SBIR_PROFILE"] = profile
    # no progress-bar redraws in the saved notebooks (sbir_lib.core.progress), unless asked for
    os.environ.setdefault("SBIR_PROGRESS", "0")
    os.environ["SBIR_RESULTS_ROOT"] = str(results)
    # what the notebooks train: into the results folder itself only with --inplace (the committed records are
    # re-recorded on purpose); otherwise into <out>/user_results, read after the records (Course.read_roots)
    if inplace:
        os.environ[_config.RECORD_INTO_RESULTS] = "1"
        os.environ.pop("SBIR_USER_RESULTS", None)
    else:
        os.environ.pop(_config.RECORD_INTO_RESULTS, None)
        os.environ["SBIR_USER_RESULTS"] = str(out_dir / "user_results")
    # the committed figures change only with --inplace
    os.environ["SBIR_FIGURES_ROOT"] = str(_config.committed_figures() if inplace else out_dir / "figures")
    written = []
    cfg_dir = tempfile.TemporaryDirectory(prefix="sbir-kernel-config-")
    kernel_config = Path(cfg_dir.name) / "ipython_kernel_config.py"
    kernel_config.write_text(KERNEL_CONFIG)
    root = notebooks_dir().parent
    if prefetch and PF.prefetchable(p.name[:2] for p in nbs):
        # OpenMP threads that wait by sleeping, not spinning: with the worker busy on the other core, a kernel's
        # two-thread PyTorch otherwise crawls (measured: notebook 08's 400-step toy training 75 s instead of 3 s
        # in a kernel; 2.8 s with this); the results do not change, only how idle threads wait
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    worker = PF.start([p.name[:2] for p in nbs], profile, out_dir / "prefetch.log") if prefetch else None
    if worker is not None:
        log(f"building ahead what notebooks {', '.join(PF.prefetchable(p.name[:2] for p in nbs))} need, "
            f"at idle priority (log: {out_dir / 'prefetch.log'})")
    try:
        pending = nbs
        for _ in range(2):  # a second pass only for notebooks that ran before the series recorded new runs
            stamps = {}
            for nb in pending:
                dest = nb if inplace else out_dir / nb.name
                t0 = time.perf_counter()
                log(f"running {nb.name} (profile {profile}) ...")
                pm.execute_notebook(str(nb), str(dest), parameters={"profile": profile},
                                    kernel_name="python3", cwd=str(nb.parent), progress_bar=False,
                                    extra_arguments=[f"--IPKernelApp.extra_config_file={kernel_config}"])
                if inplace:
                    stamps[nb] = records_digest(committed)
                    clean_notebook(dest, {"profile": profile, "records": stamps[nb]})
                shown = dest.relative_to(root) if dest.is_relative_to(root) else dest
                log(f"  done in {time.perf_counter() - t0:.0f} s -> {shown}")
                if dest not in written:
                    written.append(dest)
            now = records_digest(committed)
            pending = [nb for nb in pending if inplace and stamps[nb] != now]
            if not pending:
                break
            log(f"the series recorded new runs after {', '.join(p.name[:2] for p in pending)} ran: "
                f"running {'it' if len(pending) == 1 else 'them'} again so that the outputs show them")
    finally:
        PF.stop(worker)
        cfg_dir.cleanup()
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sbir_lib.course")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute the notebook series with papermill")
    r.add_argument("--profile", default=None, help=" | ".join(PROFILE_NAMES) + " (default: $SBIR_PROFILE or quick)")
    r.add_argument("--only", nargs="+", default=None, metavar="NN", help="notebook numbers, e.g. 00 03")
    r.add_argument("--out", default=None, metavar="DIR",
                   help="output folder: executed notebooks, figures/ and scratch results/ "
                        "(default notebooks/_executed/<profile>)")
    r.add_argument("--inplace", action="store_true",
                   help="refresh the committed notebooks and figures instead")
    r.add_argument("--stale", action="store_true",
                   help="only the notebooks whose outputs predate the records (see `list --stale`)")
    r.add_argument("--no-prefetch", dest="prefetch", action="store_false",
                   help="do not build notebook 07's and 09's networks ahead in a background process")
    ls = sub.add_parser("list", help="the notebooks of the series")
    ls.add_argument("--stale", action="store_true", help="only those run before the records last changed")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "list":
            for p in (stale() if args.stale else list_notebooks()):
                print(p.name)
            return 0
        profile = _config.check_profile(args.profile) if args.profile else _config.default_profile()
        run(profile, args.only, args.inplace, args.out, only_stale=args.stale, prefetch=args.prefetch)
        return 0
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
