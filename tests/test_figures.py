"""Figures 4/5, the explorer and the run selection of sbir_lib.report.figures."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sbir_lib.core import records as R  # noqa: E402
from sbir_lib.data import synthetic as SY  # noqa: E402
from sbir_lib.experiments import runner as E  # noqa: E402
from sbir_lib.losses import losses as L  # noqa: E402
from sbir_lib.models import dssa as MD  # noqa: E402
from sbir_lib.report import figures as FG  # noqa: E402


@pytest.fixture(scope="module")
def synth():
    return SY.make_synthetic(n_train=8, n_test=6, size=256, seed=0)


def fake_run(results, exp, ds, variant, profile, weights=False, acc1=0.5):
    path = R.record_path(results, exp, ds, variant, 0, profile)
    R.write_record(path, {"variant": variant, "seed": 0, "profile": profile, "iterations": 3, "device": "cpu",
                          "metrics": {"acc@1": acc1, "acc@5": acc1, "acc@10": acc1}}, np.eye(4))
    if weights:
        model = MD.DSSANet(variant)
        E.save_weights(R.weights_path(path), model, L.make_energy("holef", model.embed_dim), variant)
    return path


def make_bundle(ds, dist_ours, dist_base, name="synthetic", profile="quick", photos=True):
    torch.manual_seed(0)
    src = FG.Source(name, profile, "table1", {"metrics": {"acc@1": 0.5}}, {"metrics": {"acc@1": 0.4}})
    return FG.Bundle(src, ds.test.sketches, ds.test.edges, ds.test.photos if photos else None,
                     np.asarray(dist_ours, np.float32), np.asarray(dist_base, np.float32),
                     MD.DSSANet("full").eval())


def test_find_source_prefers_full_and_needs_kept_weights(tmp_path):
    assert FG.find_source("shoes", ("full", "quick"), tmp_path) is None
    fake_run(tmp_path, "table2", "shoes", "full", "quick", weights=True)
    fake_run(tmp_path, "table2", "shoes", "base", "quick")
    src = FG.find_source("shoes", ("full", "quick"), tmp_path)
    assert (src.profile, src.experiment) == ("quick", "table2")
    fake_run(tmp_path, "table1", "shoes", "full", "full")  # no weights kept: not usable for Figure 4
    fake_run(tmp_path, "table1", "shoes", "base", "full")
    assert FG.find_source("shoes", ("full", "quick"), tmp_path).profile == "quick"
    fake_run(tmp_path, "table3", "shoes", "full", "full", weights=True)
    fake_run(tmp_path, "table3", "shoes", "base", "full", acc1=0.25)
    src = FG.find_source("shoes", ("full", "quick"), tmp_path)
    assert (src.profile, src.experiment) == ("full", "table3")
    assert "full-profile runs of `table3`" in src.describe() and "25.00%" in src.describe()
    # a copy of table3's run in table2 (weights beside the original only) is found through reused_from
    rec = R.load_record(R.record_path(tmp_path, "table3", "shoes", "full", 0, "full"))
    rec["reused_from"] = "table3/shoes/full/seed0.json"
    R.write_record(R.record_path(tmp_path, "table2", "shoes", "full", 0, "full"), rec, np.eye(4))
    fake_run(tmp_path, "table2", "shoes", "base", "full")
    assert FG.find_source("shoes", ("full",), tmp_path).experiment == "table2"


def test_pick_queries_and_rank_comparison(synth):
    n = len(synth.test)
    rng = np.random.default_rng(0)
    ours = rng.random((n, n)) + 1.0
    base = ours.copy()
    ours[2, 2] = 0.0  # ours finds query 2 first; Triplet SN ranks it last
    base[2, 2] = 10.0
    ours[4, 4], base[4, 4] = 10.0, 0.0  # the other way round for query 4
    b = make_bundle(synth, ours, base)
    assert FG.pick_queries(b) == [(2, "ours gains most"), (4, "Triplet SN gains most")]
    rc = FG.rank_comparison({"synthetic": b}).iloc[0]
    ro, rb = b.ranks("ours"), b.ranks("baseline")
    assert rc["ours better"] == int((ro < rb).sum()) and rc["Triplet SN better"] == int((ro > rb).sum())
    assert rc["ours better"] + rc["tie"] + rc["Triplet SN better"] == n
    assert rc["ours acc@1"] == pytest.approx(100 * np.mean(ro == 0))


def test_attention_maps_and_summary(synth):
    b = make_bundle(synth, np.eye(6), np.eye(6))
    a = b.attention([0, 3], "sketch")
    assert a.shape == (2, 7, 7) and np.allclose(a.reshape(2, -1).sum(1), 1, atol=1e-5)  # Eq. 3 softmax
    assert np.array_equal(b.attention([3], "sketch")[0], a[1])  # cached, same values
    s = FG.attention_summary({"synthetic": b}).iloc[0]
    assert s["uniform alpha"] == pytest.approx(1 / 49) and s["mean max alpha (sketch)"] >= 1 / 49
    assert -1 <= s["mask corr., true pair"] <= 1
    with pytest.raises(ValueError, match="no attention"):
        FG.attention_maps(MD.DSSANet("base"), synth.test.sketches[:1])


def _outlined(ax):
    return any(sp.get_visible() for sp in ax.spines.values())


def test_figure4_figure5_and_explorer_view(synth, tmp_path, monkeypatch):
    monkeypatch.setenv("SBIR_FIGURES_ROOT", str(tmp_path))
    n = len(synth.test)
    ours = np.full((n, n), 5.0)
    np.fill_diagonal(ours, 0.0)  # ours: every true match first
    base = np.full((n, n), 1.0)
    np.fill_diagonal(base, 3.0)  # Triplet SN: every true match last
    bnds = {"synthetic": make_bundle(synth, ours, base),
            "handbags": make_bundle(synth, ours, base, name="handbags", photos=False)}
    fig4 = FG.figure4(bnds, n_pairs=2)
    panels = [ax for ax in fig4.axes if not hasattr(ax, "_colorbar")]
    assert len(panels) == 2 * 2 * 4  # absolute and min-max blocks: 2 datasets x 2 pairs x (sketch, photo)
    assert panels[5].get_title().startswith("edge map")  # no photos: the edge map is shown
    plt.close(fig4)
    fig5 = FG.figure5(bnds, k=3, thumb=64, save="fig5_test")
    assert (tmp_path / "fig5_test.png").exists() and (tmp_path / "fig5_test.pdf").exists()
    axes = np.array(fig5.axes).reshape(-1, 4)
    assert axes.shape[0] == 2 * 2  # one query per dataset (no query where Triplet SN wins), two rows each
    assert _outlined(axes[0][1]) and not any(_outlined(ax) for ax in axes[1][1:])  # ours: match at 1
    assert "match at 1" in axes[0][0].get_title() and f"match at {n}" in axes[1][0].get_title()
    plt.close(fig5)
    fig = FG.explorer_view(bnds["synthetic"], 1, k=4)
    assert len(fig.axes) == 2 * 5
    plt.close(fig)
    with pytest.raises(ValueError, match="query must be in 0..5"):
        FG.explorer_view(bnds["synthetic"], n)


def test_explorer_widget(synth):
    small = SY.make_synthetic(n_train=8, n_test=4, size=256, seed=1)
    bnds = {"synthetic": make_bundle(synth, np.eye(6), np.eye(6)),
            "handbags": make_bundle(small, np.eye(4), np.eye(4), name="handbags")}
    w = FG.explorer(bnds, k=3)
    ds, q, k = w.children[0].children
    out = w.children[1]
    assert q.max == 5 and k.value == 3
    assert len(out.outputs) == 1 and out.outputs[0]["data"]["image/png"].startswith("iVBORw0KGgo")  # a PNG
    ds.value = "handbags"
    assert q.max == 3
    assert len(out.outputs) == 1 and "Handbag" in out.outputs[0]["data"]["text/plain"]
    plt.close("all")
    assert "Nothing to explore" in FG.explorer({}).value


def test_no_runs_no_crash(capsys):
    """The full profile without a GPU and without records: notes instead of figures, never an error."""
    assert FG.figure4({}) is None and FG.figure5({}) is None and FG.explorer_example({}) is None
    assert "Figure 4: no dataset" in capsys.readouterr().out
    assert FG.rank_comparison({}).empty and FG.attention_summary({}).empty


def test_paper_vs_ours_counts_cells(tmp_path):
    import pandas as pd

    from sbir_lib.report import tables as T

    for s, a in enumerate([0.5, 0.55]):
        R.write_record(R.record_path(tmp_path, "table2", "shoes", "base", s, "full"),
                       {"seed": s, "variant": "base", "metrics": {"acc@1": a, "acc@5": a, "acc@10": a}}, np.eye(2))
    lt = pd.concat([T.long_table(t, ["shoes"], "full", tmp_path) for t in ("table1", "table2")])
    fig = FG.paper_vs_ours(lt, "test")
    assert "(2 cells)" in fig.axes[0].get_title()  # acc@1 and acc@10 of Table 2's Base
    plt.close(fig)


def test_sources_and_bundles_from_real_runner_records(tmp_path, monkeypatch):
    """End to end on synthetic data: runner records (2 iterations) -> sources -> bundle -> Figure 4."""
    from sbir_lib.core import config
    from sbir_lib import course

    monkeypatch.setattr(config, "repo_root", lambda: tmp_path)  # checkpoints go to tmp_path/runs
    ds = SY.make_synthetic(seed=0)  # what ctx.dataset("synthetic") gives, so the distances fit its test split
    for v in ("full", "base"):
        E.run_one("table1", "synthetic", v, 0, "quick", device="cpu", results=tmp_path, dataset=ds,
                  overrides={"iterations": 2, "batch_size": 4}, progress=False, log=lambda *a: None)
    ctx = course.setup("quick", device="cpu")
    srcs = FG.sources(ctx, ["synthetic"], results=tmp_path)
    assert srcs["synthetic"].profile == "quick" and srcs["synthetic"].experiment == "table1"
    b = FG.bundles(ctx, srcs, results=tmp_path)["synthetic"]
    assert b.dist_ours.shape == (len(b), len(b)) and b.photos is not None
    # the saved distances reproduce the recorded metric (float16 storage keeps the ranking)
    assert np.mean(b.ranks("ours") == 0) == pytest.approx(srcs["synthetic"].ours["metrics"]["acc@1"])
    fig = FG.figure4({"synthetic": b}, n_pairs=1)
    assert len([ax for ax in fig.axes if not hasattr(ax, "_colorbar")]) == 2 * 2  # absolute, min-max
    plt.close(fig)
    other = FG.Source("synthetic", "quick", "table1", {}, {})
    monkeypatch.setattr(ctx, "dataset", lambda name, photos=True: SY.make_synthetic(n_train=4, n_test=5, seed=0))
    with pytest.raises(ValueError, match="do not match"):
        FG.load_bundle(ctx, "synthetic", other, results=tmp_path)


def _colorbars(fig):
    return [ax for ax in fig.axes if hasattr(ax, "_colorbar")]


def test_figure4_absolute_scale_marks_the_uniform_level(synth):
    b = make_bundle(synth, np.eye(6), np.eye(6))
    idx = FG.pair_indices(len(b), 2)
    vmax = max(b.attention(idx, "sketch").max(), b.attention(idx, "edge").max())
    fig = FG.figure4({"synthetic": b}, n_pairs=2, scale="absolute")
    (cb,) = _colorbars(fig)
    assert cb.get_ylim() == pytest.approx((0.0, vmax), rel=1e-6)  # one scale: 0 to the largest alpha shown
    labels = {t.get_text(): y for t, y in zip(cb.get_yticklabels(), cb.get_yticks())}
    assert labels["1/49 (uniform)"] == pytest.approx(1 / 49)
    assert "Absolute scale" in fig.subfigs[0].get_suptitle()
    plt.close(fig)
    fig = FG.figure4({"synthetic": b}, n_pairs=2)  # default: absolute and min-max, each labelled
    assert [s.get_suptitle().split(":")[0] for s in fig.subfigs] == ["Absolute scale", "Min-max scaled"]
    assert [t.get_text() for t in _colorbars(fig)[1].get_yticklabels()] == ["its min", "its max"]
    plt.close(fig)
    with pytest.raises(ValueError, match="scale must be one of"):
        FG.figure4({"synthetic": b}, scale="log")


def _shown_fontsizes(fig):
    """Font sizes of the figure's texts as JupyterLab shows it (scaled down when wider than a column)."""
    import matplotlib.text

    scale = min(1.0, FG.NOTEBOOK_WIDTH_IN / fig.get_size_inches()[0])
    return [t.get_fontsize() * scale for t in fig.findobj(matplotlib.text.Text)
            if t.get_visible() and t.get_text().strip()]


@pytest.mark.parametrize("k", [10, 20])
def test_top_k_retrieval_figures_are_legible(k):
    ds = SY.make_synthetic(n_train=4, n_test=k + 2, size=256, seed=2)
    rng = np.random.default_rng(0)
    b = make_bundle(ds, rng.random((k + 2, k + 2)), rng.random((k + 2, k + 2)))
    for fig in (FG.figure5({"synthetic": b}, k=k), FG.explorer_view(b, 1, k=k)):
        assert fig.get_size_inches()[0] <= FG.NOTEBOOK_WIDTH_IN + 1e-6
        assert min(_shown_fontsizes(fig)) >= FG.MIN_FONTSIZE
        plt.close(fig)


def test_source_line_names_the_recording_device_and_this_machine():
    src = FG.Source("shoes", "full", "table1",
                    {"iterations": 20000, "device": "cuda (NVIDIA H100 80GB HBM3)", "metrics": {"acc@1": 0.5}},
                    {"device": "cuda (NVIDIA H100 80GB HBM3)", "metrics": {"acc@1": 0.4}})
    line = src.describe(here="cpu")
    assert line.endswith("records made on cuda (NVIDIA H100 80GB HBM3) (this machine: cpu)")
    assert FG.this_machine() in src.describe()


def _long(rows):
    import pandas as pd

    return pd.DataFrame([{"table": t, "status": "ok", "paper": p, "mean": m, "std": sd, "n": n}
                         for t, p, m, sd, n in rows])


def test_paper_vs_ours_error_bars_only_for_two_seeds_or_more():
    from matplotlib.container import ErrorbarContainer

    fig = FG.paper_vs_ours(_long([("table1", 50, 40, np.nan, 1), ("table1", 60, 45, np.nan, 1),
                                  ("table2", 70, 65, 2.0, 3), ("table2", 30, 35, np.nan, 1)]))
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1 and len(bars[0].lines[2][0].get_segments()) == 1  # table2's one 3-seed cell
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == sorted(["table1", "table2", "ours = paper", "± seed std (1 cells with 2+ seeds)"])
    plt.close(fig)
    fig = FG.paper_vs_ours(_long([("table1", 50, 40, np.nan, 1)]))  # one seed everywhere: no bars, no entry
    ax = fig.axes[0]
    assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert not any("std" in t.get_text() for t in ax.get_legend().get_texts())
    plt.close(fig)
