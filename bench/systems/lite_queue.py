"""litequeue with its defaults (SQLite, WAL, synchronous=NORMAL).

`put` per message (str data, so bodies are passed as ASCII text), then `pop` +
`done` per message.
"""

from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path
from typing import Callable

from litequeue import LiteQueue
from workload import RELAXED, Case, Measured, disk_bytes


def versions() -> dict[str, str]:
    return {"litequeue": metadata.version("litequeue")}


def _run() -> Callable[[list[bytes], Path], Measured]:
    def run(bodies: list[bytes], workdir: Path) -> Measured:
        data = workdir / "litequeue"
        data.mkdir()
        texts = [body.decode("ascii") for body in bodies]
        q = LiteQueue(str(data / "queue.sqlite3"))
        try:
            put = q.put
            start = time.perf_counter()
            for text in texts:
                put(text)
            send_s = time.perf_counter() - start

            received: list[str] = []
            n = len(bodies)
            start = time.perf_counter()
            while len(received) < n:
                msg = q.pop()
                if msg is None:
                    break
                received.append(msg.data)
                q.done(msg.message_id)
            receive_s = time.perf_counter() - start
        finally:
            q.close()
        return Measured(send_s, receive_s, [t.encode("ascii") for t in received], disk_bytes(data))

    return run


def cases() -> list[Case]:
    return [
        Case("litequeue", "litequeue (defaults)", "litequeue", RELAXED, _run(),
             {100: 4_000, 1024: 4_000}, counterpart="pocketmq-async",
             notes="put per message; pop + done per message; WAL, synchronous=NORMAL"),
    ]  # fmt: skip
