// How often the engine's wasm memory grows while a memory store fills, and how many
// full (mark-compact) garbage collections of the JS heap that costs: each growth makes
// V8 count the memory's whole size as new external memory, which starts one.
//
//   node bench/js/memory_growth.mjs [--messages 200000] [--runs 3] [--hold 200000]
//
// Sends --runs runs of --messages 100-byte messages, each run to a new memory store,
// while holding --hold strings (the heap a service has; 0 for none), and prints the
// growths of each run and the full collections over all runs. Needs the built package
// (wasm/build.sh).
import { createRequire } from "node:module";
import { PerformanceObserver, constants } from "node:perf_hooks";
import { arg, importPackage } from "./common.mjs";

const { Broker } = await importPackage("memory_growth");
const glue = createRequire(import.meta.url)("../../wasm/pkg/node/pocketmq_wasm.js");
const memory = glue.wasmMemory();

const MESSAGES = arg("messages", 200_000);
const RUNS = arg("runs", 3);
const held = Array.from({ length: arg("hold", 200_000) }, (_, i) => `order-${i}`);

let majors = 0;
const gcs = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++;
});
gcs.observe({ entryTypes: ["gc"] });

const body = new Uint8Array(100).fill(0x61);
const growths = [];
for (let r = 0; r < RUNS; r++) {
  const broker = new Broker();
  broker.createTopic("bench", { queues: 4 });
  const p = broker.producer("bench");
  let size = memory.buffer.byteLength;
  let grew = 0;
  for (let i = 0; i < MESSAGES; i++) {
    p.send("bench", body);
    if (memory.buffer.byteLength !== size) {
      size = memory.buffer.byteLength;
      grew++;
    }
  }
  growths.push(grew);
  broker.close();
}
// Collections are reported after they end: let the last ones arrive.
await new Promise((resolve) => setTimeout(resolve, 100));
gcs.disconnect();
console.log(
  `${RUNS} runs of ${MESSAGES.toLocaleString("en")} sends, ${held.length.toLocaleString("en")} strings held: ` +
    `memory grew ${growths.join(", ")} times; ${majors} full collections; ` +
    `memory ${(memory.buffer.byteLength / 2 ** 20).toFixed(0)} MiB at the end`,
);
