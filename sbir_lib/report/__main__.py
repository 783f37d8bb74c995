"""``python -m sbir_lib.report``: tables and REPRODUCTION.md from the recorded runs (:mod:`sbir_lib.report.cli`)."""
from sbir_lib.report.cli import main

raise SystemExit(main())
