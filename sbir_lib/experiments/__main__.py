"""``python -m sbir_lib.experiments``: see :mod:`sbir_lib.experiments.cli`."""
from sbir_lib.experiments.cli import main

raise SystemExit(main())
