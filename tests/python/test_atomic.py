"""Atomic consume-and-produce: `with broker.atomic() as tx:` applies its sends and
acks as one append at the end of the block, or nothing when the block raises."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pocketmq

from conftest import drain


def test_a_block_applies_its_sends_and_acks_together(timed: pocketmq.Broker) -> None:
    timed.producer().send("orders", b"order-42")
    c = timed.consumer("shipping", "orders")
    out = timed.consumer("audit", "shipments")
    [msg] = c.receive(timeout=0)
    with timed.atomic() as tx:
        tx.send("shipments", b"ship order-42", keys=["order-42"])
        tx.ack(c, msg)
        assert out.receive(timeout=0) == [], "invisible until the block ends"
    assert tx.results is not None and [r.topic for r in tx.results] == ["shipments"]
    assert [m.body for m in drain(out)] == [b"ship order-42"]
    assert timed.lag("shipping", "orders") == 0


def test_an_exception_in_the_block_applies_nothing(timed: pocketmq.Broker) -> None:
    timed.producer().send("orders", b"o")
    c = timed.consumer("g", "orders")
    [msg] = c.receive(timeout=0)
    with pytest.raises(RuntimeError, match="payment down"):
        with timed.atomic() as tx:
            tx.send("shipments", b"s")
            tx.ack(c, msg)
            raise RuntimeError("payment down")
    assert tx.results is None
    assert drain(timed.consumer("audit", "shipments")) == []
    assert timed.lag("g", "orders") == 1
    with pytest.raises(pocketmq.InvalidArgument, match="finished"):
        tx.send("shipments", b"late")


def test_simple_consumer_acks_join_the_block(timed: pocketmq.Broker) -> None:
    timed.producer().send("orders", b"o")
    sc = timed.simple_consumer("billing", "orders")
    [msg] = sc.receive(timeout=0)
    with timed.atomic() as tx:
        tx.ack(sc, msg)
        tx.send("invoices", b"i")
    with pytest.raises(pocketmq.InvalidReceiptHandle):
        sc.ack(msg)


def test_bad_acks_and_nesting_are_refused_and_apply_nothing(timed: pocketmq.Broker) -> None:
    p = timed.producer()
    p.send("orders", b"a")
    p.send("orders", b"b")
    c = timed.consumer("g", "orders")
    a, b = c.receive(timeout=0)
    c.ack(b)
    with pocketmq.Broker(clock=pocketmq.ManualClock(start=0)) as other:
        other.producer().send("orders", b"x")
        foreign = other.consumer("g", "orders")
        [x] = foreign.receive(timeout=0)
        with pytest.raises(pocketmq.InvalidArgument, match="another broker"):
            with timed.atomic() as tx:
                tx.send("shipments", b"s")
                tx.ack(foreign, x)
    with pytest.raises(pocketmq.InvalidArgument, match="not held"):
        with timed.atomic() as tx:
            tx.send("shipments", b"s")
            tx.ack(c, b)  # already acked
    with pytest.raises(pocketmq.InvalidArgument, match="do not nest"):
        with timed.atomic() as outer:
            outer.send("shipments", b"s")
            outer.ack(c, a)
            with timed.atomic():
                pass
    with pytest.raises(TypeError):
        with timed.atomic() as tx:
            tx.ack(object(), a)  # type: ignore[arg-type]
    assert drain(timed.consumer("audit", "shipments")) == []
    assert timed.lag("g", "orders") == 1
    c.ack(a)


def test_blocks_in_concurrent_tasks_are_not_nested(timed: pocketmq.Broker) -> None:
    async def block(i: int) -> None:
        with timed.atomic() as tx:
            tx.send("t", f"{i}".encode())
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(block(i) for i in range(4)))

    asyncio.run(main())
    assert sorted(m.body for m in drain(timed.consumer("g", "t"))) == [b"0", b"1", b"2", b"3"]


def test_async_with_applies_a_block_or_nothing_and_does_not_nest(timed: pocketmq.Broker) -> None:
    timed.producer().send("orders", b"order-42")
    c = timed.consumer("shipping", "orders")
    [msg] = c.receive(timeout=0)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="payment down"):
            async with timed.atomic() as tx:
                tx.send("shipments", b"never")
                tx.ack(c, msg)
                raise RuntimeError("payment down")
        assert tx.results is None and timed.lag("shipping", "orders") == 1
        async with timed.atomic() as tx:
            tx.send("shipments", b"ship order-42")
            await asyncio.sleep(0)
            tx.ack(c, msg)
        assert tx.results is not None and [r.topic for r in tx.results] == ["shipments"]
        with pytest.raises(pocketmq.InvalidArgument, match="do not nest"):
            async with timed.atomic():
                with timed.atomic():
                    pass

    asyncio.run(main())
    assert [m.body for m in drain(timed.consumer("audit", "shipments"))] == [b"ship order-42"]
    assert timed.lag("shipping", "orders") == 0


def test_async_with_on_a_sync_flushed_store_commits_every_block(tmp_path: Path) -> None:
    with pocketmq.Broker(tmp_path / "store", flush="sync") as b:

        async def block(i: int) -> list[pocketmq.SendResult]:
            async with b.atomic() as tx:
                tx.send("t", f"{i}".encode())
            assert tx.results is not None
            return tx.results

        async def main() -> list[list[pocketmq.SendResult]]:
            return await asyncio.gather(*(block(i) for i in range(16)))

        results = asyncio.run(main())
        assert [r.status for rs in results for r in rs] == ["SEND_OK"] * 16
        assert sorted(m.body for m in drain(b.consumer("g", "t"))) == sorted(f"{i}".encode() for i in range(16))


def test_a_committed_block_survives_a_kill(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with pocketmq.Broker(store) as b:
        b.producer().send("orders", b"o1")
    child = textwrap.dedent(
        """
        import sys, pocketmq
        b = pocketmq.Broker(sys.argv[1])
        c = b.consumer("g", "orders")
        [m] = c.receive(timeout=5)
        with b.atomic() as tx:
            tx.send("shipments", b"s1")
            tx.ack(c, m)
        print("committed", flush=True)
        sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child, str(store)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "committed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with pocketmq.Broker(store) as b:
        assert drain(b.consumer("g", "orders")) == [], "the ack held across the kill"
        assert [m.body for m in drain(b.consumer("audit", "shipments"))] == [b"s1"]
