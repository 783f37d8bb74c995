"""Tests for sbir_lib.report.fidelity: the "ours vs the authors' code" tables (DSSA and DASE/MEMS) cover every
setting, cite the authors' code by file:line, read ours from the code, and compute their verdicts from it."""
from __future__ import annotations

import re

import numpy as np
import pytest

from sbir_lib.core.profiles import PROFILES
import torch
import torch.nn.functional as F

from sbir_lib.core import records as R
from sbir_lib.experiments import grid as G
from sbir_lib.losses import losses as L
from sbir_lib.models import dssa as MD
from sbir_lib.report import fidelity
from sbir_lib.report import reproduction as RP
from sbir_lib.training import triplet as T

SETTINGS = ("initialisation", "dropout", "weight decay", "fine branch (CFF)", "attention init",
            "optimiser", "learning rate", "iterations", "batch", "loss and margin", "sampler", "augmentation",
            "test views", "model selection", "precision")
FROZEN = ("frozen layers (table rows, full profile)",
          "frozen layers (table rows, GPU grid)", "frozen layers (`@<init>` rows, experiment pretrain)")
PER_STEP = ("frozen trunk per step (table rows, full profile)",
            "frozen trunk per step (table rows, GPU grid)",
            "frozen trunk per step (`@<init>` rows, experiment pretrain)")
#: every deviation of our DASE/MEMS recipe from Ben-Louis/SBIR-DASE-MEMS the table must name
DASE_SETTINGS = ("batch pairing", "optimiser", "learning-rate schedule", "sketch augmentation: rotation",
                 "sketch augmentation: random erasing", "sketch augmentation: inversion", "input normalisation",
                 "test crop", "MEMS class centres initialisation", "MEMS margin", "MEMS margin annealing",
                 "embedding dimension", "backbone", "AlexNet SE blocks never domain-aware (authors' bug)",
                 "photo augmentation", "iterations", "dropout", "MEMS centres' learning rate", "dataset")
VERDICTS = ("same", "different", "partly")
#: a citation: ``file:line`` (``train:58``, ``se_module.py:6``, ``train.prototxt:24-193``)
CITE = re.compile(r"[\w/.-]+:\d+")
#: a DASE citation names the file with its extension
DASE_CITE = re.compile(r"[\w/.-]+\.(?:py|md):\d+")


def by_setting(rows):
    out = {r.setting: r for r in rows}
    assert len(out) == len(rows), "settings must be unique"
    return out


def check_rows(rows, required, cite, what: str) -> dict:
    """Every ``required`` setting has a row; every row a verdict, a citation matching ``cite`` and, unless
    *same*, a reason. Returns the rows by setting."""
    rows = by_setting(rows)
    for s in required:
        assert s in rows, s
    for s, r in rows.items():
        assert r.same in VERDICTS, s
        assert cite.search(r.authors), f"{s}: cite {what}"
        if r.same != "same":
            assert r.why, f"{s}: say why we differ"
    return rows


def test_every_setting_has_a_row_with_a_citation_and_a_verdict():
    check_rows(fidelity.rows(), SETTINGS + FROZEN + PER_STEP, CITE, "file:line")


def test_every_dase_row_cites_the_authors_code_by_file_and_line():
    rows = check_rows(fidelity.dase_rows(), DASE_SETTINGS, DASE_CITE, "file.py:line of Ben-Louis/SBIR-DASE-MEMS")
    assert "alexnet.py:18, 25, 32, 42" in rows["AlexNet SE blocks never domain-aware (authors' bug)"].authors
    assert "se_module.py:6" in rows["AlexNet SE blocks never domain-aware (authors' bug)"].authors


def test_ours_is_read_from_the_code():
    rows = by_setting(fidelity.rows())
    cfg = T.profile_config("full")
    assert f"{cfg.iterations:,}" in rows["iterations"].ours
    assert str(cfg.lr) in rows["learning rate"].ours
    assert rows["dropout"].same == ("same" if MD.get_variant("full").dropout == 0 else "different")
    df = fidelity.frame()
    assert list(df.columns)[:2] == ["setting", "authors' code"] and len(df) == len(rows)
    dase = by_setting(fidelity.dase_rows())
    for exp, c in fidelity.dase_configs("full").items():
        assert f"{c.iterations:,}" in dase["iterations"].ours
        assert f"{c.mems_margin:g}" in dase["MEMS margin"].ours
        assert str(c.embed_dim) in dase["embedding dimension"].ours
        assert c.lr_schedule in dase["learning-rate schedule"].ours
    assert list(fidelity.dase_frame().columns) == list(df.columns)


# ---------------------------------------------------------------------------------- verdicts follow the code

def _authors_stages(profile: str, **over) -> bool:
    return all(T.frozen_stage(T.profile_config(profile, variant=v, **over)) == s
               for v, s in fidelity.AUTHORS_FROZEN.items())


def test_frozen_layers_verdicts_are_computed_from_the_code(monkeypatch):
    rows = by_setting(fidelity.rows())
    # the full profile trains the table rows from scratch: nothing frozen, not the authors' layers
    r = rows["frozen layers (table rows, full profile)"]
    assert r.same == ("same" if _authors_stages("full") else "different")
    # the trunk profiles (cpu, quick) have a row each, saying what their trunk was adapted on (read from its file)
    assert "Sketchy-mini category triplets only" in rows["the `quick` profile (2 CPU cores)"].ours
    assert "QMUL training pairs" in rows["the `cpu` profile (2 CPU cores)"].ours
    # a row that reads "same" names the authors' layers for both variants
    for s in FROZEN:
        if rows[s].same == "same":
            assert "full conv1-conv4 frozen" in rows[s].ours and "base conv1-conv5 frozen" in rows[s].ours, s
    grid_init = fidelity._grid_table_init("full")
    assert rows["frozen layers (table rows, GPU grid)"].same == (
        "same" if _authors_stages("full", init=grid_init) else "different")
    assert rows["frozen layers (`@<init>` rows, experiment pretrain)"].same == "partly"  # base may train conv5

    # change the code, the verdicts follow: a grid that stopped passing the init would train from scratch ...
    with monkeypatch.context() as m:
        m.setattr(G, "plan", lambda *a, **k: [G.Job("dssa", "table2", "shoes", "full", 0, {})])
        assert by_setting(fidelity.rows())["frozen layers (table rows, GPU grid)"].same == "different"
    # ... a full profile with a pretrained init freezes the authors' layers ...
    monkeypatch.setitem(PROFILES["full"].triplet, "init", "sketchanet_init.pt")
    rows = by_setting(fidelity.rows())
    assert rows["frozen layers (table rows, full profile)"].same == "same"
    # ... and caching the trunk by default is no longer the authors' per-step recomputation
    monkeypatch.setitem(PROFILES["full"].triplet, "cache_views", 5)
    rows = by_setting(fidelity.rows())
    assert rows["frozen trunk per step (table rows, full profile)"].same == "different"


def test_frozen_and_cache_verdict_rules():
    sk = lambda s: ("sketchanet", s)  # noqa: E731
    assert fidelity.frozen_verdict({"full": {sk("conv4")}, "base": {sk("conv5")}}) == "same"
    assert fidelity.frozen_verdict({"full": {sk(None)}, "base": {sk(None)}}) == "different"
    assert fidelity.frozen_verdict({"full": {sk("conv4")}, "base": {sk("conv5"), sk("conv4")}}) == "partly"
    # EfficientNet-Lite0's "conv4" (its whole trunk) is not the authors' Sketch-a-Net conv1-conv4
    assert fidelity.frozen_verdict({"full": {("efficientnet_lite0", "conv4")}}) == "different"
    assert fidelity.frozen_of(T.profile_config("full", init="imagenet")) == ("efficientnet_lite0", "conv4")
    assert fidelity.cache_verdict([0]) == "same"
    assert fidelity.cache_verdict([0, 2]) == "partly"
    assert fidelity.cache_verdict([10]) == "different"


def test_cache_rows_read_the_grid_and_recipe_settings():
    rows = by_setting(fidelity.rows())
    from sbir_lib.experiments import cache_views as CV

    assert rows["frozen trunk per step (table rows, GPU grid)"].same == fidelity.cache_verdict(
        list(CV.CANDIDATES) + [CV.DEFAULT_VIEWS])
    init_rows = rows["frozen trunk per step (`@<init>` rows, experiment pretrain)"]
    assert f"`cache_views={PROFILES['full'].init_cache_views}`" in init_rows.ours
    assert rows["frozen trunk per step (table rows, full profile)"].same == (
        "same" if T.profile_config("full").cache_views == 0 else "different")


def test_dase_verdicts_follow_the_profiles(monkeypatch):
    rows = by_setting(fidelity.dase_rows())
    cfgs = fidelity.dase_configs("full")
    assert rows["optimiser"].same in ("partly", "different")
    assert rows["MEMS margin annealing"].same == (
        "same" if all(c.mems_anneal == 0.5 for c in cfgs.values()) else "partly")
    for settings in PROFILES["full"].dase_mems.values():
        monkeypatch.setitem(settings, "lr", 1e-4)
        monkeypatch.setitem(settings, "mems_anneal", 0.5)
    rows = by_setting(fidelity.dase_rows())
    assert rows["optimiser"].same == "same" and rows["MEMS margin annealing"].same == "same"


def test_mems_is_the_authors_formula():
    """The "MEMS loss: same" row: our logits and loss equal Ben-Louis/SBIR-DASE-MEMS models/losses.py:73-85
    (squared distances to the centres, the true class's times m^2, cross-entropy of their negatives)."""
    g = torch.Generator().manual_seed(0)
    f, c = torch.randn(6, 5, generator=g), torch.randn(4, 5, generator=g)
    y = torch.tensor([0, 1, 2, 3, 0, 2])
    for m in (1.0, 2.5, 4.0):
        dist = torch.cdist(f, c).pow(2)
        mask = F.one_hot(y, 4).bool()
        dist[mask] = dist[mask] * m ** 2
        theirs = F.cross_entropy(-dist, y, reduction="none").mean()
        assert torch.allclose(L.mems_logits(f, c, y, m), -dist, atol=1e-5)
        head = L.MEMSLoss(4, 5, margin=m)
        with torch.no_grad():
            head.centers.copy_(c)
        assert torch.allclose(head(f, y), theirs, atol=1e-5)
    # the annealing: the authors' margin = (m - 1) * min(step / annealing_step, 1) + 1 (losses.py:75-80)
    for step in (0, 50, 100, 150):
        assert L.mems_margin_schedule(step, 4.0, 100) == pytest.approx(3.0 * min(step / 100, 1) + 1)


# ---------------------------------------------------------------------------------- REPRODUCTION.md

def _record(results, exp, row, config, **extra):
    rec = {"experiment": exp, "dataset": "shoes", "row": row, "seed": 0, "profile": "full", "device": "cuda",
           "git_commit": "abc", "n_queries": 115, "config": config, "init": config.get("init") or "scratch",
           "iterations": config["iterations"], "wall_time_s": 1.0, "train_time_s": 1.0,
           "metrics": {"acc@1": 0.5, "acc@5": 0.6, "acc@10": 0.7}, **extra}
    R.write_record(R.record_path(results, exp, "shoes", row, 0, "full"), rec, np.eye(3))


def test_per_record_differences_show_frozen_layers_and_trunk_cache(tmp_path):
    base = dict(iterations=20000, batch_size=128, optimizer="sgd", momentum=0.9, lr=1e-3, positives="annotated",
                test_views=10, amp=True, freeze="auto")
    # from scratch (recorded field), the grid's fine-tuning through the cache, an older record without the fields
    _record(tmp_path, "table2", "full", dict(base, init=None, cache_views=0), frozen_trunk=None,
            variant_config={"attention": True, "backbone": "sketchanet"})
    _record(tmp_path, "table2", "base", dict(base, init="checkpoints/sketchanet_sketchy_mini.pt", cache_views=10),
            frozen_trunk="conv5", variant_config={"attention": False, "backbone": "sketchanet"})
    _record(tmp_path, "table1", "full", dict(base, init="checkpoints/x.pt", variant="full"))
    st = RP.setup_frame("full", tmp_path).set_index("setting")
    frozen, cache = st.loc["frozen_trunk"], st.loc["cache_views"]
    assert "nothing frozen (from scratch) (1 runs)" in frozen["ours"]
    assert f"{RP._FROZEN_AUTHORS} (2 runs)" in frozen["ours"] and frozen["same"] == "no"
    assert frozen["authors"] == RP._FROZEN_AUTHORS
    assert f"{RP._CACHE_NONE} (2 runs)" in cache["ours"] and "10: the frozen trunk" in cache["ours"]
    assert cache["same"] == "no"


def test_reproduction_prints_the_dase_table_beside_the_dssa_one(tmp_path):
    md = RP.reproduction_markdown("quick", tmp_path)
    dssa, dase = md.index("## Ours vs the authors' code"), md.index("## DASE/MEMS: ours vs the authors' code")
    assert dssa < dase < md.index("## How our recorded runs differ from the authors'")
    assert "| AlexNet SE blocks never domain-aware (authors' bug) |" in md
    assert "| frozen layers (table rows, GPU grid) |" in md
