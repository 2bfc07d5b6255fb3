"""Small value types of the Python surface."""

from __future__ import annotations

import enum

__all__ = ["TxState"]


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
