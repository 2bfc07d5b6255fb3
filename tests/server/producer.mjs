// Sends normal, FIFO (three message groups) and delayed messages to a pocketmq-serve
// with the official Node client (npm rocketmq-client-nodejs), and writes what it sent,
// one JSON object per line, for check.py.
//
// usage: node producer.mjs HOST:PORT TOPIC_PREFIX OUT.jsonl

import { writeFileSync } from 'node:fs';
import { Producer } from 'rocketmq-client-nodejs';

const NORMAL = 20;
const FIFO_GROUPS = ['group-a', 'group-b', 'group-c'];
const FIFO_PER_GROUP = 10;
const DELAYED = 3;
const DELAY_MS = 3000;

const [endpoint, prefix, outPath] = process.argv.slice(2);
const topics = { normal: `${prefix}-normal`, fifo: `${prefix}-fifo`, delay: `${prefix}-delay` };

// Naming the topics makes startup wait for the server's settings reply.
const producer = new Producer({ endpoints: endpoint, topics: Object.values(topics), logger: quietLogger() });
const sent = [];

function quietLogger() {
  const noop = () => {};
  return { info: noop, debug: noop, warn: console.warn, error: console.error };
}

async function send(kind, body, fields = {}) {
  const receipt = await producer.send({
    topic: topics[kind],
    tag: `tag-${kind}`,
    keys: [ `key-${body}` ],
    properties: new Map([[ 'origin', 'node' ]]),
    body: Buffer.from(body),
    messageGroup: fields.group,
    deliveryTimestamp: fields.deliverAt,
  });
  sent.push({
    client: 'node',
    kind,
    topic: topics[kind],
    message_id: receipt.messageId,
    body,
    tag: `tag-${kind}`,
    keys: [ `key-${body}` ],
    group: fields.group ?? null,
    deliver_at_ms: fields.deliverAt ? fields.deliverAt.getTime() : null,
  });
}

const startup = producer.startup();
const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('startup did not finish in 20 s (no settings reply?)')), 20000));
await Promise.race([ startup, timeout ]);
try {
  for (let i = 0; i < NORMAL; i++) await send('normal', `node-normal-${i}`);
  for (let i = 0; i < FIFO_PER_GROUP; i++) {
    for (const g of FIFO_GROUPS) await send('fifo', `node-${g}-${i}`, { group: g });
  }
  const at = new Date(Date.now() + DELAY_MS);
  for (let i = 0; i < DELAYED; i++) await send('delay', `node-delay-${i}`, { deliverAt: at });
} finally {
  await producer.shutdown();
}
writeFileSync(outPath, sent.map(s => JSON.stringify(s)).join('\n') + '\n');
console.log(`node: sent ${sent.length} messages`);
process.exit(0);
