"""Operations (RocketMQ's mqadmin) from Python: the backlog drill, browsing, messages
by time, a group's progress, dead letters and their redrive, deleting a topic, the
store's totals, and the engine's log records in `logging`."""

from __future__ import annotations

import datetime
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pocketmq

from conftest import T0, drain

DRILL_CHILD = """
import sys, time, pocketmq
b = pocketmq.Broker(sys.argv[1])
print("OPEN", flush=True)
def step(done, total):
    print("STEP", done, total, flush=True)
    time.sleep(0.002)
moved = b.move_backlog("g", "orders", to="orders-wide", queues=12, on_progress=step)
print("DONE", moved, flush=True)
b.close()
"""


def fill(broker: pocketmq.Broker, n: int, keys: int = 20, topic: str = "orders") -> None:
    p = broker.producer("shop")
    seq = [0] * keys
    for i in range(n):
        k = i * 7 % keys
        p.send(topic, f"k{k}/{seq[k]:06}", sharding_key=f"k{k}", tags="t", keys=[f"order-{i}"],
               properties={"n": str(i)})
        seq[k] += 1


def check_copies(broker: pocketmq.Broker, topic: str, expect: set[str] | None = None) -> int:
    """Each original at most once in `topic` (exactly the `expect`ed ones, if given),
    every key's messages in order within one queue."""
    copies = broker.browse(topic, limit=10_000_000)
    bodies = [m.body.decode() for m in copies]
    assert len(bodies) == len(set(bodies)), "a message was copied twice"
    last: dict[str, tuple[int, str]] = {}
    for m in sorted(copies, key=lambda m: (m.queue_id, m.queue_offset)):
        key, seq = m.body.decode().split("/")
        if key in last:
            q, prev = last[key]
            assert q == m.queue_id and prev < seq, f"key {key} out of order"
        last[key] = (m.queue_id, seq)
    if expect is not None:
        assert set(bodies) == expect
    return len(bodies)


def test_move_backlog_moves_the_unconsumed_and_the_group_past_them(broker: pocketmq.Broker):
    broker.create_topic("orders", queues=4)
    fill(broker, 500)
    c = broker.consumer("g", "orders")
    got = c.receive(max_messages=30, timeout=0)
    c.ack(got[:20])
    acked = {m.body.decode() for m in got[:20]}
    originals = {m.body.decode(): m for m in broker.browse("orders", limit=1000)}
    lag = broker.lag("g", "orders")
    calls: list[tuple[int, int]] = []
    moved = broker.move_backlog("g", "orders", to="orders-wide", queues=16,
                                on_progress=lambda d, t: calls.append((d, t)))
    assert moved == lag == 480
    assert calls[0] == (0, lag) and calls[-1] == (lag, lag)
    assert broker.lag("g", "orders") == 0
    assert broker.topics()["orders-wide"] == 16
    assert check_copies(broker, "orders-wide", set(originals) - acked) == lag
    for copy in broker.browse("orders-wide", limit=1000):
        orig = originals[copy.body.decode()]
        assert (copy.msg_id, copy.tags, copy.keys) == (orig.msg_id, orig.tags, orig.keys)
        assert copy.properties["n"] == orig.properties["n"]
        assert copy.properties["MOVED_FROM"] == f"orders:{orig.queue_id}:{orig.queue_offset}"


def test_move_backlog_checks_its_arguments(broker: pocketmq.Broker):
    broker.producer().send("orders", b"x")
    with pytest.raises(pocketmq.InvalidArgument):
        broker.move_backlog("g", "orders", to="orders")
    with pytest.raises(pocketmq.TopicNotFound):
        broker.move_backlog("g", "nope", to="wide")
    with pytest.raises(TypeError):
        broker.move_backlog("g", "orders", to="wide", on_progress=42)  # type: ignore[arg-type]
    with pytest.raises(pocketmq.InvalidArgument):
        broker.move_backlog("g", "orders", to="wide", queues=-1)


def test_an_exception_in_on_progress_stops_the_drill_consistently(broker: pocketmq.Broker):
    broker.create_topic("orders", queues=2)
    fill(broker, 10_000)

    def stop(done: int, total: int) -> None:
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        broker.move_backlog("g", "orders", to="wide", on_progress=stop)
    copied = len(broker.browse("wide", limit=100_000))
    assert 0 < copied < 10_000
    assert broker.lag("g", "orders") == 10_000 - copied, "the group is past what was copied"
    assert broker.move_backlog("g", "orders", to="wide") == 10_000 - copied
    check_copies(broker, "wide", {m.body.decode() for m in broker.browse("orders", limit=100_000)})


def test_move_backlog_killed_at_random_points_copies_each_message_exactly_once(store: Path):
    with pocketmq.Broker(store) as b:
        b.create_topic("orders", queues=3)
        fill(b, 60_000, keys=40)
        c = b.consumer("g", "orders")
        acked: set[str] = set()
        for _ in range(10):
            got = c.receive(max_messages=100, timeout=0)
            c.ack(got)
            acked |= {m.body.decode() for m in got}
        c.close()
        unconsumed = {m.body.decode() for m in b.browse("orders", limit=100_000)} - acked
    rng = random.Random(16)
    killed_mid_drill = 0
    for cycle in range(20):
        child = subprocess.Popen([sys.executable, "-c", DRILL_CHILD, str(store)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert child.stdout is not None
        steps, seen, finished = rng.randrange(3), 0, False
        for line in child.stdout:
            if line.startswith("DONE"):
                finished = True
                break
            if line.startswith("STEP"):
                seen += 1
                if seen > steps:
                    break
            if line.startswith("OPEN") and cycle % 5 == 4:
                break
        time.sleep(rng.random() * 0.004)
        child.send_signal(signal.SIGKILL)
        rest = child.stdout.read()
        child.wait()
        finished = finished or "DONE" in rest
        killed_mid_drill += not finished
        with pocketmq.Broker(store) as b:
            if "orders-wide" in b.topics():
                check_copies(b, "orders-wide")
    assert killed_mid_drill >= 10
    with pocketmq.Broker(store) as b:
        b.move_backlog("g", "orders", to="orders-wide", queues=12)
        assert check_copies(b, "orders-wide", unconsumed) == len(unconsumed)
        assert b.lag("g", "orders") == 0


def test_browse_reads_without_consuming(broker: pocketmq.Broker):
    broker.create_topic("orders", queues=2)
    p = broker.producer()
    for i in range(10):
        p.send("orders", f"m{i}", queue_id=i % 2)
    c = broker.consumer("g", "orders")
    c.ack(c.receive(max_messages=3, timeout=0))
    lag = broker.lag("g", "orders")
    assert [m.text() for m in broker.browse("orders", limit=100)] == [f"m{i}" for i in range(10)]
    assert [m.text() for m in broker.browse("orders", queue_id=1, offset=2, limit=2)] == ["m5", "m7"]
    assert len(broker.browse("orders")) == 10
    assert broker.browse("orders", queue_id=0, offset=99) == []
    assert broker.lag("g", "orders") == lag
    with pytest.raises(pocketmq.InvalidArgument):
        broker.browse("orders", queue_id=5)
    with pytest.raises(pocketmq.InvalidArgument):
        broker.browse("orders", limit=-1)
    with pytest.raises(pocketmq.TopicNotFound):
        broker.browse("nope")


def test_query_by_time_takes_seconds_or_datetimes(timed: pocketmq.Broker, clock: pocketmq.ManualClock):
    p = timed.producer()
    for i in range(30):
        p.send("orders", f"m{i:02}")
        clock.advance(1)
    got = timed.query_by_time("orders", T0 + 10, T0 + 20)
    assert [m.text() for m in got] == [f"m{i:02}" for i in range(10, 20)]
    start = datetime.datetime.fromtimestamp(T0 + 10, tz=datetime.timezone.utc)
    got = timed.query_by_time("orders", start, start + datetime.timedelta(seconds=3), limit=2)
    assert [m.text() for m in got] == ["m10", "m11"]
    with pytest.raises(TypeError):
        timed.query_by_time("orders", "yesterday", T0)  # type: ignore[arg-type]


def test_progress_is_per_queue(timed: pocketmq.Broker, clock: pocketmq.ManualClock):
    timed.create_topic("orders", queues=2)
    p = timed.producer()
    for i in range(6):
        p.send("orders", f"m{i}", queue_id=0)
        clock.advance(1)
    c = timed.consumer("g", "orders")
    got = c.receive(max_messages=4, timeout=0)
    c.ack(got[:2])
    rows = timed.progress("g", "orders")
    assert [r["queue_id"] for r in rows] == [0, 1]
    q0 = rows[0]
    assert (q0["broker_offset"], q0["consumer_offset"], q0["lag"], q0["inflight"]) == (6, 2, 4, 2)
    assert q0["last_store_timestamp"] == int((T0 + 1) * 1000)
    assert q0["expired"] == 0
    assert rows[1]["last_store_timestamp"] is None
    assert sum(r["lag"] for r in rows) == timed.lag("g", "orders")


def test_dead_letters_and_redrive(timed: pocketmq.Broker, clock: pocketmq.ManualClock):
    c = timed.consumer("g", "orders", max_reconsume_times=1)
    other = timed.consumer("h", "orders")
    sent = [timed.producer().send("orders", f"m{i}", tags="paid").msg_id for i in range(3)]
    other.ack(drain(other))
    for _ in range(4):
        for m in drain(c, timeout=0.05, ack=False):
            c.nack(m)
        clock.advance(3600)
        timed.tick()
    dead = timed.dead_letters("g")
    assert sorted(m.msg_id for m in dead) == sorted(sent)
    assert all(m.properties["RETRY_TOPIC"] == "orders" for m in dead)
    assert len(timed.dead_letters("g", limit=2)) == 2
    seen: list[tuple[int, int]] = []
    assert timed.redrive("g", on_progress=lambda d, t: seen.append((d, t))) == 3
    assert seen[-1] == (3, 3)
    assert timed.dead_letters("g") == []
    back = drain(c, timeout=0.05)
    assert sorted(m.msg_id for m in back) == sorted(sent)
    assert all(m.reconsume_times == 0 and m.topic == "orders" for m in back)
    assert drain(other, timeout=0.05) == []
    assert timed.redrive("g") == 0


def test_a_simple_groups_dead_letters_are_redriven_to_its_members(store: Path):
    with pocketmq.Broker(store) as b:
        sent = b.producer().send("orders", b"poison", tags="pay", keys="order-1")
        sc = b.simple_consumer("billing", "orders", tags="pay", max_delivery_attempts=1)
        other = b.simple_consumer("audit", "orders")
        other.ack(other.receive(timeout=0))
        (m,) = sc.receive(timeout=0)
        sc.change_invisible_duration(m, 0)  # its last attempt: dead-lettered now
        b.tick()
        assert [d.msg_id for d in b.dead_letters("billing")] == [sent.msg_id]
        assert b.redrive("billing") == 1
        assert b.dead_letters("billing") == []
    with pocketmq.Broker(store) as b:
        sc = b.simple_consumer("billing", "orders", tags="pay")
        (back,) = sc.receive(timeout=0)
        assert (back.msg_id, back.topic, back.body, back.keys) == (
            sent.msg_id, "orders", b"poison", ["order-1"])
        assert back.delivery_attempt == 1
        sc.ack(back)
        assert b.simple_consumer("audit", "orders").receive(timeout=0) == []
        assert sc.receive(timeout=0) == []


def test_delete_topic(store: Path):
    with pocketmq.Broker(store) as b:
        r = b.producer().send("orders", b"old", keys="k")
        c = b.consumer("g", "orders")
        b.delete_topic("orders")
        assert c.receive(timeout=0) == []
        c.close()
        assert "orders" not in b.topics()
        assert b.get(r.msg_id) is None and b.query("orders", "k") == []
        with pytest.raises(pocketmq.TopicNotFound):
            b.delete_topic("orders")
    with pocketmq.Broker(store) as b:
        assert "orders" not in b.topics() and b.get(r.msg_id) is None
        b.producer().send("orders", b"new")
        assert [m.body for m in drain(b.consumer("g", "orders"))] == [b"new"]


def test_stats_totals_hold_across_processes(store: Path):
    with pocketmq.Broker(store) as b:
        for i in range(7):
            b.producer().send("orders", f"m{i}")
    code = "import sys, json, pocketmq; print(json.dumps(pocketmq.Broker(sys.argv[1]).stats()))"
    out = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True,
                         timeout=60, env={**os.environ})
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["topics"]["orders"]["messages_in"] == 7
    assert stats["messages_in"] == 7 and stats["messages_retained"] == 7


def test_dead_letter_moves_and_takeovers_reach_logging(timed: pocketmq.Broker, clock: pocketmq.ManualClock,
                                                       caplog: pytest.LogCaptureFixture, store: Path):
    caplog.set_level(logging.INFO, logger="pocketmq")
    c = timed.consumer("g", "orders", max_reconsume_times=0)
    timed.producer().send("orders", b"x")
    for m in drain(c, timeout=0.05, ack=False):
        c.nack(m)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("moved to %DLQ%g" in r.getMessage() for r in warnings), caplog.text
    assert all(r.name.startswith("pocketmq") for r in caplog.records)
    timed.redrive("g")
    assert any("redrove 1 dead letters" in r.getMessage() for r in caplog.records)
    # A store left open by a process that is gone is taken over, with a warning.
    pocketmq.Broker(store).close()
    (store / "abort").write_text("4242")
    pocketmq.Broker(store).close()
    assert any("process 4242" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records), caplog.text
