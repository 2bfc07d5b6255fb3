"""The atomic block entered in the current context: blocks do not nest (a nested
`with broker.atomic()` raises InvalidArgument), per thread and per asyncio task."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Optional

current: ContextVar[Optional[Any]] = ContextVar("pocketmq_atomic_block", default=None)
