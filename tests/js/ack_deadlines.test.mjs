// Consumers that never strand a message: ack deadlines, retry delays, flow control,
// one subscription per group. On a ManualClock, no sleeping.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Broker, ManualClock, InvalidArgumentError } from "pocketmq";

const T0 = 1_764_000_000_000;

function timed() {
  const clock = new ManualClock(T0);
  return [new Broker({ clock }), clock];
}

test("an unacked delivery goes back exactly at its ack deadline", async () => {
  const [broker, clock] = timed();
  broker.producer("p").send("t", "stuck");
  const c = broker.consumer({ group: "g", topic: "t", ackTimeoutMs: 60_000 });
  const [first] = await c.receive({ timeoutMs: 0 });
  clock.advance(59_999);
  broker.tick();
  assert.equal(broker.stats().pendingDelayed, 0);
  clock.advance(1);
  broker.tick();
  assert.equal(broker.stats().pendingDelayed, 1);
  clock.advance(10_000);
  broker.tick();
  const [again] = await c.receive({ timeoutMs: 0 });
  assert.equal(again.msgId, first.msgId);
  assert.equal(again.reconsumeTimes, 1);
  broker.close();
});

test("an ack deadline passes on the JS timers, without tick", async () => {
  const [broker, clock] = timed();
  broker.producer("p").send("t", "stuck");
  const c = broker.consumer({ group: "g", topic: "t", ackTimeoutMs: 300 });
  const [first] = await c.receive({ timeoutMs: 0 });
  clock.advance(300 + 10_000);
  // The redelivery comes to a waiting receive: nobody calls tick.
  const [again] = await c.receive({ timeoutMs: 5000 });
  assert.equal(again.msgId, first.msgId);
  assert.equal(again.reconsumeTimes, 1);
  broker.close();
});

test("ackTimeoutMs null never sends back; maxInFlight caps a consumer", async () => {
  const [broker, clock] = timed();
  const p = broker.producer("p");
  for (let i = 0; i < 5; i++) p.send("t", `${i}`);
  const c = broker.consumer({ group: "g", topic: "t", ackTimeoutMs: null, maxInFlight: 2 });
  const got = await c.receive({ timeoutMs: 0 });
  assert.equal(got.length, 2);
  assert.deepEqual(await c.receive({ timeoutMs: 0 }), []);
  clock.advance(30 * 86_400_000);
  broker.tick();
  assert.equal(broker.stats().pendingDelayed, 0);
  c.ack(got);
  assert.equal((await c.receive({ timeoutMs: 0 })).length, 2);
  broker.close();
});

test("a waiting receive of a full consumer wakes when it acks", async () => {
  const broker = new Broker();
  const p = broker.producer("p");
  for (let i = 0; i < 3; i++) p.send("t", `${i}`);
  const c = broker.consumer({ group: "g", topic: "t", maxInFlight: 1 });
  const [held] = await c.receive({ timeoutMs: 0 });
  const waiting = c.receive({ timeoutMs: 5000 });
  setTimeout(() => c.ack(held), 20);
  assert.equal((await waiting).length, 1);
  broker.close();
});

test("nack with delayMs redelivers after that delay", async () => {
  const [broker, clock] = timed();
  broker.producer("p").send("t", "later");
  const c = broker.consumer({ group: "g", topic: "t" });
  const [m] = await c.receive({ timeoutMs: 0 });
  c.nack(m, { delayMs: 2500 });
  clock.advance(2499);
  assert.deepEqual(await c.receive({ timeoutMs: 0 }), []);
  clock.advance(1);
  const [again] = await c.receive({ timeoutMs: 0 });
  assert.equal(again.reconsumeTimes, 1);
  assert.throws(() => c.nack(again, { delayMs: -1 }), InvalidArgumentError);
  assert.throws(() => c.nack(again, { delay: 5 }), InvalidArgumentError);
  broker.close();
});

test("members of a group subscribe alike", () => {
  const broker = new Broker();
  const a = broker.consumer({ group: "g", topic: "t", tags: "A" });
  assert.throws(() => broker.consumer({ group: "g", topic: "t", tags: "B" }), InvalidArgumentError);
  a.close();
  broker.consumer({ group: "g", topic: "t", tags: "B" });
  assert.throws(() => broker.consumer({ group: "h", topic: "t", maxInFlight: 0 }), InvalidArgumentError);
  assert.throws(() => broker.consumer({ group: "h", topic: "t", ackTimeoutMs: -5 }), InvalidArgumentError);
  assert.throws(() => broker.consumer({ group: "h", topic: "t", ackTimeout: 5 }), InvalidArgumentError);
  broker.close();
});
