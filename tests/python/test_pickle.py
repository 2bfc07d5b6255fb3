"""Messages and send results pickle: a worker pool (multiprocessing, concurrent.futures)
takes them, and a cache keeps them."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

import pocketmq

FIELDS = (
    "msg_id", "topic", "queue_id", "queue_offset", "commitlog_offset", "body", "tags", "keys",
    "properties", "born_timestamp", "store_timestamp", "reconsume_times", "receipt_handle",
    "delivery_attempt",
)


def fields(m: pocketmq.Message) -> dict[str, object]:
    return {f: getattr(m, f) for f in FIELDS}


def handle(m: pocketmq.Message) -> tuple[str, bytes, str, int]:
    """A worker's handler: it reads the message it was given."""
    return m.msg_id, m.body.upper(), m.properties["region"], m.reconsume_times


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_received_message_pickles_with_every_field(broker, protocol):
    broker.producer("p").send("orders", b"order 7 paid", tags="paid", keys=["order-7", "c-1"],
                              properties={"region": "eu"})
    [m] = broker.consumer("g", "orders").receive(max_messages=1, timeout=2.0)
    copy = pickle.loads(pickle.dumps(m, protocol))
    assert type(copy) is pocketmq.Message
    assert fields(copy) == fields(m)
    assert copy.text() == "order 7 paid" and repr(copy) == repr(m)


def test_a_send_result_pickles(broker):
    p = broker.producer("p")
    results = [
        p.send("orders", b"a"),
        p.send("orders", b"b", delay=30.0),
        broker.transaction_producer("tx", check=lambda m: pocketmq.TxState.COMMIT).send(
            "orders", b"c", execute=lambda m: pocketmq.TxState.ROLLBACK),
    ]
    for r in results:
        copy = pickle.loads(pickle.dumps(r))
        assert type(copy) is pocketmq.SendResult and repr(copy) == repr(r)
        for f in ("msg_id", "topic", "queue_id", "queue_offset", "commitlog_offset", "status",
                  "transaction_state", "duplicate", "recall_handle"):
            assert getattr(copy, f) == getattr(r, f), f
    assert results[1].recall_handle and results[2].transaction_state == pocketmq.TxState.ROLLBACK


def test_a_process_pool_handles_received_messages_and_the_consumer_acks_them(broker):
    p = broker.producer("p")
    sent = [p.send("orders", f"order {i}".encode(), properties={"region": "eu"}).msg_id for i in range(20)]
    c = broker.consumer("g", "orders")
    got = []
    while len(got) < 20:
        batch = c.receive(max_messages=32, timeout=2.0)
        assert batch
        got += batch
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = list(pool.map(handle, got))
    assert sorted(d[0] for d in done) == sorted(sent)
    assert {d[1] for d in done} == {f"ORDER {i}".encode() for i in range(20)}
    assert {d[2] for d in done} == {"eu"} and {d[3] for d in done} == {0}
    for m in got:
        c.ack(m)
    assert broker.lag("g", "orders") == 0


def test_a_classic_consumer_acks_the_message_it_handed_out_not_a_copy(broker):
    broker.producer("p").send("orders", b"x")
    c = broker.consumer("g", "orders")
    [m] = c.receive(max_messages=1, timeout=2.0)
    with pytest.raises(pocketmq.InvalidArgument, match="not received by a consumer"):
        c.ack(pickle.loads(pickle.dumps(m)))
    assert broker.lag("g", "orders") == 1
    c.ack(m)
    assert broker.lag("g", "orders") == 0


def test_a_simple_consumer_acks_a_copy_by_its_receipt_handle(broker):
    broker.producer("p").send("orders", b"x")
    sc = broker.simple_consumer("billing", "orders", invisible_duration=30.0)
    [m] = sc.receive(max_messages=1, timeout=2.0)
    copy = pickle.loads(pickle.dumps(m))
    assert copy.receipt_handle == m.receipt_handle and copy.delivery_attempt == 1
    sc.ack(copy)
    with pytest.raises(pocketmq.InvalidReceiptHandle):
        sc.ack(m)
    assert broker.lag("billing", "orders") == 0


def test_a_damaged_pickle_is_a_clear_error():
    state = pickle.loads(pickle.dumps(pocketmq.Broker().producer("p").send("t", b"x")))
    reduced = state.__reduce__()
    bad = dict(reduced[1][0], status="LOST")
    with pytest.raises(ValueError, match="not a pickled SendResult"):
        reduced[0](bad)
    with pytest.raises(ValueError, match='no "topic"'):
        pocketmq._native._message({"msg_id": "x"})
