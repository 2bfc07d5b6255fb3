"""Opening, configuring and closing brokers; topics."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

import pocketmq
from conftest import receive_n


def test_memory_broker_roundtrip(broker):
    r = broker.producer("p").send("orders", b"hello")
    c = broker.consumer("g", "orders")
    [m] = c.receive(max_messages=10, timeout=2.0)
    assert m.msg_id == r.msg_id and m.body == b"hello"
    assert broker.path is None


def test_file_broker_and_context_manager(store: Path):
    with pocketmq.Broker(store) as b:
        assert isinstance(b, pocketmq.Broker)
        assert b.path == str(store)
        b.producer("p").send("orders", b"x")
        assert not b.closed
    assert b.closed
    assert store.is_dir()


def test_path_accepts_str_and_pathlike(tmp_path: Path):
    with pocketmq.Broker(str(tmp_path / "a")) as a, pocketmq.Broker(tmp_path / "b") as b:
        assert a.path.endswith("a") and b.path.endswith("b")


def test_every_keyword_is_accepted(store: Path):
    with pocketmq.Broker(
        store,
        flush="sync",
        clock=pocketmq.ManualClock(start=1_700_000_000),
        max_message_size=1024,
        auto_create_topics=True,
        delay_levels="1s 2s 3s",
        timer_max_delay=3600,
        file_reserved_time=datetime.timedelta(hours=1),
        segment_size=1 << 20,
        transaction_timeout=1.5,
        check_interval=2,
        max_checks=3,
    ) as b:
        r = b.producer("p").send("t", b"x")
        assert r.status == "SEND_OK"


@pytest.mark.parametrize("flush", ["async", "sync", "none"])
def test_flush_modes(store: Path, flush: str):
    with pocketmq.Broker(store, flush=flush) as b:
        assert b.producer("p").send("t", b"x").status in ("SEND_OK", "FLUSH_DISK_TIMEOUT")


def test_bad_flush_is_invalid_argument():
    with pytest.raises(pocketmq.InvalidArgument, match="flush"):
        pocketmq.Broker(flush="sometimes")
    with pytest.raises(ValueError):
        pocketmq.Broker(flush="sometimes")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"flush": 1},
        {"clock": 123},
        {"max_message_size": "big"},
        {"auto_create_topics": "yes"},
        {"timer_max_delay": "1h"},
        {"transaction_timeout": "6s"},
        {"segment_size": 1.5},
    ],
)
def test_wrong_keyword_types_raise_type_error(kwargs):
    with pytest.raises(TypeError):
        pocketmq.Broker(**kwargs)


def test_path_of_wrong_type_is_type_error():
    with pytest.raises(TypeError):
        pocketmq.Broker(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_message_size": -1}, {"timer_max_delay": -5}, {"check_interval": float("nan")}, {"max_checks": -1}],
)
def test_negative_values_are_invalid(kwargs):
    with pytest.raises(pocketmq.InvalidArgument):
        pocketmq.Broker(**kwargs)


def test_bad_delay_levels_are_invalid():
    with pytest.raises(pocketmq.InvalidArgument):
        pocketmq.Broker(delay_levels="1s soon 5s")


def test_unknown_keyword_is_type_error():
    with pytest.raises(TypeError):
        pocketmq.Broker(flsh="sync")  # type: ignore[call-arg]


def test_close_twice_is_harmless(broker):
    broker.close()
    broker.close()
    assert broker.closed


def _resident() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads Linux's /proc")
def test_close_gives_a_memory_store_s_memory_back_while_the_broker_is_still_referenced():
    # A `with` block's broker stays bound after the block: close() is what frees it.
    with pocketmq.Broker() as b:
        p = b.producer("p")
        body = b"x" * 65536
        for _ in range(3200):
            p.send("t", body)
        [m] = b.consumer("g", "t").receive(max_messages=1, timeout=1.0)
        filled = _resident()
    freed = filled - _resident()
    assert freed > 150 << 20, f"{freed >> 20} MiB freed of about 200 MiB held"
    assert b.closed and m.body == body


def test_calls_after_close_raise_closed(broker):
    p = broker.producer("p")
    broker.close()
    with pytest.raises(pocketmq.Closed):
        p.send("t", b"x")
    with pytest.raises(pocketmq.Closed):
        broker.producer("p2")
    with pytest.raises(pocketmq.Closed):
        broker.consumer("g", "t")
    with pytest.raises(pocketmq.Closed):
        broker.lag("g", "t")


def test_every_broker_call_after_close_raises_closed(broker):
    sent = broker.producer("p").send("t", b"x")
    broker.close()
    calls = {
        "next_due": lambda: broker.next_due(),
        "tick": lambda: broker.tick(),
        "flush": lambda: broker.flush(),
        "stats": lambda: broker.stats(),
        "get": lambda: broker.get(sent.msg_id),
        "query": lambda: broker.query("t", key="k"),
        "query_by_time": lambda: broker.query_by_time("t", 0, 1e10),
        "browse": lambda: broker.browse("t"),
        "topics": lambda: broker.topics(),
        "create_topic": lambda: broker.create_topic("u"),
        "delete_topic": lambda: broker.delete_topic("t"),
        "progress": lambda: broker.progress("g", "t"),
        "reset_offset": lambda: broker.reset_offset("g", "t", to="earliest"),
        "dead_letters": lambda: broker.dead_letters("g"),
        "redrive": lambda: broker.redrive("g"),
        "move_backlog": lambda: broker.move_backlog("g", "t", to="w", queues=8),
        "simple_consumer": lambda: broker.simple_consumer("s", "t"),
        "transaction_producer": lambda: broker.transaction_producer(
            "tx", check=lambda m: pocketmq.TxState.COMMIT
        ),
        "atomic": lambda: broker.atomic().__enter__(),
    }
    for name, call in calls.items():
        with pytest.raises(pocketmq.Closed):
            call()
            pytest.fail(f"{name} after close did not raise Closed")


def test_create_topic_is_idempotent_and_grows(broker):
    broker.create_topic("orders", queues=4)
    broker.create_topic("orders", queues=4)
    assert broker.topics()["orders"] == 4
    broker.create_topic("orders", queues=8)
    assert broker.topics()["orders"] == 8
    broker.create_topic("orders", queues=2)
    assert broker.topics()["orders"] == 8


def test_default_queue_count_is_four(broker):
    broker.producer("p").send("auto", b"x")
    broker.create_topic("explicit")
    assert broker.topics() == {"auto": 4, "explicit": 4}


def test_topics_lists_only_user_topics(timed):
    p = timed.producer("p")
    p.send("orders", b"x", delay_level=1)
    c = timed.consumer("g", "orders")
    assert set(timed.topics()) == {"orders"}
    c.close()


@pytest.mark.parametrize("name", ["", "a b", "x" * 128, "bad/name", "ünïcode"])
def test_bad_topic_names_are_invalid(broker, name):
    with pytest.raises(pocketmq.InvalidArgument):
        broker.create_topic(name)
    with pytest.raises(pocketmq.InvalidArgument):
        broker.producer("p").send(name, b"x")


@pytest.mark.parametrize("name", ["%RETRY%g", "RMQ_SYS_TRANS_HALF_TOPIC", "SCHEDULE_TOPIC_XXXX"])
def test_reserved_topic_names_are_invalid(broker, name):
    with pytest.raises(pocketmq.InvalidArgument):
        broker.producer("p").send(name, b"x")


def test_topic_names_may_use_the_allowed_characters(broker):
    name = "A-z_0|9%" + "x" * 100
    broker.create_topic(name)
    assert name in broker.topics()


def test_auto_create_topics_off_raises_topic_not_found():
    with pocketmq.Broker(auto_create_topics=False) as b:
        with pytest.raises(pocketmq.TopicNotFound):
            b.producer("p").send("nope", b"x")
        b.create_topic("yes")
        assert b.producer("p").send("yes", b"x").topic == "yes"


def test_repr_is_readable(broker, store):
    assert repr(broker) == "Broker(memory)"
    with pocketmq.Broker(store) as b:
        assert str(store) in repr(b)


def test_stats_is_a_dict_of_sizes_lags_and_rates(broker):
    broker.create_topic("orders", queues=2)
    p = broker.producer("p")
    for i in range(3):
        p.send("orders", b"x", queue_id=i % 2)
    c = broker.consumer("g", "orders")
    msgs = c.receive(max_messages=1, timeout=2.0)
    c.ack(msgs[0])
    s = broker.stats()
    assert isinstance(s, dict)
    topic = s["topics"]["orders"]
    assert topic["messages_in"] == 3
    assert sorted(q["queue_id"] for q in topic["queues"]) == [0, 1]
    assert sum(q["max_offset"] - q["min_offset"] for q in topic["queues"]) == 3
    [group] = [g for g in s["groups"] if g["group"] == "g"]
    assert group["topic"] == "orders" and group["lag"] == 2 and group["consumers"] == 1
    assert s["commitlog_bytes"] > 0


def test_tick_runs_and_next_due_reports_pending_work(timed, clock):
    timed.tick()
    idle = timed.next_due()
    assert idle is None or idle > clock.now(), "after a tick nothing is overdue"
    timed.producer("p").send("t", b"x", delay=10)
    due = timed.next_due()
    assert due is not None and due <= clock.now() + 10 + 0.001
    clock.advance(10)
    timed.tick()
    [m] = timed.consumer("g", "t").receive(timeout=2.0)
    assert m.body == b"x"


def test_next_due_is_never_a_placeholder(clock):
    # A new broker has nothing due (not 0.0); a delayed send is due ahead of now.
    broker = pocketmq.Broker(clock=clock)
    assert broker.next_due() is None
    broker.producer("p").send("t", b"x", delay_level=1)
    due = broker.next_due()
    assert due is not None and clock.now() < due <= clock.now() + 1.0 + 0.001
    broker.close()


def test_flush_on_file_store(store):
    with pocketmq.Broker(store, flush="none") as b:
        b.producer("p").send("t", b"flushed-body-marker")
        b.flush()
        on_disk = b"".join(f.read_bytes() for f in (store / "commitlog").iterdir())
        assert b"flushed-body-marker" in on_disk


def test_a_message_acked_through_another_brokers_consumer_is_refused(broker):
    broker.producer("p").send("orders", b"x")
    c = broker.consumer("g", "orders")
    [m] = receive_n(c, 1)
    with pocketmq.Broker() as other:
        with pytest.raises(pocketmq.InvalidArgument):
            other.consumer("g", "orders").ack(m)
    c.ack(m)
    assert broker.lag("g", "orders") == 0


def test_an_orderly_queue_moves_to_a_new_member_only_once_its_message_is_settled(broker):
    broker.create_topic("o", queues=2)
    p = broker.producer("p")
    for i in range(2):
        p.send("o", f"a{i}", queue_id=0)
        p.send("o", f"b{i}", queue_id=1)
    first = broker.consumer("g", "o", orderly=True, consumer_id="c1")
    held = first.receive(32, timeout=0)
    assert sorted(m.body for m in held) == [b"a0", b"b0"]
    second = broker.consumer("g", "o", orderly=True, consumer_id="c2")
    assert second.receive(32, timeout=0) == [], "queue 1's b0 is still being handled"
    first.ack([m for m in held if m.queue_id == 1])
    assert [m.body for m in second.receive(32, timeout=0)] == [b"b1"]
