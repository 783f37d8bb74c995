"""report: the papers' numbers beside ours, read from the recorded runs; tables, claims, figures, REPRODUCTION.md.

One module per job, each importing only the ones before it (the paper tables themselves are the registry
published numbers), :mod:`~sbir_lib.report.fidelity` (our recipe vs the authors' code),
:mod:`~sbir_lib.report.tables` (Tables 1-5, paper vs ours; notebook 05), :mod:`~sbir_lib.report.claims` (the
papers' claims against seed noise; notebooks 05, 07, 08), :mod:`~sbir_lib.report.reproduction`
(``REPRODUCTION.md``), :mod:`~sbir_lib.report.cli` (``python -m sbir_lib.report``), and beside them
:mod:`~sbir_lib.report.figures` (Figures 4, 5; notebook 06) and :mod:`~sbir_lib.report.domain_gap` (the
sketch vs edge-map gap; notebook 00).
"""
