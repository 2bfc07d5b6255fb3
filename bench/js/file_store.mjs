// Node sends to a file store (flush async) against the memory store, in
// alternating pairs of runs, and the median of the pairs' ratios: the file store
// row of node_bench.mjs with more, steadier samples.
//
//   node --expose-gc bench/js/file_store.mjs [--messages 200000] [--pairs 15] [--size 100]
//
// For instruction counts (steady on a shared machine), one store and one count a
// process; the per-send figure is the difference of two counts over their sends:
//
//   valgrind --tool=callgrind --smc-check=all node bench/js/file_store.mjs --count memory 20000
//   valgrind --tool=callgrind --smc-check=all node bench/js/file_store.mjs --count memory 60000
//
// (and the same with `file`). Needs the built package (wasm/build.sh). Target
// (issue 17): a file store >= 90% of the memory store.
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { arg, importPackage } from "./common.mjs";

const { Broker } = await importPackage("file_store");
const body = new Uint8Array(arg("size", 100)).fill(0x61);

/** Sends `n` messages to a fresh store (a file store when `file`); msgs/s. */
function run(file, n, warm = 10_000) {
  const dir = file ? mkdtempSync(join(tmpdir(), "pocketmq-file-store-")) : undefined;
  const broker = file ? new Broker({ path: dir, flush: "async" }) : new Broker();
  try {
    broker.createTopic("bench", { queues: 4 });
    const p = broker.producer("bench");
    for (let i = 0; i < warm; i++) p.send("warmup", body);
    const started = performance.now();
    for (let i = 0; i < n; i++) p.send("bench", body);
    return (n / (performance.now() - started)) * 1000;
  } finally {
    broker.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

const count = process.argv.indexOf("--count");
if (count >= 0) {
  const store = process.argv[count + 1];
  if (store !== "memory" && store !== "file") throw new Error("--count memory|file N");
  run(store === "file", Number(process.argv[count + 2]), 0);
  process.exit(0);
}

const MESSAGES = arg("messages", 200_000);
const PAIRS = arg("pairs", 15);
const settle = async () => {
  globalThis.gc?.();
  await new Promise((resolve) => setTimeout(resolve, 50));
};
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const k = (x) => `${Math.round(x / 1000)} k`;

console.log(`load average at start: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
run(false, MESSAGES);
run(true, MESSAGES);
const mem = [];
const file = [];
const ratios = [];
for (let i = 0; i < PAIRS; i++) {
  await settle();
  mem.push(run(false, MESSAGES));
  await settle();
  file.push(run(true, MESSAGES));
  ratios.push(file[i] / mem[i]);
  console.log(`pair ${i + 1}/${PAIRS}: memory ${k(mem[i])}, file ${k(file[i])} msgs/s: ${(ratios[i] * 100).toFixed(0)}%`);
}
const r = median(ratios);
console.log(
  `median of ${PAIRS} pairs: memory ${k(median(mem))}, file ${k(median(file))} msgs/s, ratio ${(r * 100).toFixed(1)}% ` +
    `(target >= 90%: ${r >= 0.9 ? "met" : "missed"})`,
);
