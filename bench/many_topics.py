"""A file store of many topics, from the installed pocketmq package: the first send to
each of N new topics, the disk the store then takes, the files the process holds open,
and how long a clean reopen takes (medians of RUNS reopens).

    .venv/bin/python bench/many_topics.py [TOPICS] [RUNS] [--dir DIR]

(1,000 topics and 5 reopens unless given; the store goes in a temporary directory
under DIR, default the system's.) A topic gets one message, in one of its 4 queues.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pocketmq


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def disk_bytes(path: str) -> int:
    """The disk blocks under `path` (`du`), not the files' lengths."""
    out = subprocess.run(["du", "-sk", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) * 1024


def main() -> None:
    args = sys.argv[1:]
    base = None
    if "--dir" in args:
        at = args.index("--dir")
        base = args[at + 1]
        del args[at : at + 2]
    topics = int(args[0]) if args else 1000
    runs = int(args[1]) if len(args) > 1 else 5
    root = tempfile.mkdtemp(prefix="pocketmq-many-", dir=base)
    store = os.path.join(root, "store")
    try:
        broker = pocketmq.Broker(store)
        producer = broker.producer("p")
        start = time.perf_counter()
        for i in range(topics):
            producer.send(f"topic-{i}", b"x")
        first_sends = time.perf_counter() - start
        held = open_files()
        broker.close()
        del producer, broker
        used = disk_bytes(store)
        queues = disk_bytes(os.path.join(store, "consumequeue"))
        opens = []
        for _ in range(runs):
            start = time.perf_counter()
            broker = pocketmq.Broker(store)
            opens.append(time.perf_counter() - start)
            broker.close()
            del broker
        print(f"topics: {topics}")
        print(f"first send to a new topic: {first_sends / topics * 1e3:.2f} ms (mean)")
        print(f"open files while running: {held}")
        print(f"disk: {used / 2**20:.0f} MiB, of which ConsumeQueues {queues / 2**20:.0f} MiB")
        print(
            f"clean reopen: {statistics.median(opens) * 1e3:.0f} ms (median of {runs}: "
            + ", ".join(f"{o * 1e3:.0f}" for o in opens)
            + " ms)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
