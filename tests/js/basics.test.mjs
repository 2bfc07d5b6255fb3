// Sending, receiving, groups and the broker's queries, as a user of the npm
// package calls them (in memory, the real clock).
import { test } from "node:test";
import assert from "node:assert/strict";

import { Broker, InvalidArgumentError, ManualClock, Message, version } from "pocketmq";

const text = (m) => new TextDecoder().decode(m.body);

test("version names the package version", () => {
  assert.match(version(), /^\d+\.\d+\.\d+/);
});

test("a sent message comes back with all its fields", async () => {
  const broker = new Broker();
  const p = broker.producer("order-service");
  const before = Date.now();
  const r = p.send("orders", "order 42 paid", {
    tags: "paid",
    keys: ["order-42", "customer-7"],
    properties: { region: "eu" },
  });
  assert.match(r.msgId, /^[0-9A-F]{32}$/i);
  assert.equal(r.topic, "orders");
  assert.equal(r.status, "SEND_OK");
  assert.equal(typeof r.queueId, "number");
  assert.equal(typeof r.queueOffset, "number");
  assert.equal(typeof r.commitlogOffset, "number");

  const c = broker.consumer({ group: "sms", topic: "orders" });
  const msgs = await c.receive({ maxMessages: 32, timeoutMs: 1000 });
  assert.equal(msgs.length, 1);
  const m = msgs[0];
  assert.ok(m instanceof Message);
  assert.equal(m.msgId, r.msgId);
  assert.equal(m.topic, "orders");
  assert.equal(m.queueId, r.queueId);
  assert.equal(m.queueOffset, r.queueOffset);
  assert.equal(m.commitlogOffset, r.commitlogOffset);
  assert.ok(m.body instanceof Uint8Array);
  assert.equal(m.text(), "order 42 paid");
  assert.equal(m.tags, "paid");
  assert.deepEqual(m.keys, ["order-42", "customer-7"]);
  assert.equal(m.properties.region, "eu");
  assert.ok(m.bornTimestamp >= before && m.bornTimestamp <= Date.now());
  assert.ok(m.storeTimestamp >= m.bornTimestamp);
  assert.equal(m.reconsumeTimes, 0);
  c.ack(m);
  broker.close();
});

test("message ids name their record: the store's nonce, then its offset in the log", async () => {
  const broker = new Broker();
  const p = broker.producer("g");
  const hex = (n) => n.toString(16).toUpperCase().padStart(16, "0");
  // Bodies of varied sizes cross many 4 KiB steps of the log, one message at a time
  // and in batches.
  const sent = [];
  for (let i = 0; i < 600; i++) {
    const body = "x".repeat(1 + ((i * 37) % 700));
    if (i % 3 === 0) sent.push(...p.sendBatch("ids", [body, body + "y"]));
    else sent.push(p.send("ids", body));
  }
  const nonce = sent[0].msgId.slice(0, 16);
  for (const r of sent) assert.equal(r.msgId, nonce + hex(r.commitlogOffset));
  assert.equal(new Set(sent.map((r) => r.msgId)).size, sent.length);
  const c = broker.consumer({ group: "g", topic: "ids" });
  const got = [];
  for (let msgs; (msgs = await c.receive({ maxMessages: 64, timeoutMs: 0 })).length > 0; ) {
    got.push(...msgs);
    c.ack(msgs);
  }
  assert.equal(got.length, sent.length);
  for (const m of got) assert.equal(m.msgId, nonce + hex(m.commitlogOffset));
  assert.equal(broker.get(sent[500].msgId).commitlogOffset, sent[500].commitlogOffset);
  broker.close();
});

test("bodies may be strings, Uint8Arrays, ArrayBuffers and other typed arrays", async () => {
  const broker = new Broker();
  const p = broker.producer("g");
  const q = { queueId: 0 };
  p.send("bin", "héllo", q);
  p.send("bin", new Uint8Array([0, 1, 2, 255]), q);
  p.send("bin", new Uint8Array([9, 8, 7]).buffer, q);
  p.send("bin", new Uint16Array([0x0201]), q);
  p.send("bin", new Uint8Array([5, 6, 7, 8]).subarray(1, 3), q);
  const c = broker.consumer({ group: "g", topic: "bin" });
  const msgs = await c.receive({ maxMessages: 10, timeoutMs: 1000 });
  assert.deepEqual(
    msgs.map((m) => [...m.body]),
    [[0x68, 0xc3, 0xa9, 0x6c, 0x6c, 0x6f], [0, 1, 2, 255], [9, 8, 7], [1, 2], [6, 7]],
  );
  assert.equal(msgs[0].text(), "héllo");
  broker.close();
});

test("bodies sent without options come back byte for byte, small and large, one by one and batched", async () => {
  const broker = new Broker({ maxMessageSize: 1 << 20 });
  broker.createTopic("bin", { queues: 1 });
  const p = broker.producer("g");
  const big = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7) % 251);
  const wide = "ü€😀".repeat(10_000); // longer in UTF-8 than a send's staging area
  const bodies = [
    "plain",
    "héllo 😀",
    wide,
    new Uint8Array([0, 1, 2, 255]),
    big,
    big.subarray(100, 300),
    new Uint8Array([9, 8, 7]).buffer,
    new Uint16Array([0x0201]),
    new DataView(new Uint8Array([4, 5, 6]).buffer, 1, 2),
  ];
  for (const b of bodies) p.send("bin", b);
  p.sendBatch("bin", ["batched", new Uint8Array([42])]);
  const expect = [
    ...bodies.map((b) =>
      typeof b === "string"
        ? [...new TextEncoder().encode(b)]
        : [...new Uint8Array(ArrayBuffer.isView(b) ? b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) : b)],
    ),
    [...new TextEncoder().encode("batched")],
    [42],
  ];
  const c = broker.consumer({ group: "g", topic: "bin" });
  const got = [];
  while (got.length < expect.length) {
    const msgs = await c.receive({ maxMessages: 32, timeoutMs: 1000 });
    if (msgs.length === 0) break;
    got.push(...msgs);
    c.ack(msgs);
  }
  assert.equal(got.length, expect.length);
  got.forEach((m, i) => assert.deepEqual([...m.body], expect[i], `body ${i}`));
  assert.equal(got[2].text(), wide);
  assert.equal(got[1].text(), "héllo 😀");
  broker.close();
});

test("options that outgrow a send's staging area arrive whole, and the sends after them too", async () => {
  const broker = new Broker({ maxMessageSize: 1 << 20 });
  broker.createTopic("opts", { queues: 1 });
  const p = broker.producer("g");
  // A send's encoding goes to a 64 KiB staging area and moves elsewhere when it
  // outgrows it: here in the middle of the properties, of the keys, and of a batch.
  const properties = {};
  for (let i = 0; i < 80; i++) properties[`name-${i}`] = "v".repeat(90) + i;
  const keys = Array.from({ length: 70 }, (_, i) => `key-${i}-${"k".repeat(90)}`);
  const body = new Uint8Array(60_000).fill(7);
  p.send("opts", body, { tags: "big", properties });
  p.send("opts", "after", { tags: "small", properties: { a: "1" } });
  p.send("opts", body, { keys });
  p.sendBatch("opts", [
    { body, properties: { n: "1" } },
    { body, properties: { n: "2" }, keys: ["last"] },
  ]);
  p.send("opts", "end");
  const c = broker.consumer({ group: "g", topic: "opts" });
  const got = [];
  while (got.length < 6) {
    const msgs = await c.receive({ maxMessages: 32, timeoutMs: 1000 });
    if (msgs.length === 0) break;
    got.push(...msgs);
    c.ack(msgs);
  }
  assert.equal(got.length, 6);
  assert.equal(got[0].tags, "big");
  assert.deepEqual(got[0].body, body);
  for (const [name, v] of Object.entries(properties)) assert.equal(got[0].properties[name], v, name);
  assert.equal(got[1].text(), "after");
  assert.equal(got[1].tags, "small");
  assert.equal(got[1].properties.a, "1");
  assert.equal(got[1].properties["name-0"], undefined);
  assert.deepEqual(got[2].keys, keys);
  assert.deepEqual([got[3].properties.n, got[4].properties.n], ["1", "2"]);
  assert.deepEqual(got[4].keys, ["last"]);
  assert.equal(got[5].text(), "end");
  assert.deepEqual(got[5].keys, []);
  broker.close();
});

test("a single key may be a string; query finds messages by key, oldest first", async () => {
  const broker = new Broker();
  const p = broker.producer("g");
  const a = p.send("orders", "a", { keys: "order-1" });
  p.send("orders", "b", { keys: ["order-2"] });
  const c2 = p.send("orders", "c", { keys: ["order-1", "x"] });
  const found = broker.query("orders", "order-1");
  assert.deepEqual(found.map((m) => m.msgId), [a.msgId, c2.msgId]);
  assert.deepEqual(broker.query("orders", { key: "order-2" }).map(text), ["b"]);
  assert.deepEqual(broker.query("orders", "nope"), []);
  broker.close();
});

test("a key with spaces is one key per word, as RocketMQ's KEYS", async () => {
  const broker = new Broker();
  const r = broker.producer("g").send("orders", "a", { keys: "k1 k2" });
  for (const word of ["k1", "k2"]) assert.deepEqual(broker.query("orders", word).map((m) => m.msgId), [r.msgId]);
  assert.deepEqual(broker.query("orders", "k1 k2"), []);
  const [m] = await broker.consumer("c", "orders").receive({ timeoutMs: 0 });
  assert.deepEqual(m.keys, ["k1", "k2"]);
  broker.close();
});

test("get returns a stored message by id, or null", () => {
  const broker = new Broker();
  const r = broker.producer("g").send("orders", "hello", { tags: "t" });
  const m = broker.get(r.msgId);
  assert.ok(m instanceof Message);
  assert.equal(m.text(), "hello");
  assert.equal(m.tags, "t");
  assert.equal(broker.get("F".repeat(32)), null);
  broker.close();
});

test("sendBatch stores bodies and per-item options in order", async () => {
  const broker = new Broker();
  const p = broker.producer("g");
  const rs = p.sendBatch("orders", ["a", { body: "b", tags: "x" }, new Uint8Array([99])], { keys: "batch" });
  assert.equal(rs.length, 3);
  const c = broker.consumer({ group: "g", topic: "orders" });
  const msgs = await c.receive({ maxMessages: 10, timeoutMs: 1000 });
  assert.deepEqual(msgs.map((m) => m.msgId), rs.map((r) => r.msgId));
  assert.deepEqual(msgs.map(text), ["a", "b", "c"]);
  assert.equal(msgs[1].tags, "x");
  assert.deepEqual(msgs[0].keys, ["batch"]);
  broker.close();
});

test("a receive that waits resolves as soon as a message is sent", async () => {
  const broker = new Broker();
  const c = broker.consumer({ group: "g", topic: "orders" });
  const p = broker.producer("g");
  const started = Date.now();
  setTimeout(() => p.send("orders", "late"), 50);
  const msgs = await c.receive({ timeoutMs: 5000 });
  assert.deepEqual(msgs.map(text), ["late"]);
  assert.ok(Date.now() - started < 2000, "woke on the send, not at the timeout");
  broker.close();
});

test("a receive with nothing to get resolves [] after its timeout", async () => {
  const broker = new Broker();
  const c = broker.consumer({ group: "g", topic: "orders" });
  const started = Date.now();
  assert.deepEqual(await c.receive({ timeoutMs: 150 }), []);
  assert.ok(Date.now() - started >= 140);
  assert.deepEqual(await c.receive({ timeoutMs: 0 }), []);
  broker.close();
});

test("a receive that a close overtakes resolves with [], as one already waiting does", async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  for (const close of ["consumer", "broker"]) {
    for (const kind of ["consumer", "simpleConsumer"]) {
      const broker = new Broker();
      const c = kind === "consumer" ? broker.consumer({ group: "g", topic: "t" }) : broker.simpleConsumer({ group: "g", topic: "t" });
      // Long enough since the last receive that this one first yields the event loop a turn.
      await sleep(50);
      const pending = c.receive({ timeoutMs: 5000 });
      (close === "consumer" ? c : broker).close();
      assert.deepEqual(await pending, [], `${kind} closed by its ${close}`);
      await assert.rejects(c.receive({ timeoutMs: 0 }), { code: "Closed" }, "a receive after close is refused");
      broker.close();
    }
  }
  // A listener started as its consumer closes ends quietly.
  const broker = new Broker();
  const c = broker.consumer({ group: "g", topic: "t" });
  await sleep(50);
  setImmediate(() => c.close());
  const runner = c.listen(() => {});
  await sleep(100);
  await runner.stop();
  assert.equal(runner.running, false);
  broker.close();
});

test("a send whose option getter makes the engine grow its memory arrives whole", async () => {
  const broker = new Broker();
  const p = broker.producer("p");
  p.send("orders", "first");
  const others = [];
  // Opening stores mid-send grows wasm memory, which detaches the view a send is
  // being encoded into.
  const options = {
    get tags() {
      for (let i = 0; i < 3; i++) others.push(new Broker({ segmentSize: 64 << 20 }));
      return "paid";
    },
    keys: ["order-2"],
  };
  const r = p.send("orders", "second", options);
  const [b] = p.sendBatch("orders", [{ body: "third", ...options }]).slice(-1);
  for (const [res, body] of [[r, "second"], [b, "third"]]) {
    const m = broker.get(res.msgId);
    assert.deepEqual([m.text(), m.tags, m.keys], [body, "paid", ["order-2"]]);
  }
  for (const o of others) o.close();
  broker.close();
});

test("properties of any text arrive as sent, and separators are refused wherever they are", async () => {
  const broker = new Broker();
  const p = broker.producer("p");
  const properties = {
    region: "eu-west",
    "städte": "Zürich, Genève",
    emoji: "😀".repeat(40),
    long: "v".repeat(300),
    [`n${"é".repeat(70)}`]: "x",
  };
  const r = p.send("orders", "x", { properties });
  const got = broker.get(r.msgId).properties;
  for (const [name, v] of Object.entries(properties)) assert.equal(got[name], v, name);
  // A separator after a character that is not ASCII, in a name or a value.
  for (const bad of [{ k: "é\u0001x" }, { "é\u0002k": "v" }, { k: "😀".repeat(70) + "\u0002" }]) {
    assert.throws(() => p.send("orders", "x", { properties: bad }), (e) => e.code === "InvalidArgument", JSON.stringify(bad));
  }
  assert.equal(broker.lag("nobody", "orders"), 1, "the refused sends stored nothing");
  broker.close();
});

test("properties may be a Map of strings", async () => {
  const broker = new Broker();
  const p = broker.producer("p");
  const r = p.send("orders", "x", { properties: new Map([["region", "eu"]]) });
  assert.deepEqual(broker.get(r.msgId).properties.region, "eu");
  broker.close();
});

test("maxMessages bounds one receive", async () => {
  const broker = new Broker();
  const p = broker.producer("g");
  for (let i = 0; i < 10; i++) p.send("orders", `m${i}`, { queueId: 0 });
  const c = broker.consumer({ group: "g", topic: "orders" });
  const first = await c.receive({ maxMessages: 4, timeoutMs: 0 });
  assert.equal(first.length, 4);
  broker.close();
});

test("tag expressions filter what a consumer gets", async () => {
  const broker = new Broker();
  const p = broker.producer("g");
  p.send("orders", "1", { tags: "paid" });
  p.send("orders", "2", { tags: "created" });
  p.send("orders", "3", { tags: "shipped" });
  p.send("orders", "4");
  const c = broker.consumer({ group: "sms", topic: "orders", tags: "paid || shipped" });
  const got = await c.receive({ maxMessages: 10, timeoutMs: 500 });
  assert.deepEqual(got.map(text).sort(), ["1", "3"]);
  broker.close();
});

test("an sql expression over the properties filters what a consumer gets", async () => {
  const broker = new Broker();
  const p = broker.producer("g");
  p.send("orders", "small", { tags: "paid", properties: { amount: "20", region: "eu" } });
  p.send("orders", "big", { tags: "paid", properties: { amount: "250", region: "eu" } });
  p.send("orders", "big-us", { tags: "paid", properties: { amount: "900", region: "us" } });
  p.send("orders", "refund", { tags: "refund", properties: { amount: "300", region: "eu" } });
  p.send("orders", "none", { tags: "paid" });
  const c = broker.consumer({ group: "audit", topic: "orders", sql: "amount > 100 AND region = 'eu' AND TAGS = 'paid'" });
  const got = await c.receive({ maxMessages: 10, timeoutMs: 500 });
  assert.deepEqual(got.map(text), ["big"]);
  const sc = broker.simpleConsumer({ group: "us", topic: "orders", sql: "region IN ('us') OR amount IS NULL" });
  assert.deepEqual((await sc.receive({ maxMessages: 10, timeoutMs: 0 })).map(text).sort(), ["big-us", "none"]);
  for (const sql of ["", "amount >", "amount > 'x'", "region = NULL"]) {
    assert.throws(() => broker.consumer({ group: "bad", topic: "orders", sql }), (e) => e instanceof InvalidArgumentError && /SQL92/.test(e.message), sql);
  }
  assert.throws(() => broker.consumer({ group: "bad", topic: "orders", tags: "paid", sql: "amount > 1" }), InvalidArgumentError);
  assert.throws(() => broker.consumer({ group: "bad", topic: "orders", sql: 5 }), TypeError);
  broker.close();
});

test("every group gets every message; ack clears the group's lag", async () => {
  const broker = new Broker();
  const p = broker.producer("g");
  for (const b of ["a", "b", "c"]) p.send("orders", b);
  const sms = broker.consumer({ group: "sms", topic: "orders" });
  const mail = broker.consumer({ group: "mail", topic: "orders" });
  const s = await sms.receive({ maxMessages: 10, timeoutMs: 500 });
  const m = await mail.receive({ maxMessages: 10, timeoutMs: 500 });
  assert.deepEqual(s.map(text).sort(), ["a", "b", "c"]);
  assert.deepEqual(m.map(text).sort(), ["a", "b", "c"]);
  assert.equal(broker.lag("sms", "orders"), 3, "received but not acked is still lag");
  sms.ack(s[0]);
  assert.equal(broker.lag("sms", "orders"), 2);
  sms.ack(s.slice(1));
  assert.equal(broker.lag("sms", "orders"), 0);
  assert.equal(broker.lag("mail", "orders"), 3);
  broker.close();
});

test("consumers of one group share the messages (clustering)", async () => {
  const broker = new Broker();
  broker.createTopic("orders", { queues: 4 });
  const a = broker.consumer({ group: "workers", topic: "orders" });
  const b = broker.consumer({ group: "workers", topic: "orders" });
  const p = broker.producer("g");
  for (let i = 0; i < 40; i++) p.send("orders", `m${i}`, { queueId: i % 4 });
  const got = [];
  for (let round = 0; round < 5; round++) {
    for (const c of [a, b]) {
      const msgs = await c.receive({ maxMessages: 40, timeoutMs: 0 });
      c.ack(msgs);
      got.push(...msgs.map(text));
    }
  }
  assert.equal(got.length, 40, "each message once");
  assert.equal(new Set(got).size, 40);
  broker.close();
});

test("broadcasting gives every consumer of the group every message", async () => {
  const broker = new Broker();
  const a = broker.consumer({ group: "cache", topic: "prices", broadcasting: true, consumerId: "a" });
  const b = broker.consumer({ group: "cache", topic: "prices", broadcasting: true, consumerId: "b" });
  broker.producer("g").send("prices", "p1");
  assert.deepEqual((await a.receive({ timeoutMs: 500 })).map(text), ["p1"]);
  assert.deepEqual((await b.receive({ timeoutMs: 500 })).map(text), ["p1"]);
  broker.close();
});

test("a sharding key keeps messages in one queue, in order; orderly holds a queue until ack", async () => {
  const broker = new Broker();
  broker.createTopic("orders", { queues: 8 });
  const p = broker.producer("g");
  const rs = ["created", "paid", "shipped"].map((s) => p.send("orders", s, { shardingKey: "order-42" }));
  assert.equal(new Set(rs.map((r) => r.queueId)).size, 1);
  assert.deepEqual(rs.map((r) => r.queueOffset), [rs[0].queueOffset, rs[0].queueOffset + 1, rs[0].queueOffset + 2]);
  const c = broker.consumer({ group: "g", topic: "orders", orderly: true });
  const seen = [];
  for (let i = 0; i < 3; i++) {
    const msgs = await c.receive({ maxMessages: 10, timeoutMs: 500 });
    assert.equal(msgs.length, 1, "one message of a queue in flight at a time");
    assert.deepEqual(await c.receive({ maxMessages: 10, timeoutMs: 0 }), [], "nothing more before the ack");
    seen.push(text(msgs[0]));
    c.ack(msgs[0]);
  }
  assert.deepEqual(seen, ["created", "paid", "shipped"]);
  broker.close();
});

test("queueId picks the queue", () => {
  const broker = new Broker();
  broker.createTopic("orders", { queues: 4 });
  assert.equal(broker.producer("g").send("orders", "x", { queueId: 3 }).queueId, 3);
  broker.close();
});

test("createTopic is idempotent and grows, never shrinks; topics lists them", () => {
  const broker = new Broker();
  broker.createTopic("orders", { queues: 8 });
  broker.createTopic("orders", { queues: 2 });
  broker.createTopic("events");
  const topics = Object.fromEntries(broker.topics().map((t) => [t.name, t.queues]));
  assert.equal(topics.orders, 8);
  assert.equal(topics.events, 4);
  broker.createTopic("orders", { queues: 16 });
  assert.equal(broker.topics().find((t) => t.name === "orders").queues, 16);
  broker.close();
});

test('start: "latest" skips what was sent before the group existed; earliest is the default', async () => {
  const broker = new Broker();
  broker.createTopic("orders", { queues: 4 });
  const p = broker.producer("g");
  for (let q = 0; q < 4; q++) p.send("orders", `old ${q}`, { queueId: q });
  const late = broker.consumer({ group: "late", topic: "orders", start: "latest" });
  const early = broker.consumer({ group: "early", topic: "orders" });
  for (let q = 0; q < 4; q++) p.send("orders", `new ${q}`, { queueId: q });
  const news = ["new 0", "new 1", "new 2", "new 3"];
  const olds = ["old 0", "old 1", "old 2", "old 3"];
  assert.deepEqual((await late.receive({ maxMessages: 10, timeoutMs: 300 })).map(text).sort(), news);
  assert.deepEqual((await early.receive({ maxMessages: 10, timeoutMs: 300 })).map(text).sort(), [...news, ...olds].sort());
  broker.close();
});

test("a nacked message stays in lag until a redelivery is acked or dead-letters", async () => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const broker = new Broker({ clock });
  const p = broker.producer("g");
  for (const b of ["a", "b", "c"]) p.send("orders", b);
  const c = broker.consumer({ group: "sms", topic: "orders", maxReconsumeTimes: 1 });
  const got = await c.receive({ maxMessages: 10, timeoutMs: 500 });
  assert.equal(got.length, 3);
  // (Messages of different queues come in no set order.)
  const byText = Object.fromEntries(got.map((m) => [text(m), m]));
  c.ack(byText.a);
  c.nack(byText.b);
  c.nack(byText.c, { delayMs: 2000 });
  assert.equal(broker.lag("sms", "orders"), 2, "nacked is not acked");
  const row = broker.stats().groups.find((g) => g.group === "sms" && g.topic === "orders");
  assert.equal(row.lag, 2);
  clock.advance(10_000);
  broker.tick();
  const again = await c.receive({ maxMessages: 10, timeoutMs: 500 });
  assert.deepEqual(again.map(text).sort(), ["b", "c"]);
  assert.equal(broker.lag("sms", "orders"), 2);
  c.ack(again[0]);
  assert.equal(broker.lag("sms", "orders"), 1);
  c.nack(again[1]);
  assert.equal(broker.lag("sms", "orders"), 0, "a dead letter is no longer behind");
  broker.close();
});

test("start and resetOffset take a time: epoch ms or a Date", async () => {
  const T0 = Date.UTC(2026, 0, 1);
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  broker.createTopic("orders", { queues: 2 });
  const p = broker.producer("g");
  for (const [i, body] of ["a", "b", "c"].entries()) {
    p.send("orders", body, { queueId: i % 2 });
    clock.advance(1000);
  }
  const fromMs = broker.consumer({ group: "ms", topic: "orders", start: T0 + 500 });
  assert.deepEqual((await fromMs.receive({ maxMessages: 10, timeoutMs: 300 })).map(text).sort(), ["b", "c"]);
  const fromDate = broker.consumer({ group: "date", topic: "orders", start: new Date(T0 + 1500) });
  const got = await fromDate.receive({ maxMessages: 10, timeoutMs: 300 });
  assert.deepEqual(got.map(text), ["c"]);
  fromDate.ack(got);
  fromDate.close();
  broker.resetOffset("date", "orders", new Date(T0));
  assert.equal(broker.lag("date", "orders"), 3);
  broker.resetOffset("date", "orders", { to: "latest" });
  assert.equal(broker.lag("date", "orders"), 0);
  broker.close();
});

test("resetOffset to earliest delivers acked messages again", async () => {
  const broker = new Broker();
  const p = broker.producer("g");
  p.send("orders", "a");
  p.send("orders", "b");
  const c = broker.consumer({ group: "g", topic: "orders" });
  c.ack(await c.receive({ maxMessages: 10, timeoutMs: 300 }));
  assert.equal(broker.lag("g", "orders"), 0);
  c.close();
  broker.resetOffset("g", "orders", "earliest");
  assert.equal(broker.lag("g", "orders"), 2);
  const again = broker.consumer({ group: "g", topic: "orders" });
  assert.deepEqual((await again.receive({ maxMessages: 10, timeoutMs: 300 })).map(text).sort(), ["a", "b"]);
  broker.close();
});

test("stats reports queues, groups and lag", async () => {
  const broker = new Broker();
  broker.createTopic("orders", { queues: 2 });
  const p = broker.producer("g");
  for (let i = 0; i < 5; i++) p.send("orders", `m${i}`);
  const c = broker.consumer({ group: "sms", topic: "orders" });
  c.ack(await c.receive({ maxMessages: 2, timeoutMs: 300 }));
  const s = broker.stats();
  const orders = s.topics.orders;
  assert.equal(orders.queues.length, 2);
  assert.equal(orders.queues.reduce((n, q) => n + q.maxOffset - q.minOffset, 0), 5);
  assert.equal(orders.messagesIn, 5);
  const g = s.groups.find((x) => x.group === "sms" && x.topic === "orders");
  assert.ok(g, "the group shows in stats");
  assert.equal(g.lag, 3);
  assert.equal(g.consumers, 1);
  assert.ok(s.commitlogBytes > 0);
  assert.equal(typeof s.pendingDelayed, "number");
  assert.equal(typeof s.pendingTransactions, "number");
  broker.close();
});

test("for await yields messages until the consumer closes", async () => {
  const broker = new Broker();
  const p = broker.producer("g");
  for (const b of ["a", "b", "c"]) p.send("orders", b, { queueId: 0 });
  const c = broker.consumer({ group: "g", topic: "orders" });
  const seen = [];
  setTimeout(() => p.send("orders", "d", { queueId: 0 }), 50);
  for await (const m of c) {
    seen.push(text(m));
    c.ack(m);
    if (seen.length === 4) setTimeout(() => c.close(), 20);
  }
  assert.deepEqual(seen, ["a", "b", "c", "d"]);
  assert.equal(c.closed, true);
  broker.close();
});

test("break leaves a for await loop", async () => {
  const broker = new Broker();
  broker.producer("g").send("orders", "a");
  const c = broker.consumer({ group: "g", topic: "orders" });
  for await (const m of c) {
    c.ack(m);
    break;
  }
  assert.equal(broker.lag("g", "orders"), 0);
  broker.close();
});

test("a waiting receive resolves [] when its consumer or broker closes", async () => {
  const broker = new Broker();
  const c1 = broker.consumer({ group: "g1", topic: "orders" });
  const c2 = broker.consumer({ group: "g2", topic: "orders" });
  const started = Date.now();
  const w1 = c1.receive({ timeoutMs: 10_000 });
  const w2 = c2.receive({ timeoutMs: 10_000 });
  setTimeout(() => c1.close(), 30);
  assert.deepEqual(await w1, []);
  setTimeout(() => broker.close(), 30);
  assert.deepEqual(await w2, []);
  assert.ok(Date.now() - started < 5000);
  c1.close();
  broker.close();
});

test("acking lists settles each message once: a whole batch, a partly acked one, two batches", async () => {
  const broker = new Broker();
  broker.createTopic("t", { queues: 1 });
  const p = broker.producer("p");
  p.sendBatch("t", Array.from({ length: 20 }, (_, i) => `m${i}`));
  const c = broker.consumer({ group: "g", topic: "t", maxInFlight: 100 });
  const first = await c.receive({ maxMessages: 8, timeoutMs: 1000 });
  const second = await c.receive({ maxMessages: 8, timeoutMs: 1000 });
  const third = await c.receive({ maxMessages: 4, timeoutMs: 1000 });
  assert.deepEqual([first.length, second.length, third.length], [8, 8, 4]);
  assert.equal(broker.lag("g", "t"), 20);
  // A whole received batch in one call.
  c.ack(first);
  assert.equal(broker.lag("g", "t"), 12);
  c.ack(first); // again: nothing changes
  assert.equal(broker.lag("g", "t"), 12);
  // A batch partly acked already, then whole; then messages of two batches, out of order.
  c.ack(second[3]);
  c.ack(second);
  assert.equal(broker.lag("g", "t"), 4);
  c.ack([third[2], third[0], third[3], third[1]]);
  assert.equal(broker.lag("g", "t"), 0);
  assert.deepEqual((await c.receive({ maxMessages: 32, timeoutMs: 0 })).length, 0);
  broker.close();
});

test("consumers, simple consumers and moveBacklog also take Python's positional form", async () => {
  const broker = new Broker({ clock: new ManualClock(null) });
  const p = broker.producer("p");
  p.send("orders", "a", { tags: "paid" });
  p.send("orders", "b", { tags: "shipped" });
  const c = broker.consumer("sms", "orders", { tags: "paid", ackTimeoutMs: 900_000 });
  assert.equal(c.group, "sms");
  assert.deepEqual((await c.receive({ timeoutMs: 0 })).map((m) => m.text()), ["a"]);
  const sc = broker.simpleConsumer("billing", "orders", { invisibleDurationMs: 30_000 });
  assert.equal(sc.topic, "orders");
  const got = await sc.receive({ maxMessages: 8, timeoutMs: 0 });
  assert.equal(got.length, 2);
  assert.throws(() => broker.consumer("sms", "orders", "paid"), TypeError);
  const lagging = broker.consumer("later", "orders");
  lagging.close();
  assert.equal(broker.moveBacklog("later", "orders", "orders-wide", { queues: 8 }), 2);
  broker.close();
});

test("a receive of 0 messages ends at once with none, and takes nothing", async () => {
  const broker = new Broker();
  broker.producer("p").send("orders", "waiting");
  for (const c of [broker.consumer({ group: "g", topic: "orders" }), broker.simpleConsumer("s", "orders")]) {
    const started = performance.now();
    assert.deepEqual(await c.receive({ maxMessages: 0, timeoutMs: 5000 }), []);
    assert.ok(performance.now() - started < 2500, "it did not wait for its timeout");
    const [m] = await c.receive({ maxMessages: 1, timeoutMs: 1000 });
    assert.equal(text(m), "waiting");
  }
  broker.close();
});

test("receive: timeoutMs Infinity waits until a message comes (or a close); null options take their defaults", async () => {
  const broker = new Broker();
  broker.createTopic("orders", { queues: null });
  for (const [c, topic] of [[broker.consumer({ group: "g", topic: "orders" }), "orders"], [broker.simpleConsumer("s", "later"), "later"]]) {
    const started = performance.now();
    setTimeout(() => broker.producer("p").send(topic, "late"), 1200);
    const got = await c.receive({ maxMessages: null, timeoutMs: Infinity });
    assert.ok(performance.now() - started >= 1100, "it waited past the default timeout");
    assert.deepEqual(got.map(text), ["late"]);
    c.ack(got);
    await assert.rejects(c.receive({ timeoutMs: null }), TypeError, "null could mean the default or no limit");
    setTimeout(() => c.close(), 100);
    assert.deepEqual(await c.receive({ timeoutMs: Infinity }), [], "a close ends it");
  }
  await broker.consumer({ group: "h", topic: "orders" }).listen(() => {}, { concurrency: null }).stop();
  broker.close();
});
