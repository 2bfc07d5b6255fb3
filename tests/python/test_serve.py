"""`pocketmq serve`: the RocketMQ 5 gRPC server built into the package, started as a
user starts it, stopped by SIGTERM or Ctrl-C (drained, flushed, the store released)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pocketmq


def start(*args: str, console_script: bool = False) -> tuple[subprocess.Popen[str], str]:
    if console_script:
        exe = shutil.which("pocketmq", path=os.path.dirname(sys.executable))
        assert exe, "the pocketmq console script is installed next to python"
        cmd = [exe, "serve", *args]
    else:
        cmd = [sys.executable, "-m", "pocketmq", "serve", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("pocketmq-serve listening on "), (line, proc.stderr and proc.stderr.read())
    return proc, line.rsplit(" ", 1)[1].strip()


def accepts(addr: str) -> bool:
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2):
        return True


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_drains_flushes_and_releases_the_store(tmp_path: Path, stop: signal.Signals):
    store = tmp_path / "data"
    with pocketmq.Broker(str(store)) as broker:
        sent = broker.producer("p").send("orders", b"kept")
    proc, addr = start(str(store), "--listen", "127.0.0.1:0", console_script=stop == signal.SIGTERM)
    try:
        assert addr.startswith("127.0.0.1:") and accepts(addr)
        # The server owns the store while it runs.
        with pytest.raises(pocketmq.StoreLocked):
            pocketmq.Broker(str(store))
        t0 = time.monotonic()
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert time.monotonic() - t0 < 10
    assert "event=draining" in err and "event=stopped" in err
    with pocketmq.Broker(str(store)) as broker:
        got = broker.get(sent.msg_id)
        assert got is not None and got.body == b"kept"


def test_bad_flags_exit_2_with_the_usage(tmp_path: Path):
    r = subprocess.run([sys.executable, "-m", "pocketmq", "serve", "--bogus"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "unknown option --bogus" in r.stderr and "usage: pocketmq serve <" in r.stderr
    r = subprocess.run([sys.executable, "-m", "pocketmq", "serve", "--help"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "pocketmq serve <store dir | --store DIR | --memory>" in r.stdout
    # --help explains every flag, not only the usage line.
    for flag in ("--memory", "--listen", "--advertise", "--config", "--access-key",
                 "--tls-cert", "--metrics", "--flush", "--fifo-groups", "--log-level"):
        assert f"\n  {flag}" in r.stdout, flag
    r = subprocess.run([sys.executable, "-m", "pocketmq", "serve", str(tmp_path), "--memory"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "not both" in r.stderr


@pytest.mark.parametrize("form", ["flag", "global"])
def test_the_store_may_be_named_with_store(tmp_path: Path, form: str):
    # server-mode.md writes `pocketmq-serve --store ./data --listen ...`; the CLI's
    # global `--store DIR` before the command names it too.
    store = tmp_path / "data"
    with pocketmq.Broker(str(store)) as broker:
        sent = broker.producer("p").send("orders", b"kept")
    if form == "flag":
        cmd = [sys.executable, "-m", "pocketmq", "serve", "--store", str(store), "--listen", "127.0.0.1:0"]
    else:
        cmd = [sys.executable, "-m", "pocketmq", "--store", str(store), "serve", "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("pocketmq-serve listening on "), (line, proc.stderr and proc.stderr.read())
        with pytest.raises(pocketmq.StoreLocked):
            pocketmq.Broker(str(store))
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    with pocketmq.Broker(str(store)) as broker:
        assert broker.get(sent.msg_id) is not None
    r = subprocess.run([sys.executable, "-m", "pocketmq", "serve", str(store), "--store", str(store)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "once" in r.stderr


def test_a_locked_store_fails_at_once(tmp_path: Path):
    store = tmp_path / "data"
    with pocketmq.Broker(str(store)):
        r = subprocess.run([sys.executable, "-m", "pocketmq", "serve", str(store), "--listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=30)
    assert r.returncode == 3, "the exit status of a locked store (pocketmq --help)"
    assert "cannot open the store" in r.stderr and "locked" in r.stderr
