"""The official RocketMQ 5 Python client (rocketmq-python-client) as a benchmark
worker process, shared by bench/server_clients.py and bench/vs_rocketmq.py.

A worker says `{"ready": true}` on stdout once connected, waits for a line on stdin
(so all workers start at once), then works: a producer sends `n` messages of `size`
bytes one per call and says `{"done": n, "t": end time, "lat": [seconds per send]}`;
a consumer receives in batches and acks each message, saying `{"acked": k, "t": time}`
after each batch, until it is killed.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

BATCH = 32


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run(role: str, endpoint: str, topic: str, group: str, n: int, size: int, await_duration: int) -> None:
    from rocketmq import ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer

    config = ClientConfiguration(endpoint, Credentials(), request_timeout=10)
    if role == "produce":
        p = Producer(config, (topic,))
        p.startup()
        body = b"x" * size
        lat: list[float] = []
        emit({"ready": True})
        sys.stdin.readline()
        for _ in range(n):
            m = Message()
            m.topic = topic
            m.body = body
            t = time.perf_counter()
            p.send(m)
            lat.append(time.perf_counter() - t)
        emit({"done": n, "t": time.time(), "lat": lat})
        p.shutdown()
        return
    c = SimpleConsumer(config, group, {topic: FilterExpression()}, await_duration=await_duration)
    c.startup()
    emit({"ready": True})
    sys.stdin.readline()
    while True:
        msgs = c.receive(BATCH, 30)
        for m in msgs:
            c.ack(m)
        if msgs:
            emit({"acked": len(msgs), "t": time.time()})
