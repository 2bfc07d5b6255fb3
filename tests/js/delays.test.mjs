// Delay levels, deliverAt and delayMs, on a ManualClock (deterministic) and on
// the real clock (the package's timers run the due work by themselves).
import { test } from "node:test";
import assert from "node:assert/strict";

import { Broker, ManualClock, TxState } from "pocketmq";

const T0 = Date.UTC(2026, 0, 1);
const text = (m) => m.text();

async function visibleAfter(send, stepMs, { delayLevels } = {}) {
  const clock = new ManualClock(T0);
  const broker = new Broker(delayLevels ? { clock, delayLevels } : { clock });
  const c = broker.consumer({ group: "g", topic: "orders" });
  send(broker.producer("g"));
  assert.deepEqual(await c.receive({ timeoutMs: 0 }), [], "nothing at once");
  clock.advance(stepMs - 1);
  assert.deepEqual(await c.receive({ timeoutMs: 0 }), [], "nothing 1 ms early");
  clock.advance(1);
  const got = await c.receive({ timeoutMs: 0 });
  broker.close();
  return got;
}

test("delayLevel 3 delivers after 10 s, not before", async () => {
  const got = await visibleAfter((p) => p.send("orders", "later", { delayLevel: 3, tags: "t" }), 10_000);
  assert.deepEqual(got.map(text), ["later"]);
  assert.equal(got[0].topic, "orders", "the real topic, not the schedule topic");
  assert.equal(got[0].tags, "t");
});

test("delayLevel 1 is 1 s and levels above the last clamp to the last (2 h)", async () => {
  assert.deepEqual((await visibleAfter((p) => p.send("orders", "a", { delayLevel: 1 }), 1000)).map(text), ["a"]);
  assert.deepEqual((await visibleAfter((p) => p.send("orders", "b", { delayLevel: 99 }), 2 * 3600 * 1000)).map(text), ["b"]);
  assert.deepEqual((await visibleAfter((p) => p.send("orders", "c", { delayLevel: 2 ** 32 }), 2 * 3600 * 1000)).map(text), ["c"]);
});

test("delayLevel 0 means no delay", async () => {
  const broker = new Broker({ clock: new ManualClock(T0) });
  broker.producer("g").send("orders", "now", { delayLevel: 0 });
  // Also where a delay is refused (batches of several, transactions): 0 is none.
  broker.producer("g").sendBatch("orders", ["b1", "b2"], { delayLevel: 0 });
  broker.producer("g").sendBatch("orders", ["b3", "b4"], { delayMs: 0 });
  broker.transactionProducer("tx", { check: () => TxState.COMMIT }).send("orders", "tx", { delayLevel: 0, execute: () => TxState.COMMIT });
  const c = broker.consumer({ group: "g", topic: "orders" });
  assert.deepEqual((await c.receive({ timeoutMs: 0 })).map(text).sort(), ["b1", "b2", "b3", "b4", "now", "tx"]);
  broker.close();
});

test("delayLevels configures the levels", async () => {
  const got = await visibleAfter((p) => p.send("orders", "x", { delayLevel: 2 }), 90_000, { delayLevels: "1s 90s 2d" });
  assert.deepEqual(got.map(text), ["x"]);
});

test("deliverAt takes epoch ms or a Date, at millisecond precision", async () => {
  assert.deepEqual((await visibleAfter((p) => p.send("orders", "ms", { deliverAt: T0 + 1234 }), 1234)).map(text), ["ms"]);
  assert.deepEqual((await visibleAfter((p) => p.send("orders", "date", { deliverAt: new Date(T0 + 86_400_000) }), 86_400_000)).map(text), ["date"]);
});

test("delayMs counts from the send", async () => {
  assert.deepEqual((await visibleAfter((p) => p.send("orders", "d", { delayMs: 30_001 }), 30_001)).map(text), ["d"]);
});

test("a deliverAt in the past delivers at once", async () => {
  const broker = new Broker({ clock: new ManualClock(T0) });
  broker.producer("g").send("orders", "past", { deliverAt: T0 - 60_000 });
  const c = broker.consumer({ group: "g", topic: "orders" });
  assert.deepEqual((await c.receive({ timeoutMs: 0 })).map(text), ["past"]);
  broker.close();
});

test("a deliverAt beyond timerMaxDelayMs is InvalidArgument", () => {
  const broker = new Broker({ clock: new ManualClock(T0), timerMaxDelayMs: 60_000 });
  const p = broker.producer("g");
  p.send("orders", "ok", { deliverAt: T0 + 60_000 });
  assert.throws(() => p.send("orders", "x", { deliverAt: T0 + 60_001 }), (e) => e.code === "InvalidArgument");
  broker.close();
});

test("a waiting receive gets a delayed message when the manual clock passes its time", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  const c = broker.consumer({ group: "g", topic: "orders" });
  broker.producer("g").send("orders", "soon", { delayMs: 5000 });
  const waiting = c.receive({ timeoutMs: 5000 });
  setTimeout(() => clock.advance(5000), 30);
  const started = Date.now();
  assert.deepEqual((await waiting).map(text), ["soon"]);
  assert.ok(Date.now() - started < 2000);
  broker.close();
});

test("tick runs due work on a manual clock", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  broker.producer("g").send("orders", "x", { delayMs: 1000 });
  clock.advance(1000);
  broker.tick();
  assert.equal(broker.stats().pendingDelayed, 0);
  const c = broker.consumer({ group: "g", topic: "orders" });
  assert.deepEqual((await c.receive({ timeoutMs: 0 })).map(text), ["x"]);
  broker.close();
});

test("receive timeouts are real time whatever the broker's clock", async () => {
  const broker = new Broker({ clock: new ManualClock(T0) });
  const c = broker.consumer({ group: "g", topic: "orders" });
  const started = Date.now();
  assert.deepEqual(await c.receive({ timeoutMs: 200 }), []);
  assert.ok(Date.now() - started >= 190);
  broker.close();
});

test("on the real clock a delayed message arrives by itself", async () => {
  const broker = new Broker();
  const c = broker.consumer({ group: "g", topic: "orders" });
  const started = Date.now();
  broker.producer("g").send("orders", "timer", { delayMs: 300 });
  assert.deepEqual(await c.receive({ timeoutMs: 100 }), [], "not before its time");
  const got = await c.receive({ timeoutMs: 3000 });
  assert.deepEqual(got.map(text), ["timer"]);
  const waited = Date.now() - started;
  assert.ok(waited >= 290 && waited < 2500, `arrived after ${waited} ms`);
  broker.close();
});

test("a delayed message recalled before its time is never delivered", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  const c = broker.consumer({ group: "g", topic: "orders" });
  const p = broker.producer("g");
  const cancel = p.send("orders", "cancel order 42", { delayMs: 30_000 });
  const level = p.send("orders", "reminder", { delayLevel: 3 });
  const kept = p.send("orders", "kept", { deliverAt: new Date(T0 + 30_000) });
  assert.equal(p.send("orders", "now").recallHandle, undefined, "only a delayed send has a handle");
  assert.equal(typeof cancel.recallHandle, "string");
  assert.equal(p.recall("orders", cancel.recallHandle), true);
  assert.equal(p.recall("orders", level.recallHandle), true);
  assert.equal(p.recall("orders", cancel.recallHandle), false, "a second recall changes nothing");
  assert.throws(() => p.recall("payments", kept.recallHandle), { code: "InvalidArgument" });
  clock.advance(30_000);
  const got = await c.receive({ timeoutMs: 0 });
  assert.deepEqual(got.map(text).sort(), ["kept", "now"]);
  assert.equal(p.recall("orders", kept.recallHandle), false, "too late once delivered");
  const [inBlock] = broker.atomic((tx) => tx.send("orders", "in a block", { delayMs: 5_000 }));
  assert.equal(typeof inBlock.recallHandle, "string", "an atomic block's delayed send has one too");
  broker.close();
});
