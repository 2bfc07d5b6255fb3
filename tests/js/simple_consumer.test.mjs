// Simple (POP) consumers from JS: invisibility, receipt handles, attempts, the DLQ,
// fifo per message group, bad input. On a ManualClock.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Broker, ManualClock, InvalidArgumentError, InvalidReceiptHandleError } from "pocketmq";

const T0 = 1_764_000_000_000;

function timed() {
  const clock = new ManualClock(T0);
  return [new Broker({ clock }), clock];
}

test("a delivery stays invisible until acked or expired", async () => {
  const [broker, clock] = timed();
  const p = broker.producer("p");
  for (let i = 0; i < 3; i++) p.send("orders", `m${i}`);
  const sc = broker.simpleConsumer({ group: "billing", topic: "orders", invisibleDurationMs: 30_000 });
  const got = await sc.receive({ maxMessages: 16, timeoutMs: 0 });
  assert.equal(got.length, 3);
  assert.ok(got.every((m) => m.deliveryAttempt === 1 && typeof m.receiptHandle === "string"));
  assert.deepEqual(await sc.receive({ timeoutMs: 0 }), []);
  sc.ack(got[0]);
  assert.throws(() => sc.ack(got[0]), InvalidReceiptHandleError);
  clock.advance(29_999);
  assert.deepEqual(await sc.receive({ timeoutMs: 0 }), []);
  clock.advance(1);
  const again = await sc.receive({ maxMessages: 16, timeoutMs: 0 });
  assert.equal(again.length, 2);
  assert.ok(again.every((m) => m.deliveryAttempt === 2));
  assert.throws(() => sc.ack(got[1]), (e) => e instanceof InvalidReceiptHandleError && e.code === "INVALID_RECEIPT_HANDLE");
  sc.ack(again);
  assert.equal(broker.lag("billing", "orders"), 0);
  broker.close();
});

test("changeInvisibleDuration replaces the handle", async () => {
  const [broker, clock] = timed();
  broker.producer("p").send("orders", "x");
  const sc = broker.simpleConsumer({ group: "g", topic: "orders" });
  const [m] = await sc.receive({ timeoutMs: 0 });
  const old = m.receiptHandle;
  sc.changeInvisibleDuration(m, 60_000);
  assert.notEqual(m.receiptHandle, old);
  // A list is refused before anything changes: the message keeps a current handle.
  const current = m.receiptHandle;
  assert.throws(() => sc.changeInvisibleDuration([m], 1000), TypeError);
  assert.equal(m.receiptHandle, current);
  clock.advance(59_000);
  assert.deepEqual(await sc.receive({ timeoutMs: 0 }), []);
  sc.ack(m);
  assert.throws(() => sc.changeInvisibleDuration(m, -1), InvalidArgumentError);
  broker.close();
});

test("the last attempt goes to the DLQ; fifo holds only the failing key", async () => {
  const [broker, clock] = timed();
  const sent = broker.producer("p").send("orders", "poison");
  const sc = broker.simpleConsumer({ group: "g", topic: "orders", invisibleDurationMs: 1000, maxDeliveryAttempts: 2 });
  const attempts = [];
  for (let i = 0; i < 6; i++) {
    for (const m of await sc.receive({ timeoutMs: 0 })) attempts.push(m.deliveryAttempt);
    clock.advance(1000);
    broker.tick();
  }
  assert.deepEqual(attempts, [1, 2]);
  const [dead] = await broker.consumer({ group: "reader", topic: "%DLQ%g" }).receive({ timeoutMs: 0 });
  assert.equal(dead.msgId, sent.msgId);

  broker.createTopic("f", { queues: 1 });
  const p = broker.producer("p");
  for (let i = 0; i < 2; i++) for (const k of ["A", "B"]) p.send("f", `${k}${i}`, { shardingKey: k });
  const fifo = broker.simpleConsumer({ group: "ff", topic: "f", fifo: true });
  const first = await fifo.receive({ timeoutMs: 0 });
  assert.deepEqual(first.map((m) => m.text()), ["A0", "B0"]);
  fifo.ack(first[0]);
  assert.deepEqual((await fifo.receive({ timeoutMs: 0 })).map((m) => m.text()), ["A1"]);
  broker.close();
});

test("bad simple consumer options and handles", () => {
  const broker = new Broker();
  assert.throws(() => broker.simpleConsumer({ group: "g", topic: "t", invisibleDurationMs: 0 }), InvalidArgumentError);
  assert.throws(() => broker.simpleConsumer({ group: "g", topic: "t", invisibleDurationMs: NaN }), InvalidArgumentError);
  assert.throws(() => broker.simpleConsumer({ group: "g", topic: "t", maxDeliveryAttempts: 0 }), InvalidArgumentError);
  assert.throws(() => broker.simpleConsumer({ group: "g", topic: "t", fifo: "yes" }), TypeError);
  assert.throws(() => broker.simpleConsumer({ group: "g" }), TypeError);
  broker.close();
});

test("a message of another broker is refused by a simple consumer and acks nothing there", async () => {
  const [a, b] = [new Broker(), new Broker()];
  for (const broker of [a, b]) {
    broker.createTopic("t", { queues: 1 });
    broker.producer("p").send("t", "one");
  }
  const [sa, sb] = [a.simpleConsumer({ group: "g", topic: "t" }), b.simpleConsumer({ group: "g", topic: "t" })];
  const [fromA] = await sa.receive({ maxMessages: 1, timeoutMs: 0 });
  const [fromB] = await sb.receive({ maxMessages: 1, timeoutMs: 0 });
  assert.throws(() => sb.ack(fromA), (err) => err.code === "INVALID_RECEIPT_HANDLE");
  assert.equal(b.lag("g", "t"), 1, "b's own message is not acked");
  sb.ack(fromB);
  sa.ack(fromA);
  assert.deepEqual([a.lag("g", "t"), b.lag("g", "t")], [0, 0]);
  a.close();
  b.close();
});
