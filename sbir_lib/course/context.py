"""What every notebook of the course does first, and its train-or-load cache.

Taught in: every notebook (``notebooks/00_data_and_domain_gap.ipynb`` explains it once). A notebook
starts with one cell tagged ``parameters``::

    import os
    profile = os.environ.get("SBIR_PROFILE", "quick")   # quick | full

and then ``ctx = course.setup(profile)``, which checks the profile, picks the device, seeds, and
says in one line what will happen (quick on the CPU, full on a GPU, or full without a GPU: recorded
runs only). ``ctx.dataset(name)`` loads the real QMUL data, or the synthetic stand-in with a
visible note naming the download command. ``ctx.record(experiment, dataset, variant, seed)``
returns the recorded run from ``results/`` and trains only what is missing (through
:func:`sbir_lib.experiments.runner.run_one`), so a reader without a GPU still sees every table. In the
``full`` profile without CUDA nothing is trained: a missing record comes back as ``None`` and the
notebook prints the command that produces it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from sbir_lib.core import records as R
from sbir_lib.core import config as _config
from sbir_lib.data import datasets as D
from sbir_lib.data import synthetic as S
from sbir_lib.experiments import runner as E
from sbir_lib.models import dssa as MD
from sbir_lib.report import paper as P
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


@dataclass
class Course:
    """The settings of one notebook run (see :func:`setup`)."""

    profile: str
    device: Any
    seed: int = 0
    train_missing: bool = True
    _datasets: dict = field(default_factory=dict, repr=False)
    _noted: set = field(default_factory=set, repr=False)

    @property
    def seeds(self) -> list[int]:
        """Seeds a table averages over: 3 in ``full`` (the paper's test sets are small), 1 in ``quick``."""
        return [0, 1, 2] if self.profile == "full" else [0]

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
                      f"notebook uses the **synthetic** stand-in (`{ds.source}`), not the benchmark. "
                      f"Fetch the real data with `{_config.download_command('qmul-' + name)}`.")
            self._datasets[key] = ds
        return self._datasets[key]

    def dataset_key(self, name: str) -> str:
        """The name results are recorded under: ``name`` for real data, ``synthetic`` otherwise."""

        return name if D.real_data_available(name) or name == "synthetic" else "synthetic"

    def record(self, experiment: str, dataset: str, variant: str, seed: int | None = None,
               **kw) -> dict | None:
        """The recorded run of ``variant`` (a row of ``experiment``) on ``dataset`` for ``seed``;
        trained now if missing and training is allowed here, else ``None`` (with the command)."""

        seed = self.seed if seed is None else seed
        ds_key = self.dataset_key(dataset)
        path = R.record_path(_config.results_root(), experiment, ds_key, variant, seed, self.profile)
        rec = R.load_record(path)
        if rec is not None:
            return rec
        if not self.train_missing:
            print(f"not recorded: {path.relative_to(_config.results_root())}; produce it on a GPU with\n"
                  f"  python -m sbir_lib.experiments run --experiment {experiment} --dataset {ds_key} "
                  f"--seeds {seed} --profile {self.profile}")
            return None
        ds = self.dataset(dataset, photos=False)
        return E.run_one(experiment, ds_key, variant, seed, self.profile, device=self.device,
                         dataset=ds, progress=True, **kw)

    def distances(self, experiment: str, dataset: str, variant: str, seed: int | None = None):
        """The saved float16 test distance matrix [Q, G] of a run as float32 numpy (query ``i``'s
        true match is gallery ``i``); the run is trained first when missing (see :meth:`record`).
        ``None`` when it is not recorded and cannot be trained here."""
        import numpy as np


        seed = self.seed if seed is None else seed
        if self.record(experiment, dataset, variant, seed) is None:
            return None
        path = R.record_path(_config.results_root(), experiment, self.dataset_key(dataset), variant, seed,
                             self.profile)
        return np.load(R.dist_path(path)).astype(np.float32)

    def trained(self, experiment: str, dataset: str, variant: str, seed: int = 0):
        """``(model, energy)`` of a run whose weights the runner keeps (``experiments.runner.keeps_weights``;
        conv1-5, attention and energy are trained; fc6/fc7 are not
        stored). Trains the run first when it is missing and training is allowed here; ``None`` (with
        the command that records it) otherwise."""

        ds_key = self.dataset_key(dataset)
        try:
            return E.load_trained(experiment, ds_key, variant, seed, self.profile)
        except FileNotFoundError as e:
            if self.record(experiment, dataset, variant, seed) is None:
                return None
            try:  # load_trained follows a record reused from another table's run to its weights
                return E.load_trained(experiment, ds_key, variant, seed, self.profile)
            except FileNotFoundError:
                print(e)
                return None

    def compare(self, experiment: str, dataset: str, keys=None, seeds=None):
        """Our runs of some rows of a paper table beside the published numbers (percent), as a compact
        pandas DataFrame for a lecture notebook.

        The runs are first made available through :meth:`record` (missing quick runs are trained
        here); the numbers then come from :func:`sbir_lib.report.tables.long_table` (the one place that pairs
        records with :mod:`sbir_lib.report.paper`; notebook 05 shows its full, styled tables). ``keys``: row
        keys of ``sbir_lib.report.paper.TABLE<n>`` (default: every row with a deep-model variant). Tables 1, 2
        and 5 give ``ours``/``paper`` acc@1 and acc@10 per row; Tables 3 and 4 (acc@1 only) give one
        line per (row, column), the columns being with/without attention or shortcut. ``ours`` is the
        mean over ``seeds`` (default :attr:`seeds`); ``NaN`` where nothing is recorded, and one printed
        command records what is missing. ``paper`` is ``NaN`` on the synthetic stand-in. Quick-profile
        numbers are not comparable with the paper's.
        """
        import pandas as pd


        if experiment not in P.TABLES:
            raise ValueError(f"experiment must be one of {', '.join(P.TABLES)}; got {experiment!r}")
        if dataset not in P.TABLES[experiment]:
            raise ValueError(f"dataset must be one of {', '.join(P.TABLES[experiment])}; got {dataset!r}")
        rows_map = MD.TABLE_ROWS[experiment]
        keys = list(keys) if keys is not None else [k for k in P.TABLES[experiment][dataset] if k in rows_map]
        bad = [k for k in keys if k not in rows_map]
        if bad:
            raise ValueError(f"unknown row(s) {bad} of {experiment}; allowed: {', '.join(rows_map)}")
        seeds = list(seeds or self.seeds)
        ds_key = self.dataset_key(dataset)
        two_settings = experiment in ("table3", "table4")
        variants = [v for k in keys for v in (rows_map[k] if two_settings else (rows_map[k],))]
        if self.train_missing:

            for v in variants:
                for sd in seeds:
                    if not R.record_path(_config.results_root(), experiment, ds_key, v, sd, self.profile).exists():
                        self.record(experiment, dataset, v, sd)
        lt = TB.long_table(experiment, [ds_key], self.profile, seeds=seeds)
        lt = lt[lt["row"].isin(keys) & lt["variant"].notna()]
        missing = list(dict.fromkeys(lt.loc[lt["status"] == "not run", "variant"]))
        if missing:
            print(f"{experiment}: no {self.profile}-profile record for {', '.join(missing)}; "
                  f"produce them on a GPU with\n"
                  f"  python -m sbir_lib.experiments run --experiment {experiment} --dataset {ds_key} "
                  f"--rows {' '.join(missing)} --seeds {' '.join(map(str, seeds))} --profile {self.profile}")
        out = []
        for k in keys:
            sub = lt[lt["row"] == k]
            if two_settings:
                for _, c in sub.iterrows():
                    out.append({"row": c["label"], "column": c["column"], "variant": c["variant"],
                                "ours acc@1": c["mean"], "paper acc@1": c["paper"], "seeds": int(c["n"])})
            else:
                by = sub.set_index("metric")
                out.append({"row": by["label"].iloc[0], "variant": rows_map[k],
                            "ours acc@1": by.loc["acc@1", "mean"], "paper acc@1": by.loc["acc@1", "paper"],
                            "ours acc@10": by.loc["acc@10", "mean"], "paper acc@10": by.loc["acc@10", "paper"],
                            "seeds": int(by["n"].min())})
        df = pd.DataFrame(out)
        df.attrs["note"] = (f"ours: {self.profile} profile, mean over seed(s) {', '.join(map(str, seeds))}, "
                            f"{ds_key} data; paper: Song et al. ICCV 2017 (percent)")
        return df

    def records(self, experiment: str, dataset: str, variants, seeds=None) -> dict:
        """``{variant: [record, ...]}`` over ``seeds`` (default :attr:`seeds`), missing ones left out."""
        out = {}
        for v in variants:
            recs = [self.record(experiment, dataset, v, s) for s in (seeds or self.seeds)]
            out[v] = [r for r in recs if r is not None]
        return out


def setup(profile: str | None = None, seed: int = 0, device: str | None = None) -> Course:
    """Check ``profile`` (``quick`` | ``full``; default ``$SBIR_PROFILE``), pick the device, seed
    torch/numpy, and print one line saying what this notebook run will do."""
    import torch


    profile = _config.check_profile(profile) if profile else _config.default_profile()
    dev = _config.default_device(device)
    if profile == "quick":
        # The quick profile is sized for 2 CPU cores; its numbers are not comparable with the paper's.
        torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    seed_everything(seed)
    train_missing = not (profile == "full" and dev.type != "cuda")
    what = {"quick": "quick profile: tiny training runs, minutes on a CPU; numbers show mechanisms, "
                     "not the paper's accuracy",
            "full": "full profile: the authors' recipe (20,000 iterations, 3 seeds)"}[profile]
    if not train_missing:
        what += "; no GPU here, so only recorded runs are shown"
    print(f"profile={profile}  device={dev}  ({what})")
    return Course(profile=profile, device=dev, seed=seed, train_missing=train_missing)
