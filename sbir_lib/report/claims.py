"""Do the papers' claims hold beyond seed noise? The DSSA ablation claims and the DASE/MEMS abstract's claims,
tested on our recorded runs.

Taught in ``notebooks/05_reproducing_the_tables.ipynb`` (the DSSA claims), ``notebooks/07_dase.ipynb`` (DASE) and
``notebooks/08_mems.ipynb`` (MEMS); :mod:`sbir_lib.report.reproduction` prints both in ``REPRODUCTION.md``.

- :func:`compare_seeds` compares the per-seed values of two rows (:class:`sbir_lib.report.tables.Stat`): the
  difference of means, the pooled seed std, and Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``)
  when both rows have >= 2 seeds, else "n/a: one seed"; the verdict in words.
- :func:`claims` lists the DSSA paper's ablation statements ("CFF improves over Base", ...), read on the cells of
  :func:`sbir_lib.report.tables.cells`. :func:`claims_frame` tests each on our runs, :func:`style_claims`
  colours the verdicts and :func:`claims_markdown` is the ``REPRODUCTION.md`` section.
- :func:`dase_claims_frame` tests the DASE/MEMS abstract's two claims on the geometry each DASE/MEMS record
  carries (``claims``, measured by :mod:`sbir_lib.metrics.geometry`); :func:`dase_claims_markdown` is its
  ``REPRODUCTION.md`` section.

Accuracies are percent (the paper's unit), differences percentage points.
"""
from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass

from sbir_lib.core import config as _config
from sbir_lib.core.profiles import as_profile
from sbir_lib.experiments import dase_mems as CAT
from sbir_lib.metrics.geometry import LOWER_IS_BETTER
from sbir_lib.core import tablespec as TS
from sbir_lib.report.tables import DASH, Stat, cells, dataset_title, load_runs, md_table, stat, styler_uuid
from sbir_lib.training import class_pairs

# ====================================================================================== DSSA claims

@dataclass(frozen=True)
class Claim:
    """A statement of the paper's ablation: ``better`` beats ``worse`` on ``metric`` in ``table``."""

    table: str
    text: str
    better: str
    worse: str
    metric: str = "acc@1"


def claims() -> list[Claim]:
    """The ablation claims of every registered table (:class:`sbir_lib.core.tablespec.ClaimSpec`), in order."""
    return [Claim(t.key, c.text, c.better, c.worse, c.metric) for t in TS.TABLES.values() for c in t.claims]


#: The significance level of the verdicts (Welch's two-sided t-test over seeds).
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
    ``holds`` / ``reversed`` (p < :data:`ALPHA`); ``within seed noise`` (p >= :data:`ALPHA`); when every seed gave the
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
    with warnings.catch_warnings():  # near-constant samples: scipy warns about precision, the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(S.ttest_ind(a.values, b.values, equal_var=False).pvalue)
    res["p"] = p
    if p < ALPHA:
        res["verdict"] = "holds" if diff > 0 else "reversed"
    else:
        res["verdict"] = "within seed noise"
    return res


def _claim_stats(cl: Claim, dataset: str, profile: str, results=None, seeds=None) -> tuple[Stat, Stat, float]:
    """``(better, worse, paper difference)`` of claim ``cl`` on ``dataset``: our per-seed values of both rows."""
    a = stat(load_runs(cl.table, dataset, cl.better, profile, results, seeds), cl.metric)
    b = stat(load_runs(cl.table, dataset, cl.worse, profile, results, seeds), cl.metric)
    return a, b, _paper_value(cl, dataset, cl.better) - _paper_value(cl, dataset, cl.worse)


def verdict_counts(verdicts) -> str:
    """``"holds: 2, within seed noise: 4"``: how often each verdict occurs (its parenthesised detail dropped)."""
    counts = Counter(str(v).split(" (")[0] for v in verdicts)
    return ", ".join(f"{k}: {n}" for k, n in sorted(counts.items()))


def p_text(p: float) -> str:
    """A Welch p-value as a table shows it (a dash where there is none)."""
    return DASH if math.isnan(p) else f"{p:.3f}"


def claims_frame(datasets=None, profile: str = "full", results=None, seeds=None, which=None):
    """Every claim of :func:`claims` on each dataset: the paper's difference, ours (mean of the better
    minus mean of the worse, percentage points), pooled seed std, diff/std, Welch p and the verdict."""
    import pandas as pd

    rows = []
    for cl in which or claims():
        for ds in datasets or TS.DATASETS:
            a, b, paper_diff = _claim_stats(cl, ds, profile, results, seeds)
            rows.append({"table": cl.table, "claim": cl.text, "dataset": dataset_title(ds), "metric": cl.metric,
                         "paper diff": paper_diff, **compare_seeds(a, b)})
    return pd.DataFrame(rows)


def style_claims(frame):
    """Claims with the verdict coloured (green holds, red reversed, grey otherwise)."""
    colours = {"holds": "rgba(0, 150, 60, 0.35)", "reversed": "rgba(210, 40, 40, 0.35)"}

    def css(v):
        key = str(v).split(" (")[0]
        return f"background-color: {colours[key]}" if key in colours else "color: #666"

    fmt = {"paper diff": "{:+.2f}", "diff": "{:+.2f}", "pooled_std": "{:.2f}", "diff_over_std": "{:+.2f}", "p": "{:.3f}"}
    return (frame.style.format({k: f for k, f in fmt.items() if k in frame.columns}, na_rep=DASH)
            .map(css, subset=["verdict"]).hide(axis="index")
            .set_uuid(styler_uuid("claims", frame.to_json())))


def claims_markdown(profile: str = "full", results=None, seeds=None, heading: str = "") -> str:
    """A ``REPRODUCTION.md`` section: every claim of :func:`claims` on every dataset (:func:`claims_frame`),
    with how it is tested and the verdict counts."""
    out = [f"## Do the paper's ablation claims hold beyond seed noise?{heading}", "",
            "For each claim *A beats B* (acc@1): the paper's difference, ours (mean of A minus mean of B), the "
            "pooled std over seeds, their ratio, and Welch's two-sided t-test over the per-seed values "
            f"(verdict *holds* / *reversed* when p < {ALPHA}, else *within seed noise*; *n/a: one seed* when "
            "either side has a single seed).", ""]
    cf = claims_frame(None, profile, results, seeds)
    out += ["Verdicts: " + verdict_counts(cf["verdict"]) + ".", ""]
    cview = cf.rename(columns={"diff": "our diff", "pooled_std": "pooled std", "diff_over_std": "diff/std"})
    cview = cview[["table", "claim", "dataset", "paper diff", "our diff", "pooled std", "diff/std", "p", "n",
                   "verdict"]]
    out += [md_table(cview.assign(p=[p_text(p) for p in cview["p"]])), ""]
    return "\n".join(out).rstrip() + "\n"


def direction_sentence(better: str, worse: str, a: Stat, b: Stat, metric: str = "acc@1") -> str:
    """What the per-seed values ``a`` of ``better`` and ``b`` of ``worse`` say, as one sentence generated from them
    (:func:`compare_seeds`): which is ahead, by how much, over how many seeds, and the verdict. The notebooks state
    results only through sentences like this one, so a sentence can never contradict its numbers."""
    r = compare_seeds(a, b)
    if r["verdict"] == "not run":
        return f"{better} against {worse}: {worse if a.n else better} is not recorded."
    d = round(r["diff"], 2)  # as printed: a difference that prints as 0.00 is level
    way = "ahead of" if d > 0 else "behind" if d < 0 else "level with"
    if r["verdict"].startswith("n/a"):
        noise = f"{a.n} and {b.n} seed(s): no noise estimate, so no verdict"
    elif math.isnan(r["p"]):
        noise = f"{a.n} and {b.n} seeds, every seed equal: {r['verdict']}"
    else:
        noise = f"{a.n} and {b.n} seeds, pooled std {r['pooled_std']:.2f}, Welch p = {r['p']:.3f}: {r['verdict']}"
    return f"{better} is {way} {worse} by {abs(d):.2f} points of {metric} ({a.mean:.2f} against {b.mean:.2f}; {noise})."


def claim_sentences(table: str, dataset: str, profile: str = "full", results=None, seeds=None,
                    min_seeds: int = 0) -> list[str]:
    """Each ablation claim of ``table`` on ``dataset``: the paper's difference, then :func:`direction_sentence` of
    our records of ``profile``. ``min_seeds``: none at all unless some row of the table's claims has that many
    seeds recorded (a profile with a verdict over seeds to give)."""
    stats = [(cl, *_claim_stats(cl, dataset, profile, results, seeds)) for cl in claims() if cl.table == table]
    if not any(max(a.n, b.n) >= min_seeds for _, a, b, _ in stats):
        return []
    return [f"{cl.text} (paper: {paper:+.2f} points). Ours: " + direction_sentence(cl.better, cl.worse, a, b, cl.metric)
            for cl, a, b, paper in stats]


#: the table whose trained rows are held against the untrained network, and the experiment that records it
TRAINED_TABLE, UNTRAINED_EXPERIMENT = "table1", "pretrain"


def untrained_frame(datasets=None, profile: str = "full", results=None, seeds=None, variants=("base", "full")):
    """Does training beat the network it starts from? Per dataset and variant: Table 1's trained row against
    ``<variant>@untrained`` (the same network evaluated as initialised, no training step; experiment
    ``pretrain``) on the same test views, acc@1 over seeds, tested with :func:`compare_seeds`. The bar every
    trained row of a profile must clear (issue [cpu-track]); rows without records read ``not run``."""
    import pandas as pd

    rows = []
    for ds in datasets or TS.DATASETS:
        for v in variants:
            a = stat(load_runs(TRAINED_TABLE, ds, v, profile, results, seeds), "acc@1")
            b = stat(load_runs(UNTRAINED_EXPERIMENT, ds, f"{v}@untrained", profile, results, seeds), "acc@1")
            rows.append({"dataset": dataset_title(ds), "network": v, "trained": a.text(), "untrained": b.text(),
                         **compare_seeds(a, b)})
    return pd.DataFrame(rows)


def untrained_sentence(frame) -> str:
    """One sentence counted from :func:`untrained_frame` (no number written by hand)."""
    ran = frame[frame["verdict"] != "not run"]
    if ran.empty:
        return "No trained row has an untrained control recorded in this profile."
    ahead = int((ran["diff"] > 0).sum())
    return (f"Trained ahead of untrained in {ahead} of {len(ran)} (dataset, network) pairs, by "
            f"{ran['diff'].min():+.2f} to {ran['diff'].max():+.2f} points of acc@1; verdicts: "
            f"{verdict_counts(ran['verdict'])}.")


# ====================================================================================== DASE/MEMS claims

#: The DASE/MEMS experiments (:mod:`sbir_lib.experiments.dase_mems`) whose records carry the abstract's claims.
DASE_EXPERIMENTS = ("dase_sketchy", "dase_sketchy_imagenet", "dase_qmul")
DASE_BLOCKS = {"plain": "no SE", "se": "SE", "dase": "DASE"}
#: What each claim is measured with (``sbir_lib.metrics.geometry``): (record key, label).
DASE_CLAIM_MEASURES = {
    "mems": (("max_intra_lt_min_inter", "classes with max intra < min inter (%)"),
             ("max_intra_over_min_inter", "max intra / min inter")),
    "dase": (("domain_gap", "sketch-photo centroid distance / inter-class distance"),),
}


#: the row pairs (claimed better, other) each claim compares, with the same blocks or the same loss: MEMS against
#: every other loss, DASE against plain SE and against no SE (an experiment keeps the pairs whose rows it has)
CLAIM_PAIRS = {
    "mems": [(f"{b}_mems", f"{b}_{other}") for b in DASE_BLOCKS for other in ("softmax", "cosface", "triplet")],
    "dase": [(f"dase_{loss}", f"{other}_{loss}") for loss in class_pairs.LOSSES for other in ("se", "plain")],
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

    claims = ("mems", "dase") if claim is None else (claim,)
    bad = [c for c in claims if c not in DASE_CLAIM_MEASURES]
    if bad:
        raise ValueError(f"unknown claim {bad[0]!r}; allowed: {', '.join(DASE_CLAIM_MEASURES)}")
    pairs = [(cl, exp, better, worse) for exp in experiments for cl in claims  # (claim, experiment, rows)
             for better, worse in CLAIM_PAIRS[cl] if {better, worse} <= set(CAT.EXPERIMENTS[exp])]
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
    if not as_profile(profile).paper_comparable:
        out += [f"**The `{profile}` profile trains each run for seconds to a few minutes on a CPU: these numbers show the measurement, "
                "not the paper's models.**", ""]
    if frame.empty:
        return "\n".join(out + ["No DASE/MEMS runs are recorded for this profile.", ""])
    out += ["Verdicts: " + verdict_counts(frame["verdict"]) + ".", ""]
    view = frame.rename(columns={"pooled_std": "pooled std", "diff_over_std": "diff/std"})
    view = view.assign(p=[p_text(p) for p in view["p"]])
    for cl, title in (("MEMS", "MEMS: max intra-class < min inter-class distance"),
                      ("DASE", "DASE: lower sketch-photo discrepancy within a class")):
        part = view[view["claim"] == cl].drop(columns=["claim"])
        if len(part):
            out += [f"### {title}", "", md_table(part, floatfmt="{:.3f}"), ""]
    return "\n".join(out).rstrip() + "\n"
