"""Suite-wide: remember what ``git status`` says before the first test, so that the last test of the run
(``notebooks/test_zz_checkout_clean.py``, collected after the notebooks) can check that the tests and the
notebooks run under nbval left the checkout as they found it: no tracked file modified, no new file that git
does not ignore (issue 23). Figures go to the git-ignored ``runs/figures`` by default
(:func:`sbir_lib.core.config.figures_root`); records of synthetic stand-ins never land in ``results/``."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def git_status() -> set[str] | None:
    """``git status --porcelain`` lines of the checkout (untracked files listed one by one), or ``None``
    outside a git checkout."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    return set(out.stdout.splitlines()) if out.returncode == 0 else None


def pytest_sessionstart(session):
    session.config.sbir_git_status = git_status()
    session.config.sbir_git_status_now = git_status  # for the last test, without importing this conftest
