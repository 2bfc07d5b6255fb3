"""Listeners (push consumers) from Python: threads and asyncio."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict

import pytest

import pocketmq


def wait_for(what: str, done: "object") -> None:
    deadline = time.monotonic() + 20
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_return_acks_raise_nacks_retry_later_delays(timed: pocketmq.Broker, caplog: pytest.LogCaptureFixture) -> None:
    p = timed.producer("p")
    for body in ("ok", "fail", "later"):
        p.send("t", body)
    c = timed.consumer("g", "t")
    handled: list[str] = []

    def handle(msg: pocketmq.Message) -> None:
        handled.append(msg.text())
        if msg.text() == "fail":
            raise RuntimeError("boom")
        if msg.text() == "later":
            raise pocketmq.RetryLater(5.0)

    with caplog.at_level(logging.WARNING, logger="pocketmq.listener"):
        runner = c.listen(handle, threads=2)
        wait_for("three messages", lambda: len(handled) == 3)
        runner.stop()
    assert not runner.running
    assert timed.lag("g", "t") == 0
    assert timed.stats()["pending_delayed"] == 2
    [record] = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert record.exc_info is not None and "boom" in str(record.exc_info[1])


def test_stop_waits_for_running_handlers(broker: pocketmq.Broker) -> None:
    broker.producer("p").send("t", b"slow")
    c = broker.consumer("g", "t")
    started = threading.Event()

    def handle(msg: pocketmq.Message) -> None:
        started.set()
        time.sleep(0.3)

    runner = c.listen(handle, threads=2)
    assert started.wait(10)
    runner.stop()
    assert broker.lag("g", "t") == 0


def test_an_orderly_listener_keeps_each_key_in_order(broker: pocketmq.Broker) -> None:
    broker.create_topic("life", queues=4)
    p = broker.producer("p")
    for i in range(40):
        for key in "abcde":
            p.send("life", f"{key}:{i}", sharding_key=key)
    c = broker.consumer("g", "life", orderly=True)
    seen: "defaultdict[str, list[int]]" = defaultdict(list)
    lock = threading.Lock()

    def handle(msg: pocketmq.Message) -> None:
        key, i = msg.text().split(":")
        time.sleep((int(i) * 37 % 7) / 10000)
        with lock:
            seen[key].append(int(i))

    with c.listen(handle, threads=8):
        wait_for("200 messages", lambda: sum(len(v) for v in seen.values()) == 200)
    assert all(order == list(range(40)) for order in seen.values())


def test_listen_async(broker: pocketmq.Broker) -> None:
    p = broker.producer("p")
    for i in range(20):
        p.send("t", f"m{i}")
    c = broker.consumer("g", "t")
    done: list[str] = []

    async def handle(msg: pocketmq.Message) -> None:
        await asyncio.sleep(0.01)
        done.append(msg.text())
        if msg.text() == "m3" and msg.reconsume_times == 0:
            raise pocketmq.RetryLater(0)

    async def main() -> None:
        task = asyncio.ensure_future(c.listen_async(handle, concurrency=4))
        while len(done) < 21:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert sorted(set(done)) == sorted(f"m{i}" for i in range(20))
    assert done.count("m3") == 2


def test_a_simple_consumer_listens(broker: pocketmq.Broker) -> None:
    p = broker.producer("p")
    for i in range(30):
        p.send("t", f"m{i}")
    sc = broker.simple_consumer("g", "t")
    handled: list[str] = []
    with sc.listen(lambda m: handled.append(m.text()), threads=3):
        wait_for("30 messages", lambda: len(handled) == 30)
    assert broker.lag("g", "t") == 0


def test_bad_listener_arguments(broker: pocketmq.Broker) -> None:
    c = broker.consumer("g", "t")
    with pytest.raises(TypeError):
        c.listen("not callable")  # type: ignore[arg-type]
    with pytest.raises(pocketmq.InvalidArgument):
        c.listen(print, threads=0)
