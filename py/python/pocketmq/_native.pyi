"""Type stubs of the ``pocketmq._native`` extension module (re-exported by ``pocketmq``)."""

import datetime
import os
from types import TracebackType
from typing import Any, Awaitable, Callable, Iterator, NoReturn, Optional, Sequence, Union, final

from ._types import ConsumeProgress, TxState

_Seconds = Union[int, float, datetime.timedelta]
_When = Union[int, float, datetime.datetime]
_Body = Union[bytes, bytearray, memoryview, str]
# One key or several; a key with spaces is one key per word (RocketMQ's KEYS).
_Keys = Union[str, Sequence[str]]
_Position = Union[str, int, float, datetime.datetime]

__all__ = [
    "Atomic",
    "Broker",
    "Consumer",
    "DEFAULT_DELAY_LEVELS",
    "Listener",
    "ManualClock",
    "Message",
    "Producer",
    "RemoteBroker",
    "RemoteConsumer",
    "RemoteReceive",
    "RemoteSend",
    "RemoteProducer",
    "RemoteTransactionProducer",
    "SendResult",
    "SimpleConsumer",
    "TransactionProducer",
    "TransactionStep",
    "_Receiving",
    "__version__",
    "_message",
    "_send_result",
    "_stop_listeners",
    "connect",
    "serve",
]

DEFAULT_DELAY_LEVELS: str
__version__: str

@final
class ManualClock:
    def __new__(cls, start: Optional[_When] = None) -> "ManualClock": ...
    def advance(self, seconds: _Seconds) -> None: ...
    def set(self, when: _When) -> None: ...
    def now(self) -> float: ...
    def now_ms(self) -> int: ...

@final
class Message:
    @property
    def msg_id(self) -> str: ...
    @property
    def topic(self) -> str: ...
    @property
    def queue_id(self) -> int: ...
    @property
    def queue_offset(self) -> int: ...
    @property
    def commitlog_offset(self) -> int: ...
    @property
    def body(self) -> bytes: ...
    @property
    def tags(self) -> Optional[str]: ...
    @property
    def keys(self) -> list[str]: ...
    @property
    def properties(self) -> dict[str, str]: ...
    @property
    def born_timestamp(self) -> int: ...
    @property
    def store_timestamp(self) -> int: ...
    @property
    def reconsume_times(self) -> int: ...
    @property
    def receipt_handle(self) -> Optional[str]: ...
    @property
    def delivery_attempt(self) -> int: ...
    def text(self) -> str: ...

@final
class SendResult:
    @property
    def msg_id(self) -> str: ...
    @property
    def topic(self) -> str: ...
    @property
    def queue_id(self) -> int: ...
    @property
    def queue_offset(self) -> int:
        """Where the message was stored; for a transactional send, its half message
        (as in RocketMQ): a commit stores it again in its topic."""
    @property
    def commitlog_offset(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def transaction_state(self) -> Optional[TxState]: ...
    @property
    def duplicate(self) -> bool: ...
    @property
    def recall_handle(self) -> Optional[str]:
        """For a delayed message (delay_level, delay or deliver_at), the handle
        ``Producer.recall`` takes to cancel it before it is delivered; else None."""

@final
class Producer:
    @property
    def group(self) -> str: ...
    def send(
        self,
        topic: str,
        body: _Body,
        *,
        tags: Optional[str] = None,
        keys: Optional[_Keys] = None,
        properties: Optional[dict[str, str]] = None,
        sharding_key: Optional[str] = None,
        queue_id: Optional[int] = None,
        delay_level: Optional[int] = None,
        deliver_at: Optional[_When] = None,
        delay: Optional[_Seconds] = None,
        dedup_id: Optional[str] = None,
    ) -> SendResult: ...
    def send_batch(
        self,
        topic: str,
        bodies: Sequence[_Body],
        *,
        dedup_ids: Optional[Sequence[Optional[str]]] = None,
        tags: Optional[str] = None,
        keys: Optional[_Keys] = None,
        properties: Optional[dict[str, str]] = None,
        sharding_key: Optional[str] = None,
        queue_id: Optional[int] = None,
        delay_level: Optional[int] = None,
        deliver_at: Optional[_When] = None,
        delay: Optional[_Seconds] = None,
        dedup_id: Optional[str] = None,
    ) -> list[SendResult]:
        """Sends the bodies as one append; the options apply to each body. A delay
        (``delay_level``, ``deliver_at``, ``delay``) and ``dedup_id`` take a batch
        of one body; several bodies take one id each in ``dedup_ids``."""
    def send_async(
        self,
        topic: str,
        body: _Body,
        *,
        tags: Optional[str] = None,
        keys: Optional[_Keys] = None,
        properties: Optional[dict[str, str]] = None,
        sharding_key: Optional[str] = None,
        queue_id: Optional[int] = None,
        delay_level: Optional[int] = None,
        deliver_at: Optional[_When] = None,
        delay: Optional[_Seconds] = None,
        dedup_id: Optional[str] = None,
    ) -> Awaitable[SendResult]:
        """``send`` for asyncio: awaiting it never blocks the event loop. Under
        ``flush="sync"`` the wait for the disk runs on the loop's default executor;
        otherwise the message is stored when the coroutine runs, in microseconds.
        Cancelled while it waits, the send may still be stored."""
    def send_batch_async(
        self,
        topic: str,
        bodies: Sequence[_Body],
        *,
        dedup_ids: Optional[Sequence[Optional[str]]] = None,
        tags: Optional[str] = None,
        keys: Optional[_Keys] = None,
        properties: Optional[dict[str, str]] = None,
        sharding_key: Optional[str] = None,
        queue_id: Optional[int] = None,
        delay_level: Optional[int] = None,
        deliver_at: Optional[_When] = None,
        delay: Optional[_Seconds] = None,
        dedup_id: Optional[str] = None,
    ) -> Awaitable[list[SendResult]]:
        """``send_batch`` for asyncio (as ``send_async``)."""
    def recall(self, topic: str, recall_handle: str) -> bool:
        """Cancels a delayed message before it is delivered (RocketMQ 5.3's
        recallMessage). True when it was waiting and now never will be delivered;
        False when its time has come, or it was recalled already."""

@final
class TransactionProducer:
    @property
    def group(self) -> str: ...
    def send(
        self,
        topic: str,
        body: _Body,
        *,
        execute: Callable[[Message], TxState],
        tags: Optional[str] = None,
        keys: Optional[_Keys] = None,
        properties: Optional[dict[str, str]] = None,
        sharding_key: Optional[str] = None,
        queue_id: Optional[int] = None,
        dedup_id: Optional[str] = None,
    ) -> SendResult: ...
    def send_async(
        self,
        topic: str,
        body: _Body,
        *,
        execute: Callable[[Message], Union[TxState, Awaitable[TxState]]],
        tags: Optional[str] = None,
        keys: Optional[_Keys] = None,
        properties: Optional[dict[str, str]] = None,
        sharding_key: Optional[str] = None,
        queue_id: Optional[int] = None,
        dedup_id: Optional[str] = None,
    ) -> Awaitable[SendResult]:
        """``send`` for asyncio: ``execute`` may be a coroutine function, awaited
        on the loop. Under ``flush="sync"`` the wait for the disk runs on the
        loop's default executor. Cancelled while ``execute`` runs, the half
        message stays open and the check-back decides it."""

@final
class TransactionStep:
    """A transactional send between its steps (``send_async``)."""
    @property
    def half(self) -> Optional[Message]: ...
    @property
    def result(self) -> SendResult: ...

@final
class Consumer:
    @property
    def group(self) -> str: ...
    @property
    def topic(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def receive(
        self, max_messages: int = 32, timeout: Optional[_Seconds] = 1.0
    ) -> list[Message]: ...
    def receive_async(
        self, max_messages: int = 32, timeout: Optional[_Seconds] = 1.0
    ) -> Awaitable[list[Message]]: ...
    def ack(self, message: Union[Message, list[Message], tuple[Message, ...]]) -> None: ...
    def nack(
        self,
        message: Union[Message, list[Message], tuple[Message, ...]],
        *,
        delay: Optional[_Seconds] = None,
    ) -> None: ...
    def ack_async(
        self, message: Union[Message, list[Message], tuple[Message, ...]]
    ) -> Awaitable[None]:
        """``ack`` for asyncio (over ``connect()``, the AckMessage is awaited on the
        connection's runtime; embedded, the ack is made when the coroutine runs)."""
    def nack_async(
        self,
        message: Union[Message, list[Message], tuple[Message, ...]],
        *,
        delay: Optional[_Seconds] = None,
    ) -> Awaitable[None]:
        """``nack`` for asyncio (as ``ack_async``)."""
    def listen(
        self, handler: Callable[[Message], object], *, threads: int = 4
    ) -> Listener: ...
    def listen_async(
        self, handler: Callable[[Message], object], *, concurrency: int = 16
    ) -> Awaitable[None]: ...
    def close(self) -> None: ...
    def _on_ready(self, callback: Callable[[], object]) -> None: ...
    def _start_receive(
        self, max_messages: int, timeout: Optional[float]
    ) -> _Receiving: ...
    def _receive_step(self, receiving: _Receiving) -> Optional[list[Message]]: ...
    def __iter__(self) -> Iterator[Message]: ...
    def __next__(self) -> Message: ...
    def __aiter__(self) -> "Consumer": ...
    def __anext__(self) -> Awaitable[Message]: ...
    def __enter__(self) -> "Consumer": ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class Listener:
    def stop(self) -> None: ...
    @property
    def running(self) -> bool: ...
    def __enter__(self) -> "Listener": ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class SimpleConsumer:
    @property
    def group(self) -> str: ...
    @property
    def topic(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def receive(
        self, max_messages: int = 32, timeout: Optional[_Seconds] = 1.0
    ) -> list[Message]: ...
    def receive_async(
        self, max_messages: int = 32, timeout: Optional[_Seconds] = 1.0
    ) -> Awaitable[list[Message]]: ...
    def ack(self, message: Union[Message, list[Message], tuple[Message, ...]]) -> None: ...
    def change_invisible_duration(self, message: Message, seconds: _Seconds) -> None: ...
    def nack(
        self,
        message: Union[Message, list[Message], tuple[Message, ...]],
        *,
        delay: Optional[_Seconds] = None,
    ) -> None: ...
    def ack_async(
        self, message: Union[Message, list[Message], tuple[Message, ...]]
    ) -> Awaitable[None]:
        """``ack`` for asyncio (over ``connect()``, the AckMessage is awaited on the
        connection's runtime; embedded, the ack is made when the coroutine runs)."""
    def nack_async(
        self,
        message: Union[Message, list[Message], tuple[Message, ...]],
        *,
        delay: Optional[_Seconds] = None,
    ) -> Awaitable[None]:
        """``nack`` for asyncio (as ``ack_async``)."""
    def listen(
        self, handler: Callable[[Message], object], *, threads: int = 4
    ) -> Listener: ...
    def listen_async(
        self, handler: Callable[[Message], object], *, concurrency: int = 16
    ) -> Awaitable[None]: ...
    def close(self) -> None: ...
    def _on_ready(self, callback: Callable[[], object]) -> None: ...
    def _start_receive(
        self, max_messages: int, timeout: Optional[float]
    ) -> _Receiving: ...
    def _receive_step(self, receiving: _Receiving) -> Optional[list[Message]]: ...
    def __iter__(self) -> Iterator[Message]: ...
    def __next__(self) -> Message: ...
    def __aiter__(self) -> "SimpleConsumer": ...
    def __anext__(self) -> Awaitable[Message]: ...
    def __enter__(self) -> "SimpleConsumer": ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class Atomic:
    def send(
        self,
        topic: str,
        body: _Body,
        *,
        tags: Optional[str] = None,
        keys: Optional[_Keys] = None,
        properties: Optional[dict[str, str]] = None,
        sharding_key: Optional[str] = None,
        queue_id: Optional[int] = None,
        delay_level: Optional[int] = None,
        deliver_at: Optional[_When] = None,
        delay: Optional[_Seconds] = None,
        dedup_id: Optional[str] = None,
    ) -> None: ...
    def ack(self, consumer: Union[Consumer, SimpleConsumer], message: Message) -> None: ...
    def commit(self) -> list[SendResult]: ...
    def abort(self) -> None: ...
    @property
    def results(self) -> Optional[list[SendResult]]: ...
    def __enter__(self) -> "Atomic": ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    def __aenter__(self) -> Awaitable["Atomic"]:
        """``async with broker.atomic() as tx:`` enters as ``with`` does."""
    def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Awaitable[bool]:
        """Ends the block as ``with`` does; under ``flush="sync"`` the commit's wait
        for the disk runs on the loop's default executor."""

@final
class _Receiving:
    @property
    def remaining(self) -> Optional[float]: ...

@final
class Broker:
    def __new__(
        cls,
        path: Union[str, os.PathLike[str], None] = None,
        *,
        flush: Optional[str] = None,
        clock: Optional[ManualClock] = None,
        max_message_size: Optional[int] = None,
        auto_create_topics: Optional[bool] = None,
        default_queues: Optional[int] = None,
        delay_levels: Optional[str] = None,
        timer_max_delay: Optional[_Seconds] = None,
        file_reserved_time: Optional[_Seconds] = None,
        delete_when: Optional[str] = None,
        disk_clean_ratio: Optional[float] = None,
        segment_size: Optional[int] = None,
        transaction_timeout: Optional[_Seconds] = None,
        check_interval: Optional[_Seconds] = None,
        dedup_window: Optional[_Seconds] = None,
        max_checks: Optional[int] = None,
        disk_max_used_ratio: Optional[float] = None,
        disk_clean_forcibly_ratio: Optional[float] = None,
        retention: Optional[str] = None,
        sync_flush_timeout: Optional[_Seconds] = None,
        flush_interval: Optional[_Seconds] = None,
    ) -> "Broker": ...
    @property
    def path(self) -> Optional[str]: ...
    @property
    def closed(self) -> bool: ...
    def create_topic(self, name: str, queues: Optional[int] = None) -> None: ...
    def topics(self) -> dict[str, int]: ...
    def producer(self, group: str = "DEFAULT_PRODUCER") -> Producer: ...
    def atomic(self) -> Atomic: ...
    def simple_consumer(
        self,
        group: str,
        topic: str,
        *,
        tags: Optional[str] = None,
        sql: Optional[str] = None,
        invisible_duration: Optional[_Seconds] = None,
        max_delivery_attempts: Optional[int] = None,
        fifo: Optional[bool] = None,
    ) -> SimpleConsumer: ...
    def transaction_producer(
        self, group: str, *, check: Callable[[Message], Union[TxState, Awaitable[TxState]]]
    ) -> TransactionProducer:
        """``check(msg)`` answers the check-back about half messages left UNKNOWN. An
        ``async def check`` is awaited on the event loop running where this is called
        (the check counts as UNKNOWN until it answers), or, with none, run to its
        end on the thread that asks."""
    def consumer(
        self,
        group: str,
        topic: str,
        *,
        tags: Optional[str] = None,
        sql: Optional[str] = None,
        broadcasting: bool = False,
        orderly: bool = False,
        max_reconsume_times: Optional[int] = None,
        start: Optional[_Position] = None,
        consumer_id: Optional[str] = None,
        ack_timeout: Optional[_Seconds] = 900.0,
        max_in_flight: int = 1000,
    ) -> Consumer: ...
    def get(self, msg_id: str) -> Optional[Message]: ...
    def query(self, topic: str, key: str) -> list[Message]: ...
    def lag(self, group: str, topic: str) -> int: ...
    def reset_offset(self, group: str, topic: str, to: _Position) -> None: ...
    def move_backlog(
        self,
        group: str,
        topic: str,
        *,
        to: str,
        queues: Optional[int] = None,
        on_progress: Optional[Callable[[int, int], object]] = None,
    ) -> int: ...
    def browse(
        self,
        topic: str,
        queue_id: Optional[int] = None,
        offset: Optional[int] = None,
        limit: int = 32,
    ) -> list[Message]: ...
    def query_by_time(
        self, topic: str, start: _When, end: _When, limit: int = 1000
    ) -> list[Message]: ...
    def progress(self, group: str, topic: str) -> list[ConsumeProgress]: ...
    def dead_letters(self, group: str, limit: int = 100) -> list[Message]: ...
    def redrive(
        self,
        group: str,
        limit: Optional[int] = None,
        *,
        on_progress: Optional[Callable[[int, int], object]] = None,
    ) -> int: ...
    def delete_topic(self, topic: str) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def tick(self) -> None: ...
    def next_due(self) -> Optional[float]: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Broker": ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

def serve(argv: list[str]) -> int:
    """Runs the RocketMQ 5 gRPC server with ``pocketmq-serve``'s arguments until a
    signal stops it; the exit status."""
    ...

# ---- connect(): the same API over Apache RocketMQ 5's gRPC protocol ----

@final
class RemoteProducer:
    @property
    def group(self) -> str: ...
    def send(
        self,
        topic: str,
        body: _Body,
        *,
        tags: Optional[str] = None,
        keys: Optional[_Keys] = None,
        properties: Optional[dict[str, str]] = None,
        sharding_key: Optional[str] = None,
        queue_id: Optional[int] = None,
        delay_level: Optional[int] = None,
        deliver_at: Optional[_When] = None,
        delay: Optional[_Seconds] = None,
        dedup_id: Optional[str] = None,
    ) -> SendResult: ...
    def send_batch(
        self,
        topic: str,
        bodies: Sequence[_Body],
        *,
        dedup_ids: Optional[Sequence[Optional[str]]] = None,
        tags: Optional[str] = None,
        keys: Optional[_Keys] = None,
        properties: Optional[dict[str, str]] = None,
        sharding_key: Optional[str] = None,
        queue_id: Optional[int] = None,
        delay_level: Optional[int] = None,
        deliver_at: Optional[_When] = None,
        delay: Optional[_Seconds] = None,
        dedup_id: Optional[str] = None,
    ) -> list[SendResult]:
        """Sends the bodies as one append; the options apply to each body. A delay
        (``delay_level``, ``deliver_at``, ``delay``) and ``dedup_id`` take a batch
        of one body; several bodies take one id each in ``dedup_ids``."""
    def send_async(
        self,
        topic: str,
        body: _Body,
        *,
        tags: Optional[str] = None,
        keys: Optional[_Keys] = None,
        properties: Optional[dict[str, str]] = None,
        sharding_key: Optional[str] = None,
        queue_id: Optional[int] = None,
        delay_level: Optional[int] = None,
        deliver_at: Optional[_When] = None,
        delay: Optional[_Seconds] = None,
        dedup_id: Optional[str] = None,
    ) -> Awaitable[SendResult]:
        """``send`` for asyncio: awaiting it never blocks the event loop. The send
        runs on the connection's runtime, so no thread waits for the answer.
        Cancelled while it waits, the send may still be stored."""
    def send_batch_async(
        self,
        topic: str,
        bodies: Sequence[_Body],
        *,
        dedup_ids: Optional[Sequence[Optional[str]]] = None,
        tags: Optional[str] = None,
        keys: Optional[_Keys] = None,
        properties: Optional[dict[str, str]] = None,
        sharding_key: Optional[str] = None,
        queue_id: Optional[int] = None,
        delay_level: Optional[int] = None,
        deliver_at: Optional[_When] = None,
        delay: Optional[_Seconds] = None,
        dedup_id: Optional[str] = None,
    ) -> Awaitable[list[SendResult]]:
        """``send_batch`` for asyncio (as ``send_async``)."""
    def recall(self, topic: str, recall_handle: str) -> bool:
        """Cancels a delayed message before it is delivered (RocketMQ 5.3's
        recallMessage). True when it was waiting and now never will be delivered;
        False when its time has come, or it was recalled already."""

@final
class RemoteTransactionProducer:
    @property
    def group(self) -> str: ...
    def send(
        self,
        topic: str,
        body: _Body,
        *,
        execute: Callable[[Message], TxState],
        tags: Optional[str] = None,
        keys: Optional[_Keys] = None,
        properties: Optional[dict[str, str]] = None,
        sharding_key: Optional[str] = None,
        queue_id: Optional[int] = None,
        dedup_id: Optional[str] = None,
    ) -> SendResult: ...
    def send_async(
        self,
        topic: str,
        body: _Body,
        *,
        execute: Callable[[Message], Union[TxState, Awaitable[TxState]]],
        tags: Optional[str] = None,
        keys: Optional[_Keys] = None,
        properties: Optional[dict[str, str]] = None,
        sharding_key: Optional[str] = None,
        queue_id: Optional[int] = None,
        dedup_id: Optional[str] = None,
    ) -> Awaitable[SendResult]:
        """``send`` for asyncio: ``execute`` may be a coroutine function, awaited
        on the loop; the half message's send and the EndTransaction are awaited on
        the connection's runtime, so no thread waits for them."""

@final
class RemoteSend:
    def result(self) -> Any: ...

@final
class RemoteReceive:
    def cancel(self) -> None: ...
    def result(self) -> list[Message]: ...

@final
class RemoteConsumer:
    @property
    def group(self) -> str: ...
    @property
    def topic(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def receive(
        self, max_messages: int = 32, timeout: Optional[_Seconds] = 1.0
    ) -> list[Message]: ...
    def receive_async(
        self, max_messages: int = 32, timeout: Optional[_Seconds] = 1.0
    ) -> Awaitable[list[Message]]: ...
    def ack(self, message: Union[Message, list[Message], tuple[Message, ...]]) -> None: ...
    def nack(
        self,
        message: Union[Message, list[Message], tuple[Message, ...]],
        *,
        delay: Optional[_Seconds] = None,
    ) -> None: ...
    def ack_async(
        self, message: Union[Message, list[Message], tuple[Message, ...]]
    ) -> Awaitable[None]:
        """``ack`` for asyncio (over ``connect()``, the AckMessage is awaited on the
        connection's runtime; embedded, the ack is made when the coroutine runs)."""
    def nack_async(
        self,
        message: Union[Message, list[Message], tuple[Message, ...]],
        *,
        delay: Optional[_Seconds] = None,
    ) -> Awaitable[None]:
        """``nack`` for asyncio (as ``ack_async``)."""
    def change_invisible_duration(self, message: Message, seconds: _Seconds) -> None: ...
    def listen(
        self, handler: Callable[[Message], object], *, threads: int = 4
    ) -> Listener: ...
    def listen_async(
        self, handler: Callable[[Message], object], *, concurrency: int = 16
    ) -> Awaitable[None]: ...
    def close(self) -> None: ...
    def _receive_start(
        self, max_messages: int, timeout: Optional[float], wake: Callable[[], object]
    ) -> RemoteReceive: ...
    def __iter__(self) -> Iterator[Message]: ...
    def __next__(self) -> Message: ...
    def __aiter__(self) -> "RemoteConsumer": ...
    def __anext__(self) -> Awaitable[Message]: ...
    def __enter__(self) -> "RemoteConsumer": ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class RemoteBroker:
    @property
    def endpoint(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def path(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def producer(self, group: str = "DEFAULT_PRODUCER") -> RemoteProducer: ...
    def transaction_producer(
        self, group: str, *, check: Callable[[Message], Union[TxState, Awaitable[TxState]]]
    ) -> RemoteTransactionProducer:
        """``check(msg)`` answers the server's check-backs. An ``async def check`` is
        awaited on the event loop running where this is called (up to 10 s), or,
        with none, run to its end on the connection's thread that asks."""
    def simple_consumer(
        self,
        group: str,
        topic: str,
        *,
        tags: Optional[str] = None,
        sql: Optional[str] = None,
        invisible_duration: Optional[_Seconds] = None,
        max_delivery_attempts: Optional[int] = None,
        fifo: Optional[bool] = None,
    ) -> RemoteConsumer: ...
    def consumer(
        self,
        group: str,
        topic: str,
        *,
        tags: Optional[str] = None,
        sql: Optional[str] = None,
        broadcasting: bool = False,
        orderly: bool = False,
        max_reconsume_times: Optional[int] = None,
        start: Optional[_Position] = None,
        consumer_id: Optional[str] = None,
        ack_timeout: Optional[_Seconds] = 900.0,
        max_in_flight: Optional[int] = None,
    ) -> RemoteConsumer: ...
    def close(self) -> None: ...
    def create_topic(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def topics(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def atomic(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def get(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def query(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def lag(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def reset_offset(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def move_backlog(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def browse(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def query_by_time(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def progress(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def dead_letters(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def redrive(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def delete_topic(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def stats(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def tick(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def next_due(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def flush(self, *args: Any, **kwargs: Any) -> NoReturn: ...
    def __enter__(self) -> "RemoteBroker": ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

def _stop_listeners() -> None: ...
def _message(state: dict[str, Any]) -> Message:
    """Rebuilds a pickled Message (its `__reduce__` names it)."""
def _send_result(state: dict[str, Any]) -> SendResult:
    """Rebuilds a pickled SendResult (its `__reduce__` names it)."""
def connect(
    endpoint: str,
    access_key: Optional[str] = None,
    secret_key: Optional[str] = None,
    namespace: Optional[str] = None,
) -> RemoteBroker:
    """A broker over Apache RocketMQ 5's gRPC protocol: a ``pocketmq serve`` or an
    Apache RocketMQ 5 proxy at ``host:port``."""
    ...
