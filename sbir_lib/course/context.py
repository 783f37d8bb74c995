"""What every notebook of the course does first, and its train-or-load cache.

Taught in: every notebook (``notebooks/00_data_and_domain_gap.ipynb`` explains it once). A notebook
starts with one cell tagged ``parameters`` (papermill overrides it: ``-p profile full -p dataset chairs``)::

    profile = None   # quick | cpu | full    (None: $SBIR_PROFILE, else quick)
    dataset = None   # shoes | chairs | handbags   (None: $SBIR_DATASET, else shoes)
    seed = None      # the seed of the runs shown   (None: $SBIR_SEED, else 0)
    seeds = None     # the seeds a table averages   (None: $SBIR_SEEDS, else 0 1 2 in full, the seed in quick)

(``dataset``/``seed``/``seeds`` only where the notebook uses them) and then ``ctx = course.setup(profile,
dataset=dataset, seed=seed, seeds=seeds)``, which checks every value first (``"Full "`` is read as ``full``;
anything else is refused naming the allowed values and where the value came from), picks the device, seeds,
and says in one line what will happen (quick on the CPU, full on a GPU, or full without a GPU: recorded runs
only). ``ctx.dataset(name)`` loads the real QMUL data, or the synthetic stand-in with a visible note naming the
download command. ``ctx.record(experiment, dataset, variant, seed)`` returns the recorded run from ``results/``
and trains only what is missing (through :func:`sbir_lib.experiments.runner.run_one`), so a reader without a GPU
still sees every table. In the ``full`` profile without CUDA nothing is trained: a missing record comes back as
the run stopped early when one is recorded (``partial``, said so), else ``None``, and the notebook prints the
command that records exactly the missing rows. Full-profile runs are never trained, nor suggested, on the
synthetic stand-in: their commands name the real data and its download.
"""
from __future__ import annotations

import numbers
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sbir_lib.core import records as R
from sbir_lib.core import config as _config
from sbir_lib.core.profiles import DEFAULT_PROFILE, PROFILE_NAMES, as_profile
from sbir_lib.data import datasets as D
from sbir_lib.data import synthetic as S
from sbir_lib.experiments import runner as E
from sbir_lib.core import tablespec as TS
from sbir_lib.data.pack import PACK_ENV
from sbir_lib.report import tables as TB
from sbir_lib.training.triplet import seed_everything


def note(text: str) -> None:
    """Show ``text`` as Markdown in a notebook (plain print elsewhere)."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(text))
            return
    except ImportError:  # pragma: no cover - IPython ships with the [notebooks] extra
        pass
    print(text)


def show_source(obj, start: str | None = None, end: str | None = None) -> None:
    """Print the source of ``obj`` (a function, method or class) as the library runs it, headed by its file and
    line numbers: all of it, or the lines from the first one containing ``start`` through the first one from
    there containing ``end``: the few lines that carry a notebook's idea (a ``ValueError`` when a marker is
    not found, so a notebook never shows stale lines)."""
    import inspect
    import textwrap
    from pathlib import Path

    obj = inspect.unwrap(obj)  # a decorated function (``@torch.no_grad()``): its own source
    lines, first = inspect.getsourcelines(obj)
    i = 0
    if start is not None:
        i = next((k for k, x in enumerate(lines) if start in x), None)
        if i is None:
            raise ValueError(f"no line of {obj.__qualname__} contains {start!r}")
    j = len(lines) - 1
    if end is not None:
        j = next((k for k in range(i, len(lines)) if end in lines[k]), None)
        if j is None:
            raise ValueError(f"no line of {obj.__qualname__} from {start!r} on contains {end!r}")
    path = Path(inspect.getsourcefile(obj)).resolve()
    root = _config.repo_root()
    shown = path.relative_to(root) if root and path.is_relative_to(root) else path.name
    print(f"# {shown}, lines {first + i}-{first + j}")
    print(textwrap.dedent("".join(lines[i:j + 1])), end="")


#: the environment variable behind each notebook parameter (read when the parameter is ``None``)
ENV_VARS = {"profile": "SBIR_PROFILE", "dataset": "SBIR_DATASET", "seed": "SBIR_SEED", "seeds": "SBIR_SEEDS"}
#: ``dataset = "all"``: every QMUL dataset (notebook 06, whose figures show all three, as the paper's do)
ALL = "all"
_UNSET: Any = object()  # setup(): the notebook has no such parameter


def _given(name: str, value) -> tuple[Any, str]:
    """``(value, where it came from)`` of the notebook parameter ``name``: the value when given, else its
    environment variable (:data:`ENV_VARS`) when set, else ``(None, "the default")``."""
    if value is not None:
        return value, f"the notebook parameter `{name}`"
    env = os.environ.get(ENV_VARS[name], "")
    if env.strip():
        return env, f"${ENV_VARS[name]}"
    return None, "the default"


def check_choice(name: str, value, allowed, where: str = "the notebook parameter") -> str:
    """``value`` stripped and lower-cased when it is one of ``allowed`` (``" Full"`` -> ``full``); else a
    ``ValueError`` naming the allowed values and ``where`` the value came from."""
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in tuple(allowed):
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r} (from {where})")
    return text


def check_seed(value, where: str = "the notebook parameter `seed`", name: str = "seed") -> int:
    """A seed: a non-negative integer (``3``, ``"3"``, ``3.0``); else a ``ValueError`` saying where it came from."""
    v = None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        v = int(value)
    elif isinstance(value, float) and value.is_integer():
        v = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        v = int(value.strip())
    if v is None or v < 0:
        raise ValueError(f"{name} must be a non-negative integer, e.g. 0; got {value!r} (from {where})")
    return v


def check_seeds(value, where: str = "the notebook parameter `seeds`") -> list[int]:
    """Seeds: a list of non-negative integers, one integer, or a string ``"0 1 2"`` / ``"0,1,2"`` /
    ``"[0, 1, 2]"``; duplicates dropped, order kept. Else a ``ValueError`` saying where it came from."""
    items = value
    if isinstance(value, str):
        items = [t for t in re.split(r"[\s,\[\]()]+", value) if t]
    elif isinstance(value, (numbers.Integral, float)) and not isinstance(value, bool):
        items = [value]
    try:
        out = [check_seed(v, where) for v in items]
    except (TypeError, ValueError):
        out = []
    if not out:
        raise ValueError(f"seeds must be one or more non-negative integers, e.g. [0, 1, 2] or '0 1 2'; got "
                         f"{value!r} (from {where})")
    return list(dict.fromkeys(out))


@dataclass
class Course:
    """The settings of one notebook run (see :func:`setup`)."""

    profile: str
    device: Any
    seed: int = 0
    train_missing: bool = True
    dataset_name: str = "shoes"  # the QMUL dataset a lecture notebook shows (``all``: every one, notebook 06)
    explicit_seeds: list[int] | None = None  # the ``seeds`` parameter, when given
    sketchy_pack: str | None = None  # a Sketchy-mini pack to read instead of the folders ($SBIR_SKETCHY_PACK)
    #: where records are read, in order: the committed records, then the user's own runs (default, from the
    #: environment: ``results_root()``, ``user_results_root()``); ``write_root``: where this notebook records what it
    #: trains (the user's folder, or the results folder itself under ``course run --inplace``)
    read_roots: tuple = ()
    write_root: Any = None
    _datasets: dict = field(default_factory=dict, repr=False)
    _noted: set = field(default_factory=set, repr=False)

    def __post_init__(self):
        committed, user = _config.results_root(), _config.user_results_root()
        if self.write_root is None:
            self.write_root = committed if os.environ.get(_config.RECORD_INTO_RESULTS) == "1" else user
        if not self.read_roots:
            self.read_roots = tuple(dict.fromkeys(Path(p) for p in (committed, user)))
        self.write_root = Path(self.write_root)

    @property
    def user_runs(self) -> bool:
        """Whether what this notebook trains goes to the user's folder (not into the results folder it reads)."""
        return self.write_root.resolve() != _config.results_root().resolve()

    @property
    def seeds(self) -> list[int]:
        """Seeds a table averages over: the ``seeds`` parameter when given, else the profile's (3 in ``full``: the
        paper's test sets are small; :attr:`seed` in ``quick``)."""
        if self.explicit_seeds:
            return list(self.explicit_seeds)
        return as_profile(self.profile).report_seeds(self.seed)

    @property
    def datasets(self) -> tuple[str, ...]:
        """The QMUL datasets this notebook shows: :attr:`dataset_name`, or all three for ``all``."""
        return tuple(D.QMUL_NAMES) if self.dataset_name == ALL else (self.dataset_name,)

    def dataset(self, name: str, photos: bool | str = "auto"):
        """QMUL ``shoes`` | ``chairs`` | ``handbags`` (real when downloaded, else synthetic, with a
        visible note), or ``synthetic``. Cached per notebook."""

        key = (name, photos)
        if key not in self._datasets:
            import logging
            import warnings

            log = logging.getLogger(S.__name__)
            level = log.level
            log.setLevel(logging.ERROR)  # the fallback is announced once, by the note below
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = S.load_fg_dataset(name, photos=photos)
            finally:
                log.setLevel(level)
            if ds.is_synthetic and name != "synthetic" and name not in self._noted:
                self._noted.add(name)
                note(f"**Note:** the real QMUL `{name}` data is not under `{_config.data_root()}`, so this "
                      f"notebook uses the **synthetic** stand-in (`{ds.source}`), not the benchmark: its tables "
                      f"and figures say *synthetic* and have no paper numbers beside them. "
                      f"Fetch the real data with `{_config.download_command('qmul-' + name)}`.")
            self._datasets[key] = ds
        return self._datasets[key]

    def dataset_key(self, name: str) -> str:
        """The name results are recorded under: ``name`` for real data, ``synthetic`` otherwise."""

        return name if D.real_data_available(name) or name == "synthetic" else "synthetic"

    def may_train(self, ds_key: str) -> bool:
        """Whether a missing run on the records' dataset ``ds_key`` is trained here: not in ``full`` without a
        GPU, and never on the synthetic stand-in in a profile that records the real benchmarks only."""
        return self.train_missing and not (as_profile(self.profile).real_data_only and ds_key == "synthetic")

    def record_command(self, experiment: str, dataset: str, rows, seeds) -> str:
        """How to record ``rows`` x ``seeds`` of ``experiment`` on ``dataset``: the command naming exactly
        those rows (:func:`sbir_lib.experiments.runner.run_command`). Without the real data a full-profile
        run is not suggested on the synthetic stand-in: the download comes first, then the real dataset."""
        rows = [rows] if isinstance(rows, str) else list(rows)
        seeds = [seeds] if isinstance(seeds, int) else list(seeds)
        them = "it" if len(rows) * len(seeds) == 1 else "them"
        ds_key = self.dataset_key(dataset)
        prof = as_profile(self.profile)
        if ds_key == "synthetic" and dataset in D.QMUL_NAMES and prof.real_data_only:
            return (f"{self.profile}-profile runs are recorded on the real data only, which is not under "
                    f"{_config.data_root()}: fetch it with {_config.download_command('qmul-' + dataset)}, then "
                    f"record {them}{prof.where} with\n  "
                    + E.run_command(experiment, dataset, rows, seeds, self.profile))
        return f"record {them}{prof.where} with\n  " + E.run_command(experiment, ds_key, rows, seeds, self.profile)

    def _path(self, experiment: str, ds_key: str, variant: str, seed: int):
        """The record of a run in the first of :attr:`read_roots` that has it, else where it would be written."""
        for root in self.read_roots:
            p = R.record_path(root, experiment, ds_key, variant, seed, self.profile)
            if p.exists():
                return p
        return R.record_path(self.write_root, experiment, ds_key, variant, seed, self.profile)

    def _rel(self, path) -> str:
        """``path`` relative to the results folder holding it (the user's folder named as such)."""
        path = Path(path)
        for root in (*self.read_roots, self.write_root):
            try:
                rel = str(path.relative_to(root))
            except ValueError:
                continue
            return rel if root == self.read_roots[0] else f"{rel} (in {root})"
        return str(path)

    def estimate_s(self, ds_key: str, variant: str) -> tuple[float | None, int]:
        """``(seconds, n)``: the median recorded wall time of ``variant`` runs of this profile on ``ds_key`` (any
        table, any seed; any dataset when none is on it), from ``n`` records; ``(None, 0)`` when nothing is recorded."""
        import statistics

        suffix = as_profile(self.profile).record_suffix
        for ds in (ds_key, "*"):
            # the profile field, not just the file name: a full-profile record's suffix ("") matches every profile's
            times = [float(rec["wall_time_s"]) for root in self.read_roots
                     for p in Path(root).glob(f"*/{ds}/{variant}/seed*{suffix}.json")
                     if (rec := R.load_record(p)) and rec.get("profile") == self.profile and rec.get("wall_time_s")
                     and not rec.get("partial")]
            if times:
                return statistics.median(times), len(times)
        return None, 0

    def announce(self, experiment: str, ds_key: str, runs: list[tuple[str, int]]) -> None:
        """Say, before training, what will train (``runs``: ``(variant, seed)``), how long the recorded runs of this
        profile took, where the records go, and how to train less."""
        if not runs:
            return
        by_variant = {v: self.estimate_s(ds_key, v)[0] for v in dict.fromkeys(v for v, _ in runs)}  # each read once
        known = [by_variant[v] for v, _ in runs if by_variant[v] is not None]
        total = (f"about {_duration(sum(known) * len(runs) / len(known))} in all (median recorded times of "
                 f"{self.profile}-profile runs)") if known else "no recorded time to estimate from"
        what = ", ".join(f"{v} seed {sd}" for v, sd in runs)
        print(f"training {len(runs)} run{'s' if len(runs) > 1 else ''} not recorded ({what}) on {ds_key}: {total}. "
              f"Records go to {self.write_root}" + (" (your own runs; the committed results/ are not touched)"
                                                     if self.user_runs else "")
              + f". To train less: the recorded seed ({', '.join(map(str, as_profile(self.profile).seeds or (0,)))}), "
              f"or set {_config.NO_TRAIN}=1 to show only what is recorded.")

    def _partial(self, path) -> tuple[Any, dict] | None:
        """``(path, record)`` of the run stopped early (``seed<k>.it<N>.json``, ``"partial": true``) that got
        furthest, beside the missing record ``path``; ``None`` when there is none."""
        best = None
        stem = path.name[: -len(".json")]
        for p in sorted(path.parent.glob(f"{stem}.it*.json")) if path.parent.is_dir() else ():
            rec = R.load_record(p)
            if rec and rec.get("partial") and rec.get("profile") == self.profile:
                if best is None or (rec.get("iterations") or 0) > (best[1].get("iterations") or 0):
                    best = (p, rec)
        return best

    def _shown(self, experiment: str, ds_key: str, variant: str, seed: int, partial: bool):
        """``(path, record)`` this notebook shows for a run: the complete record, else (with ``partial``, where
        nothing is trained) the run stopped early, else ``(path of the missing record, None)``."""
        path = self._path(experiment, ds_key, variant, seed)
        rec = R.load_record(path)
        if rec is None and partial and not self.may_train(ds_key):
            return self._partial(path) or (path, None)
        return path, rec

    @staticmethod
    def _stopped(rec: dict) -> str:
        total = (rec.get("config") or {}).get("iterations", "?")
        return f"stopped at iteration {rec.get('iterations')} of {total}"

    def record(self, experiment: str, dataset: str, variant: str, seed: int | None = None,
               partial: bool = False, announce: bool = True, **kw) -> dict | None:
        """The recorded run of ``variant`` (a row of ``experiment``) on ``dataset`` for ``seed``;
        trained now if missing and training is allowed here (:meth:`may_train`). Otherwise ``None``, or with
        ``partial`` the run stopped early when one is recorded (its record says ``"partial": true``, and a
        printed line says so: never average it with complete runs); either way the command that records
        the complete run is printed. ``announce``: say what will train, and its estimate, before training (the
        caller passes False when it already announced every run it trains, :meth:`compare`)."""

        seed = self.seed if seed is None else seed
        ds_key = self.dataset_key(dataset)
        path = self._path(experiment, ds_key, variant, seed)
        rec = R.load_record(path)
        if rec is not None:
            return rec
        if not self.may_train(ds_key):
            part = self._partial(path) if partial else None
            how = self.record_command(experiment, dataset, [variant], [seed])
            if part is not None:
                p, prec = part
                print(f"not recorded: {self._rel(path)}; shown instead: the run {self._stopped(prec)} "
                      f"({self._rel(p)}, {prec.get('device')}), not the recipe's result. The complete "
                      f"run: {how}")
                return prec
            print(f"not recorded: {self._rel(path)}; {how}")
            return None
        if announce:  # compare() announces every run it trains at once, before the first
            self.announce(experiment, ds_key, [(variant, seed)])
        ds = self.dataset(dataset, photos=False)
        return E.run_one(experiment, ds_key, variant, seed, self.profile, device=self.device,
                         dataset=ds, progress=True, results=self.write_root, user=self.user_runs, **kw)

    def distances(self, experiment: str, dataset: str, variant: str, seed: int | None = None,
                  partial: bool = False):
        """The saved test distance matrix [Q, G] of a run as float32 numpy (query ``i``'s true match is
        gallery ``i``); the run is trained first when missing (see :meth:`record`; with ``partial`` a run
        stopped early gives its own distances). ``None`` when it is not recorded and cannot be trained here."""
        import numpy as np

        seed = self.seed if seed is None else seed
        if self.record(experiment, dataset, variant, seed, partial=partial) is None:
            return None
        path, _ = self._shown(experiment, self.dataset_key(dataset), variant, seed, partial)
        return np.load(R.dist_path(path)).astype(np.float32)

    def trained(self, experiment: str, dataset: str, variant: str, seed: int | None = None):
        """``(model, energy)`` of a run whose weights the runner keeps (``experiments.runner.keeps_weights``;
        conv1-5, attention and energy are trained; fc6/fc7 are not stored). Trains the run first when it is
        missing and training is allowed here; ``None`` (with the reason, and the command that records it
        where one does) otherwise."""

        seed = self.seed if seed is None else seed
        ds_key = self.dataset_key(dataset)

        def load():
            err = None
            for root in self.read_roots:  # load_trained follows a record reused from another table's run
                try:
                    return E.load_trained(experiment, ds_key, variant, seed, self.profile, results=root), None
                except FileNotFoundError as e:
                    err = err or e
            return None, err

        got, _ = load()
        if got is not None:
            return got
        if self.record(experiment, dataset, variant, seed) is None:
            return None
        got, err = load()
        if got is None:
            print(err)
        return got

    def compare(self, experiment: str, dataset: str, keys=None, seeds=None):
        """Our runs of some rows of a paper table beside the published numbers (percent), as a compact
        pandas DataFrame for a lecture notebook.

        The runs are first made available through :meth:`record` (missing quick runs are trained
        here); the numbers then come from :func:`sbir_lib.report.tables.long_table` (the one place that pairs
        records with the table registry :mod:`sbir_lib.core.tablespec`; notebook 05 shows its full, styled tables). ``keys``: row
        keys of the table's :class:`~sbir_lib.core.tablespec.TableSpec` (default: every row with a deep-model variant). Tables 1, 2
        and 5 give ``ours``/``paper`` acc@1 and acc@10 per row; Tables 3 and 4 (acc@1 only) give one
        line per (row, column), the columns being with/without attention or shortcut. ``ours`` is the
        mean over ``seeds`` (default :attr:`seeds`); ``NaN`` where nothing is recorded, and one printed
        command per set of seeds records exactly the missing rows; runs stopped early are listed under the
        table, not in it. On the synthetic stand-in there are no ``paper`` columns (the paper has no number
        for it, and synthetic runs are never set beside the paper's). Quick-profile numbers are not
        comparable with the paper's.
        """
        import pandas as pd

        spec = TS.get(experiment)
        if dataset not in spec.datasets():
            raise ValueError(f"dataset must be one of {', '.join(spec.datasets())}; got {dataset!r}")
        deep = [r.key for r in spec.rows if r.kind == "dssa"]
        keys = list(keys) if keys is not None else deep
        bad = [k for k in keys if k not in deep]
        if bad:
            raise ValueError(f"unknown row(s) {bad} of {experiment}; allowed: {', '.join(deep)}")
        seeds = list(seeds or self.seeds)
        ds_key = self.dataset_key(dataset)
        synthetic = ds_key == "synthetic"
        two_settings = spec.layout == "settings"
        variants = list(dict.fromkeys(v for k in keys for v in spec.row(k).networks))
        if self.may_train(ds_key):
            todo = [(v, sd) for v in variants for sd in seeds if not self._path(experiment, ds_key, v, sd).exists()]
            self.announce(experiment, ds_key, todo)
            for v, sd in todo:
                self.record(experiment, dataset, v, sd, announce=False)
        missing: dict[tuple, list] = {}  # missing seeds -> the variants missing exactly those
        stopped = []
        for v in variants:
            gone = tuple(sd for sd in seeds if not self._path(experiment, ds_key, v, sd).exists())
            if gone:
                missing.setdefault(gone, []).append(v)
                if not self.may_train(ds_key):
                    stopped += [(v, sd, part[1]) for sd in gone
                                if (part := self._partial(self._path(experiment, ds_key, v, sd)))]
        for gone, vs in missing.items():
            print(f"{experiment}: no {self.profile}-profile record for {', '.join(vs)}"
                  + (f" (seed {', '.join(map(str, gone))})" if len(seeds) > 1 else "") + "; "
                  + self.record_command(experiment, dataset, vs, list(gone)))
        for v, sd, rec in stopped:
            m = rec["metrics"]
            print(f"  not in the table: {v} seed {sd}, a run {self._stopped(rec)} ({rec.get('device')}): "
                  f"acc@1 {100 * m['acc@1']:.2f}, acc@10 {100 * m['acc@10']:.2f}")
        lt = TB.long_table(experiment, [ds_key], self.profile, results=list(self.read_roots), seeds=seeds)
        lt = lt[lt["row"].isin(keys) & lt["variant"].notna()]
        out = []
        for k in keys:
            sub = lt[lt["row"] == k]
            if two_settings:
                for _, c in sub.iterrows():
                    out.append({"row": c["label"], "column": c["column"], "variant": c["variant"],
                                "ours acc@1": c["mean"], "paper acc@1": c["paper"], "seeds": int(c["n"])})
            else:
                by = sub.set_index("metric")
                out.append({"row": by["label"].iloc[0], "variant": spec.network(k),
                            "ours acc@1": by.loc["acc@1", "mean"], "paper acc@1": by.loc["acc@1", "paper"],
                            "ours acc@10": by.loc["acc@10", "mean"], "paper acc@10": by.loc["acc@10", "paper"],
                            "seeds": int(by["n"].min())})
        df = pd.DataFrame(out)
        if synthetic:
            df = df.drop(columns=[c for c in df.columns if c.startswith("paper")])
            df.attrs["note"] = (f"ours: {self.profile} profile, mean over seed(s) {', '.join(map(str, seeds))}, "
                                f"synthetic stand-in data (not the benchmark: no paper numbers beside it)")
        else:
            df.attrs["note"] = (f"ours: {self.profile} profile, mean over seed(s) {', '.join(map(str, seeds))}, "
                                f"{ds_key} data; paper: Song et al. ICCV 2017 (percent)")
        return df

    def verdicts(self, experiment: str, dataset: str) -> str:
        """The paper's ablation claims of ``experiment`` on ``dataset``, each with what the records say
        (:func:`sbir_lib.report.claims.claim_sentences`): for this notebook's runs, then for every other profile
        with at least two seeds of the table recorded (where a verdict over seeds exists). Generated from the
        numbers, so the prose can never contradict them (taught in notebooks 02-04; notebook 05 has the tables)."""
        from sbir_lib.report import claims as C

        ds_key = self.dataset_key(dataset)
        out = [f"{self.profile} profile, seed(s) {', '.join(map(str, self.seeds))} (this notebook's runs):"]
        out += ["  " + s for s in C.claim_sentences(experiment, ds_key, self.profile, list(self.read_roots), self.seeds)]
        for prof in PROFILE_NAMES:
            found = [] if prof == str(self.profile) else C.claim_sentences(experiment, ds_key, prof, min_seeds=2)
            if found:
                out += [f"{prof} profile (every recorded seed):"] + ["  " + s for s in found]
        return "\n".join(out)

    def records(self, experiment: str, dataset: str, variants, seeds=None) -> dict:
        """``{variant: [record, ...]}`` over ``seeds`` (default :attr:`seeds`), missing ones left out."""
        out = {}
        for v in variants:
            recs = [self.record(experiment, dataset, v, s) for s in (seeds or self.seeds)]
            out[v] = [r for r in recs if r is not None]
        return out


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min"


def setup(profile: str | None = None, dataset=_UNSET, seed=_UNSET, seeds=_UNSET, device: str | None = None,
          all_datasets: bool = False) -> Course:
    """Check the notebook's parameters, pick the device, seed torch/numpy, and print one line saying what
    this notebook run will do.

    ``profile``: ``quick`` | ``full``. ``dataset`` (lecture notebooks): ``shoes`` | ``chairs`` | ``handbags``
    (and ``all`` where ``all_datasets``, its default then). ``seed``: the seed of the runs shown (default 0);
    ``seeds``: those a table averages over (default: 3 in ``full``, ``seed`` in ``quick``). A value of
    ``None`` reads the environment variable (``$SBIR_PROFILE``, ``$SBIR_DATASET``, ``$SBIR_SEED``,
    ``$SBIR_SEEDS``), else the default; a parameter the notebook does not pass is not one of its
    parameters (its default is used, the variable is not read). Strings are stripped and lower-cased
    (``"Full "`` is ``full``); any other value is refused with a ``ValueError`` naming the allowed values
    and where the value came from, before anything runs."""
    import torch

    value, where = _given("profile", profile)
    profile = check_choice("profile", DEFAULT_PROFILE if value is None else value, PROFILE_NAMES, where)
    shown: dict[str, Any] = {}
    name = "shoes"
    if dataset is not _UNSET:
        value, where = _given("dataset", dataset)
        default = ALL if all_datasets else "shoes"
        allowed = tuple(D.QMUL_NAMES) + ((ALL,) if all_datasets else ())
        name = shown["dataset"] = check_choice("dataset", default if value is None else value, allowed, where)
    sd = 0
    if seed is not _UNSET:
        value, where = _given("seed", seed)
        sd = shown["seed"] = 0 if value is None else check_seed(value, where)
    explicit = None
    if seeds is not _UNSET:
        value, where = _given("seeds", seeds)
        explicit = None if value is None else check_seeds(value, where)
    dev = _config.default_device(device)
    prof = as_profile(profile)
    if prof.device == "cpu":  # a CPU profile is sized for the cores this machine has
        torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    seed_everything(sd)
    train_missing = prof.on_device(dev.type) and os.environ.get(_config.NO_TRAIN, "") not in ("1", "true", "yes")
    ctx = Course(profile=profile, device=dev, seed=sd, train_missing=train_missing, dataset_name=name,
                 sketchy_pack=os.environ.get(PACK_ENV) or None,
                 explicit_seeds=explicit)
    if seeds is not _UNSET:
        shown["seeds"] = ",".join(map(str, ctx.seeds))
    n = len(ctx.seeds)
    what = f"{prof.name} profile: {prof.summary}" + (
        f", {n} seed{'s' if n > 1 else ''}" if prof.seeds is not None else "")
    if not train_missing:
        why = (f"{_config.NO_TRAIN} is set" if prof.on_device(dev.type) else "no GPU here")
        what += (f"; {why}, so nothing is trained: recorded runs are shown (runs stopped early too, "
                 "marked so) with the commands that record the rest")
    print(f"profile={profile}  " + "".join(f"{k}={v}  " for k, v in shown.items()) + f"device={dev}  ({what})")
    return ctx
