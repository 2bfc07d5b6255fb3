"""The ``pocketmq`` command (also ``python -m pocketmq``): inspect and operate a
pocketmq store from a shell, the way ``mqadmin`` operates a RocketMQ broker.

- ``main.py``: the parser (commands, options, exit codes in ``--help``) and ``main``.
- ``commands.py``: one function per command.
- ``display.py``: tables, human times and sizes, the progress bar, typed times.
- ``errors.py``: exit codes and one-line failures.

Every command opens the store directory given by ``--store`` (default ``./data``),
does its work and closes it. A store is owned by one process at a time: a command
on a store another process has open fails at once, naming that process. Commands
that only read never create a store. Output is aligned tables for people; ``--json``
gives JSON for scripts (one document, or one object per line for ``tail``).
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
