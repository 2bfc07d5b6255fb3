"""pocketmq through its Python package, as a user calls it.

Three stores: memory, file with `flush="async"` (relaxed) and file with
`flush="sync"` (strict: a send returns once the CommitLog is on disk). Sends
are one `send` per message, or `send_batch` of SEND_BATCH bodies; the strict
store also runs with several producer threads sharing one broker, where
concurrent sends share an fsync. Receiving is `receive(max_messages=32)` and
one `ack` per message (the package has no batch ack).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import pocketmq
from workload import (
    NONE,
    RECEIVE_BATCH,
    RELAXED,
    SEND_BATCH,
    STRICT,
    Case,
    Measured,
    chunks,
    disk_bytes,
    run_producers,
)

TOPIC = "bench"
STRICT_PRODUCERS = 8


def versions() -> dict[str, str]:
    return {"pocketmq": pocketmq.__version__}


def _run(flush: Optional[str], batched: bool, producers: int) -> Callable[[list[bytes], Path], Measured]:
    def run(bodies: list[bytes], workdir: Path) -> Measured:
        store = workdir / "store"
        broker = pocketmq.Broker() if flush is None else pocketmq.Broker(str(store), flush=flush)
        try:
            broker.create_topic(TOPIC)
            not_ok = 0

            def make_sender() -> Callable[[Sequence[bytes]], None]:
                p = broker.producer(group="bench-producer")

                def send_each(part: Sequence[bytes]) -> None:
                    nonlocal not_ok
                    if flush == "sync":
                        for body in part:
                            if p.send(TOPIC, body).status != "SEND_OK":
                                not_ok += 1
                    else:
                        for body in part:
                            p.send(TOPIC, body)

                def send_batches(part: Sequence[bytes]) -> None:
                    nonlocal not_ok
                    for chunk in chunks(part, SEND_BATCH):
                        results = p.send_batch(TOPIC, chunk)
                        if flush == "sync" and results[-1].status != "SEND_OK":
                            not_ok += len(results)

                return send_batches if batched else send_each

            send_s = run_producers(bodies, producers, make_sender)
            if not_ok:
                raise RuntimeError(f"{not_ok} sends were not SEND_OK")

            consumer = broker.consumer(group="bench-consumer", topic=TOPIC)
            received: list[bytes] = []
            append = received.append
            n = len(bodies)
            empty = 0
            start = time.perf_counter()
            while len(received) < n:
                msgs = consumer.receive(max_messages=RECEIVE_BATCH, timeout=1.0)
                if not msgs:
                    empty += 1
                    if empty == 3:
                        break
                    continue
                for msg in msgs:
                    append(msg.body)
                    consumer.ack(msg)
            receive_s = time.perf_counter() - start
            consumer.close()
        finally:
            broker.close()
        return Measured(send_s, receive_s, received, None if flush is None else disk_bytes(store))

    return run


def cases() -> list[Case]:
    fast = {100: 200_000, 1024: 200_000}
    return [
        Case("pocketmq-memory", "pocketmq memory, send", "pocketmq", NONE,
             _run(None, False, 1), fast),
        Case("pocketmq-memory-batch", f"pocketmq memory, send_batch({SEND_BATCH})", "pocketmq", NONE,
             _run(None, True, 1), fast, batched_send=True),
        Case("pocketmq-async", "pocketmq file flush=async, send", "pocketmq", RELAXED,
             _run("async", False, 1), fast),
        Case("pocketmq-async-batch", f"pocketmq file flush=async, send_batch({SEND_BATCH})", "pocketmq",
             RELAXED, _run("async", True, 1), fast, batched_send=True),
        Case("pocketmq-sync", "pocketmq file flush=sync, send", "pocketmq", STRICT,
             _run("sync", False, 1), {100: 2_000, 1024: 2_000}),
        Case("pocketmq-sync-batch", f"pocketmq file flush=sync, send_batch({SEND_BATCH})", "pocketmq",
             STRICT, _run("sync", True, 1), {100: 50_000, 1024: 50_000}, batched_send=True),
        Case(f"pocketmq-sync-{STRICT_PRODUCERS}p",
             f"pocketmq file flush=sync, send, {STRICT_PRODUCERS} producer threads", "pocketmq", STRICT,
             _run("sync", False, STRICT_PRODUCERS), {100: 16_000, 1024: 16_000},
             producers=STRICT_PRODUCERS),
    ]  # fmt: skip
