// Duplicate-free sends: within the broker's dedup window a repeated (topic, dedupId)
// stores nothing and returns the first send's result.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Broker, ManualClock, TxState, InvalidArgumentError } from "pocketmq";

const T0 = 1_764_000_000_000;

async function bodies(c) {
  const out = [];
  for (;;) {
    const got = await c.receive({ maxMessages: 64, timeoutMs: 0 });
    if (got.length === 0) return out;
    for (const m of got) c.ack(m);
    out.push(...got.map((m) => m.text()));
  }
}

test("a repeat inside the window returns the first send's result", async () => {
  const clock = new ManualClock(T0);
  const broker = new Broker({ clock, dedupWindowMs: 60_000 });
  broker.createTopic("pay", { queues: 1 });
  const p = broker.producer("p");
  const first = p.send("pay", "charge", { dedupId: "pay-42" });
  assert.equal(first.duplicate, false);
  clock.advance(59_999);
  const again = p.send("pay", "charge again", { dedupId: "pay-42" });
  assert.equal(again.duplicate, true);
  assert.deepEqual(
    [again.msgId, again.queueId, again.queueOffset],
    [first.msgId, first.queueId, first.queueOffset],
  );
  clock.advance(1);
  assert.equal(p.send("pay", "later", { dedupId: "pay-42" }).duplicate, false);
  const c = broker.consumer({ group: "g", topic: "pay" });
  assert.deepEqual(await bodies(c), ["charge", "later"]);
  broker.close();
});

test("batch items carry their own dedup ids", async () => {
  const broker = new Broker({ clock: new ManualClock(T0) });
  broker.createTopic("t", { queues: 1 });
  const p = broker.producer("p");
  const a = p.send("t", "a", { dedupId: "A" });
  const rs = p.sendBatch("t", [{ body: "a2", dedupId: "A" }, { body: "b", dedupId: "B" }, "plain", { body: "b2", dedupId: "B" }]);
  assert.deepEqual(rs.map((r) => r.duplicate), [true, false, false, true]);
  assert.equal(rs[0].msgId, a.msgId);
  assert.equal(rs[3].msgId, rs[1].msgId);
  assert.deepEqual(await bodies(broker.consumer({ group: "g", topic: "t" })), ["a", "b", "plain"]);
  // One id for the whole batch would keep its first item only: refused, none stored.
  assert.throws(() => p.sendBatch("t", ["x", "y"], { dedupId: "X" }), (e) => e instanceof InvalidArgumentError && /its own, \{ body, dedupId \}/.test(e.message));
  assert.equal(broker.lag("g", "t"), 0);
  broker.close();
});

test("a transactional repeat does not run its transaction again", () => {
  const broker = new Broker({ clock: new ManualClock(T0) });
  const tp = broker.transactionProducer("pay", { check: () => TxState.COMMIT });
  let runs = 0;
  const execute = () => {
    runs += 1;
    return TxState.COMMIT;
  };
  const first = tp.send("orders", "o1", { execute, dedupId: "tx-1" });
  const again = tp.send("orders", "o1 again", { execute, dedupId: "tx-1" });
  assert.equal(again.duplicate, true);
  assert.equal(again.msgId, first.msgId);
  assert.equal(runs, 1);
  broker.close();
});

test("bad dedup ids are refused and store nothing", async () => {
  const broker = new Broker({ clock: new ManualClock(T0) });
  const p = broker.producer("p");
  for (const bad of ["", "x".repeat(1024)]) {
    assert.throws(() => p.send("t", "m", { dedupId: bad }), InvalidArgumentError);
    assert.throws(() => p.sendBatch("t", [{ body: "ok", dedupId: "fine" }, { body: "m", dedupId: bad }]), InvalidArgumentError);
  }
  assert.throws(() => p.send("t", "m", { dedupId: 42 }), TypeError);
  assert.deepEqual(await bodies(broker.consumer({ group: "g", topic: "t" })), []);
  assert.equal(p.send("t", "m", { dedupId: "fine" }).duplicate, false);
  broker.close();
});

test("a repeated transactional send answers with the first send's outcome", () => {
  const broker = new Broker({ clock: new ManualClock(Date.UTC(2026, 0, 1)) });
  const tp = broker.transactionProducer("pay", { check: () => TxState.COMMIT });
  const first = tp.send("orders", "charged", { dedupId: "h", execute: () => TxState.COMMIT });
  const again = tp.send("orders", "charged", { dedupId: "h", execute: () => TxState.COMMIT });
  assert.equal(again.duplicate, true);
  assert.equal(again.msgId, first.msgId);
  assert.equal(again.transactionState, "COMMIT");
  const open = tp.send("orders", "unsure", { dedupId: "u", execute: () => TxState.UNKNOWN });
  assert.equal(open.transactionState, "UNKNOWN");
  assert.equal(tp.send("orders", "unsure", { dedupId: "u", execute: () => TxState.COMMIT }).transactionState, "UNKNOWN");
  broker.close();
});
