"""A notebook run leaves the checkout clean (issue 15, item 1): executed notebooks, figures and synthetic
records go to the output folder; committed notebooks and figures change only with ``--inplace``."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sbir_lib.core import records as R
from sbir_lib.course import notebooks as NB

ROOT = Path(__file__).resolve().parents[1]


def fake_record(results, experiment, dataset, variant="base"):
    path = R.record_path(results, experiment, dataset, variant, 0, "quick")
    R.write_record(path, {"variant": variant, "seed": 0, "profile": "quick",
                          "metrics": {"acc@1": 0.5, "acc@5": 0.5, "acc@10": 0.5}}, np.eye(2))
    return path


def test_scratch_results_links_real_runs_and_keeps_synthetic_ones_apart(tmp_path):
    committed, scratch = tmp_path / "results", tmp_path / "out" / "results"
    fake_record(committed, "table1", "shoes")
    fake_record(committed, "table2", "synthetic")  # a stand-in run that should never have been committed
    (committed / "tuning").mkdir()
    (committed / "tuning" / "dase_sketchy.quick.json").write_text("{}")
    assert NB.scratch_results(scratch, committed) == scratch
    # real-data runs are read where they are recorded
    assert R.load_record(R.record_path(scratch, "table1", "shoes", "base", 0, "quick"))["metrics"]["acc@1"] == 0.5
    assert (scratch / "table1" / "shoes").resolve() == (committed / "table1" / "shoes").resolve()
    assert json.loads((scratch / "tuning" / "dase_sketchy.quick.json").read_text()) == {}
    assert not (scratch / "table2" / "synthetic").exists()  # synthetic runs are not shared
    # a synthetic run recorded during the run stays in the scratch folder; a real one lands in the results
    fake_record(scratch, "table2", "synthetic", "full")
    fake_record(scratch, "dase_sketchy", "synthetic_categories", "dase_mems")
    fake_record(scratch, "table1", "shoes", "full")
    assert not R.record_path(committed, "table2", "synthetic", "full", 0, "quick").exists()
    assert not (committed / "dase_sketchy").exists()
    assert R.record_path(committed, "table1", "shoes", "full", 0, "quick").exists()
    # a second run refreshes the links and keeps the scratch folder's own runs
    fake_record(committed, "table3", "chairs")
    NB.scratch_results(scratch, committed)
    assert R.record_path(scratch, "table2", "synthetic", "full", 0, "quick").exists()
    assert R.record_path(scratch, "table3", "chairs", "base", 0, "quick").exists()
    with pytest.raises(ValueError, match="is the results folder itself"):
        NB.scratch_results(committed, committed)


def test_clean_notebook_keeps_jupyterlabs_kernelspec_and_no_addresses(tmp_path):
    nb = {"cells": [{"cell_type": "code", "metadata": {"papermill": {"status": "completed"}}, "source": "x",
                     "execution_count": 1, "outputs": [
        {"output_type": "execute_result", "execution_count": 1, "metadata": {},
         "data": {"text/plain": ["<pandas.io.formats.style.Styler at 0x7f7447bcbf50>"], "text/html": ["<b>"]}}]}],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    NB.clean_notebook(path)
    out = json.loads(path.read_text())
    assert out["metadata"]["kernelspec"] == NB.KERNELSPEC
    assert out["cells"][0]["outputs"][0]["data"]["text/plain"] == ["<pandas.io.formats.style.Styler>"]
    assert out["cells"][0]["metadata"] == {}  # papermill's emptied cell metadata goes, as jupytext drops it


def test_notebooks_and_their_sources_carry_jupyterlabs_kernelspec():
    import jupytext
    import nbformat

    source = jupytext.read(ROOT / "notebooks" / "03_coarse_fine_fusion.py")
    nb = nbformat.read(str(ROOT / "notebooks" / "03_coarse_fine_fusion.ipynb"), as_version=4)
    assert source.metadata["kernelspec"] == nb.metadata["kernelspec"] == NB.KERNELSPEC == {
        "display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    assert nb.metadata["language_info"]["name"] == "python"


def test_main_accepts_an_output_folder(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(NB, "run", lambda profile, only, inplace, out, only_stale, prefetch: seen.update(
        profile=profile, only=only, inplace=inplace, out=out, only_stale=only_stale, prefetch=prefetch))
    assert NB.main(["run", "--only", "03", "--out", str(tmp_path)]) == 0
    assert seen == {"profile": "quick", "only": ["03"], "inplace": False, "out": str(tmp_path), "only_stale": False,
                    "prefetch": True}
    assert NB.main(["run", "--stale", "--inplace", "--no-prefetch"]) == 0
    assert seen["only_stale"] and seen["inplace"] and not seen["prefetch"]


def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


#: where a notebook run writes when it is not clean: committed figures and records (and the notebook run)
OUTPUT_PATHS = ("figures/", "results/")


def _checkout_state(notebook: str) -> dict:
    """``git status --porcelain`` (untracked files one by one), and the content of every committed figure,
    of ``notebook`` and of every file under :data:`OUTPUT_PATHS` that the status lists: a file already
    modified before the run is caught when the run rewrites it (files that others may be editing meanwhile,
    sources and other notebooks, are left out of that comparison)."""
    status = _git("status", "--porcelain", "--untracked-files=all")
    paths = {line[3:].split(" -> ")[-1].strip('"') for line in status.splitlines()}
    paths = {p for p in paths if p.startswith(OUTPUT_PATHS)} | {notebook}
    paths |= {str(p.relative_to(ROOT)) for p in (ROOT / "figures").glob("*") if p.is_file()}
    digest = {p: hashlib.sha1((ROOT / p).read_bytes()).hexdigest() if (ROOT / p).is_file() else None
              for p in sorted(paths)}
    return {"status": status, "files": digest}


@pytest.mark.slow
def test_a_notebook_run_without_the_real_data_leaves_the_checkout_clean(tmp_path, monkeypatch):
    """Notebook 00 (the fastest, about 25 s on 2 cores; it saves six figures) on the synthetic stand-in."""
    pytest.importorskip("papermill")
    pytest.importorskip("ipykernel")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    empty = tmp_path / "no_data"
    empty.mkdir()
    monkeypatch.setenv("SBIR_DATA_ROOT", str(empty))  # no real data: every dataset falls back to synthetic
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = str(NB.list_notebooks(["00"])[0].relative_to(ROOT))
    before = _checkout_state(notebook)
    out = tmp_path / "out"
    written = NB.run("quick", only=["00"], out=out, log=lambda *_: None)
    after = _checkout_state(notebook)
    assert after["status"] == before["status"]
    changed = [p for p in before["files"] if before["files"][p] != after["files"].get(p)]
    assert not changed, f"the run changed files of the checkout: {changed}"
    assert [p.parent for p in written] == [out] and written[0].name.startswith("00_")
    figures = sorted(p.name for p in (out / "figures").glob("nb00_*.png"))
    assert figures and all((out / "figures" / f.replace(".png", ".pdf")).exists() for f in figures)
    assert (out / "results").is_dir()
    nb = json.loads(written[0].read_text())
    assert "synthetic" in json.dumps(nb["cells"])  # the stand-in was announced


def test_records_digest_follows_every_real_record_and_ignores_synthetic_runs(tmp_path):
    empty = NB.records_digest(tmp_path)
    rec = {"metrics": {"acc@1": 0.5}}
    R.write_record(R.record_path(tmp_path, "table2", "shoes", "base", 0, "quick"), rec, np.eye(3))
    one = NB.records_digest(tmp_path)
    assert one != empty and NB.records_digest(tmp_path) == one  # deterministic
    R.write_record(R.record_path(tmp_path, "table2", "synthetic", "base", 0, "quick"), rec, np.eye(3))
    assert NB.records_digest(tmp_path) == one  # runs on synthetic stand-ins never show in committed outputs
    R.write_record(R.record_path(tmp_path, "table2", "shoes", "base", 0, "quick"),
                   {"metrics": {"acc@1": 0.6}}, np.eye(3))
    assert NB.records_digest(tmp_path) != one  # a changed record


def test_stale_lists_notebooks_stamped_with_other_records(tmp_path, monkeypatch):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    results = tmp_path / "results"
    for name in ("00_a.ipynb", "01_b.ipynb", "02_c.ipynb"):
        (nbs / name).write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    monkeypatch.setattr(NB, "notebooks_dir", lambda: nbs)
    NB.clean_notebook(nbs / "00_a.ipynb", {"profile": "quick", "records": NB.records_digest(results)})
    NB.clean_notebook(nbs / "01_b.ipynb", {"profile": "quick", "records": "0" * 20})
    assert [p.name for p in NB.stale(results)] == ["01_b.ipynb", "02_c.ipynb"]  # 02 was never stamped
    R.write_record(R.record_path(results, "table2", "shoes", "base", 0, "quick"), {"metrics": {}}, np.eye(3))
    assert len(NB.stale(results)) == 3  # a new record: 00's outputs may no longer show what is recorded


def test_committed_notebooks_show_the_committed_records():
    """No committed output is stale (issue 15, item 4): every notebook was last run, with ``--inplace``,
    on exactly the records committed today."""
    old = NB.stale(ROOT / "results")
    assert not old, (f"{', '.join(p.name for p in old)} ran on other records than today's: refresh with "
                     f"python -m sbir_lib.course run --profile quick --stale --inplace")


def test_a_record_of_a_dirty_tree_is_refused_in_the_committed_results(tmp_path, monkeypatch):
    """Every committed record comes from a commit (issue 23): a ``-dirty`` record is refused in the committed
    results folder (also through a linked scratch folder), written elsewhere, and let in, marked, only with
    ``allowing_dirty`` (the command lines' ``--allow-dirty``)."""
    from sbir_lib.core import config

    committed = tmp_path / "results"
    committed.mkdir()
    monkeypatch.setattr(config, "committed_results", lambda: committed)
    scratch = tmp_path / "out"
    scratch.mkdir()
    (scratch / "table1").symlink_to(committed, target_is_directory=True)
    dirty = {"row": "base", "git_commit": "abc123-dirty", "metrics": {"acc@1": 0.5, "acc@5": 0.5, "acc@10": 0.5}}
    for path in (committed / "table1" / "shoes" / "base" / "seed0.quick.json",
                 scratch / "table1" / "shoes" / "base" / "seed0.quick.json"):
        with pytest.raises(R.DirtyTreeError, match="--allow-dirty"):
            R.write_record(path, dirty, np.eye(2))
        assert not path.exists() and not R.dist_path(path).exists()  # nothing half-written
    elsewhere = tmp_path / "mine" / "seed0.quick.json"
    R.write_record(elsewhere, dirty, np.eye(2))
    assert "dirty_allowed" not in json.loads(elsewhere.read_text())
    R.write_record(committed / "clean.json", {**dirty, "git_commit": "abc123"}, np.eye(2))
    with R.allowing_dirty():
        R.write_record(committed / "allowed.json", dirty, np.eye(2))
        R.write_checked_json(committed / "tuning.json", dirty)
    assert json.loads((committed / "allowed.json").read_text())["dirty_allowed"] is True
    assert json.loads((committed / "tuning.json").read_text())["dirty_allowed"] is True
    with pytest.raises(R.DirtyTreeError):
        R.write_checked_json(committed / "tuning2.json", dirty)


def test_every_recording_command_takes_allow_dirty():
    from sbir_lib.experiments import cli

    ap = cli.build_parser()
    for name in cli.WRITERS:
        extra = {"grid": ["--budget-s", "1"], "tune": ["--experiment", "dase_qmul"]}.get(name, [])
        assert ap.parse_args([name, *extra, "--allow-dirty"]).allow_dirty is True
