// Transactional messages: a half message is invisible until COMMIT, ROLLBACK
// drops it, UNKNOWN leaves it to the check callback, asked after
// transactionTimeoutMs and every checkIntervalMs, at most maxChecks times.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Broker, ManualClock, Message, TxState } from "pocketmq";

const T0 = Date.UTC(2026, 0, 1);
const texts = async (c) => (await c.receive({ maxMessages: 32, timeoutMs: 0 })).map((m) => m.text());

/** Runs `f` (and awaits it) with console.error collected: [its result, the lines logged]. */
async function loggingErrors(f) {
  const errors = [];
  const orig = console.error;
  console.error = (...a) => errors.push(a);
  try {
    return [await f(), errors];
  } finally {
    console.error = orig;
  }
}

test("TxState names the three outcomes", () => {
  assert.deepEqual({ ...TxState }, { COMMIT: "COMMIT", ROLLBACK: "ROLLBACK", UNKNOWN: "UNKNOWN" });
});

test("COMMIT shows the message, ROLLBACK drops it", async () => {
  const broker = new Broker({ clock: new ManualClock(T0) });
  const tp = broker.transactionProducer("pay", { check: () => TxState.UNKNOWN });
  const c = broker.consumer({ group: "g", topic: "orders" });
  let seen;
  const r = tp.send("orders", "charged", {
    tags: "paid",
    keys: "order-1",
    execute: (m) => {
      seen = m;
      return TxState.COMMIT;
    },
  });
  assert.ok(seen instanceof Message);
  assert.equal(seen.text(), "charged");
  assert.equal(seen.tags, "paid");
  assert.equal(r.transactionState, "COMMIT");
  assert.equal(r.status, "SEND_OK");
  const rb = tp.send("orders", "declined", { execute: () => TxState.ROLLBACK });
  assert.equal(rb.transactionState, "ROLLBACK");
  const got = await c.receive({ maxMessages: 32, timeoutMs: 0 });
  assert.deepEqual(got.map((m) => m.text()), ["charged"]);
  assert.equal(got[0].msgId, r.msgId);
  assert.equal(got[0].topic, "orders");
  assert.equal(got[0].tags, "paid");
  assert.equal(broker.stats().pendingTransactions, 0);
  broker.close();
});

test("an UNKNOWN half message is checked after the timeout, then every interval", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock, transactionTimeoutMs: 6000, checkIntervalMs: 60_000 });
  const checks = [];
  const tp = broker.transactionProducer("pay", {
    check: (m) => {
      checks.push([clock.now() - T0, m.text()]);
      return checks.length < 2 ? TxState.UNKNOWN : TxState.COMMIT;
    },
  });
  const c = broker.consumer({ group: "g", topic: "orders" });
  const r = tp.send("orders", "pending", { execute: () => TxState.UNKNOWN });
  assert.equal(r.transactionState, "UNKNOWN");
  assert.deepEqual(await texts(c), [], "a half message is invisible");
  assert.equal(broker.stats().pendingTransactions, 1);

  clock.advance(5999);
  assert.deepEqual(await texts(c), []);
  assert.equal(checks.length, 0, "not checked before transactionTimeoutMs");
  clock.advance(1);
  broker.tick();
  assert.deepEqual(checks, [[6000, "pending"]]);
  assert.deepEqual(await texts(c), [], "still UNKNOWN");

  clock.advance(59_999);
  broker.tick();
  assert.equal(checks.length, 1, "not checked again before checkIntervalMs");
  clock.advance(1);
  broker.tick();
  assert.equal(checks.length, 2);
  const got = await c.receive({ timeoutMs: 0 });
  assert.deepEqual(got.map((m) => m.text()), ["pending"]);
  assert.equal(got[0].msgId, r.msgId);
  assert.equal(broker.stats().pendingTransactions, 0);
  clock.advance(3600_000);
  broker.tick();
  assert.equal(checks.length, 2, "a resolved message is not checked again");
  broker.close();
});

test("an exception in execute leaves the message to check", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  const tp = broker.transactionProducer("pay", { check: () => TxState.ROLLBACK });
  const c = broker.consumer({ group: "g", topic: "orders" });
  const [r, errors] = await loggingErrors(() =>
    tp.send("orders", "boom", {
      execute: () => {
        throw new Error("local transaction failed");
      },
    }),
  );
  assert.equal(r.transactionState, "UNKNOWN");
  assert.ok(errors.length > 0, "the exception is logged");
  clock.advance(6000);
  broker.tick();
  assert.deepEqual(await texts(c), [], "check said ROLLBACK");
  assert.equal(broker.stats().pendingTransactions, 0);
  broker.close();
});

test("an async execute leaves the message to check and its rejection is no crash", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  const tp = broker.transactionProducer("pay", { check: () => TxState.COMMIT });
  const c = broker.consumer({ group: "g", topic: "orders" });
  const [r, errors] = await loggingErrors(async () => {
    const sent = tp.send("orders", "async", {
      execute: async () => {
        throw new Error("local transaction failed");
      },
    });
    // The rejection settles on a later turn: it is reported, not left unhandled
    // (an unhandled rejection would end this process).
    await new Promise((resolve) => setTimeout(resolve, 20));
    return sent;
  });
  assert.equal(r.transactionState, "UNKNOWN");
  assert.ok(errors.some((a) => String(a[0]).includes("rejected")), JSON.stringify(errors.map((a) => String(a[0]))));
  clock.advance(6000);
  broker.tick();
  assert.deepEqual(await texts(c), ["async"], "check said COMMIT");
  broker.close();
});

test("an async execute returns a Promise of the result, settled with its outcome", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  const tp = broker.transactionProducer("pay", { check: () => TxState.UNKNOWN });
  const c = broker.consumer({ group: "g", topic: "orders" });
  let release;
  const db = new Promise((resolve) => (release = resolve));
  const sent = tp.send("orders", "charged", {
    keys: "order-7",
    execute: async (m) => {
      assert.equal(m.text(), "charged");
      await db; // the local transaction's own I/O
      return TxState.COMMIT;
    },
  });
  assert.ok(sent instanceof Promise);
  assert.deepEqual(await texts(c), [], "invisible until the local transaction commits");
  assert.equal(broker.stats().pendingTransactions, 1);
  release();
  const r = await sent;
  assert.equal(r.transactionState, "COMMIT");
  assert.equal(r.status, "SEND_OK");
  const got = await c.receive({ maxMessages: 32, timeoutMs: 0 });
  assert.deepEqual(got.map((m) => m.text()), ["charged"]);
  assert.equal(got[0].msgId, r.msgId);
  assert.deepEqual(got[0].keys, ["order-7"]);
  assert.equal(broker.stats().pendingTransactions, 0);

  const rb = await tp.send("orders", "declined", { execute: async () => TxState.ROLLBACK });
  assert.equal(rb.transactionState, "ROLLBACK");
  assert.equal(broker.stats().pendingTransactions, 0);
  // An async UNKNOWN leaves it to check, as a synchronous one.
  const u = await tp.send("orders", "unsure", { execute: async () => TxState.UNKNOWN });
  assert.equal(u.transactionState, "UNKNOWN");
  assert.equal(broker.stats().pendingTransactions, 1);
  assert.deepEqual(await texts(c), []);
  broker.close();
});

test("an async check resolves the half message when it settles, and the first resolution wins", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock, transactionTimeoutMs: 6000, checkIntervalMs: 60_000 });
  const asked = [];
  let release;
  const gate = new Promise((resolve) => (release = resolve)); // the checks' own I/O
  const tp = broker.transactionProducer("pay", {
    check: async (m) => {
      asked.push(m.text());
      await gate;
      return m.text() === "yes" ? TxState.COMMIT : TxState.ROLLBACK;
    },
  });
  const c = broker.consumer({ group: "g", topic: "orders" });
  tp.send("orders", "yes", { execute: () => TxState.UNKNOWN });
  tp.send("orders", "no", { execute: () => TxState.UNKNOWN });
  clock.advance(6000);
  broker.tick();
  assert.deepEqual(asked, ["yes", "no"]);
  assert.deepEqual(await texts(c), [], "nothing decided before the checks settle");
  release();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(await texts(c), ["yes"]);
  assert.equal(broker.stats().pendingTransactions, 0);
  // Settled: later checks are not asked.
  clock.advance(120_000);
  broker.tick();
  assert.deepEqual(asked, ["yes", "no"]);
  broker.close();
});

test("an async execute that settles after close rejects with the closed broker's error", async () => {
  const broker = new Broker({ clock: new ManualClock(T0) });
  const tp = broker.transactionProducer("pay", { check: () => TxState.UNKNOWN });
  let release;
  const sent = tp.send("orders", "late", {
    execute: () => new Promise((resolve) => (release = resolve)),
  });
  broker.close();
  release(TxState.COMMIT);
  await assert.rejects(sent, (err) => err.code === "Closed");
});

test("after maxChecks UNKNOWN answers the half message is discarded", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock, transactionTimeoutMs: 1000, checkIntervalMs: 1000, maxChecks: 3 });
  let checks = 0;
  const tp = broker.transactionProducer("pay", {
    check: () => {
      checks += 1;
      return TxState.UNKNOWN;
    },
  });
  tp.send("orders", "never", { execute: () => TxState.UNKNOWN });
  for (let i = 0; i < 10; i++) {
    clock.advance(1000);
    broker.tick();
  }
  assert.equal(checks, 3);
  assert.equal(broker.stats().pendingTransactions, 0);
  const c = broker.consumer({ group: "g", topic: "orders" });
  assert.deepEqual(await texts(c), []);
  broker.close();
});

test("the first resolution wins: a later check cannot commit a rolled-back message", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  let checks = 0;
  const tp = broker.transactionProducer("pay", {
    check: () => {
      checks += 1;
      return TxState.COMMIT;
    },
  });
  tp.send("orders", "no", { execute: () => TxState.ROLLBACK });
  clock.advance(3600_000);
  broker.tick();
  assert.equal(checks, 0);
  const c = broker.consumer({ group: "g", topic: "orders" });
  assert.deepEqual(await texts(c), []);
  broker.close();
});

test("execute and check may call the broker while they decide", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock });
  const audit = broker.producer("audit");
  const c = broker.consumer({ group: "g", topic: "orders" });
  const tp = broker.transactionProducer("pay", {
    check: (m) => {
      audit.send("audit", `checked ${m.text()}`, { queueId: 0 });
      return broker.query("orders", "order-2").length === 0 ? TxState.COMMIT : TxState.ROLLBACK;
    },
  });
  tp.send("orders", "first", {
    keys: "order-1",
    execute: (m) => {
      audit.send("audit", `executed ${m.text()}`, { queueId: 0 });
      assert.equal(broker.lag("g", "orders"), 0, "the half message is not in the topic yet");
      return TxState.UNKNOWN;
    },
  });
  clock.advance(6000);
  broker.tick();
  assert.deepEqual(await texts(c), ["first"]);
  const log = broker.consumer({ group: "a", topic: "audit" });
  assert.deepEqual(await texts(log), ["executed first", "checked first"]);
  broker.close();
});
