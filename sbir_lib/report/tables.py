"""Tables 1-5 of the DSSA paper, paper vs ours, from the recorded runs; the ablation claims; REPRODUCTION.md.

Taught in ``notebooks/05_reproducing_the_tables.ipynb``. Every number here is read from the records of
:mod:`sbir_lib.experiments.runner` (``results/<table>/<dataset>/<variant>/seed<k>[.quick].json``) and from the
paper's numbers in :mod:`sbir_lib.report.paper` (their only home); nothing is trained in this module.

- :func:`cells` lists, for one table and dataset, every cell of the paper's table: its row, column, the
  variant (``sbir_lib.models.dssa.TABLE_ROWS``) or classical method that reproduces it, the metric
  (``acc@1`` / ``acc@10``) and the paper's number (percent).
- :func:`long_table` adds our mean +- std over the recorded seeds (percent) and the difference
  ``ours - paper``; :func:`table_frame` is the wide "paper | ours mean ± std (n seeds) | difference" view
  and :func:`style` highlights the differences with a pandas ``Styler`` (green: ours higher, red: lower).
- :data:`CLAIMS` are the paper's ablation statements ("CFF improves over Base", ...). :func:`claims_frame`
  tests each on our runs: the difference of means, the pooled seed std, and Welch's t-test
  (``scipy.stats.ttest_ind(equal_var=False)``) when both variants have >= 2 seeds, else "n/a: one seed".
- :func:`pretrain_frame`: from scratch vs a pretrained Sketch-a-Net init (experiment ``pretrain``).
- :func:`setup_frame`, :func:`cost_frame`, :func:`benchmarks_frame`: how our setup differs from the
  authors' (read from the records' configs) and what it cost (wall times from the records, throughput
  from ``results/benchmarks/*.json``).
- :func:`reproduction_markdown` writes all of that as ``REPRODUCTION.md``::

      python -m sbir_lib.report reproduction --profile full --out REPRODUCTION.md
      python -m sbir_lib.report show --table table2 --profile quick
      python -m sbir_lib.report claims --profile full

Numbers are percent (the paper's unit). Runs with a ``reused_from`` field are copies of an identical run
recorded for another table: they count as that table's run but not twice in the measured cost.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sbir_lib.core import records as R
from sbir_lib.core import config as _config
from sbir_lib.report import paper as P

TABLES = ("table1", "table2", "table3", "table4", "table5")
TITLES = {
    "table1": "Table 1: comparison with baselines",
    "table2": "Table 2: contribution of each component",
    "table3": "Table 3: with and without attention (acc@1)",
    "table4": "Table 4: with and without the attention shortcut (acc@1)",
    "table5": "Table 5: triplet-loss energies",
}
#: The columns of each table: the metric for Tables 1, 2, 5; the two settings (acc@1) for Tables 3, 4.
COLUMNS = {
    "table1": ("acc@1", "acc@10"),
    "table2": ("acc@1", "acc@10"),
    "table3": ("with attention", "without attention"),
    "table4": ("with shortcut", "without shortcut"),
    "table5": ("acc@1", "acc@10"),
}
LABELS = {"table1": P.TABLE1_LABELS, "table2": P.TABLE2_LABELS, "table3": P.TABLE3_LABELS,
          "table4": P.TABLE4_LABELS, "table5": P.TABLE5_LABELS}
#: Table 1 rows that have no reproduction here, and why.
NOT_REPRODUCED = {
    "isn_deep_ranksvm": "needs the features of ISN Deep, a pretrained sketch-classification network that is "
                        "not available here; the paper's number is shown alone",
}
PRETRAIN_EXPERIMENT = "pretrain"
PRETRAIN_INITS = ("scratch", "sketchy_mini")
#: The DSSA experiments this report covers (the DASE/MEMS ones under results/ are not part of it).
DSSA_EXPERIMENTS = TABLES + (PRETRAIN_EXPERIMENT, "curve")
DASH = "—"


def _check(kind: str, value: str, allowed) -> str:
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; allowed: {', '.join(allowed)}")
    return value


def _title(dataset: str) -> str:
    return P.DATASET_TITLES.get(dataset, dataset)


# ====================================================================================== cells and records

@dataclass(frozen=True)
class Cell:
    """One cell of a paper table: ``variant`` is ``None`` where we have no reproduction."""

    table: str
    dataset: str
    row: str
    label: str
    column: str
    variant: str | None
    metric: str
    paper: float | None  # percent; None when the paper has no number (e.g. synthetic data)


def cells(table: str, dataset: str) -> list[Cell]:
    """Every cell of ``table`` for ``dataset`` in the paper's row order (``dataset`` may be one the
    paper does not have, e.g. ``synthetic``: then ``paper`` is ``None``)."""
    from sbir_lib.experiments import runner as E
    from sbir_lib.models import dssa as MD

    _check("table", table, TABLES)
    numbers = P.TABLES[table]
    paper_rows = numbers.get(dataset)
    out = []
    for row in numbers[P.DATASETS[0]]:
        mapping = MD.TABLE_ROWS[table].get(row)
        if mapping is None:
            mapping = row if row in E.CLASSICAL else None
        for j, col in enumerate(COLUMNS[table]):
            two_settings = table in ("table3", "table4")
            variant = (mapping[j] if mapping is not None else None) if two_settings else mapping
            metric = "acc@1" if two_settings else col
            p = float(paper_rows[row][j]) if paper_rows is not None else None
            out.append(Cell(table, dataset, row, LABELS[table][row], col, variant, metric, p))
    return out


def _record_re(profile: str) -> re.Pattern:
    suffix = "" if profile == "full" else re.escape(f".{profile}")
    return re.compile(rf"^seed(\d+){suffix}\.json$")


def load_runs(experiment: str, dataset: str, variant: str, profile: str, results=None, seeds=None) -> list[dict]:
    """The records of ``variant`` in ``experiment`` on ``dataset`` for ``profile``, sorted by seed
    (every recorded seed, or only ``seeds``)."""
    from sbir_lib.experiments import runner as E

    _config.check_profile(profile)
    d = _config.results_root(results) / experiment / dataset / variant
    if not d.is_dir():
        return []
    pat = _record_re(profile)
    found = []
    for p in d.iterdir():
        m = pat.match(p.name)
        if m and (seeds is None or int(m.group(1)) in seeds):
            rec = R.load_record(p)
            if rec is not None:
                rec.setdefault("_path", str(p))
                found.append((int(m.group(1)), rec))
    return [r for _, r in sorted(found, key=lambda t: t[0])]


@dataclass(frozen=True)
class Stat:
    """Our result for one cell: per-seed values (percent) and their mean and sample std."""

    values: tuple[float, ...]
    seeds: tuple[int, ...]
    devices: tuple[str, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (``ddof=1``); ``nan`` with fewer than 2 seeds."""
        return float(np.std(self.values, ddof=1)) if self.n >= 2 else math.nan

    def text(self, digits: int = 2) -> str:
        """``"mean ± std (n seeds)"``, ``"mean (1 seed)"`` or ``"—"``."""
        if self.n == 0:
            return DASH
        if self.n == 1:
            return f"{self.mean:.{digits}f} (1 seed)"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} ({self.n} seeds)"


def stat(runs: list[dict], metric: str) -> Stat:
    """:class:`Stat` of ``metric`` (``acc@1`` | ``acc@5`` | ``acc@10``) over ``runs``, in percent."""
    return Stat(values=tuple(100.0 * float(r["metrics"][metric]) for r in runs),
                seeds=tuple(int(r["seed"]) for r in runs),
                devices=tuple(str(r.get("device", "?")) for r in runs))


# ====================================================================================== tables

def long_table(table: str, datasets=None, profile: str = "full", results=None, seeds=None):
    """One row per cell of ``table`` and dataset: paper, our mean/std/n over seeds, ``diff = ours - paper``
    (percentage points) and ``status`` (``ok`` | ``not run`` | ``no reproduction``)."""
    import pandas as pd

    rows = []
    for ds in datasets or P.DATASETS:
        for c in cells(table, ds):
            if c.variant is None:
                st, status = Stat((), (), ()), "no reproduction"
            else:
                st = stat(load_runs(table, ds, c.variant, profile, results, seeds), c.metric)
                status = "ok" if st.n else "not run"
            rows.append({
                "table": table, "dataset": ds, "row": c.row, "label": c.label, "column": c.column,
                "variant": c.variant, "metric": c.metric, "paper": c.paper if c.paper is not None else math.nan,
                "mean": st.mean, "std": st.std, "n": st.n, "ours": st.text(),
                "diff": st.mean - c.paper if (st.n and c.paper is not None) else math.nan,
                "seeds": ",".join(map(str, st.seeds)), "devices": "; ".join(sorted(set(st.devices))),
                "status": status,
            })
    return pd.DataFrame(rows)


def table_frame(table: str, datasets=None, profile: str = "full", results=None, seeds=None, long=None):
    """The wide view of ``table``: index ``(dataset, row)``, columns ``(column, paper | ours | difference)``.
    ``ours`` reads "mean ± std (n seeds)" (or "—" when not run); ``difference`` is ``ours - paper``."""
    import pandas as pd

    lt = long if long is not None else long_table(table, datasets, profile, results, seeds)
    lt = lt.assign(dataset_title=lt["dataset"].map(_title))
    parts = {}
    for col in COLUMNS[table]:
        sub = lt[lt["column"] == col].set_index(["dataset_title", "label"])
        parts[col] = sub[["paper", "ours", "diff"]].rename(columns={"diff": "difference"})
    frame = pd.concat(parts, axis=1)
    frame.index.names = ["dataset", "row"]
    return frame


def _diff_css(v) -> str:
    if v is None or not isinstance(v, (int, float)) or math.isnan(v):
        return ""
    a = min(abs(v) / 20.0, 1.0) * 0.55 + 0.1
    rgb = "0, 150, 60" if v > 0 else "210, 40, 40"
    return f"background-color: rgba({rgb}, {a:.2f})"


def _uuid(*parts) -> str:
    """A stable, content-derived id for a Styler (committed HTML does not churn; tables differ)."""
    import hashlib

    return "t" + hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:8]


def style(frame, caption: str | None = None):
    """A pandas ``Styler`` of :func:`table_frame`: paper numbers to 2 decimals, signed differences
    coloured (green: ours above the paper, red: below; stronger for larger gaps; — where not run)."""
    diff_cols = [c for c in frame.columns if c[-1] == "difference"]
    paper_cols = [c for c in frame.columns if c[-1] == "paper"]
    sty = (frame.style.format("{:.2f}", subset=paper_cols, na_rep=DASH)
           .format("{:+.2f}", subset=diff_cols, na_rep=DASH)
           .map(_diff_css, subset=diff_cols))
    sty = sty.set_uuid(_uuid(caption, list(frame.index), list(frame.columns)))
    if caption:
        sty = sty.set_caption(caption)
    return sty


def missing_commands(long, profile: str, seeds=None) -> list[str]:
    """The commands that record the cells of ``long`` (:func:`long_table`) marked ``not run``."""
    todo = long[long["status"] == "not run"]
    seeds = list(seeds) if seeds is not None else ([0, 1, 2] if profile == "full" else [0])
    cmds = []
    for (table, ds), _ in todo.groupby(["table", "dataset"], sort=False):
        cmds.append(f"python -m sbir_lib.experiments run --experiment {table} --dataset {ds} "
                    f"--seeds {' '.join(map(str, seeds))} --profile {profile}")
    return cmds


def show(table: str, datasets=None, profile: str = "full", results=None, seeds=None, what: str | None = None):
    """Display ``table`` in a notebook (a styled frame with a caption naming the profile, the seeds and
    the devices) and print the commands for the cells not run; return the long frame."""
    from IPython.display import display

    lt = long_table(table, datasets, profile, results, seeds)
    ran = lt[lt["status"] == "ok"]
    devices = sorted({d for ds in ran["devices"] for d in ds.split("; ") if d})
    seeds_seen = sorted({int(s) for ss in ran["seeds"] for s in ss.split(",") if s})
    cap = (f"{TITLES[table]}: paper vs ours ({what or profile + ' profile'}; "
           f"seeds {','.join(map(str, seeds_seen)) or DASH}; device {', '.join(devices) or DASH}). "
           f"Percent; difference = ours - paper.")
    display(style(table_frame(table, long=lt), cap))
    cmds = missing_commands(lt, profile, seeds)
    if cmds:
        print(f"{len(lt[lt['status'] == 'not run'])} cells not run ({DASH}); record them with:")
        for c in cmds:
            print("  " + c)
    return lt


def fill_missing(ctx, experiments=TABLES + (PRETRAIN_EXPERIMENT,), datasets=P.DATASETS, results=None) -> dict:
    """Train (through ``ctx.record``, i.e. :func:`sbir_lib.experiments.runner.run_one`) the runs of
    ``experiments`` x ``datasets`` x ``ctx.seeds`` that are not recorded for ``ctx.profile``, where this
    notebook may train (``ctx.train_missing``) and the real data is present; recorded runs are only read.
    Returns counts ``{"recorded", "trained", "missing"}`` and prints one line (plus why runs are missing)."""
    from sbir_lib.data import datasets as D
    from sbir_lib.experiments import runner as E

    root = _config.results_root(results)
    rows = E.experiments()
    counts = {"recorded": 0, "trained": 0, "missing": 0}
    notes = []
    for exp in experiments:
        for ds in datasets:
            for row in rows[exp]:
                for seed in ctx.seeds:
                    if R.record_path(root, exp, ds, row, seed, ctx.profile).exists():
                        counts["recorded"] += 1
                        continue
                    if not (ctx.train_missing and D.real_data_available(ds)):
                        counts["missing"] += 1
                        continue
                    try:
                        ctx.record(exp, ds, row, seed)
                        counts["trained"] += 1
                    except FileNotFoundError as e:  # e.g. a pretrained init not made yet
                        counts["missing"] += 1
                        base = _config.repo_root()
                        notes.append(str(e).replace(f"{base}/", "") if base else str(e))
    print(f"{ctx.profile} profile: {counts['recorded']} runs recorded, {counts['trained']} trained now, "
          f"{counts['missing']} missing")
    for n in dict.fromkeys(notes):
        print("  " + n)
    absent = [ds for ds in datasets if not D.real_data_available(ds)]
    if absent and counts["missing"]:
        print("  real data absent for " + ", ".join(absent) + ": " + _config.download_command("qmul-" + absent[0]))
    return counts


# ====================================================================================== claims

@dataclass(frozen=True)
class Claim:
    """A statement of the paper's ablation: ``better`` beats ``worse`` on ``metric`` in ``table``."""

    table: str
    text: str
    better: str
    worse: str
    metric: str = "acc@1"


def _claims() -> list[Claim]:
    from sbir_lib.models import dssa as MD

    out = [
        Claim("table1", "Our model beats Triplet SN", "full", "base"),
        Claim("table1", "Triplet SN beats Dense-HOG + rankSVM", "base", "dense_hog_ranksvm"),
        Claim("table2", "CFF (with attention) improves over Base", "base+att+cff", "base"),
        Claim("table2", "HOLEF (with attention) improves over Base", "base+att+holef", "base"),
        Claim("table2", "Full improves over Base + CFF", "full", "base+att+cff"),
    ]
    for row, (with_, without) in MD.TABLE_ROWS["table3"].items():
        out.append(Claim("table3", f"Attention improves {P.TABLE3_LABELS[row]}", with_, without))
    for row, (with_, without) in MD.TABLE_ROWS["table4"].items():
        out.append(Claim("table4", f"The shortcut improves {P.TABLE4_LABELS[row]}", with_, without))
    for row in ("euclidean", "weighted_euclidean", "mahalanobis"):
        out.append(Claim("table5", f"HOLEF beats {P.TABLE5_LABELS[row].replace('Triplet loss with ', '')}",
                         MD.TABLE_ROWS["table5"]["holef"], MD.TABLE_ROWS["table5"][row]))
    return out


CLAIMS: list[Claim] = _claims()
ALPHA = 0.05


def _paper_value(claim: Claim, dataset: str, variant: str) -> float:
    for c in cells(claim.table, dataset):
        if c.variant == variant and c.metric == claim.metric and c.paper is not None:
            return c.paper
    return math.nan


def compare_seeds(a: Stat, b: Stat) -> dict:
    """Compare our per-seed values ``a`` (claimed better) with ``b``: difference of means, pooled std,
    their ratio, Welch's two-sided t-test p-value, and a verdict in words.

    Verdicts: ``not run``; ``n/a: one seed`` (fewer than 2 seeds of either: no noise estimate);
    ``holds`` / ``reversed`` (p < 0.05); ``within seed noise`` (p >= 0.05); when every seed gave the
    same number (std 0), ``holds`` / ``reversed`` / ``tie`` by the sign alone, said so.
    """
    from scipy import stats as S

    res = {"diff": math.nan, "pooled_std": math.nan, "diff_over_std": math.nan, "p": math.nan,
           "n": f"{a.n}/{b.n}", "verdict": "not run"}
    if a.n == 0 or b.n == 0:
        return res
    diff = a.mean - b.mean
    res["diff"] = diff
    if a.n < 2 or b.n < 2:
        res["verdict"] = "n/a: one seed"
        return res
    pooled = math.sqrt(((a.n - 1) * a.std ** 2 + (b.n - 1) * b.std ** 2) / (a.n + b.n - 2))
    res["pooled_std"] = pooled
    if pooled == 0:
        res["verdict"] = ("holds" if diff > 0 else "reversed" if diff < 0 else "tie") + " (no seed variance)"
        return res
    res["diff_over_std"] = diff / pooled
    import warnings

    with warnings.catch_warnings():  # near-constant samples: scipy warns about precision, the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(S.ttest_ind(a.values, b.values, equal_var=False).pvalue)
    res["p"] = p
    if p < ALPHA:
        res["verdict"] = "holds" if diff > 0 else "reversed"
    else:
        res["verdict"] = "within seed noise"
    return res


def claims_frame(datasets=None, profile: str = "full", results=None, seeds=None, claims=None):
    """Every claim of :data:`CLAIMS` on each dataset: the paper's difference, ours (mean of the better
    minus mean of the worse, percentage points), pooled seed std, diff/std, Welch p and the verdict."""
    import pandas as pd

    rows = []
    for cl in claims or CLAIMS:
        for ds in datasets or P.DATASETS:
            a = stat(load_runs(cl.table, ds, cl.better, profile, results, seeds), cl.metric)
            b = stat(load_runs(cl.table, ds, cl.worse, profile, results, seeds), cl.metric)
            paper_diff = _paper_value(cl, ds, cl.better) - _paper_value(cl, ds, cl.worse)
            rows.append({"table": cl.table, "claim": cl.text, "dataset": _title(ds), "metric": cl.metric,
                         "paper diff": paper_diff, **compare_seeds(a, b)})
    return pd.DataFrame(rows)


def style_claims(frame):
    """Claims with the verdict coloured (green holds, red reversed, grey otherwise)."""
    colours = {"holds": "rgba(0, 150, 60, 0.35)", "reversed": "rgba(210, 40, 40, 0.35)"}

    def css(v):
        key = str(v).split(" (")[0]
        return f"background-color: {colours[key]}" if key in colours else "color: #666"

    return (frame.style.format({"paper diff": "{:+.2f}", "diff": "{:+.2f}", "pooled_std": "{:.2f}",
                                "diff_over_std": "{:+.2f}", "p": "{:.3f}"}, na_rep=DASH)
            .map(css, subset=["verdict"]).hide(axis="index")
            .set_uuid(_uuid("claims", frame.to_json())))


# ====================================================================================== pretrain

def pretrain_frame(datasets=None, profile: str = "full", results=None, seeds=None):
    """From scratch vs pretrained init (experiment ``pretrain``; rows ``base``, ``full``,
    ``base@sketchy_mini``, ``full@sketchy_mini``): acc@1 and acc@10 "mean ± std (n)" per init, the
    gain of the pretrained init in acc@1 (percentage points, signed text), and the paper's number (its models start
    from a pretrained Sketch-a-Net)."""
    import pandas as pd

    rows = []
    for ds in datasets or P.DATASETS:
        for variant, label in (("base", P.TABLE1_LABELS["base"]), ("full", P.TABLE1_LABELS["full"])):
            row = {"dataset": _title(ds), "model": label}
            st1 = {}
            for init in PRETRAIN_INITS:
                name = variant if init == "scratch" else f"{variant}@{init}"
                runs = load_runs(PRETRAIN_EXPERIMENT, ds, name, profile, results, seeds)
                for metric in ("acc@1", "acc@10"):
                    s = stat(runs, metric)
                    row[(init, metric)] = s.text()
                    if metric == "acc@1":
                        st1[init] = s
            gain = st1["sketchy_mini"].mean - st1["scratch"].mean
            row["pretrained - scratch (acc@1)"] = _signed(gain)
            paper = P.TABLE1.get(ds, {}).get(variant)
            row["paper acc@1"] = paper[0] if paper else math.nan
            rows.append(row)
    df = pd.DataFrame(rows).set_index(["dataset", "model"])
    df.columns = [" ".join(c) if isinstance(c, tuple) else c for c in df.columns]
    return df


# ====================================================================================== setup and cost

def all_records(profile: str = "full", results=None, experiments=DSSA_EXPERIMENTS) -> list[dict]:
    """Every record of ``profile`` of the DSSA ``experiments`` under the results folder, with ``_path``."""
    from sbir_lib.experiments import runner as E

    root = _config.results_root(results)
    pat = _record_re(profile)
    out = []
    for p in sorted(root.glob("*/*/*/seed*.json")):
        if pat.match(p.name) and p.parts[-4] in experiments:
            rec = R.load_record(p)
            if rec is not None:
                rec["_path"] = str(p.relative_to(root))
                out.append(rec)
    return out


def inventory(profile: str = "full", results=None):
    """What is recorded: per experiment and dataset, the variants, seeds, devices and iterations."""
    import pandas as pd

    recs = all_records(profile, results)
    rows = []
    key = lambda r: (r["_path"].split("/")[0], r["dataset"])  # noqa: E731
    groups: dict = {}
    for r in recs:
        groups.setdefault(key(r), []).append(r)
    for (exp, ds), rs in sorted(groups.items()):
        rows.append({"experiment": exp, "dataset": ds, "runs": len(rs),
                     "variants": len({r["variant"] for r in rs}),
                     "seeds": ",".join(map(str, sorted({int(r["seed"]) for r in rs}))),
                     "iterations": ",".join(map(str, sorted({r["iterations"] for r in rs if r.get("iterations")}))) or DASH,
                     "devices": "; ".join(sorted({str(r.get("device")) for r in rs}))})
    return pd.DataFrame(rows, columns=["experiment", "dataset", "runs", "variants", "seeds", "iterations",
                                       "devices"])


def authors_setup() -> dict[str, str]:
    """The authors' training/evaluation setup as this project implements it (``sbir_lib.training.triplet``'s
    ``full`` profile follows their recipe), in the same words :func:`setup_frame` uses for our runs;
    ``None`` where our references do not say."""
    from sbir_lib.training import triplet as T

    cfg = T.profile_config("full").to_dict()
    return {
        "init": "pretrained Sketch-a-Net (Triplet SN's initialisation)",
        "iterations": str(cfg["iterations"]),
        "batch_size": str(cfg["batch_size"]),
        "optimizer": f"{cfg['optimizer']} (momentum {cfg['momentum']})",
        "lr": str(cfg["lr"]),
        "positives": _POSITIVES["annotated"],
        "test_views": str(cfg["test_views"]),
        "embedding": _EMBEDDING,
        "precision": None,
        "device": None,
        "evaluation": "acc@1 / acc@10 over all test queries (shoes 115, chairs 97, handbags 168)",
    }


_EMBEDDING = "L2-normalised fc7 (+ L2-normalised sum of the attended map with CFF)"
_POSITIVES = {"annotated": "annotated triplets (shoes, chairs); true match where none (handbags)",
              "true_match": "true match"}


def _setting(rec: dict, name: str) -> str:
    cfg = rec.get("config") or {}
    if rec["variant"].split("@")[0] in ("hog_bow_ranksvm", "dense_hog_ranksvm") and name != "device":
        return None  # classical baselines have no deep-training settings
    if name == "init":
        init = rec.get("init") or cfg.get("init") or "scratch"
        return "from scratch" if init == "scratch" else f"pretrained ({Path(str(init)).name})"
    if name == "optimizer":
        return f"{cfg.get('optimizer')} (momentum {cfg.get('momentum')})" if cfg.get("optimizer") == "sgd" else str(
            cfg.get("optimizer"))
    if name == "positives":
        return _POSITIVES.get(cfg.get("positives"), str(cfg.get("positives")))
    if name == "test_views":
        return str(cfg.get("test_views"))
    if name == "embedding":
        vc = rec.get("variant_config") or {}
        if not vc:
            return None
        if vc.get("l2_normalize_fc7") is False:
            return "raw fc7 (before issue 11)"
        extra = [k for k, on in (("dropout", vc.get("dropout", 0) > 0), ("embedding BN", vc.get("embedding_bn")))
                 if on]
        return _EMBEDDING + (f" + {', '.join(extra)} (non-paper)" if extra else "")
    if name == "precision":
        dev = str(rec.get("device", ""))
        return "bf16 autocast" if cfg.get("amp") and not dev.startswith("cpu") else "fp32"
    if name == "device":
        return str(rec.get("device"))
    if name == "evaluation":
        from sbir_lib.data.datasets import QMUL_COUNTS

        n, ds = rec.get("n_queries"), rec.get("dataset")
        if ds in QMUL_COUNTS and n == QMUL_COUNTS[ds][1]:
            return "acc@1 / acc@10 over all test queries (shoes 115, chairs 97, handbags 168)"
        return f"acc@1 / acc@10 over {n} {ds} queries"
    return str(cfg.get(name))


SETUP_SETTINGS = ("init", "iterations", "batch_size", "optimizer", "lr", "positives", "test_views", "embedding",
                  "precision", "device", "evaluation")


def setup_frame(profile: str = "full", results=None):
    """Per setting: the authors' value and every value found in our records of ``profile`` with the
    number of runs that used it (copied runs counted once)."""
    import pandas as pd

    recs = [r for r in all_records(profile, results) if not r.get("reused_from")]
    authors = authors_setup()
    rows = []
    for name in SETUP_SETTINGS:
        vals = Counter(v for v in (_setting(r, name) for r in recs) if v is not None)
        ours = "; ".join(f"{v} ({n} runs)" for v, n in sorted(vals.items(), key=lambda t: -t[1])) or DASH
        if authors[name] is None or not vals:
            same = "?"
        else:
            same = "yes" if set(vals) == {authors[name]} else "no"
        rows.append({"setting": name, "authors": authors[name] or "not stated in our references", "ours": ours,
                     "same": same})
    return pd.DataFrame(rows)


def cost_frame(profile: str = "full", results=None):
    """Measured cost per device: trained runs (copies not counted), total and per-run wall time, mean
    training throughput (triplets/s, from the records' ``triplets_per_s`` of runs that trained)."""
    import pandas as pd

    recs = [r for r in all_records(profile, results) if not r.get("reused_from")]
    groups: dict = {}
    for r in recs:
        kind = "classical" if r["variant"] in ("hog_bow_ranksvm", "dense_hog_ranksvm") else "deep"
        groups.setdefault((str(r.get("device")), kind), []).append(r)
    rows = []
    for (dev, kind), rs in sorted(groups.items()):
        wall = np.array([float(r.get("wall_time_s") or 0.0) for r in rs])
        tps = [float(r["triplets_per_s"]) for r in rs if (r.get("triplets_per_s") or 0) > 0
               and (r.get("train_time_s") or 0) > 0]
        rows.append({"device": dev, "kind": kind, "runs": len(rs), "total wall (h)": wall.sum() / 3600,
                     "per run mean (min)": wall.mean() / 60, "per run median (min)": float(np.median(wall)) / 60,
                     "per run max (min)": wall.max() / 60,
                     "train triplets/s (mean)": float(np.mean(tps)) if tps else math.nan})
    return pd.DataFrame(rows, columns=["device", "kind", "runs", "total wall (h)", "per run mean (min)",
                                       "per run median (min)", "per run max (min)", "train triplets/s (mean)"])


def benchmarks_frame(results=None):
    """The throughput benchmarks under ``results/benchmarks/*.json``: device, what was measured and the
    headline number (triplets/s of the training engine, or ms per training step)."""
    import pandas as pd

    rows = []
    for p in sorted((_config.results_root(results) / "benchmarks").glob("*.json")):
        try:
            b = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        base = {"file": p.name, "device": b.get("device"), "variant": b.get("variant"),
                "batch": b.get("batch_size", b.get("batch"))}
        if "engine_triplets_per_s" in b:
            rows.append({**base, "measure": "training throughput (triplets/s)",
                         "value": b["engine_triplets_per_s"],
                         "note": f"plain DataLoader {b.get('plain_triplets_per_s')} triplets/s; "
                                 f"projected 20k iterations {b.get('projected_20k_iterations_min')} min"})
        for r in b.get("rows", []):
            if "ms_per_step" in r:
                opts = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("ms_per_step", "min_per_20k"))
                rows.append({**base, "measure": "ms per training step", "value": r["ms_per_step"], "note": opts})
    return pd.DataFrame(rows, columns=["file", "device", "variant", "batch", "measure", "value", "note"])


# ====================================================================================== REPRODUCTION.md

def _md_table(df, floatfmt: str = "{:.2f}", index: bool = False) -> str:
    """A GitHub Markdown table of ``df`` (NaN -> —)."""
    if index:
        df = df.reset_index()
    cols = [str(c) for c in df.columns]

    def fmt(v):
        if isinstance(v, float):
            return DASH if math.isnan(v) else floatfmt.format(v)
        return str(v).replace("|", "\\|") if v is not None else DASH

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _wide_markdown_frame(table: str, lt):
    """One line per (dataset, row): for each column of the paper's table, paper | ours | difference
    ("not run" / "no reproduction" in place of ours), then the variant(s) that reproduce the row."""
    import pandas as pd

    lines = []
    for (ds, row), g in lt.groupby(["dataset", "row"], sort=False):
        line = {"dataset": _title(ds), "row": g["label"].iloc[0]}
        for _, c in g.iterrows():
            ours = c["ours"] if c["status"] == "ok" else c["status"]
            line[f"{c['column']}: paper"] = c["paper"]
            line[f"{c['column']}: ours"] = ours
            line[f"{c['column']}: diff"] = _signed(c["diff"])
        line["our variant(s)"] = " / ".join(dict.fromkeys(v if isinstance(v, str) else DASH for v in g["variant"]))
        lines.append(line)
    return pd.DataFrame(lines)


def _signed(v: float) -> str:
    """``+1.23`` / ``-0.50``; ``—`` for missing (None or NaN)."""
    return DASH if v is None or math.isnan(v) else f"{v:+.2f}"


def reproduction_markdown(profile: str = "full", results=None, seeds=None) -> str:
    """The whole ``REPRODUCTION.md`` from the records of ``profile``: every table cell (paper, ours
    mean ± std, difference; "not run" where no record exists), the ablation claims, from scratch vs
    pretrained, every way our setup differs from the authors', and the measured cost."""
    _config.check_profile(profile)
    recs = all_records(profile, results)
    out = [
        "# Reproduction report: DSSA (Song et al., ICCV 2017), Tables 1-5",
        "",
        f"Generated by `python -m sbir_lib.report reproduction --profile {profile} --out REPRODUCTION.md` from "
        f"the {len(recs)} `{profile}`-profile records under `results/` (do not edit by hand). "
        "Numbers are acc@K in percent; *ours* is the mean ± sample std over the recorded seeds; "
        "*difference* is ours minus the paper, in percentage points.",
        "",
    ]
    if profile != "full":
        out += [f"**The `{profile}` profile trains tiny models for a few iterations on a CPU: its numbers show "
                "that the pipeline works, they are not comparable with the paper's.**", ""]
    commits = sorted({str(r.get("git_commit")) for r in recs})
    if commits:
        out += [f"Records made at commit(s): {', '.join(f'`{c}`' for c in commits)}.", ""]

    out += ["## What was run", ""]
    inv = inventory(profile, results)
    out += [_md_table(inv) if len(inv) else "Nothing is recorded yet.", ""]
    n_q = {r["dataset"]: r.get("n_queries") for r in recs if r.get("n_queries")}
    if n_q:
        out += ["One test query is worth " + ", ".join(
            f"{100.0 / q:.2f} points on {_title(d)} ({q} queries)" for d, q in sorted(n_q.items())) +
            ": differences of one or two queries are within the resolution of these test sets.", ""]

    out += ["## Tables 1-5: paper vs ours", ""]
    for table in TABLES:
        lt = long_table(table, None, profile, results, seeds)
        out += [f"### {TITLES[table]}", ""]
        out += [_md_table(_wide_markdown_frame(table, lt)), ""]
        ok = lt[lt["status"] == "ok"]
        if len(ok):
            out += [f"Cells run: {len(ok)} of {len(lt)}; mean difference {ok['diff'].mean():+.2f}, mean absolute "
                    f"difference {ok['diff'].abs().mean():.2f} points.", ""]
        if table == "table1":
            out += [f"*{P.TABLE1_LABELS[k]}*: {why}." for k, why in NOT_REPRODUCED.items()] + [""]
        cmds = missing_commands(lt, profile, seeds)
        if cmds:
            out += ["Not run yet; record with:", "", "```"] + cmds + ["```", ""]

    out += ["## Do the paper's ablation claims hold beyond seed noise?", "",
            "For each claim *A beats B* (acc@1): the paper's difference, ours (mean of A minus mean of B), the "
            "pooled std over seeds, their ratio, and Welch's two-sided t-test over the per-seed values "
            f"(verdict *holds* / *reversed* when p < {ALPHA}, else *within seed noise*; *n/a: one seed* when "
            "either side has a single seed).", ""]
    cf = claims_frame(None, profile, results, seeds)
    counts = Counter(v.split(" (")[0] for v in cf["verdict"])
    out += ["Verdicts: " + ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())) + ".", ""]
    cview = cf.rename(columns={"paper diff": "paper diff", "diff": "our diff", "pooled_std": "pooled std",
                               "diff_over_std": "diff/std"})
    cview = cview[["table", "claim", "dataset", "paper diff", "our diff", "pooled std", "diff/std", "p", "n",
                   "verdict"]]
    out += [_md_table(cview.assign(p=[DASH if math.isnan(p) else f"{p:.3f}" for p in cview["p"]])), ""]

    partial = partial_frame(profile, results)
    if len(partial):
        out += ["## Runs stopped before their iteration count", "",
                "These full-profile runs were stopped when the GPU time of a session ran out; each was evaluated "
                "from its last checkpoint (10 test views) and recorded as `seed<k>.it<N>.json` with "
                "`\"partial\": true`. They are not in the tables above (which need complete runs) and are not "
                "the recipe's result: they show where training from scratch stood after N iterations. "
                "`val acc@1` is the `curve` experiment's held-out validation split (60 training sketches), "
                "measured every 1,000 iterations. Runs of recipe *pre-fidelity* were trained before issue 11 "
                "(dropout 0.5, fine vector sum(alpha f), weight decay on every parameter) with float16 distance "
                "files whose ties make them not recompute exactly; their weights were not kept. They stay as a "
                "record of that recipe only.", ""]
        out += [_md_table(partial), ""]

    out += ["## From scratch vs pretrained Sketch-a-Net", "",
            "Experiment `pretrain`: the same models trained from scratch and from a Sketch-a-Net pretrained on "
            "`sketchy_mini` (`python -m sbir_lib.training.pretrain`). The paper's models start from a pretrained "
            "Sketch-a-Net; its acc@1 is shown for reference.", ""]
    out += [_md_table(pretrain_frame(None, profile, results, seeds), index=True), ""]

    from sbir_lib.report import fidelity

    out += ["## Ours vs the authors' code", "",
            "One row per setting of the recipe: what the authors' code does (file:line in "
            "yuqian1023/Deep_SBIR_tf = TF and seuliufeng/DeepSBIR = Caffe), what this code does by default "
            "(read from `sbir_lib.training.triplet`'s full profile and `sbir_lib.models.dssa.VariantConfig`, so it cannot drift), "
            "and why any difference exists (`sbir_lib.report.fidelity`).", ""]
    out += [_md_table(fidelity.frame()), ""]
    out += ["## How our recorded runs differ from the authors'", "",
            "Read from the records' configurations (copied runs counted once); *authors* is the recipe as "
            "`sbir_lib.training.triplet` implements it, plus what the paper's runs had that ours do not.", ""]
    out += [_md_table(setup_frame(profile, results)), ""]

    out += ["## Measured cost", "", "Wall time per run from the records (training + evaluation; copies of "
            "identical runs not counted); training throughput from the records' `triplets_per_s`.", ""]
    cost = cost_frame(profile, results)
    out += [_md_table(cost) if len(cost) else "No runs recorded.", ""]
    bench = benchmarks_frame(results)
    if len(bench):
        out += ["Throughput benchmarks (`results/benchmarks/*.json`):", "", _md_table(bench), ""]
    out += [dase_claims_markdown(profile, results, seeds)]
    return "\n".join(out).rstrip() + "\n"


def partial_frame(profile: str = "full", results=None):
    """Records of runs stopped early (``partial``), one row each: iterations done, acc@1/acc@10, the
    validation acc@1 curve when recorded, the training loss at the last logged iteration, device."""
    import pandas as pd

    from sbir_lib.experiments import runner as E

    root = _config.results_root(results)
    rows = []
    for p in sorted(Path(root).glob("*/*/*/seed*.it*.json")):
        rec = R.load_record(p)
        if not rec or not rec.get("partial") or rec.get("profile") != profile:
            continue
        h = rec.get("history") or {}
        val = h.get("val_acc@1") or []
        rows.append({
            "experiment": rec.get("experiment"), "dataset": rec.get("dataset"), "variant": rec.get("variant"),
            "seed": rec.get("seed"), "iterations done": f"{rec.get('iterations')} of "
            f"{(rec.get('config') or {}).get('iterations', '?')}",
            "acc@1": round(100 * rec["metrics"]["acc@1"], 2), "acc@10": round(100 * rec["metrics"]["acc@10"], 2),
            "val acc@1 by 1k iterations": ", ".join(f"{100 * v:.0f}" for v in val) if val else DASH,
            "last train loss": (h.get("loss") or [DASH])[-1], "device": rec.get("device"),
            "recipe": rec.get("recipe", "current"),
            "recomputes": "no" if rec.get("recomputable") is False else "yes",
        })
    return pd.DataFrame(rows)


def write_reproduction(path, profile: str = "full", results=None) -> Path:
    from sbir_lib.core.io import write_bytes_atomic

    path = Path(path)
    write_bytes_atomic(path, reproduction_markdown(profile, results).encode())
    return path


# ====================================================================================== DASE/MEMS claims

#: The DASE/MEMS experiments (:mod:`sbir_lib.experiments.dase_mems`) whose records carry the abstract's claims.
DASE_EXPERIMENTS = ("dase_sketchy", "dase_sketchy_imagenet", "dase_qmul")
DASE_BLOCKS = {"nose": "no SE", "se": "SE", "dase": "DASE"}
#: What each claim is measured with (``sbir_lib.metrics.geometry``): (record key, label).
DASE_CLAIM_MEASURES = {
    "mems": (("max_intra_lt_min_inter", "classes with max intra < min inter (%)"),
             ("max_intra_over_min_inter", "max intra / min inter")),
    "dase": (("domain_gap", "sketch-photo centroid distance / inter-class distance"),),
}


def _dase_datasets(experiment: str, results=None) -> list[str]:
    root = _config.results_root(results) / experiment
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _claim_stat(runs: list[dict], key: str, lower_is_better: bool) -> tuple[Stat, int]:
    """:class:`Stat` of claim ``key`` over ``runs`` (fractions in percent; sign flipped when lower is better,
    so that a larger value is always "better"), leaving out collapsed runs and runs without the claim;
    also the number left out."""
    vals, seeds, devs, left = [], [], [], 0
    for r in runs:
        v = (r.get("claims") or {}).get(key)
        if v is None or r.get("tied_queries", 0.0) > 0.05:
            left += 1
            continue
        v = 100.0 * v if key.startswith("max_intra_lt") else float(v)
        vals.append(-v if lower_is_better else v)
        seeds.append(int(r["seed"]))
        devs.append(str(r.get("device", "?")))
    return Stat(tuple(vals), tuple(seeds), tuple(devs)), left


def dase_claims_frame(claim: str | None = None, profile: str = "full", results=None, seeds=None,
                      experiments=DASE_EXPERIMENTS):
    """The DASE/MEMS abstract's claims on our runs, tested like the DSSA claims (:func:`compare_seeds`:
    difference of means, pooled seed std, Welch's t-test over seeds; "n/a: one seed" with one seed).

    ``claim="mems"``: MEMS against softmax / CosFace / triplet with the same blocks (category level), or
    against triplet (``dase_qmul``), on the fraction of classes whose maximum intra-class distance is below
    their minimum inter-class distance (higher is better) and on the ratio of the two (lower is better).
    ``claim="dase"``: DASE against plain SE and against no SE with the same loss, on the sketch-photo
    centroid distance per class over the inter-class distance (lower is better). ``None``: both.

    Columns: claim, experiment, dataset, better (the row claimed better), worse, measure, the two means
    (percent for fractions), ``diff`` (in the claimed direction: > 0 means the claim's direction), pooled
    std, diff/std, p, n (seeds of each side), verdict, left out (collapsed runs or records without claims).
    """
    import pandas as pd

    from sbir_lib.experiments import dase_mems as CAT
    from sbir_lib.training import class_pairs
    from sbir_lib.metrics.geometry import LOWER_IS_BETTER

    claims = ("mems", "dase") if claim is None else (claim,)
    bad = [c for c in claims if c not in DASE_CLAIM_MEASURES]
    if bad:
        raise ValueError(f"unknown claim {bad[0]!r}; allowed: {', '.join(DASE_CLAIM_MEASURES)}")
    pairs = []  # (claim, experiment, better row, worse row)
    for exp in experiments:
        rows = CAT.EXPERIMENTS[exp]
        for cl in claims:
            if cl == "mems":
                for b in DASE_BLOCKS:
                    for other in ("softmax", "cosface", "triplet"):
                        if f"{b}_mems" in rows and f"{b}_{other}" in rows:
                            pairs.append((cl, exp, f"{b}_mems", f"{b}_{other}"))
            else:
                for loss in class_pairs.LOSSES:
                    for other in ("se", "nose"):
                        if f"dase_{loss}" in rows and f"{other}_{loss}" in rows:
                            pairs.append((cl, exp, f"dase_{loss}", f"{other}_{loss}"))
    out = []
    for cl, exp, better, worse in pairs:
        for ds in _dase_datasets(exp, results):
            ra = load_runs(exp, ds, better, profile, results, seeds)
            rb = load_runs(exp, ds, worse, profile, results, seeds)
            if not ra and not rb:
                continue
            for key, label in DASE_CLAIM_MEASURES[cl]:
                low = LOWER_IS_BETTER[key]
                a, la = _claim_stat(ra, key, low)
                b, lb = _claim_stat(rb, key, low)
                sign = -1.0 if low else 1.0
                out.append({"claim": cl.upper(), "experiment": exp, "dataset": ds, "better": better, "worse": worse,
                            "measure": label, "better mean": sign * a.mean if a.n else math.nan,
                            "worse mean": sign * b.mean if b.n else math.nan, **compare_seeds(a, b),
                            "left out": la + lb})
    cols = ["claim", "experiment", "dataset", "better", "worse", "measure", "better mean", "worse mean", "diff",
            "pooled_std", "diff_over_std", "p", "n", "verdict", "left out"]
    return pd.DataFrame(out, columns=cols)


def dase_claims_markdown(profile: str = "full", results=None, seeds=None) -> str:
    """A ``REPRODUCTION.md`` section: the DASE/MEMS abstract's two claims (:func:`dase_claims_frame`), with
    how they are measured, the verdict counts and one table per claim."""
    frame = dase_claims_frame(None, profile, results, seeds)
    out = ["## DASE/MEMS: do the abstract's claims hold on our runs?", "",
           "The abstract (`shared/reference/dase_mems_abstract.txt`) says that MEMS *ensures that the maximum "
           "intra-class distance is smaller than the minimum inter-class distance*, and that DASE gives a domain "
           "feature *with lower intra-class discrepancy* between sketches and photos. Each DASE/MEMS record holds "
           "these measured on its test embeddings (`claims`, `sbir_lib.metrics.geometry`; the first test view, "
           "in the run's retrieval geometry: L2-normalised unless MEMS): the percentage of classes whose largest "
           "intra-class distance (sketches and photos pooled) is below their smallest inter-class distance, the "
           "ratio of the two (mean over classes; < 1 where the claim holds), and the distance between a class's "
           "sketch and photo centroids over its mean distance to the other classes' centroids (mean over classes).",
           "",
           "Each claim *A beats B* is tested as the DSSA claims are: the difference of means in the claimed "
           "direction (> 0: A is better), the pooled std over seeds, and Welch's two-sided t-test over the "
           f"per-seed values (verdict *holds* / *reversed* when p < {ALPHA}, else *within seed noise*; *n/a: one "
           "seed* when either side has a single seed, i.e. no estimate of the seed noise). Runs whose embeddings "
           "collapsed are left out (`left out`).", ""]
    if profile != "full":
        out += [f"**The `{profile}` profile trains for about a minute on a CPU: these numbers show the measurement, "
                "not the paper's models.**", ""]
    if frame.empty:
        return "\n".join(out + ["No DASE/MEMS runs are recorded for this profile.", ""])
    counts = Counter(v.split(" (")[0] for v in frame["verdict"])
    out += ["Verdicts: " + ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())) + ".", ""]
    view = frame.rename(columns={"pooled_std": "pooled std", "diff_over_std": "diff/std"})
    view = view.assign(p=[DASH if math.isnan(p) else f"{p:.3f}" for p in view["p"]])
    for cl, title in (("MEMS", "MEMS: max intra-class < min inter-class distance"),
                      ("DASE", "DASE: lower sketch-photo discrepancy within a class")):
        part = view[view["claim"] == cl].drop(columns=["claim"])
        if len(part):
            out += [f"### {title}", "", _md_table(part, floatfmt="{:.3f}"), ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sbir_lib.report", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reproduction", help="write REPRODUCTION.md from the records")
    r.add_argument("--profile", default="full", help="quick | full (default full)")
    r.add_argument("--out", default="REPRODUCTION.md")
    r.add_argument("--results", default=None, help="results folder (default ./results)")
    s = sub.add_parser("show", help="print one table, paper vs ours")
    s.add_argument("--table", required=True, help=", ".join(TABLES))
    s.add_argument("--profile", default="full")
    s.add_argument("--results", default=None)
    c = sub.add_parser("claims", help="print the ablation-claim checks")
    c.add_argument("--profile", default="full")
    c.add_argument("--results", default=None)
    args = ap.parse_args(argv)
    try:
        profile = _config.check_profile(args.profile)
        if args.cmd == "reproduction":
            p = write_reproduction(args.out, profile, args.results)
            print(f"wrote {p}")
        elif args.cmd == "show":
            _check("table", args.table, TABLES)
            print(table_frame(args.table, None, profile, args.results).round(2).to_string())
        else:
            print(claims_frame(None, profile, args.results).round(3).to_string())
        return 0
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
