"""Bad input over every public argument: wrong types, values out of range, huge
ints, NaN and infinities, property separators, path characters, text that is not
valid Unicode (a lone surrogate, as `os.fsdecode` makes of bad bytes). Each call fails
with a TypeError or a pocketmq error (never OverflowError, a bare ValueError or
a panic), and leaves the store exactly as it was."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import pocketmq

T0 = 1_700_000_000.0
HUGE = [2**63, 2**64, 10**400]
NOT_FINITE = [math.nan, math.inf, -math.inf]
SEPARATORS = ["a\x01b", "a\x02b", "x\x02REAL_TOPIC\x01../../escaped\x02"]
PATHS = ["../escaped", "a/b", "/abs", "..", "a\x00b"]
LONE = "a\udc80b"  # a lone surrogate: no UTF-8 for it


def r(v: Any) -> str:
    """A short repr for a test id."""
    text = repr(v)
    return text if len(text) <= 24 else f"{text[:12]}...{len(text)}"


def snapshot(root: Path) -> dict[str, str]:
    """Every file of the store (and next to it) with a digest of its bytes."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if p.name in ("lock", "abort"):
                continue
            out[str(p.relative_to(root))] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    clock = pocketmq.ManualClock(start=T0)
    b = pocketmq.Broker(tmp_path / "store", clock=clock, segment_size=65536, flush="sync")
    b.create_topic("t", queues=2)
    p = b.producer("p")
    p.send("t", b"hello", tags="a", keys=["k"])
    c = b.consumer("g", "t")
    (msg,) = c.receive(max_messages=1, timeout=1.0)
    tp = b.transaction_producer("tx", check=lambda m: pocketmq.TxState.COMMIT)
    b.flush()
    yield {"broker": b, "producer": p, "consumer": c, "msg": msg, "tx": tp, "clock": clock,
           "root": tmp_path}
    c.close()
    b.close()


def producer_cases() -> list[tuple[str, Callable[[dict[str, Any]], Any]]]:
    cases: list[tuple[str, Callable[[dict[str, Any]], Any]]] = []

    def add(name: str, f: Callable[[dict[str, Any]], Any]) -> None:
        cases.append((name, f))

    for topic in [None, 1, b"t", ["t"], "", "x" * 128, "%DLQ%g", "RMQ_SYS_TRANS_HALF_TOPIC",
                  *PATHS, *SEPARATORS, "é", LONE]:
        add(f"send topic={r(topic)}", lambda w, t=topic: w["producer"].send(t, b"x"))
        add(f"batch topic={r(topic)}", lambda w, t=topic: w["producer"].send_batch(t, [b"x"]))
    for body in [None, 1, 1.5, [b"x"], {"a": 1}, b"", "", LONE, b"x" * (4 * 1024 * 1024 + 1)]:
        add(f"send body={type(body).__name__}{len(body) if hasattr(body, '__len__') else ''}",
            lambda w, bd=body: w["producer"].send("t", bd))
    for bodies in [b"x", "x", 1, None, [1], [b""], [None], [LONE]]:
        add(f"batch bodies={r(bodies)}", lambda w, bs=bodies: w["producer"].send_batch("t", bs))
    for tags in [1, b"a", "", "a||b", LONE, *SEPARATORS]:
        add(f"tags={r(tags)}", lambda w, v=tags: w["producer"].send("t", b"x", tags=v))
    for keys in [1, b"k", "", "  ", [1], [""], [" "], LONE, [LONE], *SEPARATORS, [SEPARATORS[2]]]:
        add(f"keys={r(keys)}", lambda w, v=keys: w["producer"].send("t", b"x", keys=v))
    for props in ["x", 1, {"": "v"}, {"k": ""}, {"k": 1}, {1: "v"}, {"UNIQ_KEY": "x"},
                  {"REAL_TOPIC": "../escaped"}, {"k\x01": "v"}, {"k": "v\x02REAL_TOPIC\x01x"},
                  {LONE: "v"}, {"k": LONE}]:
        add(f"properties={r(props)}", lambda w, v=props: w["producer"].send("t", b"x", properties=v))
    for key in [1, b"k", "", LONE, *SEPARATORS]:
        add(f"sharding_key={r(key)}", lambda w, v=key: w["producer"].send("t", b"x", sharding_key=v))
    for did in [1, b"d", "", "d" * 1025, LONE]:
        add(f"dedup_id={r(did)}", lambda w, v=did: w["producer"].send("t", b"x", dedup_id=v))
        add(f"dedup_ids=[{r(did)}]", lambda w, v=did: w["producer"].send_batch("t", [b"x"], dedup_ids=[v]))
    for qid in [-1, 2, 1.5, "0", True, *HUGE, *NOT_FINITE]:
        add(f"queue_id={r(qid)}", lambda w, v=qid: w["producer"].send("t", b"x", queue_id=v))
    for level in [-1, 1.5, "1", *HUGE, *NOT_FINITE]:
        add(f"delay_level={r(level)}", lambda w, v=level: w["producer"].send("t", b"x", delay_level=v))
    for at in [-1, "soon", [1], *HUGE, *NOT_FINITE, T0 + 10**9]:
        add(f"deliver_at={r(at)}", lambda w, v=at: w["producer"].send("t", b"x", deliver_at=v))
    for delay in [-1, "1", *HUGE, *NOT_FINITE, 10**12]:
        add(f"delay={r(delay)}", lambda w, v=delay: w["producer"].send("t", b"x", delay=v))
    add("two delays", lambda w: w["producer"].send("t", b"x", delay=1.0, delay_level=1))
    add("batch delayed", lambda w: w["producer"].send_batch("t", [b"x", b"y"], delay_level=1))
    add("unknown option", lambda w: w["producer"].send("t", b"x", colour="red"))
    for execute in [None, 1, "COMMIT"]:
        add(f"execute={r(execute)}", lambda w, v=execute: w["tx"].send("t", b"x", execute=v))
    add("tx delayed", lambda w: w["tx"].send("t", b"x", execute=lambda m: "COMMIT", delay=1.0))
    return cases


def broker_cases() -> list[tuple[str, Callable[[dict[str, Any]], Any]]]:
    cases: list[tuple[str, Callable[[dict[str, Any]], Any]]] = []

    def add(name: str, f: Callable[[dict[str, Any]], Any]) -> None:
        cases.append((name, f))

    for name in [None, 1, "", "x" * 128, "%RETRY%g", *PATHS, *SEPARATORS]:
        add(f"create_topic name={r(name)}", lambda w, v=name: w["broker"].create_topic(v))
    for q in [0, -1, 1025, 1.5, "4", *HUGE, *NOT_FINITE]:
        add(f"create_topic queues={r(q)}", lambda w, v=q: w["broker"].create_topic("t2", queues=v))
    for group in [None, 1, "", "x" * 121, LONE, *PATHS, *SEPARATORS]:
        add(f"producer group={r(group)}", lambda w, v=group: w["broker"].producer(v))
        add(f"consumer group={r(group)}", lambda w, v=group: w["broker"].consumer(v, "t"))
        add(f"tx group={r(group)}", lambda w, v=group: w["broker"].transaction_producer(v, check=print))
        add(f"lag group={r(group)}", lambda w, v=group: w["broker"].lag(v, "t"))
        add(f"reset group={r(group)}", lambda w, v=group: w["broker"].reset_offset(v, "t", "earliest"))
    add("tx check=None", lambda w: w["broker"].transaction_producer("tx2", check=None))
    add("tx check=1", lambda w: w["broker"].transaction_producer("tx2", check=1))
    for topic in [None, 1, "", LONE, *PATHS, *SEPARATORS]:
        add(f"consumer topic={r(topic)}", lambda w, v=topic: w["broker"].consumer("g2", v))
        add(f"query topic={r(topic)}", lambda w, v=topic: w["broker"].query(v, "k"))
        add(f"lag topic={r(topic)}", lambda w, v=topic: w["broker"].lag("g", v))
        add(f"reset topic={r(topic)}", lambda w, v=topic: w["broker"].reset_offset("g", v, "earliest"))
    add("consumer of an engine topic", lambda w: w["broker"].consumer("g2", "SCHEDULE_TOPIC_XXXX"))
    add("lag of a missing topic", lambda w: w["broker"].lag("g", "missing"))
    add("reset of a missing topic", lambda w: w["broker"].reset_offset("g", "missing", "latest"))
    for tags in [1, "||", " || "]:
        add(f"consumer tags={r(tags)}", lambda w, v=tags: w["broker"].consumer("g3", "t", tags=v))
    for flag in [1, "yes", None.__class__]:
        add(f"consumer broadcasting={r(flag)}", lambda w, v=flag: w["broker"].consumer("g3", "t", broadcasting=v))
        add(f"consumer orderly={r(flag)}", lambda w, v=flag: w["broker"].consumer("g3", "t", orderly=v))
    for n in [-1, 1.5, "1", *HUGE, *NOT_FINITE]:
        add(f"max_reconsume_times={r(n)}", lambda w, v=n: w["broker"].consumer("g3", "t", max_reconsume_times=v))
    for start in ["soon", -1, [1], *HUGE, *NOT_FINITE]:
        add(f"consumer start={r(start)}", lambda w, v=start: w["broker"].consumer("g3", "t", start=v))
        add(f"reset to={r(start)}", lambda w, v=start: w["broker"].reset_offset("g", "t", v))
    add("consumer_id=1", lambda w: w["broker"].consumer("g3", "t", consumer_id=1))
    add("consumer unknown option", lambda w: w["broker"].consumer("g3", "t", colour="red"))
    for mid in [None, 1, "", "a b", "z" * 129, "\x01", b"0" * 32]:
        add(f"get {r(mid)}", lambda w, v=mid: w["broker"].get(v))
    for key in [None, 1, b"k"]:
        add(f"query key={r(key)}", lambda w, v=key: w["broker"].query("t", v))
    return cases


def consumer_cases() -> list[tuple[str, Callable[[dict[str, Any]], Any]]]:
    cases: list[tuple[str, Callable[[dict[str, Any]], Any]]] = []

    def add(name: str, f: Callable[[dict[str, Any]], Any]) -> None:
        cases.append((name, f))

    for n in [-1, 1.5, "1", None, *HUGE, *NOT_FINITE]:
        add(f"receive max_messages={r(n)}", lambda w, v=n: w["consumer"].receive(max_messages=v, timeout=0))
    for t in [-1, "1", [1], *HUGE, *NOT_FINITE]:
        add(f"receive timeout={r(t)}", lambda w, v=t: w["consumer"].receive(max_messages=1, timeout=v))
    for m in [None, 1, "msg", [1], (None,), {"a": 1}]:
        add(f"ack {r(m)}", lambda w, v=m: w["consumer"].ack(v))
        add(f"nack {r(m)}", lambda w, v=m: w["consumer"].nack(v))
    return cases


def clock_cases() -> list[tuple[str, Callable[[dict[str, Any]], Any]]]:
    cases: list[tuple[str, Callable[[dict[str, Any]], Any]]] = []

    def add(name: str, f: Callable[[dict[str, Any]], Any]) -> None:
        cases.append((name, f))

    for v in [-1, "x", [1], *HUGE, *NOT_FINITE, 1.8e16]:
        add(f"advance {r(v)}", lambda w, x=v: w["clock"].advance(x))
        add(f"set {r(v)}", lambda w, x=v: w["clock"].set(x))
        add(f"ManualClock({r(v)})", lambda w, x=v: pocketmq.ManualClock(start=x))
    return cases


ALL = producer_cases() + broker_cases() + consumer_cases() + clock_cases()


@pytest.mark.parametrize("name,call", ALL, ids=[n for n, _ in ALL])
def test_bad_input_is_a_typed_error_and_changes_nothing(
    world: dict[str, Any], name: str, call: Callable[[dict[str, Any]], Any]
) -> None:
    root: Path = world["root"]
    before = snapshot(root)
    clock_before = world["clock"].now_ms()
    topics_before = world["broker"].topics()
    with pytest.raises((TypeError, pocketmq.Error)) as exc:
        call(world)
    assert not isinstance(exc.value, OverflowError), name
    if isinstance(exc.value, ValueError):
        assert isinstance(exc.value, pocketmq.InvalidArgument), f"{name}: {exc.value!r}"
    assert world["broker"].topics() == topics_before, name
    assert world["clock"].now_ms() == clock_before, name
    world["broker"].flush()
    after = snapshot(root)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    # The checkpoint may note a flush; nothing else moves.
    assert changed <= {"store/checkpoint"}, f"{name}: {sorted(changed)}"


BROKER_OPTIONS: list[tuple[str, Any]] = [
    ("flush", "sometimes"), ("flush", 1),
    ("segment_size", 1), ("segment_size", 2**31), ("segment_size", -1), ("segment_size", "64"),
    ("max_message_size", 0), ("max_message_size", 2**40), ("max_message_size", 1.5),
    ("auto_create_topics", 1), ("auto_create_topics", "no"),
    ("default_queues", 0), ("default_queues", 1025), ("default_queues", 2**63),
    ("delay_levels", ""), ("delay_levels", "1x"), ("delay_levels", "18446744073709552s"),
    ("delay_levels", "0s"), ("delay_levels", 5),
    ("timer_max_delay", 0), ("timer_max_delay", -1), ("timer_max_delay", 10**400),
    ("file_reserved_time", math.nan), ("file_reserved_time", 2**63),
    ("disk_max_used_ratio", 1.5), ("disk_max_used_ratio", -0.1), ("disk_max_used_ratio", math.nan),
    ("disk_clean_forcibly_ratio", "half"), ("retention", "forever"), ("retention", 1),
    ("sync_flush_timeout", math.inf), ("flush_interval", -5), ("transaction_timeout", "6s"),
    ("check_interval", 10**400), ("max_checks", -1), ("max_checks", 2**64),
    ("colour", "red"),
]


@pytest.mark.parametrize("option,value", BROKER_OPTIONS, ids=[f"{o}={r(v)}" for o, v in BROKER_OPTIONS])
def test_bad_broker_options_are_refused_before_anything_is_written(
    tmp_path: Path, option: str, value: Any
) -> None:
    store = tmp_path / "store"
    with pytest.raises((TypeError, pocketmq.Error)) as exc:
        pocketmq.Broker(store, **{option: value})
    assert not isinstance(exc.value, OverflowError)
    assert not store.exists(), option


@pytest.mark.parametrize("path", ["", 1, b"\x00"])
def test_bad_store_paths_are_refused(tmp_path: Path, path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises((TypeError, pocketmq.Error)):
        pocketmq.Broker(path)
    assert list(tmp_path.iterdir()) == [], "nothing written into the current directory"


@pytest.mark.parametrize("path", ["", "a\x00b", "store/a\x00"])
def test_a_path_no_file_can_have_is_a_wrong_value(tmp_path: Path, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pocketmq.InvalidArgument):
        pocketmq.Broker(path)
    assert list(tmp_path.iterdir()) == []


def test_a_path_of_undecodable_bytes_is_kept_as_given(tmp_path: Path) -> None:
    path = os.path.join(tmp_path, os.fsdecode(b"store-\x80"))  # a lone surrogate in the str
    with pocketmq.Broker(path) as b:
        assert b.path == path
        b.producer().send("t", b"x")
    assert os.listdir(os.fsencode(tmp_path)) == [b"store-\x80"]
    with pocketmq.Broker(path) as b:
        assert b.lag("g", "t") == 1


def test_counts_out_of_range_say_so_and_name_the_argument() -> None:
    with pocketmq.Broker() as b:
        c = b.consumer("g", "t")
        with pytest.raises(pocketmq.InvalidArgument, match="at least 0, not -1") as e:
            c.receive(max_messages=-1, timeout=0)
        assert "max_messages" in " ".join(getattr(e.value, "__notes__", []))
        with pytest.raises(pocketmq.InvalidArgument, match="too large"):
            b.browse("t", limit=2**64)
        with pytest.raises(pocketmq.InvalidArgument, match="max_messages must be between 0 and 4294967295"):
            c.receive(max_messages=2**32, timeout=0)


def test_a_manual_clock_never_moves_backwards() -> None:
    clock = pocketmq.ManualClock(start=T0)
    with pytest.raises(pocketmq.InvalidArgument):
        clock.advance(1.8e16)
    assert clock.now() == T0
    clock.advance(1.5)
    assert clock.now() == T0 + 1.5
