"""Sends for instruction counting: N sends of 100 B on a memory store, plain or each
with a new dedup id, or with that string as tags (what any text option costs), in a
function (local names, as an application's loop would be).

Per-send instructions are the difference between N and 0 sends:

    valgrind --tool=callgrind .venv/bin/python bench/send_ir.py dedup 40000
    valgrind --tool=callgrind .venv/bin/python bench/send_ir.py dedup 0

(and the same with `plain`). Callgrind counts instructions, so the figure holds on a
busy machine; it does not see cache misses, which the wall-clock runs of
bench/consumers.py do.
"""

from __future__ import annotations

import sys

import pocketmq


def main(mode: str, n: int) -> None:
    body = b"x" * 100
    with pocketmq.Broker() as b:
        p = b.producer()
        send = p.send
        send("bench", body)
        ids = [f"order-{i}" for i in range(n)]
        if mode == "plain":
            for _ in range(n):
                send("bench", body)
        elif mode == "dedup":
            for i in range(n):
                send("bench", body, dedup_id=ids[i])
        elif mode == "tags":
            for i in range(n):
                send("bench", body, tags=ids[i])
        else:
            raise SystemExit(f"mode: plain, dedup or tags, not {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
