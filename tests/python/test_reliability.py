"""Failures found by outside testing, from Python: a broker inherited by fork(), a
full disk, symlinks in the store, forged properties, retention that removes
unconsumed messages (counted and logged, or kept on request)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

import pocketmq

from conftest import T0


def test_a_forked_child_gets_closed_and_the_parent_keeps_its_messages(store: Path) -> None:
    b = pocketmq.Broker(store, flush="sync")
    p = b.producer("p")
    sent = {p.send("t", f"parent-{i}".encode()).msg_id: f"parent-{i}".encode() for i in range(50)}
    stop = threading.Event()

    def busy() -> None:
        bp = b.producer("busy")
        while not stop.is_set():
            bp.send("busy", b"x")

    t = threading.Thread(target=busy)
    t.start()
    try:
        for _ in range(10):
            time.sleep(0.005)
            pid = os.fork()
            if pid == 0:
                code = 0
                for call in [
                    lambda: p.send("t", b"child"),
                    lambda: b.producer("c"),
                    lambda: b.consumer("g", "t"),
                    lambda: b.get(next(iter(sent))),
                    lambda: b.tick(),
                    lambda: b.close(),
                ]:
                    try:
                        call()
                        code = 2
                    except pocketmq.Closed as e:
                        if "new Broker" not in str(e):
                            code = 3
                    except BaseException:
                        code = 4
                os._exit(code)
            deadline = time.monotonic() + 20
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    pytest.fail("the child hangs")
                time.sleep(0.01)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    finally:
        stop.set()
        t.join()
    for msg_id, body in sent.items():
        m = b.get(msg_id)
        assert m is not None and m.body == body
    b.close()


class Tmpfs:
    """A small tmpfs the test mounts (skipped where it cannot)."""

    def __init__(self, mib: int) -> None:
        self.path = Path(tempfile.mkdtemp())
        out = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(self.path)],
            capture_output=True, text=True,
        )
        if out.returncode != 0:
            self.path.rmdir()
            pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")

    def close(self) -> None:
        subprocess.run(["umount", str(self.path)], capture_output=True)
        shutil.rmtree(self.path, ignore_errors=True)


@pytest.fixture
def small_disk() -> Iterator[Path]:
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    fs = Tmpfs(40)
    try:
        yield fs.path
    finally:
        fs.close()


def test_a_full_disk_raises_disk_full_and_sends_resume_when_space_returns(small_disk: Path) -> None:
    spare = small_disk / "spare"
    spare.write_bytes(b"\0" * (8 << 20))
    b = pocketmq.Broker(small_disk / "store", segment_size=4 << 20,
                        disk_max_used_ratio=1.0, disk_clean_forcibly_ratio=1.0)
    b.create_topic("t", queues=1)
    p = b.producer("p")
    body = b"x" * (64 << 10)
    sent = 0
    with pytest.raises(pocketmq.DiskFull) as exc:
        while sent < 10_000:
            p.send("t", body)
            sent += 1
    assert isinstance(exc.value, OSError)
    assert sent > 50
    c = b.consumer("g", "t")
    got = 0
    while msgs := c.receive(max_messages=64, timeout=0):
        got += len(msgs)
        c.ack(msgs)
    assert got == sent
    spare.unlink()
    p.send("t", body)
    b.close()


def test_a_symlinked_lock_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    store = tmp_path / "store"
    store.mkdir()
    (store / "lock").symlink_to(victim)
    with pytest.raises(pocketmq.StoreCorrupted, match="symbolic link"):
        pocketmq.Broker(store)
    assert victim.read_text() == "precious"


def test_a_sharding_key_cannot_forge_properties(broker: pocketmq.Broker) -> None:
    p = broker.producer("p")
    with pytest.raises(pocketmq.InvalidArgument):
        p.send("t", b"x", sharding_key="k\x02REAL_TOPIC\x01../../escaped", delay=5.0)
    a = p.send("t", b"x", sharding_key="k")
    b = p.send("t", b"x", sharding_key=a.msg_id)
    assert a.msg_id != b.msg_id


def fill(b: pocketmq.Broker, n: int) -> None:
    p = b.producer("p")
    for i in range(n):
        p.send("t", f"{i:03}".encode() + b"z" * 900)


def test_retention_counts_and_logs_what_a_group_had_not_consumed(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = pocketmq.ManualClock(start=T0)
    b = pocketmq.Broker(store, clock=clock, segment_size=8192, file_reserved_time=3600,
                        delete_when="*")
    b.create_topic("t", queues=1)
    slow = b.consumer("slow", "t")
    fill(b, 40)
    clock.advance(7200)
    fill(b, 1)
    with caplog.at_level(logging.WARNING, logger="pocketmq"):
        b.tick()
    stats = b.stats()
    (slow_stats,) = [g for g in stats["groups"] if g["group"] == "slow"]
    assert slow_stats["expired"] == stats["topics"]["t"]["queues"][0]["min_offset"] > 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("slow" in r.getMessage() and r.name.startswith("pocketmq") for r in warnings)
    slow.close()
    b.close()


def test_keep_unconsumed_keeps_what_a_group_has_not_read(store: Path) -> None:
    clock = pocketmq.ManualClock(start=T0)
    b = pocketmq.Broker(store, clock=clock, segment_size=8192, file_reserved_time=3600,
                        retention="keep-unconsumed", delete_when="*")
    b.create_topic("t", queues=1)
    slow = b.consumer("slow", "t")
    fill(b, 40)
    clock.advance(7200)
    fill(b, 1)
    b.tick()
    got = []
    while msgs := slow.receive(max_messages=64, timeout=0):
        got.extend(msgs)
        slow.ack(msgs)
    assert len(got) == 41
    assert [g["expired"] for g in b.stats()["groups"] if g["group"] == "slow"] == [0]
    slow.close()
    b.close()
