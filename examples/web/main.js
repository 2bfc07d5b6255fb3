// The order-flow demo in a page: send order events, receive the ones the SMS
// service cares about, show them, ack them, report the group's lag.
import { Broker } from "pocketmq";

const result = /** @type {HTMLElement} */ (document.getElementById("result"));
const status = /** @type {HTMLElement} */ (document.getElementById("status"));

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

async function main() {
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

main().catch((err) => {
  status.textContent = `failed: ${err && err.code ? err.code + ": " : ""}${err && err.message ? err.message : err}`;
  status.className = "failed";
});
