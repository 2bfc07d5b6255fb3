"""persist-queue's SQLiteAckQueue with its defaults, as its README shows it.

`put` per message (each its own committed transaction; the package opens
SQLite in WAL mode and leaves `synchronous` at SQLite's default, FULL, so every
commit syncs the WAL), then `get` + `ack` per message, each also a commit.
"""

from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path
from typing import Callable

import persistqueue
from workload import RELAXED, Case, Measured, disk_bytes


def versions() -> dict[str, str]:
    return {"persist-queue": metadata.version("persist-queue")}


def _run() -> Callable[[list[bytes], Path], Measured]:
    def run(bodies: list[bytes], workdir: Path) -> Measured:
        data = workdir / "persist-queue"
        q = persistqueue.SQLiteAckQueue(str(data))
        try:
            put = q.put
            start = time.perf_counter()
            for body in bodies:
                put(body)
            send_s = time.perf_counter() - start

            received: list[bytes] = []
            n = len(bodies)
            start = time.perf_counter()
            while len(received) < n:
                try:
                    item = q.get(block=False)
                except persistqueue.Empty:
                    break
                received.append(item)
                q.ack(item)
            receive_s = time.perf_counter() - start
        finally:
            q.close()
        return Measured(send_s, receive_s, received, disk_bytes(data))

    return run


def cases() -> list[Case]:
    # Compared with pocketmq's relaxed store, as the target asks; its own
    # commits sync, so the table also shows it beside pocketmq sync.
    return [
        Case("persist-queue", "persist-queue SQLiteAckQueue (defaults)", "persist-queue", RELAXED,
             _run(), {100: 600, 1024: 600}, counterpart="pocketmq-async",
             notes="put per message; get + ack per message; WAL, synchronous=FULL (SQLite default)"),
    ]  # fmt: skip
