"""Typed records: validated on read, damaged files named with their fix, one bad file never hides the others
(issues 24 and 26)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sbir_lib.core import records as R
from sbir_lib.core.store import Record, RecordError, RecordStore, parse_name, read_record
from sbir_lib.experiments import cli, runner as E

ROOT = Path(__file__).resolve().parents[1]


def _good(results: Path, seed: int) -> Path:
    src = next(p for p in sorted((ROOT / "results/table1").glob("*/hog_bow_ranksvm/seed0.quick.json")))
    dst = results / "table1" / "shoes" / "hog_bow_ranksvm" / f"seed{seed}.quick.json"
    dst.parent.mkdir(parents=True, exist_ok=True)
    rec = json.loads(src.read_text())
    rec.update(dataset="shoes", seed=seed)
    dst.write_text(json.dumps(rec))
    shutil.copy(R.dist_path(src), R.dist_path(dst))
    return dst


@pytest.fixture
def store(tmp_path):
    if not (ROOT / "results/table1").is_dir():
        pytest.skip("no committed records")
    return tmp_path, _good(tmp_path, 0)


DAMAGE = {
    "not JSON": ("{oops", "is not valid JSON"),
    "a list": ("[]", "holds a JSON list, not an object"),
    "null": ("null", "holds a JSON NoneType, not an object"),
    "no metrics": (json.dumps({"experiment": "table1", "row": "x", "seed": 1, "profile": "quick"}),
                   "field 'metrics' is missing"),
    "dataset a number": (json.dumps({"dataset": 3, "metrics": {}}), "field 'dataset' is int"),
    "seed a string": (json.dumps({"experiment": "table1", "dataset": "shoes", "row": "x", "seed": "1",
                                  "profile": "quick", "metrics": {}}), "field 'seed' is str"),
    "metrics not numbers": (json.dumps({"experiment": "table1", "dataset": "shoes", "row": "x", "seed": 1,
                                        "profile": "quick", "metrics": {"acc@1": "high"}}), "are not numbers"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_record_is_named_with_its_fix_and_the_others_are_still_checked(store, case, capsys):
    results, good = store
    text, problem = DAMAGE[case]
    bad = _good(results, 1)
    bad.write_text(text)
    with pytest.raises(RecordError, match=problem) as e:
        R.load_record(bad)
    assert str(bad) in str(e.value)
    assert ("run --experiment table1 --dataset shoes --rows hog_bow_ranksvm --seeds 1 --profile quick --force"
            in str(e.value))
    out = E.verify(results, log=lambda m: None)
    assert out["ok"] == [str(good.relative_to(results))] and len(out["damaged"]) == 1
    assert cli.main(["verify", "--results", str(results)]) == cli.EXIT_DAMAGED
    capsys.readouterr()
    assert cli.main(["summary", "--results", str(results)]) == cli.EXIT_DAMAGED
    out, err = capsys.readouterr()
    assert "hog_bow_ranksvm" in out and problem.split()[0] in err and "Traceback" not in err
    # the damaged file removed, both commands are clean again
    bad.unlink()
    R.dist_path(bad).unlink()
    assert cli.main(["verify", "--results", str(results)]) == 0
    assert cli.main(["summary", "--results", str(results)]) == 0


def test_records_are_typed_and_the_layout_is_known_in_one_place(store):
    results, good = store
    recs, damaged = RecordStore(results).scan()
    assert damaged == [] and [r.path for r in recs] == [good]
    r = recs[0]
    assert isinstance(r, Record) and (r.experiment, r.dataset, r.row, r.seed, r.profile) == (
        "table1", "shoes", "hog_bow_ranksvm", 0, "quick")
    assert RecordStore(results).path("table1", "shoes", "hog_bow_ranksvm", 0, "quick") == good
    assert parse_name(results / "table2/shoes/full/seed0.it6000.json")["profile"] == "full"
    assert parse_name(results / "table2/shoes/full/notes.json") is None
    assert read_record(results / "absent/x/y/seed0.json") is None


def test_a_record_that_cannot_be_written_leaves_no_distance_file(tmp_path):
    """A record holding something JSON cannot write (a Profile object once did) fails before its distances land."""
    import numpy as np
    import pytest as _pytest

    from sbir_lib.core import records as R
    path = tmp_path / "table1" / "shoes" / "hog_bow_ranksvm" / "seed0.cpu.json"
    with _pytest.raises(TypeError):
        R.write_record(path, {"config": {"profile": object()}}, np.zeros((2, 2), np.float32))
    assert not path.exists() and not R.dist_path(path).exists()
