"""Typed run records and the one place that knows the results layout.

Taught in: ``notebooks/05_reproducing_the_tables.ipynb`` (tables read records; ``verify`` recomputes them).

    results/<experiment>/<dataset>/<row>/seed<k><suffix>.json     (suffix: the profile's ``record_suffix``)

:class:`RecordStore` lists, reads, validates and verifies what lies there; a damaged file (not JSON, not an
object, a field missing or of the wrong type) is a :class:`RecordError` naming the file and the command that
records it again, never a traceback from deep inside a report. :func:`RecordStore.scan` reads every record and
sets the damaged ones aside, so one bad file never hides the others.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sbir_lib.core import config as _config
from sbir_lib.core.profiles import PROFILES, as_profile

__all__ = ["Record", "RecordError", "RecordStore", "REQUIRED", "parse_name", "read_record", "record_path", "upgrade"]

#: the fields every run record has, and their types
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "experiment": str, "dataset": str, "row": str, "seed": int, "profile": str, "metrics": dict}
#: ``seed<k>[.it<N>]<suffix>.json``: ``.it<N>`` marks a run stopped at iteration N (evaluated from its checkpoint)
_NAME = re.compile(r"^seed(\d+)(?:\.it(\d+))?((?:\.[A-Za-z_]\w*)?)\.json$")


def upgrade(record: dict) -> dict:
    """A record in the current layout: the row of the experiment is ``row`` (older records: ``variant``;
    a DSSA run's model variant is ``config["variant"]``)."""
    if "row" not in record and "variant" in record:
        record = {("row" if k == "variant" else k): v for k, v in record.items()}
    return record


class RecordError(ValueError):
    """A damaged record: the message names the file, what is wrong, and the fix."""

    def __init__(self, path: Path, problem: str):
        self.path, self.problem = Path(path), problem
        super().__init__(f"damaged record {path}: {problem}. Fix: {fix_command(path)}")


def record_path(results: Path, experiment: str, dataset: str, row: str, seed: int, profile) -> Path:
    """``results/<experiment>/<dataset>/<row>/seed<k><suffix>.json`` (the profile's ``record_suffix``: none for
    ``full``, ``.quick`` for quick)."""
    suffix = as_profile(profile).record_suffix
    return Path(results) / experiment / dataset / row / f"seed{seed}{suffix}.json"


def parse_name(path: Path) -> dict[str, Any] | None:
    """``experiment``, ``dataset``, ``row``, ``seed`` and ``profile`` read off a record's path (``None`` when
    the file name is not a record's)."""
    m = _NAME.match(Path(path).name)
    if not m:
        return None
    suffix = m.group(3)
    profile = next((p.name for p in PROFILES.values() if p.record_suffix == suffix), None)
    parts = Path(path).parts
    if profile is None or len(parts) < 4:
        return None
    return {"experiment": parts[-4], "dataset": parts[-3], "row": parts[-2], "seed": int(m.group(1)),
            "profile": profile}


def fix_command(path: Path) -> str:
    """What repairs a damaged record: delete it and record it again (the exact command when the path says)."""
    who = parse_name(path)
    rerun = (f"python -m sbir_lib.experiments run --experiment {who['experiment']} --dataset {who['dataset']} "
             f"--rows {who['row']} --seeds {who['seed']} --profile {who['profile']} --force"
             if who else "the command that recorded it")
    return f"delete it (git checkout -- {path} restores a committed one) or record it again with {rerun}"


@dataclass(frozen=True)
class Record:
    """One recorded run: its identity and metrics typed, every other field in :attr:`data`."""

    path: Path
    experiment: str
    dataset: str
    row: str
    seed: int
    profile: str
    metrics: dict[str, float]
    data: dict = field(repr=False)

    @property
    def partial(self) -> bool:
        """A run stopped before its iteration count (evaluated from its checkpoint)."""
        return bool(self.data.get("partial"))

    @classmethod
    def from_json(cls, path: Path, data: Any) -> "Record":
        """Validate ``data`` read from ``path``: a :class:`RecordError` names what is wrong. ``experiment``,
        ``dataset``, ``row``, ``seed`` and ``profile`` missing from the file are taken from its path (they repeat
        the layout); present, they must have their types."""
        if not isinstance(data, dict):
            raise RecordError(path, f"holds a JSON {type(data).__name__}, not an object")
        data = upgrade(data)
        # the identity fields repeat the layout: a record that lacks one is read with the one its path gives
        data = {**{k: v for k, v in (parse_name(path) or {}).items() if k not in data}, **data}
        problems = []
        for key, kind in REQUIRED.items():
            value = data.get(key)
            if key not in data:
                problems.append(f"field {key!r} is missing")
            elif not isinstance(value, kind) or isinstance(value, bool):
                problems.append(f"field {key!r} is {type(value).__name__} {value!r:.40}, not {kind.__name__}")
        if not problems:
            bad = [k for k, v in data["metrics"].items()
                   if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))]
            if bad:
                problems.append(f"metrics {', '.join(map(repr, bad))} are not numbers")
        if problems:
            raise RecordError(path, "; ".join(problems))
        return cls(Path(path), data["experiment"], data["dataset"], data["row"], data["seed"], data["profile"],
                   dict(data["metrics"]), data)


def read_record(path: Path) -> Record | None:
    """The record at ``path``; ``None`` when there is none; :class:`RecordError` when it is damaged."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise RecordError(path, f"cannot be read ({e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError(path, f"is not valid JSON ({e})") from None
    return Record.from_json(path, data)


class RecordStore:
    """The records under a results folder (``root``; default :func:`sbir_lib.core.config.results_root`)."""

    def __init__(self, root=None):
        self.root = _config.results_root(root)

    def path(self, experiment: str, dataset: str, row: str, seed: int, profile) -> Path:
        return record_path(self.root, experiment, dataset, row, seed, profile)

    def paths(self) -> list[Path]:
        """Every record file, sorted (stopped runs' ``seed<k>.it<N>[suffix].json`` included)."""
        return sorted(p for p in Path(self.root).glob("*/*/*/seed*.json") if parse_name(p) is not None)

    def rel(self, path: Path) -> str:
        return str(Path(path).relative_to(self.root))

    def scan(self) -> tuple[list[Record], list[RecordError]]:
        """Every record, and every damaged file set aside (each error names its file and fix)."""
        good, bad = [], []
        for p in self.paths():
            try:
                rec = read_record(p)
            except RecordError as e:
                bad.append(e)
                continue
            if rec is not None:
                good.append(rec)
        return good, bad
