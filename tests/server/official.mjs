// The official RocketMQ 5 Node client (npm rocketmq-client-nodejs) against
// `pocketmq serve`: the twin of official.py. A Producer sending normal, FIFO (three
// message groups), delayed and transactional messages (commit, rollback, UNKNOWN
// resolved by check-back); a SimpleConsumer receiving each kind, changing one
// delivery's invisibility and acking everything; a PushConsumer failing each message
// once, then succeeding.
//
// usage: node official.mjs HOST:PORT PREFIX SENT.jsonl
//
// The server is started with PREFIX-fifo-g as a FIFO group (run.sh). Prints one
// PASS/FAIL line per check, writes what it sent for check_store.py, exits 1 when a
// check failed.

import { writeFileSync } from 'node:fs';
import {
  ConsumeResult, FilterExpression, Producer, PushConsumer, SimpleConsumer,
} from 'rocketmq-client-nodejs';
import definition from 'rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb.js';

const { TransactionResolution } = definition;
const NORMAL = 20;
const FIFO_GROUPS = ['group-a', 'group-b', 'group-c'];
const FIFO_PER_GROUP = 10;
const DELAYS_MS = [2000, 2500, 3000];
const PUSHED = 3;

const [endpoint, prefix, outPath] = process.argv.slice(2);
const t = Object.fromEntries(['normal', 'fifo', 'delay', 'tx', 'push'].map(k => [k, `${prefix}-${k}`]));
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
const quiet = { info() {}, debug() {}, warn() {}, error: (...a) => console.error(...a) };
const base = { endpoints: endpoint, namespace: '', logger: quiet, requestTimeout: 3000 };

let failed = 0;
function check(ok, what) {
  console.log(`${ok ? 'PASS' : 'FAIL'} node: ${what}`);
  if (!ok) failed++;
  return ok;
}

function message(topic, body, { group, deliverAt } = {}) {
  return {
    topic,
    body: Buffer.from(body),
    tag: `tag-${Object.keys(t).find(k => t[k] === topic)}`,
    keys: [ `key-${body}` ],
    properties: new Map([[ 'origin', 'node' ]]),
    messageGroup: group,
    deliveryTimestamp: deliverAt,
  };
}

async function receiveUntil(consumer, done, ms, onMessage, ack = true) {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) {
    for (const m of await consumer.receive(32, 15000)) {
      await onMessage(m);
      if (ack) await consumer.ack(m);
    }
  }
}

async function waitFor(cond, ms) {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(100);
  return cond();
}

const clients = [];
const sent = [];
const asked = [];
const checker = {
  async check(mv) {
    asked.push([Date.now(), mv.body.toString()]);
    return TransactionResolution.COMMIT;
  },
};

async function simple(kind) {
  const c = new SimpleConsumer({
    ...base, consumerGroup: `${prefix}-${kind}-g`,
    subscriptions: new Map([[ t[kind], FilterExpression.SUB_ALL ]]), awaitDuration: 2000,
  });
  await c.startup();
  clients.push(c);
  return c;
}

function record(kind, receipt, body, extra = {}) {
  sent.push({
    client: 'node', kind, topic: t[kind], message_id: receipt.messageId, body,
    tag: `tag-${kind}`, keys: [ `key-${body}` ], origin: 'node', group: extra.group ?? null,
    deliver_at_ms: extra.deliverAtMs ?? null, outcome: extra.outcome ?? null,
  });
}

const producer = new Producer({ ...base, topics: Object.values(t), checker });
const started = producer.startup();
const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('startup did not finish in 20 s (no settings reply?)')), 20000));
await Promise.race([ started, timeout ]);
clients.push(producer);

try {
  // Transactions first: the UNKNOWN one is checked back after the server's 6 s.
  const txSent = Date.now();
  for (const [body, end] of [[ 'tx-commit', 'commit' ], [ 'tx-rollback', 'rollback' ], [ 'tx-unknown', null ]]) {
    const tx = producer.beginTransaction();
    const r = await producer.send(message(t.tx, body), tx);
    check(Boolean(r.transactionId), `${body}: a transaction id (${r.transactionId})`);
    if (end === 'commit') await tx.commit();
    if (end === 'rollback') await tx.rollback();
    record('tx', r, body, { outcome: end === 'rollback' ? 'rollback' : 'commit' });
  }

  // Delayed messages (Node sends milliseconds).
  const due = new Map();
  const now = Date.now();
  for (const [i, ahead] of DELAYS_MS.entries()) {
    const body = `node-delay-${i}`;
    const at = new Date(now + ahead);
    const r = await producer.send(message(t.delay, body, { deliverAt: at }));
    due.set(r.messageId, at.getTime());
    record('delay', r, body, { deliverAtMs: at.getTime() });
  }
  const delayConsumer = await simple('delay');
  const arrivals = new Map();
  const delays = receiveUntil(delayConsumer, () => arrivals.size >= due.size, 20000,
    m => { if (!arrivals.has(m.messageId)) arrivals.set(m.messageId, Date.now()); });

  // The PushConsumer: each message fails once, then succeeds.
  const deliveries = new Map();
  const push = new PushConsumer({
    ...base, consumerGroup: `${prefix}-push-g`,
    subscriptions: new Map([[ t.push, FilterExpression.SUB_ALL ]]),
    messageListener: {
      consume(mv) {
        const seen = deliveries.get(mv.messageId) ?? [];
        seen.push(mv.deliveryAttempt);
        deliveries.set(mv.messageId, seen);
        return seen.length === 1 ? ConsumeResult.FAILURE : ConsumeResult.SUCCESS;
      },
    },
  });
  await push.startup();
  clients.push(push);
  const pushed = [];
  for (let i = 0; i < PUSHED; i++) {
    const body = `node-push-${i}`;
    const r = await producer.send(message(t.push, body));
    pushed.push(r.messageId);
    record('push', r, body);
  }

  // Normal and FIFO.
  const normal = new Map();
  for (let i = 0; i < NORMAL; i++) {
    const body = `node-normal-${i}`;
    const r = await producer.send(message(t.normal, body));
    normal.set(r.messageId, body);
    record('normal', r, body);
  }
  for (let i = 0; i < FIFO_PER_GROUP; i++) {
    for (const g of FIFO_GROUPS) {
      const body = `node-${g}-${i}`;
      const r = await producer.send(message(t.fifo, body, { group: g }));
      record('fifo', r, body, { group: g });
    }
  }

  // SimpleConsumer: everything once, one delivery's invisibility changed, all acked.
  const c = await simple('normal');
  const got = new Map();
  const wrong = [];
  let changed = false;
  await receiveUntil(c, () => got.size >= NORMAL, 30000, async m => {
    if (got.has(m.messageId)) wrong.push(`${m.messageId} delivered twice`);
    got.set(m.messageId, m);
    if (!changed) {
      const old = m.receiptHandle;
      await c.changeInvisibleDuration(m, 30000);
      check(m.receiptHandle !== old, 'changeInvisibleDuration gives a new receipt handle');
      changed = true;
    }
    const body = m.body.toString();
    if (!(body === normal.get(m.messageId) && m.tag === 'tag-normal' && m.keys.join() === `key-${body}`
      && m.properties.get('origin') === 'node' && m.deliveryAttempt === 1 && !m.corrupted)) {
      wrong.push(`${body}: tag ${m.tag} keys ${m.keys} attempt ${m.deliveryAttempt} corrupted ${m.corrupted}`);
    }
  });
  check([...normal.keys()].every(id => got.has(id)) && got.size === NORMAL && wrong.length === 0,
    `SimpleConsumer received ${got.size}/${NORMAL} normal messages once each with their fields, acking each (the changed one with its new handle) ${wrong.join('; ')}`);

  // FIFO: order per message group, with the group consuming in order.
  const f = await simple('fifo');
  const order = Object.fromEntries(FIFO_GROUPS.map(g => [g, []]));
  let fifoCount = 0;
  await receiveUntil(f, () => fifoCount >= FIFO_PER_GROUP * FIFO_GROUPS.length, 30000, m => {
    const parts = m.body.toString().split('-');
    order[`${parts[1]}-${parts[2]}`].push(Number(parts[3]));
    fifoCount++;
  });
  for (const g of FIFO_GROUPS) {
    check(order[g].join() === [...Array(FIFO_PER_GROUP).keys()].join(), `FIFO ${g} received in send order: ${order[g]}`);
  }

  // Delays: not early, and by due + 1 s.
  await delays;
  check(arrivals.size === due.size, `${arrivals.size}/${due.size} delayed messages received`);
  for (const [id, at] of arrivals) {
    const late = (at - due.get(id)) / 1000;
    check(late >= -0.05 && late <= 1.0, `delayed message received ${late >= 0 ? '+' : ''}${late.toFixed(2)} s after its due time`);
  }

  // Transactions: commit and check-back commit delivered, rollback never.
  const tx = await simple('tx');
  const bodies = new Map();
  await receiveUntil(tx, () => bodies.has('tx-commit') && bodies.has('tx-unknown'), 30000,
    m => { const b = m.body.toString(); bodies.set(b, (bodies.get(b) ?? 0) + 1); });
  const askedBodies = asked.map(([, b]) => b);
  check(bodies.get('tx-commit') === 1, 'committed transaction delivered once');
  check(bodies.get('tx-unknown') === 1, `UNKNOWN transaction delivered once after check-back (${askedBodies}, ${asked.length ? ((asked[0][0] - txSent) / 1000).toFixed(1) : 0} s after send)`);
  check(askedBodies.join() === 'tx-unknown', `only the UNKNOWN transaction was checked back: ${askedBodies}`);
  check(!bodies.has('tx-rollback'), 'rolled-back transaction never delivered');

  // PushConsumer: each redelivered exactly once, then acked.
  await waitFor(() => pushed.every(id => (deliveries.get(id) ?? []).length >= 2), 30000);
  await sleep(1500); // a third delivery would show up here
  for (const id of pushed) {
    const d = deliveries.get(id) ?? [];
    check(d.join() === '1,2', `PushConsumer: failed once, redelivered once: attempts [${d}]`);
  }
} catch (e) {
  check(false, `unexpected error: ${e && e.stack || e}`);
} finally {
  for (const client of clients.reverse()) {
    try { await client.shutdown(); } catch (e) { console.error(`node: shutdown: ${e}`); }
  }
  writeFileSync(outPath, sent.map(s => JSON.stringify(s)).join('\n') + '\n');
}
console.log(`node: ${failed ? `${failed} checks failed` : 'all checks passed'}`);
process.exit(failed ? 1 : 0);
