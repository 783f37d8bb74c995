"""``python -m sbir_lib.experiments``: the one command line of both papers' experiments."""
from sbir_lib.experiments.runner import main

raise SystemExit(main())
