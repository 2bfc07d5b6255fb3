"""asyncio support for :class:`pocketmq.Consumer`.

A waiting ``receive_async`` holds no thread: it steps the engine's receive without
blocking (``Consumer._receive_step``, which decides when the receive ends) and, in
between, asks the consumer to call back when a receive may find messages
(``Consumer._on_ready``); the callback wakes the event loop with
``call_soon_threadsafe``. The broker calls back at most once per wait, on a send
that may interest the consumer or on close.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ._native import Consumer, Message


def _resolve(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


async def receive_async(
    consumer: "Consumer", max_messages: int, timeout: Optional[float]
) -> "list[Message]":
    loop = asyncio.get_running_loop()
    receiving = consumer._start_receive(max_messages, timeout)
    while True:
        msgs = consumer._receive_step(receiving)
        if msgs is not None:
            return msgs
        ready: "asyncio.Future[None]" = loop.create_future()

        def wake(ready: "asyncio.Future[None]" = ready) -> None:
            try:
                loop.call_soon_threadsafe(_resolve, ready)
            except RuntimeError:
                pass  # the loop has closed; nobody waits any more

        consumer._on_ready(wake)
        try:
            await asyncio.wait_for(ready, receiving.remaining)
        except asyncio.TimeoutError:
            pass  # the next step ends the receive at its deadline


async def next_message(consumer: "Consumer") -> "Message":
    """``async for msg in consumer``: one message at a time, until the consumer closes."""
    if consumer.closed:
        raise StopAsyncIteration
    msgs = await receive_async(consumer, 1, None)
    if not msgs:
        raise StopAsyncIteration
    return msgs[0]
