// The order-flow demo in a page: send order events, receive the ones the SMS
// service cares about, show them, ack them, report the group's lag. Then bursts
// of orders against two consumers that drain them, with the group's backlog
// drawn over time on a canvas.
import { Broker } from "pocketmq";

const result = /** @type {HTMLElement} */ (document.getElementById("result"));
const status = /** @type {HTMLElement} */ (document.getElementById("status"));
const canvas = /** @type {HTMLCanvasElement} */ (document.getElementById("backlog"));
const summary = /** @type {HTMLElement} */ (document.getElementById("backlog-summary"));

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @param {string[]} cells */
function row(cells) {
  const tr = document.createElement("tr");
  cells.forEach((text, i) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (i === 1) td.className = "tag";
    tr.appendChild(td);
  });
  result.appendChild(tr);
}

async function orderFlow() {
  const broker = new Broker();
  broker.createTopic("orders", { queues: 4 });
  const shop = broker.producer("shop");
  const events = [
    ["order-41", "created", "order 41 created"],
    ["order-41", "paid", "order 41 paid: 18.00 EUR"],
    ["order-42", "created", "order 42 created"],
    ["order-42", "paid", "order 42 paid: 7.50 EUR"],
    ["order-41", "shipped", "order 41 shipped"],
  ];
  for (const [key, tags, body] of events) shop.send("orders", body, { tags, keys: key, shardingKey: key });

  const sms = broker.consumer({ group: "sms", topic: "orders", tags: "paid || shipped" });
  let received = 0;
  for (;;) {
    const msgs = await sms.receive({ maxMessages: 32, timeoutMs: 200 });
    if (msgs.length === 0) break;
    for (const m of msgs) {
      row([`${m.queueId} / ${m.queueOffset}`, m.tags ?? "", m.text(), m.keys.join(", ")]);
      sms.ack(m);
      received += 1;
    }
  }
  const lag = broker.lag("sms", "orders");
  broker.close();
  status.textContent = `done: ${received} messages received and acked, lag ${lag}`;
  status.className = "done";
}

// ------------------------------------------------------------ backlog chart

/** Orders per burst, one burst every BURST_EVERY_MS. */
const BURSTS = [300, 120, 520, 80, 400, 260];
const BURST_EVERY_MS = 300;
const SAMPLE_EVERY_MS = 50;
/** Each consumer takes up to this many orders per round, one round every ROUND_MS. */
const PER_ROUND = 12;
const ROUND_MS = 30;

/**
 * Draws the samples: the backlog as a filled line, burst times as ticks.
 * @param {{ t: number, lag: number }[]} samples
 * @param {number[]} bursts times (ms since start)
 * @param {number} spanMs the time axis' length
 */
function draw(samples, bursts, spanMs) {
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  const { width: w, height: h } = canvas;
  const pad = { left: 56, right: 16, top: 16, bottom: 36 };
  const plotW = w - pad.left - pad.right;
  const plotH = h - pad.top - pad.bottom;
  const peak = Math.max(1, ...samples.map((s) => s.lag));
  const step = Math.pow(10, Math.floor(Math.log10(peak)));
  const top = Math.ceil(peak / step) * step;
  const x = (/** @type {number} */ t) => pad.left + (t / spanMs) * plotW;
  const y = (/** @type {number} */ v) => pad.top + plotH - (v / top) * plotH;

  ctx.clearRect(0, 0, w, h);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#566";
  ctx.strokeStyle = "#e3e6ee";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const tick = top / step <= 8 ? step : 2 * step;
  for (let v = 0; v <= top; v += tick) {
    ctx.beginPath();
    ctx.moveTo(pad.left, y(v));
    ctx.lineTo(w - pad.right, y(v));
    ctx.stroke();
    ctx.fillText(String(Math.round(v)), pad.left - 8, y(v));
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let t = 0; t <= spanMs; t += 500) ctx.fillText(`${(t / 1000).toFixed(1)} s`, x(t), h - pad.bottom + 14);
  ctx.strokeStyle = "#c2410c";
  ctx.lineWidth = 2;
  for (const t of bursts) {
    ctx.beginPath();
    ctx.moveTo(x(t), h - pad.bottom);
    ctx.lineTo(x(t), h - pad.bottom + 8);
    ctx.stroke();
  }
  if (samples.length < 2) return;
  ctx.beginPath();
  ctx.moveTo(x(samples[0].t), y(0));
  for (const s of samples) ctx.lineTo(x(s.t), y(s.lag));
  ctx.lineTo(x(samples[samples.length - 1].t), y(0));
  ctx.closePath();
  ctx.fillStyle = "rgba(37, 99, 235, 0.18)";
  ctx.fill();
  ctx.beginPath();
  samples.forEach((s, i) => (i === 0 ? ctx.moveTo(x(s.t), y(s.lag)) : ctx.lineTo(x(s.t), y(s.lag))));
  ctx.strokeStyle = "#2563eb";
  ctx.lineWidth = 2.5;
  ctx.stroke();
}

async function backlog() {
  const broker = new Broker();
  broker.createTopic("checkout", { queues: 4 });
  const shop = broker.producer("shop");
  const workers = [1, 2].map((n) => broker.consumer({ group: "billing", topic: "checkout", consumerId: `worker-${n}` }));
  const total = BURSTS.reduce((a, b) => a + b, 0);
  const spanMs = BURSTS.length * BURST_EVERY_MS + (total / (2 * PER_ROUND)) * ROUND_MS + 600;
  /** @type {{ t: number, lag: number }[]} */
  const samples = [];
  /** @type {number[]} */
  const burstTimes = [];
  const started = performance.now();
  const now = () => performance.now() - started;
  let acked = 0;
  let sent = 0;
  let producing = true;

  const sampler = setInterval(() => {
    samples.push({ t: now(), lag: broker.lag("billing", "checkout") });
    draw(samples, burstTimes, Math.max(spanMs, now()));
  }, SAMPLE_EVERY_MS);

  const producer = (async () => {
    for (const [i, n] of BURSTS.entries()) {
      burstTimes.push(now());
      const orders = Array.from({ length: n }, (_, k) => `order ${i}-${k}`);
      sent += shop.sendBatch("checkout", orders).length;
      await sleep(BURST_EVERY_MS);
    }
    producing = false;
  })();

  const drains = workers.map(async (c) => {
    while (producing || broker.lag("billing", "checkout") > 0) {
      const msgs = await c.receive({ maxMessages: PER_ROUND, timeoutMs: 100 });
      c.ack(msgs);
      acked += msgs.length;
      await sleep(ROUND_MS);
    }
  });
  await producer;
  await Promise.all(drains);
  clearInterval(sampler);
  samples.push({ t: now(), lag: broker.lag("billing", "checkout") });
  draw(samples, burstTimes, now());
  broker.close();

  const peak = Math.max(...samples.map((s) => s.lag));
  const last = samples[samples.length - 1].lag;
  Object.assign(summary.dataset, { sent: String(sent), acked: String(acked), peak: String(peak), last: String(last), samples: String(samples.length) });
  summary.textContent = `done: ${sent} orders in ${BURSTS.length} bursts, ${acked} acked by 2 consumers; backlog peaked at ${peak}, now ${last}`;
  summary.className = "done";
}

/** @param {HTMLElement} el @param {unknown} err */
function failed(el, err) {
  const e = /** @type {{ code?: string, message?: string }} */ (err);
  el.textContent = `failed: ${e && e.code ? e.code + ": " : ""}${e && e.message ? e.message : err}`;
  el.className = "failed";
}

orderFlow()
  .catch((err) => failed(status, err))
  .then(() => backlog())
  .catch((err) => failed(summary, err));
