"""The exceptions pocketmq raises. Every one derives from :class:`Error`."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Union

__all__ = [
    "Error",
    "InvalidArgument",
    "MessageTooLarge",
    "TopicNotFound",
    "StoreLocked",
    "StoreCorrupted",
    "Closed",
    "InvalidReceiptHandle",
    "IoError",
    "RetryLater",
    "DiskFull",
    "NotSupported",
]


class Error(Exception):
    """Base class of every pocketmq error."""


class InvalidArgument(Error, ValueError):
    """A value passed in is out of range or malformed (also a ``ValueError``)."""


class MessageTooLarge(Error):
    """A message body is over the broker's ``max_message_size``."""


class TopicNotFound(Error):
    """The topic does not exist and the broker does not create topics on send."""


class StoreLocked(Error):
    """Another process owns the store directory.

    ``pid`` is the holder's process id and ``path`` the store directory.
    """

    pid: int = 0
    path: str = ""


class StoreCorrupted(Error):
    """The store's files cannot be read back as a store."""


class Closed(Error):
    """The broker or consumer was closed."""


class InvalidReceiptHandle(Error):
    """A simple consumer's receipt handle that is not current: from an earlier
    delivery (expired, or replaced by ``change_invisible_duration``), already
    acked, of another group, or never issued."""


class RetryLater(Exception):
    """Raised by a listener's handler: nack the message, redelivering it after
    ``delay`` (seconds, or a ``timedelta``) instead of the retry ladder's step."""

    def __init__(self, delay: Union[float, timedelta] = 0.0) -> None:
        if isinstance(delay, timedelta):
            seconds = delay.total_seconds()
        elif isinstance(delay, (int, float)) and not isinstance(delay, bool):
            seconds = float(delay)
        else:
            raise TypeError(f"RetryLater(delay): seconds or a timedelta, not {type(delay).__name__}")
        if not math.isfinite(seconds) or seconds < 0:
            raise InvalidArgument(f"RetryLater(delay): a finite delay of 0 s or more, not {delay!r}")
        super().__init__(f"retry in {seconds} s")
        self.delay = seconds


class IoError(Error, OSError):
    """The operating system refused a file operation (also an ``OSError``)."""


class DiskFull(Error, OSError):
    """A write was refused: the disk is full, or used above the broker's
    ``disk_max_used_ratio`` (also an ``OSError``). Nothing was written and the
    store stays usable; sends succeed again once space returns."""


class NotSupported(Error):
    """A call that ``pocketmq.connect()`` cannot make: the RocketMQ 5 protocol does
    not carry it (``stats``, ``browse``, a ManualClock, ...), or the server, not the
    client, decides it (a FIFO group, the number of delivery attempts). The message
    names the call."""
