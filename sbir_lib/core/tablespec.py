"""The DSSA paper's tables as data: one :class:`TableSpec` per table, the registry everything reads.

Each entry holds what the paper printed (Song et al., ICCV 2017, Tables 1-5; source
``../shared/reference/dssa_iccv17_presentation.txt``: acc@1 / acc@10 in percent on test sets of 115 / 97 / 168
queries for QMUL-Shoe / QMUL-Chair / Handbag) and what reproduces it here:

- its rows (:class:`TableRow`): the paper's label, the network each column of the row trains (a DSSA variant of
  :data:`sbir_lib.models.dssa.VARIANTS` or a classical method of :mod:`sbir_lib.models.classical`; ``None``
  with a reason where there is no reproduction) and the paper's numbers per dataset;
- its layout: ``metrics`` (one network per row, the columns are acc@1 and acc@10: Tables 1, 2, 5) or
  ``settings`` (the columns are two settings of the row, each its own network, acc@1: Tables 3, 4);
- the ablation claims it supports (:class:`ClaimSpec`, tested over seeds by :mod:`sbir_lib.report.claims`);
- ``grid_order``: where its runs come in the recording grid (:func:`sbir_lib.experiments.grid.plan`, most
  valuable first).

:data:`TABLES` is the registry. The runner's experiments (:func:`sbir_lib.experiments.runner.experiments`), the
grid, the tables of notebook 05 and ``REPRODUCTION.md`` (:mod:`sbir_lib.report.tables`), the claims, the figures
and the lecture notebooks' ``ctx.compare`` all read it at call time, so adding a table is one entry here
(``tests/test_tablespec.py`` adds a toy table and sees it reach the grid and the Markdown).
The DASE/MEMS paper's numeric tables are not in our references, so nothing of it is here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DATASETS = ("shoes", "chairs", "handbags")
DATASET_TITLES = {"shoes": "QMUL-Shoe", "chairs": "QMUL-Chair", "handbags": "Handbag"}

Layout = Literal["metrics", "settings"]
RowKind = Literal["dssa", "classical"]


@dataclass(frozen=True)
class TableRow:
    """One row of a paper table. ``networks``: the network of each column group (one for a ``metrics``
    table, one per column for a ``settings`` table), ``None`` where nothing reproduces it (``why`` says why).
    ``paper[dataset]``: the paper's numbers, one per column."""

    key: str
    label: str
    networks: tuple[str | None, ...]
    paper: dict[str, tuple[float, ...]]
    kind: RowKind = "dssa"
    why: str | None = None


@dataclass(frozen=True)
class ClaimSpec:
    """A statement of the paper's ablation: network ``better`` beats network ``worse`` on ``metric``."""

    text: str
    better: str
    worse: str
    metric: str = "acc@1"


@dataclass(frozen=True)
class TableSpec:
    """One paper table (module docstring). ``key`` is also the experiment name its records live under."""

    key: str
    title: str
    layout: Layout
    columns: tuple[str, ...]
    rows: tuple[TableRow, ...]
    claims: tuple[ClaimSpec, ...] = ()
    grid_order: int = 99

    def row(self, key: str) -> TableRow:
        for r in self.rows:
            if r.key == key:
                return r
        raise ValueError(f"{self.key} has no row {key!r}; rows: {', '.join(r.key for r in self.rows)}")

    def network(self, row: str, column: int = 0) -> str | None:
        """The network that reproduces cell (``row``, ``column``)."""
        nets = self.row(row).networks
        return nets[column] if self.layout == "settings" else nets[0]

    def metric(self, column: int) -> str:
        """The metric of a column: its name for a ``metrics`` table, acc@1 for a ``settings`` table."""
        return self.columns[column] if self.layout == "metrics" else "acc@1"

    def networks(self, kind: RowKind | None = None) -> list[str]:
        """Every network the table trains, in row and column order, once each (``kind``: only those rows)."""
        out = [n for r in self.rows if kind in (None, r.kind) for n in r.networks if n is not None]
        return list(dict.fromkeys(out))

    def datasets(self) -> tuple[str, ...]:
        return tuple(self.rows[0].paper)

    def paper(self, dataset: str, row: str) -> tuple[float, ...] | None:
        return self.row(row).paper.get(dataset)

    def not_reproduced(self) -> dict[str, str]:
        """Row label -> why it has no reproduction."""
        return {r.label: r.why or "no reproduction" for r in self.rows if all(n is None for n in r.networks)}


def _paper(shoes, chairs, handbags) -> dict[str, tuple[float, ...]]:
    return {"shoes": tuple(shoes), "chairs": tuple(chairs), "handbags": tuple(handbags)}


def _row(key, label, networks, shoes, chairs, handbags, **kw) -> TableRow:
    nets = networks if isinstance(networks, tuple) else (networks,)
    return TableRow(key, label, nets, _paper(shoes, chairs, handbags), **kw)


TABLE1 = TableSpec(
    "table1", "Table 1: comparison with baselines", "metrics", ("acc@1", "acc@10"), grid_order=1,
    rows=(
        _row("hog_bow_ranksvm", "HOG-BoW + rankSVM", "hog_bow_ranksvm",
             (17.39, 67.83), (28.87, 67.01), (2.38, 10.71), kind="classical"),
        _row("dense_hog_ranksvm", "Dense-HOG + rankSVM", "dense_hog_ranksvm",
             (24.35, 65.22), (52.57, 93.81), (15.47, 40.48), kind="classical"),
        _row("isn_deep_ranksvm", "ISN Deep + rankSVM", None, (20.00, 62.61), (47.42, 82.47), (9.52, 44.05),
             kind="classical", why="needs the features of ISN Deep, a pretrained sketch-classification network "
                                   "that is not available here; the paper's number is shown alone"),
        _row("base", "Triplet SN", "base", (52.17, 92.17), (72.16, 98.96), (39.88, 82.14)),
        _row("full", "Our model (DSSA)", "full", (61.74, 94.78), (81.44, 95.88), (49.40, 82.74)),
    ),
    claims=(ClaimSpec("Our model beats Triplet SN", "full", "base"),
            ClaimSpec("Triplet SN beats Dense-HOG + rankSVM", "base", "dense_hog_ranksvm")),
)

# Table 2: each row's acc@1 is one cell of Table 3, which fixes the network it trains (tests/test_tables.py
# derives them from it): "Base" is Table 3's Base *without* attention (52.17 / 72.16 / 39.88), "Base + CFF" and
# "Full" are *with* attention, and "Base + HOLEF" is *without* attention (56.52 / 74.23; on Handbag both of
# Table 3's HOLEF cells are 40.48), hence ``base+holef``.
TABLE2 = TableSpec(
    "table2", "Table 2: contribution of each component", "metrics", ("acc@1", "acc@10"), grid_order=0,
    rows=(
        _row("base", "Base", "base", (52.17, 92.17), (72.16, 98.96), (39.88, 82.14)),
        _row("base+att+cff", "Base + CFF", "base+att+cff", (58.26, 93.04), (79.38, 95.88), (48.21, 83.33)),
        _row("base+holef", "Base + HOLEF", "base+holef", (56.52, 88.70), (74.23, 97.94), (40.48, 83.93)),
        _row("full", "Full: Base + CFF + HOLEF", "full", (61.74, 94.78), (81.44, 95.88), (49.40, 82.74)),
    ),
    claims=(ClaimSpec("CFF (with attention) improves over Base", "base+att+cff", "base"),
            ClaimSpec("HOLEF (without attention) improves over Base", "base+holef", "base"),
            ClaimSpec("Full improves over Base + CFF", "full", "base+att+cff")),
)

_T3_ROWS = (
    _row("base", "Base", ("base+att", "base"), (54.78, 52.17), (74.23, 72.16), (41.07, 39.88)),
    _row("cff", "Base + CFF", ("base+att+cff", "base+cff"), (58.26, 57.39), (79.38, 75.25), (48.21, 47.02)),
    _row("holef", "Base + HOLEF", ("base+att+holef", "base+holef"), (57.39, 56.52), (75.26, 74.23), (40.48, 40.48)),
    _row("full", "Our model", ("full", "base+cff+holef"), (61.74, 58.26), (81.44, 77.32), (49.40, 48.21)),
)
TABLE3 = TableSpec(
    "table3", "Table 3: with and without attention (acc@1)", "settings", ("with attention", "without attention"),
    rows=_T3_ROWS, grid_order=2,
    claims=tuple(ClaimSpec(f"Attention improves {r.label}", *r.networks) for r in _T3_ROWS),
)

_T4_ROWS = (
    _row("att", "Base + attention", ("base+att", "base+att-noshortcut"), (54.78, 15.65), (74.23, 39.18), (41.07, 17.26)),
    _row("cff", "Base + CFF", ("base+att+cff", "base+att+cff-noshortcut"), (58.26, 26.96), (79.38, 48.45),
         (48.21, 24.40)),
    _row("full", "Our model", ("full", "full-noshortcut"), (61.74, 27.83), (81.44, 49.48), (49.40, 23.81)),
)
TABLE4 = TableSpec(
    "table4", "Table 4: with and without the attention shortcut (acc@1)", "settings",
    ("with shortcut", "without shortcut"), rows=_T4_ROWS, grid_order=3,
    claims=tuple(ClaimSpec(f"The shortcut improves {r.label}", *r.networks) for r in _T4_ROWS),
)

_T5_ROWS = (
    _row("euclidean", "Triplet loss with Euclidean", "base+att+cff", (58.26, 93.04), (79.38, 95.88), (48.21, 83.33)),
    _row("weighted_euclidean", "Triplet loss with Weighted Euclidean", "base+att+cff+weighted_euclidean",
         (58.26, 93.04), (79.38, 95.88), (48.81, 82.14)),
    _row("mahalanobis", "Triplet loss with Mahalanobis", "base+att+cff+mahalanobis",
         (52.17, 89.57), (78.35, 95.88), (44.64, 79.76)),
    _row("holef", "Our HOLEF", "full", (61.74, 94.78), (81.44, 95.88), (49.40, 82.74)),
)
TABLE5 = TableSpec(
    "table5", "Table 5: triplet-loss energies", "metrics", ("acc@1", "acc@10"), rows=_T5_ROWS, grid_order=4,
    claims=tuple(ClaimSpec(f"HOLEF beats {r.label.replace('Triplet loss with ', '')}", "full", r.networks[0])
                 for r in _T5_ROWS[:3]),
)

#: The registry: table key -> spec, in the paper's order.
TABLES: dict[str, TableSpec] = {t.key: t for t in (TABLE1, TABLE2, TABLE3, TABLE4, TABLE5)}


def keys() -> tuple[str, ...]:
    """The registered tables' keys, in the paper's order (read at call time)."""
    return tuple(TABLES)


def get(key: str) -> TableSpec:
    """The spec of table ``key``; a ``ValueError`` naming the registered ones otherwise."""
    if key not in TABLES:
        raise ValueError(f"unknown table {key!r}; allowed: {', '.join(TABLES)}")
    return TABLES[key]


def grid_order() -> list[TableSpec]:
    """The tables in the order the recording grid records them (``grid_order``, then the paper's order)."""
    return sorted(TABLES.values(), key=lambda t: t.grid_order)


def label(network: str) -> str:
    """A network's name in the paper (its first row label; Table 1's where it has one), else the name."""
    for t in TABLES.values():
        for r in t.rows:
            if t.layout == "metrics" and network in r.networks:
                return r.label
    return network
