"""Producers: send, send_batch, message fields and options, bad input."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest

import pocketmq
from conftest import drain, receive_n


def test_send_result_fields_and_repr(broker):
    before = int(time.time() * 1000)
    r = broker.producer("p").send("orders", b"body", tags="paid", keys=["order-42"], properties={"k": "v"})
    assert re.fullmatch(r"[0-9A-F]{32}", r.msg_id, re.IGNORECASE)
    assert r.topic == "orders"
    assert 0 <= r.queue_id < 4
    assert r.queue_offset == 0
    assert r.status == "SEND_OK"
    assert r.transaction_state is None
    text = repr(r)
    assert text.startswith("SendResult(") and r.msg_id in text and "'SEND_OK'" in text

    [m] = broker.consumer("g", "orders").receive(timeout=2.0)
    assert m.msg_id == r.msg_id
    assert m.topic == "orders" and m.queue_id == r.queue_id and m.queue_offset == 0
    assert m.commitlog_offset == r.commitlog_offset
    assert m.body == b"body" and isinstance(m.body, bytes)
    assert m.tags == "paid"
    assert m.keys == ["order-42"]
    assert m.properties["k"] == "v"
    assert m.reconsume_times == 0
    assert before - 1000 <= m.born_timestamp <= m.store_timestamp <= int(time.time() * 1000) + 1000
    assert "Message(" in repr(m) and "'paid'" in repr(m)


def test_msg_ids_are_unique(broker):
    p = broker.producer("p")
    ids = {p.send("t", b"x").msg_id for _ in range(200)}
    assert len(ids) == 200


def test_str_body_is_utf8_and_other_buffers_work(broker):
    p = broker.producer("p")
    p.send("t", "héllo")
    p.send("t", bytearray(b"ba"))
    p.send("t", memoryview(b"mv"))
    bodies = [m.body for m in receive_n(broker.consumer("g", "t"), 3)]
    assert sorted(bodies) == sorted(["héllo".encode(), b"ba", b"mv"])


def test_keys_as_one_string(broker):
    broker.producer("p").send("t", b"x", keys="order-7")
    [m] = broker.consumer("g", "t").receive(timeout=2.0)
    assert m.keys == ["order-7"]


def test_offsets_grow_per_queue(broker):
    p = broker.producer("p")
    offsets = [p.send("t", b"x", queue_id=2).queue_offset for _ in range(5)]
    assert offsets == [0, 1, 2, 3, 4]


def test_queue_id_picks_the_queue(broker):
    broker.create_topic("t", queues=8)
    assert broker.producer("p").send("t", b"x", queue_id=5).queue_id == 5


def test_queue_id_out_of_range_is_invalid(broker):
    broker.create_topic("t", queues=4)
    with pytest.raises(pocketmq.InvalidArgument):
        broker.producer("p").send("t", b"x", queue_id=4)
    with pytest.raises(pocketmq.InvalidArgument):
        broker.producer("p").send("t", b"x", queue_id=-1)


def test_sharding_key_keeps_a_key_on_one_queue(broker):
    broker.create_topic("t", queues=8)
    p = broker.producer("p")
    for key in ["order-1", "order-2", "order-3"]:
        queues = {p.send("t", b"x", sharding_key=key).queue_id for _ in range(10)}
        assert len(queues) == 1


def test_sends_without_a_key_spread_over_queues(broker):
    broker.create_topic("t", queues=4)
    p = broker.producer("p")
    assert {p.send("t", b"x").queue_id for _ in range(40)} == {0, 1, 2, 3}


def test_send_batch_is_one_append_in_order(broker):
    broker.create_topic("t", queues=4)
    rs = broker.producer("p").send_batch("t", [b"a", b"b", "c"], tags="batch", queue_id=1)
    assert [r.queue_offset for r in rs] == [0, 1, 2]
    assert all(r.queue_id == 1 and r.status == "SEND_OK" for r in rs)
    assert len({r.msg_id for r in rs}) == 3
    assert [r.commitlog_offset for r in rs] == sorted(r.commitlog_offset for r in rs)
    msgs = receive_n(broker.consumer("g", "t"), 3)
    assert [m.body for m in msgs] == [b"a", b"b", b"c"]
    assert all(m.tags == "batch" for m in msgs)


def test_send_batch_rejects_a_single_body(broker):
    with pytest.raises(TypeError):
        broker.producer("p").send_batch("t", b"ab")


def test_message_too_large():
    with pocketmq.Broker(max_message_size=1024) as b:
        p = b.producer("p")
        p.send("t", b"x" * 1024)
        with pytest.raises(pocketmq.MessageTooLarge):
            p.send("t", b"x" * 1025)
        with pytest.raises(pocketmq.MessageTooLarge):
            p.send_batch("t", [b"ok", b"x" * 2000])


def test_default_limit_is_four_mib(broker):
    p = broker.producer("p")
    p.send("t", b"x" * (4 * 1024 * 1024))
    with pytest.raises(pocketmq.MessageTooLarge):
        p.send("t", b"x" * (4 * 1024 * 1024 + 1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tags": 5},
        {"keys": 5},
        {"keys": ["ok", 5]},
        {"properties": ["k", "v"]},
        {"properties": {"k": 1}},
        {"sharding_key": 1},
        {"queue_id": "1"},
        {"delay_level": "3"},
        {"deliver_at": "tomorrow"},
        {"delay": "30s"},
    ],
)
def test_wrong_option_types_raise_type_error(broker, kwargs):
    with pytest.raises(TypeError):
        broker.producer("p").send("t", b"x", **kwargs)


def test_wrong_body_and_topic_types_raise_type_error(broker):
    p = broker.producer("p")
    with pytest.raises(TypeError):
        p.send("t", 123)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        p.send("t", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        p.send(b"t", b"x")  # type: ignore[arg-type]


def test_options_are_keyword_only(broker):
    with pytest.raises(TypeError):
        broker.producer("p").send("t", b"x", "tag")  # type: ignore[misc]


def test_negative_delay_level_is_invalid(broker):
    with pytest.raises(pocketmq.InvalidArgument):
        broker.producer("p").send("t", b"x", delay_level=-1)


def test_two_delay_options_are_invalid(broker):
    with pytest.raises(pocketmq.InvalidArgument):
        broker.producer("p").send("t", b"x", delay_level=1, delay=5)


def test_reserved_property_names_are_kept_by_the_engine(broker):
    broker.producer("p").send("t", b"x", properties={"a": "1", "b": "2"})
    [m] = drain(broker.consumer("g", "t"))
    assert {"a": "1", "b": "2"}.items() <= m.properties.items()


def test_producer_group_is_exposed(broker):
    assert broker.producer("order-service").group == "order-service"
    assert "order-service" in repr(broker.producer("order-service"))


def test_a_recalled_delayed_message_is_never_delivered(broker):
    p = broker.producer("p")
    c = broker.consumer("g", "recall")
    cancel = p.send("recall", b"cancel order 42", delay=1.5)
    kept = p.send("recall", b"kept", delay=1.5)
    assert p.send("recall", b"now").recall_handle is None
    assert isinstance(cancel.recall_handle, str)
    assert p.recall("recall", cancel.recall_handle) is True
    with pytest.raises(pocketmq.InvalidArgument):
        p.recall("elsewhere", kept.recall_handle)
    with pytest.raises(pocketmq.InvalidArgument):
        p.recall("recall", "not a handle")
    got = [m.body for m in receive_n(c, 3, timeout=4.0)]
    assert sorted(got) == [b"kept", b"now"]
    assert c.receive(timeout=0.5) == []


def test_send_async_and_send_batch_async_store_what_send_would(broker):
    async def main():
        p = broker.producer("p")
        one = await p.send_async("t", b"one", tags="a", keys=["k-1"], properties={"n": "1"})
        batch = await p.send_batch_async("t", [b"two", b"three"], tags="b")
        empty = await p.send_batch_async("t", [])
        # Many at once: each awaits its own answer.
        many = await asyncio.gather(*(p.send_async("t", f"m{i}") for i in range(20)))
        return one, batch, empty, many

    one, batch, empty, many = asyncio.run(main())
    assert one.status == "SEND_OK" and re.fullmatch(r"[0-9A-F]{32,}", one.msg_id, re.IGNORECASE)
    assert [r.status for r in batch] == ["SEND_OK", "SEND_OK"] and empty == []
    assert len({r.msg_id for r in [one, *batch, *many]}) == 23
    got = {m.msg_id: m for m in receive_n(broker.consumer("g", "t"), 23, timeout=10.0)}
    assert set(got) == {r.msg_id for r in [one, *batch, *many]}
    m = got[one.msg_id]
    assert (m.body, m.tags, m.keys, m.properties["n"]) == (b"one", "a", ["k-1"], "1")
    assert sorted(got[r.msg_id].body for r in many) == sorted(f"m{i}".encode() for i in range(20))


def test_send_async_raises_what_send_raises_when_awaited(broker):
    p = broker.producer("p")

    async def main():
        with pytest.raises(TypeError):
            await p.send_async("t", 42)
        with pytest.raises(pocketmq.InvalidArgument):
            await p.send_async("t", b"")
        with pytest.raises(TypeError):
            await p.send_batch_async("t", b"not a list")
        with pytest.raises(TypeError):
            await p.send_async("t", b"x", no_such_option=1)

    asyncio.run(main())
    assert receive_n(broker.consumer("g", "t"), 1, timeout=0.5) == [], "nothing was stored"


def test_transaction_send_async_awaits_an_async_execute(broker, caplog):
    tp = broker.transaction_producer("pay", check=lambda m: pocketmq.TxState.ROLLBACK)

    async def commit(msg):
        await asyncio.sleep(0.01)
        assert msg.body == b"commit"
        return pocketmq.TxState.COMMIT

    async def fail(msg):
        raise RuntimeError("payment service down")

    async def main():
        return await asyncio.gather(
            tp.send_async("tx", b"commit", execute=commit),
            tp.send_async("tx", b"rollback", execute=lambda m: pocketmq.TxState.ROLLBACK),
            tp.send_async("tx", b"failed", execute=fail),
        )

    with caplog.at_level(logging.ERROR, logger="pocketmq"):
        committed, rolled_back, failed = asyncio.run(main())
    assert committed.transaction_state == pocketmq.TxState.COMMIT
    assert rolled_back.transaction_state == pocketmq.TxState.ROLLBACK
    assert failed.transaction_state == pocketmq.TxState.UNKNOWN
    assert any(r.exc_info and "payment service down" in str(r.exc_info[1]) for r in caplog.records)
    c = broker.consumer("g", "tx")
    [m] = receive_n(c, 1)
    assert m.body == b"commit" and m.msg_id == committed.msg_id
    c.ack(m)
    assert c.receive(timeout=0.5) == []
