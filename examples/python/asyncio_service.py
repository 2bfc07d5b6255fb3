"""An asyncio service on pocketmq: a checkout front end sends orders while a shipping
worker consumes them and sends a shipment for each, and a payment step charges each
order in a transaction whose local part is a coroutine, all on one event loop, on a
store whose every send is on disk before it returns (flush="sync").

    python examples/python/asyncio_service.py

`send_async` waits for the disk off the loop, a transaction producer's `send_async`
awaits its `async def execute`, and `listen_async` runs the handlers as tasks, so a heartbeat task keeps ticking through all of it. With `pocketmq.connect()`
instead of `pocketmq.Broker(...)`, the checkout and the worker run unchanged against
`pocketmq serve` or an Apache RocketMQ 5 cluster; `broker.lag` is the embedded
broker's (the protocol carries no lag: over `connect()` it raises `NotSupported`).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pocketmq

ORDERS = 20
STORE = Path("data") / "asyncio-service"


async def checkout(producer: pocketmq.Producer) -> list[pocketmq.SendResult]:
    """The front end: each order is a request of its own, sent concurrently."""

    async def place(n: int) -> pocketmq.SendResult:
        order = f"order-{2000 + n}"
        return await producer.send_async("orders", f"{order} placed", keys=[order], sharding_key=order)

    return list(await asyncio.gather(*(place(n) for n in range(ORDERS))))


async def charge_all(payments: pocketmq.TransactionProducer) -> list[pocketmq.SendResult]:
    """Each order's payment message is stored as a half message, made visible only if
    the (asynchronous) payment gateway accepts the charge."""

    async def charge(msg: pocketmq.Message) -> pocketmq.TxState:
        await asyncio.sleep(0.001)  # the gateway's round trip
        declined = msg.keys[0].endswith("7")
        return pocketmq.TxState.ROLLBACK if declined else pocketmq.TxState.COMMIT

    async def pay(n: int) -> pocketmq.SendResult:
        order = f"order-{2000 + n}"
        return await payments.send_async("payments", f"{order} paid", keys=[order], execute=charge)

    return list(await asyncio.gather(*(pay(n) for n in range(ORDERS))))


async def main() -> None:
    shutil.rmtree(STORE, ignore_errors=True)
    with pocketmq.Broker(str(STORE), flush="sync") as broker:
        producer = broker.producer("checkout")
        async def ask_gateway(msg: pocketmq.Message) -> pocketmq.TxState:
            # Asked about a payment whose outcome never arrived (a crash mid-charge);
            # awaited on this loop, as execute is.
            await asyncio.sleep(0.001)
            return pocketmq.TxState.ROLLBACK

        payments = broker.transaction_producer("payments", check=ask_gateway)
        shipping = broker.consumer("shipping", "orders")
        shipped: list[str] = []
        beats = 0

        async def heartbeat() -> None:
            nonlocal beats
            while True:
                await asyncio.sleep(0.005)
                beats += 1

        async def ship(msg: pocketmq.Message) -> None:
            # Returning acks the order; raising would nack it for a retry.
            order = msg.keys[0]
            await producer.send_async("shipments", f"{order} shipped", keys=[order])
            shipped.append(order)

        beating = asyncio.ensure_future(heartbeat())
        worker = asyncio.ensure_future(shipping.listen_async(ship, concurrency=8))
        started = time.monotonic()
        results = await checkout(producer)
        print(f"placed {len(results)} orders, every one on disk: "
              f"{all(r.status == 'SEND_OK' for r in results)}")
        paid = await charge_all(payments)
        committed = sum(r.transaction_state == pocketmq.TxState.COMMIT for r in paid)
        print(f"payments committed: {committed}, declined: {len(paid) - committed}")
        while len(shipped) < ORDERS:
            await asyncio.sleep(0.01)
        took = time.monotonic() - started
        worker.cancel()
        beating.cancel()
        await asyncio.gather(worker, beating, return_exceptions=True)
        print(f"shipped {len(shipped)} orders in {took:.2f} s")
        print(f"the event loop kept running meanwhile: {beats > 0}")
        print(f"shipping lag: {broker.lag('shipping', 'orders')}")
        shipments = broker.consumer("audit", "shipments").receive(max_messages=64, timeout=1.0)
        print(f"shipments stored: {len(shipments)}")
        visible = broker.consumer("ledger", "payments").receive(max_messages=64, timeout=1.0)
        print(f"payments visible to consumers: {len(visible)}")


if __name__ == "__main__":
    asyncio.run(main())
