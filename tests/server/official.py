"""The official RocketMQ 5 Python client (PyPI rocketmq-python-client) against
`pocketmq serve`: a Producer sending normal, FIFO (three message groups), delayed and
transactional messages (commit, rollback, UNKNOWN resolved by check-back); a
SimpleConsumer receiving each kind, changing one delivery's invisibility and acking
everything; a PushConsumer failing each message once, then succeeding.

usage: official.py HOST:PORT PREFIX SENT.jsonl

The server is started with PREFIX-py-fifo-g as a FIFO group and a retry ladder that
starts at 1 s (run.sh). Prints one PASS/FAIL line per check and writes what it sent,
one JSON object per line, for check_store.py. Exits 1 when a check failed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import defaultdict
from typing import Any, Callable

from rocketmq import (ClientConfiguration, ConsumeResult, Credentials, FilterExpression,
                      Message, MessageListener, Producer, PushConsumer, SimpleConsumer,
                      TransactionChecker, TransactionResolution)
from rocketmq.grpc_protocol import FilterType

NORMAL = 20
FIFO_GROUPS = ("group-a", "group-b", "group-c")
FIFO_PER_GROUP = 10
DELAYS = (2, 3, 3)  # seconds ahead (Python sends whole seconds)
PUSHED = 3


class Checks:
    def __init__(self) -> None:
        self.failed = 0
        self.lock = threading.Lock()

    def check(self, ok: bool, what: str) -> bool:
        with self.lock:
            print(f"{'PASS' if ok else 'FAIL'} python: {what}", flush=True)
            if not ok:
                self.failed += 1
        return ok


def message(topic: str, body: str, tag: str | None = None, key: str | None = None,
            group: str | None = None, deliver_at: int | None = None) -> Message:
    m = Message()
    m.topic = topic
    m.body = body.encode()
    if tag:
        m.tag = tag
    if key:
        m.keys = key
    m.add_property("origin", "python")
    if group:
        m.message_group = group
    if deliver_at:
        m.delivery_timestamp = deliver_at
    return m


class Checker(TransactionChecker):
    """Commits what the producer left UNKNOWN, when the server asks."""

    def __init__(self) -> None:
        self.asked: list[tuple[float, str]] = []

    def check(self, message: Message) -> TransactionResolution:
        self.asked.append((time.time(), message.body.decode()))
        return TransactionResolution.COMMIT


class FailOnce(MessageListener):
    def __init__(self) -> None:
        self.deliveries: dict[str, list[int]] = defaultdict(list)
        self.lock = threading.Lock()

    def consume(self, message: Message) -> ConsumeResult:
        with self.lock:
            seen = self.deliveries[message.message_id]
            seen.append(message.delivery_attempt)
            first = len(seen) == 1
        return ConsumeResult.FAILURE if first else ConsumeResult.SUCCESS


def receive_until(consumer: SimpleConsumer, done: Callable[[], bool], seconds: float,
                  on_message: Callable[[Message], None], ack: bool = True) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        for m in consumer.receive(32, 15):
            on_message(m)
            if ack:
                consumer.ack(m)


def wait_for(cond: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.1)
    return cond()


def main() -> int:
    endpoint, prefix, out_path = sys.argv[1:4]
    t = {k: f"{prefix}-{k}" for k in ("normal", "fifo", "delay", "tx", "push", "sql")}
    config = ClientConfiguration(endpoint, Credentials(), request_timeout=3)
    checks = Checks()
    sent: list[dict[str, Any]] = []
    checker = Checker()
    producer = Producer(config, tuple(t.values()), checker=checker)
    producer.startup()
    clients: list[Any] = [producer]

    def simple(kind: str) -> SimpleConsumer:
        c = SimpleConsumer(config, f"{prefix}-{kind}-g", {t[kind]: FilterExpression()}, await_duration=2)
        c.startup()
        clients.append(c)
        return c

    def record(kind: str, receipt: Any, body: str, **extra: Any) -> None:
        sent.append({"client": "python", "kind": kind, "topic": t[kind], "message_id": receipt.message_id,
                     "body": body, "tag": f"tag-{kind}", "keys": [f"key-{body}"], "origin": "python",
                     "group": extra.get("group"), "deliver_at_ms": extra.get("deliver_at_ms"),
                     "outcome": extra.get("outcome")})

    try:
        # Transactions first: the UNKNOWN one is checked back after the server's 6 s.
        tx_sent = time.time()
        for body, end in (("tx-commit", "commit"), ("tx-rollback", "rollback"), ("tx-unknown", None)):
            tx = producer.begin_transaction()
            r = producer.send(message(t["tx"], body, tag="tag-tx", key=f"key-{body}"), tx)
            checks.check(bool(r.transaction_id), f"{body}: a transaction id ({r.transaction_id})")
            if end == "commit":
                tx.commit()
            elif end == "rollback":
                tx.rollback()
            record("tx", r, body, outcome="rollback" if end == "rollback" else "commit")

        # Delayed messages: due in whole seconds.
        due: dict[str, float] = {}
        now = int(time.time())
        for i, ahead in enumerate(DELAYS):
            body = f"py-delay-{i}"
            r = producer.send(message(t["delay"], body, tag="tag-delay", key=f"key-{body}", deliver_at=now + ahead))
            due[r.message_id] = now + ahead
            record("delay", r, body, deliver_at_ms=(now + ahead) * 1000)
        delay_consumer = simple("delay")
        arrivals: dict[str, float] = {}

        def watch_delays() -> None:
            receive_until(delay_consumer, lambda: len(arrivals) >= len(due), 20,
                          lambda m: arrivals.setdefault(m.message_id, time.time()))

        delay_thread = threading.Thread(target=watch_delays)
        delay_thread.start()

        # The PushConsumer: each message fails once, then succeeds.
        listener = FailOnce()
        push = PushConsumer(config, f"{prefix}-push-g", listener, {t["push"]: FilterExpression()},
                            consumption_thread_count=4)
        push.startup()
        clients.append(push)
        pushed = []
        for i in range(PUSHED):
            body = f"py-push-{i}"
            r = producer.send(message(t["push"], body, tag="tag-push", key=f"key-{body}"))
            pushed.append(r.message_id)
            record("push", r, body)

        # Normal and FIFO.
        normal = {}
        for i in range(NORMAL):
            body = f"py-normal-{i}"
            r = producer.send(message(t["normal"], body, tag="tag-normal", key=f"key-{body}"))
            normal[r.message_id] = body
            record("normal", r, body)
        for i in range(FIFO_PER_GROUP):
            for g in FIFO_GROUPS:
                body = f"py-{g}-{i}"
                r = producer.send(message(t["fifo"], body, tag="tag-fifo", key=f"key-{body}", group=g))
                record("fifo", r, body, group=g)

        # SimpleConsumer: everything once, one delivery's invisibility changed, all acked.
        c = simple("normal")
        got: dict[str, Message] = {}
        changed: list[Message] = []

        wrong: list[str] = []

        def on_normal(m: Message) -> None:
            if m.message_id in got:
                wrong.append(f"{m.message_id} delivered twice")
            got[m.message_id] = m
            if not changed:
                old = m.receipt_handle
                c.change_invisible_duration(m, 30)
                checks.check(m.receipt_handle != old, "change_invisible_duration gives a new receipt handle")
                changed.append(m)
            if not (m.body.decode() == normal.get(m.message_id) and m.tag == "tag-normal"
                    and list(m.keys) == [f"key-{m.body.decode()}"] and m.properties.get("origin") == "python"
                    and m.delivery_attempt == 1 and not m.corrupted):
                wrong.append(f"{m.body!r}: tag {m.tag} keys {m.keys} properties {m.properties} "
                             f"attempt {m.delivery_attempt} corrupted {m.corrupted}")

        receive_until(c, lambda: len(got) >= NORMAL, 30, on_normal)
        checks.check(set(got) == set(normal) and not wrong,
                     f"SimpleConsumer received {len(got)}/{NORMAL} normal messages once each with their "
                     f"fields, acking each (the changed one with its new handle) {wrong or ''}")

        # FIFO: order per message group, with the group consuming in order.
        f = simple("fifo")
        order: dict[str, list[int]] = defaultdict(list)

        def on_fifo(m: Message) -> None:
            _, g1, g2, i = m.body.decode().split("-")
            order[f"{g1}-{g2}"].append(int(i))

        receive_until(f, lambda: sum(map(len, order.values())) >= FIFO_PER_GROUP * len(FIFO_GROUPS), 30, on_fifo)
        for g in FIFO_GROUPS:
            checks.check(order[g] == list(range(FIFO_PER_GROUP)), f"FIFO {g} received in send order: {order[g]}")

        # Delays: not early, and by due + 1 s.
        delay_thread.join()
        checks.check(len(arrivals) == len(due), f"{len(arrivals)}/{len(due)} delayed messages received")
        for mid, at in arrivals.items():
            late = at - due[mid]
            checks.check(-0.05 <= late <= 1.0, f"delayed message received {late:+.2f} s after its due time")

        # Transactions: commit and check-back commit delivered, rollback never.
        tx = simple("tx")
        bodies: dict[str, int] = defaultdict(int)

        def on_tx(m: Message) -> None:
            bodies[m.body.decode()] += 1

        receive_until(tx, lambda: {"tx-commit", "tx-unknown"} <= set(bodies), 30, on_tx)
        asked = [b for _, b in checker.asked]
        checks.check(bodies.get("tx-commit") == 1, "committed transaction delivered once")
        checks.check(bodies.get("tx-unknown") == 1,
                     f"UNKNOWN transaction delivered once after check-back ({asked}, "
                     f"{(checker.asked[0][0] - tx_sent) if checker.asked else 0:.1f} s after send)")
        checks.check(asked == ["tx-unknown"], f"only the UNKNOWN transaction was checked back: {asked}")
        checks.check("tx-rollback" not in bodies, "rolled-back transaction never delivered")

        # One group subscribed to two topics (the clients take a map of topics): each
        # topic's messages delivered to it once.
        both = SimpleConsumer(config, f"{prefix}-both-g",
                              {t["normal"]: FilterExpression(), t["fifo"]: FilterExpression()},
                              await_duration=2)
        both.startup()
        clients.append(both)
        per_topic: dict[str, set[str]] = defaultdict(set)
        fifo_total = FIFO_PER_GROUP * len(FIFO_GROUPS)
        receive_until(both, lambda: len(per_topic[t["normal"]]) >= NORMAL
                      and len(per_topic[t["fifo"]]) >= fifo_total, 30,
                      lambda m: per_topic[m.topic].add(m.message_id))
        checks.check(per_topic[t["normal"]] == set(normal) and len(per_topic[t["fifo"]]) == fifo_total,
                     f"one SimpleConsumer group on two topics received {len(per_topic[t['normal']])}/{NORMAL} "
                     f"and {len(per_topic[t['fifo']])}/{fifo_total}")

        # An SQL92 filter over the properties (FilterExpression of type SQL92): the
        # SimpleConsumer takes the messages whose amount is at least 50; "abc" is no
        # number, so that message is not taken either.
        for i, amount in enumerate(("5", "500", "50", "abc")):
            m = message(t["sql"], f"py-sql-{i}", tag="tag-sql", key=f"key-py-sql-{i}")
            m.add_property("amount", amount)
            producer.send(m)
        by_sql = SimpleConsumer(config, f"{prefix}-sql-g",
                                {t["sql"]: FilterExpression("amount >= 50 AND TAGS = 'tag-sql'", FilterType.SQL)},
                                await_duration=2)
        by_sql.startup()
        clients.append(by_sql)
        took: list[str] = []
        receive_until(by_sql, lambda: len(took) >= 2, 20, lambda m: took.append(m.body.decode()))
        receive_until(by_sql, lambda: False, 2, lambda m: took.append(m.body.decode()))
        checks.check(sorted(took) == ["py-sql-1", "py-sql-2"],
                     f"SQL92 filter amount >= 50 took {sorted(took)} of amounts 5, 500, 50, abc")

        # PushConsumer: each redelivered exactly once, then acked.
        wait_for(lambda: all(len(listener.deliveries[i]) >= 2 for i in pushed), 30)
        time.sleep(1.5)  # a third delivery would show up here
        for i in pushed:
            checks.check(listener.deliveries[i] == [1, 2],
                         f"PushConsumer: failed once, redelivered once: attempts {listener.deliveries[i]}")
    finally:
        for client in reversed(clients):
            try:
                client.shutdown()
            except Exception as e:  # noqa: BLE001 - report, keep shutting the rest
                print(f"python: shutdown: {e}", file=sys.stderr)
        with open(out_path, "w") as out:
            for s in sent:
                out.write(json.dumps(s) + "\n")
    print(f"python: {'all checks passed' if not checks.failed else f'{checks.failed} checks failed'}")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
