"""``pocketmq serve``: serve a store over Apache RocketMQ 5's gRPC protocol, so the
official RocketMQ 5 clients (Python, Node, Java, ...) in other processes share it.

    pocketmq serve ./data --listen 127.0.0.1:8081
    pocketmq serve --memory --metrics 127.0.0.1:9100

The server is built into the extension; its flags are those of ``pocketmq-serve``
(``pocketmq serve --help``). It listens on 127.0.0.1 unless told otherwise. Ctrl-C
or SIGTERM drains the calls in flight, flushes and closes the store (releasing its
directory), and the command exits 0. (A SIGTERM in the first tenth of a second, while
Python still loads the package, ends the process at once, with status 143: the store
is not open yet.) Log records go to Python's ``logging``
(``--log-level``, else ``POCKETMQ_LOG``, else info) and are printed on stderr.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Optional, Sequence

from . import _native

_LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
           "debug": logging.DEBUG, "trace": logging.DEBUG, "off": logging.CRITICAL + 1}


def _log_level(argv: Sequence[str]) -> int:
    level: Optional[str] = os.environ.get("POCKETMQ_LOG")
    for i, arg in enumerate(argv):
        if arg == "--log-level" and i + 1 < len(argv):
            level = argv[i + 1]
        elif arg.startswith("--log-level="):
            level = arg.split("=", 1)[1]
    return _LEVELS.get((level or "info").lower(), logging.INFO)


def _stop(signum: int, frame: object) -> None:
    # Raised in the main thread; the server sees it and stops gracefully.
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the server until Ctrl-C or SIGTERM; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=_log_level(args),
        format="ts=%(asctime)s level=%(levelname)s target=%(name)s %(message)s",
    )
    # SIGTERM's default ends the process at once, skipping the drain and the flush.
    signal.signal(signal.SIGTERM, _stop)
    return _native.serve(args)


if __name__ == "__main__":
    sys.exit(main())
