"""Batch execution of the notebook series with papermill (the README's main command).

    python -m sbir_lib.course run [--profile quick|full] [--only NN ...] [--inplace]

Runs ``notebooks/NN_*.ipynb`` in order with kernel ``python3``, injecting ``profile`` into each
notebook's cell tagged ``parameters``. Executed copies go to the git-ignored
``notebooks/_executed/<profile>/``; ``--inplace`` refreshes the committed notebooks instead, after
stripping what must not be committed (papermill's absolute paths, widget state).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from sbir_lib.core import config as _config
from sbir_lib.core.io import write_bytes_atomic


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


def clean_notebook(path: Path) -> None:
    """Remove machine-specific and bulky metadata (papermill paths and injected parameters,
    widget state) in place."""
    nb = json.loads(path.read_text())
    md = nb.get("metadata", {})
    md.pop("widgets", None)
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
        cmd.pop("execution", None)
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            data.pop("application/vnd.jupyter.widget-view+json", None)

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


def run(profile: str, only=None, inplace=False, log=print) -> list[Path]:
    import papermill as pm

    _config.check_profile(profile)
    nbs = list_notebooks(only)
    out_dir = notebooks_dir() / "_executed" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    env_before = {k: os.environ.get(k) for k in ("SBIR_PROFILE", "SBIR_PROGRESS")}
    os.environ["SBIR_PROFILE"] = profile
    # no progress-bar redraws in the saved notebooks (sbir_lib.core.progress), unless asked for
    os.environ.setdefault("SBIR_PROGRESS", "0")
    written = []
    cfg_dir = tempfile.TemporaryDirectory(prefix="sbir-kernel-config-")
    kernel_config = Path(cfg_dir.name) / "ipython_kernel_config.py"
    kernel_config.write_text(KERNEL_CONFIG)
    try:
        for nb in nbs:
            out = nb if inplace else out_dir / nb.name
            t0 = time.perf_counter()
            log(f"running {nb.name} (profile {profile}) ...")
            pm.execute_notebook(str(nb), str(out), parameters={"profile": profile},
                                kernel_name="python3", cwd=str(nb.parent), progress_bar=False,
                                extra_arguments=[f"--IPKernelApp.extra_config_file={kernel_config}"])
            if inplace:
                clean_notebook(out)
            log(f"  done in {time.perf_counter() - t0:.0f} s -> {out.relative_to(notebooks_dir().parent)}")
            written.append(out)
    finally:
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
    r.add_argument("--profile", default=None, help="quick | full (default: $SBIR_PROFILE or quick)")
    r.add_argument("--only", nargs="+", default=None, metavar="NN", help="notebook numbers, e.g. 00 03")
    r.add_argument("--inplace", action="store_true", help="refresh the committed notebooks")
    sub.add_parser("list", help="the notebooks of the series")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "list":
            for p in list_notebooks():
                print(p.name)
            return 0
        profile = _config.check_profile(args.profile) if args.profile else _config.default_profile()
        run(profile, args.only, args.inplace)
        return 0
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
