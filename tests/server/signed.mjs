// Sends one message to a pocketmq-serve that checks credentials, signed with the given
// access key and secret by the official Node client.
//
// usage: node signed.mjs HOST:PORT TOPIC ACCESS_KEY SECRET_KEY
// Exits 0 when the message was stored, 3 when the server refused it.

import { Producer } from 'rocketmq-client-nodejs';

const [endpoint, topic, accessKey, accessSecret] = process.argv.slice(2);
const noop = () => {};
const producer = new Producer({
  endpoints: endpoint,
  topics: [ topic ],
  sessionCredentials: { accessKey, accessSecret },
  logger: { info: noop, debug: noop, warn: noop, error: noop },
});
let code = 0;
try {
  await producer.startup();
  const receipt = await producer.send({ topic, body: Buffer.from('signed by node') });
  console.log(`node: stored ${receipt.messageId}`);
} catch (e) {
  console.log(`node: refused: ${String(e.message ?? e).split('\n')[0]}`);
  code = 3;
}
try {
  await producer.shutdown();
} catch {
  // a client that never started has nothing to shut down
}
process.exit(code);
