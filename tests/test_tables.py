"""Tables 1-5 from records, claim checks and REPRODUCTION.md (sbir_lib.report.tables, .claims, .reproduction, .cli)."""
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sbir_lib.core import records as R
from sbir_lib.experiments import runner as E
from sbir_lib.models import dssa as MD
from sbir_lib.report import claims as C
from sbir_lib.report import cli
from sbir_lib.core import tablespec as TS
from sbir_lib.report import reproduction as RP
from sbir_lib.report import tables as T


def write(results, exp, ds, variant, seed, profile, acc1, acc10=None, device="NVIDIA H100 80GB HBM3",
          wall=60.0, reused=None, **cfg):
    """A record in the runner's format with the given metrics (fractions)."""
    config = dict(iterations=20000 if profile == "full" else 60, batch_size=128 if profile == "full" else 16,
                  optimizer="sgd", momentum=0.9, lr=1e-3, positives="annotated", test_views=10, amp=True,
                  init=None)
    config.update(cfg)
    rec = {"experiment": exp, "dataset": ds, "variant": variant, "seed": seed, "profile": profile,
           "device": device, "git_commit": "abc", "n_queries": 115, "config": config, "init": "scratch",
           "iterations": config["iterations"], "wall_time_s": wall, "train_time_s": wall - 5,
           "triplets_per_s": 5000.0,
           "metrics": {"acc@1": acc1, "acc@5": acc1, "acc@10": acc10 if acc10 is not None else acc1}}
    if reused:
        rec["reused_from"] = reused
    R.write_record(R.record_path(results, exp, ds, variant, seed, profile), rec, np.eye(3))
    return rec


def test_cells_follow_paper_and_table_rows():
    c3 = T.cells("table3", "chairs")
    assert len(c3) == 2 * len(TS.TABLE3.rows)
    base_with = next(c for c in c3 if c.row == "base" and c.column == "with attention")
    assert base_with.variant == TS.TABLE3.network("base", 0) == "base+att"
    assert base_with.paper == TS.TABLE3.paper("chairs", "base")[0] == 74.23 and base_with.metric == "acc@1"
    c1 = {(c.row, c.column): c for c in T.cells("table1", "handbags")}
    assert c1[("dense_hog_ranksvm", "acc@10")].variant == "dense_hog_ranksvm"
    assert c1[("dense_hog_ranksvm", "acc@10")].paper == TS.TABLE1.paper("handbags", "dense_hog_ranksvm")[1]
    assert c1[("isn_deep_ranksvm", "acc@1")].variant is None  # no reproduction
    assert all(c.paper is None for c in T.cells("table2", "synthetic"))
    with pytest.raises(ValueError, match="allowed: table1"):
        T.cells("table9", "shoes")


def test_table2_rows_are_the_table3_cells_their_paper_values_equal():
    """Each Table 2 row repeats a Table 3 acc@1 cell; that cell (row, with/without attention) names the network
    the row trains. On one dataset a value can sit in two cells (Handbag's HOLEF is 40.48 with and without
    attention), so the candidates are intersected over the three datasets: exactly one network must remain,
    and it must be the Table 2 row's key (keys are variant names) and its ``TABLE_ROWS`` variant."""
    derived = {}
    for row in [r.key for r in TS.TABLE2.rows]:
        candidates = None
        for ds in TS.DATASETS:
            acc1 = TS.TABLE2.paper(ds, row)[0]
            here = {r3.networks[col] for r3 in TS.TABLE3.rows
                    for col, value in enumerate(r3.paper[ds]) if value == acc1}
            assert here, f"Table 2 {row!r} on {ds} ({acc1}) is no cell of Table 3"
            candidates = here if candidates is None else candidates & here
        assert len(candidates) == 1, f"Table 2 {row!r}: Table 3 leaves {sorted(candidates)}"
        derived[row] = candidates.pop()
    assert derived == {"base": "base", "base+att+cff": "base+att+cff", "base+holef": "base+holef", "full": "full"}
    for row, variant in derived.items():
        assert row == variant and TS.TABLE2.network(row) == variant
    assert TS.TABLE2.networks() == list(derived.values())
    # the HOLEF row is the network without attention: its Table 3 cell is the "without attention" column
    assert not MD.get_variant(derived["base+holef"]).attention and MD.get_variant(derived["base+holef"]).energy == "holef"
    assert {c.variant for c in T.cells("table2", "chairs")} == set(derived.values())


def test_long_table_mean_std_diff_and_profiles(tmp_path):
    for s, a in enumerate([0.50, 0.52, 0.57]):
        write(tmp_path, "table2", "shoes", "base", s, "full", a, a + 0.3)
    write(tmp_path, "table2", "shoes", "full", 0, "quick", 0.10)  # another profile: not mixed in
    lt = T.long_table("table2", ["shoes"], "full", tmp_path)
    base1 = lt[(lt["variant"] == "base") & (lt["column"] == "acc@1")].iloc[0]
    vals = [50.0, 52.0, 57.0]
    assert base1["n"] == 3 and base1["seeds"] == "0,1,2"
    assert base1["mean"] == pytest.approx(np.mean(vals))
    assert base1["std"] == pytest.approx(np.std(vals, ddof=1))
    assert base1["diff"] == pytest.approx(np.mean(vals) - TS.TABLE2.paper("shoes", "base")[0])
    assert base1["ours"] == f"{np.mean(vals):.2f} ± {np.std(vals, ddof=1):.2f} (3 seeds)"
    full1 = lt[(lt["variant"] == "full") & (lt["column"] == "acc@1")].iloc[0]
    assert full1["status"] == "not run" and full1["ours"] == "—" and math.isnan(full1["diff"])
    q = T.long_table("table2", ["shoes"], "quick", tmp_path)
    assert q[q["variant"] == "full"]["n"].max() == 1 and q[q["variant"] == "base"]["n"].max() == 0
    # seeds filter
    two = T.long_table("table2", ["shoes"], "full", tmp_path, seeds=[0, 1])
    assert two[two["variant"] == "base"]["n"].max() == 2


def test_table_frame_style_and_commands(tmp_path):
    write(tmp_path, "table4", "shoes", "base+att", 0, "quick", 0.3)
    lt = T.long_table("table4", ["shoes"], "quick", tmp_path)
    frame = T.table_frame("table4", long=lt)
    assert list(frame.columns.get_level_values(0).unique()) == ["with shortcut", "without shortcut"]
    assert frame.loc[("QMUL-Shoe", "Base + attention"), ("with shortcut", "ours")] == "30.00 (1 seed)"
    html = T.style(frame, "cap").to_html()
    assert "rgba(210, 40, 40" in html  # 30 < paper's 54.78: a red difference
    assert "—" in html
    cmds = T.missing_commands(lt, "quick")
    assert len(cmds) == 1  # exactly the rows not run, never the whole table
    assert cmds[0].startswith("python -m sbir_lib.experiments run --experiment table4 --dataset shoes --rows ")
    rows = cmds[0].split("--rows ")[1].split(" --seeds")[0].split()
    assert "base+att-noshortcut" in rows and "base+att" not in rows and cmds[0].endswith("--seeds 0 --profile quick")


def test_compare_seeds_verdicts_match_welch():
    a = T.Stat((60.0, 61.0, 62.5), (0, 1, 2), ("gpu",) * 3)
    b = T.Stat((50.0, 52.0, 51.0), (0, 1, 2), ("gpu",) * 3)
    r = C.compare_seeds(a, b)
    assert r["p"] == pytest.approx(stats.ttest_ind(a.values, b.values, equal_var=False).pvalue)
    assert r["verdict"] == "holds" and r["diff"] == pytest.approx(a.mean - b.mean)
    assert C.compare_seeds(b, a)["verdict"] == "reversed"
    noisy = T.Stat((40.0, 70.0), (0, 1), ("gpu",) * 2)
    assert C.compare_seeds(noisy, b)["verdict"] == "within seed noise"
    one = T.Stat((70.0,), (0,), ("gpu",))
    r1 = C.compare_seeds(one, b)
    assert r1["verdict"] == "n/a: one seed" and r1["diff"] == pytest.approx(70.0 - b.mean) and math.isnan(r1["p"])
    assert C.compare_seeds(T.Stat((), (), ()), b)["verdict"] == "not run"
    flat = T.Stat((55.0, 55.0), (0, 1), ("gpu",) * 2)
    assert C.compare_seeds(flat, T.Stat((50.0, 50.0), (0, 1), ("gpu",) * 2))["verdict"].startswith("holds")


def test_claims_frame_reads_the_claims_table(tmp_path):
    for s, (a, b) in enumerate([(0.60, 0.50), (0.61, 0.52), (0.63, 0.51)]):
        write(tmp_path, "table2", "chairs", "base+att+cff", s, "full", a)
        write(tmp_path, "table2", "chairs", "base", s, "full", b)
    cf = C.claims_frame(["chairs"], "full", tmp_path)
    row = cf[cf["claim"] == "CFF (with attention) improves over Base"].iloc[0]
    assert row["verdict"] == "holds" and row["n"] == "3/3"
    assert row["paper diff"] == pytest.approx(TS.TABLE2.paper("chairs", "base+att+cff")[0] - TS.TABLE2.paper("chairs", "base")[0])
    assert set(cf[cf["table"] == "table4"]["verdict"]) == {"not run"}
    assert len(cf[cf["table"] == "table3"]) == len(TS.TABLE3.rows)
    html = C.style_claims(cf).to_html()
    assert "holds" in html


def test_untrained_frame_holds_trained_rows_against_their_untrained_network(tmp_path):
    # shoes: training helps beyond noise for base, reverses for full; chairs: nothing recorded
    for s, (tb, ub, tf, uf) in enumerate([(0.50, 0.30, 0.30, 0.50), (0.52, 0.31, 0.31, 0.52), (0.51, 0.29, 0.29, 0.51)]):
        write(tmp_path, "table1", "shoes", "base", s, "cpu", tb)
        write(tmp_path, "pretrain", "shoes", "base@untrained", s, "cpu", ub)
        write(tmp_path, "table1", "shoes", "full", s, "cpu", tf)
        write(tmp_path, "pretrain", "shoes", "full@untrained", s, "cpu", uf)
    df = C.untrained_frame(["shoes", "chairs"], "cpu", tmp_path).set_index(["dataset", "network"])
    assert df.loc[("QMUL-Shoe", "base"), "verdict"] == "holds"
    assert df.loc[("QMUL-Shoe", "full"), "verdict"] == "reversed"
    assert df.loc[("QMUL-Shoe", "base"), "diff"] == pytest.approx(100 * (0.51 - 0.30))
    assert set(df.loc["QMUL-Chair", "verdict"]) == {"not run"}
    sentence = C.untrained_sentence(df.reset_index())
    assert sentence.startswith("Trained ahead of untrained in 1 of 2") and "reversed: 1" in sentence
    assert C.untrained_sentence(C.untrained_frame(["chairs"], "cpu", tmp_path)).startswith("No trained row")


def test_setup_cost_and_inventory_from_records(tmp_path):
    write(tmp_path, "table1", "shoes", "full", 0, "full", 0.6, wall=600.0)
    write(tmp_path, "table1", "shoes", "base", 0, "full", 0.5, wall=300.0)
    write(tmp_path, "table2", "shoes", "full", 0, "full", 0.6, wall=600.0, reused="table1/shoes/full/seed0.json")
    write(tmp_path, "dase_qmul", "shoes", "x", 0, "full", 0.6, wall=6000.0)  # not a DSSA experiment: not counted
    st = RP.setup_frame("full", tmp_path).set_index("setting")
    assert st.loc["iterations", "ours"] == "20000 (2 runs)" and st.loc["iterations", "same"] == "yes"
    assert st.loc["init", "same"] == "no" and "from scratch" in st.loc["init", "ours"]
    assert st.loc["device", "same"] == "?"
    cost = RP.cost_frame("full", tmp_path)
    assert len(cost) == 1 and cost.iloc[0]["runs"] == 2  # the copied run is not counted twice
    assert cost.iloc[0]["total wall (h)"] == pytest.approx(900 / 3600)
    inv = T.inventory("full", tmp_path)
    assert list(inv["experiment"]) == ["table1", "table2"]


def test_reproduction_markdown_on_partial_records(tmp_path):
    for s in range(2):
        write(tmp_path, "table1", "shoes", "full", s, "full", 0.6 + 0.01 * s)
        write(tmp_path, "table1", "shoes", "base", s, "full", 0.5)
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "b.json").write_text(
        '{"device": "NVIDIA H100 80GB HBM3", "variant": "full", "batch_size": 128, "engine_triplets_per_s": 7000.5}')
    md = RP.reproduction_markdown("full", tmp_path)
    for t in TS.TABLES.values():
        assert t.title in md
    assert "not run" in md and "60.50 ± 0.71 (2 seeds)" in md
    assert "ISN Deep + rankSVM" in md and "7000.5" in md
    assert ("--experiment table5 --dataset handbags --rows base+att+cff base+att+cff+weighted_euclidean "
            "base+att+cff+mahalanobis full --seeds 0 1 2 --profile full") in md  # exactly the rows not run
    assert "--experiment table1 --dataset shoes --rows full base" not in md  # recorded rows are not named
    assert C.claims_markdown("full", tmp_path) in md and C.dase_claims_markdown("full", tmp_path) in md
    out = tmp_path / "REPRODUCTION.md"
    assert cli.main(["reproduction", "--profile", "full", "--results", str(tmp_path), "--out", str(out)]) == 0
    assert out.read_text() == md
    assert cli.main(["show", "--table", "table7", "--results", str(tmp_path)]) == 2


def test_a_real_runner_record_feeds_the_tables(tmp_path, monkeypatch):
    """The records the runner writes (here a 2-iteration run on synthetic data) are what tables read."""
    from sbir_lib.core import config
    from sbir_lib.data import synthetic as SY

    monkeypatch.setattr(config, "repo_root", lambda: tmp_path)  # the run's checkpoint goes to tmp_path/runs

    ds = SY.make_synthetic(n_train=16, n_test=8, size=256, seed=0)
    E.run_one("table2", "synthetic", "base", 0, "quick", device="cpu", results=tmp_path, dataset=ds,
              overrides={"iterations": 2, "batch_size": 4}, progress=False, log=lambda *a: None)
    lt = T.long_table("table2", ["synthetic"], "quick", tmp_path)
    row = lt[(lt["variant"] == "base") & (lt["column"] == "acc@1")].iloc[0]
    assert row["status"] == "ok" and row["n"] == 1 and 0 <= row["mean"] <= 100 and math.isnan(row["paper"])
    assert "2 (1 runs)" in RP.setup_frame("quick", tmp_path).set_index("setting").loc["iterations", "ours"]


def test_report_modules_import_only_downward():
    """Within sbir_lib.report: tables <- claims <- dase_runs <- reproduction <- cli, at module level, never upward."""
    import ast
    from pathlib import Path

    order = ["fidelity", "tables", "claims", "dase_runs", "reproduction", "cli"]
    folder = Path(T.__file__).parent
    for i, name in enumerate(order):
        tree = ast.parse((folder / f"{name}.py").read_text())
        used = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sbir_lib.report"):
                used |= {node.module.split(".")[2]} if node.module.count(".") >= 2 else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                used |= {a.name.split(".")[2] for a in node.names if a.name.startswith("sbir_lib.report.")}
        assert used <= set(order[:i]), f"{name} imports {sorted(used - set(order[:i]))}"


def test_untrained_section_says_what_the_profiles_trunk_was_trained_on():
    # the cpu profile's trunk file names its QMUL share; the sentence reads it from the file, never from prose
    from sbir_lib.training import trunk_adapt
    prov = trunk_adapt.provenance(Path(RP._config.repo_root()) / RP.as_profile("cpu").triplet["init"])
    lines = RP._trunk_sentence("cpu")
    frac = prov["config"]["qmul_fraction"]
    assert lines and f"{prov['chosen_step']} steps" in lines[0]
    assert (f"fraction {frac:g}" in lines[0]) if frac > 0 else ("Sketchy-mini only" in lines[0])
    assert RP._trunk_sentence("full") == []  # no adapted trunk: nothing to say
    assert "Sketchy-mini only" in RP._trunk_sentence("quick")[0]  # the quick profile's trunk never saw QMUL


def test_pretrain_findings_do_not_count_untrained_against_another_network(monkeypatch):
    """In a profile whose pretrain rows train another network than its tables (the quick profile: a Sketch-a-Net
    beside the trunk's head), the untrained control is named, never counted against ``scratch``."""
    import pandas as pd

    long = pd.DataFrame([{"dataset": "shoes", "model": m, "init": i, "acc@1": a}
                         for m in ("base", "full") for i, a in (("untrained", 20.0), ("scratch", 10.0))])
    monkeypatch.setattr(RP, "pretrain_long", lambda *a, **k: long)
    quick = RP.pretrain_findings("quick")
    assert not any("`untrained` above `scratch`" in line for line in quick)
    assert any("`untrained` is the tables' network" in line for line in quick)
    full = RP.pretrain_findings("full")  # same network: counted
    assert any("`untrained` above `scratch` in 2 of 2" in line for line in full)
