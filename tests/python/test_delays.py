"""Delay levels, deliver_at and delay on a ManualClock; nacks, retries and dead letters."""

from __future__ import annotations

import datetime
import time

import pytest

import pocketmq
from conftest import T0, drain


def visible(broker: pocketmq.Broker, group: str = "g", topic: str = "t") -> list[bytes]:
    broker.tick()
    c = broker.consumer(group, topic)
    got = [m.body for m in drain(c, timeout=0.1)]
    c.close()
    return got


def test_delay_level_three_is_ten_seconds(timed, clock):
    timed.producer("p").send("t", b"later", delay_level=3)
    assert visible(timed) == []
    clock.advance(9.9)
    assert visible(timed) == []
    clock.advance(0.1)
    assert visible(timed) == [b"later"]


def test_delayed_message_keeps_its_fields(timed, clock):
    timed.producer("p").send("t", b"x", delay_level=1, tags="cancel", keys=["o-1"], properties={"a": "b"})
    clock.advance(1)
    timed.tick()
    [m] = drain(timed.consumer("g", "t"))
    assert m.topic == "t" and m.tags == "cancel" and m.keys == ["o-1"] and m.properties["a"] == "b"


def test_delay_level_zero_means_no_delay(timed):
    timed.producer("p").send("t", b"now", delay_level=0)
    assert visible(timed) == [b"now"]


def test_no_delay_is_no_delay_for_batches_and_transactions_too(timed):
    # A delay is refused for a batch and a transaction; level 0 and 0 s are none.
    p = timed.producer("p")
    rs = p.send_batch("t", [b"a", b"b"], delay_level=0) + p.send_batch("t", [b"c", b"d"], delay=0)
    assert [r.recall_handle for r in rs] == [None] * 4
    tp = timed.transaction_producer("tx", check=lambda m: pocketmq.TxState.COMMIT)
    tp.send("t", b"e", execute=lambda m: pocketmq.TxState.COMMIT, delay_level=0)
    assert sorted(visible(timed)) == [b"a", b"b", b"c", b"d", b"e"]
    with pytest.raises(pocketmq.InvalidArgument, match="cannot be delayed"):
        p.send_batch("t", [b"x", b"y"], delay=1)


def test_level_above_the_last_is_clamped(clock):
    with pocketmq.Broker(clock=clock, delay_levels="1s 2s") as b:
        b.producer("p").send("t", b"x", delay_level=99)
        b.producer("p").send("t", b"y", delay_level=2**32)
        clock.advance(1.5)
        assert visible(b) == []
        clock.advance(0.5)
        assert sorted(visible(b)) == [b"x", b"y"]


def test_custom_delay_levels(clock):
    with pocketmq.Broker(clock=clock, delay_levels="2s 1m 1h") as b:
        b.producer("p").send("t", b"a", delay_level=1)
        b.producer("p").send("t", b"b", delay_level=2)
        clock.advance(1.9)
        assert visible(b) == []
        clock.advance(0.1)
        assert visible(b) == [b"a"]
        clock.advance(60)
        assert sorted(visible(b, group="g2")) == [b"a", b"b"]


def test_delay_seconds_and_timedelta(timed, clock):
    p = timed.producer("p")
    p.send("t", b"secs", delay=30.0)
    p.send("t", b"td", delay=datetime.timedelta(minutes=1))
    clock.advance(30)
    assert visible(timed) == [b"secs"]
    clock.advance(30)
    assert sorted(visible(timed, group="g2")) == [b"secs", b"td"]


def test_millisecond_precision(timed, clock):
    timed.producer("p").send("t", b"x", delay=0.25)
    clock.advance(0.249)
    assert visible(timed) == []
    clock.advance(0.001)
    assert visible(timed) == [b"x"]


def test_deliver_at_epoch_seconds(timed, clock):
    timed.producer("p").send("t", b"x", deliver_at=T0 + 3600)
    clock.advance(3599)
    assert visible(timed) == []
    clock.advance(1)
    assert visible(timed) == [b"x"]


def test_deliver_at_aware_datetime(timed, clock):
    at = datetime.datetime.fromtimestamp(T0 + 120, tz=datetime.timezone.utc)
    timed.producer("p").send("t", b"x", deliver_at=at)
    clock.advance(119)
    assert visible(timed) == []
    clock.advance(1)
    assert visible(timed) == [b"x"]


def test_deliver_at_naive_datetime_is_local_time(timed, clock):
    at = datetime.datetime.fromtimestamp(T0 + 120)  # naive, local
    timed.producer("p").send("t", b"x", deliver_at=at)
    clock.advance(119)
    assert visible(timed) == []
    clock.advance(1)
    assert visible(timed) == [b"x"]


def test_deliver_at_in_the_past_delivers_at_once(timed):
    timed.producer("p").send("t", b"x", deliver_at=T0 - 3600)
    assert visible(timed) == [b"x"]


def test_beyond_timer_max_delay_is_invalid(clock):
    with pocketmq.Broker(clock=clock, timer_max_delay=3600) as b:
        p = b.producer("p")
        p.send("t", b"ok", delay=3600)
        with pytest.raises(pocketmq.InvalidArgument):
            p.send("t", b"x", delay=3601)
        with pytest.raises(pocketmq.InvalidArgument):
            p.send("t", b"x", deliver_at=T0 + 3601)


def test_default_timer_max_delay_is_thirty_days(timed):
    p = timed.producer("p")
    p.send("t", b"ok", delay=datetime.timedelta(days=30))
    with pytest.raises(pocketmq.InvalidArgument):
        p.send("t", b"x", delay=datetime.timedelta(days=30, seconds=1))


def test_due_work_runs_on_the_next_broker_call_without_tick(timed, clock):
    timed.producer("p").send("t", b"x", delay_level=1)
    clock.advance(1)
    c = timed.consumer("g", "t")
    deadline = time.monotonic() + 3
    got: list[pocketmq.Message] = []
    while not got and time.monotonic() < deadline:
        got = c.receive(timeout=0.2)
    assert [m.body for m in got] == [b"x"]


def test_receive_timeout_is_real_time_on_a_manual_clock(timed, clock):
    c = timed.consumer("g", "t")
    t0 = time.monotonic()
    assert c.receive(timeout=0.3) == []
    assert time.monotonic() - t0 >= 0.25
    assert clock.now() == T0


def test_manual_clock_api():
    c = pocketmq.ManualClock(start=100.5)
    assert c.now() == 100.5 and c.now_ms() == 100_500
    c.advance(1.25)
    assert c.now() == 101.75
    c.advance(datetime.timedelta(seconds=1))
    assert c.now() == 102.75
    c.set(50)
    assert c.now() == 102.75, "a clock never moves backwards"
    with pytest.raises(pocketmq.InvalidArgument):
        c.advance(-1)
    with pytest.raises(TypeError):
        c.advance("1s")  # type: ignore[arg-type]
    assert abs(pocketmq.ManualClock().now() - time.time()) < 5


def test_pending_delayed_in_stats(timed):
    timed.producer("p").send("t", b"x", delay_level=5)
    assert timed.stats()["pending_delayed"] == 1


# ---- retries and dead letters ---------------------------------------------------

def redeliver(broker: pocketmq.Broker, clock: pocketmq.ManualClock, c: pocketmq.Consumer,
              seconds: float) -> list[pocketmq.Message]:
    clock.advance(seconds)
    broker.tick()
    return drain(c, timeout=0.3, ack=False)


def test_nack_redelivers_after_level_three_with_the_original_id(timed, clock):
    r = timed.producer("p").send("t", b"x", properties={"a": "1"})
    c = timed.consumer("g", "t")
    [m] = c.receive(timeout=2.0)
    c.nack(m)
    assert redeliver(timed, clock, c, 9) == []
    [again] = redeliver(timed, clock, c, 1)
    assert again.msg_id == r.msg_id
    assert again.topic == "t"
    assert again.body == b"x"
    assert again.reconsume_times == 1
    assert again.properties["a"] == "1"
    assert again.properties["RETRY_TOPIC"] == "t", "RocketMQ keeps the original topic there"
    assert again.properties["ORIGIN_MESSAGE_ID"] == r.msg_id
    original = timed.get(r.msg_id)
    assert original is not None and original.topic == "t" and original.reconsume_times == 0


def test_retry_backoff_follows_the_levels(timed, clock):
    timed.producer("p").send("t", b"x")
    c = timed.consumer("g", "t")
    [m] = c.receive(timeout=2.0)
    c.nack(m)
    [m] = redeliver(timed, clock, c, 10)  # level 3: 10s
    c.nack(m)
    assert redeliver(timed, clock, c, 29) == []  # level 4: 30s
    [m] = redeliver(timed, clock, c, 1)
    assert m.reconsume_times == 2


def test_retries_stay_in_their_group(timed, clock):
    timed.producer("p").send("t", b"x")
    a = timed.consumer("a", "t")
    b = timed.consumer("b", "t")
    [ma] = a.receive(timeout=2.0)
    [mb] = b.receive(timeout=2.0)
    b.ack(mb)
    a.nack(ma)
    clock.advance(10)
    timed.tick()
    assert len(drain(a, ack=False)) == 1
    assert drain(b) == []


def test_dead_letter_after_max_reconsume_times(timed, clock):
    r = timed.producer("p").send("t", b"poison", properties={"k": "v"})
    c = timed.consumer("g", "t", max_reconsume_times=2)
    deliveries = 0
    msgs = c.receive(timeout=2.0)
    while msgs:
        deliveries += len(msgs)
        for m in msgs:
            c.nack(m)
        msgs = redeliver(timed, clock, c, 3 * 3600)
    assert deliveries == 3
    dlq = timed.consumer("dlq-reader", "%DLQ%g")
    [dead] = drain(dlq)
    assert dead.msg_id == r.msg_id and dead.body == b"poison" and dead.properties["k"] == "v"
    assert timed.lag("g", "t") == 0


def test_default_limit_is_seventeen_deliveries(timed, clock):
    timed.producer("p").send("t", b"poison")
    c = timed.consumer("g", "t")
    deliveries = 0
    msgs = c.receive(timeout=2.0)
    while msgs and deliveries < 40:
        deliveries += len(msgs)
        for m in msgs:
            c.nack(m)
        msgs = redeliver(timed, clock, c, 3 * 3600)
    assert deliveries == 17


def test_orderly_failure_retries_in_place(timed, clock):
    p = timed.producer("p")
    p.send("t", b"first", queue_id=0)
    p.send("t", b"second", queue_id=0)
    c = timed.consumer("g", "t", orderly=True)
    [m] = c.receive(timeout=2.0)
    c.nack(m)
    clock.advance(60)
    timed.tick()
    [again] = c.receive(max_messages=10, timeout=2.0)
    assert again.body == b"first" and again.reconsume_times == 1
    c.ack(again)
    [nxt] = c.receive(max_messages=10, timeout=2.0)
    assert nxt.body == b"second"


def test_a_recalled_delayed_message_is_never_delivered(timed, clock):
    p = timed.producer("p")
    level = p.send("t", b"level", delay_level=3)
    timer = p.send("t", b"timer", deliver_at=T0 + 10)
    kept = p.send("t", b"kept", delay=10.0)
    assert p.send("t", b"now").recall_handle is None
    assert p.recall("t", level.recall_handle) is True
    assert p.recall("t", timer.recall_handle) is True
    assert p.recall("t", timer.recall_handle) is False  # recalled already
    assert timed.stats()["pending_delayed"] == 1
    clock.advance(10)
    assert sorted(visible(timed)) == [b"kept", b"now"]
    assert p.recall("t", kept.recall_handle) is False  # delivered
    with pytest.raises(pocketmq.InvalidArgument):
        p.recall("other", kept.recall_handle)


def test_a_recall_survives_a_restart(tmp_path, clock):
    with pocketmq.Broker(path=tmp_path, clock=clock) as b:
        r = b.producer("p").send("t", b"cancel", delay=60.0)
        b.producer("p").send("t", b"kept", delay=60.0)
        assert b.producer("p").recall("t", r.recall_handle)
    with pocketmq.Broker(path=tmp_path, clock=clock) as b:
        clock.advance(60)
        assert visible(b) == [b"kept"]


def test_due_work_runs_on_the_next_broker_call(timed, clock):
    timed.consumer("g", "t")
    timed.producer("p").send("t", b"later", delay=10.0)
    clock.advance(10)
    # No tick, no receive: the next call runs what came due.
    assert timed.lag("g", "t") == 1
    assert timed.stats()["pending_delayed"] == 0
    assert [m.body for m in timed.browse("t")] == [b"later"]
