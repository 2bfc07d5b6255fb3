"""The `pocketmq` command, run as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def cli(*args: str, module: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if module:
        cmd = [sys.executable, "-m", "pocketmq", *args]
    else:
        exe = shutil.which("pocketmq", path=os.path.dirname(sys.executable))
        assert exe, "the pocketmq console script is installed next to python"
        cmd = [exe, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, input=stdin)


def test_send_receive_stats_topics(store: Path):
    s = str(store)
    sent = cli("--store", s, "send", "orders", "order 42 paid", "--tags", "paid", "--key", "order-42",
               "--property", "k=v")
    assert sent.returncode == 0, sent.stderr
    result = json.loads(sent.stdout)
    assert result["topic"] == "orders" and result["status"] == "SEND_OK"

    topics = cli("--store", s, "topics")
    assert topics.returncode == 0, topics.stderr
    assert json.loads(topics.stdout) == {"orders": 4}

    got = cli("--store", s, "receive", "orders", "--group", "sms", "--timeout", "2")
    assert got.returncode == 0, got.stderr
    [line] = got.stdout.splitlines()
    msg = json.loads(line)
    assert msg["msg_id"] == result["msg_id"]
    assert msg["body"] == "order 42 paid" and msg["tags"] == "paid" and msg["keys"] == ["order-42"]
    assert msg["properties"]["k"] == "v"

    again = cli("--store", s, "receive", "orders", "--group", "sms", "--timeout", "0.2")
    assert again.returncode == 0 and again.stdout == "", "acked messages stay consumed across runs"

    lag = cli("--store", s, "lag", "sms", "orders")
    assert json.loads(lag.stdout) == 0

    stats = cli("--store", s, "stats")
    assert stats.returncode == 0
    assert json.loads(stats.stdout)["topics"]["orders"]["messages_in"] >= 0


def test_get_and_query(store: Path):
    s = str(store)
    r = json.loads(cli("--store", s, "send", "orders", "hello", "--key", "k1").stdout)
    got = cli("--store", s, "get", r["msg_id"])
    assert got.returncode == 0 and json.loads(got.stdout)["body"] == "hello"
    missing = cli("--store", s, "get", "F" * 32)
    assert missing.returncode == 1
    q = cli("--store", s, "query", "orders", "k1")
    assert [json.loads(line)["msg_id"] for line in q.stdout.splitlines()] == [r["msg_id"]]


def test_body_from_stdin_and_console_script(store: Path):
    s = str(store)
    sent = cli("--store", s, "send", "t", "-", module=False, stdin="from stdin")
    assert sent.returncode == 0, sent.stderr
    got = cli("--store", s, "receive", "t", "--group", "g", "--timeout", "2", module=False)
    assert json.loads(got.stdout)["body"] == "from stdin"


def test_errors_are_reported_not_raised(store: Path):
    bad = cli("--store", str(store), "send", "bad topic!", "x")
    assert bad.returncode == 2
    assert "InvalidArgument" in bad.stderr and "Traceback" not in bad.stderr
    usage = cli("--store", str(store), "frobnicate")
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_help_lists_the_commands():
    out = cli("--help")
    assert out.returncode == 0
    for cmd in ["send", "receive", "stats", "topics", "get", "query", "lag"]:
        assert cmd in out.stdout
