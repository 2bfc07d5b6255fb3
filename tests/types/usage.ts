// Compile-time checks of the declarations: what must type-check, and what must not.
import {
  Broker,
  ClosedError,
  DiskFullError,
  InvalidArgumentError,
  ManualClock,
  Message,
  PocketMQError,
  SendResult,
  Stats,
  TxState,
} from "pocketmq";

export async function usage(): Promise<void> {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const broker = new Broker({ clock, delayLevels: "1s 5s", maxMessageSize: 1024, autoCreateTopics: true, flush: "sync" });
  broker.createTopic("orders", { queues: 8 });
  const p = broker.producer("shop");
  const r: SendResult = p.send("orders", new Uint8Array([1]), {
    tags: "paid",
    keys: ["a", "b"],
    properties: { k: "v" },
    shardingKey: "a",
    deliverAt: new Date(),
  });
  const status: "SEND_OK" | "FLUSH_DISK_TIMEOUT" = r.status;
  p.sendBatch("orders", ["a", { body: "b", tags: "x" }], { keys: "k" });
  p.send("orders", "x", { delayMs: 10 });
  p.send("orders", "x", { delayLevel: 3, queueId: 1 });

  const c = broker.consumer({ group: "sms", topic: "orders", tags: "paid || shipped", orderly: true, start: "latest" });
  const msgs: Message[] = await c.receive({ maxMessages: 32, timeoutMs: 1000 });
  for (const m of msgs) {
    const body: Uint8Array = m.body;
    const text: string = m.text();
    const tags: string | null = m.tags;
    const n: number = m.queueOffset + m.reconsumeTimes + m.bornTimestamp;
    c.ack(m);
    void [body, text, tags, n];
  }
  c.nack(msgs);
  for await (const m of c) {
    c.ack(m);
    break;
  }

  const tp = broker.transactionProducer("pay", { check: (m: Message) => (m.keys.length ? TxState.COMMIT : "ROLLBACK") });
  const tr = tp.send("orders", "x", { execute: () => TxState.UNKNOWN, tags: "t" });
  const state: TxState | undefined = tr.transactionState;

  const found: Message | null = broker.get(r.msgId);
  const byKey: Message[] = broker.query("orders", "a");
  const lag: number = broker.lag("sms", "orders");
  broker.resetOffset("sms", "orders", "earliest");
  broker.resetOffset("sms", "orders", new Date());
  const stats: Stats = broker.stats();
  const inRate: number | undefined = stats.topics["orders"]?.inRate;
  broker.tick();
  clock.advance(1000);
  const now: number = clock.now();
  broker.close();
  const closed: boolean = broker.closed;

  try {
    p.send("orders", "x");
  } catch (err) {
    if (err instanceof PocketMQError) {
      const code: "InvalidArgument" | "MessageTooLarge" | "TopicNotFound" | "StoreLocked" | "StoreCorrupted" | "Closed" | "Io" | "DISK_FULL" = err.code;
      void code;
    }
    if (err instanceof DiskFullError) {
      const code: "DISK_FULL" = err.code;
      void code;
    }
    if (err instanceof ClosedError) {
      const code: "Closed" = err.code;
      void code;
    }
    if (err instanceof InvalidArgumentError) void err.message;
  }
  void [status, state, found, byKey, lag, inRate, now, closed];

  // @ts-expect-error a consumer needs a group and a topic
  broker.consumer({ topic: "orders" });
  // @ts-expect-error bodies are strings or bytes
  p.send("orders", 42);
  // @ts-expect-error options are camelCase
  p.send("orders", "x", { delay_level: 3 });
  // @ts-expect-error flush is one of three modes
  new Broker({ flush: "sometimes" });
  // @ts-expect-error execute is required on a transactional send
  tp.send("orders", "x", {});
  // @ts-expect-error receive returns a Promise
  const notAwaited: Message[] = c.receive();
  void notAwaited;
}
