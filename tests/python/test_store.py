"""File stores across processes: persistence, offsets, the lock, recovery."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pocketmq
from conftest import drain, run_python

SEND = """
import sys, pocketmq
with pocketmq.Broker(sys.argv[1]) as b:
    p = b.producer("p")
    for i in range(int(sys.argv[2])):
        r = p.send("orders", f"m{i}", keys=[f"k{i}"], tags="t")
    print(r.msg_id)
"""

HOLD = """
import sys, time, pocketmq
b = pocketmq.Broker(sys.argv[1])
print("holding", flush=True)
sys.stdin.readline()
b.close()
"""


def test_messages_survive_across_processes(store: Path):
    out = run_python(SEND, str(store), "5")
    assert out.returncode == 0, out.stderr
    last_id = out.stdout.strip()
    with pocketmq.Broker(store) as b:
        got = drain(b.consumer("g", "orders"))
        assert [m.body for m in got] == [f"m{i}".encode() for i in range(5)] or sorted(
            m.body for m in got
        ) == sorted(f"m{i}".encode() for i in range(5))
        found = b.get(last_id)
        assert found is not None and found.body == b"m4"
        assert [m.body for m in b.query("orders", "k2")] == [b"m2"]
        assert b.topics()["orders"] == 4


def test_committed_offsets_persist(store: Path):
    with pocketmq.Broker(store) as b:
        p = b.producer("p")
        for i in range(4):
            p.send("t", str(i), queue_id=0)
        c = b.consumer("g", "t")
        msgs = c.receive(max_messages=2, timeout=2.0)
        for m in msgs:
            c.ack(m)
        acked = len(msgs)
    with pocketmq.Broker(store) as b:
        assert b.lag("g", "t") == 4 - acked
        rest = drain(b.consumer("g", "t"))
        assert [m.body for m in rest] == [str(i).encode() for i in range(acked, 4)]


def test_a_second_open_fails_with_store_locked_naming_the_pid(store: Path):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(store)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "holding"
        t0 = time.monotonic()
        with pytest.raises(pocketmq.StoreLocked) as exc:
            pocketmq.Broker(store)
        assert time.monotonic() - t0 < 2, "fails at once, does not wait"
        assert str(proc.pid) in str(exc.value)
        assert "this process" not in str(exc.value)
        assert exc.value.pid == proc.pid
        assert exc.value.path == str(store)
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(10) == 0
    finally:
        proc.kill()
    with pocketmq.Broker(store) as b:
        b.producer("p").send("t", b"mine now")


def test_the_lock_is_per_store_within_one_process_too(store: Path):
    with pocketmq.Broker(store):
        with pytest.raises(pocketmq.StoreLocked) as exc:
            pocketmq.Broker(store)
        # A notebook cell that opens the store, run twice: the message names the cause.
        assert exc.value.pid == os.getpid()
        assert "this process" in str(exc.value) and "close()" in str(exc.value)


def test_a_killed_owner_releases_the_lock_and_keeps_sync_sends(store: Path):
    code = """
import sys, os, pocketmq
b = pocketmq.Broker(sys.argv[1], flush="sync")
p = b.producer("p")
for i in range(20):
    p.send("t", f"m{i}")
print("sent", flush=True)
os._exit(9)
"""
    out = run_python(code, str(store))
    assert "sent" in out.stdout, out.stderr
    with pocketmq.Broker(store) as b:
        got = drain(b.consumer("g", "t"))
        assert sorted(m.body for m in got) == sorted(f"m{i}".encode() for i in range(20))


def test_a_torn_tail_is_cut_not_delivered(store: Path):
    with pocketmq.Broker(store, flush="sync") as b:
        for i in range(3):
            b.producer("p").send("t", f"m{i}")
    segments = sorted((store / "commitlog").iterdir())
    assert segments, "the CommitLog lives in commitlog/"
    last = segments[-1]
    data = last.read_bytes()
    end = len(data.rstrip(b"\0"))
    assert end > 0
    # Simulate a crash mid-write: garbage after the last record and an abort marker.
    with open(last, "r+b") as f:
        f.seek(end)
        f.write(os.urandom(64))
    (store / "abort").touch()
    with pocketmq.Broker(store) as b:
        got = drain(b.consumer("g", "t"))
        assert sorted(m.body for m in got) == [b"m0", b"m1", b"m2"]


def test_an_unreadable_store_is_store_corrupted(store: Path):
    store.mkdir(parents=True)
    (store / "config").mkdir()
    (store / "config" / "topics.json").write_text("{ not json")
    with pytest.raises(pocketmq.StoreCorrupted):
        pocketmq.Broker(store)


def test_a_path_that_is_a_file_is_an_io_error(tmp_path: Path):
    f = tmp_path / "plain-file"
    f.write_text("x")
    with pytest.raises(pocketmq.IoError) as exc:
        pocketmq.Broker(f)
    assert isinstance(exc.value, OSError) and isinstance(exc.value, pocketmq.Error)


def test_retention_removes_old_segments(store: Path, clock):
    with pocketmq.Broker(store, clock=clock, segment_size=64 * 1024, file_reserved_time=3600,
                         delete_when="*") as b:
        p = b.producer("p")
        for _ in range(40):
            p.send("t", b"x" * 4096)
        before = b.stats()["commitlog_bytes"]
        clock.advance(3 * 3600)
        p.send("t", b"fresh")
        b.tick()
        assert b.stats()["commitlog_bytes"] < before
        got = drain(b.consumer("g", "t"))
        bodies = [m.body for m in got]
        assert b"fresh" in bodies and len(bodies) < 41, "old segments are gone, the fresh message stays"


def test_expired_segments_go_in_the_delete_when_hour(store: Path):
    # RocketMQ's deleteWhen (default "04"): expired segments wait for that hour (UTC,
    # broker clock) unless the disk is used above disk_clean_ratio.
    hour = 3600
    start = datetime.datetime(2026, 3, 1, 16, tzinfo=datetime.timezone.utc).timestamp()
    clock = pocketmq.ManualClock(start=start)
    with pocketmq.Broker(store, clock=clock, segment_size=64 * 1024, file_reserved_time=hour,
                         disk_clean_ratio=1.0, disk_clean_forcibly_ratio=1.0,
                         disk_max_used_ratio=1.0) as b:
        p = b.producer("p")
        for _ in range(40):
            p.send("t", b"x" * 4096)
        before = b.stats()["commitlog_bytes"]
        clock.advance(3 * hour)              # 19:00: expired, not the hour
        b.tick()
        assert b.stats()["commitlog_bytes"] == before
        clock.advance(9 * hour)              # 04:00 the next day
        b.tick()
        assert b.stats()["commitlog_bytes"] < before
    with pytest.raises(pocketmq.InvalidArgument, match="delete_when"):
        pocketmq.Broker(delete_when="4am")
