"""An e-commerce order flow on pocketmq, over a file store in ./data/order-flow.

- A paid order fans out to three services, each its own consumer group:
  sms, inventory and analytics each get every "paid" message.
- Each order's lifecycle (created, paid, shipped, delivered) is sent with the
  order id as sharding key, so it lands on one queue and an orderly consumer
  sees it in order.
- Each order awaiting payment gets a delayed cancel, due 30 minutes later; one
  that pays in time has its cancel recalled (RocketMQ 5.3's recallMessage). A
  ManualClock stands in for the wall clock, so the demo moves time instead of
  waiting.
- The payment is a transactional message: it becomes visible only once the
  local transaction (here, a dict standing in for the payments table) commits.

Run it with `make demo`; it starts from an empty store each time.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pocketmq

STORE = Path("data") / "order-flow"
SERVICES = ("sms", "inventory", "analytics")
ORDERS = ("order-1001", "order-1002", "order-1003")
LIFECYCLE = ("created", "paid", "shipped", "delivered")


def show(who: str, msg: pocketmq.Message) -> None:
    print(f"  {who:<10} <- {msg.topic}[{msg.queue_id}]#{msg.queue_offset} "
          f"tags={msg.tags} keys={msg.keys} body={msg.text()!r}")


def drain(broker: pocketmq.Broker, group: str, topic: str, *, orderly: bool = False,
          tags: str = "*", timeout: float = 0.2) -> list[pocketmq.Message]:
    """Receives and acks everything the group can get now."""
    consumer = broker.consumer(group, topic, tags=tags, orderly=orderly)
    got: list[pocketmq.Message] = []
    while True:
        msgs = consumer.receive(max_messages=16, timeout=timeout)
        if not msgs:
            break
        for msg in msgs:
            show(group, msg)
            consumer.ack(msg)
        got.extend(msgs)
    consumer.close()
    return got


def main() -> None:
    shutil.rmtree(STORE, ignore_errors=True)
    clock = pocketmq.ManualClock()
    with pocketmq.Broker(STORE, clock=clock) as broker:
        broker.create_topic("orders", queues=4)
        broker.create_topic("order-lifecycle", queues=4)
        shop = broker.producer("shop")

        print("1. Ordered lifecycle: one sharding key per order keeps its events in order")
        for step in LIFECYCLE:
            for order in ORDERS:
                r = shop.send("order-lifecycle", f"{order} {step}".encode(), tags=step,
                              keys=[order], sharding_key=order)
                print(f"  shop       -> {r.topic}[{r.queue_id}] {order} {step}")
        seen: dict[str, list[str]] = {}
        for msg in drain(broker, "tracking", "order-lifecycle", orderly=True):
            order, step = msg.text().split()
            seen.setdefault(order, []).append(step)
        for order, steps in sorted(seen.items()):
            print(f"  {order}: {' -> '.join(steps)}")

        print("2. A transactional payment: visible only once the local transaction commits")
        payments: dict[str, str] = {}

        def charge(msg: pocketmq.Message) -> pocketmq.TxState:
            payments[msg.keys[0]] = "charged"
            return pocketmq.TxState.COMMIT

        def check(msg: pocketmq.Message) -> pocketmq.TxState:
            charged = payments.get(msg.keys[0]) == "charged"
            return pocketmq.TxState.COMMIT if charged else pocketmq.TxState.ROLLBACK

        cashier = broker.transaction_producer("cashier", check=check)
        r = cashier.send("orders", b"order-1001 paid 42.00 EUR", tags="paid",
                         keys=["order-1001"], execute=charge)
        print(f"  cashier    -> {r}")

        print("3. A paid order fans out: every service group gets it")
        for service in SERVICES:
            drain(broker, service, "orders", tags="paid")
        lags = {service: broker.lag(service, "orders") for service in SERVICES}
        print(f"  lag per service: {lags}")

        print("4. A delayed cancel for each order awaiting payment, due in 30 minutes")
        r = shop.send("orders", b"order-1002 cancel-if-unpaid", tags="cancel",
                      keys=["order-1002"], delay=timedelta(minutes=30))
        print(f"  shop       -> {r}")
        paid = shop.send("orders", b"order-1003 cancel-if-unpaid", tags="cancel",
                         keys=["order-1003"], delay=timedelta(minutes=30))
        assert paid.recall_handle is not None
        recalled = shop.recall("orders", paid.recall_handle)
        print(f"  order-1003 paid in time: its cancel recalled: {recalled}")
        early = drain(broker, "billing", "orders", tags="cancel")
        print(f"  right away: {len(early)} message(s) for billing")
        clock.advance(timedelta(minutes=30))
        broker.tick()
        print("  ... 30 minutes later (ManualClock.advance + tick):")
        drain(broker, "billing", "orders", tags="cancel", timeout=1.0)

        print("5. Where everything stands")
        stats = broker.stats()
        for topic, queues in sorted(broker.topics().items()):
            info = stats["topics"][topic]
            print(f"  {topic}: {info['messages_in']} messages in {queues} queues")
        print(f"  delayed messages pending: {stats['pending_delayed']}, "
              f"half messages pending: {stats['pending_transactions']}")
        found = broker.query("orders", "order-1002")
        print(f"  query(orders, order-1002): {[m.text() for m in found]}")


if __name__ == "__main__":
    main()
