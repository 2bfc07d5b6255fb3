"""The standard library's sqlite3 used as a queue table, as a user would write it.

One table `queue(id INTEGER PRIMARY KEY, body BLOB)` in WAL mode. Sending is
one INSERT per message in its own transaction (autocommit). Receiving selects
the oldest 32 rows, and acknowledging deletes them in one transaction. With
`synchronous=NORMAL` a commit reaches the OS and the WAL is synced at
checkpoints (relaxed); with `FULL` every commit syncs the WAL (strict).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Callable

from workload import RECEIVE_BATCH, RELAXED, STRICT, Case, Measured, disk_bytes


def versions() -> dict[str, str]:
    return {"SQLite": sqlite3.sqlite_version}


def _run(synchronous: str) -> Callable[[list[bytes], Path], Measured]:
    def run(bodies: list[bytes], workdir: Path) -> Measured:
        data = workdir / "sqlite"
        data.mkdir()
        conn = sqlite3.connect(data / "queue.db", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute("CREATE TABLE queue (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")

            execute = conn.execute
            start = time.perf_counter()
            for body in bodies:
                execute("INSERT INTO queue (body) VALUES (?)", (body,))
            send_s = time.perf_counter() - start

            received: list[bytes] = []
            n = len(bodies)
            start = time.perf_counter()
            while len(received) < n:
                rows = execute("SELECT id, body FROM queue ORDER BY id LIMIT ?", (RECEIVE_BATCH,)).fetchall()
                if not rows:
                    break
                received.extend(body for _id, body in rows)
                execute("BEGIN")
                conn.executemany("DELETE FROM queue WHERE id = ?", [(row[0],) for row in rows])
                execute("COMMIT")
            receive_s = time.perf_counter() - start
        finally:
            conn.close()
        return Measured(send_s, receive_s, received, disk_bytes(data))

    return run


def cases() -> list[Case]:
    notes = "INSERT + commit per message; SELECT 32 + DELETE them in one commit"
    return [
        Case("sqlite-normal", "sqlite3 table, WAL, synchronous=NORMAL", "SQLite", RELAXED,
             _run("NORMAL"), {100: 50_000, 1024: 50_000}, counterpart="pocketmq-async", notes=notes),
        Case("sqlite-full", "sqlite3 table, WAL, synchronous=FULL", "SQLite", STRICT,
             _run("FULL"), {100: 1_000, 1024: 1_000}, counterpart="pocketmq-sync", notes=notes),
    ]  # fmt: skip
