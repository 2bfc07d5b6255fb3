"""Shared fixtures: brokers over memory and over temporary directories.

``POCKETMQ_TARGET=serve`` makes the ``broker`` fixture a ``pocketmq.connect()`` to a
``pocketmq serve`` started once per session (each test in its own namespace), so the
producer and consumer tests run unchanged over the RocketMQ 5 protocol (``make
test-connect``); ``POCKETMQ_TARGET=rocketmq`` makes it a ``pocketmq.connect()`` to an
Apache RocketMQ 5 proxy at ``POCKETMQ_ROCKETMQ`` (default 127.0.0.1:18081, ``make
interop``; see apache.py). Tests that need what the protocol cannot carry (a
ManualClock, ``create_topic``, queue ids, ...) are skipped there, each with its reason
(``SKIP_OVER_CONNECT``, and ``SKIP_ON_APACHE`` where Apache RocketMQ decides otherwise)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

import pocketmq

# A fixed start keeps ManualClock tests independent of the wall clock.
T0 = 1_700_000_000.0

# Tests press Ctrl-C in child processes (tail -f, serve, a blocked receive). A runner
# started in the background of a non-interactive shell inherits SIGINT ignored, and
# so would every child it starts; restore the terminal's default for them.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


TARGET = os.environ.get("POCKETMQ_TARGET", "embedded")
REMOTE = TARGET in ("serve", "rocketmq")
_namespaces = itertools.count()

# Tests of the chosen files that cannot run over connect(), and why.
_NO_CLOCK = "needs a ManualClock: the server runs on its own clock"
_NO_TOPICS = "create_topic: topics are the server's to create"
_NO_QUEUE = "queue_id: the server chooses the queue over the RocketMQ 5 protocol"
_NO_START = "start=: over the protocol a new group starts at the earliest message (NotSupported)"
_NO_LAG = "lag(): the protocol reports no consumer lag (NotSupported)"
SKIP_OVER_CONNECT = {
    "test_send.py::test_send_result_fields_and_repr": "ids are the clients' 34 hex digits; results carry no queue id or CommitLog offset",
    "test_send.py::test_offsets_grow_per_queue": _NO_QUEUE,
    "test_send.py::test_queue_id_picks_the_queue": _NO_TOPICS,
    "test_send.py::test_queue_id_out_of_range_is_invalid": _NO_TOPICS,
    "test_send.py::test_sharding_key_keeps_a_key_on_one_queue": _NO_TOPICS,
    "test_send.py::test_sends_without_a_key_spread_over_queues": _NO_TOPICS,
    "test_send.py::test_send_batch_is_one_append_in_order": _NO_TOPICS,
    "test_send.py::test_default_limit_is_four_mib": "a 4 MiB + 1 body is refused by the server, as tested in test_connect.py",
    "test_send.py::test_two_delay_options_are_invalid": "checked the same way; kept embedded",
    "test_simple_consumer.py::test_threads_never_share_a_message": "1000 messages over the network: kept short in test_connect.py",
    "test_simple_consumer.py::test_bad_handles_and_durations": "mixes a simple and a classic consumer of one group, which are one kind over the protocol",
    "test_simple_consumer.py::test_bad_options_are_invalid_arguments": "max_delivery_attempts is the server's to decide (NotSupported)",
    "test_consume.py::test_receive_respects_max_messages": _NO_QUEUE,
    "test_consume.py::test_orderly_holds_a_queue_until_its_message_is_acked": _NO_QUEUE,
    "test_consume.py::test_iterating_a_consumer_yields_messages": _NO_QUEUE,
    "test_consume.py::test_start_latest_skips_earlier_messages": _NO_START,
    "test_consume.py::test_bad_start_values": _NO_START,
    "test_consume.py::test_clustering_splits_a_group_without_duplicates": _NO_TOPICS,
    "test_consume.py::test_rebalance_when_a_member_leaves": _NO_TOPICS,
    "test_consume.py::test_orderly_consumption_keeps_a_sharding_key_in_order": _NO_TOPICS,
    "test_consume.py::test_broadcasting_gives_each_member_everything": "the RocketMQ 5 clients have no broadcasting (NotSupported)",
    "test_consume.py::test_acked_messages_are_not_redelivered_and_lag_drops": _NO_LAG,
    "test_consume.py::test_lag_of_an_unknown_group_counts_everything": _NO_LAG,
    "test_consume.py::test_ack_takes_a_whole_batch": _NO_LAG,
    "test_consume.py::test_reset_offset_replays": "POP consumers have no offsets to reset (NotSupported)",
    "test_consume.py::test_reset_offset_bad_position": "POP consumers have no offsets to reset (NotSupported)",
    "test_consume.py::test_get_and_query": "the protocol has no lookup by message id (NotSupported)",
}

# Over connect() to Apache RocketMQ, in addition.
SKIP_ON_APACHE: dict[str, str] = {
    "test_consume.py::test_unacked_messages_come_back_after_the_consumer_closes": (
        "Apache revives a released message through its revive service 2-4 s later, and the "
        "test waits 3 s (it passes or not by that margin; docs/CONNECT.md)"
    ),
}


@pytest.fixture(scope="session")
def rocketmq_admin() -> Iterator[object]:
    from apache import Admin

    admin = Admin()
    yield admin
    admin.close()


@pytest.fixture(scope="session")
def serve_endpoint() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pocketmq", "serve", "--memory", "--listen", "127.0.0.1:0", "--log-level", "warn"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("pocketmq-serve listening on "), line
    yield line.rsplit(" ", 1)[1].strip()
    proc.terminate()
    proc.wait(timeout=10)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not REMOTE:
        return
    for item in items:
        key = f"{item.path.name}::{item.name.split('[')[0]}"
        if key in SKIP_OVER_CONNECT:
            item.add_marker(pytest.mark.skip(reason=f"over connect(): {SKIP_OVER_CONNECT[key]}"))
        elif TARGET == "rocketmq" and key in SKIP_ON_APACHE:
            item.add_marker(pytest.mark.skip(reason=f"on Apache RocketMQ: {SKIP_ON_APACHE[key]}"))


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Iterator[pocketmq.Broker]:
    if TARGET == "serve":
        endpoint = request.getfixturevalue("serve_endpoint")
        remote = pocketmq.connect(endpoint, namespace=f"n{os.getpid()}-{next(_namespaces)}")
        yield remote  # type: ignore[misc]
        remote.close()
        return
    if TARGET == "rocketmq":
        from apache import Broker as ApacheBroker

        admin = request.getfixturevalue("rocketmq_admin")
        endpoint = os.environ.get("POCKETMQ_ROCKETMQ", "127.0.0.1:18081")
        apache = ApacheBroker(endpoint, admin, f"p{os.getpid()}-{int(time.time())}-{next(_namespaces)}-")  # type: ignore[arg-type]
        yield apache  # type: ignore[misc]
        apache.close()
        return
    b = pocketmq.Broker()
    yield b
    b.close()


@pytest.fixture
def clock() -> pocketmq.ManualClock:
    return pocketmq.ManualClock(start=T0)


@pytest.fixture
def timed(clock: pocketmq.ManualClock) -> Iterator[pocketmq.Broker]:
    """An in-memory broker on a ManualClock (the `clock` fixture)."""
    if REMOTE:
        pytest.skip(f"over connect(): {_NO_CLOCK}")
    b = pocketmq.Broker(clock=clock)
    yield b
    b.close()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def receive_n(consumer: pocketmq.Consumer, n: int, timeout: float = 3.0) -> list[pocketmq.Message]:
    """Receives until `n` messages arrived or `timeout` seconds passed (without acking)."""
    got: list[pocketmq.Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        got.extend(consumer.receive(max_messages=n - len(got), timeout=min(left, 0.5)))
    return got


def drain(consumer: pocketmq.Consumer, timeout: float = 0.3, ack: bool = True) -> list[pocketmq.Message]:
    """Receives (and acks) until a receive comes back empty."""
    got: list[pocketmq.Message] = []
    while True:
        msgs = consumer.receive(max_messages=64, timeout=timeout)
        if not msgs:
            return got
        for m in msgs:
            if ack:
                consumer.ack(m)
        got.extend(msgs)


def run_python(code: str, *args: str, timeout: float = 60, cwd: "Path | None" = None) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter (the installed package), capturing output."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
