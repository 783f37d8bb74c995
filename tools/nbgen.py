"""Shared cell builders for the notebook generators in ``tools/`` (``make_notebooks_00_04.py``,
``make_notebooks_05_06.py``, ``make_nb_07_08.py``).

Conventions (DEVELOPERS.md): a title, one cell tagged ``parameters`` holding ``profile`` (default
``$SBIR_PROFILE``), ``ctx = course.setup(profile)``, then short cells; deterministic cells start with
``# NBVAL_CHECK_OUTPUT`` (nbval compares only those). Notebooks are written without outputs; execute
them with ``python -m sbir_lib.course run --profile quick --only NN --inplace``.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
CHECK = "# NBVAL_CHECK_OUTPUT\n"


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, check: bool = False, tags=()):
    cell = new_code_cell((CHECK if check else "") + text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def preamble(title: str, intro: str):
    return [
        md(f"# {title}\n\n{intro.strip()}"),
        code('import os\n\nprofile = os.environ.get("SBIR_PROFILE", "quick")  # quick | full',
             tags=["parameters"]),
        code("from sbir_lib import course\n\nctx = course.setup(profile)"),
    ]


def write(name: str, cells) -> Path:
    """Write ``notebooks/<name>.ipynb`` (kernel python3) with stable cell ids (small diffs on regeneration)."""
    for i, cell in enumerate(cells):
        cell["id"] = f"nb{name[:2]}-{i:02d}"
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(nb)
    path = NB_DIR / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path
