// connect(): the producers and consumers of Broker over the RocketMQ 5 protocol, to a
// real pocketmq-serve started here (the Rust server binary: `make test-js` builds it;
// POCKETMQ_SERVE names another), or, with POCKETMQ_ROCKETMQ set to its endpoint, to
// an Apache RocketMQ 5 proxy (`make interop`), whose topics and groups one
// `rocketmq.sh admin-server` creates as the tests name them. Each test uses topics
// and groups of its own.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import {
  ClosedError,
  InvalidArgumentError,
  InvalidReceiptHandleError,
  IoError,
  Message,
  NotSupportedError,
  RemoteBroker,
  RetryLater,
  TxState,
  connect,
} from "pocketmq";

const root = (path) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const SERVE = process.env.POCKETMQ_SERVE ?? root("target/debug/pocketmq-serve");
const APACHE = process.env.POCKETMQ_ROCKETMQ;
let server;
let admin;
let adminLines;
let endpoint;
let n = 0;

/** Names of this run's own, `kinds` each "topic" or "group"; on Apache, created first. */
async function fresh(...kinds) {
  const names = kinds.map((k) => `js-${k}-${process.pid}-${++n}`);
  if (admin !== undefined) {
    for (let i = 0; i < kinds.length; i++) {
      admin.stdin.write(`${kinds[i] === "topic" ? `topic:${names[i]}:MIXED` : `group:${names[i]}`}\n`);
      for (;;) {
        const { value: line, done } = await adminLines.next();
        assert.ok(!done, "rocketmq.sh admin-server exited");
        if (line.startsWith("ok  ")) break;
        assert.ok(!line.startsWith("FAIL"), `cannot create ${names[i]}: ${line}`);
      }
    }
  }
  return names;
}

/** One such name. */
const fresh1 = async (kind) => (await fresh(kind))[0];

before(async () => {
  if (APACHE !== undefined) {
    endpoint = APACHE;
    admin = spawn("bash", [root("interop/rocketmq/rocketmq.sh"), "admin-server"], { stdio: ["pipe", "pipe", "inherit"] });
    adminLines = createInterface({ input: admin.stdout })[Symbol.asyncIterator]();
    return;
  }
  assert.ok(existsSync(SERVE), `no server binary at ${SERVE} (cargo build -p pocketmq-server --bin pocketmq-serve)`);
  server = spawn(SERVE, ["--memory", "--listen", "127.0.0.1:0", "--log-level", "warn"], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise((resolve, reject) => {
    server.stdout.once("data", (d) => resolve(String(d)));
    server.once("exit", (code) => reject(new Error(`pocketmq-serve exited (${code})`)));
  });
  assert.match(line, /^pocketmq-serve listening on /);
  endpoint = line.trim().split(" ").pop();
});

after(() => {
  server?.kill("SIGTERM");
  admin?.stdin.end();
});

test("sendBatch sends each item with its own options", async () => {
  const broker = connect(endpoint);
  const [topic] = await fresh("topic");
  const results = await broker.producer().sendBatch(topic, ["a", { body: "b", tags: "B" }], { keys: "k" });
  assert.equal(results.length, 2);
  assert.notEqual(results[0].msgId, results[1].msgId);
  const c = broker.simpleConsumer(await fresh1("group"), topic);
  const got = [];
  while (got.length < 2) got.push(...(await c.receive({ timeoutMs: 5000 })));
  assert.deepEqual(got.map((m) => [m.text(), m.tags, m.keys]).sort(), [["a", null, ["k"]], ["b", "B", ["k"]]]);
  await c.ack(got);
  await broker.close();
});

test("a message sent over connect() is received with its fields, acked once", async () => {
  const broker = connect(endpoint);
  assert.ok(broker instanceof RemoteBroker);
  const [topic] = await fresh("topic");
  const sent = Date.now();
  const r = await broker.producer(await fresh1("group")).send(topic, "order 42 paid", {
    tags: "paid",
    keys: ["order-42", "customer-7"],
    properties: { origin: "web" },
  });
  assert.equal(r.topic, topic);
  assert.equal(r.status, "SEND_OK");
  assert.equal(r.duplicate, false);
  assert.match(r.msgId, /^[0-9A-F]{34}$/);
  const c = broker.simpleConsumer(await fresh1("group"), topic);
  const [m, ...rest] = await c.receive({ timeoutMs: 5000 });
  assert.equal(rest.length, 0);
  assert.ok(m instanceof Message);
  assert.equal(m.msgId, r.msgId);
  assert.equal(m.text(), "order 42 paid");
  assert.equal(m.tags, "paid");
  assert.deepEqual(m.keys, ["order-42", "customer-7"]);
  assert.equal(m.properties.origin, "web");
  assert.equal(m.deliveryAttempt, 1);
  assert.equal(m.reconsumeTimes, 0);
  assert.ok(Math.abs(m.bornTimestamp - sent) < 5000, `born at ${m.bornTimestamp}, sent at ${sent}`);
  assert.equal(m.storeTimestamp, m.bornTimestamp);
  assert.equal(typeof m.receiptHandle, "string");
  await c.ack(m);
  assert.deepEqual(await c.receive({ timeoutMs: 300 }), []);
  await broker.close();
});

test("tag filters and a key with spaces travel as embedded", async () => {
  const broker = connect(endpoint);
  const [topic] = await fresh("topic");
  const p = broker.producer();
  await p.send(topic, "a", { tags: "A", keys: "k1 k2" });
  await p.send(topic, "b", { tags: "B" });
  const c = broker.simpleConsumer(await fresh1("group"), topic, { tags: "B" });
  const got = await c.receive({ timeoutMs: 5000 });
  assert.deepEqual(got.map((m) => m.text()), ["b"]);
  await c.ack(got);
  const all = broker.simpleConsumer(await fresh1("group"), topic, { tags: "A" });
  const [a] = await all.receive({ timeoutMs: 5000 });
  assert.deepEqual(a.keys, ["k1", "k2"]);
  await broker.close();
});

test("a nacked message comes back after its delay as the next attempt; a changed invisibility gets a new handle", async () => {
  const broker = connect(endpoint);
  const [topic] = await fresh("topic");
  await broker.producer().send(topic, "retry me");
  const c = broker.consumer(await fresh1("group"), topic, { ackTimeoutMs: 60_000 });
  const [m] = await c.receive({ timeoutMs: 5000 });
  assert.equal(m.deliveryAttempt, 1);
  const nacked = Date.now();
  await c.nack(m, { delayMs: 1000 });
  const [again] = await c.receive({ timeoutMs: 10_000 });
  assert.ok(Date.now() - nacked >= 900, "redelivered after the nack's delay");
  assert.equal(again.msgId, m.msgId);
  assert.equal(again.deliveryAttempt, 2);
  assert.equal(again.reconsumeTimes, 1);
  const before = again.receiptHandle;
  const s = broker.simpleConsumer(await fresh1("group"), topic);
  const [sm] = await s.receive({ timeoutMs: 5000 });
  await s.changeInvisibleDuration(sm, 20_000);
  assert.notEqual(sm.receiptHandle, before);
  await s.ack(sm);
  await c.ack(again);
  await broker.close();
});

test("a delayed message waits for its time", async () => {
  const broker = connect(endpoint);
  const [topic] = await fresh("topic");
  const sent = Date.now();
  await broker.producer().send(topic, "later", { delayMs: 1500 });
  const c = broker.simpleConsumer(await fresh1("group"), topic);
  const [m] = await c.receive({ timeoutMs: 10_000 });
  assert.equal(m.text(), "later");
  assert.ok(Date.now() - sent >= 1400, `delivered ${Date.now() - sent} ms after the send`);
  await c.ack(m);
  await broker.close();
});

test("a transaction producer's COMMIT is delivered, its ROLLBACK never", async () => {
  const broker = connect(endpoint);
  const [topic] = await fresh("topic");
  const tp = broker.transactionProducer(await fresh1("group"), { check: () => TxState.COMMIT });
  let seen = null;
  const committed = await tp.send(topic, "paid", {
    tags: "t",
    execute: (msg) => {
      seen = msg;
      return TxState.COMMIT;
    },
  });
  assert.equal(committed.transactionState, TxState.COMMIT);
  assert.ok(seen instanceof Message);
  assert.equal(seen.msgId, committed.msgId);
  assert.equal(seen.text(), "paid");
  assert.equal(seen.tags, "t");
  const rolledBack = await tp.send(topic, "void", { execute: async () => TxState.ROLLBACK });
  assert.equal(rolledBack.transactionState, TxState.ROLLBACK);
  const c = broker.simpleConsumer(await fresh1("group"), topic);
  const got = await c.receive({ timeoutMs: 5000 });
  assert.deepEqual(got.map((m) => m.text()), ["paid"]);
  await c.ack(got);
  assert.deepEqual(await c.receive({ timeoutMs: 1000 }), []);
  await broker.close();
});

test("a transaction left UNKNOWN is settled by the producer's check", async () => {
  const broker = connect(endpoint);
  const [topic] = await fresh("topic");
  const asked = [];
  const tp = broker.transactionProducer(await fresh1("group"), {
    check: async (msg) => {
      asked.push(msg.text());
      return TxState.COMMIT;
    },
  });
  const r = await tp.send(topic, "decided later", { execute: () => TxState.UNKNOWN });
  assert.equal(r.transactionState, TxState.UNKNOWN);
  const c = broker.simpleConsumer(await fresh1("group"), topic);
  const [m] = await c.receive({ timeoutMs: 30_000 });
  assert.equal(m?.text(), "decided later");
  assert.deepEqual(asked, ["decided later"]);
  await c.ack(m);
  await broker.close();
});

test("listen acks what its handler returns and redelivers what it throws", async () => {
  const broker = connect(endpoint);
  const [topic] = await fresh("topic");
  const p = broker.producer();
  for (const body of ["a", "b", "c"]) await p.send(topic, body);
  const c = broker.consumer(await fresh1("group"), topic, { ackTimeoutMs: 60_000 });
  const seen = [];
  let failedOnce = false;
  const runner = c.listen(async (m) => {
    if (m.text() === "b" && !failedOnce) {
      failedOnce = true;
      throw new RetryLater(500);
    }
    seen.push(m.text());
  });
  for (let i = 0; i < 200 && seen.length < 3; i++) await new Promise((r) => setTimeout(r, 50));
  await runner.stop();
  assert.deepEqual(seen.sort(), ["a", "b", "c"]);
  await broker.close();
});

test("for await yields messages until the consumer closes", async () => {
  const broker = connect(endpoint);
  const [topic] = await fresh("topic");
  await broker.producer().send(topic, "one");
  const c = broker.simpleConsumer(await fresh1("group"), topic);
  const got = [];
  for await (const m of c) {
    got.push(m.text());
    await c.ack(m);
    setTimeout(() => c.close(), 200);
  }
  assert.deepEqual(got, ["one"]);
  await broker.close();
});

test("what the protocol cannot carry throws NotSupportedError naming it", async () => {
  const broker = connect(endpoint);
  for (const call of ["createTopic", "topics", "atomic", "get", "query", "lag", "resetOffset", "moveBacklog", "browse",
    "queryByTime", "progress", "deadLetters", "redrive", "deleteTopic", "stats", "tick", "flush"]) {
    assert.throws(() => broker[call]("x"), (e) => e instanceof NotSupportedError && e.code === "NotSupported" && e.message.includes(call), call);
  }
  const p = broker.producer();
  await assert.rejects(p.send("t", "x", { queueId: 1 }), NotSupportedError);
  await assert.rejects(p.send("t", "x", { dedupId: "d" }), NotSupportedError);
  assert.throws(() => broker.consumer("g", "t", { broadcasting: true }), NotSupportedError);
  await broker.close();
});

test("bad input is refused before any call, with the embedded error classes", async () => {
  assert.throws(() => connect(8081), TypeError);
  assert.throws(() => connect("no port"), InvalidArgumentError);
  const broker = connect(endpoint);
  const p = broker.producer();
  await assert.rejects(p.send("t", 42), TypeError);
  await assert.rejects(p.send("t", ""), InvalidArgumentError);
  await assert.rejects(p.send("t", "x", { tags: "a||b" }), InvalidArgumentError);
  await assert.rejects(p.send("t", "x", { colour: "red" }), InvalidArgumentError);
  await assert.rejects(p.send("t", "x", { delayMs: 10, deliverAt: Date.now() }), InvalidArgumentError);
  assert.throws(() => broker.consumer("g", "t", { ackTimeoutMs: 1000 }), InvalidArgumentError);
  // A message another consumer delivered is not this one's to settle.
  const [topic] = await fresh("topic");
  await p.send(topic, "x");
  const a = broker.simpleConsumer(await fresh1("group"), topic);
  const [m] = await a.receive({ timeoutMs: 5000 });
  const other = broker.simpleConsumer(await fresh1("group"), topic);
  await assert.rejects(other.ack(m), InvalidReceiptHandleError);
  await a.ack(m);
  await broker.close();
});

test("after close every call throws ClosedError and a waiting receive returns []", async () => {
  const broker = connect(endpoint);
  const p = broker.producer();
  const c = broker.simpleConsumer(await fresh1("group"), await fresh1("topic"));
  const waiting = c.receive({ timeoutMs: 30_000 });
  await new Promise((r) => setTimeout(r, 300));
  await broker.close();
  assert.deepEqual(await waiting, []);
  assert.throws(() => broker.producer(), ClosedError);
  await assert.rejects(p.send("t", "x"), ClosedError);
  await assert.rejects(c.receive(), ClosedError);
  await broker.close(); // twice is harmless
});

test("a server that is not there fails the first call with IoError", async () => {
  const broker = connect("127.0.0.1:1");
  await assert.rejects(broker.producer().send("t", "x"), IoError);
  await broker.close();
});
