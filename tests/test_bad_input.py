"""Bad input ends in one line naming the fix, never a traceback (issue 26 items 1 and 5)."""
from __future__ import annotations

import pytest

from sbir_lib.core.io import file_in_the_way
from sbir_lib.data import download as DL
from sbir_lib.experiments import cli


@pytest.mark.parametrize("where", ["root", "below", "dataset"])
def test_a_file_where_the_data_root_needs_a_folder_is_named(tmp_path, capsys, where):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    root = {"root": blocker, "below": blocker / "sub", "dataset": tmp_path / "r"}[where]
    if where == "dataset":
        root.mkdir()
        blocker = root / "qmul_v1"
        blocker.write_text("")
    for extra in ([], ["--verify"]):
        code = DL.main(["--dataset", "qmul-shoes", "--root", str(root), "--no-progress", *extra])
        err = capsys.readouterr().err
        assert code == 1 and "Traceback" not in err
        assert f"error: {blocker} is a file where a folder is needed" in err and "--root DIR" in err


def test_file_in_the_way(tmp_path):
    (tmp_path / "f").write_text("")
    assert file_in_the_way(tmp_path / "f" / "a" / "b.jpg") == tmp_path / "f"
    assert file_in_the_way(tmp_path / "d" / "b.jpg") is None


@pytest.mark.parametrize("argv", [["run", "--experiment", "table1", "--seeds", "-1"],
                                  ["run", "--experiment", "table1", "--seeds", "x"],
                                  ["grid", "--seeds", "0", "-3"],
                                  ["tune", "--experiment", "dase_qmul", "--seed", "-1"]])
def test_seeds_are_checked_before_anything_runs(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --seed" in err and "seeds are integers from 0" in err


def test_the_missing_data_command_repeats_the_users_root(tmp_path):
    from sbir_lib.data import datasets as D

    with pytest.raises(D.DatasetMissingError, match=f"--dataset qmul-shoes --root {tmp_path}"):
        D.load_qmul("shoes", tmp_path)
    with pytest.raises(D.DatasetMissingError, match=f"--dataset sketchy-mini --root {tmp_path}"):
        D.load_sketchy_mini(tmp_path)
