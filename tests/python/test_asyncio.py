"""asyncio: receive_async and `async for` wait on the event loop, not on threads."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest

import pocketmq


def test_receive_async_returns_waiting_messages(broker):
    broker.producer("p").send("t", b"x")

    async def main():
        c = broker.consumer("g", "t")
        return await c.receive_async(max_messages=10, timeout=1.0)

    assert [m.body for m in asyncio.run(main())] == [b"x"]


def test_receive_async_times_out_empty(broker):
    async def main():
        c = broker.consumer("g", "t")
        t0 = time.monotonic()
        msgs = await c.receive_async(timeout=0.3)
        return msgs, time.monotonic() - t0

    msgs, took = asyncio.run(main())
    assert msgs == [] and 0.25 <= took < 2


def test_receive_async_wakes_on_a_send_from_another_thread(broker):
    async def main():
        c = broker.consumer("g", "t")
        threading.Timer(0.2, lambda: broker.producer("p").send("t", b"hi")).start()
        t0 = time.monotonic()
        msgs = await c.receive_async(timeout=10)
        return msgs, time.monotonic() - t0

    msgs, took = asyncio.run(main())
    assert [m.body for m in msgs] == [b"hi"]
    assert took < 3, "woken by the send, not by the timeout"


def test_receive_async_wakes_on_a_send_from_the_loop(broker):
    async def main():
        c = broker.consumer("g", "t")
        p = broker.producer("p")

        async def send_later():
            await asyncio.sleep(0.1)
            p.send("t", b"x")

        results = await asyncio.gather(c.receive_async(timeout=10), send_later())
        return results[0]

    assert [m.body for m in asyncio.run(main())] == [b"x"]


def test_the_loop_stays_responsive_while_waiting(broker):
    async def main():
        c = broker.consumer("g", "t")
        ticks = 0

        async def ticker():
            nonlocal ticks
            for _ in range(10):
                await asyncio.sleep(0.02)
                ticks += 1

        await asyncio.gather(c.receive_async(timeout=0.4), ticker())
        return ticks

    assert asyncio.run(main()) == 10


def test_many_waiters_hold_no_threads(broker):
    async def main():
        consumers = [broker.consumer(f"g{i}", "t") for i in range(50)]
        before = threading.active_count()
        tasks = [asyncio.ensure_future(c.receive_async(timeout=5)) for c in consumers]
        await asyncio.sleep(0.2)
        during = threading.active_count()
        broker.producer("p").send("t", b"x")
        results = await asyncio.gather(*tasks)
        return before, during, results

    before, during, results = asyncio.run(main())
    assert during == before
    assert all([m.body for m in r] == [b"x"] for r in results)


def test_close_wakes_an_async_waiter(broker):
    async def main():
        c = broker.consumer("g", "t")
        asyncio.get_running_loop().call_later(0.2, c.close)
        t0 = time.monotonic()
        msgs = await c.receive_async(timeout=10)
        return msgs, time.monotonic() - t0

    msgs, took = asyncio.run(main())
    assert msgs == [] and took < 3


def test_async_for_yields_messages_until_closed(broker):
    p = broker.producer("p")
    for i in range(3):
        p.send("t", str(i), queue_id=0)

    async def main():
        c = broker.consumer("g", "t")
        got = []
        async for m in c:
            got.append(m.body)
            c.ack(m)
            if len(got) == 3:
                asyncio.get_running_loop().call_later(0.1, c.close)
        return got

    assert asyncio.run(main()) == [b"0", b"1", b"2"]


def test_cancelling_a_waiter_is_clean(broker):
    async def main():
        c = broker.consumer("g", "t")
        task = asyncio.ensure_future(c.receive_async(timeout=10))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        broker.producer("p").send("t", b"after")
        return await c.receive_async(timeout=2)

    assert [m.body for m in asyncio.run(main())] == [b"after"]


def test_a_cancel_that_arrives_with_a_message_still_cancels(broker):
    # The send wakes the waiter and the cancel comes in the same turn of the loop:
    # the cancel wins, and the message stays for the next receive.
    async def main():
        c = broker.consumer("g", "t")
        task = asyncio.ensure_future(c.receive_async(timeout=10))
        await asyncio.sleep(0.1)
        broker.producer("p").send("t", b"raced")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await c.receive_async(timeout=2)

    assert [m.body for m in asyncio.run(main())] == [b"raced"]


def test_a_listener_cancelled_as_a_message_arrives_stops(broker):
    c = broker.consumer("g", "t")
    seen = []

    async def main() -> None:
        task = asyncio.ensure_future(c.listen_async(lambda m: seen.append(m.body)))
        await asyncio.sleep(0.1)
        broker.producer("p").send("t", b"raced")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)  # a lost cancel leaves the listener running

    asyncio.run(main())
    assert seen == []
    assert broker.lag("g", "t") == 1, "the message waits for the next consumer"


def test_receive_async_argument_errors(broker):
    c = broker.consumer("g", "t")
    with pytest.raises(TypeError):
        c.receive_async(timeout="soon")  # type: ignore[arg-type]
    with pytest.raises(pocketmq.InvalidArgument):
        c.receive_async(max_messages=-2)


def test_waiters_left_at_exit_do_not_crash_the_interpreter():
    # Waits that timed out leave callbacks with the engine; its thread may fire them
    # while the interpreter shuts down. That must end quietly.
    from conftest import run_python

    code = (
        "import asyncio, pocketmq\n"
        "b = pocketmq.Broker()\n"
        "p = b.producer('p')\n"
        "p.send('t', b'1', queue_id=0); p.send('t', b'2', queue_id=0)\n"
        "c = b.consumer('g', 't', orderly=True)\n"
        "c.receive(timeout=1)\n"
        "asyncio.run(c.receive_async(timeout=0.3))\n"
        "c2 = b.consumer('g2', 't', tags='nomatch')\n"
        "asyncio.run(c2.receive_async(timeout=0.3))\n"
        "b.consumer('g3', 't').receive(timeout=1)\n"
        "print('done', flush=True)\n"
    )
    for _ in range(3):
        out = run_python(code)
        assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr
        assert "panicked" not in out.stderr and "Panic" not in out.stderr, out.stderr


def test_a_delay_coming_due_wakes_an_async_waiter(clock):
    async def main():
        with pocketmq.Broker(clock=clock) as b:
            c = b.consumer("g", "t")
            b.producer("p").send("t", b"later", delay_level=1)
            loop = asyncio.get_running_loop()

            def due():
                clock.advance(1)
                b.tick()

            loop.call_later(0.2, due)
            t0 = time.monotonic()
            msgs = await c.receive_async(timeout=5)
            return msgs, time.monotonic() - t0

    msgs, took = asyncio.run(main())
    assert [m.body for m in msgs] == [b"later"]
    assert took < 3


def test_an_async_wait_does_not_poll(broker):
    async def main():
        c = broker.consumer("g", "t")
        t0 = time.process_time()
        await c.receive_async(timeout=0.5)
        return time.process_time() - t0

    assert asyncio.run(main()) < 0.1, "half a second of waiting costs next to no CPU"


def test_listen_async_takes_a_plain_function_too(broker):
    broker.producer().send("plain", b"x")
    c = broker.consumer("g", "plain")
    seen = []

    async def main() -> None:
        task = asyncio.ensure_future(c.listen_async(lambda m: seen.append(m.body)))
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == [b"x"]
    assert broker.lag("g", "plain") == 0, "acked, not nacked with a TypeError"


def test_send_async_under_sync_flush_waits_for_the_disk_off_the_loop(tmp_path):
    async def main(b):
        p = b.producer("p")
        ran = []

        async def meanwhile():
            ran.append(True)

        other = asyncio.ensure_future(meanwhile())
        r = await p.send_async("t", b"durable", keys=["k"])
        # The loop ran another task while the send waited for its fsync.
        assert ran == [True], "send_async blocked the loop for the sync flush"
        await other
        rs = await asyncio.gather(*(p.send_async("t", f"m{i}") for i in range(20)))
        batch = await p.send_batch_async("t", [b"a", b"b"])
        return [r, *rs, *batch]

    with pocketmq.Broker(str(tmp_path / "s"), flush="sync") as b:
        results = asyncio.run(main(b))
    assert [r.status for r in results] == ["SEND_OK"] * 23
    with pocketmq.Broker(str(tmp_path / "s")) as b:
        assert {m.msg_id for m in b.browse("t", limit=100)} == {r.msg_id for r in results}


def test_send_async_without_sync_flush_stores_when_it_runs():
    async def main():
        p = broker.producer("p")
        ran = []

        async def meanwhile():
            ran.append(True)

        asyncio.ensure_future(meanwhile())
        r = await p.send_async("t", b"x")
        # Stored at once on the loop's thread: nothing else ran in between.
        return r, list(ran)

    with pocketmq.Broker() as broker:
        r, ran = asyncio.run(main())
        assert r.status == "SEND_OK" and ran == []
        assert [m.msg_id for m in broker.consumer("g", "t").receive(timeout=1.0)] == [r.msg_id]
