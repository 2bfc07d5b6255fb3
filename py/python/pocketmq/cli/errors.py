"""The command's exit codes and its one-line failures."""

from __future__ import annotations

from .. import Closed, InvalidArgument, IoError, StoreCorrupted, StoreLocked, TopicNotFound

# Exit codes (documented in --help).
OK = 0
NOT_FOUND = 1
USAGE = 2
LOCKED = 3
NO_STORE = 4
CORRUPTED = 5
IO_ERROR = 6
INTERRUPTED = 130

EXIT_CODES = f"""\
exit codes:
  {OK}    done
  {NOT_FOUND}    not found: no such message, topic, or group progress
  {USAGE}    usage error, or an argument the engine refused
  {LOCKED}    the store is open in another process (its pid is named)
  {NO_STORE}    no store at --store (commands that only read never create one)
  {CORRUPTED}    the store's files cannot be read back as a store
  {IO_ERROR}    the operating system refused a file operation, or --server could not
       be reached
  {INTERRUPTED}  interrupted (Ctrl-C or SIGTERM, the store closed cleanly); for tail -f,
       either is the normal end (0)

times (--since, --until, reset-offset --to): now, a duration ago (30s, 10m,
1h30m, 2d), an ISO date or date-time in local time unless it names a zone
(2026-12-01, 2026-12-01T10:00:00, 2026-12-01T10:00:00Z), or epoch seconds.
"""


class Failure(Exception):
    """A command failed: its one-line message and exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def failure_of(e: BaseException) -> Failure:
    """The one-line message and exit code of an engine error."""
    msg = str(e)
    if isinstance(e, StoreLocked):
        return Failure(f"{msg} (another program has it open; stop it, or wait)", LOCKED)
    if isinstance(e, StoreCorrupted):
        return Failure(msg, CORRUPTED)
    if isinstance(e, TopicNotFound):
        return Failure(msg, NOT_FOUND)
    if isinstance(e, IoError):
        return Failure(msg, IO_ERROR)
    if isinstance(e, (InvalidArgument, Closed)):
        return Failure(msg, USAGE)
    return Failure(f"{type(e).__name__}: {msg}", USAGE)
