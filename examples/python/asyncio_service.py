"""An asyncio service on pocketmq: a checkout front end sends orders while a shipping
worker consumes them and sends a shipment for each, all on one event loop, on a
store whose every send is on disk before it returns (flush="sync").

    python examples/python/asyncio_service.py

`send_async` waits for the disk off the loop, and `listen_async` runs the handlers as
tasks, so a heartbeat task keeps ticking through all of it. With `pocketmq.connect()`
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


async def main() -> None:
    shutil.rmtree(STORE, ignore_errors=True)
    with pocketmq.Broker(str(STORE), flush="sync") as broker:
        producer = broker.producer("checkout")
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


if __name__ == "__main__":
    asyncio.run(main())
