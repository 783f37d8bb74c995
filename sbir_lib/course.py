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
:func:`sbir_lib.experiments.run_one`), so a reader without a GPU still sees every table. In the
``full`` profile without CUDA nothing is trained: a missing record comes back as ``None`` and the
notebook prints the command that produces it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from . import config as _config


def _note(text: str) -> None:
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

    @property
    def seeds(self) -> list[int]:
        """Seeds a table averages over: 3 in ``full`` (the paper's test sets are small), 1 in ``quick``."""
        return [0, 1, 2] if self.profile == "full" else [0]

    def dataset(self, name: str, photos: bool | str = "auto"):
        """QMUL ``shoes`` | ``chairs`` | ``handbags`` (real when downloaded, else synthetic, with a
        visible note), or ``synthetic``. Cached per notebook."""
        from . import data as D

        key = (name, photos)
        if key not in self._datasets:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = D.load_fg_dataset(name, photos=photos)
            if ds.is_synthetic and name != "synthetic":
                _note(f"**Note:** the real QMUL `{name}` data is not under `{_config.data_root()}`, so this "
                      f"notebook uses the **synthetic** stand-in (`{ds.source}`), not the benchmark. "
                      f"Fetch the real data with `{_config.download_command('qmul-' + name)}`.")
            self._datasets[key] = ds
        return self._datasets[key]

    def dataset_key(self, name: str) -> str:
        """The name results are recorded under: ``name`` for real data, ``synthetic`` otherwise."""
        from . import data as D

        return name if D.real_data_available(name) or name == "synthetic" else "synthetic"

    def record(self, experiment: str, dataset: str, variant: str, seed: int | None = None,
               **kw) -> dict | None:
        """The recorded run of ``variant`` (a row of ``experiment``) on ``dataset`` for ``seed``;
        trained now if missing and training is allowed here, else ``None`` (with the command)."""
        from . import experiments as E

        seed = self.seed if seed is None else seed
        ds_key = self.dataset_key(dataset)
        path = E.record_path(_config.results_root(), experiment, ds_key, variant, seed, self.profile)
        rec = E.load_record(path)
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

    from .train import seed_everything

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
