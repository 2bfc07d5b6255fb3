"""Small value types of the Python surface."""

from __future__ import annotations

import enum
from typing import Optional, TypedDict

__all__ = ["ConsumeProgress", "TxState"]


class TxState(str, enum.Enum):
    """The outcome of a local transaction, as ``execute`` and ``check`` return it."""

    COMMIT = "COMMIT"
    """Make the half message visible to consumers."""
    ROLLBACK = "ROLLBACK"
    """Drop the half message."""
    UNKNOWN = "UNKNOWN"
    """Not decided yet: the broker asks ``check`` later."""

    def __str__(self) -> str:
        return self.value


class ConsumeProgress(TypedDict):
    """A group's progress on one queue, as ``Broker.progress`` returns it (a row of
    mqadmin's consumerProgress)."""

    queue_id: int
    broker_offset: int
    """The queue's next offset to be written (its max offset)."""
    consumer_offset: int
    """The lowest offset the group has not acked."""
    lag: int
    """Messages of the queue the group has not acked."""
    inflight: int
    """Messages delivered to the group and not yet acked."""
    last_store_timestamp: Optional[int]
    """Store time (ms) of the last message the group consumed here (mqadmin's
    ``#LastTime``), or of the first it has yet to consume; None for an empty queue."""
    expired: int
    """Messages retention removed from this queue before the group consumed them
    (since the broker opened)."""
