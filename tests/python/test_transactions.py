"""Transactional messages: execute, check-back, timeouts, errors in callbacks."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

import pocketmq
from conftest import drain


@pytest.fixture
def txb(clock):
    b = pocketmq.Broker(clock=clock, transaction_timeout=5, check_interval=10, max_checks=3)
    yield b
    b.close()


def visible(b: pocketmq.Broker, group: str = "g") -> list[bytes]:
    c = b.consumer(group, "t")
    got = [m.body for m in drain(c, timeout=0.1)]
    c.close()
    return got


def later(b: pocketmq.Broker, clock: pocketmq.ManualClock, seconds: float) -> None:
    clock.advance(seconds)
    b.tick()


def test_commit_makes_the_message_visible(txb):
    seen = []

    def execute(msg):
        seen.append((msg.topic, msg.body, msg.keys))
        assert visible(txb, group="peek") == [], "a half message is invisible during execute"
        return pocketmq.TxState.COMMIT

    tp = txb.transaction_producer("pay", check=lambda m: pocketmq.TxState.ROLLBACK)
    r = tp.send("t", b"paid", keys=["order-1"], execute=execute)
    assert r.transaction_state is pocketmq.TxState.COMMIT
    assert r.status == "SEND_OK"
    assert seen == [("t", b"paid", ["order-1"])]
    assert visible(txb) == [b"paid"]
    assert tp.group == "pay"


def test_rollback_drops_the_message(txb, clock):
    checks = []
    tp = txb.transaction_producer("pay", check=lambda m: checks.append(m) or pocketmq.TxState.COMMIT)
    r = tp.send("t", b"x", execute=lambda m: pocketmq.TxState.ROLLBACK)
    assert r.transaction_state is pocketmq.TxState.ROLLBACK
    later(txb, clock, 60)
    assert visible(txb) == []
    assert checks == []


def test_unknown_is_checked_after_the_timeout(txb, clock):
    checks = []

    def check(msg):
        checks.append(msg.body)
        return pocketmq.TxState.COMMIT

    tp = txb.transaction_producer("pay", check=check)
    r = tp.send("t", b"x", execute=lambda m: pocketmq.TxState.UNKNOWN)
    assert r.transaction_state is pocketmq.TxState.UNKNOWN
    assert txb.stats()["pending_transactions"] == 1
    later(txb, clock, 4)
    assert checks == [] and visible(txb) == []
    later(txb, clock, 1)
    assert checks == [b"x"]
    assert visible(txb) == [b"x"]
    assert txb.stats()["pending_transactions"] == 0


def test_checks_are_counted_and_a_message_may_put_its_first_check_off(txb, clock):
    seen = []

    def check(msg):
        seen.append((msg.body, msg.properties.get("TRANSACTION_CHECK_TIMES")))
        return pocketmq.TxState.UNKNOWN

    tp = txb.transaction_producer("pay", check=check)
    unknown = lambda m: pocketmq.TxState.UNKNOWN  # noqa: E731
    # RocketMQ's user property: whole seconds before the first check-back.
    tp.send("t", b"later", properties={"CHECK_IMMUNITY_TIME_IN_SECONDS": "30"}, execute=unknown)
    tp.send("t", b"soon", execute=unknown)
    later(txb, clock, 5)
    assert seen == [(b"soon", "1")]
    later(txb, clock, 10)
    assert seen == [(b"soon", "1"), (b"soon", "2")]
    later(txb, clock, 14.9)
    assert seen[2:] == [(b"soon", "3")]
    later(txb, clock, 0.1)
    assert seen[3:] == [(b"later", "1")]
    for bad in ["soon", "-1", "1.5", "86401"]:
        with pytest.raises(pocketmq.InvalidArgument, match="whole seconds"):
            tp.send("t", b"x", properties={"CHECK_IMMUNITY_TIME_IN_SECONDS": bad}, execute=unknown)
    with pytest.raises(pocketmq.InvalidArgument, match="reserved"):
        tp.send("t", b"x", properties={"TRANSACTION_CHECK_TIMES": "9"}, execute=unknown)
    assert txb.stats()["pending_transactions"] == 2


def test_check_is_repeated_then_the_half_message_is_discarded(txb, clock):
    checks = []
    tp = txb.transaction_producer("pay", check=lambda m: checks.append(1) or pocketmq.TxState.UNKNOWN)
    tp.send("t", b"x", execute=lambda m: pocketmq.TxState.UNKNOWN)
    later(txb, clock, 5)
    assert len(checks) == 1
    for _ in range(10):
        later(txb, clock, 10)
    assert len(checks) == 3
    assert visible(txb) == []
    assert txb.stats()["pending_transactions"] == 0
    dead = drain(txb.consumer("ops", "RMQ_SYS_TRANS_CHECK_MAX_TOPIC"))
    assert [m.body for m in dead] == [b"x"]


def test_exception_in_execute_is_logged_and_left_to_check(txb, clock, caplog):
    def execute(msg):
        raise RuntimeError("payment service down")

    tp = txb.transaction_producer("pay", check=lambda m: pocketmq.TxState.COMMIT)
    with caplog.at_level(logging.ERROR, logger="pocketmq"):
        r = tp.send("t", b"x", execute=execute)
    assert r.transaction_state is pocketmq.TxState.UNKNOWN
    [record] = [rec for rec in caplog.records if rec.name == "pocketmq"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and "payment service down" in str(record.exc_info[1])
    assert visible(txb) == []
    later(txb, clock, 5)
    assert visible(txb) == [b"x"]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["def", "async-def"])
def test_exception_in_check_counts_as_unknown_and_is_asked_again(txb, clock, caplog, asynchronous):
    calls = []

    def answer():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("db timeout")
        return pocketmq.TxState.COMMIT

    async def async_check(msg):
        return answer()

    tp = txb.transaction_producer("pay", check=async_check if asynchronous else lambda m: answer())
    tp.send("t", b"x", execute=lambda m: pocketmq.TxState.UNKNOWN)
    with caplog.at_level(logging.ERROR, logger="pocketmq"):
        later(txb, clock, 5)
    assert any(r.exc_info and "db timeout" in str(r.exc_info[1]) for r in caplog.records)
    assert visible(txb) == []
    later(txb, clock, 10)
    assert calls == [1, 1]
    assert visible(txb) == [b"x"]


def test_a_wrong_return_value_counts_as_unknown_and_is_logged(txb, caplog):
    tp = txb.transaction_producer("pay", check=lambda m: pocketmq.TxState.ROLLBACK)
    with caplog.at_level(logging.ERROR, logger="pocketmq"):
        r = tp.send("t", b"x", execute=lambda m: True)
    assert r.transaction_state is pocketmq.TxState.UNKNOWN
    assert any("TxState" in rec.getMessage() for rec in caplog.records)


def test_a_coroutine_function_is_named_and_closed_not_left_unawaited(txb, caplog):
    tp = txb.transaction_producer("pay", check=lambda m: pocketmq.TxState.ROLLBACK)

    async def commit():
        return pocketmq.TxState.COMMIT

    made = []

    def execute(m):
        made.append(commit())
        return made[-1]

    with caplog.at_level(logging.ERROR, logger="pocketmq"):
        r = tp.send("t", b"x", execute=execute)
    assert r.transaction_state is pocketmq.TxState.UNKNOWN
    assert any("coroutine function" in rec.getMessage() for rec in caplog.records)
    # Closed, so Python does not also warn "coroutine ... was never awaited".
    assert made[0].cr_frame is None
    assert visible(txb) == []


def test_callables_are_required(txb):
    with pytest.raises(TypeError):
        txb.transaction_producer("pay", check="nope")  # type: ignore[arg-type]
    tp = txb.transaction_producer("pay", check=lambda m: pocketmq.TxState.COMMIT)
    with pytest.raises(TypeError):
        tp.send("t", b"x", execute=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tp.send("t", b"x")  # type: ignore[call-arg]


def test_default_transaction_timeout_is_six_seconds(timed, clock):
    checks = []
    tp = timed.transaction_producer("pay", check=lambda m: checks.append(1) or pocketmq.TxState.COMMIT)
    tp.send("t", b"x", execute=lambda m: pocketmq.TxState.UNKNOWN)
    later(timed, clock, 5.9)
    assert checks == []
    later(timed, clock, 0.1)
    assert checks == [1]


def test_execute_and_check_may_call_back_into_the_broker(txb, clock):
    def execute(msg):
        txb.producer("audit").send("audit", b"charging " + msg.body)
        assert txb.query("audit", "nothing") == []
        return pocketmq.TxState.UNKNOWN

    def check(msg):
        assert txb.lag("g", "t") == 0, "the half message is not in the topic yet"
        txb.producer("audit").send("audit", b"checked")
        return pocketmq.TxState.COMMIT

    tp = txb.transaction_producer("pay", check=check)
    tp.send("t", b"x", execute=execute)
    later(txb, clock, 5)
    assert visible(txb) == [b"x"]
    assert sorted(m.body for m in drain(txb.consumer("a", "audit"))) == [b"charging x", b"checked"]


# ---------------------------------------------------------------- send_async


def test_send_async_awaits_an_async_execute_without_blocking_the_loop(txb):
    tp = txb.transaction_producer("pay", check=lambda m: pocketmq.TxState.ROLLBACK)

    async def main():
        charged = asyncio.Event()
        seen = []

        async def execute(msg):
            seen.append(msg.body)
            assert visible(txb, group="peek") == [], "a half message is invisible during execute"
            await charged.wait()  # the payment service answers on this loop
            return pocketmq.TxState.COMMIT

        async def payment_service():
            await asyncio.sleep(0.01)
            charged.set()

        r, _ = await asyncio.gather(
            tp.send_async("t", b"paid", keys=["order-1"], execute=execute), payment_service()
        )
        return r, seen

    r, seen = asyncio.run(main())
    assert r.transaction_state is pocketmq.TxState.COMMIT
    assert r.status == "SEND_OK"
    assert seen == [b"paid"]
    assert visible(txb) == [b"paid"]


def test_send_async_takes_plain_functions_and_awaitables_and_rolls_back(txb, clock):
    tp = txb.transaction_producer("pay", check=lambda m: pocketmq.TxState.COMMIT)

    async def main():
        loop = asyncio.get_running_loop()
        decided = loop.create_future()
        loop.call_later(0.01, decided.set_result, pocketmq.TxState.COMMIT)
        plain = await tp.send_async("t", b"plain", execute=lambda m: pocketmq.TxState.COMMIT)
        future = await tp.send_async("t", b"future", execute=lambda m: decided)

        async def refuse(msg):
            return pocketmq.TxState.ROLLBACK

        refused = await tp.send_async("t", b"refused", execute=refuse)
        return plain, future, refused

    plain, future, refused = asyncio.run(main())
    assert plain.transaction_state is pocketmq.TxState.COMMIT
    assert future.transaction_state is pocketmq.TxState.COMMIT
    assert refused.transaction_state is pocketmq.TxState.ROLLBACK
    later(txb, clock, 60)
    assert sorted(visible(txb)) == [b"future", b"plain"]
    assert txb.stats()["pending_transactions"] == 0


def test_send_async_counts_a_failing_or_wrong_execute_as_unknown_and_logs_it(txb, clock, caplog):
    tp = txb.transaction_producer("pay", check=lambda m: pocketmq.TxState.COMMIT)

    async def failing(msg):
        await asyncio.sleep(0)
        raise RuntimeError("payment service down")

    async def wrong(msg):
        return True

    async def main():
        return (
            await tp.send_async("t", b"failed", execute=failing),
            await tp.send_async("t", b"wrong", execute=wrong),
        )

    with caplog.at_level(logging.ERROR, logger="pocketmq"):
        failed, wrong_answer = asyncio.run(main())
    assert failed.transaction_state is pocketmq.TxState.UNKNOWN
    assert wrong_answer.transaction_state is pocketmq.TxState.UNKNOWN
    logged = [rec for rec in caplog.records if rec.name == "pocketmq"]
    assert any(rec.exc_info and "payment service down" in str(rec.exc_info[1]) for rec in logged)
    assert any("not a TxState" in rec.getMessage() for rec in logged)
    assert visible(txb) == []
    later(txb, clock, 5)
    assert sorted(visible(txb)) == [b"failed", b"wrong"]


def test_a_send_async_cancelled_during_execute_leaves_the_half_message_to_check(txb, clock):
    checks = []
    tp = txb.transaction_producer("pay", check=lambda m: checks.append(m.body) or pocketmq.TxState.COMMIT)

    async def main():
        started = asyncio.Event()

        async def execute(msg):
            started.set()
            await asyncio.sleep(3600)
            return pocketmq.TxState.ROLLBACK

        task = asyncio.ensure_future(tp.send_async("t", b"x", execute=execute))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert txb.stats()["pending_transactions"] == 1
    assert visible(txb) == []
    later(txb, clock, 5)
    assert checks == [b"x"]
    assert visible(txb) == [b"x"]


def test_send_async_of_a_repeated_dedup_id_answers_without_executing(txb):
    tp = txb.transaction_producer("pay", check=lambda m: pocketmq.TxState.ROLLBACK)
    runs = []

    async def execute(msg):
        runs.append(msg.body)
        return pocketmq.TxState.COMMIT

    async def main():
        first = await tp.send_async("t", b"x", dedup_id="pay-1", execute=execute)
        again = await tp.send_async("t", b"x", dedup_id="pay-1", execute=execute)
        return first, again

    first, again = asyncio.run(main())
    assert runs == [b"x"]
    assert again.duplicate and again.msg_id == first.msg_id
    assert again.transaction_state is pocketmq.TxState.COMMIT
    assert visible(txb) == [b"x"]


def test_send_async_on_a_sync_flushed_store(tmp_path):
    with pocketmq.Broker(str(tmp_path / "store"), flush="sync") as b:
        tp = b.transaction_producer("pay", check=lambda m: pocketmq.TxState.ROLLBACK)

        async def execute(msg):
            await asyncio.sleep(0)
            return pocketmq.TxState.COMMIT

        async def main():
            return await asyncio.gather(*(tp.send_async("t", f"m{i}", execute=execute) for i in range(8)))

        results = asyncio.run(main())
        assert {r.transaction_state for r in results} == {pocketmq.TxState.COMMIT}
        assert sorted(visible(b)) == sorted(f"m{i}".encode() for i in range(8))


def test_send_async_raises_what_send_raises_when_awaited_and_stores_nothing(txb):
    tp = txb.transaction_producer("pay", check=lambda m: pocketmq.TxState.COMMIT)
    ran = []

    async def main():
        with pytest.raises(TypeError):
            await tp.send_async("t", b"x", execute=None)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await tp.send_async("t", 42, execute=ran.append)  # type: ignore[arg-type]
        with pytest.raises(pocketmq.InvalidArgument):
            await tp.send_async("t", b"", execute=ran.append)
        with pytest.raises(pocketmq.InvalidArgument):
            await tp.send_async("t", b"x", tags="a||b", execute=ran.append)
        with pytest.raises(TypeError):
            await tp.send_async("t", b"x", no_such_option=1, execute=ran.append)

    asyncio.run(main())
    with pytest.raises(TypeError):
        tp.send_async("t", b"x")  # type: ignore[call-arg]
    assert ran == []
    assert txb.stats()["pending_transactions"] == 0
    assert visible(txb) == []


# ---------------------------------------------------------------- async check


def test_an_async_check_made_on_a_loop_answers_from_that_loop(txb, clock):
    async def main():
        asked = []

        async def check(msg):
            asked.append(msg.body)
            await asyncio.sleep(0.01)  # asks the payment service
            return pocketmq.TxState.COMMIT

        tp = txb.transaction_producer("pay", check=check)
        tp.send("t", b"x", execute=lambda m: pocketmq.TxState.UNKNOWN)
        later(txb, clock, 5)  # the check is asked here, on the loop's thread: a task
        assert visible(txb) == [] and txb.stats()["pending_transactions"] == 1
        deadline = time.monotonic() + 10
        while txb.stats()["pending_transactions"] and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return asked, visible(txb)

    assert asyncio.run(main()) == ([b"x"], [b"x"])


def test_an_async_check_with_no_loop_running_is_run_to_its_end(txb, clock):
    async def check(msg):
        await asyncio.sleep(0)
        return pocketmq.TxState.ROLLBACK if msg.body == b"no" else pocketmq.TxState.COMMIT

    tp = txb.transaction_producer("pay", check=check)
    tp.send("t", b"yes", execute=lambda m: pocketmq.TxState.UNKNOWN)
    tp.send("t", b"no", execute=lambda m: pocketmq.TxState.UNKNOWN)
    later(txb, clock, 5)
    assert visible(txb) == [b"yes"]
    assert txb.stats()["pending_transactions"] == 0


def test_an_async_check_answers_on_its_loop_when_another_thread_asks(txb, clock):
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        on_loop = []

        async def check(msg):
            on_loop.append(threading.current_thread() is runner)
            return pocketmq.TxState.COMMIT

        async def make():
            return txb.transaction_producer("pay", check=check)

        tp = asyncio.run_coroutine_threadsafe(make(), loop).result(5)
        tp.send("t", b"x", execute=lambda m: pocketmq.TxState.UNKNOWN)
        later(txb, clock, 5)  # asked from this thread, answered on the loop's
        deadline = time.monotonic() + 5
        while txb.stats()["pending_transactions"] and time.monotonic() < deadline:
            time.sleep(0.005)
        assert on_loop == [True]
        assert visible(txb) == [b"x"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        loop.close()
