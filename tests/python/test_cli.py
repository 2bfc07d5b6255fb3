"""The `pocketmq` command, run as a user runs it: a subprocess over a store directory."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pocketmq


def cli(*args: str, module: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if module:
        cmd = [sys.executable, "-m", "pocketmq", *args]
    else:
        exe = shutil.which("pocketmq", path=os.path.dirname(sys.executable))
        assert exe, "the pocketmq console script is installed next to python"
        cmd = [exe, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, input=stdin)


def ok(*args: str) -> str:
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def js(*args: str) -> object:
    return json.loads(ok(*args, "--json"))


def one_line_error(r: subprocess.CompletedProcess[str], code: int) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pocketmq: error: "), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def usage_error(r: subprocess.CompletedProcess[str]) -> str:
    """An argument argparse refused: exit 2, the usage, then one line saying why."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert r.stderr.startswith("usage: pocketmq") and ": error: " in last, r.stderr
    return last


@pytest.fixture
def orders(store: Path) -> Path:
    """A store with 10 messages in `orders` (4 queues), key k<i>, tag even/odd."""
    with pocketmq.Broker(store) as b:
        p = b.producer("shop")
        for i in range(10):
            p.send("orders", f"order {i}", keys=f"k{i}", tags="even" if i % 2 == 0 else "odd")
    return store


def test_send_receive_and_the_console_script(store: Path):
    s = str(store)
    sent = js("--store", s, "send", "orders", "order 42 paid", "--tags", "paid", "--key", "order-42",
              "--property", "k=v")
    assert isinstance(sent, dict) and sent["topic"] == "orders" and sent["status"] == "SEND_OK"
    got = cli("--store", s, "receive", "orders", "--group", "sms", "--timeout", "2", "--json", module=False)
    assert got.returncode == 0, got.stderr
    msg = json.loads(got.stdout.splitlines()[0])
    assert msg["msg_id"] == sent["msg_id"] and msg["body"] == "order 42 paid"
    assert msg["properties"]["k"] == "v" and msg["keys"] == ["order-42"]
    again = cli("--store", s, "receive", "orders", "--group", "sms", "--timeout", "0.2", "--json")
    assert again.returncode == 0 and again.stdout == "", "acked messages stay consumed across runs"
    piped = cli("--store", s, "send", "t", "-", stdin="from stdin")
    assert piped.returncode == 0 and piped.stdout.startswith("SEND_OK "), piped.stderr
    for amount in ("5", "500"):
        ok("--store", s, "send", "orders", f"amount {amount}", "--property", f"amount={amount}")
    big = cli("--store", s, "receive", "orders", "--group", "audit", "--sql", "amount > 100", "--json")
    assert big.returncode == 0, big.stderr
    assert [json.loads(line)["body"] for line in big.stdout.splitlines()] == ["amount 500"]
    bad = cli("--store", s, "receive", "orders", "--group", "audit", "--sql", "amount >")
    assert bad.returncode == 2 and "SQL92" in bad.stderr, (bad.returncode, bad.stderr)


def test_tables_are_aligned_and_json_parses(orders: Path):
    s = str(orders)
    out = ok("--store", s, "topics")
    header, row = out.splitlines()
    assert header.split() == ["TOPIC", "QUEUES", "MESSAGES", "RETAINED"]
    assert row.split() == ["orders", "4", "10", "10"]
    assert header.index("QUEUES") + len("QUEUES") == row.index("4") + 1, "numbers align right"
    assert js("--store", s, "topics") == [
        {"name": "orders", "queues": 4, "messages_in": 10, "messages_retained": 10}]

    ok("--store", s, "receive", "orders", "--group", "g", "--max", "3")
    stats = ok("--store", s, "stats")
    assert "10 messages stored" in stats.splitlines()[0]
    assert "GROUP" in stats and "LAG" in stats
    data = js("--store", s, "stats")
    assert isinstance(data, dict) and data["messages_in"] == 10
    assert data["groups"][0]["lag"] == 7

    progress = ok("--store", s, "progress", "g", "orders").splitlines()
    assert progress[0].split()[:5] == ["TOPIC", "QUEUE", "BROKER_OFFSET", "CONSUMER_OFFSET", "LAG"]
    assert len(progress) == 1 + 4 + 1 and progress[-1] == "group g: lag 7"
    rows = js("--store", s, "progress", "g")
    assert isinstance(rows, list) and len(rows) == 4
    assert sum(r["lag"] for r in rows) == 7 and {r["topic"] for r in rows} == {"orders"}
    assert set(rows[0]) >= {"queue_id", "broker_offset", "consumer_offset", "lag",
                            "last_store_timestamp", "inflight", "expired"}

    assert ok("--store", s, "lag", "g", "orders").strip() == "7"
    assert js("--store", s, "lag") == [{"group": "g", "topic": "orders", "lag": 7}]
    # A group named and not found is exit 1, as for progress.
    assert "nobody" in one_line_error(cli("--store", s, "lag", "nobody"), 1)
    one_line_error(cli("--store", s, "progress", "nobody"), 1)
    browse = ok("--store", s, "browse", "orders", "--limit", "20").splitlines()
    assert browse[0].split() == ["STORED", "QUEUE", "OFFSET", "MSG_ID", "TAGS", "KEYS", "BODY"]
    assert len(browse) == 11
    q1 = js("--store", s, "browse", "orders", "--queue", "1")
    assert isinstance(q1, list) and {m["queue_id"] for m in q1} == {1}
    assert len(q1) == data["topics"]["orders"]["queues"][1]["max_offset"]
    assert ok("--store", s, "lag", "g", "orders").strip() == "7", "browsing consumes nothing"


def test_get_and_query_by_key_or_time(orders: Path):
    s = str(orders)
    [first] = js("--store", s, "query", "orders", "--key", "k3")
    assert first["body"] == "order 3"
    got = ok("--store", s, "get", first["msg_id"])
    assert "order 3" in got and "msg_id" in got and "stored" in got
    assert one_line_error(cli("--store", s, "get", "F" * 32), 1).endswith(f"no message {'F' * 32} in {s}")
    recent = js("--store", s, "query", "orders", "--since", "10m")
    assert isinstance(recent, list) and len(recent) == 10
    today = time.strftime("%Y-%m-%d")
    assert len(js("--store", s, "query", "orders", "--since", today, "--until", "now")) == 10
    assert js("--store", s, "query", "orders", "--since", "2001-01-01", "--until", "2001-01-02") == []
    bad = one_line_error(cli("--store", s, "query", "orders", "--since", "yesterday-ish"), 2)
    assert "--since" in bad


def test_read_only_commands_never_create_a_store(tmp_path: Path):
    missing = tmp_path / "no" / "such" / "dir"
    empty = tmp_path / "empty"
    empty.mkdir()
    for where in (missing, empty):
        for cmd in (["topics"], ["stats"], ["lag"], ["progress", "g", "t"], ["browse", "t"],
                    ["get", "0" * 32], ["query", "t", "--key", "k"], ["tail", "t"], ["dlq", "g"],
                    ["redrive", "g"], ["move-backlog", "g", "t", "--to", "u"], ["delete-topic", "t"],
                    ["reset-offset", "g", "t", "--to", "latest"], ["receive", "t", "--group", "g"]):
            err = one_line_error(cli("--store", str(where), *cmd), 4)
            assert f"no store at {where}" in err, err
    assert not missing.exists() and not (tmp_path / "no").exists()
    assert list(empty.iterdir()) == []


def test_a_store_held_by_another_process_fails_at_once_with_its_pid(orders: Path):
    with pocketmq.Broker(orders):
        started = time.monotonic()
        err = one_line_error(cli("--store", str(orders), "stats"), 3)
        assert time.monotonic() - started < 20
        assert str(os.getpid()) in err and "locked" in err


def test_a_corrupted_store_is_one_line(orders: Path):
    (orders / "config" / "topics.json").write_text("{ not json")
    err = one_line_error(cli("--store", str(orders), "topics"), 5)
    assert "corrupted" in err


def test_engine_refusals_are_one_line_usage_errors(store: Path):
    err = one_line_error(cli("--store", str(store), "send", "bad topic!", "x"), 2)
    assert "invalid argument" in err
    usage = cli("--store", str(store), "frobnicate")
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_help_lists_the_commands_and_exit_codes():
    out = ok("--help")
    for cmd in ["topics", "stats", "progress", "tail", "browse", "get", "query", "lag", "reset-offset",
                "move-backlog", "dlq", "redrive", "send", "create-topic", "delete-topic"]:
        assert cmd in out, cmd
    assert "exit codes:" in out
    for code in ["0", "1", "2", "3", "4", "5", "6", "130"]:
        assert f"\n  {code} " in out, code
    assert "10m" in out and "2026-12-01" in out
    assert "--json" in ok("stats", "--help")


def test_stats_totals_count_across_processes(store: Path):
    for i in range(3):
        ok("--store", str(store), "send", "orders", f"m{i}")
    data = js("--store", str(store), "stats")
    assert isinstance(data, dict)
    assert data["messages_in"] == 3 and data["topics"]["orders"]["messages_in"] == 3


def test_move_backlog_shows_progress_and_moves_the_group(store: Path):
    with pocketmq.Broker(store) as b:
        b.create_topic("orders", queues=2)
        p = b.producer()
        for i in range(20_000):
            p.send("orders", f"o{i}", sharding_key=f"k{i % 50}")
    r = cli("--store", str(store), "move-backlog", "g", "orders", "--to", "orders-wide", "--queues", "8",
            "--progress")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("moved 20,000 messages of group g from orders to orders-wide (8 queues)")
    assert "100%" in r.stderr and "ETA" in r.stderr and "/s" in r.stderr
    assert ok("--store", str(store), "lag", "g", "orders").strip() == "0"
    assert js("--store", str(store), "lag", "g-wide", "orders-wide") == {
        "group": "g-wide", "topic": "orders-wide", "lag": 20_000}
    again = js("--store", str(store), "move-backlog", "g", "orders", "--to", "orders-wide")
    assert isinstance(again, dict) and again["moved"] == 0 and again["queues"] == 8


def test_dlq_and_redrive(store: Path):
    with pocketmq.Broker(store) as b:
        c = b.consumer("g", "orders", max_reconsume_times=0)
        b.producer().send("orders", b"poison", tags="bad")
        for m in c.receive(max_messages=10, timeout=2):
            c.nack(m)
    table = ok("--store", str(store), "dlq", "g").splitlines()
    assert table[0].split()[:3] == ["STORED", "ORIGIN_TOPIC", "MSG_ID"]
    assert "orders" in table[1] and "poison" in table[1]
    assert len(js("--store", str(store), "dlq", "g")) == 1
    out = ok("--store", str(store), "redrive", "g")
    assert out.startswith("redrove 1 dead letters of group g")
    assert ok("--store", str(store), "dlq", "g").strip() == "group g has no dead letters"
    with pocketmq.Broker(store) as b:
        back = b.consumer("g", "orders").receive(timeout=2)
        assert [m.body for m in back] == [b"poison"]


def test_reset_offset_takes_names_and_times(orders: Path):
    s = str(orders)
    ok("--store", s, "receive", "orders", "--group", "g", "--max", "10")
    assert ok("--store", s, "lag", "g", "orders").strip() == "0"
    out = ok("--store", s, "reset-offset", "g", "orders", "--to", "earliest")
    assert out.strip() == "group g on orders reset to earliest: lag 10"
    assert js("--store", s, "reset-offset", "g", "orders", "--to", "latest")["lag"] == 0
    assert js("--store", s, "reset-offset", "g", "orders", "--to", "10m")["lag"] == 10
    one_line_error(cli("--store", s, "reset-offset", "g", "orders", "--to", "sometime"), 2)


def test_tail_shows_the_last_messages_without_consuming(orders: Path):
    s = str(orders)
    header, *lines = ok("--store", s, "tail", "orders", "-n", "3").splitlines()
    assert header.split() == ["STORED", "QUEUE", "OFFSET", "MSG_ID", "TAGS", "KEYS", "BODY"]
    assert [line.split()[-1] for line in lines] == ["7", "8", "9"]
    # The columns stay under their headings.
    assert all(line.index(line.split()[4]) == header.index("MSG_ID") for line in lines)
    assert [json.loads(x)["body"] for x in ok("--store", s, "tail", "orders", "--json").splitlines()] == [
        f"order {i}" for i in range(10)]
    assert ok("--store", s, "lag", "g", "orders").strip() == "10", "tail consumed nothing"
    consumed = ok("--store", s, "tail", "orders", "--group", "g").splitlines()
    assert len(consumed) == 1 + 10
    assert ok("--store", s, "lag", "g", "orders").strip() == "0", "with --group it consumes"
    one_line_error(cli("--store", s, "tail", "nope"), 1)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_tail_follows_until_ctrl_c_or_sigterm(orders: Path, stop: signal.Signals):
    s = str(orders)
    ok("--store", s, "send", "orders", "due in a second", "--delay", "1")
    child = subprocess.Popen([sys.executable, "-m", "pocketmq", "--store", s, "tail", "orders", "-n", "1",
                              "-f", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    seen = [json.loads(child.stdout.readline())["body"]]
    seen.append(json.loads(child.stdout.readline())["body"])
    child.send_signal(stop)
    assert child.wait(timeout=30) == 0
    assert seen == ["order 9", "due in a second"]
    assert not (orders / "abort").exists(), "the store was closed cleanly"


def test_create_and_delete_topic(store: Path):
    assert ok("--store", str(store), "create-topic", "orders", "--queues", "8").strip() == "topic orders: 8 queues"
    ok("--store", str(store), "send", "orders", "x")
    out = ok("--store", str(store), "delete-topic", "orders")
    assert out.startswith("deleted topic orders")
    assert ok("--store", str(store), "topics").strip() == "no topics"
    one_line_error(cli("--store", str(store), "delete-topic", "orders"), 1)


def test_tail_follows_a_served_store_while_another_process_sends(serve_endpoint: str):
    ep = serve_endpoint
    first = js("--server", ep, "send", "cli-served", "first", "--tags", "paid")
    assert isinstance(first, dict) and first["status"] == "SEND_OK"
    child = subprocess.Popen([sys.executable, "-m", "pocketmq", "--server", ep, "tail", "cli-served",
                              "--group", "cli-tail", "-f", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    try:
        seen = [json.loads(child.stdout.readline())]
        # Sent by another process while the tail follows.
        ok("--server", ep, "send", "cli-served", "second", "--key", "order-2")
        seen.append(json.loads(child.stdout.readline()))
    finally:
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=30) == 0, child.stderr.read() if child.stderr else ""
    assert [m["body"] for m in seen] == ["first", "second"]
    assert seen[0]["tags"] == "paid" and seen[1]["keys"] == ["order-2"]
    assert seen[0]["msg_id"] == first["msg_id"]
    # What the protocol cannot do is one line, naming why.
    line = one_line_error(cli("--server", ep, "tail", "cli-served"), 2)
    assert "--group" in line
    # An option the protocol cannot carry is named as the user typed it.
    line = one_line_error(cli("--server", ep, "send", "cli-served", "x", "--queue-id", "1"), 2)
    assert "send --queue-id does not work with --server" in line, line
    # A command that needs the store names itself and what works, not the call it made.
    for command in (["topics"], ["lag", "cli-tail"], ["stats"]):
        line = one_line_error(cli("--server", ep, *command), 2)
        assert f"{command[0]} needs the store itself" in line, line
        assert "stats()" not in line and "--store" in line
    # The protocol does not say which queue a send went to: none is shown.
    out = ok("--server", ep, "send", "cli-served", "third")
    assert "queue" not in out and out.startswith("SEND_OK"), out
    assert js("--server", ep, "send", "cli-served", "fourth")["queue_id"] is None


def test_store_commands_with_an_unreachable_server_are_refused_before_dialling():
    # Port 1 answers nothing: the refusal must not depend on reaching it.
    for command in (["topics"], ["stats"], ["get", "0" * 32]):
        line = one_line_error(cli("--server", "127.0.0.1:1", *command), 2)
        assert f"{command[0]} needs the store itself" in line, line


def test_json_bodies_are_exact_and_bad_numbers_and_times_are_usage_errors(store: Path):
    s = str(store)
    raw = bytes([0xFF, 0xFE, 0x00]) + b"bin"
    sent = subprocess.run([sys.executable, "-m", "pocketmq", "--store", s, "send", "bin", "-"],
                          input=raw, capture_output=True)
    assert sent.returncode == 0, sent.stderr
    [m] = js("--store", s, "browse", "bin")
    assert base64.b64decode(m["body_base64"]) == raw
    for args, says in ((["create-topic", "t", "--queues", "-3"], "--queues: must be 1 or more, not -3"),
                       (["browse", "bin", "--limit", "-1"], "--limit: must be 0 or more, not -1"),
                       (["send", "bin", "x", "--delay-level", "-1"], "must be 0 or more, not -1"),
                       (["receive", "bin", "--group", "g", "--max", "0"], "must be 1 or more, not 0")):
        line = usage_error(cli("--store", s, *args))
        assert says in line, line
    line = one_line_error(cli("--store", s, "query", "bin", "--since", "1d", "--until", "2d"), 2)
    assert "before --since" in line, line
    afile = store.parent / "afile"
    afile.write_text("x")
    line = one_line_error(cli("--store", str(afile), "send", "t", "hi"), 4)
    assert "not a directory" in line, line
    line = one_line_error(cli("--json", "serve", "--memory"), 2)
    assert "serve" in line, line


def test_commands_on_a_missing_topic_fail_and_create_nothing(orders: Path):
    for args in (["receive", "ordrs", "--group", "g"], ["tail", "ordrs", "--group", "g"],
                 ["query", "ordrs", "--key", "k1"]):
        err = one_line_error(cli("--store", str(orders), *args), 1)
        assert "topic not found: ordrs" in err, err
    with pocketmq.Broker(orders) as b:
        assert "ordrs" not in b.topics()


def test_an_empty_store_path_and_a_negative_limit_are_usage_errors(orders: Path, tmp_path: Path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    r = subprocess.run([sys.executable, "-m", "pocketmq", "--store", "", "send", "t", "x"],
                       capture_output=True, text=True, timeout=120, cwd=cwd)
    assert "--store is empty" in one_line_error(r, 2)
    assert list(cwd.iterdir()) == [], "the current directory did not become a store"
    assert "--limit" in usage_error(cli("--store", str(orders), "query", "orders", "--key", "k1",
                                        "--limit", "-1"))


def test_serve_on_a_store_held_by_another_process_exits_3(orders: Path):
    with pocketmq.Broker(orders):
        r = cli("serve", "--store", str(orders), "--listen", "127.0.0.1:0")
        assert r.returncode == 3, (r.returncode, r.stderr)
        assert "locked" in r.stderr


def test_operator_mistakes_get_one_line_and_the_right_exit(orders: Path, tmp_path: Path):
    s = str(orders)
    # Global options before serve, with values among them: said so, not a silent exit 2.
    for args in (["-v", "--store", s, "serve"], ["--store", s, "--json", "serve", "--listen", "127.0.0.1:0"]):
        line = one_line_error(cli(*args), 2)
        assert "before serve: serve's own options follow it" in line, line
    # An empty --server (an unset variable) never falls back to a local store.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    r = subprocess.run([sys.executable, "-m", "pocketmq", "--server", "", "send", "t", "x"],
                       capture_output=True, text=True, timeout=120, cwd=cwd)
    assert "--server is empty" in one_line_error(r, 2)
    assert list(cwd.iterdir()) == []
    # A body that is not UTF-8 is sent as the bytes the shell gave.
    raw = bytes([0xFF, 0xFE]) + b"raw"
    sent = subprocess.run([sys.executable, "-m", "pocketmq", "--store", s, "send", "bytes", raw],
                          capture_output=True, timeout=120)
    assert sent.returncode == 0, sent.stderr
    [m] = js("--store", s, "browse", "bytes")
    assert base64.b64decode(m["body_base64"]) == raw
    # Output that cannot be written: one line, exit 6.
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "pocketmq", "--store", s, "stats"], stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=120)
    assert "writing the output" in one_line_error(r, 6)
    assert "goes with --since" in one_line_error(cli("--store", s, "query", "orders", "--key", "k1",
                                                     "--until", "1h"), 2)
    assert "--until (now, the default)" in one_line_error(cli("--store", s, "query", "orders", "--since",
                                                              "99999999999"), 2)
    assert "--delay-level or --delay" in one_line_error(cli("--store", s, "send", "orders", "x",
                                                            "--delay-level", "2", "--delay", "3"), 2)
    # serve: a setting the engine refuses is a usage error too.
    for args in (["--memory", "--advertise", "nonsense", "--listen", "127.0.0.1:0"],
                 ["--store", "", "--listen", "127.0.0.1:0"]):
        r = cli("serve", *args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
