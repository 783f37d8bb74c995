"""Paths, profiles and devices shared by every module and notebook.

Taught in: ``notebooks/00_data_and_domain_gap.ipynb`` (the profile cell every notebook starts with).

- The data root is ``--root`` / the ``root=`` argument, else ``$SBIR_DATA_ROOT``, else ``<repo>/data``
  (the checkout that contains this package) or ``./data`` when installed elsewhere.
- The profile is ``quick`` (2 CPU cores, minutes) or ``full`` (the real reproduction, on a GPU);
  the default comes from ``$SBIR_PROFILE``.
"""
from __future__ import annotations

import os
from pathlib import Path

from sbir_lib.core.profiles import DEFAULT_PROFILE, PROFILE_NAMES, get_profile  # noqa: F401  (re-exported)

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # sbir_lib/


def repo_root() -> Path | None:
    """The source checkout holding this package (editable install), or None."""
    cand = PACKAGE_DIR.parent
    if (cand / "pyproject.toml").exists() and (cand / "notebooks").is_dir():
        return cand
    return None


def _base() -> Path:
    return repo_root() or Path.cwd()


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where datasets live: explicit ``root``, else ``$SBIR_DATA_ROOT``, else ``<repo>/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("SBIR_DATA_ROOT")
    if env:
        return Path(env).expanduser()
    return _base() / "data"


def results_root(root: str | os.PathLike | None = None) -> Path:
    """Recorded runs: explicit, else ``$SBIR_RESULTS_ROOT``, else ``<repo>/results``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("SBIR_RESULTS_ROOT")
    return Path(env).expanduser() if env else _base() / "results"


def user_results_root() -> Path:
    """Where a notebook records the runs it trains itself: ``$SBIR_USER_RESULTS``, else ``$SBIR_RESULTS_ROOT`` when set
    (one folder for everything), else the git-ignored ``<repo>/user_results``. Notebooks read the committed records
    first, then these (:class:`sbir_lib.course.context.Course`); a notebook never writes into the committed
    ``results/`` unless the series is re-recorded on purpose (``course run --inplace``, :data:`RECORD_INTO_RESULTS`)."""
    env = os.environ.get("SBIR_USER_RESULTS")
    if env:
        return Path(env).expanduser()
    env = os.environ.get("SBIR_RESULTS_ROOT")
    return Path(env).expanduser() if env else _base() / "user_results"


#: set to 1 by ``python -m sbir_lib.course run --inplace``: the notebooks' new runs are recorded into the results
#: folder itself (the committed records), not the user's folder
RECORD_INTO_RESULTS = "SBIR_RECORD_INTO_RESULTS"
#: set to 1 to train nothing in a notebook (recorded runs are shown, with the commands that record the rest)
NO_TRAIN = "SBIR_NO_TRAIN"


def runs_root(results: str | os.PathLike | None = None, root: str | os.PathLike | None = None) -> Path:
    """Training checkpoints of runs in progress: explicit ``root``, else ``$SBIR_RUNS_ROOT``, else a
    ``runs/<name of the results folder>`` folder beside the results folder (``<repo>/runs/results`` for
    the default ``<repo>/results``). The runner deletes a run's checkpoint once its record is written."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("SBIR_RUNS_ROOT")
    if env:
        return Path(env).expanduser()
    res = results_root(results).resolve()
    return res.parent / "runs" / res.name


def committed_results() -> Path:
    """``<repo>/results``: the committed records (whatever ``$SBIR_RESULTS_ROOT`` says)."""
    return _base() / "results"


def committed_figures() -> Path:
    """``<repo>/figures``: the committed figures, written only when asked to (``course run --inplace``,
    ``--figures-root figures``)."""
    return _base() / "figures"


def figures_root(root: str | os.PathLike | None = None) -> Path:
    """Saved figures: explicit, else ``$SBIR_FIGURES_ROOT``, else the git-ignored ``<repo>/runs/figures``.

    A notebook opened in JupyterLab, a test or a papermill run never rewrites the committed ``figures/``
    (:func:`committed_figures`): only ``python -m sbir_lib.course run --inplace`` points here at them."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("SBIR_FIGURES_ROOT")
    return Path(env).expanduser() if env else _base() / "runs" / "figures"


def check_profile(profile) -> str:
    """The name of ``profile`` (a name or a :class:`~sbir_lib.core.profiles.Profile`), refused when unknown."""
    return get_profile(str(profile)).name


def default_profile() -> str:
    """``$SBIR_PROFILE``, default :data:`~sbir_lib.core.profiles.DEFAULT_PROFILE`; a bad value is refused naming
    the variable. Read by the entry points only (the CLIs, a notebook's ``parameters``)."""
    value = os.environ.get("SBIR_PROFILE", DEFAULT_PROFILE).strip() or DEFAULT_PROFILE
    if value not in PROFILE_NAMES:
        raise ValueError(f"SBIR_PROFILE={value!r} is not a profile: set it to one of {', '.join(PROFILE_NAMES)} "
                         f"(or unset it for {DEFAULT_PROFILE})")
    return value


def default_device(device: str | None = None):
    """``cuda`` when available (or the given device), else ``cpu``."""
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def download_command(dataset: str, root: str | os.PathLike | None = None) -> str:
    """The command a user runs to fetch a dataset (used in error messages); ``root``: the data root the user
    chose (``--root``), repeated so the data lands where it is looked for."""
    where = f" --root {root}" if root is not None else ""
    return f"python data_download.py --dataset {dataset}{where}   (add --mirror DIR_OR_URL offline)"
