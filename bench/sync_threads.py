"""Sync-flushed sends from several Python threads, to count how many sends share a
sync: `strace -f -c -e trace=msync .venv/bin/python bench/sync_threads.py [THREADS]`."""

import sys
import tempfile
import threading
import time

import pocketmq


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    per = 500
    with tempfile.TemporaryDirectory() as d, pocketmq.Broker(d, flush="sync") as b:
        b.producer("p").send("t", b"warm")  # the first segment exists before timing

        def run() -> None:
            p = b.producer("p")
            for _ in range(per):
                p.send("t", b"x" * 100)

        ts = [threading.Thread(target=run) for _ in range(threads)]
        start = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        took = time.monotonic() - start
    print(f"{threads} threads x {per} sync sends of 100 B: {threads * per / took:,.0f} msgs/s")


if __name__ == "__main__":
    main()
