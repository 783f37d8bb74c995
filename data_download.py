#!/usr/bin/env python
"""Download and verify the course datasets: ``python data_download.py --help``.

A thin entry point; the work is done by ``sbir_lib.data.download`` (taught in
``notebooks/00_data_and_domain_gap.ipynb``). Examples::

    python data_download.py --list
    python data_download.py --all                     # QMUL (+ sketchy-mini via a mirror)
    python data_download.py --all --mirror DIR_OR_URL  # offline: a folder or http(s):// URL
    python data_download.py --verify                  # re-hash what is present
    python data_download.py --dataset sketchy         # manual steps + structure check
"""
from sbir_lib.data.download import main

raise SystemExit(main())
