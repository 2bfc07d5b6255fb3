// An order flow in Node: events with tags and keys, a consumer group that only
// wants some tags, a delayed reminder, and a transactional payment. From the
// repository, after `make test` (or `bash wasm/build.sh`) built wasm/pkg:
//   npm install --no-save ./wasm/pkg && node examples/js/order_flow.mjs
import { Broker, TxState } from "pocketmq";

const broker = new Broker();
const shop = broker.producer("shop");
for (const [key, tags] of [["order-41", "created"], ["order-41", "paid"], ["order-41", "shipped"]]) {
  shop.send("orders", `${key} ${tags}`, { tags, keys: key, shardingKey: key });
}
shop.send("orders", "order-41 review reminder", { tags: "reminder", keys: "order-41", delayMs: 300 });

const payments = broker.transactionProducer("payments", {
  check: (msg) => (msg.keys.includes("order-43") ? TxState.COMMIT : TxState.ROLLBACK),
});
const result = payments.send("orders", "order-43 paid", {
  tags: "paid",
  keys: "order-43",
  execute: () => TxState.COMMIT, // the local transaction (e.g. a database update) went through
});
console.log("payment", result.msgId, result.transactionState);

const sms = broker.consumer({ group: "sms", topic: "orders", tags: "paid || shipped || reminder" });
let seen = 0;
while (seen < 4) {
  const msgs = await sms.receive({ maxMessages: 32, timeoutMs: 2000 });
  if (msgs.length === 0) break;
  for (const msg of msgs) {
    console.log(`sms: [${msg.tags}] ${msg.text()} (queue ${msg.queueId}, offset ${msg.queueOffset})`);
    sms.ack(msg);
    seen += 1;
  }
}
console.log("history of order-41:", broker.query("orders", "order-41").map((m) => m.tags).join(" -> "));
console.log("lag of sms:", broker.lag("sms", "orders"));
broker.close();
