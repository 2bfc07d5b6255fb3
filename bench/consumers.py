"""Figures of the Python package beyond plain sends: a simple consumer and a classic
group with 1 producer thread and 4 receiving threads, a listener with a no-op
handler on 4 threads, and sends with a dedup id against plain sends in the same
run; memory store, 100 B bodies, medians of several runs.

`.venv/bin/python bench/consumers.py [--messages N] [--runs R] [--write]`
(`make bench-consumers`). With --write it rewrites its section of BENCHMARKS.md;
`--dedup-only` runs and prints the dedup pairs alone, `--listener-only` the listener.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path
from typing import Callable

import pocketmq

from machine import describe  # type: ignore[import-not-found]

BODY = b"x" * 100
BATCH = 256
RECEIVERS = 4
START, END = "<!-- consumers:start -->", "<!-- consumers:end -->"


def produce(b: pocketmq.Broker, n: int) -> threading.Thread:
    def run() -> None:
        p = b.producer()
        left = n
        while left > 0:
            k = min(BATCH, left)
            p.send_batch("bench", [BODY] * k)
            left -= k

    return threading.Thread(target=run)


def receivers(
    n: int, make: Callable[[], object], take: Callable[[object], int]
) -> list[threading.Thread]:
    """RECEIVERS threads, each receiving with its own handle (from `make`) until
    `n` messages arrived between them."""
    got = [0]
    lock = threading.Lock()

    def run() -> None:
        c = make()
        while True:
            with lock:
                if got[0] >= n:
                    return
            k = take(c)
            with lock:
                got[0] += k

    return [threading.Thread(target=run) for _ in range(RECEIVERS)]


def timed(n: int, threads: list[threading.Thread]) -> float:
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return n / (time.perf_counter() - start)


def simple_run(n: int) -> float:
    with pocketmq.Broker() as b:
        b.create_topic("bench", 4)
        shared = b.simple_consumer("s", "bench")

        def take(c: object) -> int:
            msgs = shared.receive(max_messages=32, timeout=0.02)
            if msgs:
                shared.ack(msgs)
            return len(msgs)

        return timed(n, [produce(b, n), *receivers(n, lambda: None, take)])


def classic_run(n: int) -> float:
    with pocketmq.Broker() as b:
        b.create_topic("bench", 4)

        def take(c: object) -> int:
            assert isinstance(c, pocketmq.Consumer)
            msgs = c.receive(max_messages=32, timeout=0.02)
            if msgs:
                c.ack(msgs)
            return len(msgs)

        members = [b.consumer("g", "bench") for _ in range(RECEIVERS)]
        it = iter(members)
        return timed(n, [produce(b, n), *receivers(n, lambda: next(it), take)])


def listener_run(n: int) -> float:
    with pocketmq.Broker() as b:
        b.create_topic("bench", 4)
        p = b.producer()
        for _ in range(n // BATCH):
            p.send_batch("bench", [BODY] * BATCH)
        c = b.simple_consumer("l", "bench")
        done = threading.Event()
        count = [0]
        lock = threading.Lock()

        def handler(msg: pocketmq.Message) -> None:
            with lock:
                count[0] += 1
                if count[0] >= (n // BATCH) * BATCH:
                    done.set()

        start = time.perf_counter()
        runner = c.listen(handler, threads=RECEIVERS)
        done.wait()
        took = time.perf_counter() - start
        runner.stop()
        return count[0] / took


def send_run(n: int, dedup: bool, tags: bool = False, window: float | None = None) -> float:
    # The ids exist before the clock starts, as an application's order ids do: the
    # figure is the send's, not the formatting of a string. `tags`: the same strings
    # sent as tags instead (what any text option costs, for comparison). `window`: a
    # broker of that dedup window, which `n // 3` untimed sends fill first, so the timed
    # ones meet a window that no longer grows (its oldest ids leave as new ones come).
    ids = [f"order-{i}" for i in range(n)] if dedup or tags else []
    with pocketmq.Broker() if window is None else pocketmq.Broker(dedup_window=window) as b:
        p = b.producer()
        send = p.send
        send("bench", BODY)
        for i in range(n // 3 if window is not None else 0):
            if dedup:
                send("bench", BODY, dedup_id=f"before-{i}")
            else:
                send("bench", BODY)
        start = time.perf_counter()
        if tags:
            for d in ids:
                send("bench", BODY, tags=d)
        elif dedup:
            for d in ids:
                send("bench", BODY, dedup_id=d)
        else:
            for i in range(n):
                send("bench", BODY)
        return n / (time.perf_counter() - start)


def median_of(runs: int, f: Callable[[int], float], n: int) -> float:
    return statistics.median(f(n) for _ in range(runs))


def slow_handlers_run() -> float:
    """Seconds until 8 messages, each handled in 1 s, are acked by a listener of 4
    threads (2 s when the threads share them, 8 s when one takes them all)."""
    with pocketmq.Broker() as b:
        p = b.producer()
        for i in range(8):
            p.send("slow", f"m{i}")
        c = b.consumer("slow", "slow")
        start = time.perf_counter()
        with c.listen(lambda m: time.sleep(1.0), threads=4):
            while b.lag("slow", "slow") > 0:
                time.sleep(0.01)
            return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=500_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--dedup-only", action="store_true")
    ap.add_argument("--listener-only", action="store_true",
                    help="the listener row alone, each run, and 8 slow handlers on 4 threads")
    a = ap.parse_args()
    if a.listener_only:
        runs = [listener_run(a.messages) for _ in range(a.runs)]
        print(f"listener: median {statistics.median(runs):,.0f} msgs/s (runs "
              f"{', '.join(f'{r:,.0f}' for r in runs)})")
        print(f"8 handlers of 1 s on 4 threads: all acked after {slow_handlers_run():.1f} s")
        return
    if a.dedup_only:
        # Each round: plain, dedup ids, and the same strings as tags.
        rounds = [(send_run(a.messages, False), send_run(a.messages, True),
                   send_run(a.messages, False, tags=True)) for _ in range(a.runs)]
        for plain, dedup, tagged in rounds:
            print(f"plain {plain:,.0f}/s, dedup {dedup:,.0f}/s: {dedup / plain:.0%}; "
                  f"tags {tagged:,.0f}/s: {tagged / plain:.0%}")
        ratio = statistics.median(d / p for p, d, _ in rounds)
        tag_ratio = statistics.median(t / p for p, _, t in rounds)
        print(f"median: plain {statistics.median(p for p, _, _ in rounds):,.0f}/s, dedup "
              f"{statistics.median(d for _, d, _ in rounds):,.0f}/s, ratio {ratio:.0%}; "
              f"tags ratio {tag_ratio:.0%}")
        return
    simple = median_of(a.runs, simple_run, a.messages)
    classic = median_of(a.runs, classic_run, a.messages)
    listener = median_of(a.runs, listener_run, a.messages)
    # Plain and dedup sends alternate, so each pair shares the machine's state.
    pairs = [(send_run(a.messages, False), send_run(a.messages, True)) for _ in range(a.runs)]
    plain = statistics.median(p for p, _ in pairs)
    dedup = statistics.median(d for _, d in pairs)
    ratio = statistics.median(d / p for p, d in pairs)
    verdict = lambda v, t: "met" if v >= t else "MISSED"  # noqa: E731
    table = [
        "| figure | measured | target | |",
        "|---|---|---|---|",
        f"| simple consumer, 1 producer + 4 receiving threads, receive(32) + ack | "
        f"{simple:,.0f} msgs/s (classic group of 4 in the same run: {classic:,.0f}) | "
        f">= 400 k msgs/s | {verdict(simple, 400_000)} |",
        f"| listener on a simple consumer, 4 threads, no-op handler | {listener:,.0f} msgs/s"
        f" | >= 300 k msgs/s | {verdict(listener, 300_000)} |",
        f"| `send(..., dedup_id=...)`, one thread, a new id each (made before the clock "
        f"starts) | {dedup:,.0f} msgs/s = "
        f"{ratio:.0%} of plain `send` ({plain:,.0f}/s, same run) | >= 80% of plain | "
        f"{verdict(ratio, 0.8)} |",
    ]
    section = "\n".join(
        [
            START,
            "## The Python package: consumers, listeners, dedup",
            "",
            f"`make bench-consumers` (`bench/consumers.py`): memory store, 100 B bodies, "
            f"{a.messages:,} messages a run, medians of {a.runs}; "
            + ", ".join(f"{k} {v}" for k, v in describe(Path(".")).items())
            + ".",
            "",
            *table,
            END,
        ]
    )
    print(section)
    if a.write:
        path = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
        text = path.read_text()
        if START in text:
            head, rest = text.split(START, 1)
            text = head + section + rest.split(END, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        path.write_text(text)


if __name__ == "__main__":
    main()
