// Node sends with the options real messages carry, against a plain send in the
// same run: memory store, 100 B bodies, CPU time of the one thread (steadier than
// wall time on a shared machine), the median of --runs runs per option.
//
//   node bench/js/options.mjs [--messages 100000] [--runs 3]
//
// Needs the built package (wasm/build.sh). Target (issue 17): each option >= 70%
// of a plain send.
import { loadavg } from "node:os";
import { arg, importPackage } from "./common.mjs";

const { Broker } = await importPackage("options");
const N = arg("messages", 100_000);
const RUNS = arg("runs", 3);
const body = new Uint8Array(100).fill(0x61);
const cases = {
  plain: (p) => p.send("bench", body),
  tags: (p) => p.send("bench", body, { tags: "paid" }),
  shardingKey: (p, i) => p.send("bench", body, { shardingKey: `order-${i & 1023}` }),
  properties: (p) => p.send("bench", body, { properties: { region: "eu", source: "web" } }),
  keys: (p, i) => p.send("bench", body, { keys: [`id-${i}`] }),
};

const rates = {};
for (let r = 0; r < RUNS; r++) {
  for (const [name, send] of Object.entries(cases)) {
    const b = new Broker();
    b.createTopic("bench", { queues: 4 });
    const p = b.producer("bench");
    for (let i = 0; i < 5000; i++) send(p, i);
    const cpu = process.cpuUsage();
    for (let i = 0; i < N; i++) send(p, i);
    const d = process.cpuUsage(cpu);
    (rates[name] ||= []).push(N / ((d.user + d.system) / 1e6));
    b.close();
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const plain = median(rates.plain);
console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}; ${N} sends, median of ${RUNS}`);
for (const [name, xs] of Object.entries(rates)) {
  const m = median(xs);
  const pct = Math.round((m / plain) * 100);
  const verdict = name === "plain" ? "" : pct >= 70 ? "met" : "MISSED";
  console.log(`${name.padEnd(12)} ${Math.round(m).toLocaleString("en").padStart(10)} msgs/s  ${String(pct).padStart(4)}%  ${verdict}`);
}
