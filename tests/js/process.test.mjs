// The package's timers never keep a Node process alive by themselves: a script
// that leaves a delayed message pending still exits when its work is done.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

const url = JSON.stringify(import.meta.resolve("pocketmq"));

function run(source) {
  const started = Date.now();
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", source], { encoding: "utf8", timeout: 20_000 });
  return { ...r, ms: Date.now() - started };
}

test("a pending delayed message does not keep the process alive", () => {
  const r = run(`
    import { Broker } from ${url};
    const broker = new Broker();
    broker.producer("g").send("orders", "in an hour", { delayMs: 3_600_000 });
    const c = broker.consumer({ group: "g", topic: "orders" });
    const got = await c.receive({ timeoutMs: 50 });
    console.log("received", got.length);
  `);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), "received 0");
  assert.ok(r.ms < 10_000, `exited after ${r.ms} ms`);
});

test("a waiting receive keeps the process alive until its message is due", () => {
  const r = run(`
    import { Broker } from ${url};
    const broker = new Broker();
    broker.producer("g").send("orders", "soon", { delayMs: 300 });
    const c = broker.consumer({ group: "g", topic: "orders" });
    const got = await c.receive({ timeoutMs: 5000 });
    console.log(got.map((m) => m.text()).join(","));
  `);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), "soon");
});
