"""Plain and dedup sends in alternating pairs, from the installed pocketmq package: the
median ratio of dedup to plain over the pairs, and each pair's ratio.

    .venv/bin/python bench/dedup_pairs.py [SENDS] [PAIRS]

(300,000 sends a run and 5 pairs unless given.) The loops are those of
`bench/consumers.py --dedup-only`; this script runs under any interpreter that has a
pocketmq installed, so two builds of the package, each in its own venv, can be
alternated invocation by invocation (their ratios then share the machine's state).
"""

from __future__ import annotations

import statistics
import sys
import time

import pocketmq

BODY = b"x" * 100


def run(n: int, dedup: bool) -> float:
    ids = [f"order-{i}" for i in range(n)]
    with pocketmq.Broker() as b:
        send = b.producer().send
        send("bench", BODY)
        start = time.perf_counter()
        if dedup:
            for d in ids:
                send("bench", BODY, dedup_id=d)
        else:
            for _ in range(n):
                send("bench", BODY)
        return n / (time.perf_counter() - start)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    plain, dedup = [], []
    for _ in range(pairs):
        plain.append(run(n, False))
        dedup.append(run(n, True))
    ratios = [d / p for p, d in zip(plain, dedup)]
    print(
        f"{statistics.median(ratios):.1%} ({' '.join(f'{r:.0%}' for r in ratios)}); "
        f"plain {statistics.median(plain):,.0f}/s, dedup {statistics.median(dedup):,.0f}/s"
    )


if __name__ == "__main__":
    main()
