"""The recorded DASE/MEMS runs as tables and sentences: one line per run, did each row learn (trained against its
untrained control), and which row is ahead of which over the seeds.

Read by notebooks 07 (DASE) and 08 (MEMS) through :mod:`sbir_lib.course.dase_lab`, and by ``REPRODUCTION.md``'s
DASE/MEMS section (:func:`runs_markdown`). Every sentence is generated from the records
(:func:`sbir_lib.report.claims.direction_sentence`), so it can never contradict them.
"""
from __future__ import annotations

from sbir_lib.core import config as _config
from sbir_lib.experiments.dase_mems import EXPERIMENTS, LEVEL
from sbir_lib.metrics.geometry import CLAIM_KEYS
from sbir_lib.report import claims
from sbir_lib.report.tables import Stat, load_runs, md_table

#: a run whose test distances are tied for more than this share of queries has collapsed (one embedding for all)
COLLAPSED_TIES = 0.05


def record_line(rec: dict, dataset: str, row: str, seed: int) -> dict:
    """One run of a record as a line of a runs frame: dataset, row, blocks, loss, seed, the metrics (MEMS also
    on L2-normalised embeddings: ``<metric> (L2)``), the abstract's claims (``NaN`` when the record predates
    them), all ``NaN`` for a collapsed run (``collapsed`` True), the untrained control's metrics
    (``<metric> (untrained)``, when recorded), init, iterations, device."""
    b, loss = row.split("_", 1)
    collapsed = rec.get("tied_queries", 0.0) > COLLAPSED_TIES
    metrics = {**rec["metrics"], **{f"{k} (L2)": v for k, v in rec.get("metrics_l2", {}).items()}}
    got = rec.get("claims") or {}
    metrics.update({k: float("nan") if got.get(k) is None else got[k] for k in CLAIM_KEYS})
    if collapsed:  # one embedding for every image: the numbers would be meaningless
        metrics = {k: float("nan") for k in metrics}
    metrics.update({f"{k} (untrained)": v for k, v in rec.get("metrics_untrained", {}).items()})
    return {"dataset": dataset, "row": row, "blocks": b, "loss": loss, "seed": seed, **metrics,
            "collapsed": collapsed, "init": rec.get("init"), "iterations": rec.get("iterations"),
            "device": rec.get("device")}


def runs_frame(experiment: str, dataset: str, profile: str, results=None, seeds=None):
    """Every recorded run of ``experiment`` on ``dataset`` in ``profile`` (:func:`record_line` each); nothing is
    trained (notebooks use :func:`sbir_lib.course.dase_lab.records_frame`, which trains what is missing)."""
    import pandas as pd

    lines = [record_line(r, dataset, row, int(r["seed"])) for row in EXPERIMENTS[experiment]
             for r in load_runs(experiment, dataset, row, profile, results, seeds)]
    return pd.DataFrame(lines)


def learning_table(df, metric: str = "acc@1"):
    """Per dataset and row of a runs frame: ``metric`` of the trained runs and of their untrained controls (the
    same network before its first step), "mean ± std (n)" in percent, the gain (trained minus untrained, paired
    by seed), in how many seeds the trained run is ahead (``ahead``) of how many (``seeds``). A collapsed run
    counts as behind."""
    import pandas as pd

    col = f"{metric} (untrained)"
    if df.empty or col not in df:
        return pd.DataFrame()
    fmt = lambda v: (f"{v.mean() * 100:.1f}" + (f" ± {v.std() * 100:.1f}" if len(v) > 1 else "")  # noqa: E731
                     + f" ({len(v)})") if len(v) else "collapsed"
    lines = []
    for (ds, row), g in df.dropna(subset=[col]).groupby(["dataset", "row"], sort=False):
        gain = (g[metric] - g[col]).fillna(-1.0)  # collapsed: behind
        lines.append({"dataset": ds, "row": row, "trained": fmt(g[metric].dropna()), "untrained": fmt(g[col]),
                      "gain": float(gain.mean() * 100), "ahead": int((gain > 0).sum()), "seeds": len(g)})
    return pd.DataFrame(lines)


def learning_sentence(table, metric: str = "acc@1") -> str:
    """One sentence, read from a :func:`learning_table`: how many (dataset, row) pairs learn (trained ahead of the
    untrained control in every seed), and the range of their mean gains."""
    if table.empty:
        return f"no runs with an untrained control recorded ({metric})"
    every = table["ahead"] == table["seeds"]
    behind = table[~every]
    out = (f"{metric}: the trained network is ahead of its untrained control in every seed for {int(every.sum())} "
           f"of {len(table)} (dataset, row) pairs; mean gains {table['gain'].min():+.1f} to "
           f"{table['gain'].max():+.1f} points")
    if len(behind):
        out += "; not in every seed: " + ", ".join(f"{r.dataset} {r.row} ({r.ahead} of {r.seeds})"
                                                   for r in behind.itertuples())
    return out + "."


def row_stat(df, row: str, metric: str) -> Stat:
    """:class:`sbir_lib.report.tables.Stat` of ``metric`` (percent) over the seeds of ``row`` in a runs frame;
    collapsed runs (``NaN``) left out."""
    g = df[df["row"] == row].dropna(subset=[metric]) if len(df) and metric in df else None
    if g is None or g.empty:
        return Stat(values=(), seeds=(), devices=())
    return Stat(values=tuple(100.0 * float(v) for v in g[metric]), seeds=tuple(int(s) for s in g["seed"]),
                devices=tuple(str(d) for d in g["device"]))


def comparison_sentences(df, pairs, metric: str = "mAP@all") -> list[str]:
    """For each ``(better, worse)`` row pair of a runs frame (one dataset), the sentence of
    :func:`sbir_lib.report.claims.direction_sentence`: which row is ahead on ``metric``, by how much, over how
    many seeds, with Welch's verdict. Notebooks 07 and 08 state their comparisons only through these."""
    return [claims.direction_sentence(a, b, row_stat(df, a, metric), row_stat(df, b, metric), metric)
            for a, b in pairs]


def comparison_frame(df, pairs, metric: str):
    """:func:`comparison_sentences` as a table: the pair, both means (percent), the difference and the verdict
    (:func:`sbir_lib.report.claims.compare_seeds`)."""
    import pandas as pd

    lines = []
    for a, b in pairs:
        sa, sb = row_stat(df, a, metric), row_stat(df, b, metric)
        r = claims.compare_seeds(sa, sb)
        lines.append({"row": a, "against": b, "row mean": sa.mean, "against mean": sb.mean, "diff": r["diff"],
                      "p": r["p"], "n": r["n"], "verdict": r["verdict"]})
    return pd.DataFrame(lines)


def runs_markdown(profile: str, results=None) -> list[str]:
    """``REPRODUCTION.md``'s section on the recorded DASE/MEMS runs of ``profile`` (nothing when none): per
    experiment and dataset, did each row learn (against its untrained control), and the retrieval comparisons
    DASE and MEMS claim, with their verdicts over seeds."""
    out = []
    for exp, rows in EXPERIMENTS.items():
        root = _config.results_root(results) / exp
        for ds in sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
            df = runs_frame(exp, ds, profile, results)
            if df.empty:
                continue
            metric = "acc@1" if LEVEL[exp] == "instance" else "mAP@all"
            learned = learning_table(df, metric)
            out += [f"### `{exp}` on {ds} ({profile} profile, {metric})", ""]
            if len(learned):
                out += [learning_sentence(learned, metric), "", md_table(learned, floatfmt="{:.1f}"), ""]
            pairs = [p for p in claims.CLAIM_PAIRS["dase"] + claims.CLAIM_PAIRS["mems"] if set(p) <= set(rows)]
            comp = comparison_frame(df, pairs, metric)
            comp = comp[comp["verdict"] != "not run"]
            if len(comp):
                out += [f"Retrieval comparisons ({metric}, percent; Welch's t over seeds): verdicts "
                        + claims.verdict_counts(comp["verdict"]) + ".", "",
                        md_table(comp.assign(p=[claims.p_text(p) for p in comp["p"]]), floatfmt="{:.1f}"), ""]
    if out:
        out = [f"## DASE/MEMS: the recorded runs of the `{profile}` profile", "",
               "Each record holds its untrained control: the same network, same seed, scored on the same test "
               "views before its first training step (`metrics_untrained`, recomputed by `experiments verify`). "
               "`ahead`: seeds in which the trained network is ahead of it, of `seeds`. The paper's own numbers "
               "are not in our references, so the rows are compared with each other only.", ""] + out
    return out
