"""Consumers: groups, acks, lag, tag filters, start positions, orderly, get/query."""

from __future__ import annotations

import datetime
import threading
import time

import pytest

import pocketmq
from conftest import drain, receive_n


def test_receive_times_out_empty(broker):
    c = broker.consumer("g", "t")
    t0 = time.monotonic()
    assert c.receive(max_messages=5, timeout=0.3) == []
    assert 0.25 <= time.monotonic() - t0 < 2.0


def test_receive_zero_timeout_does_not_wait(broker):
    c = broker.consumer("g", "t")
    t0 = time.monotonic()
    assert c.receive(timeout=0) == []
    # The default timeout is 1 s; a busy machine can take a few tenths for the call.
    assert time.monotonic() - t0 < 0.8


def test_receive_respects_max_messages(broker):
    p = broker.producer("p")
    for i in range(10):
        p.send("t", str(i), queue_id=0)
    c = broker.consumer("g", "t")
    first = c.receive(max_messages=3, timeout=2.0)
    assert 1 <= len(first) <= 3
    assert [m.body for m in first] == [str(i).encode() for i in range(len(first))]


def test_a_receive_of_zero_messages_ends_at_once_and_takes_nothing(broker):
    broker.producer("p").send("t", b"waiting")
    for c in (broker.consumer("g", "t"), broker.simple_consumer("s", "t")):
        t0 = time.monotonic()
        assert c.receive(max_messages=0, timeout=5.0) == []
        assert time.monotonic() - t0 < 2.5, "it did not wait for its timeout"
        (m,) = c.receive(max_messages=1, timeout=1.0)
        assert m.body == b"waiting"


def test_receive_argument_errors(broker):
    c = broker.consumer("g", "t")
    with pytest.raises(TypeError):
        c.receive(max_messages="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c.receive(timeout="1s")  # type: ignore[arg-type]
    with pytest.raises(pocketmq.InvalidArgument):
        c.receive(max_messages=-1)
    with pytest.raises(pocketmq.InvalidArgument):
        c.receive(timeout=-1)
    with pytest.raises(TypeError):
        c.ack("not a message")  # type: ignore[arg-type]


def test_receive_accepts_a_timedelta(broker):
    c = broker.consumer("g", "t")
    assert c.receive(timeout=datetime.timedelta(milliseconds=50)) == []


def test_a_new_group_starts_at_the_earliest_message(broker):
    p = broker.producer("p")
    p.send("t", b"before")
    c = broker.consumer("late", "t")
    assert [m.body for m in c.receive(timeout=2.0)] == [b"before"]


def test_start_latest_skips_earlier_messages(broker):
    p = broker.producer("p")
    p.send("t", b"old")
    c = broker.consumer("g", "t", start="latest")
    p.send("t", b"new")
    assert [m.body for m in receive_n(c, 1)] == [b"new"]
    assert c.receive(timeout=0.2) == []


def test_start_timestamp(timed, clock):
    p = timed.producer("p")
    p.send("t", b"old")
    clock.advance(60)
    cut = clock.now()
    clock.advance(1)
    p.send("t", b"new")
    c = timed.consumer("g", "t", start=cut)
    assert [m.body for m in drain(c)] == [b"new"]


def test_start_datetime(timed, clock):
    p = timed.producer("p")
    p.send("t", b"old")
    clock.advance(60)
    p.send("t", b"new")
    cut = datetime.datetime.fromtimestamp(clock.now() - 30, tz=datetime.timezone.utc)
    assert [m.body for m in drain(timed.consumer("g", "t", start=cut))] == [b"new"]


def test_start_applies_only_to_a_group_without_offsets(broker):
    p = broker.producer("p")
    p.send("t", b"one")
    c = broker.consumer("g", "t")
    [m] = c.receive(timeout=2.0)
    c.ack(m)
    c.close()
    p.send("t", b"two")
    c2 = broker.consumer("g", "t", start="earliest")
    assert [m.body for m in drain(c2)] == [b"two"]


def test_bad_start_values(broker):
    with pytest.raises(pocketmq.InvalidArgument):
        broker.consumer("g", "t", start="beginning")
    with pytest.raises(TypeError):
        broker.consumer("g", "t", start=[1])  # type: ignore[arg-type]


def test_acked_messages_are_not_redelivered_and_lag_drops(broker):
    p = broker.producer("p")
    for i in range(4):
        p.send("t", str(i))
    assert broker.lag("g", "t") == 4
    c = broker.consumer("g", "t")
    msgs = receive_n(c, 4)
    assert broker.lag("g", "t") == 4
    for m in msgs:
        c.ack(m)
    assert broker.lag("g", "t") == 0
    c.close()
    assert drain(broker.consumer("g", "t")) == []


def test_unacked_messages_come_back_after_the_consumer_closes(broker):
    broker.producer("p").send("t", b"x")
    c = broker.consumer("g", "t")
    [m] = c.receive(timeout=2.0)
    c.close()
    c2 = broker.consumer("g", "t")
    [again] = receive_n(c2, 1)
    assert again.msg_id == m.msg_id


def test_every_group_gets_every_message(broker):
    p = broker.producer("p")
    ids = {p.send("t", str(i)).msg_id for i in range(6)}
    for group in ["sms", "inventory", "analytics"]:
        got = drain(broker.consumer(group, "t"))
        assert {m.msg_id for m in got} == ids


def test_clustering_splits_a_group_without_duplicates(broker):
    broker.create_topic("t", queues=4)
    a = broker.consumer("g", "t")
    b = broker.consumer("g", "t")
    p = broker.producer("p")
    ids = {p.send("t", str(i), queue_id=i % 4).msg_id for i in range(40)}
    got_a = drain(a)
    got_b = drain(b)
    assert got_a and got_b, "both members of the group get a share"
    assert {m.msg_id for m in got_a}.isdisjoint({m.msg_id for m in got_b})
    assert {m.msg_id for m in got_a} | {m.msg_id for m in got_b} == ids


def test_rebalance_when_a_member_leaves(broker):
    broker.create_topic("t", queues=4)
    a = broker.consumer("g", "t")
    b = broker.consumer("g", "t")
    a.close()
    p = broker.producer("p")
    ids = {p.send("t", str(i), queue_id=i % 4).msg_id for i in range(8)}
    assert {m.msg_id for m in drain(b)} == ids


def test_broadcasting_gives_each_member_everything(broker):
    a = broker.consumer("g", "t", broadcasting=True, consumer_id="a")
    b = broker.consumer("g", "t", broadcasting=True, consumer_id="b")
    p = broker.producer("p")
    ids = {p.send("t", str(i)).msg_id for i in range(5)}
    assert {m.msg_id for m in drain(a)} == ids
    assert {m.msg_id for m in drain(b)} == ids


@pytest.mark.parametrize(
    "expr, expected",
    [("*", {"paid", "shipped", "created", None}), ("paid", {"paid"}), ("paid || shipped", {"paid", "shipped"})],
)
def test_tag_filters(broker, expr, expected):
    p = broker.producer("p")
    for tag in ["created", "paid", "shipped", None]:
        p.send("t", b"x", tags=tag)
    got = drain(broker.consumer("g", "t", tags=expr))
    assert {m.tags for m in got} == expected
    assert len(got) == len(expected)


ORDERS = [
    # body, properties, tag
    ("small-eu", {"amount": "20", "region": "eu"}, "paid"),
    ("big-eu", {"amount": "250", "region": "eu"}, "paid"),
    ("big-us", {"amount": "900", "region": "us"}, "paid"),
    ("refund", {"amount": "-50", "region": "eu"}, "refund"),
    ("no-amount", {"region": "eu"}, "paid"),
    ("bad-amount", {"amount": "lots", "region": "us"}, "paid"),
]


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("amount > 100", {"big-eu", "big-us"}),
        ("amount > 100 AND region = 'eu'", {"big-eu"}),
        ("region = 'us' OR TAGS = 'refund'", {"big-us", "bad-amount", "refund"}),
        ("amount IS NULL", {"no-amount"}),
        # A value that is no number fails the comparison, and so the whole expression.
        ("amount < 0 OR amount IS NULL", {"refund", "no-amount"}),
        # A missing property compared is NULL, and NOT NULL is NULL: not taken.
        ("region STARTSWITH 'e' AND NOT (amount > 100)", {"small-eu", "refund"}),
        ("amount BETWEEN 20 AND 250", {"small-eu", "big-eu"}),
        ("TAGS = 'paid' AND region NOT IN ('us')", {"small-eu", "big-eu", "no-amount"}),
        ("region CONTAINS 'u' AND amount <> 900", {"small-eu", "big-eu", "refund"}),
    ],
)
def test_sql_filters(broker, sql, expected):
    # RocketMQ's MessageSelector.bySql: an SQL92 expression over the properties.
    p = broker.producer("p")
    for body, props, tag in ORDERS:
        p.send("t", body, tags=tag, properties=props)
    got = drain(broker.consumer("g", "t", sql=sql))
    assert sorted(m.text() for m in got) == sorted(expected)


QUIRKS = [
    ("m-true", {"a": "true", "n": "10"}, "paid"),
    ("m-x", {"a": "x", "n": "010"}, "paid"),
    ("m-dec", {"a": "y", "n": " 1.5 ", "b": "9"}, "refund"),
    ("m-big", {"n": "3000000000", "b": "10.5"}, None),
    ("m-none", {}, None),
]


@pytest.mark.parametrize(
    "sql, expected",
    [
        # A bare property is FALSE unless missing; NOT binds tighter than =.
        ("a", set()),
        ("NOT a", {"m-true", "m-x", "m-dec"}),
        ("NOT a = 'x'", set()),
        ("a = TRUE", {"m-true"}),
        # Two properties compare as decimals; text against a number converts.
        ("n > b", {"m-big"}),
        ("n = 10", {"m-true", "m-x"}),
        ("n = '10'", {"m-true"}),
        ("n > 1.0", {"m-true", "m-x", "m-dec", "m-big"}),
        # A literal that fits 32 bits reads the text as a 32-bit number, as Java's Integer.
        ("n > 5", {"m-true", "m-x"}),
        ("n > 2999999999", {"m-big"}),
        ("TAGS IS NULL", {"m-big", "m-none"}),
        ("a IS NULL OR n > 100", {"m-big", "m-none"}),
    ],
)
def test_sql_filters_read_values_as_rocketmq_does(broker, sql, expected):
    # Each case ran against Apache RocketMQ 5.5.0 with the same result (make interop).
    p = broker.producer("p")
    for body, props, tag in QUIRKS:
        p.send("t", body, tags=tag, properties=props)
    got = drain(broker.consumer("g", "t", sql=sql))
    assert {m.text() for m in got} == expected and len(got) == len(expected)


def test_bad_sql_filters_are_invalid_arguments(broker):
    for sql in ["", "amount >", "amount > 'x'", "region = NULL", "amount = 1 region = 2", "(a = 1"]:
        with pytest.raises(pocketmq.InvalidArgument, match="SQL92"):
            broker.consumer("g", "t", sql=sql)
    with pytest.raises(pocketmq.InvalidArgument, match="tags or sql"):
        broker.consumer("g", "t", tags="paid", sql="amount > 1")
    with pytest.raises(TypeError):
        broker.consumer("g", "t", sql=5)
    # Nothing joined the group: a consumer with neither takes every message.
    broker.producer("p").send("t", b"x")
    assert [m.body for m in drain(broker.consumer("g", "t", sql=None))] == [b"x"]


def test_orderly_consumption_keeps_a_sharding_key_in_order(broker):
    broker.create_topic("t", queues=4)
    p = broker.producer("p")
    for step in ["created", "paid", "shipped", "delivered"]:
        for order in ["o1", "o2", "o3"]:
            p.send("t", f"{order} {step}", sharding_key=order)
    c = broker.consumer("g", "t", orderly=True)
    seen: dict[str, list[str]] = {}
    for m in drain(c):
        order, step = m.body.decode().split()
        seen.setdefault(order, []).append(step)
    assert seen == {o: ["created", "paid", "shipped", "delivered"] for o in ["o1", "o2", "o3"]}


def test_orderly_holds_a_queue_until_its_message_is_acked(broker):
    p = broker.producer("p")
    p.send("t", b"first", queue_id=0)
    p.send("t", b"second", queue_id=0)
    c = broker.consumer("g", "t", orderly=True)
    [m] = c.receive(max_messages=10, timeout=2.0)
    assert m.body == b"first"
    assert c.receive(max_messages=10, timeout=0.3) == []
    c.ack(m)
    [m2] = c.receive(max_messages=10, timeout=2.0)
    assert m2.body == b"second"


def test_iterating_a_consumer_yields_messages(broker):
    p = broker.producer("p")
    for i in range(3):
        p.send("t", str(i), queue_id=0)
    c = broker.consumer("g", "t")
    got = []
    for m in c:
        got.append(m.body)
        c.ack(m)
        if len(got) == 3:
            break
    assert got == [b"0", b"1", b"2"]


def test_iteration_stops_when_the_consumer_closes(broker):
    # A loop waiting for the next message ends when another thread closes its
    # consumer, as a blocked receive returns []...
    c = broker.consumer("g", "t")
    got = []
    loop = threading.Thread(target=lambda: got.extend(c))
    loop.start()
    time.sleep(0.2)
    c.close()
    loop.join(timeout=5)
    assert not loop.is_alive() and got == []
    # ...while iterating a consumer closed already is a call after close.
    for kind in (broker.consumer("g2", "t"), broker.simple_consumer("s", "t")):
        kind.close()
        with pytest.raises(pocketmq.Closed):
            iter(kind)
        with pytest.raises(pocketmq.Closed):
            kind.__aiter__()


def test_receive_after_close_raises_closed(broker):
    c = broker.consumer("g", "t")
    c.close()
    c.close()
    assert c.closed
    with pytest.raises(pocketmq.Closed):
        c.receive(timeout=0.1)


def test_reset_offset_replays(broker):
    p = broker.producer("p")
    for i in range(3):
        p.send("t", str(i))
    c = broker.consumer("g", "t")
    drain(c)
    c.close()
    assert broker.lag("g", "t") == 0
    broker.reset_offset("g", "t", to="earliest")
    assert broker.lag("g", "t") == 3
    assert len(drain(broker.consumer("g", "t"))) == 3
    broker.reset_offset("g", "t", "latest")
    assert broker.lag("g", "t") == 0


def test_reset_offset_to_a_time(timed, clock):
    p = timed.producer("p")
    p.send("t", b"old")
    clock.advance(10)
    cut = clock.now()
    p.send("t", b"new")
    drain(timed.consumer("g", "t"))
    timed.reset_offset("g", "t", to=cut)
    assert [m.body for m in drain(timed.consumer("g", "t"))] == [b"new"]


def test_reset_offset_bad_position(broker):
    with pytest.raises(pocketmq.InvalidArgument):
        broker.reset_offset("g", "t", to="start")


def test_get_and_query(broker):
    p = broker.producer("p")
    r1 = p.send("orders", b"a", keys=["order-42"])
    p.send("orders", b"b", keys=["order-7"])
    r3 = p.send("orders", b"c", keys=["x", "order-42"])
    m = broker.get(r1.msg_id)
    assert m is not None and m.body == b"a" and m.topic == "orders"
    assert broker.get("F" * 32) is None
    found = broker.query("orders", key="order-42")
    assert [f.msg_id for f in found] == [r1.msg_id, r3.msg_id]
    assert broker.query("orders", "missing") == []
    assert broker.query("other", "order-42") == []
    r4 = p.send("orders", b"d", keys="k1 k2")  # one key per word, as RocketMQ's KEYS
    for word in ("k1", "k2"):
        assert [f.msg_id for f in broker.query("orders", word)] == [r4.msg_id]
    assert broker.query("orders", "k1 k2") == []


def test_a_key_with_spaces_is_one_key_per_word(broker):
    # RocketMQ's KEYS holds the keys joined by spaces: setKeys("k1 k2") is two keys
    # (query finds the message by each: test_get_and_query).
    broker.producer("p").send("orders", b"a", keys="k1 k2")
    (m,) = broker.consumer("g", "orders").receive(timeout=5)
    assert m.keys == ["k1", "k2"]


def test_lag_of_an_unknown_group_counts_everything(broker):
    p = broker.producer("p")
    p.send("t", b"x")
    p.send("t", b"y")
    assert broker.lag("nobody", "t") == 2


def test_consumer_properties_and_repr(broker):
    c = broker.consumer(group="sms", topic="orders")
    assert c.group == "sms" and c.topic == "orders" and not c.closed
    assert "sms" in repr(c)
    with c:
        pass
    assert c.closed


def test_closing_the_broker_closes_its_consumers(broker):
    c = broker.consumer("g", "t")
    broker.close()
    assert c.closed


def test_ack_takes_a_whole_batch(broker):
    p = broker.producer("p")
    for i in range(10):
        p.send("t", str(i))
    c = broker.consumer("g", "t")
    msgs = receive_n(c, 10)
    assert len(msgs) == 10
    c.ack(msgs[:4])
    assert broker.lag("g", "t") == 6
    c.ack(tuple(msgs[4:]))
    assert broker.lag("g", "t") == 0
    with pytest.raises(TypeError):
        c.ack([msgs[0], "not a message"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        c.ack({"msg": msgs[0]})  # type: ignore[arg-type]


def test_nack_takes_a_whole_batch(timed, clock):
    p = timed.producer("p")
    for i in range(3):
        p.send("t", str(i))
    c = timed.consumer("g", "t")
    msgs = receive_n(c, 3)
    c.nack(msgs)
    clock.advance(10)
    timed.tick()
    again = receive_n(c, 3)
    assert sorted(m.msg_id for m in again) == sorted(m.msg_id for m in msgs)
    assert all(m.reconsume_times == 1 for m in again)



def test_a_nacked_message_stays_in_lag_until_a_redelivery_is_acked_or_dead_letters(timed, clock):
    p = timed.producer("p")
    for i in range(5):
        p.send("orders", str(i))
    c = timed.consumer("sms", "orders", max_reconsume_times=1)
    msgs = receive_n(c, 5)
    c.ack(msgs[:3])
    c.nack(msgs[3:])
    assert timed.lag("sms", "orders") == 2, "nacked, not acked"
    [row] = [g for g in timed.stats()["groups"] if g["group"] == "sms" and g["topic"] == "orders"]
    assert row["lag"] == 2
    clock.advance(10)
    timed.tick()
    again = receive_n(c, 2)
    assert timed.lag("sms", "orders") == 2
    c.ack(again[0])
    assert timed.lag("sms", "orders") == 1
    c.nack(again[1])  # past max_reconsume_times: to %DLQ%sms
    assert timed.lag("sms", "orders") == 0
    assert len(drain(timed.consumer("ops", "%DLQ%sms"))) == 1
