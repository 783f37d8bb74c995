"""The lessons' source of truth (issue 24, item 7): every notebook has a jupytext percent-format twin
``notebooks/NN_name.py`` that agrees with it, and ``tools/nbsync.py`` reports and mends any drift."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import nbsync  # noqa: E402  (tools/nbsync.py)
from sbir_lib.course.notebooks import STAMP  # noqa: E402


def _run(*args):
    return subprocess.run([sys.executable, "tools/nbsync.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_committed_notebooks_match_their_sources():
    out = _run("--check")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all 10 notebooks match their .py sources" in out.stdout


def test_every_notebook_has_a_paired_source_and_vice_versa():
    stems = lambda ext: sorted(p.stem for p in nbsync.NB_DIR.glob(f"[0-9][0-9]_*.{ext}"))  # noqa: E731
    assert stems("py") == stems("ipynb") == sorted(nbsync.lessons().values())
    for nn, name in nbsync.lessons().items():
        _, nb = nbsync.read_source(nn)
        assert nb.metadata["jupytext"]["formats"] == nbsync.FORMATS
        assert nb.metadata["kernelspec"] == nbsync.KERNELSPEC
        assert f"`notebooks/{name}.py`" in nb.cells[0].source  # the title cell names its source
        assert nb.cells[1].metadata["tags"] == ["parameters"]
        committed = nbformat.read(str(nbsync.NB_DIR / f"{name}.ipynb"), as_version=4)
        assert committed.metadata["jupytext"] == {"formats": nbsync.FORMATS}


@pytest.fixture
def copied(tmp_path):
    """Notebook 04 and its source in a temporary notebooks folder: (folder, .ipynb, .py)."""
    name = nbsync.lessons(only=["04"])["04"]
    for ext in ("ipynb", "py"):
        shutil.copy(nbsync.NB_DIR / f"{name}.{ext}", tmp_path)
    return tmp_path, tmp_path / f"{name}.ipynb", tmp_path / f"{name}.py"


def _code_with_outputs(path):
    nb = nbformat.read(str(path), as_version=4)
    return nb, [k for k, c in enumerate(nb.cells) if c.cell_type == "code" and c.outputs]


def test_check_reports_an_edit_to_the_notebook_by_cell(copied):
    """A notebook edited in JupyterLab without jupytext: its .py source no longer agrees."""
    folder, ipynb, _ = copied
    assert nbsync.check(folder, ["04"]) == []
    nb, code = _code_with_outputs(ipynb)
    i = code[2]
    nb.cells[i].source += "\nprint('edited by hand')"
    nbformat.write(nb, str(ipynb))

    reports = nbsync.check(folder, ["04"])
    assert len(reports) == 1 and ipynb.name in reports[0]
    assert f"cell {i}: source differs" in reports[0]
    assert "-print('edited by hand')" in reports[0]  # the diff runs from the notebook to the source

    out = _run("--check", "--notebooks", str(folder), "04")
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"cell {i}: source differs" in out.stdout


def test_check_reports_an_edit_to_the_source_by_cell(copied):
    folder, ipynb, py = copied
    nb, code = _code_with_outputs(ipynb)
    i = code[-1]
    text = py.read_text()
    assert text.count(nb.cells[i].source) == 1
    py.write_text(text.replace(nb.cells[i].source, nb.cells[i].source + "\nprint('edited in the source')"))
    reports = nbsync.check(folder, ["04"])
    assert len(reports) == 1 and f"cell {i}: source differs" in reports[0]
    assert "+print('edited in the source')" in reports[0]


def test_check_reports_a_lost_tag_and_a_removed_cell(copied):
    folder, ipynb, py = copied
    nb = nbformat.read(str(ipynb), as_version=4)
    sol = next(k for k, c in enumerate(nb.cells) if nbsync.SOLUTION_TAG in c.metadata.get("tags", []))
    text = py.read_text()
    py.write_text(text.replace('# %% tags=["solution"] jupyter=', "# %% jupyter=", 1))
    reports = nbsync.check(folder, ["04"])
    assert len(reports) == 1 and f"cell {sol}: metadata" in reports[0] and "'solution'" in reports[0]

    py.write_text(text)
    del nb.cells[3]
    nbformat.write(nb, str(ipynb))
    reports = nbsync.check(folder, ["04"])
    assert len(reports) == 1 and "cell -> 3: only in the source" in reports[0]
    assert "source differs" not in reports[0]  # aligned: the cells after it are not reported as shifted


def test_sync_keeps_the_outputs_of_unchanged_cells(copied):
    folder, ipynb, py = copied
    before, code = _code_with_outputs(ipynb)
    assert nbsync.sync("04", folder) == (ipynb, "unchanged")

    text = py.read_text()
    py.write_text(text.replace("\n# ## ", "\n# ## Edited: ", 1))  # a markdown heading: outputs stay valid
    assert nbsync.sync("04", folder) == (ipynb, "markdown")
    nb = nbformat.read(str(ipynb), as_version=4)
    assert [c.get("outputs") for c in nb.cells] == [c.get("outputs") for c in before.cells]

    edited, kept = code[-1], code[-2]
    src = before.cells[edited].source
    py.write_text(py.read_text().replace(src, src + "\nprint('edited in the source')"))
    assert nbsync.sync("04", folder) == (ipynb, "code")
    nb = nbformat.read(str(ipynb), as_version=4)
    assert nbsync.check(folder, ["04"]) == []
    assert nb.cells[edited].outputs == [] and nb.cells[edited].execution_count is None  # stale: dropped
    assert nb.cells[kept].outputs == before.cells[kept].outputs  # unchanged code keeps the committed outputs
    assert [c.id for c in nb.cells] == [c.id for c in before.cells]
    assert nb.metadata[STAMP] == before.metadata[STAMP]  # the records stamp survives
    assert nbsync.sync("04", folder) == (ipynb, "unchanged")


def test_from_ipynb_writes_a_notebook_edit_into_its_source(copied):
    folder, ipynb, py = copied
    nb, code = _code_with_outputs(ipynb)
    nb.cells[code[1]].source += "\nprint('edited in JupyterLab')"
    nbformat.write(nb, str(ipynb))
    assert nbsync.from_ipynb("04", folder) == (py, True)
    assert "print('edited in JupyterLab')" in py.read_text()
    assert nbsync.check(folder, ["04"]) == []
    assert nbsync.from_ipynb("04", folder) == (py, False)
