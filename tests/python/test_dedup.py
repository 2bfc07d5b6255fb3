"""Duplicate-free sends: within the broker's dedup window a repeated (topic,
dedup_id) stores nothing and returns the first send's result."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pocketmq

from conftest import T0, drain


def test_a_repeat_inside_the_window_returns_the_first_result(clock: pocketmq.ManualClock) -> None:
    with pocketmq.Broker(clock=clock, dedup_window=60.0) as b:
        b.create_topic("pay", 1)
        p = b.producer()
        first = p.send("pay", b"charge", dedup_id="pay-42")
        assert first.duplicate is False
        clock.advance(59.999)
        again = p.send("pay", b"charge again", dedup_id="pay-42")
        assert again.duplicate is True
        assert (again.msg_id, again.queue_id, again.queue_offset) == (first.msg_id, first.queue_id, first.queue_offset)
        assert "duplicate=True" in repr(again)
        clock.advance(0.001)
        later = p.send("pay", b"charge later", dedup_id="pay-42")
        assert later.duplicate is False
        got = drain(b.consumer("g", "pay"))
        assert [m.body for m in got] == [b"charge", b"charge later"]
        assert got[0].properties["DEDUP_ID"] == "pay-42"


def test_batches_take_one_dedup_id_per_body(timed: pocketmq.Broker) -> None:
    timed.create_topic("t", 1)
    p = timed.producer()
    a = p.send("t", b"a", dedup_id="A")
    rs = p.send_batch("t", [b"a2", b"b", b"plain", b"b2"], dedup_ids=["A", "B", None, "B"])
    assert [r.duplicate for r in rs] == [True, False, False, True]
    assert rs[0].msg_id == a.msg_id and rs[3].msg_id == rs[1].msg_id
    assert [m.body for m in drain(timed.consumer("g", "t"))] == [b"a", b"b", b"plain"]
    with pytest.raises(pocketmq.InvalidArgument, match="dedup_ids has 1 ids for 2 bodies"):
        p.send_batch("t", [b"x", b"y"], dedup_ids=["X"])
    # One id for the whole batch would keep its first body only: refused, none stored.
    with pytest.raises(pocketmq.InvalidArgument, match="dedup_ids=") as e:
        p.send_batch("t", [b"x", b"y"], dedup_id="X")
    assert "one dedup_id for several bodies" in str(e.value)
    with pytest.raises(pocketmq.InvalidArgument, match="not both"):
        p.send_batch("t", [b"x"], dedup_id="X", dedup_ids=["Y"])
    assert timed.lag("g", "t") == 0
    (only,) = p.send_batch("t", [b"x"], dedup_id="X")
    assert not only.duplicate


def test_an_id_of_a_deleted_topic_is_free_for_the_topic_created_again(tmp_path: Path) -> None:
    clock = pocketmq.ManualClock(start=T0)
    with pocketmq.Broker(str(tmp_path / "s"), clock=clock) as b:
        p = b.producer()
        p.send("pay", b"old", dedup_id="pay-42")
        p.send("pay", b"old later", dedup_id="pay-43", delay=30.0)
        b.delete_topic("pay")
        new = p.send("pay", b"new", dedup_id="pay-42")
        assert new.duplicate is False, "the first send went with its topic"
        assert p.send("pay", b"new later", dedup_id="pay-43").duplicate is False
        assert p.send("pay", b"again", dedup_id="pay-42").duplicate is True
    with pocketmq.Broker(str(tmp_path / "s"), clock=clock) as b:
        again = b.producer().send("pay", b"again", dedup_id="pay-42")
        assert (again.duplicate, again.msg_id) == (True, new.msg_id)
        assert b.producer().send("pay", b"again", dedup_id="pay-43").duplicate is True
        clock.advance(60.0)
        b.tick()
        assert sorted(m.body for m in drain(b.consumer("g", "pay"))) == [b"new", b"new later"]


def test_transactional_sends_dedup_and_run_their_transaction_once(timed: pocketmq.Broker) -> None:
    ran: list[bytes] = []

    def execute(m: pocketmq.Message) -> pocketmq.TxState:
        ran.append(m.body)
        return pocketmq.TxState.COMMIT

    tp = timed.transaction_producer("pay", check=lambda m: pocketmq.TxState.COMMIT)
    first = tp.send("orders", b"o1", execute=execute, dedup_id="tx-1")
    again = tp.send("orders", b"o1 again", execute=execute, dedup_id="tx-1")
    assert again.duplicate and again.msg_id == first.msg_id
    assert ran == [b"o1"]


@pytest.mark.parametrize("bad", ["", "x" * 1024, "a\x01b"])
def test_bad_dedup_ids_are_refused(timed: pocketmq.Broker, bad: str) -> None:
    p = timed.producer()
    with pytest.raises(pocketmq.InvalidArgument, match="dedup_id"):
        p.send("t", b"m", dedup_id=bad)
    with pytest.raises(pocketmq.InvalidArgument):
        p.send_batch("t", [b"ok", b"m"], dedup_ids=["fine", bad])
    with pytest.raises(pocketmq.InvalidArgument, match="reserved"):
        p.send("t", b"m", properties={"DEDUP_ID": "sneaky"})
    assert drain(timed.consumer("g", "t")) == []
    assert p.send("t", b"m", dedup_id="fine").duplicate is False


def test_the_window_survives_a_restart_and_a_kill(tmp_path: Path) -> None:
    store = tmp_path / "store"
    child = textwrap.dedent(
        """
        import os, sys, pocketmq
        b = pocketmq.Broker(sys.argv[1])
        r = b.producer().send("t", b"first", dedup_id="once")
        print(r.msg_id, flush=True)
        sys.stdin.read()  # killed here, the store left open
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child, str(store)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    msg_id = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with pocketmq.Broker(store) as b:
        again = b.producer().send("t", b"retry after the crash", dedup_id="once")
        assert again.duplicate and again.msg_id == msg_id
    with pocketmq.Broker(store) as b:
        assert b.producer().send("t", b"after a clean restart", dedup_id="once").duplicate
        assert [m.body for m in drain(b.consumer("g", "t"))] == [b"first"]


def test_dedup_window_zero_turns_it_off() -> None:
    with pocketmq.Broker(clock=pocketmq.ManualClock(start=T0), dedup_window=0) as b:
        p = b.producer()
        assert not p.send("t", b"a", dedup_id="x").duplicate
        assert not p.send("t", b"b", dedup_id="x").duplicate
    with pytest.raises(pocketmq.InvalidArgument, match="dedup_window"):
        pocketmq.Broker(dedup_window=-1)
