"""asyncio support for :class:`pocketmq.Consumer`.

A waiting ``receive_async`` holds no thread (over ``connect()`` either:
``remote_receive``): it steps the engine's receive without
blocking (``Consumer._receive_step``, which decides when the receive ends) and, in
between, asks the consumer to call back when a receive may find messages
(``Consumer._on_ready``); the callback wakes the event loop with
``call_soon_threadsafe``. The broker calls back at most once per wait, on a send
that may interest the consumer or on close.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._errors import Closed, Error, InvalidArgument, RetryLater

_log = logging.getLogger("pocketmq.listener")

# Seconds a listener waits after a failed receive before it tries again.
_RETRY_PAUSE = 1.0

if TYPE_CHECKING:
    from typing import Union

    from ._native import Consumer, Message, RemoteConsumer, SimpleConsumer


def _resolve(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


def _waker(loop: asyncio.AbstractEventLoop, fut: "asyncio.Future[None]") -> Callable[[], None]:
    """A callback any thread may call to resolve ``fut`` on ``loop``."""

    def wake() -> None:
        try:
            loop.call_soon_threadsafe(_resolve, fut)
        except RuntimeError:
            pass  # the loop has closed; nobody waits any more

    return wake


async def receive_async(
    consumer: "Union[Consumer, SimpleConsumer]",
    max_messages: int,
    timeout: Optional[float],
) -> "list[Message]":
    loop = asyncio.get_running_loop()
    receiving = consumer._start_receive(max_messages, timeout)
    while True:
        msgs = consumer._receive_step(receiving)
        if msgs is not None:
            return msgs
        ready: "asyncio.Future[None]" = loop.create_future()
        consumer._on_ready(_waker(loop, ready))
        # Not asyncio.wait_for: up to Python 3.11 it swallows a cancel that arrives
        # as `ready` resolves, and a listener cancelled then would never stop.
        # On a timeout the next step ends the receive at its deadline.
        await asyncio.wait((ready,), timeout=receiving.remaining)


async def remote_receive(
    consumer: "RemoteConsumer",
    max_messages: int,
    timeout: Optional[float],
) -> "list[Message]":
    """``receive_async`` of a consumer over ``connect()``: the receive runs on the
    connection's own runtime and calls back when done, so no thread waits for it;
    cancelled, it ends at once and what it got goes to the consumer's next receive."""
    loop = asyncio.get_running_loop()
    done: "asyncio.Future[None]" = loop.create_future()
    job = consumer._receive_start(max_messages, timeout, _waker(loop, done))
    try:
        await done
    except asyncio.CancelledError:
        job.cancel()
        raise
    return job.result()


async def send_async(
    producer: Any,
    method: str,
    args: "tuple[Any, ...]",
    options: "Optional[dict[str, Any]]",
    waits: bool,
) -> Any:
    """``send_async`` and ``send_batch_async`` of an embedded producer: ``method``
    with ``args`` and ``options``. A send that ``waits`` for the disk
    (``flush="sync"``) runs on the loop's default executor; any other returns in
    microseconds and runs here. Cancelled while it waits, the send may still be
    stored."""
    send = getattr(producer, method)
    kwargs = options or {}
    if not waits:
        return send(*args, **kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(send, *args, **kwargs))


async def inline(
    call: "Callable[..., Any]", args: "tuple[Any, ...]", kwargs: "Optional[dict[str, Any]]"
) -> Any:
    """``ack_async`` and ``nack_async`` of an embedded consumer: the call, made when
    the coroutine runs (it waits for nothing)."""
    return call(*args, **(kwargs or {}))


async def remote_call(
    target: Any,
    method: str,
    args: "tuple[Any, ...]",
    options: "Optional[dict[str, Any]]",
) -> Any:
    """A call over ``connect()`` awaited without a thread: ``send_async`` and
    ``send_batch_async`` of a producer, ``ack_async`` and ``nack_async`` of a
    consumer. ``method`` starts it on the connection's own runtime, which calls back
    when it is answered. Cancelled while it waits, the call may still take effect
    (its request may be on its way)."""
    start = getattr(target, method)
    return await _remote_job(lambda wake: start(wake, *args, **(options or {})))


async def _remote_job(start: "Callable[[Callable[[], None]], Any]") -> Any:
    """The result of a job that ``start(wake)`` begins on a connection's runtime,
    which calls ``wake`` (from its own thread) once the job is done."""
    loop = asyncio.get_running_loop()
    done: "asyncio.Future[None]" = loop.create_future()
    job = start(_waker(loop, done))
    await done
    return job.result()


async def transaction_send_async(
    producer: Any,
    topic: Any,
    body: Any,
    execute: Any,
    options: "Optional[dict[str, Any]]",
    how: str,
) -> Any:
    """``send_async`` of a transaction producer: the half message is stored, then
    ``execute(msg)`` runs on the loop and its answer is awaited when it is
    awaitable, then the outcome is recorded. ``how`` the two steps run: "here"
    (an embedded store that does not wait for the disk), "executor" (one that waits
    for it: ``flush="sync"``), "remote" (over ``connect()``: on the connection's
    runtime, no thread waiting). An ``execute`` that raises, or answers something
    other than a ``TxState``, counts as UNKNOWN and is logged, as in ``send``.
    Cancelled before the outcome is recorded, the half message stays open and the
    check-back decides it, as after a crash."""
    if not callable(execute):
        raise TypeError(f"execute must be callable, not {type(execute).__name__}")
    kwargs = options or {}
    if how == "remote":
        step = await _remote_job(lambda wake: producer._begin_start(wake, topic, body, **kwargs))
    elif how == "executor":
        loop = asyncio.get_running_loop()
        step = await loop.run_in_executor(
            None, functools.partial(producer._begin, topic, body, **kwargs)
        )
    else:
        step = producer._begin(topic, body, **kwargs)
    half = step.half
    if half is None:
        # The outcome is known already: a repeated dedup id, or a timed-out sync flush.
        return producer._finish(step, None)
    answer: Any = None
    error: Optional[Exception] = None
    try:
        answer = execute(half)
        if inspect.isawaitable(answer):
            answer = await answer
    except Exception as e:  # counted as UNKNOWN and logged by _finish, as send does
        error = e
    if how == "remote":
        return await _remote_job(lambda wake: producer._finish_start(wake, step, answer, error))
    return producer._finish(step, answer, error)


async def ready(value: Any) -> Any:
    """An awaitable of ``value`` (``__aenter__`` of an atomic block)."""
    return value


async def atomic_exit(block: Any, commit: bool, waits: bool) -> bool:
    """``__aexit__`` of ``async with broker.atomic()``: commits the block when
    ``commit``, on the loop's default executor when the commit ``waits`` for the
    disk. Cancelled while that commit waits, the block may still be stored (all of
    it, never a part)."""
    if commit:
        if waits:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, block.commit)
        else:
            block.commit()
    return False


def running_loop() -> "Optional[asyncio.AbstractEventLoop]":
    """The event loop running on this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _awaited(answer: Any) -> Any:
    return await answer


def check_async(
    answer: Any,
    loop: "Optional[asyncio.AbstractEventLoop]",
    settle: "Callable[[Any, Optional[BaseException]], None]",
) -> Any:
    """The awaitable answer of an embedded transaction check (an ``async def
    check``). On this thread's running loop, or else on ``loop`` (the one running
    where the producer was made) while it runs, it is awaited as a task and
    ``settle(answer, error)`` records what it gives; None is returned at once and the
    check counts as UNKNOWN until then. With no loop running it is run to its end
    here and its answer returned."""
    target = running_loop()
    if target is None and loop is not None and loop.is_running():
        target = loop
    if target is None:
        return asyncio.run(_awaited(answer))

    def done(fut: "Any") -> None:
        try:
            result = fut.result()
        except BaseException as e:  # a cancelled or failed check: logged by settle
            settle(None, e)
        else:
            settle(result, None)

    if target is running_loop():
        target.create_task(_awaited(answer)).add_done_callback(done)
    else:
        asyncio.run_coroutine_threadsafe(_awaited(answer), target).add_done_callback(done)
    return None


def check_wait(answer: Any, loop: "Optional[asyncio.AbstractEventLoop]", timeout: float) -> Any:
    """The awaitable answer of a check over ``connect()`` (an ``async def check``),
    awaited on ``loop`` (the one running where the producer was made) while it runs,
    else run to its end here; this thread is the connection's, never a loop's. A
    check that takes longer than ``timeout`` seconds raises (counted as UNKNOWN; the
    server asks again later)."""
    if loop is not None and loop.is_running():
        fut = asyncio.run_coroutine_threadsafe(_awaited(answer), loop)
        try:
            return fut.result(timeout)
        except BaseException:
            fut.cancel()  # too late: the server asks again
            raise
    return asyncio.run(_awaited(answer))


async def next_message(consumer: "Union[Consumer, SimpleConsumer, RemoteConsumer]") -> "Message":
    """``async for msg in consumer``: one message at a time, until the consumer closes."""
    if consumer.closed:
        raise StopAsyncIteration
    msgs = await consumer.receive_async(1, None)
    if not msgs:
        raise StopAsyncIteration
    return msgs[0]


async def listen_async(
    consumer: "Union[Consumer, SimpleConsumer, RemoteConsumer]",
    handler: "Callable[[Message], Any]",
    concurrency: int,
) -> None:
    """``await consumer.listen_async(handler)``: runs ``handler`` on each message, at
    most ``concurrency`` at a time, until cancelled or the consumer closes. A
    return acks; an exception nacks (logged at WARNING); ``RetryLater(seconds)``
    nacks with that delay. Cancelled, it cancels the running handlers; their
    messages are nacked with no delay (redelivered at once)."""
    if not callable(handler):
        raise TypeError(f"handler must be callable, not {type(handler).__name__}")
    if not isinstance(concurrency, int) or isinstance(concurrency, bool):
        raise TypeError(f"concurrency must be an int, not {type(concurrency).__name__}")
    if not 1 <= concurrency <= 100_000:
        raise InvalidArgument(f"concurrency must be between 1 and 100000, not {concurrency!r}")
    if consumer.closed:
        raise Closed("the consumer is closed")
    running: "set[asyncio.Task[None]]" = set()
    # Over connect() an ack or a nack is a round trip to the server: awaited on the
    # connection's runtime (a coroutine), not made on the loop. Embedded ones wait
    # for nothing and are made at once (None).
    remote = hasattr(consumer, "_ack_start")

    def ack(msg: "Message") -> Any:
        return consumer.ack_async(msg) if remote else consumer.ack(msg)

    def nack(msg: "Message", delay: "Optional[float]" = None) -> Any:
        return consumer.nack_async(msg, delay=delay) if remote else consumer.nack(msg, delay=delay)

    async def settle(msg: "Message", how: "Callable[[], Any]") -> None:
        # A settle that fails (the consumer closed meanwhile, or the handler settled
        # the message itself) is logged, never left to the loop as a task's error.
        try:
            done = how()
            if done is not None:
                await done
        except Error as e:
            _log.warning("ack or nack of message %s failed: %s", msg.msg_id, e)

    async def nack_after(msg: "Message", delay: float) -> None:
        # A delay the consumer does not take (longer than its limit): the message is
        # still nacked, after the retry ladder's step, as the listener threads do.
        try:
            done = nack(msg, delay)
            if done is not None:
                await done
        except InvalidArgument as e:
            _log.warning("RetryLater for message %s: %s; nacked without the delay", msg.msg_id, e)
            done = nack(msg)
            if done is not None:
                await done

    async def run(msg: "Message") -> None:
        try:
            done = handler(msg)
            # A plain function works too (it runs on the loop: keep it short).
            if inspect.isawaitable(done):
                await done
        except RetryLater as later:
            await settle(msg, lambda: nack_after(msg, later.delay))
        except asyncio.CancelledError:
            # Cancelled before it finished: the message goes back at once for
            # another try instead of waiting for its ack deadline.
            await settle(msg, lambda: nack(msg, 0.0))
            raise
        except Exception:
            _log.warning("handler failed for message %s; it will be retried", msg.msg_id, exc_info=True)
            await settle(msg, lambda: nack(msg))
        else:
            await settle(msg, lambda: ack(msg))

    try:
        while not consumer.closed:
            if len(running) >= concurrency:
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                msgs = await consumer.receive_async(concurrency - len(running), 1.0)
            except Closed:
                break
            except Error as e:
                if consumer.closed:
                    break
                # A server away for a while (over connect()): tried again after a
                # pause, as the listener threads and RocketMQ's push consumers do.
                _log.warning("receive failed, trying again in %s s: %s", _RETRY_PAUSE, e)
                await asyncio.sleep(_RETRY_PAUSE)
                continue
            for msg in msgs:
                task = asyncio.ensure_future(run(msg))
                running.add(task)
                task.add_done_callback(running.discard)
        if running:
            await asyncio.wait(running)
    except asyncio.CancelledError:
        for task in running:
            task.cancel()
        if running:
            # Let them settle (each nacks its message) before the cancel goes on.
            await asyncio.wait(running)
        raise
