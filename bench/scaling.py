"""How the cost of the Python API grows with the count: each case runs at n and at 4n
(messages, groups, members or topics) and prints the ratio of the two times. A ratio
near 4 is linear; one far above it (flagged past 7) is a cost that grows faster than
the work, worth a look under the engine lock.

    .venv/bin/python bench/scaling.py [--n 2000] [CASE ...]
"""

import argparse
import logging
import random
import tempfile
import time

import pocketmq
from pocketmq import TxState


def later(b, clock, seconds):
    """Moves the broker's clock on and runs what came due."""
    clock.advance(seconds)
    b.tick()


def received(c, n, timeout=0.0, max_messages=None):
    got = []
    while len(got) < n:
        got += c.receive(max_messages=max_messages or n, timeout=timeout)
    return got


def classic_reverse_acks(n):
    with pocketmq.Broker() as b:
        b.producer().send_batch("t", [b"x"] * n)
        c = b.consumer("g", "t", max_in_flight=n)
        for m in reversed(received(c, n)):
            c.ack(m)


def classic_nacks_and_retries(n):
    clock = pocketmq.ManualClock()
    with pocketmq.Broker(clock=clock) as b:
        b.producer().send_batch("t", [b"x"] * n)
        c = b.consumer("g", "t", max_in_flight=n)
        for m in received(c, n):
            c.nack(m)
        later(b, clock, 11)
        for m in received(c, n, timeout=0.5):
            c.ack(m)


def ack_deadlines(n):
    clock = pocketmq.ManualClock()
    with pocketmq.Broker(clock=clock) as b:
        b.producer().send_batch("t", [b"x"] * n)
        c = b.consumer("g", "t", max_in_flight=n, ack_timeout=5.0)
        received(c, n)
        later(b, clock, 6)
        later(b, clock, 11)
        received(c, n, timeout=0.5)


def simple_reverse_acks(n):
    with pocketmq.Broker() as b:
        b.producer().send_batch("t", [b"x"] * n)
        sc = b.simple_consumer("g", "t")
        got = received(sc, n, max_messages=32)
        for m in got:
            sc.change_invisible_duration(m, 60.0)
        for m in reversed(got):
            sc.ack(m)


def simple_fifo_keys(n):
    with pocketmq.Broker() as b:
        b.create_topic("t", queues=1)
        p = b.producer()
        for i in range(n):
            p.send("t", b"x", sharding_key=f"k{i}")
        sc = b.simple_consumer("g", "t", fifo=True)
        for m in received(sc, n, max_messages=32):
            sc.ack(m)


def simple_expiry(n):
    clock = pocketmq.ManualClock()
    with pocketmq.Broker(clock=clock) as b:
        b.producer().send_batch("t", [b"x"] * n)
        sc = b.simple_consumer("g", "t", invisible_duration=10.0)
        received(sc, n, max_messages=32)
        later(b, clock, 11)
        for m in received(sc, n, timeout=0.5, max_messages=32):
            sc.ack(m)


def transaction_checks(n):
    clock = pocketmq.ManualClock()
    with pocketmq.Broker(clock=clock) as b:
        tp = b.transaction_producer("pay", check=lambda m: TxState.COMMIT)
        for _ in range(n):
            tp.send("t", b"x", execute=lambda m: TxState.UNKNOWN)
        later(b, clock, 61)
        received(b.consumer("g", "t", max_in_flight=n), n, timeout=0.5)


def delays(n):
    clock = pocketmq.ManualClock()
    with pocketmq.Broker(clock=clock) as b:
        p = b.producer()
        for _ in range(n):
            p.send("t", b"x", delay=random.random() * 100)
        later(b, clock, 101)
        received(b.consumer("g", "t", max_in_flight=n), n, timeout=0.5)


def dead_letters_and_redrive(n):
    with pocketmq.Broker() as b:
        b.producer().send_batch("t", [b"x"] * n)
        c = b.consumer("g", "t", max_in_flight=n, max_reconsume_times=0)
        for m in received(c, n):
            c.nack(m)
        b.tick()
        assert len(b.dead_letters("g", limit=n)) == n
        assert b.redrive("g") == n


def dedup_batch(n):
    with pocketmq.Broker() as b:
        b.producer().send_batch("t", [b"x"] * n, dedup_ids=[f"id-{i}" for i in range(n)])


def atomic_block_of_acks(n):
    with pocketmq.Broker() as b:
        b.producer().send_batch("in", [b"x"] * n)
        c = b.consumer("g", "in", max_in_flight=n)
        with b.atomic() as tx:
            for m in received(c, n):
                tx.ack(c, m)
            tx.send("out", b"done")


def topics(n):  # n / 10 topics on a file store
    with pocketmq.Broker(tempfile.mkdtemp()) as b:
        for i in range(n // 10):
            b.create_topic(f"t{i}", queues=1)
        b.stats()


def groups(n):  # n / 10 groups, each consuming once; then lag of each and stats
    with pocketmq.Broker() as b:
        b.producer().send("t", b"x")
        for i in range(n // 10):
            c = b.consumer(f"g{i}", "t")
            c.receive(max_messages=1, timeout=0)
            c.close()
        for i in range(n // 10):
            b.lag(f"g{i}", "t")
        b.stats()


def keys(n):
    with pocketmq.Broker() as b:
        p = b.producer()
        for i in range(n):
            p.send("t", b"x", keys=[f"k{i % 100}"])
        for i in range(100):
            b.query("t", key=f"k{i}")


def orderly_64_queues(n):
    with pocketmq.Broker() as b:
        b.create_topic("t", queues=64)
        p = b.producer()
        for i in range(n):
            p.send("t", b"x", sharding_key=f"k{i}")
        c = b.consumer("g", "t", orderly=True)
        got = 0
        while got < n:
            ms = c.receive(max_messages=64, timeout=0)
            for m in ms:
                c.ack(m)
            got += len(ms)


def members(n, broadcasting):  # n / 20 members of one group on 64 queues
    with pocketmq.Broker() as b:
        b.create_topic("t", queues=64)
        b.producer().send_batch("t", [b"x"] * 10)
        cs = [b.consumer("g", "t", broadcasting=broadcasting) for _ in range(n // 20)]
        for c in cs:
            for m in c.receive(max_messages=10, timeout=0):
                c.ack(m)
        b.stats()
        for c in cs:
            c.close()


CASES = {
    f.__name__: f
    for f in (
        classic_reverse_acks, classic_nacks_and_retries, ack_deadlines, simple_reverse_acks,
        simple_fifo_keys, simple_expiry, transaction_checks, delays, dead_letters_and_redrive,
        dedup_batch, atomic_block_of_acks, topics, groups, keys, orderly_64_queues,
    )
}
CASES["clustering_members"] = lambda n: members(n, False)
CASES["broadcasting_members"] = lambda n: members(n, True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("cases", nargs="*", help=f"any of {', '.join(CASES)} (default: all)")
    a = ap.parse_args()
    unknown = [c for c in a.cases if c not in CASES]
    if unknown:
        ap.error(f"unknown cases: {', '.join(unknown)}")
    # Dead-lettering logs a warning per message; the probe wants only its timings.
    logging.disable(logging.WARNING)
    for name in a.cases or CASES:
        f = CASES[name]
        times = []
        for n in (a.n, 4 * a.n):
            start = time.perf_counter()
            f(n)
            times.append(time.perf_counter() - start)
        ratio = times[1] / times[0]
        flag = "  <- grows faster than the count" if ratio > 7 else ""
        print(f"{name:28s} n {times[0] * 1e3:8.1f} ms   4n {times[1] * 1e3:8.1f} ms   "
              f"{ratio:5.1f}x{flag}", flush=True)


if __name__ == "__main__":
    main()
