"""Progress bars that stay quiet when nobody is watching: the one place every bar of the package is made.

Used by the downloads (``data_download.py``), the edge-map batch (``data.edges``) and the training loops
(``training.triplet``, ``training.class_pairs``, ``training.pretrain``).

A bar is drawn when a person can see it: stderr is a terminal, or the code runs in a Jupyter notebook
(where ``tqdm.auto`` draws a widget). Into a log file, a pipe or CI output a bar would only add hundreds
of redraw lines, so there it is off. ``$SBIR_PROGRESS`` overrides the guess:

- ``SBIR_PROGRESS=1`` (or ``true``/``yes``/``on``): always draw bars, even into a file or a pipe;
- ``SBIR_PROGRESS=0`` (or ``false``/``no``/``off``): never draw bars (``course run`` sets this for the
  notebooks it executes, so the saved notebooks hold no bar redraws).

A caller's ``disable=True`` (e.g. ``progress=False``, ``--no-progress``) always wins: it is never drawn.
``disable=False`` or ``None`` mean "the caller does not object"; the rules above then decide. Bars redraw
at most every ``mininterval`` seconds (default :data:`MININTERVAL`).
"""
from __future__ import annotations

import os
import sys

ENV_VAR = "SBIR_PROGRESS"
MININTERVAL = 0.5  # seconds between redraws: enough to look alive, few lines when forced into a log
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")

__all__ = ["ENV_VAR", "MININTERVAL", "progress_bar", "progress_wanted"]


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython ``ZMQInteractiveShell``)."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    get_ipython = getattr(ipython, "get_ipython", None)  # absent while IPython is half-imported
    shell = get_ipython() if get_ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError, OSError):  # replaced or closed stream
        return False


def progress_wanted(disable: bool | None = None) -> bool:
    """Whether a bar should be drawn: the rules of this module's docstring, in that order."""
    if disable:
        return False
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    return _stderr_is_terminal() or _in_notebook()


def progress_bar(iterable=None, *, disable: bool | None = None, **kwargs):
    """A ``tqdm.auto.tqdm`` bar over ``iterable`` (or a manual one, with ``total=``), drawn only when
    :func:`progress_wanted` says so, redrawn at most every :data:`MININTERVAL` seconds by default.

    Every other keyword goes to ``tqdm`` unchanged (``total``, ``desc``, ``leave``, ``unit``...). A bar
    that is not drawn still iterates, counts and accepts ``set_postfix``/``update``/``close``.
    """
    from tqdm.auto import tqdm

    kwargs.setdefault("mininterval", MININTERVAL)
    return tqdm(iterable, disable=not progress_wanted(disable), **kwargs)
