// The retry ladder: a nacked message comes back after delay level
// 3 + reconsumeTimes (10 s, 30 s, 1 m, ...) with its original id and topic,
// at most 1 + maxReconsumeTimes deliveries, then it goes to %DLQ%<group>.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Broker, ManualClock } from "pocketmq";

const T0 = Date.UTC(2026, 0, 1);
// Delay levels 3, 4, 5, ... of "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".
const LADDER_MS = [10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200].map((s) => s * 1000);

async function receiveOne(c) {
  const msgs = await c.receive({ maxMessages: 32, timeoutMs: 0 });
  assert.equal(msgs.length, 1, `one message, got ${msgs.length}`);
  return msgs[0];
}

test("a nacked message climbs the retry ladder, then goes to the DLQ", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  const sent = broker.producer("g").send("orders", "flaky", { tags: "paid", keys: "order-7", properties: { a: "1" } });
  const c = broker.consumer({ group: "sms", topic: "orders", maxReconsumeTimes: 3 });

  let m = await receiveOne(c);
  assert.equal(m.reconsumeTimes, 0);
  c.nack(m);
  for (let i = 1; i <= 3; i++) {
    clock.advance(LADDER_MS[i - 1] - 1);
    assert.deepEqual(await c.receive({ timeoutMs: 0 }), [], `retry ${i} not before ${LADDER_MS[i - 1]} ms`);
    clock.advance(1);
    m = await receiveOne(c);
    assert.equal(m.msgId, sent.msgId, "a redelivery keeps the original msgId");
    assert.equal(m.topic, "orders", "and shows the original topic");
    assert.equal(m.reconsumeTimes, i);
    assert.equal(m.text(), "flaky");
    assert.equal(m.tags, "paid");
    assert.equal(m.properties.a, "1");
    assert.equal(m.properties.RETRY_TOPIC, "orders", "RocketMQ's RETRY_TOPIC names the topic to restore");
    assert.equal(m.properties.ORIGIN_MESSAGE_ID, sent.msgId);
    c.nack(m);
  }
  // 1 + 3 deliveries: the fourth nack dead-letters it.
  clock.advance(3 * 3600 * 1000);
  assert.deepEqual(await c.receive({ timeoutMs: 0 }), []);
  assert.equal(broker.lag("sms", "orders"), 0, "a dead letter is no longer the group's lag");

  const dlq = broker.consumer({ group: "ops", topic: "%DLQ%sms" });
  const dead = await receiveOne(dlq);
  assert.equal(dead.msgId, sent.msgId);
  assert.equal(dead.properties.RETRY_TOPIC, "orders", "the dead letter names its original topic");
  assert.equal(dead.properties.ORIGIN_MESSAGE_ID, sent.msgId);
  assert.equal(dead.text(), "flaky");
  assert.equal(dead.tags, "paid");
  assert.deepEqual(dead.keys, ["order-7"]);
  assert.equal(dead.properties.a, "1");
  assert.equal(broker.get(sent.msgId).text(), "flaky", "get returns the original");
  assert.equal(broker.get(sent.msgId).topic, "orders");
  broker.close();
});

test("with the default maxReconsumeTimes a message is delivered 17 times", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  const sent = broker.producer("g").send("orders", "x");
  const c = broker.consumer({ group: "g", topic: "orders" });
  let deliveries = 0;
  for (let i = 0; i < 30; i++) {
    const msgs = await c.receive({ timeoutMs: 0 });
    for (const m of msgs) {
      deliveries += 1;
      assert.equal(m.reconsumeTimes, deliveries - 1);
      c.nack(m);
    }
    clock.advance(2 * 3600 * 1000);
  }
  assert.equal(deliveries, 17);
  const dlq = broker.consumer({ group: "ops", topic: "%DLQ%g" });
  assert.equal((await receiveOne(dlq)).msgId, sent.msgId);
  broker.close();
});

test("an acked redelivery is done for good", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  broker.producer("g").send("orders", "x");
  const c = broker.consumer({ group: "g", topic: "orders" });
  c.nack(await receiveOne(c));
  clock.advance(10_000);
  const again = await receiveOne(c);
  c.ack(again);
  clock.advance(24 * 3600 * 1000);
  assert.deepEqual(await c.receive({ timeoutMs: 0 }), []);
  assert.equal(broker.lag("g", "orders"), 0);
  broker.close();
});

test("orderly consumption retries in place and keeps the order", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  const p = broker.producer("g");
  for (const s of ["created", "paid", "shipped"]) p.send("orders", s, { shardingKey: "order-1" });
  const c = broker.consumer({ group: "g", topic: "orders", orderly: true });
  const first = await receiveOne(c);
  assert.equal(first.text(), "created");
  c.nack(first);
  // Whatever the pause, "paid" never overtakes "created".
  const seen = [];
  for (let i = 0; i < 20 && seen.length < 3; i++) {
    clock.advance(1000);
    for (const m of await c.receive({ timeoutMs: 0 })) {
      seen.push(m.text());
      c.ack(m);
    }
  }
  assert.deepEqual(seen, ["created", "paid", "shipped"]);
  broker.close();
});
