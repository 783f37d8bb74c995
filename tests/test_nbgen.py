"""The notebooks' source of truth: every committed notebook matches its generator under tools/ (issue 12)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import nbgen  # noqa: E402  (tools/nbgen.py)


def test_committed_notebooks_match_their_generators():
    out = subprocess.run([sys.executable, "tools/nbgen.py", "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "match their generators" in out.stdout


def test_every_notebook_has_a_generator_that_builds_it_in_memory():
    gens = nbgen.notebooks()
    on_disk = sorted(p.stem for p in nbgen.NB_DIR.glob("[0-9][0-9]_*.ipynb"))
    assert sorted(name for name, _, _ in gens.values()) == on_disk
    for nn, (name, _, generator) in gens.items():
        built_name, nb = nbgen.build(nn)
        assert built_name == name
        assert f"`{generator}`" in nb.cells[0].source  # the title cell names its generator
        assert nb.cells[1].metadata["tags"] == ["parameters"]


@pytest.fixture
def copied(tmp_path):
    """A copy of notebook 04 in a temporary notebooks folder."""
    name = nbgen.notebooks(["04"])["04"][0]
    shutil.copy(nbgen.NB_DIR / f"{name}.ipynb", tmp_path)
    return tmp_path, tmp_path / f"{name}.ipynb"


def test_check_reports_an_edited_cell(copied):
    folder, path = copied
    assert nbgen.check(folder, ["04"]) == []
    nb = nbformat.read(str(path), as_version=4)
    i = next(k for k, c in enumerate(nb.cells) if c.cell_type == "code" and k > 2)
    nb.cells[i].source += "\nprint('edited by hand')"
    nbformat.write(nb, str(path))

    reports = nbgen.check(folder, ["04"])
    assert len(reports) == 1 and path.name in reports[0]
    assert f"cell {i}: source differs" in reports[0] and "edited by hand" in reports[0]

    out = subprocess.run([sys.executable, "tools/nbgen.py", "--check", "--notebooks", str(folder), "04"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"cell {i}: source differs" in out.stdout


def test_check_reports_a_removed_cell(copied):
    folder, path = copied
    nb = nbformat.read(str(path), as_version=4)
    del nb.cells[3]
    nbformat.write(nb, str(path))
    reports = nbgen.check(folder, ["04"])
    assert len(reports) == 1
    assert "cell -> 3: only in the generator" in reports[0]
    assert "source differs" not in reports[0]  # aligned: the cells after it are not reported as shifted


def test_writing_restores_the_source_and_keeps_unchanged_outputs(copied):
    folder, path = copied
    nb = nbformat.read(str(path), as_version=4)
    code_cells = [k for k, c in enumerate(nb.cells) if c.cell_type == "code" and c.outputs]
    edited, kept = code_cells[-1], code_cells[-2]
    outputs = nb.cells[kept].outputs
    nb.cells[edited].source = "print('edited by hand')"
    nbformat.write(nb, str(path))

    assert nbgen.sync("04", folder) == (path, "code")
    nb = nbformat.read(str(path), as_version=4)
    assert nbgen.check(folder, ["04"]) == []
    assert nb.cells[edited].outputs == []  # changed code: its stale outputs are dropped
    assert nb.cells[kept].outputs == outputs  # unchanged code keeps the committed outputs
    assert nbgen.sync("04", folder) == (path, "unchanged")

    assert nbgen.sync("04", folder, fresh=True) == (path, "fresh")
    nb = nbformat.read(str(path), as_version=4)
    assert all(not c.get("outputs") for c in nb.cells)
    assert nbgen.check(folder, ["04"]) == []
