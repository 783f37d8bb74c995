"""Every notebook runs to the end in the ``full`` profile on a machine without a GPU (issue 15, item 5): nothing
is trained, what is recorded is shown (runs stopped early included), and the printed commands record exactly
the missing rows, never a whole table, and never a full-profile run on the synthetic stand-in.

Each notebook is read from its source ``notebooks/NN_name.py`` (``tools/nbsync.py``; the committed copy may lag
it) and executed with papermill, CUDA hidden, against a scratch copy of the results folder (so a stray training
run would show as a new file, and nothing lands in the committed results). Twice when the real data is here: with
it, and with an empty data root (the synthetic fallback). About 1-2 minutes per pass on 2 CPU cores.
"""
from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import nbsync  # noqa: E402  (tools/nbsync.py)
from sbir_lib.core import config as _config  # noqa: E402
from sbir_lib.data.datasets import QMUL_NAMES, real_data_available  # noqa: E402

pytestmark = pytest.mark.slow

REAL = all(real_data_available(n) for n in QMUL_NAMES)
NOTEBOOKS = list(nbsync.lessons())
#: the most one notebook may take here: far below any training run of the full profile (hours)
LIMIT_S = 180
#: where the real data is here too, the 'absent' pass runs only these (the notebooks whose data fallbacks differ
#: most: the data tour, training, the tables, DASE, the sketch pad); it runs them all where the data is missing
ABSENT_WITH_REAL = ("00", "01", "05", "07", "09")
RUN_CMD = re.compile(r"python -m sbir_lib\.experiments run [^\n]*")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A copy of the results folder (the notebooks read it; nothing may be added to it) and empty folders for
    the figures, the training checkpoints and a data root without any data."""
    base = tmp_path_factory.mktemp("full-profile")
    results = base / "results"
    shutil.copytree(_config.results_root(), results)
    for sub in ("figures", "runs", "no-data"):
        (base / sub).mkdir()
    return base


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def _texts(nb) -> list[str]:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if "text" in o:
                out.append(o["text"])
            for kind in ("text/plain", "text/markdown", "text/html"):
                if kind in o.get("data", {}):
                    out.append(o["data"][kind])
    return out


@pytest.mark.parametrize("data", ["real", "absent"])
@pytest.mark.parametrize("nn", NOTEBOOKS)
def test_notebook_completes_in_the_full_profile_without_a_gpu(nn, data, scratch, tmp_path, monkeypatch):
    import papermill as pm

    if data == "real" and not REAL:
        pytest.skip("the real QMUL data is not here: the 'absent' pass covers this machine")
    if data == "absent" and REAL and nn not in ABSENT_WITH_REAL:
        pytest.skip(f"CI time: with the real data here, the 'absent' pass covers {', '.join(ABSENT_WITH_REAL)}")
    results = scratch / "results"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the kernel sees no GPU, whatever this machine has
    for var, value in (("SBIR_PROFILE", "full"), ("SBIR_PROGRESS", "0"), ("SBIR_RESULTS_ROOT", str(results)),
                       ("SBIR_FIGURES_ROOT", str(scratch / "figures")), ("SBIR_RUNS_ROOT", str(scratch / "runs"))):
        monkeypatch.setenv(var, value)
    for var in ("SBIR_DATASET", "SBIR_SEED", "SBIR_SEEDS"):
        monkeypatch.delenv(var, raising=False)
    if data == "absent":
        monkeypatch.setenv("SBIR_DATA_ROOT", str(scratch / "no-data"))
    name, nb = nbsync.read_source(nn)
    src, out = tmp_path / f"{name}.ipynb", tmp_path / f"{name}.out.ipynb"
    nbformat.write(nb, str(src))
    before = _files(results)

    t0 = time.perf_counter()
    pm.execute_notebook(str(src), str(out), parameters={"profile": "full"}, kernel_name="python3",
                        cwd=str(tmp_path), progress_bar=False)
    elapsed = time.perf_counter() - t0
    print(f"notebook {nn} ({data} data): {elapsed:.1f} s")

    assert elapsed < LIMIT_S, f"notebook {nn} took {elapsed:.0f} s in the full profile without a GPU: did it train?"
    assert _files(results) == before, f"notebook {nn} wrote records in the full profile without a GPU"
    texts = _texts(nbformat.read(str(out), as_version=4))
    setup = next((t for t in texts if t.startswith("profile=")), "")
    assert setup.startswith("profile=full") and "nothing is trained" in setup, setup
    for cmd in RUN_CMD.findall("\n".join(texts)):
        assert "--rows " in cmd, f"notebook {nn} prints a command for a whole table: {cmd}"
        assert not ("--profile full" in cmd and re.search(r"--dataset synthetic", cmd)), \
            f"notebook {nn} suggests a full-profile run on synthetic data: {cmd}"
    if data == "absent" and nn in ("02", "03", "04"):  # the lecture tables of ours vs the paper's
        assert not any("paper acc@1" in t for t in texts), f"notebook {nn} sets synthetic runs beside the paper"
