"""Shared fixtures: brokers over memory and over temporary directories."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

import pocketmq

# A fixed start keeps ManualClock tests independent of the wall clock.
T0 = 1_700_000_000.0


@pytest.fixture
def broker() -> Iterator[pocketmq.Broker]:
    b = pocketmq.Broker()
    yield b
    b.close()


@pytest.fixture
def clock() -> pocketmq.ManualClock:
    return pocketmq.ManualClock(start=T0)


@pytest.fixture
def timed(clock: pocketmq.ManualClock) -> Iterator[pocketmq.Broker]:
    """An in-memory broker on a ManualClock (the `clock` fixture)."""
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
