"""Simple (POP) consumers from Python: invisibility, receipt handles, attempts, the
DLQ, fifo, threads and asyncio, restart. On a ManualClock where time matters."""

from __future__ import annotations

import asyncio
import math
import threading
from pathlib import Path

import pytest

import pocketmq
from conftest import REMOTE, receive_n


def test_receive_ack_and_invisibility(timed: pocketmq.Broker, clock: pocketmq.ManualClock) -> None:
    p = timed.producer("p")
    for i in range(3):
        p.send("orders", f"m{i}")
    sc = timed.simple_consumer("billing", "orders", invisible_duration=30.0)
    got = sc.receive(16, timeout=0)
    assert len(got) == 3
    assert all(m.delivery_attempt == 1 and m.receipt_handle for m in got)
    assert sc.receive(16, timeout=0) == []
    sc.ack(got[0])
    with pytest.raises(pocketmq.InvalidReceiptHandle):
        sc.ack(got[0])
    clock.advance(29.999)
    assert sc.receive(16, timeout=0) == []
    clock.advance(0.001)
    again = sc.receive(16, timeout=0)
    assert sorted(m.text() for m in again) == sorted(m.text() for m in got[1:])
    assert all(m.delivery_attempt == 2 for m in again)
    with pytest.raises(pocketmq.InvalidReceiptHandle):
        sc.ack(got[1])
    sc.ack(again)
    assert timed.lag("billing", "orders") == 0


def test_change_invisible_duration_updates_the_handle(timed: pocketmq.Broker, clock: pocketmq.ManualClock) -> None:
    timed.producer("p").send("orders", b"x")
    sc = timed.simple_consumer("billing", "orders")
    [m] = sc.receive(timeout=0)
    old = m.receipt_handle
    sc.change_invisible_duration(m, 60.0)
    assert m.receipt_handle != old
    clock.advance(59)
    assert sc.receive(timeout=0) == []
    sc.ack(m)
    clock.advance(3600)
    assert sc.receive(timeout=0) == []


def test_the_last_attempt_goes_to_the_dlq(timed: pocketmq.Broker, clock: pocketmq.ManualClock) -> None:
    sent = timed.producer("p").send("orders", b"poison", properties={"k": "v"})
    sc = timed.simple_consumer("billing", "orders", invisible_duration=1.0, max_delivery_attempts=3)
    attempts = []
    for _ in range(10):
        attempts += [m.delivery_attempt for m in sc.receive(timeout=0)]
        clock.advance(1)
        timed.tick()
    assert attempts == [1, 2, 3]
    [dead] = timed.consumer("reader", "%DLQ%billing").receive(timeout=0)
    assert dead.msg_id == sent.msg_id
    assert dead.properties["k"] == "v" and dead.properties["RETRY_TOPIC"] == "orders"
    assert dead.properties["ORIGIN_MESSAGE_ID"] == sent.msg_id


def test_fifo_per_message_group(timed: pocketmq.Broker, clock: pocketmq.ManualClock) -> None:
    timed.create_topic("f", queues=1)
    p = timed.producer("p")
    for i in range(3):
        for key in ("A", "B"):
            p.send("f", f"{key}{i}", sharding_key=key)
    sc = timed.simple_consumer("g", "f", fifo=True)
    first = sc.receive(16, timeout=0)
    assert [m.text() for m in first] == ["A0", "B0"]
    sc.ack(first[0])
    seen = []
    for _ in range(3):
        for m in sc.receive(16, timeout=0):
            if m.text().startswith("A"):
                sc.ack(m)
            seen.append(m.text())
    assert seen == ["A1", "A2"], "A flows while B0 is held"
    clock.advance(30)
    [b0] = sc.receive(16, timeout=0)
    assert b0.text() == "B0" and b0.delivery_attempt == 2
    sc.ack(b0)
    assert [m.text() for m in sc.receive(16, timeout=0)] == ["B1"]


def test_threads_never_share_a_message(broker: pocketmq.Broker) -> None:
    p = broker.producer("p")
    p.send_batch("orders", [f"m{i}".encode() for i in range(500)])
    p.send_batch("orders", [f"n{i}".encode() for i in range(500)])
    sc = broker.simple_consumer("g", "orders")
    seen: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        while True:
            got = sc.receive(32, timeout=0.1)
            if not got:
                return
            sc.ack(got)
            with lock:
                seen.extend(m.msg_id for m in got)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 1000 and len(set(seen)) == 1000


def test_receive_async(broker: pocketmq.Broker) -> None:
    sc = broker.simple_consumer("g", "orders")

    async def main() -> list[pocketmq.Message]:
        waiting = asyncio.ensure_future(sc.receive_async(timeout=5.0))
        await asyncio.sleep(0.05)
        broker.producer("p").send("orders", b"late")
        return await waiting

    [m] = asyncio.run(main())
    assert m.text() == "late" and m.receipt_handle
    sc.ack(m)


def test_a_restart_keeps_acks_and_invisibility(tmp_path: Path, clock: pocketmq.ManualClock) -> None:
    with pocketmq.Broker(tmp_path, clock=clock) as b:
        for i in range(3):
            b.producer("p").send("orders", f"m{i}")
        sc = b.simple_consumer("g", "orders")
        got = sc.receive(16, timeout=0)
        sc.ack(got[0])
    with pocketmq.Broker(tmp_path, clock=clock) as b:
        sc = b.simple_consumer("g", "orders")
        assert sc.receive(16, timeout=0) == []
        clock.advance(30)
        again = sc.receive(16, timeout=0)
        assert sorted(m.text() for m in again) == sorted(m.text() for m in got[1:])


@pytest.mark.parametrize(
    "options",
    [
        {"invisible_duration": -1},
        {"invisible_duration": 0},
        {"invisible_duration": math.nan},
        {"max_delivery_attempts": 0},
        {"max_delivery_attempts": 2**70},
    ],
)
def test_bad_options_are_invalid_arguments(broker: pocketmq.Broker, options: dict[str, object]) -> None:
    with pytest.raises(pocketmq.InvalidArgument):
        broker.simple_consumer("g", "orders", **options)  # type: ignore[arg-type]


def test_ack_async_and_nack_async_settle_as_ack_and_nack(broker: pocketmq.Broker) -> None:
    p = broker.producer("p")
    for i in range(3):
        p.send("settle", f"m{i}".encode())
    sc = broker.simple_consumer("g", "settle")

    async def main() -> list[pocketmq.Message]:
        got: list[pocketmq.Message] = []
        for _ in range(10):
            got += await sc.receive_async(max_messages=3, timeout=1.0)
            if len(got) == 3:
                break
        first, second, third = sorted(got, key=lambda m: m.body)
        await asyncio.gather(sc.ack_async(first), sc.ack_async([second]))
        await sc.nack_async(third, delay=1.0)
        with pytest.raises(pocketmq.InvalidReceiptHandle):
            await sc.ack_async(first)
        return await sc.receive_async(timeout=15.0)

    [again] = asyncio.run(main())
    assert again.body == b"m2" and again.delivery_attempt == 2
    sc.ack(again)
    assert sc.receive(timeout=1.5) == []


def test_bad_handles_and_durations(broker: pocketmq.Broker) -> None:
    broker.producer("p").send("orders", b"x")
    sc = broker.simple_consumer("g", "orders")
    other = broker.simple_consumer("h", "orders")
    [m] = sc.receive(timeout=0)
    with pytest.raises(pocketmq.InvalidReceiptHandle):
        other.ack(m)
    with pytest.raises(pocketmq.InvalidArgument):
        sc.change_invisible_duration(m, -1)
    with pytest.raises(pocketmq.InvalidArgument):
        sc.change_invisible_duration(m, math.nan)
    with pytest.raises(TypeError):
        sc.ack("not a message")  # type: ignore[arg-type]
    classic = broker.consumer("c", "orders")
    [cm] = classic.receive(timeout=0)
    with pytest.raises(pocketmq.InvalidReceiptHandle):
        sc.ack(cm)
    assert cm.receipt_handle is None and cm.delivery_attempt == 1
    sc.ack(m)
    with pytest.raises(pocketmq.InvalidArgument):
        broker.consumer("g", "orders")  # a simple group is not a classic one


def test_a_simple_consumer_iterates_as_a_consumer_does(broker):
    import asyncio

    p = broker.producer()
    for body in (b"a", b"b", b"c"):
        p.send("iter", body)
    sc = broker.simple_consumer("g", "iter")
    it = iter(sc)
    first = next(it)
    sc.ack(first)

    async def rest() -> list[bytes]:
        got = []
        async for m in sc:
            sc.ack(m)
            got.append(m.body)
            if len(got) == 2:
                break
        return got

    assert sorted([first.body, *asyncio.run(rest())]) == [b"a", b"b", b"c"]
    sc.close()
    assert next(it, None) is None  # a loop under way ends when its consumer closes
    with pytest.raises(pocketmq.Closed):
        iter(sc)  # a new one is a call after close


def test_sql_filters(broker: pocketmq.Broker) -> None:
    p = broker.producer("p")
    for amount in ["5", "500", "50"]:
        p.send("orders", f"order of {amount}", properties={"amount": amount})
    sc = broker.simple_consumer("big", "orders", sql="amount >= 50")
    got = receive_n(sc, 2, timeout=10.0)  # type: ignore[arg-type]
    assert sorted(m.text() for m in got) == ["order of 50", "order of 500"]
    sc.ack(got)
    with pytest.raises(pocketmq.InvalidArgument, match="SQL92"):
        broker.simple_consumer("other", "orders", sql="amount >=")
    if not REMOTE:
        # Members of a group subscribe alike (over connect() the server filters each
        # receive by its own expression, docs/CONNECT.md).
        with pytest.raises(pocketmq.InvalidArgument):
            broker.simple_consumer("big", "orders", sql="amount >= 60")
