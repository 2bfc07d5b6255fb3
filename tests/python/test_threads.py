"""Threads: the GIL is released while blocked, close wakes receivers, Ctrl-C works."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pocketmq
from conftest import receive_n


def test_receive_wakes_when_another_thread_sends(broker):
    c = broker.consumer("g", "t")
    timer = threading.Timer(0.2, lambda: broker.producer("p").send("t", b"hi"))
    t0 = time.monotonic()
    timer.start()
    msgs = c.receive(timeout=5.0)
    timer.join()
    assert [m.body for m in msgs] == [b"hi"]
    assert time.monotonic() - t0 < 3.0


def test_blocked_receive_releases_the_gil(broker):
    c = broker.consumer("g", "t")
    counter = 0
    stop = threading.Event()

    def spin():
        nonlocal counter
        while not stop.is_set():
            counter += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        c.receive(timeout=0.5)
        during = counter
    finally:
        stop.set()
        t.join()
    assert during > 1000, "a Python thread kept running while receive waited"


def test_close_unblocks_a_receive_in_another_thread(broker):
    c = broker.consumer("g", "t")
    result: list = []
    t = threading.Thread(target=lambda: result.append(c.receive(timeout=30)))
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    c.close()
    t.join(5)
    assert not t.is_alive()
    assert result == [[]]
    assert time.monotonic() - t0 < 2


def test_broker_close_unblocks_receivers(broker):
    c = broker.consumer("g", "t")
    result: list = []
    t = threading.Thread(target=lambda: result.append(c.receive(timeout=None)))
    t.start()
    time.sleep(0.3)
    broker.close()
    t.join(5)
    assert result == [[]]


def test_iterator_ends_when_closed_from_another_thread(broker):
    c = broker.consumer("g", "t")
    threading.Timer(0.3, c.close).start()
    assert list(c) == []


def test_concurrent_producers_and_consumers(broker):
    broker.create_topic("t", queues=4)
    n_threads, per_thread = 4, 250
    sent: set[str] = set()
    lock = threading.Lock()

    def produce(i: int) -> None:
        p = broker.producer(f"p{i}")
        for j in range(per_thread):
            r = p.send("t", f"{i}-{j}")
            with lock:
                sent.add(r.msg_id)

    received: list[str] = []

    def consume(c: pocketmq.Consumer) -> None:
        while len(received) < n_threads * per_thread:
            msgs = c.receive(max_messages=64, timeout=0.5)
            if not msgs and len(sent) == n_threads * per_thread:
                msgs = c.receive(max_messages=64, timeout=0.5)
                if not msgs:
                    break
            for m in msgs:
                c.ack(m)
                with lock:
                    received.append(m.msg_id)

    # The group's two members join before anything is sent: a member that joins while
    # the other holds messages unacked gets some of its queues, and those messages
    # are delivered again (at least once, as RocketMQ's rebalance does).
    members = [broker.consumer("g", "t") for _ in range(2)]
    consumers = [threading.Thread(target=consume, args=(c,)) for c in members]
    producers = [threading.Thread(target=produce, args=(i,)) for i in range(n_threads)]
    for t in consumers + producers:
        t.start()
    for t in producers + consumers:
        t.join(60)
    assert len(sent) == n_threads * per_thread
    assert sorted(received) == sorted(sent), "each message exactly once across the group"
    assert broker.lag("g", "t") == 0


def test_ctrl_c_interrupts_a_blocking_receive():
    code = (
        "import pocketmq, sys\n"
        "c = pocketmq.Broker().consumer('g', 't')\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    c.receive(timeout=60)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "    sys.exit(3)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        assert time.monotonic() - t0 < 2
        assert "interrupted" in out and proc.returncode == 3
    finally:
        proc.kill()


def test_a_consumer_thread_sees_messages_sent_before_it_started(broker):
    p = broker.producer("p")
    for i in range(5):
        p.send("t", str(i))
    got: list = []
    t = threading.Thread(target=lambda: got.extend(receive_n(broker.consumer("g", "t"), 5)))
    t.start()
    t.join(10)
    assert len(got) == 5
