"""The lessons' source of truth: each ``notebooks/NN_name.ipynb`` has a jupytext percent-format twin
``notebooks/NN_name.py``; this command checks that the two agree and writes one into the other.

The pair is declared in both files (``"jupytext": {"formats": "ipynb,py:percent"}`` in the notebook's
metadata and in the ``.py`` header; ``notebooks/jupytext.toml`` pairs a new notebook of that folder too), so
JupyterLab with jupytext installed (``python -m pip install -e ".[dev]"``) saves both files whenever a
notebook is saved. The ``.py`` holds every cell's type, source and metadata (tags, the collapsed solutions)
and no outputs; the ``.ipynb`` adds the outputs of a quick-profile run. Then::

    python tools/nbsync.py [NN ...]               # write the .py sources into the notebooks (jupytext's
                                                  # --update: unchanged cells keep their outputs; a changed
                                                  # code cell loses its stale ones) and list the notebooks
                                                  # whose code changed
    python tools/nbsync.py --check [NN ...]       # exit 1 when a notebook and its source differ (cell count,
                                                  # types, sources, tags and other cell metadata), with the
                                                  # cell number and a short diff, or a kernelspec is not
                                                  # JupyterLab's
    python tools/nbsync.py --from-ipynb NN [...]  # the other way: write a notebook edited without jupytext
                                                  # (its cells; outputs are never in the .py) into its .py
    python tools/nbsync.py --notebooks DIR        # another notebooks folder (the tests point it at a copy)

A notebook whose code changed is re-executed with ``python -m sbir_lib.course run --profile quick --only NN
--inplace`` and checked with ``python -m pytest notebooks/NN_name.ipynb`` (nbval).

Conventions: a title cell that names the ``.py`` source; the second cell, tagged ``parameters``, holds
``profile`` and, in the lecture notebooks, ``dataset`` / ``seed`` / ``seeds`` (each ``None``: ``$SBIR_PROFILE``,
``$SBIR_DATASET``, ... else the default); then ``ctx = course.setup(profile, ...)``, which checks them, and
short cells that call into ``sbir_lib``. Cells whose output is identical on every machine start with
``# NBVAL_CHECK_OUTPUT`` (nbval, run with ``--nbval-lax``, compares only those). Each lecture shows the few
library lines that carry its idea (``sbir_lib.course.context.show_source``) and has 2-3 exercises: a Markdown
cell tagged ``exercise`` that starts with ``**Exercise.**``, followed by its worked solution, a code cell tagged
``solution``, collapsed (``jupyter={"source_hidden": true}``), that checks itself with an ``assert``
(``tests/test_exercises.py``). Import aliases are listed in the README.
"""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

import jupytext
import nbformat
from jupytext.combine import combine_inputs_with_outputs, map_outputs_to_inputs

from sbir_lib.course.notebooks import KERNELSPEC  # JupyterLab's: a notebook with another one opens modified

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
FORMATS = "ipynb,py:percent"
CHECK = "# NBVAL_CHECK_OUTPUT\n"
EXERCISE_TAG, SOLUTION_TAG = "exercise", "solution"
RERUN = "python -m sbir_lib.course run --profile quick --only {nn} --inplace"
#: cell metadata that is not part of a lesson: what jupytext leaves out of the .py, and papermill's
NOT_COMPARED = {"papermill", "execution", "ExecuteTime", "collapsed", "scrolled", "trusted", "autoscroll",
                "lines_to_next_cell", "lines_to_end_of_cell_marker", "cell_marker", "skipline", "noskipline"}


def lessons(notebooks_dir: Path | str = NB_DIR, only=None) -> dict[str, str]:
    """``{"NN": "NN_name"}`` of every lesson with a notebook or a .py source in ``notebooks_dir``."""
    found: dict[str, str] = {}
    for path in sorted(Path(notebooks_dir).glob("[0-9][0-9]_*")):
        if path.suffix in (".py", ".ipynb"):
            if found.setdefault(path.name[:2], path.stem) != path.stem:
                raise ValueError(f"two lessons numbered {path.name[:2]}: {found[path.name[:2]]}, {path.stem}")
    if only:
        wanted = [str(o).zfill(2) for o in only]
        bad = [o for o in wanted if o not in found]
        if bad:
            raise ValueError(f"no lesson numbered {', '.join(bad)}; known: {', '.join(found)}")
        found = {nn: found[nn] for nn in wanted}
    return found


def read_source(nn: str, notebooks_dir: Path | str = NB_DIR):
    """Lesson ``nn`` as its .py source makes it: (name, notebook without outputs)."""
    name = lessons(notebooks_dir, [nn])[str(nn).zfill(2)]
    return name, jupytext.read(Path(notebooks_dir) / f"{name}.py", fmt="py:percent")


# ----------------------------------------------------------------------------- check

def _metadata(cell) -> dict:
    return {k: v for k, v in cell.metadata.items() if k not in NOT_COMPARED and v not in ({}, [], None)}


def _diff(old: str, new: str, limit: int = 12) -> str:
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), "notebook", "source", n=1, lineterm=""))
    more = len(lines) - limit
    return "\n".join(["    " + x for x in lines[:limit]] + ([f"    ... {more} more diff lines"] if more > 0 else []))


def _first_line(cell) -> str:
    first = next((x for x in cell.source.splitlines() if x and x + "\n" != CHECK), "")
    return f"{cell.cell_type} {first[:70]!r}"


def compare(notebook, source) -> list[str]:
    """Differences of cell count, types, sources and metadata (tags, ``jupyter``, ...; outputs, ids and
    :data:`NOT_COMPARED` are ignored). Cells are aligned first, so an inserted cell is reported once, not as a
    shift of the rest; ``cell i`` is the notebook's index (``-> j``: the source's, where it differs)."""
    a, b = notebook.cells, source.cells
    problems = [] if len(a) == len(b) else [f"{len(a)} cells, the source has {len(b)}"]
    key = lambda c: (c.cell_type, c.source)  # noqa: E731
    matcher = difflib.SequenceMatcher(None, [key(c) for c in a], [key(c) for c in b], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2)):
                if _metadata(a[i]) != _metadata(b[j]):
                    problems.append(f"cell {i}: metadata {_metadata(a[i])}, the source has {_metadata(b[j])}")
            continue
        pairs = list(zip(range(i1, i2), range(j1, j2))) if op == "replace" else []
        for i, j in pairs:
            where = f"cell {i}" + ("" if i == j else f" -> {j}")
            if a[i].cell_type != b[j].cell_type:
                problems.append(f"{where}: {a[i].cell_type} cell, the source has a {b[j].cell_type} cell")
            else:
                problems.append(f"{where}: source differs\n{_diff(a[i].source, b[j].source)}")
        for i in range(i1 + len(pairs), i2):
            problems.append(f"cell {i}: only in the notebook: {_first_line(a[i])}")
        for j in range(j1 + len(pairs), j2):
            problems.append(f"cell -> {j}: only in the source: {_first_line(b[j])}")
    return problems


def _header_problems(nb, what: str) -> list[str]:
    problems = []
    if nb.metadata.get("kernelspec") != KERNELSPEC:
        problems.append(f"{what}: kernelspec {nb.metadata.get('kernelspec')} is not JupyterLab's {KERNELSPEC}")
    if nb.metadata.get("jupytext", {}).get("formats") != FORMATS:
        problems.append(f"{what}: not paired (metadata jupytext.formats is not {FORMATS!r})")
    return problems


def check(notebooks_dir: Path | str = NB_DIR, only=None) -> list[str]:
    """One report per lesson in ``notebooks_dir`` whose notebook and .py source differ, or that lacks one of
    them (empty: all agree)."""
    reports = []
    for nn, name in lessons(notebooks_dir, only).items():
        py, ipynb = Path(notebooks_dir) / f"{name}.py", Path(notebooks_dir) / f"{name}.ipynb"
        if not py.exists():
            reports.append(f"{ipynb}: no source {py.name} (python tools/nbsync.py --from-ipynb {nn})")
            continue
        if not ipynb.exists():
            reports.append(f"{py}: no notebook {ipynb.name} (python tools/nbsync.py {nn})")
            continue
        notebook, source = nbformat.read(str(ipynb), as_version=4), read_source(nn, notebooks_dir)[1]
        problems = compare(notebook, source) + _header_problems(notebook, "notebook") + _header_problems(
            source, "source")
        if problems:
            reports.append(f"{ipynb}: differs from {py.name}\n  " + "\n  ".join(problems))
    return reports


# ----------------------------------------------------------------------------- write

def sync(nn: str, notebooks_dir: Path | str = NB_DIR) -> tuple[Path, str]:
    """Write lesson ``nn``'s .py source into its notebook as ``jupytext --to ipynb --update`` does: a cell
    matched to a committed one keeps its outputs and id, except that a code cell whose source changed loses its
    (stale) outputs. Returns the notebook's path and what changed: ``"unchanged"``, ``"metadata"``,
    ``"markdown"`` (outputs stay valid), ``"code"`` (re-execute) or ``"new"`` (no notebook yet)."""
    name, source = read_source(nn, notebooks_dir)
    path = Path(notebooks_dir) / f"{name}.ipynb"
    if not path.exists():
        jupytext.write(source, path, fmt="ipynb")
        return path, "new"
    old = jupytext.read(path, fmt="ipynb")
    matched = map_outputs_to_inputs(source.cells, old.cells)
    nb = combine_inputs_with_outputs(source, old, fmt="py:percent")
    for cell, j in zip(nb.cells, matched):
        if cell.cell_type == "code" and j is not None and old.cells[j].source != cell.source:
            cell.outputs, cell.execution_count = [], None
    before = path.read_text(encoding="utf-8")
    jupytext.write(nb, path, fmt="ipynb")
    if path.read_text(encoding="utf-8") == before:
        return path, "unchanged"
    sources = lambda n, t: [c.source for c in n.cells if c.cell_type == t]  # noqa: E731
    if sources(old, "code") != sources(nb, "code"):
        return path, "code"
    return path, "markdown" if sources(old, "markdown") != sources(nb, "markdown") else "metadata"


def from_ipynb(nn: str, notebooks_dir: Path | str = NB_DIR) -> tuple[Path, bool]:
    """Write lesson ``nn``'s notebook into its .py source (cells and their metadata; no outputs). Returns the
    source's path and whether it changed."""
    name = lessons(notebooks_dir, [nn])[str(nn).zfill(2)]
    nb = jupytext.read(Path(notebooks_dir) / f"{name}.ipynb", fmt="ipynb")
    nb.metadata.setdefault("jupytext", {})["formats"] = FORMATS
    path = Path(notebooks_dir) / f"{name}.py"
    before = path.read_text(encoding="utf-8") if path.exists() else None
    jupytext.write(nb, path, fmt="py:percent")
    return path, path.read_text(encoding="utf-8") != before


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/nbsync.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("only", nargs="*", metavar="NN", help="lesson numbers (default: all)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when a notebook and its .py source differ")
    mode.add_argument("--from-ipynb", action="store_true", help="write the notebooks into their .py sources")
    ap.add_argument("--notebooks", type=Path, default=NB_DIR, metavar="DIR", help="the notebooks folder")
    args = ap.parse_args(argv)
    try:
        if args.check:
            reports = check(args.notebooks, args.only)
            for r in reports:
                print(r)
            if reports:
                print(f"{len(reports)} notebook(s) differ from their .py sources: python tools/nbsync.py [NN ...] "
                      "writes the sources into the notebooks (--from-ipynb: the other way)")
                return 1
            print(f"all {len(lessons(args.notebooks, args.only))} notebooks match their .py sources")
            return 0
        if args.from_ipynb:
            for nn in lessons(args.notebooks, args.only):
                path, changed = from_ipynb(nn, args.notebooks)
                print(f"{'written' if changed else 'unchanged':9s} {path}")
            return 0
        rerun = []
        for nn in lessons(args.notebooks, args.only):
            path, what = sync(nn, args.notebooks)
            print(f"{what:9s} {path}")
            if what in ("code", "new"):
                rerun.append(nn)
        if rerun:
            print("re-execute (fills the committed outputs), then nbval each:\n  " + RERUN.format(nn=" ".join(rerun)))
        return 0
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
