// Bad input gets a typed error: a TypeError for a wrong type, an Error subclass
// with a `code` for everything the engine refuses. No call may trap the wasm
// engine (a panic would surface as a WebAssembly.RuntimeError).
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  Broker,
  ManualClock,
  TxState,
  PocketMQError,
  InvalidArgumentError,
  MessageTooLargeError,
  TopicNotFoundError,
  StoreLockedError,
  StoreCorruptedError,
  ClosedError,
  IoError,
  DiskFullError,
  RetryLater,
} from "pocketmq";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const code = (c, cls) => (err) => {
  assert.ok(err instanceof cls, `${err?.constructor?.name}: ${err?.message}`);
  assert.ok(err instanceof PocketMQError);
  assert.ok(err instanceof Error);
  assert.equal(err.code, c);
  assert.equal(err.name, cls.name);
  assert.equal(typeof err.message, "string");
  return true;
};
const invalid = code("InvalidArgument", InvalidArgumentError);

test("every error class is an Error with the code of its kind", () => {
  const kinds = {
    InvalidArgument: InvalidArgumentError,
    MessageTooLarge: MessageTooLargeError,
    TopicNotFound: TopicNotFoundError,
    StoreLocked: StoreLockedError,
    StoreCorrupted: StoreCorruptedError,
    Closed: ClosedError,
    Io: IoError,
    DISK_FULL: DiskFullError,
  };
  for (const [c, cls] of Object.entries(kinds)) {
    const e = new cls("x");
    assert.ok(e instanceof PocketMQError && e instanceof Error);
    assert.equal(e.code, c);
    assert.equal(e.name, cls.name);
  }
});

test("a body over maxMessageSize is MessageTooLarge", () => {
  const broker = new Broker({ maxMessageSize: 16 });
  const p = broker.producer("g");
  p.send("orders", "x".repeat(16));
  assert.throws(() => p.send("orders", "x".repeat(17)), code("MessageTooLarge", MessageTooLargeError));
  broker.close();
});

test("the default limit is 4 MiB", () => {
  const broker = new Broker();
  const p = broker.producer("g");
  p.send("orders", new Uint8Array(4 * 1024 * 1024));
  assert.throws(() => p.send("orders", new Uint8Array(4 * 1024 * 1024 + 1)), code("MessageTooLarge", MessageTooLargeError));
  broker.close();
});

test("sending to a missing topic without autoCreateTopics is TopicNotFound", () => {
  const broker = new Broker({ autoCreateTopics: false });
  const p = broker.producer("g");
  assert.throws(() => p.send("orders", "x"), code("TopicNotFound", TopicNotFoundError));
  broker.createTopic("orders");
  assert.equal(p.send("orders", "x").topic, "orders");
  broker.close();
});

test("calls after close are Closed; close twice is harmless", async () => {
  const broker = new Broker();
  const p = broker.producer("g");
  const c = broker.consumer({ group: "g", topic: "orders" });
  p.send("orders", "a");
  p.send("orders", "b");
  const got = await c.receive({ maxMessages: 2, timeoutMs: 0 });
  assert.equal(got.length, 2);
  broker.close();
  broker.close();
  assert.equal(broker.closed, true);
  const closed = code("Closed", ClosedError);
  assert.throws(() => c.ack(got[0]), closed, "an ack after close is refused");
  assert.throws(() => c.ack(got), closed, "so is an ack of a batch");
  assert.throws(() => p.send("orders", "x"), closed);
  assert.throws(() => broker.producer("g"), closed);
  assert.throws(() => broker.consumer({ group: "g", topic: "orders" }), closed);
  await assert.rejects(c.receive({ timeoutMs: 0 }), closed);
});

test("a closed consumer's receive is Closed", async () => {
  const broker = new Broker();
  const c = broker.consumer({ group: "g", topic: "orders" });
  c.close();
  c.close();
  await assert.rejects(c.receive({ timeoutMs: 0 }), code("Closed", ClosedError));
  assert.throws(() => c.listen(async () => {}), code("Closed", ClosedError));
  const s = broker.simpleConsumer({ group: "s", topic: "orders" });
  broker.close();
  assert.throws(() => s.listen(async () => {}), code("Closed", ClosedError));
});

test("a message acked through the wrong consumer is refused and stays ackable", async () => {
  const broker = new Broker();
  const other = new Broker();
  broker.producer("p").send("orders", "x");
  const c = broker.consumer({ group: "g", topic: "orders" });
  const [m] = await c.receive({ timeoutMs: 0 });
  // Another broker's consumer of the same group, a simple consumer's message given to
  // a classic consumer, a browsed message in an atomic block: typed errors.
  assert.throws(() => other.consumer({ group: "g", topic: "orders" }).ack(m), invalid);
  broker.producer("p").send("orders", "y");
  const s = broker.simpleConsumer({ group: "s", topic: "orders" });
  const [fromSimple] = await s.receive({ timeoutMs: 0 });
  assert.throws(() => c.ack(fromSimple), invalid);
  assert.throws(() => broker.atomic((tx) => tx.ack(c, fromSimple)), invalid);
  assert.throws(() => broker.atomic((tx) => tx.ack(c, broker.browse("orders")[0])), invalid);
  c.ack(m);
  assert.equal(broker.lag("g", "orders"), 1, "x acked, y not yet received");
  broker.close();
  other.close();
});

test("bad topic names and reserved topics are InvalidArgument", () => {
  const broker = new Broker();
  const p = broker.producer("g");
  for (const t of ["", "has space", "x".repeat(128), "semi;colon", "%RETRY%g", "RMQ_SYS_TRANS_HALF_TOPIC", "SCHEDULE_TOPIC_XXXX"]) {
    assert.throws(() => p.send(t, "x"), invalid, `topic ${JSON.stringify(t)}`);
  }
  assert.throws(() => broker.createTopic("bad topic"), invalid);
  p.send("A-z_0|9%ok", "x");
  broker.close();
});

test("out-of-range values are InvalidArgument", async () => {
  const broker = new Broker();
  const p = broker.producer("g");
  assert.throws(() => p.send("orders", ""), invalid, "an empty body, as RocketMQ");
  assert.throws(() => p.send("orders", new Uint8Array(0)), invalid);
  assert.throws(() => p.send("orders", "x", { delayLevel: -1 }), invalid);
  assert.throws(() => p.send("orders", "x", { delayLevel: 1.5 }), invalid);
  assert.throws(() => p.send("orders", "x", { queueId: -1 }), invalid);
  assert.throws(() => p.send("orders", "x", { queueId: 2 ** 40 }), invalid);
  assert.throws(() => p.send("orders", "x", { deliverAt: NaN }), invalid);
  assert.throws(() => p.send("orders", "x", { deliverAt: new Date("nope") }), invalid);
  assert.throws(() => p.send("orders", "x", { delayMs: -5 }), invalid);
  assert.throws(() => p.send("orders", "x", { delayMs: Infinity }), invalid);
  assert.throws(() => p.send("orders", "x", { delayMs: 10, delayLevel: 2 }), invalid);
  assert.throws(() => p.send("orders", "x", { delay: 1000 }), invalid, "a misspelt option is not ignored");
  assert.throws(() => new Broker({ flush: "sometimes" }), invalid);
  assert.throws(() => new Broker({ maxMessageSize: -1 }), invalid);
  assert.throws(() => new Broker({ colour: "blue" }), invalid);
  assert.throws(() => new Broker({ delayLevels: "" }), invalid);
  assert.throws(() => new Broker({ delayLevels: "1s soon" }), invalid);
  assert.throws(() => new Broker({ delayLevels: "1s 5é" }), invalid);
  assert.throws(() => broker.producer("bad group!"), invalid);
  assert.throws(() => broker.consumer({ group: "g", topic: "orders", start: "yesterday" }), invalid);
  assert.throws(() => broker.consumer({ group: "g", topic: "orders", maxReconsumeTimes: -1 }), invalid);
  assert.throws(() => broker.resetOffset("g", "orders", "middle"), invalid);
  assert.throws(() => broker.createTopic("t", { queues: -2 }), invalid);
  const c = broker.consumer({ group: "g", topic: "orders" });
  await assert.rejects(c.receive({ maxMessages: -1 }), invalid);
  await assert.rejects(c.receive({ maxMessages: 2.5 }), invalid);
  await assert.rejects(c.receive({ timeoutMs: -1 }), invalid);
  await assert.rejects(c.receive({ timeout: 5 }), invalid);
  const clock = new ManualClock(0);
  assert.throws(() => clock.advance(-1), invalid);
  assert.throws(() => new ManualClock(-5), invalid);
  broker.close();
});

test("wrong types are TypeErrors", async () => {
  const broker = new Broker();
  const p = broker.producer("g");
  const typeError = (e) => e instanceof TypeError;
  assert.throws(() => new Broker("./data"), typeError);
  assert.throws(() => new Broker({ clock: Date }), typeError);
  assert.throws(() => new ManualClock("1"), typeError);
  assert.throws(() => new ManualClock(0).advance("1000"), typeError);
  assert.throws(() => new ManualClock(0).advance(null), typeError);
  assert.throws(() => broker.consumer({ group: "l", topic: "orders" }).listen(async () => {}, { concurrency: "2" }), typeError);
  assert.throws(() => broker.producer(42), typeError);
  assert.throws(() => p.send(42, "x"), typeError);
  assert.throws(() => p.send("orders", 42), typeError);
  assert.throws(() => p.send("orders", null), typeError);
  assert.throws(() => p.send("orders", { body: "x" }), typeError);
  assert.throws(() => p.send("orders", "x", "paid"), typeError);
  assert.throws(() => p.send("orders", "x", { tags: 5 }), typeError);
  assert.throws(() => p.send("orders", "x", { keys: [1, 2] }), typeError);
  assert.throws(() => p.send("orders", "x", { properties: { a: 1 } }), typeError);
  assert.throws(() => p.send("orders", "x", { queueId: "3" }), typeError);
  assert.throws(() => p.sendBatch("orders", "x"), typeError);
  assert.throws(() => broker.consumer(), typeError);
  assert.throws(() => broker.consumer({ topic: "orders" }), typeError);
  assert.throws(() => broker.consumer({ group: "g", topic: "orders", orderly: "yes" }), typeError);
  assert.throws(() => broker.transactionProducer("tx", { check: "COMMIT" }), typeError);
  const tp = broker.transactionProducer("tx", { check: () => TxState.COMMIT });
  assert.throws(() => tp.send("orders", "x"), typeError);
  assert.throws(() => tp.send("orders", "x", { execute: TxState.COMMIT }), typeError);
  const c = broker.consumer({ group: "g", topic: "orders" });
  assert.throws(() => c.ack({ msgId: "x" }), typeError);
  assert.throws(() => c.nack(undefined), typeError);
  await assert.rejects(c.receive({ timeoutMs: "1s" }), typeError);
  assert.throws(() => broker.get(7), typeError);
  assert.throws(() => broker.query("orders", 7), typeError);
  assert.throws(() => broker.lag("g", null), typeError);
  assert.throws(() => broker.resetOffset("g", "orders", {}), typeError);
  broker.close();
});

test("no input traps the engine", async () => {
  const weird = [undefined, null, NaN, -0, 1e300, -1e300, 2 ** 53 + 2, "", "é", "日本 || ü", "\u0000", "\ud800", "1é", {}, [], () => 1, Symbol.iterator, 10n, new Date(NaN)];
  const broker = new Broker();
  const p = broker.producer("g");
  const c = broker.consumer({ group: "g", topic: "orders" });
  const calls = [
    (v) => p.send("orders", v),
    (v) => p.send(v, "x"),
    (v) => p.send("orders", "x", { queueId: v }),
    (v) => p.send("orders", "x", { delayLevel: v }),
    (v) => p.send("orders", "x", { deliverAt: v }),
    (v) => p.send("orders", "x", { delayMs: v }),
    (v) => p.send("orders", "x", { keys: v }),
    (v) => p.send("orders", "x", { properties: v }),
    (v) => p.send("orders", "x", { tags: v }),
    (v) => p.send("orders", "x", { shardingKey: v }),
    (v) => p.sendBatch("orders", [v]),
    (v) => broker.producer(v),
    (v) => broker.consumer({ group: v, topic: "orders" }),
    (v) => broker.consumer({ group: "g", topic: v }),
    (v) => broker.consumer({ group: "g", topic: "orders", tags: v }),
    (v) => broker.lag(v, "orders"),
    (v) => broker.transactionProducer(v),
    (v) => new Broker({ flush: v }),
    (v) => broker.createTopic(v),
    (v) => broker.createTopic("t", { queues: v }),
    (v) => broker.consumer({ group: "g", topic: "orders", start: v }),
    (v) => broker.consumer({ group: "g", topic: "orders", maxReconsumeTimes: v }),
    (v) => broker.get(v),
    (v) => broker.query("orders", v),
    (v) => broker.resetOffset("g", "orders", v),
    (v) => new Broker({ maxMessageSize: v }),
    (v) => new Broker({ delayLevels: v }),
    (v) => new ManualClock(v),
    (v) => c.receive({ maxMessages: v, timeoutMs: 0 }),
    (v) => c.ack(v),
  ];
  for (const call of calls) {
    for (const v of weird) {
      try {
        await call(v);
      } catch (err) {
        assert.ok(
          err instanceof TypeError || err instanceof PocketMQError,
          `${call} with ${String(v)} threw ${err?.constructor?.name}: ${err?.message}`,
        );
      }
    }
  }
  // The engine still works afterwards.
  p.send("after", "ok");
  const d = broker.consumer({ group: "g2", topic: "after" });
  assert.equal((await d.receive({ timeoutMs: 500 }))[0].text(), "ok");
  broker.close();
});

test("in Node a path opens a file store in that directory, and nowhere else", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pocketmq-path-"));
  try {
    let broker = new Broker({ path: dir });
    broker.producer("g").send("orders", "kept");
    broker.close();
    assert.ok(existsSync(join(dir, "commitlog")), "the store lives in the given directory");
    broker = new Broker({ path: dir });
    const c = broker.consumer({ group: "g", topic: "orders" });
    assert.deepEqual((await c.receive({ timeoutMs: 500 })).map((m) => m.text()), ["kept"]);
    broker.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("errors name options as JS spells them", () => {
  const broker = new Broker();
  broker.createTopic("t", 2);
  const p = broker.producer();
  assert.equal(p.group, "DEFAULT_PRODUCER");
  assert.throws(() => p.send("t", "x", { queueId: 3 }), (e) => e.code === "InvalidArgument" && /queueId 3/.test(e.message) && !/queue_id/.test(e.message));
  assert.throws(
    () => p.send("t", "x", { delayLevel: 1, delayMs: 5 }),
    (e) => e.code === "InvalidArgument" && /delayLevel, deliverAt and delayMs/.test(e.message),
  );
  // Options the engine checks as a whole (after reading them) too, and JS's numbers.
  const named = (f, name) => assert.throws(f, (e) => e.code === "InvalidArgument" && e.message.includes(name) && !e.message.includes("_"), name);
  named(() => broker.simpleConsumer({ group: "s", topic: "t", invisibleDurationMs: 0 }), "invisibleDurationMs");
  named(() => broker.consumer({ group: "g", topic: "t", ackTimeoutMs: 0 }), "ackTimeoutMs");
  named(() => new Broker({ dedupWindowMs: 2 ** 53 }), "dedupWindowMs");
  named(() => new Broker({ fileReservedTimeMs: 2 ** 53 - 1 }), "fileReservedTimeMs");
  named(() => new Broker({ deleteWhen: "25" }), "deleteWhen");
  named(() => new Broker({ flushIntervalMs: Infinity }), "not Infinity");
  broker.close();
});

test("RetryLater refuses a negative or non-number delay", () => {
  assert.throws(() => new RetryLater(-5), (e) => e.code === "InvalidArgument");
  assert.throws(() => new RetryLater(NaN), (e) => e.code === "InvalidArgument");
  assert.throws(() => new RetryLater("5"), TypeError);
  assert.equal(new RetryLater().delayMs, 0);
  assert.equal(new RetryLater(250).delayMs, 250);
});
