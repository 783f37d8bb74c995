"""Tests for sbir_lib.course.context: setup, the train-or-load cache and the paper comparison (no training)."""
from __future__ import annotations

import math

import numpy as np
import torch
import pytest

from sbir_lib.core import records as R
from sbir_lib import course
from sbir_lib.experiments import runner as E


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("SBIR_RESULTS_ROOT", str(tmp_path))
    return tmp_path


def fake_record(results, experiment, dataset, variant, acc1, seed=0, profile="quick", n=5):
    dist = np.arange(n * n, dtype=np.float32).reshape(n, n)[::-1].copy()
    rec = {"experiment": experiment, "dataset": dataset, "variant": variant, "seed": seed, "profile": profile,
           "metrics": {"acc@1": acc1, "acc@5": 0.9, "acc@10": 1.0}, "acc_curve": [acc1, 1.0]}
    R.write_record(R.record_path(results, experiment, dataset, variant, seed, profile), rec, dist)
    return dist


def test_setup_checks_profile():
    with pytest.raises(ValueError, match="quick, cpu, full"):
        course.setup("fast")


def test_setup_quick(capsys):
    ctx = course.setup("quick", device="cpu")
    assert ctx.profile == "quick" and ctx.seeds == [0] and ctx.train_missing
    assert "profile=quick" in capsys.readouterr().out


def test_full_without_gpu_reads_only(results, capsys):
    ctx = course.setup("full", device="cpu")
    assert not ctx.train_missing and ctx.seeds == [0, 1, 2]
    capsys.readouterr()
    assert ctx.record("table2", "shoes", "base") is None
    out = capsys.readouterr().out
    assert "not recorded" in out and "python -m sbir_lib.experiments run --experiment table2" in out
    assert ctx.distances("table2", "shoes", "base") is None
    assert ctx.trained("table4", "shoes", "base+att") is None


def test_record_distances_and_compare(results, monkeypatch, capsys):
    ctx = course.setup("quick", device="cpu")
    ctx.train_missing = False
    monkeypatch.setattr(course.Course, "dataset_key", lambda self, name: name)
    dist = fake_record(results, "table2", "shoes", "base", 0.25)
    fake_record(results, "table2", "shoes", "full", 0.5)
    assert ctx.record("table2", "shoes", "base")["metrics"]["acc@1"] == 0.25
    assert np.array_equal(ctx.distances("table2", "shoes", "base"), dist)

    df = ctx.compare("table2", "shoes")
    assert list(df.variant) == ["base", "base+att+cff", "base+holef", "full"]
    row = df.set_index("variant")
    assert row.loc["base", "ours acc@1"] == pytest.approx(25.0)
    assert row.loc["full", "ours acc@10"] == pytest.approx(100.0)
    assert row.loc["base", "paper acc@1"] == pytest.approx(52.17)
    assert math.isnan(row.loc["base+att+cff", "ours acc@1"]) and row.loc["base+att+cff", "seeds"] == 0
    out = capsys.readouterr().out
    assert "table2: no quick-profile record for base+att+cff, base+holef" in out
    assert "--rows base+att+cff base+holef --seeds 0 --profile quick" in out

    fake_record(results, "table4", "shoes", "base+att", 0.4)
    df4 = ctx.compare("table4", "shoes", keys=["att"])
    assert list(df4.column) == ["with shortcut", "without shortcut"]
    assert list(df4.variant) == ["base+att", "base+att-noshortcut"]
    assert df4["ours acc@1"].iloc[0] == pytest.approx(40.0) and math.isnan(df4["ours acc@1"].iloc[1])
    assert list(df4["paper acc@1"]) == [54.78, 15.65]


def test_compare_rejects_bad_names(results):
    ctx = course.setup("quick", device="cpu")
    with pytest.raises(ValueError, match="table1"):
        ctx.compare("table9", "shoes")
    with pytest.raises(ValueError, match="handbags"):
        ctx.compare("table2", "bags")
    with pytest.raises(ValueError, match="allowed"):
        ctx.compare("table2", "shoes", keys=["nope"])


def test_trained_follows_reused_from(results, monkeypatch):
    ctx = course.setup("quick", device="cpu")
    ctx.train_missing = False
    monkeypatch.setattr(course.Course, "dataset_key", lambda self, name: name)
    from sbir_lib.training import triplet as T

    model = T.build_network(T.profile_config("quick", variant="base+att"), init=False)[0]  # the profile's network
    with torch.no_grad():
        model.attention.conv2.bias.fill_(0.25)
    src = R.record_path(results, "table3", "shoes", "base+att", 0, "quick")
    fake_record(results, "table3", "shoes", "base+att", 0.3)
    E.save_weights(R.weights_path(src), model, model.make_energy(), "base+att")
    fake_record(results, "table4", "shoes", "base+att", 0.3)
    rec = R.load_record(R.record_path(results, "table4", "shoes", "base+att", 0, "quick"))
    rec["reused_from"] = "table3/shoes/base+att/seed0.quick.json"
    E.write_json_atomic(R.record_path(results, "table4", "shoes", "base+att", 0, "quick"), rec)
    loaded = ctx.trained("table4", "shoes", "base+att")
    assert loaded is not None
    assert float(loaded[0].attention.conv2.bias.detach()) == 0.25
    fake_record(results, "table4", "shoes", "base+att-noshortcut", 0.1)  # no weights, not reused
    assert ctx.trained("table4", "shoes", "base+att-noshortcut") is None


# ------------------------------------------------------------------ honest notebooks (issue 15, item 4)

import json  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: a bare NaN / nan token (not part of a word such as "nanoseconds")
BARE_NAN = re.compile(r"(?<![\w.])(?:NaN|nan)(?!\w)")


def _bare_nans(text: str) -> list[str]:
    return [text[max(0, m.start() - 40):m.end() + 20] for m in BARE_NAN.finditer(text)]


def _output_texts(nb: dict):
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                yield i, "stream", "".join(out.get("text", ""))
            for kind in ("text/plain", "text/html"):
                if kind in out.get("data", {}):
                    yield i, kind, "".join(out["data"][kind])


def test_bare_nan_pattern():
    assert _bare_nans("<td>NaN</td>") and _bare_nans("0  1.5  nan\n") and _bare_nans("p = NaN,")
    assert not _bare_nans("nanoseconds, Nancy, finite, 'n/a: one seed', —")


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name[:2])
def test_committed_notebook_outputs_show_no_bare_nan(path):
    """A missing value is a dash with a footnote (``sbir_lib.report.tables.styled``), never NaN."""
    nb = json.loads(path.read_text())
    found = [(i, kind, s) for i, kind, text in _output_texts(nb) for s in _bare_nans(text)]
    assert not found, f"{path.name}: bare NaN in outputs (cell, type, context): {found[:5]}"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name[:2])
def test_committed_notebooks_carry_jupyterlabs_kernelspec(path):
    from sbir_lib.course.notebooks import KERNELSPEC

    assert json.loads(path.read_text())["metadata"]["kernelspec"] == KERNELSPEC


def test_styled_shows_a_dash_and_a_footnote_for_missing_values():
    import pandas as pd

    from sbir_lib.report import tables as TB

    df = pd.DataFrame({"x": [1.23456, float("nan")], "mixed": ["collapsed", 13.94], "n": [1, 2],
                       "who": [None, "b"]})
    html = TB.styled(df, 1, note="not recorded", caption="a caption").to_html()
    cells = re.findall(r">([^<>]*)</td>", html)
    assert cells == ["1.2", "collapsed", "1", TB.DASH, TB.DASH, "13.9", "2", "b"]
    assert not _bare_nans(html) and f"a caption<br>{TB.DASH} not recorded" in html
    full = TB.styled(df.dropna(), 2).to_html()
    assert TB.DASH not in full and "<caption" not in full  # no dash, no footnote
    assert TB.styled(df).to_html() == TB.styled(df.copy()).to_html()  # stable ids


def test_cost_and_benchmark_tables_have_no_nan(tmp_path):
    from sbir_lib.core.io import write_json_atomic
    from sbir_lib.report import reproduction as RP

    for seed, (row, tps) in enumerate([("base", 12.5), ("hog_bow_ranksvm", None)]):
        rec = {"row": row, "variant": row, "seed": seed, "profile": "full", "device": "cpu", "wall_time_s": 60.0,
               "metrics": {"acc@1": 0.1, "acc@5": 0.2, "acc@10": 0.3}}
        if tps:
            rec.update(triplets_per_s=tps, train_time_s=50.0)
        R.write_record(R.record_path(tmp_path, "table1", "shoes", row, 0, "full"), rec, np.eye(2))
    assert RP.cost_frame("full", tmp_path)["train triplets/s (mean)"].isna().any()  # the classical runs
    html = RP.cost_table("full", tmp_path).to_html()
    assert not _bare_nans(html) and "12.500" in html and RP.COST_NOTE in html
    write_json_atomic(tmp_path / "benchmarks" / "b.json", {"device": "cpu", "engine_triplets_per_s": 3.0})
    html = RP.benchmarks_table(tmp_path).to_html()
    assert not _bare_nans(html) and RP.BENCHMARKS_NOTE in html  # no variant, no batch in that file


def test_dase_claims_and_grid_tables_have_no_nan(monkeypatch):
    import pandas as pd

    from sbir_lib.course import dase_lab
    from sbir_lib.report import claims

    frame = pd.DataFrame([{"claim": "mems", "experiment": "dase_sketchy", "dataset": "synthetic_categories",
                           "better": "plain_mems", "worse": "plain_softmax", "measure": "max intra < min inter (%)",
                           "better mean": 0.5, "worse mean": 0.6, "diff": 0.1, "p": float("nan"), "n": "1/1",
                           "verdict": "n/a: one seed"}])
    monkeypatch.setattr(claims, "dase_claims_frame", lambda claim, profile, results=None: frame)
    html = dase_lab.claims_table("mems", "quick").to_html()
    assert not _bare_nans(html) and dase_lab.CLAIMS_NOTE in html
    assert ">max intra &lt; min inter (%)<" in html  # text cells are escaped
    assert "min inter" not in dase_lab.claims_table("dase", "quick").to_html()  # DASE: one measure, not shown
    monkeypatch.setattr(claims, "dase_claims_frame", lambda claim, profile, results=None: frame.iloc[:0])
    assert dase_lab.claims_table("mems", "quick") == "no runs recorded"
    runs = pd.DataFrame([{"blocks": "plain", "loss": "mems", "acc@1": 0.5},
                         {"blocks": "dase", "loss": "triplet", "acc@1": 0.25}])
    grid = dase_lab.grid_table(runs, "acc@1")
    assert grid.loc["plain", "triplet"] == dase_lab.NOT_RUN and grid.loc["dase", "triplet"] == "25.0 (1)"
    assert not grid.isna().to_numpy().any()


def test_margin_geometry_figure_has_axis_labels_and_a_legend():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sbir_lib.course import dase_lab

    x, y = dase_lab.toy_data(n_per_class=20, seed=0)
    toys = {"softmax": dase_lab.train_toy("softmax", x, y, steps=5),
            "MEMS, m = 3": dase_lab.train_toy("mems", x, y, steps=5, margin=3.0)}
    fig = dase_lab.margin_geometry_figure(toys, x, y, res=40)
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 2 and all(ax.get_xlabel() and ax.get_ylabel() for ax in panels)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "class 0 (held-out features)" in labels and "MEMS class centre" in labels
    assert any(lab.startswith("dark:") for lab in labels)
    plt.close(fig)


def test_records_left_out_of_the_notebook_digest_are_read_by_no_notebook(tmp_path):
    """``NOT_READ_BY_NOTEBOOKS`` may only name records that no lesson reads; recording one leaves the digest."""
    from pathlib import Path

    from sbir_lib.course import notebooks as NB

    root = Path(__file__).resolve().parents[1]
    sources = [p.read_text() for p in sorted((root / "notebooks").glob("[0-9][0-9]_*.py"))]
    assert sources
    for prefix in NB.NOT_READ_BY_NOTEBOOKS:
        stem = prefix.rstrip(".").split("/")[-1]
        assert not any(stem in src for src in sources), f"a notebook reads {prefix}*: it must count in the digest"
    before = NB.records_digest(tmp_path)
    (tmp_path / "tuning").mkdir()
    (tmp_path / "tuning" / "cache_views.quick.json").write_text("{}")
    assert NB.records_digest(tmp_path) == before
    (tmp_path / "tuning" / "embedding_spread.quick.json").write_text("{}")
    assert NB.records_digest(tmp_path) != before
