"""``python -m sbir_lib.course``: run the notebook series with papermill."""
from sbir_lib.course.notebooks import main

raise SystemExit(main())
