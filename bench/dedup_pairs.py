"""Plain and dedup sends in alternating pairs, from the installed pocketmq package: the
median ratio of dedup to plain over the pairs, and each pair's ratio.

    .venv/bin/python bench/dedup_pairs.py [SENDS] [PAIRS]

(300,000 sends a run and 5 pairs unless given.) The runs are
`bench/consumers.py`'s own (`send_run`); this script runs under any interpreter that has a
pocketmq installed, so two builds of the package, each in its own venv, can be
alternated invocation by invocation (their ratios then share the machine's state).
"""

from __future__ import annotations

import statistics
import sys

from consumers import send_run


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    plain, dedup = [], []
    for _ in range(pairs):
        plain.append(send_run(n, False))
        dedup.append(send_run(n, True))
    ratios = [d / p for p, d in zip(plain, dedup)]
    print(
        f"{statistics.median(ratios):.1%} ({' '.join(f'{r:.0%}' for r in ratios)}); "
        f"plain {statistics.median(plain):,.0f}/s, dedup {statistics.median(dedup):,.0f}/s"
    )


if __name__ == "__main__":
    main()
