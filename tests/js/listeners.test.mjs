// Listeners from JS: a result acks, a throw nacks, RetryLater delays; stop drains.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Broker, RetryLater, InvalidArgumentError } from "pocketmq";

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
  assert.equal(broker.lag("g", "t"), 0, "the slow handler finished before stop resolved");
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
  assert.throws(() => sc.listen("nope"), TypeError);
  broker.close();
});
