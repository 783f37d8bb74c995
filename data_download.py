#!/usr/bin/env python
"""Download and verify the course datasets: ``python data_download.py --help``.

A thin entry point; the work is done by ``sbir_lib.data.download`` (taught in
``notebooks/00_data_and_domain_gap.ipynb``). Examples::

    python data_download.py --list
    python data_download.py --all                     # QMUL (+ sketchy-mini via a mirror)
    python data_download.py --all --mirror DIR_OR_URL  # offline: a folder or http(s):// URL
    python data_download.py --verify                  # re-hash what is present
    python data_download.py --dataset sketchy         # manual steps + structure check

Failed or interrupted (Ctrl-C) transfers keep a ``*.part`` file and resume when the same command is run
again; every error names the command that fixes it. ``--timeout S`` and ``--min-speed KIB_PER_S`` say when a
slow server counts as failed. Progress bars are drawn on a terminal only: ``SBIR_PROGRESS=1`` forces them
(into a log file, say), ``SBIR_PROGRESS=0`` hides them.
"""
from sbir_lib.data.download import main

raise SystemExit(main())
