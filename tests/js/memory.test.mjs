// What a broker takes of the process's memory: the engine holds a store's segments
// in its own (wasm) memory, 3 GiB for all the brokers of a process.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

const url = JSON.stringify(import.meta.resolve("pocketmq"));

/** Runs an ES module in a new Node process (a clean resident set); returns its JSON. */
function run(source) {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", `import { Broker } from ${url};\n${source}`], {
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

test("a queue's segment takes memory as it is written, not for its whole size", () => {
  // 2,000 queues of one message each: every queue has a 320 KiB segment (625 MiB in
  // all), of which one entry is written.
  const { grew } = run(`
    const rss = () => process.memoryUsage().rss;
    const broker = new Broker();
    const p = broker.producer("shop");
    p.send("warm-up", "x");
    const before = rss();
    for (let i = 0; i < 500; i++) for (let q = 0; q < 4; q++) p.send("topic-" + i, "x", { queueId: q });
    console.log(JSON.stringify({ grew: (rss() - before) / 2 ** 20 }));
  `);
  assert.ok(grew < 150, `${grew.toFixed(0)} MiB more resident for 2,000 queues`);
});

test("memory a closed broker gave back holds nothing of its messages for the next one", () => {
  const { got, big } = run(`
    const fill = (broker, tag, n) => {
      const p = broker.producer("shop");
      for (let i = 0; i < 200; i++) for (let q = 0; q < 4; q++) for (let k = 0; k < n; k++) p.send("topic-" + i, tag + i + "." + q, { queueId: q });
    };
    const first = new Broker();
    fill(first, "old-", 3);
    first.producer("shop").send("big", new Uint8Array(3 << 20).fill(7));
    first.close();
    const second = new Broker();
    fill(second, "new-", 1);
    const got = [];
    for (const i of [0, 57, 199]) {
      const c = second.consumer({ group: "g" + i, topic: "topic-" + i });
      for (const m of await c.receive({ maxMessages: 32, timeoutMs: 200 })) got.push(m.text());
    }
    second.producer("shop").send("big", "small now");
    const big = (await second.consumer({ group: "gb", topic: "big" }).receive({ maxMessages: 8, timeoutMs: 200 })).map((m) => m.text());
    console.log(JSON.stringify({ got: got.sort(), big }));
  `);
  const want = [0, 57, 199].flatMap((i) => [0, 1, 2, 3].map((q) => `new-${i}.${q}`)).sort();
  assert.deepEqual(got, want);
  assert.deepEqual(big, ["small now"]);
});
