"""pocketmq serve at idle: time to serve and resident memory, on stores as a restart meets
them, each the median of several starts.

    .venv/bin/python bench/serve_idle.py [--starts 5] [--messages 100000]

Stores: none (`--memory`), a new empty directory, and a directory that already holds
MESSAGES messages of 100 B plus one delayed message (a service restarted on its own
data). Time to serve: from starting the process to its "listening" line. Resident
memory: VmRSS of the process 1 s after that line. The issue's targets: under 200 ms to
serve and under 50 MiB at idle.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import pocketmq

ROOT = Path(__file__).resolve().parent.parent
POCKETMQ = str(ROOT / ".venv/bin/pocketmq")


def start(store: list[str]) -> tuple[float, float]:
    """(ms to the listening line, VmRSS MiB 1 s later) of one `pocketmq serve`."""
    t = time.perf_counter()
    proc = subprocess.Popen([POCKETMQ, "serve", *store, "--listen", "127.0.0.1:0", "--log-level", "warn"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        ready = (time.perf_counter() - t) * 1e3
        if "listening" not in line:
            raise SystemExit(f"serve did not start: {line!r}")
        time.sleep(1.0)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
        return ready, rss
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--messages", type=int, default=100_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        full = Path(work) / "full"
        with pocketmq.Broker(full) as b:
            p = b.producer()
            for start_at in range(0, a.messages, 1000):
                p.send_batch("orders", [b"x" * 100] * min(1000, a.messages - start_at))
            p.send("orders", b"later", delay=3600.0)
        stores: dict[str, Callable[[], list[str]]] = {
            "memory (--memory)": lambda: ["--memory"],
            "new empty directory": lambda: [str(Path(tempfile.mkdtemp(dir=work)) / "store")],
            f"directory of {a.messages:,} messages": lambda: [str(full)],
        }
        print(f"| store | time to serve (median of {a.starts}) | resident memory idle |")
        print("|---|---|---|")
        for name, args in stores.items():
            runs = [start(args()) for _ in range(a.starts)]
            ready = statistics.median(r for r, _ in runs)
            rss = statistics.median(m for _, m in runs)
            print(f"| {name} | {ready:.0f} ms | {rss:.1f} MiB |", flush=True)


if __name__ == "__main__":
    main()
