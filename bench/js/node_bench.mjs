// Throughput of the npm package in Node, 100-byte bodies:
//   - send: one `producer.send(topic, body)` per message, memory store;
//   - send with the options real messages carry (`{ tags }`, `{ shardingKey }`,
//     `{ properties }`, `{ keys: [id] }`), each against a plain send of the same run;
//   - send to a file store (`new Broker({ path })`, flush async) against the memory store;
//   - receive + ack: `consumer.receive({ maxMessages })` in batches, then `consumer.ack(batch)`,
//     over --receive-messages (a run of 200,000 lasts about 150 ms, short enough for
//     one garbage collection to move its figure by a fifth);
// each the median of --runs runs on a fresh broker, against the targets of issues 7 and 17.
// Also reports the gzip size of the shipped .wasm.
//
//   node --expose-gc bench/js/node_bench.mjs [--messages 200000] [--receive-messages 1000000]
//     [--runs 3] [--batch 256] [--write]
//
// Needs the built package (wasm/build.sh). --write puts the figures into
// BENCHMARKS.md between <!-- js:start --> and <!-- js:end -->.
import { readFileSync, writeFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { arg } from "./common.mjs";

const root = new URL("../../", import.meta.url);
const pkg = new URL("wasm/pkg/", root);
if (!existsSync(new URL("node.js", pkg))) {
  console.error("node_bench: build the package first (bash wasm/build.sh)");
  process.exit(1);
}
const { Broker, version } = await import(new URL("node.js", pkg).href);

const MESSAGES = arg("messages", 200_000);
const RECEIVES = arg("receive-messages", 1_000_000);
const RUNS = arg("runs", 3);
const BATCH = arg("batch", 256);
const BODY = 100;

const body = new Uint8Array(BODY).fill(0x61);

/** CPU time (user + system, all of the process's threads) since `from`, in ms. */
function cpuMsSince(from) {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1000;
}

const ids = Array.from({ length: MESSAGES }, (_, i) => `order-${i}`);
const shardingKeys = Array.from({ length: 1000 }, (_, i) => `user-${i}`);
const properties = { origin: "web", region: "eu-west" };
/** Options of the i-th message for each kind of send measured. */
const VARIANTS = {
  plain: () => undefined,
  tags: () => ({ tags: "paid" }),
  shardingKey: (i) => ({ shardingKey: shardingKeys[i % 1000] }),
  properties: () => ({ properties }),
  keys: (i) => ({ keys: [ids[i]] }),
};

/** Sends MESSAGES bodies with `variant`'s options, to a memory store or (`file`) a fresh file store. */
function sendRun(variant = "plain", file = false) {
  const dir = file ? mkdtempSync(join(tmpdir(), "pocketmq-node-bench-")) : undefined;
  const broker = file ? new Broker({ path: dir, flush: "async" }) : new Broker();
  try {
    broker.createTopic("bench", { queues: 4 });
    const p = broker.producer("bench");
    for (let i = 0; i < 10_000; i++) p.send("warmup", body);
    const opts = VARIANTS[variant];
    const started = performance.now();
    const cpu = process.cpuUsage();
    if (variant === "plain") {
      for (let i = 0; i < MESSAGES; i++) p.send("bench", body);
    } else {
      for (let i = 0; i < MESSAGES; i++) p.send("bench", body, opts(i));
    }
    const ms = performance.now() - started;
    const cpuMs = cpuMsSince(cpu);
    return { wall: (MESSAGES / ms) * 1000, cpu: (MESSAGES / cpuMs) * 1000 };
  } finally {
    broker.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

async function receiveRun() {
  const broker = new Broker();
  broker.createTopic("bench", { queues: 4 });
  const p = broker.producer("bench");
  const chunk = Array.from({ length: 1000 }, () => body);
  for (let sent = 0; sent < RECEIVES; sent += chunk.length) p.sendBatch("bench", chunk);
  const c = broker.consumer({ group: "bench", topic: "bench" });
  let got = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  while (got < RECEIVES) {
    const msgs = await c.receive({ maxMessages: BATCH, timeoutMs: 0 });
    if (msgs.length === 0) throw new Error(`receive ran dry after ${got} of ${RECEIVES}`);
    c.ack(msgs);
    got += msgs.length;
  }
  const ms = performance.now() - started;
  const cpuMs = cpuMsSince(cpu);
  if (broker.lag("bench", "bench") !== 0) throw new Error("messages left unacked");
  broker.close();
  return { wall: (got / ms) * 1000, cpu: (got / cpuMs) * 1000 };
}

/** Lets the previous run's broker be collected (its wasm memory is reused, not grown). */
async function settle() {
  globalThis.gc?.();
  await new Promise((resolve) => setTimeout(resolve, 50));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const k = (x) => `${Math.round(x / 1000)} k`;

const loadAtStart = loadavg().map((x) => x.toFixed(2)).join(" ");
// One round that is not counted, so the measured runs get the JIT's compiled code.
for (const v of Object.keys(VARIANTS)) sendRun(v);
sendRun("plain", true);
await settle();
await receiveRun();

// Each run measures every kind of send right after a plain one, so each ratio compares
// runs made under the same load; the figures are the medians over the runs.
const sends = [];
const receives = [];
const optionRuns = Object.fromEntries(Object.keys(VARIANTS).filter((v) => v !== "plain").map((v) => [v, []]));
const fileRuns = [];
for (let r = 0; r < RUNS; r++) {
  await settle();
  const plain = sendRun();
  sends.push(plain);
  for (const v of Object.keys(optionRuns)) {
    await settle();
    const base = v === "tags" ? plain : sendRun();
    await settle();
    const x = sendRun(v);
    optionRuns[v].push({ ...x, ratio: x.wall / base.wall });
  }
  await settle();
  const base = sendRun();
  await settle();
  const f = sendRun("plain", true);
  fileRuns.push({ ...f, ratio: f.wall / base.wall });
  await settle();
  receives.push(await receiveRun());
  const opts = Object.entries(optionRuns).map(([v, xs]) => `${v} ${k(xs[r].wall)}`).join(", ");
  console.error(
    `run ${r + 1}/${RUNS}: send ${k(plain.wall)} msgs/s (${opts}; file store ${k(f.wall)}), receive+ack ${k(receives[r].wall)} msgs/s`,
  );
}

const wasm = readFileSync(new URL("web/pocketmq_wasm_bg.wasm", pkg));
const gz = gzipSync(wasm, { level: 9 }).length;
const cpu = cpus()[0]?.model?.trim() ?? "unknown CPU";
const wall = (xs) => xs.map((x) => x.wall);
const perCpu = (xs) => median(xs.map((x) => x.cpu));
const pct = (x) => `${Math.round(x * 100)}%`;
const rows = [
  ["single `send`", median(wall(sends)), wall(sends), perCpu(sends), "500 k (issue 7); 1 M (issue 17)", 1_000_000],
  [
    `\`receive\` (batches of ${BATCH}) + \`ack\``,
    median(wall(receives)),
    wall(receives),
    perCpu(receives),
    "500 k (issue 7); 1.5 M (issue 17)",
    1_500_000,
  ],
];
const ratioRows = [
  ...Object.entries(optionRuns).map(([v, xs]) => [
    `\`send\` with \`${JSON.stringify(VARIANTS[v](0)).replace(/"/g, "'")}\``,
    xs,
    "plain send of the same run",
    0.7,
  ]),
  ["`send` to a file store (flush async)", fileRuns, "memory store send of the same run", 0.9],
];

const lines = [
  `Node ${process.version}, pocketmq ${version()} (wasm), ${BODY} B bodies, ${MESSAGES.toLocaleString("en")} messages per send run and ${RECEIVES.toLocaleString("en")} per receive run, median of ${RUNS} runs after one uncounted warm-up round; memory store unless said.`,
  `Machine: ${cpus().length} cores (nproc), ${cpu}, shared with other work (load average at start: ${loadAtStart}); figures vary with the load.`,
  "",
  "| operation | msgs/s (median) | runs | target | met | msgs per CPU-second (median) |",
  "|---|---|---|---|---|---|",
  ...rows.map(
    ([name, m, all, c, target, bar]) =>
      `| ${name} | ${k(m)} | ${all.map(k).join(", ")} | ${target} | ${m >= bar ? "yes" : "no"} | ${k(c)} |`,
  ),
  "",
  "Sends with options and to a file store, each against a plain memory-store send measured just before it:",
  "",
  "| send | msgs/s (median) | ratio to baseline (median) | ratios of the runs | baseline | target | met |",
  "|---|---|---|---|---|---|---|",
  ...ratioRows.map(([name, xs, base, bar]) => {
    const r = median(xs.map((x) => x.ratio));
    return `| ${name} | ${k(median(wall(xs)))} | ${pct(r)} | ${xs.map((x) => pct(x.ratio)).join(", ")} | ${base} | >= ${pct(bar)} | ${r >= bar ? "yes" : "no"} |`;
  }),
  "",
  "msgs/s is wall-clock time, what the targets are about. Messages per CPU-second (this process's",
  "CPU time, GC threads included) shows the cost of the code itself when other work shares the cores.",
  "",
  `Engine size: ${wasm.length.toLocaleString("en")} bytes of wasm, ${gz.toLocaleString("en")} bytes gzipped (zlib level 9).`,
  "",
  `Command: \`node --expose-gc bench/js/node_bench.mjs --messages ${MESSAGES} --receive-messages ${RECEIVES} --runs ${RUNS} --batch ${BATCH}\` after \`bash wasm/build.sh\`.`,
];
console.log(lines.join("\n"));

if (process.argv.includes("--write")) {
  const file = fileURLToPath(new URL("BENCHMARKS.md", root));
  const START = "<!-- js:start -->";
  const END = "<!-- js:end -->";
  let text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmarks\n";
  const section = `${START}\n## JavaScript (Node)\n\n${lines.join("\n")}\n${END}`;
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) text = text.slice(0, a) + section + text.slice(b + END.length);
  else text = `${text.replace(/\n*$/, "\n\n")}${section}\n`;
  writeFileSync(file, text);
  console.error(`node_bench: wrote ${file}`);
}
