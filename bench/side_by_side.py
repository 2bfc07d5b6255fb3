"""Side-by-side benchmark: pocketmq beside what a Python user would pick instead.

Runs the workload of `workload.py` on every case of `systems/`, plus the
machine's limits, `--reps` times (whole repetitions one after another, so load
from elsewhere spreads over every system; within one, each pocketmq case runs
right before the peers it is compared with), checks count and digest of what
each received, and writes bench/results/results.json. Then it rewrites the
side-by-side section of BENCHMARKS.md and the ratio chart (see report.py);
--quick, --only and --no-write runs write bench/results/partial.json instead and
rewrite nothing.

    python bench/side_by_side.py                 # what `make bench` runs
    python bench/side_by_side.py --quick         # small N, one rep, no BENCHMARKS.md
    python bench/side_by_side.py --only pocketmq-sync,redis-always --reps 1 --no-write
    python bench/side_by_side.py --profile pocketmq-async --size 100
    python bench/side_by_side.py --report-only       # re-render from the last results.json

The whole run stays within --budget seconds: a repetition that would not fit
is skipped, and the report says how many were run.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import machine  # noqa: E402
import report  # noqa: E402
import systems  # noqa: E402
from workload import SIZES, Case, digest, make_bodies  # noqa: E402

RESULTS = HERE / "results"


def paired_order(cases: list[Case], sizes: tuple[int, ...]) -> list[tuple[Case, int]]:
    """Each pocketmq case, then right after it the peers compared with it, per size.

    Disk and CPU speed drift on a shared machine; running the two sides of a
    ratio back to back keeps that drift out of the ratio.
    """
    order: list[tuple[Case, int]] = []
    for mine in (c for c in cases if not c.counterpart):
        for size in sizes:
            order.append((mine, size))
            order += [(c, size) for c in cases if c.counterpart == mine.key]
    order += [(c, s) for c in cases for s in sizes if (c, s) not in order]
    return order


def run_case(case: Case, size: int, n: int, bodies: list[bytes], expected: str, work: Path) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{case.key}-{size}-", dir=work))
    row: dict[str, Any] = {"case": case.key, "size": size, "n": n}
    gc.collect()
    try:
        m = case.run(bodies[:n], workdir)
        count_ok = len(m.received) == n
        digest_ok = count_ok and digest(m.received) == expected
        row.update(
            send_s=m.send_s,
            receive_s=m.receive_s,
            received=len(m.received),
            disk_bytes=m.disk_bytes,
            ok=count_ok and digest_ok,
            error=None if digest_ok else f"received {len(m.received)} of {n}, digest {'ok' if digest_ok else 'mismatch'}",
        )
    except Exception as e:  # noqa: BLE001 - one failing system must not stop the others
        row.update(ok=False, error=f"{type(e).__name__}: {e}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return row


def describe_row(case: Case, row: dict[str, Any]) -> str:
    if not row.get("send_s"):
        return f"{case.key:<24} {row['size']:>5} B  FAILED: {row['error']}"
    n = row["n"]
    text = (
        f"{case.key:<24} {row['size']:>5} B  n={n:<7} send {n / row['send_s']:>10,.0f}/s"
        f"  receive+ack {n / row['receive_s']:>10,.0f}/s"
    )
    return text + ("" if row["ok"] else f"  FAILED: {row['error']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--budget", type=float, default=780.0, help="seconds for the whole run")
    ap.add_argument("--quick", action="store_true", help="N/50, one rep, no BENCHMARKS.md")
    ap.add_argument("--only", help="comma-separated case keys")
    ap.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md and the chart alone")
    ap.add_argument("--profile", metavar="CASE", help="cProfile one run of CASE and print the top functions")
    ap.add_argument("--size", type=int, default=100, help="body size for --profile")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from the last results.json")
    args = ap.parse_args()

    if args.report_only:
        summary = report.summarize(json.loads((RESULTS / "results.json").read_text()), systems.all_cases())
        print(report.console(summary))
        report.write(summary)
        return 0

    cases = systems.all_cases()
    if args.only or args.profile:
        wanted = set((args.profile or args.only).split(","))
        unknown = wanted - {c.key for c in cases}
        if unknown:
            ap.error(f"unknown case(s) {sorted(unknown)}; known: {[c.key for c in cases]}")
        cases = [c for c in cases if c.key in wanted]
    scale = 50 if args.quick else 1
    reps = 1 if args.quick or args.profile else args.reps
    write = not (args.no_write or args.quick or args.only or args.profile)

    RESULTS.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="work-", dir=RESULTS))
    try:
        sizes = (args.size,) if args.profile else SIZES
        plan = [(c, s, max(c.n[s] // scale, 100)) for c, s in paired_order(cases, sizes)]
        bodies = {s: make_bodies(max(n for c, size, n in plan if size == s), s) for s in sizes}
        expected = {(s, n): digest(bodies[s][:n]) for _c, s, n in plan}

        if args.profile:
            case, size, n = plan[0]
            profiler = cProfile.Profile()
            profiler.enable()
            row = run_case(case, size, n, bodies[size], expected[(size, n)], work)
            profiler.disable()
            print(describe_row(case, row))
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
            return 0 if row["ok"] else 1

        meta: dict[str, Any] = {
            "machine": machine.describe(work),
            "versions": systems.versions(),
            "reps_planned": reps,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        print("machine:", ", ".join(f"{k} {v}" for k, v in meta["machine"].items()))
        print("versions:", ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))

        started = time.monotonic()
        rows: list[dict[str, Any]] = []
        limits: list[dict[str, Any]] = []
        reps_run = 0
        for rep in range(reps):
            rep_started = time.monotonic()
            print(f"-- repetition {rep + 1} of {reps}")
            limit = {
                "rep": rep,
                "buffered_mb_s": machine.buffered_write_mb_s(work),
                "fdatasync_per_s": machine.fdatasync_appends_s(work),
            }
            limits.append(limit)
            print(
                f"{'machine':<24} buffered write {limit['buffered_mb_s']:,.0f} MB/s,"
                f" 1 KiB write+fdatasync {limit['fdatasync_per_s']:,.0f}/s"
            )
            for case, size, n in plan:
                row = run_case(case, size, n, bodies[size], expected[(size, n)], work)
                row["rep"] = rep
                rows.append(row)
                print(describe_row(case, row), flush=True)
            reps_run += 1
            took = time.monotonic() - rep_started
            if rep + 1 < reps and time.monotonic() - started + took > args.budget:
                print(f"-- stopping after {reps_run} repetition(s): another would pass the {args.budget:.0f} s budget")
                break
        meta["reps_run"] = reps_run
        meta["seconds"] = round(time.monotonic() - started, 1)
        results = {"meta": meta, "limits": limits, "rows": rows, "scale": scale}
        # Only a full run replaces results.json, which --report-only renders.
        out = RESULTS / ("results.json" if write else "partial.json")
        out.write_text(json.dumps(results, indent=1))
        print(f"results: {out} ({meta['seconds']} s)")

        summary = report.summarize(results, cases)
        print(report.console(summary))
        if write:
            report.write(summary)
        else:
            report.chart(summary, RESULTS / "ratios.png")
        failed = [r for r in rows if not r["ok"]]
        if failed:
            print(f"{len(failed)} run(s) failed their count or digest check", file=sys.stderr)
            return 1
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
