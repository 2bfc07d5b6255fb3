// What a store of many queues costs a Node process: a memory store and a file store
// of N topics of 4 queues, one message each. Each figure comes from a Node process
// of its own, so resident memory starts clean:
//
//   node bench/js/many_queues.mjs [--topics 1000] [--runs 3]
//
// memory store: resident memory added by the fill, and how long close takes;
// file store: resident memory added and descriptors open after the fill, then a
// reopen in a new process: its time, resident memory and descriptors.
// Needs the built package (wasm/build.sh).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { arg, importPackage } from "./common.mjs";

const TOPICS = arg("topics", 1000);
const RUNS = arg("runs", 3);
const role = process.argv[2];

const mib = (bytes) => bytes / 2 ** 20;
const fds = () => {
  try {
    return spawnSync("ls", [`/proc/${process.pid}/fd`], { encoding: "utf8" }).stdout.trim().split("\n").length;
  } catch {
    return NaN;
  }
};

if (role === "memory" || role === "fill" || role === "reopen") {
  const { Broker } = await importPackage("many_queues");
  const path = process.argv[3];
  const start = process.memoryUsage().rss;
  const out = {};
  if (role === "reopen") {
    const t = performance.now();
    const b = new Broker({ path });
    out.ms = performance.now() - t;
    out.rss = mib(process.memoryUsage().rss - start);
    out.fds = fds();
    b.close();
  } else {
    const b = role === "memory" ? new Broker() : new Broker({ path });
    const p = b.producer("bench");
    for (let i = 0; i < TOPICS; i++) for (let q = 0; q < 4; q++) p.send(`topic-${i}`, "x", { queueId: q });
    out.rss = mib(process.memoryUsage().rss - start);
    out.fds = fds();
    const t = performance.now();
    b.close();
    out.closeMs = performance.now() - t;
  }
  console.log(JSON.stringify(out));
  process.exit(0);
}

const self = fileURLToPath(import.meta.url);
function child(...args) {
  const r = spawnSync(process.execPath, [self, ...args, "--topics", String(TOPICS)], { encoding: "utf8" });
  if (r.status !== 0) {
    // A store that cannot take this many queues: its error, in a line.
    const why = r.stderr.split("\n").find((l) => /Error\b/.test(l) && !/^\s+at /.test(l)) ?? r.stderr;
    return { error: why.trim().slice(0, 160) };
  }
  return JSON.parse(r.stdout.trim().split("\n").pop());
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = { memory: [], fill: [], reopen: [] };
for (let run = 0; run < RUNS; run++) {
  const dir = mkdtempSync(join(tmpdir(), "pocketmq-many-queues-"));
  try {
    rows.memory.push(child("memory", ""));
    rows.fill.push(child("fill", join(dir, "data")));
    rows.reopen.push(child("reopen", join(dir, "data")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const failed = (xs) => xs.find((x) => x.error)?.error;
const show = (xs, key, digits = 0) => `${xs.map((x) => x[key].toFixed(digits)).join(", ")} (median ${median(xs.map((x) => x[key])).toFixed(digits)})`;
console.log(`${TOPICS} topics of 4 queues, one message each, ${RUNS} runs:`);
const line = (label, xs, text) => console.log(`${label}${failed(xs) ? `failed: ${failed(xs)}` : text()}`);
line("memory store: ", rows.memory, () => `+${show(rows.memory, "rss")} MiB resident; close ${show(rows.memory, "closeMs")} ms`);
line("file store:   ", rows.fill, () => `+${show(rows.fill, "rss")} MiB resident, ${show(rows.fill, "fds")} descriptors open`);
line("  reopened:   ", rows.reopen, () => `${show(rows.reopen, "ms")} ms, +${show(rows.reopen, "rss")} MiB resident, ${show(rows.reopen, "fds")} descriptors`);
