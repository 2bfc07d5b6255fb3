"""Sends over `pocketmq.connect()` from one asyncio program: `send` one after another
against `send_async` with up to WINDOW sends awaiting their answers at once, each
the median of several runs, against a `pocketmq serve` started here (memory store).

    .venv/bin/python bench/send_async.py [--messages 5000] [--runs 3] [--windows 1,16,256]

100 B bodies. A sync `send` waits for each answer before the next; `send_async` lets
the sends of one connection overlap, as an asyncio service sending on behalf of many
requests would.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time
from pathlib import Path

import pocketmq

ROOT = Path(__file__).resolve().parent.parent
POCKETMQ = str(ROOT / ".venv/bin/pocketmq")
BODY = b"x" * 100


def sync_run(p: pocketmq.RemoteProducer, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        p.send("bench", BODY)
    return n / (time.perf_counter() - start)


async def async_run(p: pocketmq.RemoteProducer, n: int, window: int) -> float:
    slots = asyncio.Semaphore(window)

    async def one() -> None:
        async with slots:
            await p.send_async("bench", BODY)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--windows", default="1,16,256")
    a = ap.parse_args()
    windows = [int(w) for w in a.windows.split(",")]
    proc = subprocess.Popen([POCKETMQ, "serve", "--memory", "--listen", "127.0.0.1:0", "--log-level", "warn"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening" not in line:
            raise SystemExit(f"serve did not start: {line!r}")
        with pocketmq.connect(line.rsplit(" ", 1)[1].strip()) as b:
            p = b.producer()
            p.send("bench", BODY)
            rows = {"send, one at a time": [sync_run(p, a.messages) for _ in range(a.runs)]}
            for w in windows:
                rows[f"send_async, {w} at once"] = [asyncio.run(async_run(p, a.messages, w)) for _ in range(a.runs)]
        base = statistics.median(rows["send, one at a time"])
        for name, rates in rows.items():
            med = statistics.median(rates)
            print(f"{name:24} {med:9,.0f} msgs/s  {med / base:4.2f}x  (runs {', '.join(f'{r:,.0f}' for r in rates)})")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
