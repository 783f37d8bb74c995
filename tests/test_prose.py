"""Prose that states a result is generated from the records (issue [course-ux-2] item 9): the sentence generators
agree with their numbers, and no notebook states one of our results by hand."""
import re
from pathlib import Path

import numpy as np
import pytest

from sbir_lib.report import claims as C
from sbir_lib.report.tables import Stat

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("0*.py"))


def _stat(values):
    return Stat(tuple(float(v) for v in values), tuple(range(len(values))), ("cpu",) * len(values))


@pytest.mark.parametrize("seed", range(40))
def test_direction_sentence_says_what_its_numbers_say(seed):
    rng = np.random.default_rng(seed)
    na, nb = rng.integers(1, 4, size=2)
    a = _stat(np.round(rng.normal(40, 3, na), 2))
    b = _stat(np.round(rng.normal(40 + rng.normal(0, 3), 3, nb), 2))
    text = C.direction_sentence("A", "B", a, b)
    d = round(a.mean - b.mean, 2)
    assert ("A is ahead of B" in text) == (d > 0)
    assert ("A is behind B" in text) == (d < 0)
    assert f"by {abs(d):.2f} points" in text
    verdict = C.compare_seeds(a, b)["verdict"]
    assert (verdict in text) if not verdict.startswith("n/a") else "no verdict" in text


def test_direction_sentence_without_records():
    assert "B is not recorded" in C.direction_sentence("A", "B", _stat([40.0]), Stat((), (), ()))


#: a direction word, and a mention of our own results, in one sentence of a notebook's markdown
DIRECTION = re.compile(r"\b(beats?|outperforms?|improves?|ahead|above|below|better|worse|higher|lower|helps?|hurts?|"
                       r"shows learning)\b", re.I)
OURS = re.compile(r"\b(ours|our (runs?|numbers|network|model|records?)|quick[- ]profile|quick run|cpu profile|"
                  r"this profile|the (full|cpu|quick) profile's|full-profile (rows|runs)|in the (quick|cpu|full) profile|"
                  r"(the|this|our) (acc@K curve|run|runs|loss curve))\b", re.I)
#: pointers to a comparison as if it were recorded, whatever the records hold
POINTERS = re.compile(r"the comparison that matters|profile's comparison|rows \(a GPU sitting\) say", re.I)
#: a direction that is a place on the page ("printed above"), not a result
PLACE = re.compile(r"\b(printed|shown|plotted|run|cell|table|figure) (above|below)\b", re.I)
#: sentences that name a direction conditionally, not as a result
ALLOWED = ("where ours is higher", "below it, ours is lower")


def _sentences(text):
    for s in re.split(r"(?<=[.;:!?])\s+|\n\s*-\s+", text):
        yield " ".join(s.split())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_states_our_results_by_hand(path):
    """A sentence that says which way *our* numbers go must be printed by code from the records
    (:func:`sbir_lib.report.claims.direction_sentence`, ``ctx.verdicts``), never written in a markdown cell, where it
    goes stale the moment a record changes (notebook 01 once said its acc@K curve showed learning while its own
    figure had the untrained network ahead)."""
    import jupytext

    bad = []
    for cell in jupytext.read(path).cells:
        if cell.cell_type != "markdown":
            continue
        for s in _sentences(cell.source.replace("# ", "")):
            if (DIRECTION.search(PLACE.sub("", s)) and OURS.search(s) and not any(a in s for a in ALLOWED)
                    or POINTERS.search(s)):
                bad.append(s)
    assert not bad, f"{path.name}: results stated by hand (print them from the records instead): {bad}"
