"""Consumers that never strand a message: ack deadlines, retry delays, flow control,
one subscription per group. On a ManualClock, no sleeping."""

from __future__ import annotations

import datetime

import pytest

import pocketmq


def test_an_unacked_delivery_goes_back_at_its_deadline(timed: pocketmq.Broker, clock: pocketmq.ManualClock) -> None:
    timed.producer("p").send("t", b"stuck")
    c = timed.consumer("g", "t", ack_timeout=60.0)
    [first] = c.receive(timeout=0)
    clock.advance(59.999)
    timed.tick()
    assert c.receive(timeout=0) == []
    assert timed.stats()["pending_delayed"] == 0
    clock.advance(0.001)
    timed.tick()
    assert timed.stats()["pending_delayed"] == 1, "sent back exactly at the deadline"
    clock.advance(10)
    timed.tick()
    [again] = c.receive(timeout=0)
    assert again.msg_id == first.msg_id and again.reconsume_times == 1
    c.ack(first)  # late: changes nothing
    clock.advance(60)
    timed.tick()
    assert timed.stats()["pending_delayed"] == 1


def test_ack_timeout_none_never_sends_back(timed: pocketmq.Broker, clock: pocketmq.ManualClock) -> None:
    timed.producer("p").send("t", b"held")
    c = timed.consumer("g", "t", ack_timeout=None)
    assert len(c.receive(timeout=0)) == 1
    clock.advance(30 * 86400)
    timed.tick()
    assert c.receive(timeout=0) == [] and timed.stats()["pending_delayed"] == 0


def test_nack_with_a_delay(timed: pocketmq.Broker, clock: pocketmq.ManualClock) -> None:
    timed.producer("p").send("t", b"later")
    c = timed.consumer("g", "t")
    [m] = c.receive(timeout=0)
    c.nack(m, delay=datetime.timedelta(seconds=2.5))
    clock.advance(2.499)
    timed.tick()
    assert c.receive(timeout=0) == []
    clock.advance(0.001)
    timed.tick()
    [again] = c.receive(timeout=0)
    assert again.reconsume_times == 1
    with pytest.raises(pocketmq.InvalidArgument):
        c.nack(again, delay=31 * 86400)
    with pytest.raises(pocketmq.InvalidArgument):
        c.nack(again, delay=-1)


def test_max_in_flight_caps_a_consumer(timed: pocketmq.Broker) -> None:
    p = timed.producer("p")
    for i in range(10):
        p.send("t", str(i))
    c = timed.consumer("g", "t", max_in_flight=3)
    got = c.receive(32, timeout=0)
    assert len(got) == 3
    assert c.receive(32, timeout=0) == []
    c.ack(got)
    assert len(c.receive(32, timeout=0)) == 3


def test_members_of_a_group_subscribe_alike(timed: pocketmq.Broker) -> None:
    a = timed.consumer("g", "t", tags="A")
    with pytest.raises(pocketmq.InvalidArgument, match="'A'|\"A\""):
        timed.consumer("g", "t", tags="B")
    a.close()
    timed.consumer("g", "t", tags="B")


@pytest.mark.parametrize(
    "options",
    [
        {"ack_timeout": -1},
        {"ack_timeout": 0},
        {"ack_timeout": float("nan")},
        {"max_in_flight": 0},
        {"max_in_flight": 2**64},
    ],
)
def test_bad_consumer_options_are_invalid_arguments(timed: pocketmq.Broker, options: dict[str, object]) -> None:
    with pytest.raises(pocketmq.InvalidArgument):
        timed.consumer("g", "t", **options)  # type: ignore[arg-type]


def test_wrong_option_types_are_type_errors(timed: pocketmq.Broker) -> None:
    with pytest.raises(TypeError):
        timed.consumer("g", "t", max_in_flight="many")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        timed.consumer("g", "t", colour="blue")  # type: ignore[call-arg]
