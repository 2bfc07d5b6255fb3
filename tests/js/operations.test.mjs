// Operations (RocketMQ's mqadmin) from JavaScript: the backlog drill (also killed
// with SIGKILL and run again), browsing, messages by time, a group's progress, dead
// letters and their redrive, deleting a topic, the store's totals, console logging.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Broker, InvalidArgumentError, ManualClock, TopicNotFoundError, setLogLevel } from "pocketmq";

const url = JSON.stringify(import.meta.resolve("pocketmq"));
const T0 = Date.UTC(2026, 0, 1);

function store(t) {
  const dir = mkdtempSync(join(tmpdir(), "pocketmq-ops-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "data");
}

/** Sends `n` messages round `keys` sharding keys; body `k<key>/<seq>`. */
function fill(broker, n, keys = 10, topic = "orders") {
  const p = broker.producer("shop");
  const seq = new Array(keys).fill(0);
  for (let i = 0; i < n; i++) {
    const k = (i * 7) % keys;
    p.send(topic, `k${k}/${String(seq[k]++).padStart(6, "0")}`, {
      shardingKey: `k${k}`,
      tags: "t",
      keys: `order-${i}`,
      properties: { n: String(i) },
    });
  }
}

/** Each original at most once in `topic` (exactly `expect`, if given), each key in order in one queue. */
function checkCopies(broker, topic, expect) {
  const copies = broker.browse(topic, { limit: 10_000_000 });
  const bodies = copies.map((m) => m.text());
  assert.equal(new Set(bodies).size, bodies.length, "a message was copied twice");
  const last = new Map();
  for (const m of [...copies].sort((a, b) => a.queueId - b.queueId || a.queueOffset - b.queueOffset)) {
    const [key, seq] = m.text().split("/");
    const prev = last.get(key);
    if (prev) {
      assert.equal(prev.queueId, m.queueId, `key ${key} in one queue`);
      assert.ok(prev.seq < seq, `key ${key} in order`);
    }
    last.set(key, { queueId: m.queueId, seq });
  }
  if (expect) assert.deepEqual(new Set(bodies), expect);
  return bodies.length;
}

async function drain(consumer) {
  const got = [];
  for (;;) {
    const msgs = await consumer.receive({ maxMessages: 64, timeoutMs: 50 });
    if (msgs.length === 0) return got;
    consumer.ack(msgs);
    got.push(...msgs);
  }
}

test("moveBacklog moves the unconsumed messages with their fields, and the group past them", async () => {
  const broker = new Broker();
  broker.createTopic("orders", { queues: 4 });
  fill(broker, 300);
  const c = broker.consumer({ group: "g", topic: "orders" });
  const first = await c.receive({ maxMessages: 20, timeoutMs: 100 });
  c.ack(first);
  const originals = new Map(broker.browse("orders", { limit: 1000 }).map((m) => [m.text(), m]));
  const lag = broker.lag("g", "orders");
  const calls = [];
  const moved = broker.moveBacklog("g", "orders", { to: "orders-wide", queues: 16, onProgress: (d, t) => calls.push([d, t]) });
  assert.equal(moved, lag);
  assert.deepEqual(calls[0], [0, lag]);
  assert.deepEqual(calls.at(-1), [lag, lag]);
  assert.equal(broker.lag("g", "orders"), 0);
  assert.equal(broker.topics().find((t) => t.name === "orders-wide").queues, 16);
  const acked = new Set(first.map((m) => m.text()));
  assert.equal(checkCopies(broker, "orders-wide", new Set([...originals.keys()].filter((b) => !acked.has(b)))), lag);
  for (const copy of broker.browse("orders-wide", { limit: 1000 })) {
    const orig = originals.get(copy.text());
    assert.equal(copy.msgId, orig.msgId);
    assert.deepEqual([copy.tags, copy.keys, copy.properties.n], [orig.tags, orig.keys, orig.properties.n]);
    assert.equal(copy.properties.MOVED_FROM, `orders:${orig.queueId}:${orig.queueOffset}`);
  }
  assert.throws(() => c.ack(broker.browse("orders-wide")[0]), InvalidArgumentError);
  assert.throws(() => broker.moveBacklog("g", "orders", { to: "orders" }), InvalidArgumentError);
  assert.throws(() => broker.moveBacklog("g", "nope", { to: "wide" }), TopicNotFoundError);
  assert.throws(() => broker.moveBacklog("g", "orders", {}), TypeError);
  assert.throws(() => broker.moveBacklog("g", "orders", { to: "w", onProgress: 3 }), TypeError);
  broker.close();
});

test("an exception from onProgress stops the drill with the group past what was copied", () => {
  const broker = new Broker();
  broker.createTopic("orders", { queues: 2 });
  fill(broker, 10_000, 5);
  const stop = new Error("stop");
  assert.throws(
    () => broker.moveBacklog("g", "orders", { to: "wide", onProgress: (done) => { if (done > 0) throw stop; } }),
    (e) => e === stop,
  );
  const copied = broker.browse("wide", { limit: 100_000 }).length;
  assert.ok(copied > 0 && copied < 10_000, `${copied}`);
  assert.equal(broker.lag("g", "orders"), 10_000 - copied);
  assert.equal(broker.moveBacklog("g", "orders", { to: "wide" }), 10_000 - copied);
  checkCopies(broker, "wide", new Set(broker.browse("orders", { limit: 100_000 }).map((m) => m.text())));
  broker.close();
});

const CHILD = (path) => `
  import { Broker } from ${url};
  const broker = new Broker({ path: ${JSON.stringify(path)} });
  console.log("OPEN");
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const moved = broker.moveBacklog("g", "orders", { to: "orders-wide", queues: 12, onProgress: (d, t) => {
    console.log("STEP " + d + " " + t);
    Atomics.wait(pause, 0, 0, 3);
  } });
  console.log("DONE " + moved);
  broker.close();
`;

/** Runs the drill in a child and kills it (SIGKILL) after `steps` progress lines (or once open). */
function killDrill(path, steps, atOpen, delayMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", CHILD(path)], { stdio: ["ignore", "pipe", "ignore"] });
    let buf = "";
    let seen = 0;
    let finished = false;
    let killing = false;
    const kill = () => {
      if (killing) return;
      killing = true;
      setTimeout(() => child.kill("SIGKILL"), delayMs);
    };
    child.stdout.on("data", (d) => {
      buf += d;
      for (;;) {
        const i = buf.indexOf("\n");
        if (i < 0) break;
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith("DONE")) finished = true;
        if (line === "OPEN" && atOpen) kill();
        if (line.startsWith("STEP") && ++seen > steps) kill();
      }
    });
    child.on("error", reject);
    child.on("exit", () => resolve(finished));
  });
}

test("moveBacklog killed with SIGKILL at random points, then run again: every message exactly once", async (t) => {
  const path = store(t);
  let unconsumed;
  {
    const b = new Broker({ path });
    b.createTopic("orders", { queues: 3 });
    fill(b, 40_000, 30);
    const c = b.consumer({ group: "g", topic: "orders" });
    const acked = new Set();
    for (let i = 0; i < 10; i++) {
      const got = await c.receive({ maxMessages: 100, timeoutMs: 100 });
      c.ack(got);
      for (const m of got) acked.add(m.text());
    }
    c.close();
    unconsumed = new Set(b.browse("orders", { limit: 100_000 }).map((m) => m.text()).filter((x) => !acked.has(x)));
    b.close();
  }
  let killedMidDrill = 0;
  for (let cycle = 0; cycle < 20; cycle++) {
    const finished = await killDrill(path, (cycle * 7) % 3, cycle % 5 === 4, (cycle * 13) % 5);
    if (!finished) killedMidDrill++;
    const b = new Broker({ path });
    if (b.topics().some((x) => x.name === "orders-wide")) checkCopies(b, "orders-wide");
    b.close();
  }
  assert.ok(killedMidDrill >= 10, `killed mid-drill ${killedMidDrill} times`);
  const b = new Broker({ path });
  b.moveBacklog("g", "orders", { to: "orders-wide", queues: 12 });
  assert.equal(checkCopies(b, "orders-wide", unconsumed), unconsumed.size);
  assert.equal(b.lag("g", "orders"), 0);
  b.close();
});

test("browse reads without consuming; queryByTime finds a window of store time", () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  broker.createTopic("orders", { queues: 2 });
  const p = broker.producer("p");
  for (let i = 0; i < 30; i++) {
    p.send("orders", `m${String(i).padStart(2, "0")}`, { queueId: i % 2 });
    clock.advance(1000);
  }
  assert.equal(broker.browse("orders", { limit: 100 }).length, 30);
  assert.deepEqual(broker.browse("orders", { queueId: 1, offset: 2, limit: 2 }).map((m) => m.text()), ["m05", "m07"]);
  assert.equal(broker.browse("orders").length, 30, "32 by default, 30 there");
  assert.equal(broker.browse("orders", { limit: null }).length, 30, "null: the default");
  assert.equal(broker.queryByTime("orders", T0, T0 + 60_000, { limit: null }).length, 30);
  assert.equal(broker.lag("g", "orders"), 30, "nothing consumed");
  const window = broker.queryByTime("orders", T0 + 10_000, new Date(T0 + 20_000));
  assert.deepEqual(window.map((m) => m.text()), Array.from({ length: 10 }, (_, i) => `m${10 + i}`));
  assert.equal(broker.queryByTime("orders", T0, T0 + 60_000, { limit: 3 }).length, 3);
  assert.throws(() => broker.browse("orders", { queueId: 7 }), InvalidArgumentError);
  assert.throws(() => broker.browse("orders", { queueId: "1" }), TypeError);
  assert.throws(() => broker.browse("orders", { limit: -1 }), InvalidArgumentError);
  assert.throws(() => broker.browse("nope"), TopicNotFoundError);
  broker.close();
});

test("progress shows each queue like mqadmin consumerProgress", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  broker.createTopic("orders", { queues: 2 });
  const p = broker.producer("p");
  for (let i = 0; i < 6; i++) {
    p.send("orders", `m${i}`, { queueId: 0 });
    clock.advance(1000);
  }
  const c = broker.consumer({ group: "g", topic: "orders" });
  const got = await c.receive({ maxMessages: 4, timeoutMs: 100 });
  c.ack(got.slice(0, 2));
  const rows = broker.progress("g", "orders");
  assert.deepEqual(rows[0], {
    queueId: 0,
    brokerOffset: 6,
    consumerOffset: 2,
    lag: 4,
    inflight: 2,
    lastStoreTimestamp: T0 + 1000,
    expired: 0,
  });
  assert.equal(rows[1].lastStoreTimestamp, null);
  broker.close();
});

test("dead letters are listed and redriven to their group alone", async () => {
  const broker = new Broker();
  const c = broker.consumer({ group: "g", topic: "orders", maxReconsumeTimes: 0 });
  const other = broker.consumer({ group: "h", topic: "orders" });
  const id = broker.producer("p").send("orders", "poison", { tags: "bad" }).msgId;
  await drain(other);
  for (const m of await c.receive({ timeoutMs: 100 })) c.nack(m);
  const dead = broker.deadLetters("g");
  assert.deepEqual(dead.map((m) => [m.msgId, m.properties.RETRY_TOPIC]), [[id, "orders"]]);
  const seen = [];
  assert.equal(broker.redrive("g", { onProgress: (d, t) => seen.push([d, t]) }), 1);
  assert.deepEqual(seen.at(-1), [1, 1]);
  assert.deepEqual(broker.deadLetters("g", { limit: 10 }), []);
  assert.deepEqual(broker.deadLetters("g", { limit: null }), []);
  const back = await drain(c);
  assert.deepEqual(back.map((m) => [m.msgId, m.topic, m.reconsumeTimes]), [[id, "orders", 0]]);
  assert.deepEqual(await drain(other), []);
  assert.equal(broker.redrive("g"), 0);
  broker.close();
});

test("a simple group's dead letters are redriven to its members", async () => {
  const broker = new Broker();
  const id = broker.producer("p").send("orders", "poison", { tags: "pay" }).msgId;
  const sc = broker.simpleConsumer({ group: "billing", topic: "orders", maxDeliveryAttempts: 1 });
  const other = broker.simpleConsumer({ group: "audit", topic: "orders" });
  for (const m of await other.receive({ timeoutMs: 0 })) other.ack(m);
  const [m] = await sc.receive({ timeoutMs: 0 });
  sc.changeInvisibleDuration(m, 0);
  broker.tick();
  assert.deepEqual(broker.deadLetters("billing").map((d) => d.msgId), [id]);
  assert.equal(broker.redrive("billing"), 1);
  const back = await sc.receive({ timeoutMs: 0 });
  assert.deepEqual(back.map((b) => [b.msgId, b.topic, b.deliveryAttempt]), [[id, "orders", 1]]);
  sc.ack(back[0]);
  assert.deepEqual(await other.receive({ timeoutMs: 0 }), []);
  assert.deepEqual(await sc.receive({ timeoutMs: 0 }), []);
  broker.close();
});

test("a deleted topic is unreachable and its groups reset; the store's totals", async (t) => {
  const path = store(t);
  {
    const broker = new Broker({ path });
    const r = broker.producer("p").send("orders", "old", { keys: "k" });
    broker.producer("p").send("payments", "kept");
    const c = broker.consumer({ group: "g", topic: "orders" });
    // Deleted under a live consumer: it gets nothing more of the old topic.
    broker.deleteTopic("orders");
    assert.deepEqual(await c.receive({ timeoutMs: 0 }), []);
    c.close();
    assert.equal(broker.get(r.msgId), null);
    assert.deepEqual(broker.query("orders", "k"), []);
    assert.throws(() => broker.deleteTopic("orders"), TopicNotFoundError);
    assert.equal(broker.stats().messagesIn, 1);
    broker.close();
  }
  const broker = new Broker({ path });
  assert.deepEqual(broker.topics().map((x) => x.name), ["payments"]);
  const s = broker.stats();
  assert.equal(s.messagesIn, 1);
  assert.equal(s.messagesRetained, 1);
  broker.producer("p").send("orders", "new");
  assert.deepEqual((await drain(broker.consumer({ group: "g", topic: "orders" }))).map((m) => m.text()), ["new"]);
  broker.close();
});

test("dead letters reach the console as warnings; setLogLevel picks what else does", async () => {
  const warned = [];
  const infos = [];
  const { warn, info } = console;
  console.warn = (...a) => warned.push(a.join(" "));
  console.info = (...a) => infos.push(a.join(" "));
  try {
    const broker = new Broker();
    const c = broker.consumer({ group: "g", topic: "orders", maxReconsumeTimes: 0 });
    broker.producer("p").send("orders", "x");
    for (const m of await c.receive({ timeoutMs: 100 })) c.nack(m);
    assert.ok(warned.some((w) => w.includes("moved to %DLQ%g")), warned.join("\n"));
    broker.redrive("g");
    assert.deepEqual(infos, [], "info is off by default");
    setLogLevel("info");
    broker.moveBacklog("g", "orders", { to: "wide" });
    assert.ok(infos.some((w) => w.includes("moved")), infos.join("\n"));
    assert.throws(() => setLogLevel("loud"), InvalidArgumentError);
    broker.close();
  } finally {
    setLogLevel("warn");
    console.warn = warn;
    console.info = info;
  }
});

test("messages read without a consumer have deliveryAttempt 1 and no receipt handle", () => {
  const broker = new Broker();
  const r = broker.producer("p").send("t", "x", { keys: ["k"] });
  const read = [broker.browse("t")[0], broker.get(r.msgId), broker.query("t", "k")[0], broker.queryByTime("t", 0, Date.now() + 1000)[0]];
  for (const m of read) {
    assert.equal(m.msgId, r.msgId);
    assert.equal(m.deliveryAttempt, 1);
    assert.equal(m.receiptHandle, null);
  }
  broker.close();
});

test("one read hands out at most 64 MiB: big receives and browses return fewer, the engine stays usable", async () => {
  const broker = new Broker();
  const p = broker.producer("p");
  const body = new Uint8Array(4 << 20).fill(0x61);
  for (let i = 0; i < 20; i++) p.send("big", body);
  const c = broker.consumer({ group: "g", topic: "big" });
  const first = await c.receive({ maxMessages: 1000, timeoutMs: 0 });
  assert.equal(first.length, 16);
  assert.equal(first[0].body.length, 4 << 20);
  c.ack(first);
  assert.equal((await c.receive({ maxMessages: 1000, timeoutMs: 0 })).length, 4);
  const sc = broker.simpleConsumer({ group: "s", topic: "big" });
  assert.equal((await sc.receive({ maxMessages: 32, timeoutMs: 0 })).length, 16);
  assert.equal(broker.browse("big", { limit: 1000 }).length, 16);
  assert.equal(p.send("big", "still usable").status, "SEND_OK");
  broker.close();
});
