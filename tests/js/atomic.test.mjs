// Atomic consume-and-produce: broker.atomic((tx) => ...) stores its sends and acks
// as one append when the block returns, or nothing when it throws.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Broker, ManualClock, InvalidArgumentError, InvalidReceiptHandleError } from "pocketmq";

const T0 = 1_764_000_000_000;

async function drain(c) {
  const out = [];
  for (;;) {
    const got = await c.receive({ maxMessages: 64, timeoutMs: 0 });
    if (got.length === 0) return out;
    c.ack(got);
    out.push(...got.map((m) => m.text()));
  }
}

test("a block stores its sends and acks together", async () => {
  const broker = new Broker({ clock: new ManualClock(T0) });
  broker.producer("p").send("orders", "order-42");
  const c = broker.consumer({ group: "shipping", topic: "orders" });
  const out = broker.consumer({ group: "audit", topic: "shipments" });
  const [msg] = await c.receive({ timeoutMs: 0 });
  const results = broker.atomic((tx) => {
    tx.send("shipments", "ship order-42", { keys: "order-42" });
    tx.send("audit", "log");
    tx.ack(c, msg);
  });
  assert.deepEqual(results.map((r) => r.topic), ["shipments", "audit"]);
  assert.deepEqual(await drain(out), ["ship order-42"]);
  assert.equal(broker.lag("shipping", "orders"), 0);
  c.ack(msg); // settled by the block: a no-op
  assert.throws(() => broker.atomic((tx) => tx.ack(c, msg)), InvalidArgumentError);
  broker.close();
});

test("a block that throws stores nothing", async () => {
  const broker = new Broker({ clock: new ManualClock(T0) });
  broker.producer("p").send("orders", "o");
  const c = broker.consumer({ group: "g", topic: "orders" });
  const [msg] = await c.receive({ timeoutMs: 0 });
  let kept;
  assert.throws(
    () =>
      broker.atomic((tx) => {
        kept = tx;
        tx.send("shipments", "s");
        tx.ack(c, msg);
        throw new Error("payment down");
      }),
    /payment down/,
  );
  assert.throws(() => kept.send("shipments", "late"), InvalidArgumentError);
  assert.deepEqual(await drain(broker.consumer({ group: "a", topic: "shipments" })), []);
  assert.equal(broker.lag("g", "orders"), 1);
  c.ack(msg);
  broker.close();
});

test("simple consumer acks join the block; nesting and async blocks are refused", async () => {
  const broker = new Broker({ clock: new ManualClock(T0) });
  broker.producer("p").send("orders", "o");
  const sc = broker.simpleConsumer({ group: "billing", topic: "orders" });
  const [msg] = await sc.receive({ timeoutMs: 0 });
  assert.throws(() => broker.atomic((tx) => broker.atomic(() => {})), InvalidArgumentError);
  assert.throws(() => broker.atomic(async (tx) => tx.send("t", "x")), TypeError);
  // One that uses tx after an await fails on a later turn: refused, not a crash
  // (an unhandled rejection would end this process).
  assert.throws(
    () =>
      broker.atomic(async (tx) => {
        await null;
        tx.send("t", "late");
      }),
    TypeError,
  );
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.throws(() => broker.atomic((tx) => tx.ack({}, msg)), TypeError);
  broker.atomic((tx) => {
    tx.ack(sc, msg);
    tx.send("invoices", "i");
  });
  assert.throws(() => sc.ack(msg), InvalidReceiptHandleError);
  assert.deepEqual(await drain(broker.consumer({ group: "x", topic: "invoices" })), ["i"]);
  assert.deepEqual(await drain(broker.consumer({ group: "y", topic: "t" })), []);
  broker.close();
});
