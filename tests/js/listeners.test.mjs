// Listeners from JS: a result acks, a throw nacks, RetryLater delays; stop drains.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Broker, RetryLater, InvalidArgumentError, setLogLevel } from "pocketmq";

test("results ack, throws nack, RetryLater delays, stop drains", async () => {
  const broker = new Broker();
  const p = broker.producer("p");
  for (const body of ["ok", "fail", "later", "slow"]) p.send("t", body);
  const c = broker.consumer({ group: "g", topic: "t" });
  const handled = [];
  const warn = console.warn;
  console.warn = () => {};
  const runner = c.listen(
    async (m) => {
      handled.push(m.text());
      if (m.text() === "fail") throw new Error("boom");
      if (m.text() === "later") throw new RetryLater(5000);
      if (m.text() === "slow") await new Promise((r) => setTimeout(r, 200));
    },
    { concurrency: 2 },
  );
  while (handled.length < 4) await new Promise((r) => setTimeout(r, 5));
  await runner.stop();
  console.warn = warn;
  assert.equal(runner.running, false);
  // The two retried wait for a redelivery; the slow one was acked before stop resolved.
  assert.equal(broker.lag("g", "t"), 2, "the slow handler finished before stop resolved");
  assert.equal(broker.stats().pendingDelayed, 2);
  broker.close();
});

test("a simple consumer listens; bad options are refused", async () => {
  const broker = new Broker();
  const p = broker.producer("p");
  for (let i = 0; i < 10; i++) p.send("t", `m${i}`);
  const sc = broker.simpleConsumer({ group: "g", topic: "t" });
  let n = 0;
  const runner = sc.listen(() => {
    n++;
  }, { concurrency: 3 });
  while (n < 10) await new Promise((r) => setTimeout(r, 5));
  await runner.stop();
  assert.equal(broker.lag("g", "t"), 0);
  assert.throws(() => sc.listen(() => {}, { concurrency: 0 }), InvalidArgumentError);
  // More than one receive could take is refused here, not later inside the runner.
  for (const concurrency of [100_001, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
    assert.throws(() => sc.listen(() => {}, { concurrency }), /concurrency must be a whole number from 1 to 100000/);
  }
  assert.throws(() => sc.listen("nope"), TypeError);
  broker.close();
});

test("a consumer closed under its listener settles nothing and warns of nothing; setLogLevel('off') silences failing handlers", async () => {
  const warnings = [];
  const warn = console.warn;
  console.warn = (...args) => warnings.push(args.join(" "));
  try {
    const broker = new Broker();
    const p = broker.producer("p");
    for (let i = 0; i < 4; i++) p.send("t", `m${i}`);
    const c = broker.consumer({ group: "g", topic: "t" });
    let started = 0;
    const runner = c.listen(async () => {
      started++;
      await new Promise((r) => setTimeout(r, 50));
    });
    while (started === 0) await new Promise((r) => setTimeout(r, 5));
    c.close();
    await runner.stop();
    assert.deepEqual(warnings, [], "handlers that finish after the close are no failures");
    // The deliveries went back to the group.
    const again = broker.consumer({ group: "g", topic: "t" });
    assert.equal((await again.receive({ maxMessages: 8, timeoutMs: 0 })).length, 4);
    again.close();

    setLogLevel("off");
    p.send("t2", "x");
    const failing = broker.consumer({ group: "g", topic: "t2" });
    let tried = false;
    const r2 = failing.listen(() => {
      tried = true;
      throw new Error("boom");
    });
    while (!tried) await new Promise((r) => setTimeout(r, 5));
    await r2.stop();
    assert.deepEqual(warnings, [], "nothing is logged at level off");
    broker.close();
  } finally {
    setLogLevel("warn");
    console.warn = warn;
  }
});
