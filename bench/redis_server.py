"""A private redis-server for one benchmark run.

Started on 127.0.0.1 on a free port, with its data in the directory it is
given, AOF on (`appendfsync` everysec or always) and RDB snapshots off, so what
is on disk afterwards is the AOF. Every server started here is stopped: on
leaving the `with` block, and at interpreter exit or SIGTERM/SIGINT for any
that a crash left behind.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import Optional

HOST = "127.0.0.1"
_running: set[subprocess.Popen[bytes]] = set()


def binary() -> Optional[str]:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


def version() -> str:
    exe = binary()
    if exe is None:
        return "not installed"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    # "Redis server v=7.0.15 sha=... malloc=jemalloc-5.3.0 bits=64 build=..."
    for word in out.split():
        if word.startswith("v="):
            return word[2:]
    return out.strip()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _running.discard(proc)


def _stop_all(*_args: object) -> None:
    for proc in list(_running):
        _stop(proc)


def _on_signal(signum: int, _frame: Optional[FrameType]) -> None:
    _stop_all()
    raise SystemExit(128 + signum)


atexit.register(_stop_all)
signal.signal(signal.SIGTERM, _on_signal)


class RedisServer:
    def __init__(self, data_dir: Path, appendfsync: str) -> None:
        self.data_dir = data_dir
        self.appendfsync = appendfsync
        self.port = 0
        self._proc: Optional[subprocess.Popen[bytes]] = None

    def __enter__(self) -> "RedisServer":
        exe = binary()
        if exe is None:
            raise RuntimeError("redis-server is not installed (make bench-deps installs it)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _attempt in range(5):
            self.port = _free_port()
            args = [
                exe,
                "--bind", HOST,
                "--port", str(self.port),
                "--protected-mode", "yes",
                "--dir", str(self.data_dir),
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", self.appendfsync,
                "--daemonize", "no",
                "--logfile", str(self.data_dir / "redis.log"),
            ]  # fmt: skip
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
            _running.add(self._proc)
            if self._wait_ready():
                return self
            _stop(self._proc)
        raise RuntimeError(f"redis-server did not start; see {self.data_dir / 'redis.log'}")

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    @property
    def pid(self) -> int:
        """The redis-server process's id (while it runs)."""
        assert self._proc is not None
        return self._proc.pid

    def stop(self) -> None:
        """Shuts the server down, letting it finish writing its AOF."""
        if self._proc is None:
            return
        try:
            with socket.create_connection((HOST, self.port), timeout=2) as s:
                s.sendall(b"SHUTDOWN NOSAVE\r\n")
                s.recv(64)
            self._proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        _stop(self._proc)
        self._proc = None

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()
