"""Listeners (push consumers) from Python: threads and asyncio."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict

import pytest

import pocketmq


def wait_for(what: str, done: "object") -> None:
    deadline = time.monotonic() + 20
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_return_acks_raise_nacks_retry_later_delays(timed: pocketmq.Broker, caplog: pytest.LogCaptureFixture) -> None:
    p = timed.producer("p")
    for body in ("ok", "fail", "later"):
        p.send("t", body)
    c = timed.consumer("g", "t")
    handled: list[str] = []

    def handle(msg: pocketmq.Message) -> None:
        handled.append(msg.text())
        if msg.text() == "fail":
            raise RuntimeError("boom")
        if msg.text() == "later":
            raise pocketmq.RetryLater(5.0)

    with caplog.at_level(logging.WARNING, logger="pocketmq.listener"):
        runner = c.listen(handle, threads=2)
        wait_for("three messages", lambda: len(handled) == 3)
        runner.stop()
    assert not runner.running
    assert timed.lag("g", "t") == 2, "the two retried ones wait for a redelivery"
    assert timed.stats()["pending_delayed"] == 2
    [record] = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert record.exc_info is not None and "boom" in str(record.exc_info[1])


def test_stop_waits_for_running_handlers(broker: pocketmq.Broker) -> None:
    broker.producer("p").send("t", b"slow")
    c = broker.consumer("g", "t")
    started = threading.Event()

    def handle(msg: pocketmq.Message) -> None:
        started.set()
        time.sleep(0.3)

    runner = c.listen(handle, threads=2)
    assert started.wait(10)
    runner.stop()
    assert broker.lag("g", "t") == 0


def test_an_orderly_listener_keeps_each_key_in_order(broker: pocketmq.Broker) -> None:
    broker.create_topic("life", queues=4)
    p = broker.producer("p")
    for i in range(40):
        for key in "abcde":
            p.send("life", f"{key}:{i}", sharding_key=key)
    c = broker.consumer("g", "life", orderly=True)
    seen: "defaultdict[str, list[int]]" = defaultdict(list)
    lock = threading.Lock()

    def handle(msg: pocketmq.Message) -> None:
        key, i = msg.text().split(":")
        time.sleep((int(i) * 37 % 7) / 10000)
        with lock:
            seen[key].append(int(i))

    with c.listen(handle, threads=8):
        wait_for("200 messages", lambda: sum(len(v) for v in seen.values()) == 200)
    assert all(order == list(range(40)) for order in seen.values())


def test_listen_async(broker: pocketmq.Broker) -> None:
    p = broker.producer("p")
    for i in range(20):
        p.send("t", f"m{i}")
    c = broker.consumer("g", "t")
    done: list[str] = []

    async def handle(msg: pocketmq.Message) -> None:
        await asyncio.sleep(0.01)
        done.append(msg.text())
        if msg.text() == "m3" and msg.reconsume_times == 0:
            raise pocketmq.RetryLater(0)

    async def main() -> None:
        task = asyncio.ensure_future(c.listen_async(handle, concurrency=4))
        while len(done) < 21:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert sorted(set(done)) == sorted(f"m{i}" for i in range(20))
    assert done.count("m3") == 2


def test_a_simple_consumer_listens(broker: pocketmq.Broker) -> None:
    p = broker.producer("p")
    for i in range(30):
        p.send("t", f"m{i}")
    sc = broker.simple_consumer("g", "t")
    handled: list[str] = []
    with sc.listen(lambda m: handled.append(m.text()), threads=3):
        wait_for("30 messages", lambda: len(handled) == 30)
    assert broker.lag("g", "t") == 0


def test_bad_listener_arguments(broker: pocketmq.Broker) -> None:
    c = broker.consumer("g", "t")
    with pytest.raises(TypeError):
        c.listen("not callable")  # type: ignore[arg-type]
    with pytest.raises(pocketmq.InvalidArgument):
        c.listen(print, threads=0)
    with pytest.raises(TypeError, match="callable"):
        asyncio.run(c.listen_async(42))  # type: ignore[arg-type]


def test_an_async_handler_is_refused_by_listen_and_never_acked_unrun(
    timed: pocketmq.Broker, clock: pocketmq.ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    broker = timed
    ran: list[str] = []

    async def handle(msg: pocketmq.Message) -> None:
        ran.append(msg.text())

    c = broker.consumer("g", "t")
    with pytest.raises(TypeError, match="listen_async"):
        c.listen(handle)
    # Hidden behind a lambda, the coroutine it returns is a failure, not an ack.
    broker.producer("p").send("t", "m0")
    caplog.set_level(logging.WARNING, logger="pocketmq.listener")
    with c.listen(lambda m: handle(m)):
        wait_for("the failure logged", lambda: "returned a coroutine" in caplog.text)
    assert ran == []
    # Nacked: it comes back after the retry ladder's first step.
    clock.advance(10)
    broker.tick()
    [again] = c.receive(timeout=1)
    assert (again.text(), again.reconsume_times) == ("m0", 1)


def test_retry_later_takes_only_a_finite_delay_and_listen_async_nacks_one_too_long(
    timed: pocketmq.Broker, clock: pocketmq.ManualClock
) -> None:
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(pocketmq.InvalidArgument):
            pocketmq.RetryLater(bad)
    for wrong in ("x", None, True):
        with pytest.raises(TypeError):
            pocketmq.RetryLater(wrong)  # type: ignore[arg-type]
    timed.producer("p").send("t", "m0")
    c = timed.consumer("g", "t")
    seen: list[int] = []

    async def handle(msg: pocketmq.Message) -> None:
        seen.append(msg.reconsume_times)
        if msg.reconsume_times == 0:
            raise pocketmq.RetryLater(1e12)  # beyond what a nack takes

    async def main() -> None:
        task = asyncio.ensure_future(c.listen_async(handle))
        for _ in range(400):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
            clock.advance(1.0)
            timed.tick()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    # Nacked without the delay (the retry ladder's 10 s), not left to ack_timeout.
    assert seen == [0, 1]


def test_stop_from_inside_a_handler_acks_its_message(broker: pocketmq.Broker) -> None:
    c = broker.consumer("g", "t")
    runners: list[pocketmq.Listener] = []
    outcome: list[str] = []

    def handle(msg: pocketmq.Message) -> None:
        try:
            runners[0].stop()
            outcome.append("stopped")
        except BaseException as e:  # a Rust panic would be a BaseException
            outcome.append(f"{type(e).__name__}: {e}")

    runners.append(c.listen(handle, threads=2))
    broker.producer("p").send("t", "last")  # once the handler can find its runner
    wait_for("the handler", lambda: outcome)
    wait_for("the ack", lambda: broker.lag("g", "t") == 0)
    assert outcome == ["stopped"]
    assert not runners[0].running


def test_a_listener_keeps_its_consumer_alive(broker: pocketmq.Broker) -> None:
    p = broker.producer("p")
    for i in range(5):
        p.send("t", f"m{i}")
    handled: list[str] = []
    # No name holds the consumer: the runner does.
    runner = broker.consumer("g", "t").listen(lambda m: handled.append(m.text()))
    simple = broker.simple_consumer("s", "t").listen(lambda m: handled.append(m.text()))
    wait_for("both groups' messages", lambda: len(handled) == 10)
    assert runner.running and simple.running
    runner.stop()
    simple.stop()


def test_slow_handlers_run_on_all_threads(broker: pocketmq.Broker) -> None:
    p = broker.producer("p")
    for i in range(8):
        p.send("t", f"m{i}")
    lock = threading.Lock()
    running = [0, 0]  # now, most at once

    def handle(msg: pocketmq.Message) -> None:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1

    with broker.consumer("g", "t").listen(handle, threads=4):
        wait_for("all eight", lambda: broker.lag("g", "t") == 0)
    assert running[1] >= 2, "one thread took them all"


def test_a_simple_listener_acks_the_delivery_its_handler_extended(timed: pocketmq.Broker) -> None:
    timed.producer("p").send("t", "long-job")
    sc = timed.simple_consumer("s", "t", invisible_duration=30.0)
    calls: list[str] = []

    def handle(msg: pocketmq.Message) -> None:
        calls.append(msg.text())
        sc.change_invisible_duration(msg, 60.0)

    with sc.listen(handle, threads=1):
        wait_for("the ack", lambda: timed.lag("s", "t") == 0)
    assert calls == ["long-job"]


def test_cancelled_listen_async_gives_its_messages_back_at_once(timed: pocketmq.Broker) -> None:
    p = timed.producer("p")
    for i in range(3):
        p.send("t", f"s{i}")
    c = timed.consumer("g", "t")
    started: list[str] = []

    async def handle(msg: pocketmq.Message) -> None:
        started.append(msg.text())
        await asyncio.sleep(3600)

    async def main() -> None:
        task = asyncio.ensure_future(c.listen_async(handle, concurrency=4))
        while len(started) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    # Back at once (no clock advance), not after the 900 s ack deadline.
    again = []
    while len(again) < 3:
        msgs = c.receive(max_messages=8, timeout=5.0)
        assert msgs, f"got back only {again}"
        again.extend(msgs)
        c.ack(msgs)
    assert sorted(m.text() for m in again) == ["s0", "s1", "s2"]


def test_listen_async_concurrency_must_be_at_least_one(broker: pocketmq.Broker) -> None:
    c = broker.consumer("g", "t")
    for bad in (0, -3):
        with pytest.raises(pocketmq.InvalidArgument):
            asyncio.run(c.listen_async(lambda m: asyncio.sleep(0), concurrency=bad))
    with pytest.raises(TypeError):
        asyncio.run(c.listen_async(lambda m: asyncio.sleep(0), concurrency="4"))  # type: ignore[arg-type]


def test_ctrl_c_interrupts_a_stop_waiting_for_a_slow_handler(tmp_path: "object") -> None:
    import signal
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", """
import sys, threading, time, pocketmq
b = pocketmq.Broker()
b.producer("p").send("t", "slow")
started = threading.Event()
def handle(msg):
    started.set()
    time.sleep(6)
runner = b.consumer("g", "t").listen(handle, threads=1)
started.wait(10)
print("stopping", flush=True)
t0 = time.monotonic()
try:
    runner.stop()
    print("stopped", flush=True)
except KeyboardInterrupt:
    print(f"interrupted {time.monotonic() - t0:.1f}", flush=True)
"""], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "stopping"
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert out.startswith("interrupted"), (out, err)
    assert float(out.split()[1]) < 4.0, out


def test_retry_later_takes_a_timedelta(timed: pocketmq.Broker, clock: pocketmq.ManualClock) -> None:
    import datetime

    timed.producer("p").send("t", b"later")
    c = timed.consumer("g", "t")
    tries: list[int] = []

    def handle(msg: pocketmq.Message) -> None:
        tries.append(msg.reconsume_times)
        if len(tries) == 1:
            raise pocketmq.RetryLater(datetime.timedelta(seconds=30))

    assert pocketmq.RetryLater(datetime.timedelta(minutes=1)).delay == 60.0
    runner = c.listen(handle, threads=1)
    wait_for("the first try", lambda: len(tries) == 1)
    time.sleep(0.3)
    assert tries == [0], "not before its delay"
    clock.advance(30)
    timed.tick()
    wait_for("the retry", lambda: len(tries) == 2)
    runner.stop()
    assert tries == [0, 1]


_AT_EXIT = {
    "a listener still handling messages": """
        import time, pocketmq
        b = pocketmq.Broker({store})
        p = b.producer("p")
        for i in range(500):
            p.send("t", b"x")
        b.consumer("g", "t").listen(lambda m: time.sleep(0.01), threads=2)
        time.sleep(0.3)
    """,
    "a daemon thread iterating a consumer": """
        import threading, time, pocketmq
        b = pocketmq.Broker({store})
        c = b.consumer("g", "t")
        def work():
            for msg in c:
                c.ack(msg)
        threading.Thread(target=work, daemon=True).start()
        time.sleep(0.2)
    """,
}


@pytest.mark.parametrize("case", sorted(_AT_EXIT))
def test_a_program_ends_cleanly_with_pocketmq_calls_running(case: str, tmp_path: "object") -> None:
    # A thread inside a pocketmq call at interpreter exit used to abort the process
    # (SIGABRT, "FATAL: exception not rethrown") in most runs.
    for store in ("", repr(str(tmp_path))):
        code = textwrap.dedent(_AT_EXIT[case]).format(store=store)
        for _ in range(3):
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, (store, done.returncode, done.stderr[-2000:])
