"""Prints SLA reports side by side as a Markdown table (the figures users compare).

Run from the repository root:
    python3 scripts/compare_reports.py "54 nests=a.json" "128 docks=b.json"
Each argument is `column name=report.json`, a report written by `airgrid sim --report`
(live or `--fast`); the rows are `airgrid.sim.report.comparison_rows`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airgrid.sim.report import comparison_table  # noqa: E402


def main() -> None:
    runs = []
    for argument in sys.argv[1:]:
        name, sep, path = argument.partition("=")
        if not sep or not name or not path:
            raise SystemExit('usage: compare_reports.py "NAME=report.json" ...')
        runs.append((name, json.loads(Path(path).read_text(encoding="utf-8"))))
    if not runs:
        raise SystemExit('usage: compare_reports.py "NAME=report.json" ...')
    print("\n".join(comparison_table(runs)))


if __name__ == "__main__":
    main()
