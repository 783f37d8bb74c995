"""nbval configuration for the notebook series.

Cells marked ``# NBVAL_CHECK_OUTPUT`` hold deterministic outputs of the real QMUL data (counts,
shapes, annotation statistics). Without the real data the notebooks fall back to synthetic data,
so those comparisons are switched off (the notebooks must still run without errors).
"""
import pytest

from sbir_lib.data.datasets import real_data_available

REAL = all(real_data_available(n) for n in ("shoes", "chairs", "handbags"))


def pytest_collection_modifyitems(config, items):
    if REAL:
        return
    for item in items:
        opts = getattr(item, "options", None)
        if isinstance(opts, dict) and "check" in opts:
            opts["check"] = False


def pytest_report_header(config):
    return ("notebooks: real QMUL data found, checked outputs compared" if REAL else
            "notebooks: real QMUL data absent (python data_download.py --all): synthetic fallback, "
            "output comparison off")
