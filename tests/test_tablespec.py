"""The table registry (sbir_lib.core.tablespec): consistent with the models, and one entry is all a new table needs."""
import numpy as np
import pytest

from sbir_lib.core import records as R
from sbir_lib.core import tablespec as TS
from sbir_lib.experiments import grid, runner
from sbir_lib.experiments.spec import CLASSICAL
from sbir_lib.models import dssa as MD
from sbir_lib.models.dssa import VARIANTS, get_variant
from sbir_lib.report import claims as C
from sbir_lib.report import reproduction as RP
from sbir_lib.report import tables as T


def test_every_network_is_a_variant_or_classical_and_every_variant_is_used():
    used = set()
    for t in TS.TABLES.values():
        assert t.key == t.key.lower() and t.title.startswith("Table")
        for r in t.rows:
            assert len(r.networks) == (len(t.columns) if t.layout == "settings" else 1), (t.key, r.key)
            assert set(r.paper) == set(TS.DATASETS) and all(len(v) == len(t.columns) for v in r.paper.values())
            for n in r.networks:
                if n is None:
                    assert r.why, (t.key, r.key)
                    continue
                assert n in (CLASSICAL if r.kind == "classical" else VARIANTS), (t.key, r.key, n)
                used.add(n)
        for c in t.claims:
            assert {c.better, c.worse} <= set(t.networks()), (t.key, c.text)
    assert set(VARIANTS) <= used


def test_settings_columns_differ_in_one_switch():
    """Table 3's two columns differ only in attention, Table 4's only in the shortcut; Table 5 only in the energy."""
    for r in TS.TABLE3.rows:
        assert get_variant(r.networks[0]).replace(attention=False) == get_variant(r.networks[1])
    for r in TS.TABLE4.rows:
        assert get_variant(r.networks[0]).replace(shortcut=False) == get_variant(r.networks[1])
    assert {get_variant(r.networks[0]).energy for r in TS.TABLE5.rows} == set(MD.ENERGIES)


def test_unknown_table_names_the_registered_ones():
    with pytest.raises(ValueError, match="allowed: table1, table2"):
        TS.get("table9")
    with pytest.raises(ValueError, match="rows: euclidean, weighted_euclidean, mahalanobis, holef"):
        TS.TABLE5.row("cosine")


TOY = TS.TableSpec(
    "toy", "Table 9: a toy table (attention alone)", "metrics", ("acc@1", "acc@10"), grid_order=-1,
    rows=(TS.TableRow("plain", "Plain", ("base",), {"shoes": (10.0, 50.0), "chairs": (20.0, 60.0),
                                                     "handbags": (30.0, 70.0)}),
          TS.TableRow("att", "With attention", ("base+att",), {"shoes": (12.0, 52.0), "chairs": (22.0, 62.0),
                                                               "handbags": (32.0, 72.0)})),
    claims=(TS.ClaimSpec("Attention helps the toy", "base+att", "base"),),
)


def test_a_toy_table_flows_to_the_runner_the_grid_the_claims_and_the_markdown(tmp_path, monkeypatch):
    monkeypatch.setitem(TS.TABLES, "toy", TOY)
    assert runner.experiments()["toy"] == ["base", "base+att"]
    jobs = grid.plan("quick", seeds=(0,), datasets=("shoes",), dase=False)
    toy = [j for j in jobs if j.experiment == "toy"]
    assert [(j.kind, j.row) for j in toy] == [("dssa", "base"), ("dssa", "base+att")]
    # grid_order -1: the toy's runs come before every other table's
    first_table = next(j for j in jobs if j.kind == "dssa" and j.experiment in TS.TABLES)
    assert first_table.experiment == "toy"
    assert [c.text for c in C.claims() if c.table == "toy"] == ["Attention helps the toy"]
    for seed, (a, b) in enumerate([(0.10, 0.14), (0.11, 0.16), (0.09, 0.15)]):
        for variant, acc in (("base", a), ("base+att", b)):
            R.write_record(R.record_path(tmp_path, "toy", "shoes", variant, seed, "full"),
                           {"experiment": "toy", "dataset": "shoes", "variant": variant, "row": variant,
                            "seed": seed, "profile": "full", "device": "cpu", "git_commit": "abc",
                            "n_queries": 115, "config": {"iterations": 1}, "iterations": 1,
                            "metrics": {"acc@1": acc, "acc@5": acc, "acc@10": acc + 0.4}}, np.eye(3))
    lt = T.long_table("toy", ["shoes"], "full", tmp_path)
    assert list(lt["status"]) == ["ok"] * 4 and lt["paper"].tolist() == [10.0, 50.0, 12.0, 52.0]
    md = RP.reproduction_markdown("full", tmp_path)
    assert "### Table 9: a toy table (attention alone)" in md
    assert "| QMUL-Shoe | With attention |" in md and "Attention helps the toy" in md
