"""What this machine can do, measured in the same run as the systems, and what it is.

Two limits bound every store here: a buffered write loop (MB/s into the page
cache, the ceiling for relaxed durability) and a 1 KiB write + fdatasync loop
(appends/s, the ceiling for one writer that syncs every message).
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

BUFFERED_TOTAL = 512 * 1024 * 1024
BUFFERED_CHUNK = 1024 * 1024
SYNC_APPEND = 1024
SYNC_SECONDS = 2.0
SYNC_MAX = 20_000


def buffered_write_mb_s(workdir: Path) -> float:
    path = workdir / "buffered.bin"
    chunk = os.urandom(BUFFERED_CHUNK)
    start = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(BUFFERED_TOTAL // BUFFERED_CHUNK):
            f.write(chunk)
    elapsed = time.perf_counter() - start
    path.unlink()
    return BUFFERED_TOTAL / elapsed / 1e6


def fdatasync_appends_s(workdir: Path) -> float:
    path = workdir / "synced.bin"
    record = b"r" * SYNC_APPEND
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        count = 0
        start = time.perf_counter()
        deadline = start + SYNC_SECONDS
        while count < SYNC_MAX and time.perf_counter() < deadline:
            os.write(fd, record)
            os.fdatasync(fd)
            count += 1
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        path.unlink()
    return count / elapsed


def _first(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _filesystem(path: Path) -> str:
    out = subprocess.run(["df", "--output=fstype", str(path)], capture_output=True, text=True)
    lines = out.stdout.split()
    return lines[-1] if out.returncode == 0 and lines else "unknown"


def describe(workdir: Path) -> dict[str, str]:
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    mem_kib = _first("/proc/meminfo", "MemTotal").split()[0]
    debian = Path("/etc/debian_version")
    return {
        "cores (nproc)": nproc,
        "CPU": _first("/proc/cpuinfo", "model name"),
        "RAM": f"{int(mem_kib) / 1024 / 1024:.1f} GiB" if mem_kib.isdigit() else "unknown",
        "OS": f"Debian {debian.read_text().strip()}" if debian.exists() else platform.platform(),
        "kernel": platform.release(),
        "filesystem": _filesystem(workdir),
        "Python": platform.python_version(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
