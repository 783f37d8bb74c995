"""The profiles are one typed object each, and nothing else branches on a profile's name (issue 24)."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from sbir_lib.core import config, records as R
from sbir_lib.core.profiles import PROFILES, Profile, as_profile, get_profile
from sbir_lib.experiments import classical as C, dase_mems as DM
from sbir_lib.report import tables as TB
from sbir_lib.training import pretrain as PT, triplet as T

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_recipe_builds_a_valid_config_from_each_profile(name):
    prof = get_profile(name)
    assert isinstance(prof, Profile) and as_profile(prof) is prof and str(prof) == name
    cfg = T.profile_config(prof, variant="full")
    assert cfg.test_views == prof.test_views
    assert PT.profile_config(prof).profile == name
    for exp in DM.EXPERIMENTS:
        DM.profile_config(exp, prof, DM.EXPERIMENTS[exp][0])
    for method in C.METHODS:
        assert set(C.resolve_config(method, prof)) == {"features", "ranksvm"}
    assert set(prof.grid_cost_s) >= {"pretrain", "conv4", "conv5", "classical", "dase"}
    assert prof.settings_from in (None, *PROFILES)


def test_an_unknown_profile_is_refused_naming_the_profiles():
    with pytest.raises(ValueError, match="profile must be one of quick, cpu, full"):
        get_profile("fast")
    with pytest.raises(ValueError, match="quick"):
        config.check_profile("fast")


def test_a_new_profile_is_one_entry(monkeypatch, tmp_path):
    toy = dataclasses.replace(PROFILES["quick"], name="toy", seeds=(3, 4), test_views=2,
                              triplet={**PROFILES["quick"].triplet, "iterations": 7})
    monkeypatch.setitem(PROFILES, "toy", toy)
    assert R.record_path(tmp_path, "table1", "shoes", "base", 3, "toy").name == "seed3.toy.json"
    assert R.init_checkpoint("sketchy_mini", "toy").name == "sketchanet_sketchy_mini.toy.pt"
    cfg = T.profile_config("toy")
    assert (cfg.iterations, cfg.test_views) == (7, 2)
    assert toy.report_seeds(9) == [3, 4] and PROFILES["quick"].report_seeds(9) == [9]
    assert TB._record_re("toy").match("seed4.toy.json") and not TB._record_re("toy").match("seed4.quick.json")


def test_no_module_branches_on_a_profile_name():
    """Settings live in sbir_lib/core/profiles.py; code reads a profile's attributes, never compares its name."""
    pattern = re.compile(r"""profile\s*[!=]=\s*["'](quick|full)["']|["'](quick|full)["']\s*[!=]=\s*\S*profile""")
    offenders = []
    for path in sorted((ROOT / "sbir_lib").rglob("*.py")):
        if path.name == "profiles.py":
            continue
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{no}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_a_run_is_resolved_once_into_a_typed_spec(tmp_path, monkeypatch):
    from sbir_lib.experiments import runner as E, spec as S

    quick = get_profile("quick")
    s = S.RunSpec.resolve("table1", "shoes", "hog_bow_ranksvm", 0, "quick")
    assert (s.kind, s.init.kind, s.profile) == ("classical", "scratch", quick)
    s = S.RunSpec.resolve("table2", "shoes", "full", 1, quick)
    assert (s.kind, s.variant, s.init.config_value) == ("dssa", "full", None)
    assert s.record_path(tmp_path) == tmp_path / "table2/shoes/full/seed1.quick.json"
    assert S.RunSpec.resolve("pretrain", "shoes", "base@untrained", 0, quick).kind == "untrained"
    assert S.RunSpec.resolve("pretrain", "shoes", "base@imagenet", 0, quick).init.config_value == "imagenet"
    # an explicit --init wins over the row's, except over @untrained
    assert S.RunSpec.resolve("pretrain", "shoes", "base@imagenet", 0, quick, "w.pt").init == S.Init("file", path="w.pt", given="w.pt")
    assert S.RunSpec.resolve("pretrain", "shoes", "base@untrained", 0, quick, "w.pt").kind == "untrained"
    assert S.RunSpec.resolve("dase_qmul", "shoes", E.experiments()["dase_qmul"][0], 0, quick).kind == "dase_mems"
    # a stand-in checkpoint is found once, or refused naming the command that makes it
    monkeypatch.setattr(S, "init_checkpoint", lambda name, profile: tmp_path / f"sketchanet_{name}.pt")
    with pytest.raises(FileNotFoundError, match="pretrain run --profile quick --init-name sketchy_mini"):
        S.RunSpec.resolve("pretrain", "shoes", "base@sketchy_mini", 0, quick)
    (tmp_path / "sketchanet_sketchy_mini.pt").write_bytes(b"")
    init = S.RunSpec.resolve("pretrain", "shoes", "base@sketchy_mini", 0, quick).init
    assert (init.kind, init.name, init.config_value) == ("checkpoint", "sketchy_mini", str(tmp_path / "sketchanet_sketchy_mini.pt"))
    # every kind has its runner
    assert set(E.RUNNERS) == {"dase_mems", "classical", "untrained", "dssa"}


def test_every_grid_job_kind_is_one_entry_of_the_table():
    from sbir_lib.experiments import grid as G

    kinds = {job.kind for name in PROFILES for job in G.plan(name)}
    assert kinds == set(G.KINDS)
    for name in PROFILES:
        for job in G.plan(name)[:40]:
            assert job.label() and G.estimate_s(job, name) > 0
