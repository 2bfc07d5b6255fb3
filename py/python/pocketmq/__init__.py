"""pocketmq: an embeddable message broker with RocketMQ's model.

Topics with queues, consumer groups, ordered messages, delay levels, retries, dead
letters and transactional messages, in-process, over a directory or memory::

    import pocketmq

    with pocketmq.Broker() as broker:
        broker.producer("shop").send("orders", b"order 42 paid", tags="paid")
        consumer = broker.consumer("sms", "orders")
        for msg in consumer.receive(timeout=1.0):
            consumer.ack(msg)

``pocketmq.connect("127.0.0.1:8081")`` gives the same producers and consumers over
Apache RocketMQ 5's gRPC protocol, to a ``pocketmq serve`` or an Apache RocketMQ 5
proxy.
"""

from __future__ import annotations

import atexit

from ._errors import (
    Closed,
    DiskFull,
    Error,
    InvalidArgument,
    InvalidReceiptHandle,
    IoError,
    MessageTooLarge,
    NotSupported,
    RetryLater,
    StoreCorrupted,
    StoreLocked,
    TopicNotFound,
)
from ._native import (
    DEFAULT_DELAY_LEVELS,
    Atomic,
    Broker,
    Consumer,
    Listener,
    ManualClock,
    Message,
    Producer,
    RemoteBroker,
    RemoteConsumer,
    RemoteProducer,
    RemoteTransactionProducer,
    SendResult,
    SimpleConsumer,
    TransactionProducer,
    __version__,
    connect,
)
from ._native import _stop_listeners
from ._types import ConsumeProgress, TxState

# Listener threads stop, their running handlers done, before the interpreter shuts
# down: a handler still running then would be ended inside its thread.
atexit.register(_stop_listeners)

__all__ = [
    "Atomic",
    "Broker",
    "Closed",
    "ConsumeProgress",
    "Consumer",
    "DEFAULT_DELAY_LEVELS",
    "DiskFull",
    "Error",
    "InvalidArgument",
    "InvalidReceiptHandle",
    "IoError",
    "Listener",
    "ManualClock",
    "Message",
    "MessageTooLarge",
    "NotSupported",
    "Producer",
    "RemoteBroker",
    "RemoteConsumer",
    "RemoteProducer",
    "RemoteTransactionProducer",
    "RetryLater",
    "SendResult",
    "SimpleConsumer",
    "StoreCorrupted",
    "StoreLocked",
    "TopicNotFound",
    "TransactionProducer",
    "TxState",
    "__version__",
    "connect",
]
