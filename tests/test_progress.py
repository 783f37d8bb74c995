"""Tests for ``sbir_lib.core.progress`` (bars only where someone sees them, ``$SBIR_PROGRESS``) and the filter
that hides ipykernel's "running over TCP without encryption" warning in ``python -m sbir_lib.course run``."""
from __future__ import annotations

import io
import sys

import pytest

from sbir_lib.core import progress as P


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(P.ENV_VAR, raising=False)


def test_no_bar_when_stderr_is_not_a_terminal(capsys):
    assert not P.progress_wanted()
    bar = P.progress_bar(range(50), desc="quiet", disable=False)  # disable=False: no objection, not a demand
    assert sum(bar) == sum(range(50))
    bar.set_postfix(loss="0.1")
    bar.close()
    assert capsys.readouterr().err == ""


def test_bar_on_a_terminal_and_the_env_var_overrides(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert P.progress_wanted() and P.progress_wanted(False)
    assert not P.progress_wanted(True)  # progress=False / --no-progress always wins
    monkeypatch.setenv(P.ENV_VAR, "0")
    assert not P.progress_wanted()
    monkeypatch.setenv(P.ENV_VAR, "maybe")  # not a switch: the terminal decides
    assert P.progress_wanted()


def test_env_var_forces_bars_into_a_pipe(monkeypatch, capsys):
    monkeypatch.setenv(P.ENV_VAR, "1")
    assert P.progress_wanted() and not P.progress_wanted(True)
    bar = P.progress_bar(range(3), desc="forced", file=sys.stderr)
    assert list(bar) == [0, 1, 2]
    bar.close()
    assert "forced" in capsys.readouterr().err
    assert P.progress_bar(total=5, disable=True).disable


def test_mininterval_default_and_override(monkeypatch):
    monkeypatch.setenv(P.ENV_VAR, "1")  # a drawn bar (a disabled one keeps no settings)
    bar = P.progress_bar(total=10, file=io.StringIO())
    assert bar.mininterval == P.MININTERVAL
    bar.close()
    bar = P.progress_bar(total=10, mininterval=2.0, file=io.StringIO())
    assert bar.mininterval == 2.0
    bar.close()


def test_kernel_config_hides_only_the_tcp_warning(tmp_path, capsys):
    """The config file ``course run`` gives each kernel: applied to an app named like ipykernel's, the TCP
    warning is dropped and any other warning still shows."""
    from traitlets.config import Application
    from traitlets.config.loader import PyFileConfigLoader

    from sbir_lib.course import notebooks as NB

    (tmp_path / "kernel_config.py").write_text(NB.KERNEL_CONFIG)
    cfg = PyFileConfigLoader("kernel_config.py", path=str(tmp_path)).load_config()

    class IPKernelApp(Application):  # the config addresses the kernel app by its class name
        pass

    app = IPKernelApp(config=cfg)
    app.log.warning(NB.TCP_WARNING + ". All communication (including code and outputs) is sent in plain text")
    app.log.warning("Some other kernel warning")
    err = capsys.readouterr().err
    assert NB.TCP_WARNING not in err
    assert "Some other kernel warning" in err
