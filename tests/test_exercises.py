"""The code is taught, not hidden (issue 15, item 6): every lecture notebook 00-08, as its source
``notebooks/NN_name.py`` makes it (``tools/nbsync.py``; ``tests/test_nbsync.py`` checks that the committed
notebook agrees), shows the library lines that carry its idea and has at least two exercises, each followed by a
worked solution that is collapsed and checks itself.

A static check of the cells; executing the notebooks (nbval, ``python -m sbir_lib.course run``)
runs every solution's ``assert``."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import nbsync  # noqa: E402  (tools/nbsync.py)

LECTURES = [f"{n:02d}" for n in range(9)]  # notebooks 00-08


def _tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def _asserts(source: str) -> int:
    return sum(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(source)))


@pytest.mark.parametrize("nn", LECTURES)
def test_every_exercise_has_a_collapsed_self_checking_solution(nn):
    _, nb = nbsync.read_source(nn)
    cells = nb.cells
    exercises = [i for i, c in enumerate(cells) if nbsync.EXERCISE_TAG in _tags(c)]
    assert len(exercises) >= 2, f"notebook {nn} has {len(exercises)} exercise(s); at least 2 are needed"
    for i in exercises:
        ex = cells[i]
        assert ex.cell_type == "markdown" and ex.source.startswith("**Exercise.**"), (nn, i)
        assert i + 1 < len(cells), f"notebook {nn}: exercise cell {i} is the last cell"
        sol = cells[i + 1]
        where = f"notebook {nn}, cell {i + 1} (the solution of exercise cell {i})"
        assert sol.cell_type == "code" and nbsync.SOLUTION_TAG in _tags(sol), where
        assert sol.metadata.get("jupyter", {}).get("source_hidden") is True, f"{where}: not collapsed"
        assert _asserts(sol.source) >= 1, f"{where}: no assert statement checks it"
    solutions = [i for i, c in enumerate(cells) if nbsync.SOLUTION_TAG in _tags(c)]
    assert solutions == [i + 1 for i in exercises], f"notebook {nn}: a solution without its exercise"


@pytest.mark.parametrize("nn", LECTURES)
def test_every_notebook_shows_the_lines_that_carry_its_idea(nn):
    """Printed from the library (``inspect.getsource`` or ``show_source``), or written out in a solution
    and checked against the library."""
    _, nb = nbsync.read_source(nn)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    shown = [s for s in code if "show_source(" in s or "inspect.getsource(" in s]
    assert shown, f"notebook {nn} prints no library source"

