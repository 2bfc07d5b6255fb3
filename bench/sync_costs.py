"""What one write + fdatasync costs on this disk, by how the file's blocks were made:
appended (the file grows), fallocated (unwritten extents, as pocketmq's segments are)
or written with zeros first. Writes of 1 KiB (one send) and 16 KiB (a group commit of
16 sends), 2,000 each, three rounds; prints syncs per second.

    python3 bench/sync_costs.py DIR
"""

from __future__ import annotations

import os
import sys
import time

N = 2000
SIZE = 64 << 20


def rate(path: str, kind: str, chunk: int) -> float:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        if kind == "fallocated":
            os.posix_fallocate(fd, 0, SIZE)
        elif kind == "zeroed":
            zeros = b"\0" * (1 << 20)
            for _ in range(SIZE >> 20):
                os.write(fd, zeros)
            os.fsync(fd)
        data = b"x" * chunk
        started = time.perf_counter()
        for i in range(N):
            os.pwrite(fd, data, i * chunk)
            os.fdatasync(fd)
        return N / (time.perf_counter() - started)
    finally:
        os.close(fd)
        os.unlink(path)


def main(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "sync_costs.bin")
    for _ in range(3):
        cells = [f"{kind} {chunk >> 10} KiB {rate(path, kind, chunk):,.0f}/s"
                 for chunk in (1024, 16384) for kind in ("appended", "fallocated", "zeroed")]
        print(", ".join(cells))


if __name__ == "__main__":
    main(sys.argv[1])
