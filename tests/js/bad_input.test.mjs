// Bad input over every public argument, on a Node file store: wrong types, values
// out of range, huge and non-finite numbers, property separators, path characters,
// text with a lone surrogate (which UTF-8 cannot hold).
// Each call throws a TypeError or a PocketMQError (never traps the engine), and
// the store's files are exactly as they were.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

import { Broker, InvalidArgumentError, ManualClock, PocketMQError, TxState } from "pocketmq";

const HUGE = [2 ** 63, 2 ** 64, 1e300, Number.MAX_VALUE];
const NOT_FINITE = [NaN, Infinity, -Infinity];
const SEPARATORS = ["a\u0001b", "a\u0002b", "x\u0002REAL_TOPIC\u0001../../escaped\u0002"];
const PATHS = ["../escaped", "a/b", "/abs", "..", "a\u0000b"];
const WRONG = [undefined, null, 1, true, {}, [], () => 1, 10n, Symbol.iterator];
const LONE = "a\ud800b";

function snapshot(root) {
  const out = {};
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name !== "lock" && e.name !== "abort") {
        out[relative(root, p)] = createHash("sha1").update(readFileSync(p)).digest("hex");
      }
    }
  };
  walk(root);
  return out;
}

function cases() {
  const out = [];
  const add = (name, f) => out.push([name, f]);
  for (const v of [...WRONG, "", "x".repeat(128), "%DLQ%g", LONE, ...PATHS, ...SEPARATORS]) {
    if (v === undefined) continue;
    add(`send topic=${String(v)}`, (w) => w.p.send(v, "x"));
    add(`sendBatch topic=${String(v)}`, (w) => w.p.sendBatch(v, ["x"]));
    add(`createTopic name=${String(v)}`, (w) => w.broker.createTopic(v));
    if (v === "%DLQ%g") continue; // (readable: reserved only for sending)
    add(`query topic=${String(v)}`, (w) => w.broker.query(v, "k"));
    add(`lag topic=${String(v)}`, (w) => w.broker.lag("g", v));
    add(`resetOffset topic=${String(v)}`, (w) => w.broker.resetOffset("g", v, "earliest"));
    add(`consumer topic=${String(v)}`, (w) => w.broker.consumer({ group: "g2", topic: v }));
  }
  for (const v of [...WRONG, "", "x".repeat(121), ...PATHS, ...SEPARATORS]) {
    if (v === undefined) continue;
    add(`producer group=${String(v)}`, (w) => w.broker.producer(v));
    add(`consumer group=${String(v)}`, (w) => w.broker.consumer({ group: v, topic: "t" }));
    add(`transactionProducer group=${String(v)}`, (w) => w.broker.transactionProducer(v, { check: () => TxState.COMMIT }));
    add(`lag group=${String(v)}`, (w) => w.broker.lag(v, "t"));
  }
  for (const v of [null, 1, {}, [], 10n, "", LONE, "\u00e9".repeat(100) + "\udc80", new Uint8Array(0), "x".repeat(4 * 1024 * 1024 + 1)]) {
    add(`send body=${typeof v}:${v?.length ?? ""}`, (w) => w.p.send("t", v));
  }
  for (const [opt, values] of Object.entries({
    tags: [1, "", "a||b", LONE, ...SEPARATORS],
    keys: [1, "", "  ", [" "], [1], [""], LONE, [LONE], ...SEPARATORS, [SEPARATORS[2]]],
    properties: [
      "x", 1, { "": "v" }, { k: "" }, { k: 1 }, { UNIQ_KEY: "x" }, { "k\u0001": "v" }, { k: SEPARATORS[2] },
      new Map([[1, "v"]]), new Map([["k", 1]]), new Set(["k"]), new Date(0), { [LONE]: "v" }, { k: LONE },
    ],
    shardingKey: [1, "", LONE, ...SEPARATORS],
    dedupId: [1, "", LONE],
    queueId: [-1, 2, 1.5, "0", ...HUGE, ...NOT_FINITE],
    delayLevel: [-1, 1.5, "1", ...HUGE, ...NOT_FINITE],
    deliverAt: [-1, "soon", [1], new Date(NaN), ...HUGE, ...NOT_FINITE, Date.now() + 1e12],
    delayMs: [-1, "1", ...HUGE, ...NOT_FINITE, 1e15],
    colour: ["red"],
  })) {
    for (const v of values) add(`send ${opt}=${String(v)}`, (w) => w.p.send("t", "x", { [opt]: v }));
  }
  add("two delays", (w) => w.p.send("t", "x", { delayMs: 10, delayLevel: 1 }));
  // Refused sends to a topic that does not exist yet create none.
  add("send queueId beyond a new topic's", (w) => w.p.send("fresh", "x", { queueId: 10 }));
  add("sendBatch queueId beyond a new topic's", (w) => w.p.sendBatch("fresh", ["x"], { queueId: 10 }));
  add("transactional send queueId beyond a new topic's", (w) =>
    w.tp.send("fresh", "x", { queueId: 10, execute: () => TxState.COMMIT }),
  );
  for (const v of [null, 1, "", "not a handle", "djEgb3JkZXJz"]) {
    add(`recall handle=${String(v)}`, (w) => w.p.recall("t", v));
  }
  add("recall a handle of another topic", (w) => w.p.recall("t2", w.recallHandle));
  for (const v of [0, -1, 1025, 1.5, "4", ...HUGE, ...NOT_FINITE]) {
    add(`createTopic queues=${String(v)}`, (w) => w.broker.createTopic("t2", { queues: v }));
  }
  for (const [opt, values] of Object.entries({
    tags: [1, "||", " || "],
    broadcasting: [1, "yes"],
    orderly: [1, "yes"],
    maxReconsumeTimes: [-1, 1.5, "1", ...HUGE, ...NOT_FINITE],
    start: ["soon", -1, [1], ...HUGE, ...NOT_FINITE],
    consumerId: [1],
    colour: ["red"],
  })) {
    for (const v of values) add(`consumer ${opt}=${String(v)}`, (w) => w.broker.consumer({ group: "g3", topic: "t", [opt]: v }));
  }
  for (const v of ["soon", -1, [1], {}, ...HUGE, ...NOT_FINITE]) {
    add(`resetOffset to=${String(v)}`, (w) => w.broker.resetOffset("g", "t", v));
  }
  for (const v of [null, 1, "", "a b", "z".repeat(129), "\u0001"]) add(`get ${String(v)}`, (w) => w.broker.get(v));
  for (const v of [-1, 1.5, "1", ...HUGE, ...NOT_FINITE]) {
    add(`receive maxMessages=${String(v)}`, (w) => w.c.receive({ maxMessages: v, timeoutMs: 0 }));
  }
  for (const v of [-1, "1", ...HUGE, -Infinity, NaN]) {
    add(`receive timeoutMs=${String(v)}`, (w) => w.c.receive({ maxMessages: 1, timeoutMs: v }));
  }
  for (const v of [null, 1, "msg", [1], {}]) {
    add(`ack ${String(v)}`, (w) => w.c.ack(v));
    add(`nack ${String(v)}`, (w) => w.c.nack(v));
  }
  for (const v of [null, 1, "COMMIT"]) add(`execute=${String(v)}`, (w) => w.tp.send("t", "x", { execute: v }));
  for (const v of [-1, "x", ...HUGE, ...NOT_FINITE, 1.8e19]) {
    add(`clock.advance(${String(v)})`, (w) => w.clock.advance(v));
    add(`new ManualClock(${String(v)})`, () => new ManualClock(v));
  }
  return out;
}

test("bad input to every public argument is a typed error and changes nothing", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pocketmq-bad-"));
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const broker = new Broker({ path: dir, clock, segmentSize: 65536, flush: "sync" });
  try {
    broker.createTopic("t", { queues: 2 });
    const p = broker.producer("p");
    p.send("t", "hello", { tags: "a", keys: ["k"] });
    const c = broker.consumer({ group: "g", topic: "t" });
    assert.equal((await c.receive({ maxMessages: 1, timeoutMs: 1000 })).length, 1);
    const tp = broker.transactionProducer("tx", { check: () => TxState.COMMIT });
    const { recallHandle } = p.send("t", "later", { delayLevel: 18 });
    const w = { broker, p, c, tp, clock, recallHandle };
    broker.flush();
    const all = cases();
    assert.ok(all.length > 300, `${all.length} cases`);
    for (const [name, call] of all) {
      const before = snapshot(dir);
      const now = clock.now();
      const topics = JSON.stringify(broker.topics());
      let threw = null;
      try {
        await call(w);
      } catch (err) {
        threw = err;
      }
      assert.ok(threw !== null, `${name}: did not throw`);
      assert.ok(
        threw instanceof TypeError || threw instanceof PocketMQError,
        `${name}: threw ${threw?.constructor?.name}: ${threw?.message}`,
      );
      assert.equal(clock.now(), now, `${name}: the clock moved`);
      assert.equal(JSON.stringify(broker.topics()), topics, name);
      broker.flush();
      const after = snapshot(dir);
      const changed = Object.keys({ ...before, ...after }).filter((k) => before[k] !== after[k] && k !== "checkpoint");
      assert.deepEqual(changed, [], `${name}: the store changed`);
    }
  } finally {
    broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad broker options are refused before a store is written", () => {
  const options = [
    { flush: "sometimes" }, { segmentSize: 1 }, { segmentSize: 2 ** 31 }, { maxMessageSize: 0 },
    { autoCreateTopics: 1 }, { defaultQueues: 0 }, { defaultQueues: 1025 }, { delayLevels: "18446744073709552s" },
    { delayLevels: "0s" }, { timerMaxDelayMs: 0 }, { timerMaxDelayMs: 1e300 }, { fileReservedTimeMs: NaN },
    { diskMaxUsedRatio: 1.5 }, { diskCleanForciblyRatio: -1 }, { retention: "forever" }, { syncFlushTimeoutMs: Infinity },
    { flushIntervalMs: -5 }, { transactionTimeoutMs: "6s" }, { checkIntervalMs: 2 ** 64 }, { maxChecks: -1 }, { colour: "red" },
    { path: "" }, { path: 1 },
  ];
  for (const o of options) {
    const dir = mkdtempSync(join(tmpdir(), "pocketmq-opt-"));
    const path = o.path ?? join(dir, "store");
    try {
      assert.throws(
        () => new Broker({ path, ...o }),
        (err) => err instanceof TypeError || err instanceof PocketMQError,
        JSON.stringify(o),
      );
      assert.throws(() => statSync(join(dir, "store")), JSON.stringify(o));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test("option errors speak JS: camelCase names, values as written", () => {
  let err = null;
  try {
    new Broker({ bogus: 1 });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof InvalidArgumentError, String(err));
  assert.match(err.message, /unknown option "bogus" \(known: path, clock, flush, segmentSize, .*fileReservedTimeMs/);
  assert.doesNotMatch(err.message, /segment_size|file_reserved_time/);
  const broker = new Broker();
  assert.throws(
    () => broker.producer("p").send("t", "x", { delayLevel: -1 }),
    (e) => e instanceof InvalidArgumentError && /delayLevel must be .* not -1$/.test(e.message),
  );
  assert.throws(
    () => broker.consumer({ group: "g", topic: "t", maxInFlight: -1 }),
    (e) => e instanceof InvalidArgumentError && e.message.includes("maxInFlight") && !e.message.includes("max_in_flight"),
  );
  broker.close();
});

test("options in snake_case or in a Map are refused, not ignored; a delayed one-item batch has its recall handle", () => {
  assert.throws(() => new Broker({ max_message_size: 10 }), (e) => e instanceof InvalidArgumentError && /max_message_size/.test(e.message));
  const broker = new Broker();
  const p = broker.producer("p");
  assert.throws(() => p.send("t", "x", new Map([["tags", "x"]])), TypeError);
  assert.throws(() => p.send("t", "x", { sharding_key: "k" }), InvalidArgumentError);
  const [r] = p.sendBatch("t", ["a"], { delayMs: 60_000 });
  assert.equal(typeof r.recallHandle, "string");
  assert.equal(p.recall("t", r.recallHandle), true);
  assert.throws(() => p.sendBatch("t", ["a", "b"], { delayMs: 1000 }), InvalidArgumentError);
  broker.close();
});

test("text with a lone surrogate is InvalidArgument wherever text is taken, never stored as U+FFFD", async () => {
  const broker = new Broker();
  const p = broker.producer("p");
  p.send("t", "x", { tags: "a\ufffdb", keys: ["k\ufffd"] }); // U+FFFD itself is text
  const lone = (f, what) =>
    assert.throws(f, (e) => e instanceof InvalidArgumentError && e.message.includes("lone surrogate"), what);
  lone(() => broker.consumer({ group: "g", topic: "t", tags: LONE }), "consumer tags");
  lone(() => broker.simpleConsumer({ group: "s", topic: "t", tags: LONE }), "simple consumer tags");
  lone(() => broker.consumer({ group: LONE, topic: "t" }), "consumer group");
  lone(() => broker.producer(LONE), "producer group");
  lone(() => broker.query("t", "k" + LONE), "query key");
  lone(() => broker.get(LONE), "get");
  lone(() => broker.lag(LONE, "t"), "lag group");
  lone(() => new Broker({ path: join(tmpdir(), LONE) }), "path");
  // Nothing was subscribed: both groups take the message with a tag of U+FFFD.
  for (const c of [broker.consumer({ group: "g", topic: "t", tags: "a\ufffdb" }), broker.simpleConsumer({ group: "s", topic: "t" })]) {
    const [m] = await c.receive({ maxMessages: 1, timeoutMs: 1000 });
    assert.equal(m?.tags, "a\ufffdb");
  }
  assert.equal(broker.query("t", "k\ufffd").length, 1);
  broker.close();
});

test("properties and send options come in plain or prototype-free objects, whatever their names; other objects are refused", async () => {
  const broker = new Broker();
  const p = broker.producer("g");
  const bare = (o) => Object.assign(Object.create(null), o);
  // Accepted: objects made by {} or with no prototype, whatever their own names.
  p.send("shapes", "1", { properties: bare({ a: "b" }) });
  p.send("shapes", "2", { properties: { constructor: "x" } });
  p.send("shapes", "3", bare({ tags: "t", properties: { c: "d" } }));
  // Refused: anything else, with nothing stored.
  for (const properties of [new Date(), ["a"], "a", Object.create({ inherited: "y" }), new (class {})()]) {
    assert.throws(() => p.send("shapes", "x", { properties }), TypeError);
  }
  assert.throws(() => p.send("shapes", "x", { tags: "t", constructor: "x" }), InvalidArgumentError);
  const got = await broker.consumer({ group: "g", topic: "shapes" }).receive({ maxMessages: 32, timeoutMs: 0 });
  assert.deepEqual(
    got.map((m) => [m.text(), { ...m.properties }, m.tags]).sort((x, y) => x[0].localeCompare(y[0])),
    [
      ["1", { a: "b" }, null],
      ["2", { constructor: "x" }, null],
      ["3", { c: "d" }, "t"],
    ],
  );
  broker.close();
});
