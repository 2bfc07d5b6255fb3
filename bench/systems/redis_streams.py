"""Redis Streams through redis-py (with hiredis), against a private redis-server.

Sending is XADD, one command and round trip per message, or pipelined
SEND_BATCH at a time. Receiving is XREADGROUP COUNT 32 then XACK: one XACK per
message in the unpipelined case, one XACK naming the whole batch in the
pipelined case. The AOF is on, with `appendfsync everysec` (relaxed) or
`always` (strict: the reply comes after the fsync; Redis shares one fsync among
the clients served in one event-loop pass). Several producers are separate
connections from separate threads.
"""

from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import redis
import redis_server
from workload import (
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

STREAM = "bench"
GROUP = "bench-consumer"
STRICT_PRODUCERS = 8


def versions() -> dict[str, str]:
    found = {"redis-server": redis_server.version(), "redis-py": metadata.version("redis")}
    try:
        found["hiredis"] = metadata.version("hiredis")
    except metadata.PackageNotFoundError:
        found["hiredis"] = "not installed"
    return found


def _client(port: int) -> redis.Redis:
    return redis.Redis(host=redis_server.HOST, port=port)


def _run(appendfsync: str, pipelined: bool, producers: int) -> Callable[[list[bytes], Path], Measured]:
    def run(bodies: list[bytes], workdir: Path) -> Measured:
        data = workdir / "redis"
        with redis_server.RedisServer(data, appendfsync) as server:
            client = _client(server.port)
            client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)

            def make_sender() -> Callable[[Sequence[bytes]], None]:
                r = _client(server.port)
                r.ping()  # connect before the clock starts

                def send_each(part: Sequence[bytes]) -> None:
                    xadd = r.xadd
                    for body in part:
                        xadd(STREAM, {"b": body})

                def send_pipelined(part: Sequence[bytes]) -> None:
                    for chunk in chunks(part, SEND_BATCH):
                        pipe = r.pipeline(transaction=False)
                        for body in chunk:
                            pipe.xadd(STREAM, {"b": body})
                        pipe.execute()

                return send_pipelined if pipelined else send_each

            send_s = run_producers(bodies, producers, make_sender)

            received: list[bytes] = []
            append = received.append
            n = len(bodies)
            start = time.perf_counter()
            while len(received) < n:
                reply: Any = client.xreadgroup(GROUP, "c1", {STREAM: ">"}, count=RECEIVE_BATCH)
                if not reply:
                    break
                entries = reply[0][1]
                if pipelined:
                    ids = []
                    for entry_id, fields in entries:
                        append(fields[b"b"])
                        ids.append(entry_id)
                    client.xack(STREAM, GROUP, *ids)
                else:
                    for entry_id, fields in entries:
                        append(fields[b"b"])
                        client.xack(STREAM, GROUP, entry_id)
            receive_s = time.perf_counter() - start
            client.close()
            server.stop()
        return Measured(send_s, receive_s, received, disk_bytes(data) - _log_bytes(data))

    return run


def _log_bytes(data: Path) -> int:
    log = data / "redis.log"
    return log.stat().st_blocks * 512 if log.exists() else 0


def cases() -> list[Case]:
    per_message = "XADD per message; XREADGROUP 32 + XACK per message"
    pipelined = f"XADD pipelined {SEND_BATCH}; XREADGROUP 32 + one XACK of 32 ids"
    return [
        Case("redis-everysec", "Redis Streams everysec, 1 command/msg", "redis", RELAXED,
             _run("everysec", False, 1), {100: 20_000, 1024: 20_000},
             counterpart="pocketmq-async", notes=per_message),
        Case("redis-everysec-pipe", "Redis Streams everysec, pipelined", "redis", RELAXED,
             _run("everysec", True, 1), {100: 200_000, 1024: 200_000}, batched_send=True,
             counterpart="pocketmq-async-batch", notes=pipelined),
        Case("redis-always", "Redis Streams always, 1 command/msg", "redis", STRICT,
             _run("always", False, 1), {100: 1_000, 1024: 1_000},
             counterpart="pocketmq-sync", notes=per_message),
        Case("redis-always-pipe", "Redis Streams always, pipelined", "redis", STRICT,
             _run("always", True, 1), {100: 10_000, 1024: 10_000}, batched_send=True,
             counterpart="pocketmq-sync-batch", notes=pipelined),
        Case(f"redis-always-{STRICT_PRODUCERS}p",
             f"Redis Streams always, 1 command/msg, {STRICT_PRODUCERS} producer connections", "redis",
             STRICT, _run("always", False, STRICT_PRODUCERS), {100: 2_400, 1024: 2_400},
             producers=STRICT_PRODUCERS, counterpart=f"pocketmq-sync-{STRICT_PRODUCERS}p",
             notes=per_message),
    ]  # fmt: skip
