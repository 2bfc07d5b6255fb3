"""Plain and dedup sends in alternating pairs, from the installed pocketmq package: the
median ratio of dedup to plain over the pairs, and each pair's ratio.

    .venv/bin/python bench/dedup_pairs.py [SENDS] [PAIRS] [--only dedup|tags|plain] [--window SECONDS]

(300,000 sends a run and 5 pairs unless given.) `--window SECONDS` measures the steady
state instead of a fresh broker's growing window: each run's broker has that dedup
window, a third as many sends as the run make go first, untimed, and ids leave the
window as new ones come (`--window 0.05` holds about 50,000). `--only KIND` runs PAIRS
runs of one kind and prints their rates, for a profiler to compare kinds (`tags`: the
same ids sent as tags, what any text option costs), e.g. `perf record -e cpu-clock -F
10000` of `--only tags` and of `--only dedup`, then `perf report -n --sort sym` of each.
The runs are `bench/consumers.py`'s own (`send_run`); this script runs under any interpreter that has a
pocketmq installed, so two builds of the package, each in its own venv, can be
alternated invocation by invocation (their ratios then share the machine's state).
"""

from __future__ import annotations

import statistics
import sys

from consumers import send_run


def main() -> None:
    args = sys.argv[1:]
    window = None
    if "--window" in args:
        at = args.index("--window")
        window = float(args[at + 1])
        del args[at : at + 2]
    only = None
    if "--only" in args:
        at = args.index("--only")
        only = args[at + 1]
        if only not in ("dedup", "tags", "plain"):
            sys.exit(f"--only takes dedup, tags or plain, not {only!r}")
        del args[at : at + 2]
    n = int(args[0]) if len(args) > 0 else 300_000
    pairs = int(args[1]) if len(args) > 1 else 5
    if only is not None:
        if window is not None and only == "tags":
            sys.exit("--window measures plain and dedup sends, not tags")
        rates = [
            send_run(n, only == "dedup", tags=only == "tags", window=window) for _ in range(pairs)
        ]
        print(f"{only}: {' '.join(f'{r:,.0f}' for r in rates)} sends/s")
        return
    plain, dedup = [], []
    for _ in range(pairs):
        plain.append(send_run(n, False, window=window))
        dedup.append(send_run(n, True, window=window))
    ratios = [d / p for p, d in zip(plain, dedup)]
    print(
        f"{statistics.median(ratios):.1%} ({' '.join(f'{r:.0%}' for r in ratios)}); "
        f"plain {statistics.median(plain):,.0f}/s, dedup {statistics.median(dedup):,.0f}/s"
    )


if __name__ == "__main__":
    main()
