"""Tables 1-5 of the DSSA paper, paper vs ours, from the recorded runs.

Taught in ``notebooks/05_reproducing_the_tables.ipynb``; :meth:`sbir_lib.course.context.Context.compare` shows a
few rows of it in the lecture notebooks, and :mod:`sbir_lib.report.claims` and
:mod:`sbir_lib.report.reproduction` build on it. Every number here is read from the records of
:mod:`sbir_lib.experiments.runner` (``results/<table>/<dataset>/<row>/seed<k>[.quick].json``) and from the
paper's numbers in the table registry :mod:`sbir_lib.core.tablespec` (their only home); nothing is trained here except by
:func:`fill_missing`, which asks the notebook's context to record the runs that are missing.

- :func:`cells` lists, for one table and dataset, every cell of the paper's table: its row, column, the
  network (a DSSA variant or classical method) that reproduces it, the metric
  (``acc@1`` / ``acc@10``) and the paper's number (percent).
- :func:`load_runs` reads the records of one variant; :func:`stat` gives our :class:`Stat` of a metric over
  them (per-seed values, mean, sample std). :func:`all_records` and :func:`inventory`: every DSSA record of a
  profile, and what is recorded.
- :func:`long_table` adds our mean +- std over the recorded seeds (percent) and the difference
  ``ours - paper``; :func:`table_frame` is the wide "paper | ours mean ± std (n seeds) | difference" view
  and :func:`style` highlights the differences with a pandas ``Styler`` (green: ours higher, red: lower).
  :func:`show` displays one table in the notebook, :func:`missing_commands` gives the commands that record
  the cells not run and :func:`fill_missing` records them where the notebook may train.
- :func:`pretrain_frame`: from scratch vs a pretrained Sketch-a-Net init (experiment ``pretrain``).
- :func:`md_table`: a frame as a GitHub Markdown table (for ``REPRODUCTION.md``).

Numbers are percent (the paper's unit). Runs with a ``reused_from`` field are copies of an identical run
recorded for another table: they count as that table's run.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

import numpy as np

from sbir_lib.core import config as _config
from sbir_lib.core import records as R
from sbir_lib.core.profiles import as_profile
from sbir_lib.data import datasets as D
from sbir_lib.experiments import runner as E
from sbir_lib.experiments.settings import load_tuning
from sbir_lib.experiments import cpu_recipe as CR
from sbir_lib.core import tablespec as TS

def table_keys() -> tuple[str, ...]:
    """The registered paper tables (:data:`sbir_lib.core.tablespec.TABLES`, read at call time)."""
    return TS.keys()


PRETRAIN_EXPERIMENT = "pretrain"
#: where accuracy comes from: the untrained network (no training at all), from scratch, the offline Sketchy-mini
#: stand-in, the offline init that adds the QMUL training pairs, the ImageNet track
PRETRAIN_INITS = ("untrained", "scratch", "sketchy_mini", "sketchy_qmul", "imagenet")
#: The DSSA experiments this report covers (the DASE/MEMS ones under results/ are not part of it).
EXTRA_DSSA_EXPERIMENTS = (PRETRAIN_EXPERIMENT, "curve")
DASH = "—"


def dataset_title(dataset: str) -> str:
    """The paper's name of a dataset key (``shoes`` -> ``QMUL-Shoe``); other keys unchanged."""
    return TS.DATASET_TITLES.get(dataset, dataset)


def signed(v: float) -> str:
    """``+1.23`` / ``-0.50``; ``—`` for missing (None or NaN)."""
    return DASH if v is None or math.isnan(v) else f"{v:+.2f}"


def styler_uuid(*parts) -> str:
    """A stable, content-derived id for a Styler (committed HTML does not churn; tables differ)."""
    return "t" + hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:8]


def styled(frame, digits: int = 3, note: str | None = None, caption: str | None = None, index: bool = True):
    """A plain frame as a notebook shows a table: a pandas ``Styler`` (HTML), floats to ``digits`` decimals,
    a missing value (NaN, None) as a dash ``—``, never a bare ``NaN``, with a footnote under the table
    saying what a dash means (``note``, default "not available"; only when there is one). ``caption``: a
    line under the table before the footnote. ``index=False`` hides the index. Stable HTML ids."""
    # every float, also in a column of mixed types; "<" in a text cell ("max intra < min inter") stays text
    sty = frame.style.format(precision=digits, na_rep=DASH, escape="html")
    sty = sty.format_index(escape="html", axis=0).format_index(escape="html", axis=1)
    lines = [caption] if caption else []
    if frame.isna().to_numpy().any():
        lines.append(f"{DASH} {note or 'not available'}")
    if lines:
        sty = sty.set_caption("<br>".join(lines)).set_table_styles(
            [{"selector": "caption", "props": "caption-side: bottom; text-align: left; font-size: 0.9em;"}])
    if not index:
        sty = sty.hide(axis="index")
    return sty.set_uuid(styler_uuid("styled", frame.to_json(default_handler=str), caption, note))


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
    spec = TS.get(table)
    out = []
    for r in spec.rows:
        numbers = r.paper.get(dataset)
        for j, col in enumerate(spec.columns):
            p = float(numbers[j]) if numbers is not None else None
            out.append(Cell(table, dataset, r.key, r.label, col, spec.network(r.key, j), spec.metric(j), p))
    return out


def _record_re(profile: str) -> re.Pattern:
    suffix = re.escape(as_profile(profile).record_suffix)
    return re.compile(rf"^seed(\d+){suffix}\.json$")


def load_runs(experiment: str, dataset: str, variant: str, profile: str, results=None, seeds=None) -> list[dict]:
    """The records of ``variant`` in ``experiment`` on ``dataset`` for ``profile``, sorted by seed
    (every recorded seed, or only ``seeds``). ``results``: a results folder, or several (a list: the committed
    records, then a user's own runs, :meth:`sbir_lib.course.context.Course.read_roots`): a seed comes from the
    first folder that has it."""
    _config.check_profile(profile)
    pat = _record_re(profile)
    found: dict[int, dict] = {}
    for root in (results if isinstance(results, (list, tuple)) else [results]):
        d = _config.results_root(root) / experiment / dataset / variant
        for p in sorted(d.iterdir()) if d.is_dir() else ():
            m = pat.match(p.name)
            sd = int(m.group(1)) if m else None
            if sd is None or sd in found or (seeds is not None and sd not in seeds):
                continue
            rec = R.load_record(p)
            if rec is not None:
                rec.setdefault("_path", str(p))
                found[sd] = rec
    return [found[sd] for sd in sorted(found)]


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
        """Sample standard deviation over seeds (``ddof=1``); undefined with fewer than 2 seeds (a float
        not-a-number, which the tables show as a dash)."""
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


def all_records(profile: str = "full", results=None, experiments=None) -> list[dict]:
    """Every record of ``profile`` of the DSSA ``experiments`` (default: every table and the extra DSSA
    experiments) under the results folder, with ``_path``."""
    experiments = experiments or TS.keys() + EXTRA_DSSA_EXPERIMENTS
    root = _config.results_root(results)
    pat = _record_re(profile)
    out = []
    for p in R.RecordStore(root).paths():
        if pat.match(p.name) and p.parts[-4] in experiments:
            rec = R.load_record(p)
            if rec is not None:
                rec["_path"] = str(p.relative_to(root))
                out.append(rec)
    return out


def inventory(profile: str = "full", results=None):
    """What is recorded: per experiment and dataset, the rows, seeds, devices and iterations."""
    import pandas as pd

    recs = all_records(profile, results)
    rows = []
    key = lambda r: (r["_path"].split("/")[0], r["dataset"])  # noqa: E731
    groups: dict = {}
    for r in recs:
        groups.setdefault(key(r), []).append(r)
    for (exp, ds), rs in sorted(groups.items()):
        rows.append({"experiment": exp, "dataset": ds, "runs": len(rs),
                     "rows": len({r["row"] for r in rs}),
                     "seeds": ",".join(map(str, sorted({int(r["seed"]) for r in rs}))),
                     "iterations": ",".join(map(str, sorted({r["iterations"] for r in rs if r.get("iterations")}))) or DASH,
                     "devices": "; ".join(sorted({str(r.get("device")) for r in rs}))})
    return pd.DataFrame(rows, columns=["experiment", "dataset", "runs", "rows", "seeds", "iterations",
                                       "devices"])


# ====================================================================================== tables

def long_table(table: str, datasets=None, profile: str = "full", results=None, seeds=None):
    """One row per cell of ``table`` and dataset: paper, our mean/std/n over seeds, ``diff = ours - paper``
    (percentage points) and ``status`` (``ok`` | ``not run`` | ``no reproduction``)."""
    import pandas as pd

    rows = []
    for ds in datasets or TS.DATASETS:
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
    lt = lt.assign(dataset_title=lt["dataset"].map(dataset_title))
    parts = {}
    for col in TS.get(table).columns:
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


def style(frame, caption: str | None = None):
    """A pandas ``Styler`` of :func:`table_frame`: paper numbers to 2 decimals, signed differences
    coloured (green: ours above the paper, red: below; stronger for larger gaps; — where not run)."""
    diff_cols = [c for c in frame.columns if c[-1] == "difference"]
    paper_cols = [c for c in frame.columns if c[-1] == "paper"]
    sty = (frame.style.format("{:.2f}", subset=paper_cols, na_rep=DASH)
           .format("{:+.2f}", subset=diff_cols, na_rep=DASH)
           .map(_diff_css, subset=diff_cols))
    sty = sty.set_uuid(styler_uuid(caption, list(frame.index), list(frame.columns)))
    if caption:
        sty = sty.set_caption(caption)
    return sty


def missing_commands(long, profile: str, seeds=None) -> list[str]:
    """The commands that record the cells of ``long`` (:func:`long_table`) marked ``not run``."""
    todo = long[long["status"] == "not run"]
    seeds = list(seeds) if seeds is not None else as_profile(profile).report_seeds()
    cmds = []
    for (table, ds), g in todo.groupby(["table", "dataset"], sort=False):  # exactly the rows not run
        cmds.append(E.run_command(table, ds, list(dict.fromkeys(g["variant"])), seeds, profile))
    return cmds


def show(table: str, datasets=None, profile: str = "full", results=None, seeds=None, what: str | None = None):
    """Display ``table`` in a notebook (a styled frame with a caption naming the profile, the seeds and
    the devices) and print the commands for the cells not run; return the long frame."""
    from IPython.display import display

    lt = long_table(table, datasets, profile, results, seeds)
    ran = lt[lt["status"] == "ok"]
    devices = sorted({d for ds in ran["devices"] for d in ds.split("; ") if d})
    seeds_seen = sorted({int(s) for ss in ran["seeds"] for s in ss.split(",") if s})
    cap = (f"{TS.get(table).title}: paper vs ours ({what or profile + ' profile'}; "
           f"seeds {','.join(map(str, seeds_seen)) or DASH}; device {', '.join(devices) or DASH}). "
           f"Percent; difference = ours - paper.")
    display(style(table_frame(table, long=lt), cap))
    cmds = missing_commands(lt, profile, seeds)
    if cmds:
        print(f"{len(lt[lt['status'] == 'not run'])} cells not run ({DASH}); record them with:")
        for c in cmds:
            print("  " + c)
    return lt


def fill_missing(ctx, experiments=None, datasets=TS.DATASETS, results=None) -> dict:
    """Train (through ``ctx.record``, i.e. :func:`sbir_lib.experiments.runner.run_one`) the runs of
    ``experiments`` x ``datasets`` x ``ctx.seeds`` that are not recorded for ``ctx.profile``, where this
    notebook may train (``ctx.train_missing``) and the real data is present; recorded runs are only read.
    Returns counts ``{"recorded", "trained", "missing"}`` and prints one line (plus why runs are missing)."""
    experiments = experiments or TS.keys() + (PRETRAIN_EXPERIMENT,)
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


# ====================================================================================== pretrain

def _pretrain_row(variant: str, init: str) -> str:
    return variant if init == "scratch" else f"{variant}@{init}"


def pretrain_long(datasets=None, profile: str = "full", results=None, seeds=None):
    """Where accuracy comes from, one line per (dataset, model, init): acc@1 / acc@10 mean and std in percent
    over the recorded seeds (``n`` = 0: not recorded) of experiment ``pretrain`` (rows ``<variant>`` from
    scratch, ``<variant>@<init>`` otherwise), and the paper's acc@1 (its models start from the authors'
    pretrained Sketch-a-Net); ``key`` and ``row`` name the records' dataset and the experiment's row. Read by
    :func:`pretrain_frame`, :func:`pretrain_missing_commands` and :func:`sbir_lib.report.figures.accuracy_sources`."""
    import pandas as pd

    rows = []
    for ds in datasets or TS.DATASETS:
        for variant in ("base", "full"):
            paper = TS.TABLE1.paper(ds, variant)
            for init in PRETRAIN_INITS:
                runs = load_runs(PRETRAIN_EXPERIMENT, ds, _pretrain_row(variant, init), profile, results, seeds)
                s1, s10 = stat(runs, "acc@1"), stat(runs, "acc@10")
                rows.append({"dataset": dataset_title(ds), "model": TS.label(variant), "init": init,
                             "key": ds, "row": _pretrain_row(variant, init),
                             "acc@1": s1.mean, "acc@1 std": s1.std, "acc@10": s10.mean, "n": s1.n,
                             "acc@1 text": s1.text(), "acc@10 text": s10.text(),
                             "paper acc@1": paper[0] if paper else math.nan})
    return pd.DataFrame(rows)


def pretrain_missing_commands(long, profile: str, seeds=None) -> list[str]:
    """The commands that record exactly the rows of :func:`pretrain_long` ``long`` not recorded (``n`` = 0),
    one per dataset."""
    seeds = list(seeds) if seeds is not None else as_profile(profile).report_seeds()
    todo = long[long["n"] == 0]
    return [E.run_command(PRETRAIN_EXPERIMENT, ds, list(g["row"]), seeds, profile)
            for ds, g in todo.groupby("key", sort=False)]


def pretrain_frame(datasets=None, profile: str = "full", results=None, seeds=None):
    """Where accuracy comes from (:func:`pretrain_long` pivoted): acc@1 and acc@10 "mean ± std (n)" per init,
    each init's gain over scratch in acc@1 (percentage points, signed text) and the paper's acc@1."""
    import pandas as pd

    long = pretrain_long(datasets, profile, results, seeds)
    rows = []
    for (ds, model), g in long.groupby(["dataset", "model"], sort=False):
        by = g.set_index("init")
        row = {"dataset": ds, "model": model}
        for init in PRETRAIN_INITS:
            row[f"{init} acc@1"] = by.loc[init, "acc@1 text"]
            row[f"{init} acc@10"] = by.loc[init, "acc@10 text"]
        for init in PRETRAIN_INITS:
            if init != "scratch":
                row[f"{init} - scratch (acc@1)"] = signed(by.loc[init, "acc@1"] - by.loc["scratch", "acc@1"])
        row["paper acc@1"] = by["paper acc@1"].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows).set_index(["dataset", "model"])


def style_pretrain(frame, caption: str | None = None, fmt: str = "{:.2f}"):
    """A pandas ``Styler`` of the "where accuracy comes from" frames (:func:`pretrain_frame`,
    :func:`pretrain_search_frame`, :func:`init_recipe_frame`, the embedding spread): numbers as ``fmt`` (2
    decimals), — where missing, gains over scratch green when positive and red when negative."""
    gain = [c for c in frame.columns if str(c).endswith("- scratch (acc@1)")]
    num = [c for c in frame.columns if c not in gain and frame[c].dtype.kind == "f"]

    def colour(v):
        return ("color: #1a7f37" if str(v).startswith("+") else
                "color: #c0392b" if str(v).startswith("-") else "")

    sty = frame.style.format(fmt, subset=num, na_rep=DASH).map(colour, subset=gain)
    sty = sty.set_uuid(styler_uuid(caption, list(frame.index), list(frame.columns)))
    return sty.set_caption(caption) if caption else sty


def pretrain_search_frame(profile: str = "quick", results=None):
    """The record of ``tune-pretrain`` (:mod:`sbir_lib.experiments.init_recipe`) as a frame: one row per
    candidate pretraining (change tried, settings), its held-out Sketchy-mini top-1 / mAP, its acc@1 per QMUL
    validation split and their mean (the criterion), and whether the change was kept. None when not recorded."""
    import pandas as pd

    rec = load_tuning("pretrain_sketchy_qmul", profile, results)
    if rec is None:
        return None
    rows = []
    for st in rec["stages"]:
        for i, c in enumerate(st["candidates"]):
            row = {"change": st["change"], "candidate": "with the change" if i else "without",
                   "Sketchy top-1": 100 * (c["heldout_top1"] or math.nan),
                   "Sketchy mAP": 100 * (c["heldout_map"] or math.nan)}
            row.update({f"{d} val acc@1": 100 * v["acc@1"] for d, v in (c["qmul_val"] or {}).items()})
            row["mean val acc@1"] = 100 * c["criterion"][0]
            row["kept"] = ("yes" if st["kept"] else "no") if i else ""
            rows.append(row)
    return pd.DataFrame(rows).set_index(["change", "candidate"])


def _recipe_label(c: dict) -> str:
    """``lr 0.01`` plus what differs from the authors' recipe: ``, conv only`` (fresh fc6/fc7),
    ``, frozen to conv4``."""
    return (f"lr {c['lr']:g}" + (", conv only" if c.get("init_layers", "all") != "all" else "")
            + (f", frozen to {c['freeze']}" if c.get("freeze", "auto") != "auto" else ""))


def init_recipe_frame(profile: str = "quick", results=None):
    """The record of ``tune-init`` as a frame: validation acc@1 (%) per (init, variant) and candidate (lr, and
    for ``base`` the frozen layers), and the chosen recipe. None when not recorded."""
    import pandas as pd

    rec = load_tuning("init_recipe", profile, results)
    if rec is None:
        return None
    rows = []
    for init, by_variant in rec["scores"].items():
        for variant, cands in by_variant.items():
            row = {"init": init, "model": TS.label(variant)}
            for c in cands:
                row[_recipe_label(c)] = 100 * c["val_acc@1"]
            row["chosen"] = _recipe_label(rec["chosen"][init][variant])
            rows.append(row)
    return pd.DataFrame(rows).set_index(["init", "model"])


def cpu_recipe_frame(results=None):
    """The ``tune-cpu`` record (:mod:`sbir_lib.experiments.cpu_recipe`) as a frame, one row per recipe: its step time,
    its best smoothed validation acc@1 (%) and where, the grid hours at that point, and which recipe was chosen.
    ``frame.attrs["frontier"]``: the accuracy-versus-cost frontier (a frame). None when not recorded."""
    import pandas as pd

    rec = load_tuning("cpu_recipe", "cpu", results)
    if rec is None:
        return None
    chosen = rec.get("chosen", {})
    steps = CR.mean_step_s(rec["step_s_by_dataset"])
    rows = []
    for name, r in rec["recipes"].items():
        pts = [p for p in rec["points"] if p["recipe"] == name]
        best = CR.pick(pts, budget_h=math.inf)  # the rule's own ranking, without the budget
        rows.append({"recipe": name, "lr": r["lr"], "triplets/step": r["batch_size"], "ms/step": round(1000 * steps[name]),
                     "iterations tried": f"{pts[0]['iterations']}-{pts[-1]['iterations']}",
                     "best val acc@1": 100 * best["smoothed_val_acc@1"], "at iterations": best["iterations"],
                     "grid h there": best["grid_h"],
                     "chosen": f"{chosen['iterations']} iterations" if chosen.get("recipe") == name else ""})
    df = pd.DataFrame(rows).set_index("recipe")
    df.attrs["frontier"] = pd.DataFrame([{"recipe": p["recipe"], "iterations": p["iterations"],
                                          "val acc@1 (smoothed)": 100 * p["smoothed_val_acc@1"],
                                          "val acc@1": 100 * p["mean_val_acc@1"], "grid h": p["grid_h"]}
                                         for p in rec["frontier"]])
    df.attrs["record"] = rec
    return df


# ====================================================================================== Markdown

def md_table(df, floatfmt: str = "{:.2f}", index: bool = False) -> str:
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
