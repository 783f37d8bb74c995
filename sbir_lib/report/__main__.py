"""``python -m sbir_lib.report``: tables and REPRODUCTION.md from the recorded runs."""
from sbir_lib.report.tables import main

raise SystemExit(main())
