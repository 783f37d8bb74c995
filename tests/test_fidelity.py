"""Tests for sbir_lib.report.fidelity: the "ours vs the authors' code" table covers every setting and reads the code."""
from __future__ import annotations

from sbir_lib.report import fidelity
from sbir_lib.models import dssa as MD
from sbir_lib.training import triplet as T

SETTINGS = ("initialisation", "frozen layers", "dropout", "weight decay", "fine branch (CFF)", "attention init",
            "optimiser", "learning rate", "iterations", "batch", "loss and margin", "sampler", "augmentation",
            "test views", "model selection")


def test_every_setting_has_a_row_with_a_citation_and_a_verdict():
    rows = {r.setting: r for r in fidelity.rows()}
    for s in SETTINGS:
        assert s in rows, s
        assert rows[s].same in ("same", "different", "partly")
        assert ":" in rows[s].authors, f"{s}: cite file:line"
        if rows[s].same != "same":
            assert rows[s].why, f"{s}: say why we differ"


def test_ours_is_read_from_the_code():
    rows = {r.setting: r for r in fidelity.rows()}
    cfg = T.profile_config("full")
    assert f"{cfg.iterations:,}" in rows["iterations"].ours
    assert str(cfg.lr) in rows["learning rate"].ours
    assert rows["dropout"].same == ("same" if MD.get_variant("full").dropout == 0 else "different")
    df = fidelity.frame()
    assert list(df.columns)[:2] == ["setting", "authors' code"] and len(df) == len(rows)
