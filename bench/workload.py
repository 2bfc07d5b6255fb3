"""The one workload every system runs, and what a run measures.

N messages of one body size are sent to one topic (by one producer, or split
over several concurrent producers), then received and acknowledged by one
consumer. Bodies are distinct (a zero-padded sequence number, then filler), so
the received multiset can be checked exactly: same count, same digest of the
sorted bodies. Timing covers only the send loop and the receive+ack loop;
building bodies and checking them happens outside both.

A system is a list of `Case`s. A case's `run` gets the bodies and an empty
directory of its own, and returns a `Measured`; it must release everything it
opened (stores, connections, servers) before returning.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

SIZES = (100, 1024)
# Messages per batched send (pocketmq send_batch, one Redis pipeline).
SEND_BATCH = 256
# Messages per receive (pocketmq receive, XREADGROUP COUNT, SELECT .. LIMIT).
RECEIVE_BATCH = 32

# How far the durability of an acknowledged send goes.
NONE = "none"  # process memory only
RELAXED = "relaxed"  # written to the OS, flushed to disk within about a second
STRICT = "strict"  # on disk (fsync/msync) before the send returns


@dataclass
class Measured:
    send_s: float
    receive_s: float
    received: list[bytes]
    disk_bytes: Optional[int]  # allocated bytes of everything the system left on disk


@dataclass(frozen=True)
class Case:
    key: str  # stable id, used in results and ratios
    label: str  # what the table shows
    system: str  # whose version is reported ("pocketmq", "redis", ...)
    durability: str
    run: Callable[[list[bytes], Path], Measured]
    n: dict[int, int]  # messages per body size
    producers: int = 1
    batched_send: bool = False  # True when sends go SEND_BATCH at a time
    # The pocketmq case this one is compared with (same durability and send
    # shape where pocketmq has one); empty for pocketmq's own cases.
    counterpart: str = ""
    notes: str = ""


def make_bodies(n: int, size: int) -> list[bytes]:
    """`n` distinct ASCII bodies of exactly `size` bytes."""
    filler = (b"pocketmq-bench-" * (size // 15 + 1))[:size]
    return [b"%012d" % i + filler[12:] for i in range(n)]


def digest(bodies: Sequence[bytes]) -> str:
    """Order-independent digest of a multiset of bodies."""
    h = hashlib.sha256()
    for b in sorted(bodies):
        h.update(len(b).to_bytes(4, "little"))
        h.update(b)
    return h.hexdigest()


def disk_bytes(path: Path) -> int:
    """Allocated bytes (st_blocks) of every file under `path`, like `du`."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def chunks(items: Sequence[bytes], size: int) -> list[Sequence[bytes]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_producers(
    bodies: Sequence[bytes], producers: int, make_sender: Callable[[], Callable[[Sequence[bytes]], None]]
) -> float:
    """Sends `bodies` split over `producers` threads; returns the wall time.

    `make_sender()` is called once per thread before the clock starts and
    returns a function that sends one slice. Errors in a thread are re-raised.
    """
    if producers == 1:
        send = make_sender()
        return timed(lambda: send(bodies))
    slices = [bodies[i::producers] for i in range(producers)]
    senders = [make_sender() for _ in range(producers)]
    gate = threading.Barrier(producers + 1)
    errors: list[BaseException] = []

    def work(send: Callable[[Sequence[bytes]], None], part: Sequence[bytes]) -> None:
        gate.wait()
        try:
            send(part)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s, p)) for s, p in zip(senders, slices)]
    for t in threads:
        t.start()
    gate.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed
