"""Testing helpers.

`check_idempotent(handler, messages, state=...)` runs a message handler under the
redeliveries a real broker produces — a crash before the ack, an ack deadline that
passes while the handler runs, a retry after a nack, a producer's send that was
stored twice — and reports the shortest sequence of them after which the handler's
state differs from one delivery of each message.

    def reserve(msg, stock):                 # not idempotent
        stock[msg.keys[0]] -= 1

    report = check_idempotent(reserve, [{"body": b"o1", "keys": ["sku-1"]}],
                              state=lambda: {"sku-1": 10})
    assert not report
    print(report)
    # not idempotent: after message 0 ('o1'): crash before ack, the state is
    # {'sku-1': 8}; one delivery of each message gives {'sku-1': 9}

Every scenario runs on a fresh in-memory broker with a ManualClock, so the check is
deterministic and takes milliseconds per scenario; `observe=` picks what of the
state is compared when it holds what differs between brokers (message ids).
"""

from __future__ import annotations

import copy
import inspect
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

from ._native import Broker, ManualClock, Message

__all__ = ["Fault", "IdempotencyReport", "check_idempotent", "FAULTS"]

#: The redeliveries the check plants, in the order it tries them.
FAULTS = ("crash before ack", "ack timeout", "nack and retry", "duplicate send")

_TOPIC = "idempotency-check"
_GROUP = "idempotency-check"
_ACK_TIMEOUT = 60.0
_T0 = 1_700_000_000.0


@dataclass(frozen=True)
class Fault:
    """One planted redelivery: `kind` (one of FAULTS) of the message at `index`."""

    kind: str
    index: int

    def describe(self, labels: Sequence[str]) -> str:
        return f"{labels[self.index]}: {self.kind}"


@dataclass
class IdempotencyReport:
    """What `check_idempotent` found. True when no sequence changed the state."""

    ok: bool
    #: The shortest failing sequence (empty when ok).
    sequence: list[Fault] = field(default_factory=list)
    #: The state after one delivery of each message.
    expected: Any = None
    #: The state after `sequence` (None when ok).
    got: Any = None
    #: Scenarios run.
    tried: int = 0
    labels: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return f"idempotent: {self.tried} redelivery scenarios left the state as one delivery does"
        steps = ", then ".join(f.describe(self.labels) for f in self.sequence)
        return f"not idempotent: after {steps}, the state is {self.got!r}; one delivery of each message gives {self.expected!r}"


_Item = Union[bytes, str, Mapping[str, Any]]


def _split(item: _Item) -> tuple[Union[bytes, str], dict[str, Any]]:
    if isinstance(item, (bytes, str)):
        return item, {}
    options = dict(item)
    if "body" not in options:
        raise TypeError("a message is a body, or a dict with 'body' and send options")
    return options.pop("body"), options


def _label(i: int, body: Union[bytes, str]) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return f"message {i} ({text[:24]!r})" if len(text) > 0 else f"message {i}"


def _fresh(state: Any) -> Any:
    return state() if callable(state) else copy.deepcopy(state)


def _run(
    handler: Callable[[Message, Any], object],
    items: list[tuple[Union[bytes, str], dict[str, Any]]],
    state: Any,
    faults: Sequence[Fault],
) -> Any:
    """One scenario: every message delivered by a real broker, with `faults` planted
    (in order, each on the next delivery of its message); returns the state."""
    s = _fresh(state)
    clock = ManualClock(start=_T0)
    with Broker(clock=clock, default_queues=1) as b:
        p = b.producer()
        index: dict[str, int] = {}
        for i, (body, options) in enumerate(items):
            copies = 1 + sum(1 for f in faults if f.kind == "duplicate send" and f.index == i)
            for _ in range(copies):
                index[p.send(_TOPIC, body, **options).msg_id] = i
        planted = [f for f in faults if f.kind != "duplicate send"]
        consumer = b.consumer(_GROUP, _TOPIC, ack_timeout=_ACK_TIMEOUT, max_reconsume_times=64)
        idle = 0
        for _ in range(10_000):
            got = consumer.receive(max_messages=1, timeout=0)
            if not got:
                # Nothing visible: let retries and deadlines come due.
                idle += 1
                if idle > 3:
                    break
                clock.advance(3 * 3600)
                b.tick()
                continue
            idle = 0
            [msg] = got
            which = index.get(msg.msg_id)
            fault = next((f for f in planted if f.index == which), None)
            try:
                done = handler(msg, s)
            except Exception:
                consumer.nack(msg)
                continue
            if inspect.isawaitable(done):
                if inspect.iscoroutine(done):
                    done.close()
                raise TypeError(
                    "check_idempotent calls handler synchronously and it returned an "
                    "awaitable; check a synchronous wrapper (asyncio.run(handler(msg, state)))"
                )
            if fault is None:
                consumer.ack(msg)
                continue
            planted.remove(fault)
            if fault.kind == "crash before ack":
                consumer.close()
                consumer = b.consumer(_GROUP, _TOPIC, ack_timeout=_ACK_TIMEOUT, max_reconsume_times=64)
            elif fault.kind == "ack timeout":
                clock.advance(_ACK_TIMEOUT)
                b.tick()
                consumer.ack(msg)  # late: the engine already sent it back
            else:  # nack and retry
                consumer.nack(msg)
    return s


def check_idempotent(
    handler: Callable[[Message, Any], object],
    messages: Iterable[_Item],
    state: Any,
    *,
    observe: Callable[[Any], Any] = lambda s: s,
    max_faults: int = 2,
    budget: int = 2000,
) -> IdempotencyReport:
    """Runs `handler(msg, state)` over `messages` under every sequence of up to
    `max_faults` planted redeliveries (FAULTS, on any message), shortest first, at
    most `budget` scenarios; reports the first sequence whose final state differs
    from one delivery of each message.

    `messages`: bodies, or dicts of a body and `Producer.send` options (keys, tags,
    dedup_id, ...). `state`: a function returning a fresh state, or a value copied
    for each scenario. `observe(state)` is what is compared (with ==): the state
    itself by default; leave out what differs from broker to broker by nature, such
    as message ids a handler records (each scenario runs on a new broker).
    """
    if inspect.iscoroutinefunction(handler):
        raise TypeError(
            "check_idempotent calls handler synchronously and it is an async function; "
            "check a synchronous wrapper (asyncio.run(handler(msg, state)))"
        )
    items = [_split(m) for m in messages]
    if not items:
        raise ValueError("check_idempotent needs at least one message")
    if max_faults < 1 or budget < 1:
        raise ValueError("max_faults and budget must be at least 1")
    labels = [_label(i, body) for i, (body, _) in enumerate(items)]
    expected = observe(_run(handler, items, state, []))
    tried = 1
    singles = [Fault(kind, i) for i in range(len(items)) for kind in FAULTS]
    for n in range(1, max_faults + 1):
        for seq in itertools.product(singles, repeat=n):
            if tried >= budget:
                return IdempotencyReport(True, expected=expected, tried=tried, labels=labels)
            got = observe(_run(handler, items, state, list(seq)))
            tried += 1
            if got != expected:
                return IdempotencyReport(False, list(seq), expected, got, tried, labels)
    return IdempotencyReport(True, expected=expected, tried=tried, labels=labels)
