"""The code is taught, not hidden (issue 15, item 6): every lecture notebook 00-08, as its generator builds it
in memory (``tools/nbgen.py``), shows the library lines that carry its idea and has at least two exercises, each
followed by a worked solution that is collapsed and checks itself.

A static check of the generated cells; executing the notebooks (nbval, ``python -m sbir_lib.course run``)
runs every solution's ``assert``."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import nbgen  # noqa: E402  (tools/nbgen.py)

LECTURES = [f"{n:02d}" for n in range(9)]  # notebooks 00-08


def _tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def _asserts(source: str) -> int:
    return sum(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(source)))


@pytest.mark.parametrize("nn", LECTURES)
def test_every_exercise_has_a_collapsed_self_checking_solution(nn):
    _, nb = nbgen.build(nn)
    cells = nb.cells
    exercises = [i for i, c in enumerate(cells) if nbgen.EXERCISE_TAG in _tags(c)]
    assert len(exercises) >= 2, f"notebook {nn} has {len(exercises)} exercise(s); at least 2 are needed"
    for i in exercises:
        ex = cells[i]
        assert ex.cell_type == "markdown" and ex.source.startswith("**Exercise.**"), (nn, i)
        assert i + 1 < len(cells), f"notebook {nn}: exercise cell {i} is the last cell"
        sol = cells[i + 1]
        where = f"notebook {nn}, cell {i + 1} (the solution of exercise cell {i})"
        assert sol.cell_type == "code" and nbgen.SOLUTION_TAG in _tags(sol), where
        assert sol.metadata.get("jupyter", {}).get("source_hidden") is True, f"{where}: not collapsed"
        assert _asserts(sol.source) >= 1, f"{where}: no assert statement checks it"
    solutions = [i for i, c in enumerate(cells) if nbgen.SOLUTION_TAG in _tags(c)]
    assert solutions == [i + 1 for i in exercises], f"notebook {nn}: a solution without its exercise"


@pytest.mark.parametrize("nn", LECTURES)
def test_every_notebook_shows_the_lines_that_carry_its_idea(nn):
    """Printed from the library (``inspect.getsource`` or ``show_source``), or written out in a solution
    and checked against the library."""
    _, nb = nbgen.build(nn)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    shown = [s for s in code if "show_source(" in s or "inspect.getsource(" in s]
    assert shown, f"notebook {nn} prints no library source"


def test_the_builders_refuse_a_solution_that_checks_nothing():
    with pytest.raises(ValueError, match="assert"):
        nbgen.solution("x = 1")
    cell = nbgen.solution("assert 1 + 1 == 2")
    assert cell.metadata["tags"] == [nbgen.SOLUTION_TAG] and cell.metadata["jupyter"] == {"source_hidden": True}
    assert nbgen.exercise("Do it.").metadata["tags"] == [nbgen.EXERCISE_TAG]
