"""pocketmq.testing.check_idempotent: finds the shortest redelivery sequence that
breaks a handler, and passes an idempotent one."""

from __future__ import annotations

from typing import Any

import pytest

import pocketmq
from pocketmq.testing import FAULTS, Fault, check_idempotent

ORDERS = [{"body": b"o1", "keys": ["lamp"]}, {"body": b"o2", "keys": ["desk"]}]


def fresh() -> dict[str, Any]:
    return {"stock": {"lamp": 10, "desk": 5}, "seen": set()}


def stock(s: dict[str, Any]) -> Any:
    return s["stock"]


def test_a_planted_non_idempotent_handler_is_found_with_the_shortest_sequence() -> None:
    def reserve(msg: pocketmq.Message, s: dict[str, Any]) -> None:
        s["stock"][msg.keys[0]] -= 1

    r = check_idempotent(reserve, ORDERS, state=fresh, observe=stock)
    assert not r
    assert r.sequence == [Fault("crash before ack", 0)], "one fault is enough"
    assert r.expected == {"lamp": 9, "desk": 4} and r.got == {"lamp": 8, "desk": 4}
    assert "crash before ack" in str(r) and "'o1'" in str(r)


def test_each_kind_of_redelivery_is_planted() -> None:
    # A handler that breaks only on a redelivery of the same message id with
    # reconsume_times > 0 (the retry paths), or on a second id for one body.
    def picky(msg: pocketmq.Message, s: dict[str, Any]) -> None:
        s["seen"].add(msg.msg_id)
        s.setdefault("bodies", []).append(msg.body)
        if msg.reconsume_times > 0:
            s["stock"][msg.keys[0]] -= 100

    r = check_idempotent(picky, ORDERS[:1], state=fresh, observe=stock)
    assert r.sequence == [Fault("ack timeout", 0)]

    def counts_ids(msg: pocketmq.Message, s: dict[str, Any]) -> None:
        if msg.msg_id not in s["seen"]:
            s["seen"].add(msg.msg_id)
            s["stock"][msg.keys[0]] -= 1

    r = check_idempotent(counts_ids, ORDERS, state=fresh, observe=stock)
    assert r.sequence == [Fault("duplicate send", 0)]
    # With a dedup id the broker stores the duplicate send once: it passes.
    deduped = [dict(o, dedup_id=o["body"].decode()) for o in ORDERS]
    ok = check_idempotent(counts_ids, deduped, state=fresh, observe=stock)
    assert ok, str(ok)
    assert ok.tried == 1 + 2 * len(FAULTS) + (2 * len(FAULTS)) ** 2


def test_an_idempotent_handler_passes_within_the_budget() -> None:
    def by_order(msg: pocketmq.Message, s: dict[str, Any]) -> None:
        if msg.body not in s["seen"]:
            s["seen"].add(msg.body)
            s["stock"][msg.keys[0]] -= 1

    r = check_idempotent(by_order, ORDERS, state=fresh)
    assert r and "idempotent" in str(r)
    small = check_idempotent(by_order, ORDERS, state=fresh, budget=5)
    assert small and small.tried == 5


def test_a_handler_that_raises_is_retried_like_a_nack() -> None:
    def flaky(msg: pocketmq.Message, s: dict[str, Any]) -> None:
        s["calls"] = s.get("calls", 0) + 1
        if s["calls"] == 1:
            raise RuntimeError("first call fails")
        s["stock"][msg.keys[0]] -= 1

    r = check_idempotent(flaky, ORDERS[:1], state=fresh, observe=stock, max_faults=1)
    assert r.expected == {"lamp": 9, "desk": 5}


def test_an_async_handler_is_refused_not_passed_unrun() -> None:
    async def handler(msg: pocketmq.Message, stock: dict) -> None:
        stock["n"] -= 1

    with pytest.raises(TypeError, match="async"):
        check_idempotent(handler, [b"x"], state=lambda: {"n": 1})
    with pytest.raises(TypeError, match="awaitable"):
        check_idempotent(lambda m, s: handler(m, s), [b"x"], state=lambda: {"n": 1})


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        check_idempotent(lambda m, s: None, [], state=dict)
    with pytest.raises(TypeError):
        check_idempotent(lambda m, s: None, [{"keys": ["x"]}], state=dict)
    with pytest.raises(ValueError):
        check_idempotent(lambda m, s: None, [b"x"], state=dict, max_faults=0)
