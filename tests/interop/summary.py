#!/usr/bin/env python3
"""Prints the interop runs side by side: one row per scenario, one column per run.

    summary.py LABEL=results.json ...

Each file is a scenarios script's --json output (tests/interop/scenarios.py or the official
clients' tests/interop/official/scenarios.{py,js}, go/ and rust/). A missing file shows as
"-" (the run did not get that far). Below the table: each failed scenario with its first
failed checks, and each run that left no results. Exits 1 when any scenario of any run
failed or a file is missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    runs: list[tuple[str, dict[str, dict[str, object]] | None]] = []
    for arg in sys.argv[1:]:
        label, _, path = arg.partition("=")
        p = Path(path)
        runs.append((label, {r["scenario"]: r for r in json.loads(p.read_text())} if p.exists() else None))
    scenarios: list[str] = []
    for _, rows in runs:
        for name in rows or {}:
            if name not in scenarios:
                scenarios.append(name)
    width = max([len(label) for label, _ in runs] + [9])
    print(f"{'scenario':<14} " + " ".join(f"{label:>{width}}" for label, _ in runs))
    ok = all(rows is not None for _, rows in runs)
    for name in scenarios:
        cells = []
        for _, rows in runs:
            if rows is None:
                cells.append("-")
            elif name not in rows:
                cells.append("")
            else:
                r = rows[name]
                ok &= r["result"] == "PASS"
                cells.append(f"{r['result']} {float(r['seconds']):.0f}s")  # type: ignore[arg-type]
        print(f"{name:<14} " + " ".join(f"{c:>{width}}" for c in cells))
    for label, rows in runs:
        if rows is None:
            print(f"{label}: no results (the run ended before it wrote them; its output is above)")
            continue
        for name, r in rows.items():
            if r["result"] != "PASS":
                notes = [str(o) for o in r.get("observations") or []]
                failed = [o for o in notes if o.startswith("FAIL")] or notes
                print(f"{label} {name}: " + "; ".join(failed[:2])[:300])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
