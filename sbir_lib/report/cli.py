"""``python -m sbir_lib.report``: REPRODUCTION.md, one paper table or the ablation claims, from the recorded runs.

::

    python -m sbir_lib.report reproduction --profile full --out REPRODUCTION.md
    python -m sbir_lib.report show --table table2 --profile quick
    python -m sbir_lib.report claims --profile full

``notebooks/05_reproducing_the_tables.ipynb`` shows the same tables and claims through :mod:`sbir_lib.report.tables`
and :mod:`sbir_lib.report.claims`, and ends with the first command, which writes the report with
:mod:`sbir_lib.report.reproduction`.
"""
from __future__ import annotations

import argparse
import sys

from sbir_lib.core import config as _config
from sbir_lib.core.profiles import PROFILE_NAMES
from sbir_lib.report.claims import claims_frame
from sbir_lib.report.reproduction import write_reproduction
from sbir_lib.core import tablespec as TS
from sbir_lib.report.tables import table_frame


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sbir_lib.report", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reproduction", help="write REPRODUCTION.md from the records")
    r.add_argument("--profile", default="full", help=" | ".join(PROFILE_NAMES) + " (default full)")
    r.add_argument("--out", default="REPRODUCTION.md")
    r.add_argument("--results", default=None, help="results folder (default ./results)")
    s = sub.add_parser("show", help="print one table, paper vs ours")
    s.add_argument("--table", required=True, help=", ".join(TS.keys()))
    s.add_argument("--profile", default="full")
    s.add_argument("--results", default=None)
    c = sub.add_parser("claims", help="print the ablation-claim checks")
    c.add_argument("--profile", default="full")
    c.add_argument("--results", default=None)
    args = ap.parse_args(argv)
    try:
        profile = _config.check_profile(args.profile)
        if args.cmd == "reproduction":
            p = write_reproduction(args.out, profile, args.results)
            print(f"wrote {p}")
        elif args.cmd == "show":
            TS.get(args.table)  # an unknown table: the registered ones, exit 2
            print(table_frame(args.table, None, profile, args.results).round(2).to_string())
        else:
            print(claims_frame(None, profile, args.results).round(3).to_string())
        return 0
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
