// Compile-time checks of the declarations: what must type-check, and what must not.
import {
  Broker,
  ClosedError,
  ConsumeProgress,
  DiskFullError,
  InvalidArgumentError,
  ManualClock,
  Message,
  PocketMQError,
  SendResult,
  NotSupportedError,
  RemoteBroker,
  SimpleConsumer,
  Stats,
  TxState,
  connect,
  setLogLevel,
} from "pocketmq";

export async function usage(): Promise<void> {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const broker = new Broker({ clock, delayLevels: "1s 5s", maxMessageSize: 1024, autoCreateTopics: true, flush: "sync", dedupWindowMs: 120_000 });
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
  const dup: boolean = p.send("orders", "x", { dedupId: "pay-42" }).duplicate;
  p.sendBatch("orders", [{ body: "a", dedupId: "1" }, { body: "b", dedupId: "2" }]);

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
  const tpAsync = broker.transactionProducer("pay", { check: async () => TxState.COMMIT });
  const pending: Promise<SendResult> = tpAsync.send("orders", "x", { execute: async () => TxState.COMMIT });
  void pending;

  const found: Message | null = broker.get(r.msgId);
  const byKey: Message[] = broker.query("orders", "a");
  const lag: number = broker.lag("sms", "orders");
  broker.resetOffset("sms", "orders", "earliest");
  broker.resetOffset("sms", "orders", new Date());
  const stats: Stats = broker.stats();
  const inRate: number | undefined = stats.topics["orders"]?.inRate;
  const totals: number = stats.messagesIn + stats.messagesRetained;
  const moved: number = broker.moveBacklog("sms", "orders", {
    to: "orders-wide",
    queues: 16,
    onProgress: (done: number, total: number) => void [done, total],
  });
  const browsed: Message[] = broker.browse("orders", { queueId: 0, offset: 10, limit: 5 });
  const window: Message[] = broker.queryByTime("orders", new Date(0), Date.now(), { limit: 10 });
  const rows: ConsumeProgress[] = broker.progress("sms", "orders");
  const last: number | null = rows[0].lastStoreTimestamp;
  const dead: Message[] = broker.deadLetters("sms", { limit: 10 });
  const redriven: number = broker.redrive("sms", { limit: 5 });
  broker.deleteTopic("orders-wide");
  setLogLevel("info");
  void [totals, moved, browsed, window, last, dead, redriven];
  broker.tick();
  clock.advance(1000);
  const now: number = clock.now();
  const sc: SimpleConsumer = broker.simpleConsumer({ group: "billing", topic: "orders", invisibleDurationMs: 30_000, fifo: false });
  void sc.receive({ maxMessages: 16, timeoutMs: 0 }).then((ms: Message[]) => {
    for (const m of ms) {
      const h: string | null = m.receiptHandle;
      const a: number = m.deliveryAttempt;
      void [h, a];
      sc.changeInvisibleDuration(m, 60_000);
      sc.ack(m);
    }
  });
  broker.close();
  const closed: boolean = broker.closed;

  try {
    p.send("orders", "x");
  } catch (err) {
    if (err instanceof PocketMQError) {
      const code: "InvalidArgument" | "MessageTooLarge" | "TopicNotFound" | "StoreLocked" | "StoreCorrupted" | "Closed" | "INVALID_RECEIPT_HANDLE" | "Io" | "DISK_FULL" | "NotSupported" = err.code;
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
  // @ts-expect-error moveBacklog needs the topic to move to
  broker.moveBacklog("sms", "orders", { queues: 4 });
  // @ts-expect-error log levels are named
  setLogLevel("loud");
  // @ts-expect-error receive returns a Promise
  const notAwaited: Message[] = c.receive();
  void notAwaited;
}

// connect(): the same producers and consumers over the network, Promises where it waits.
export async function remote(): Promise<void> {
  const broker: RemoteBroker = connect("127.0.0.1:8081", { namespace: "shop" });
  const r: SendResult = await broker.producer("p").send("orders", "x", { tags: "paid", keys: ["order-42"] });
  const c = broker.consumer("sms", "orders", { tags: "paid", ackTimeoutMs: 60_000 });
  for (const m of await c.receive({ maxMessages: 32, timeoutMs: 1000 })) await c.ack(m);
  const tp = broker.transactionProducer("pay");
  await tp.send("orders", "x", { execute: async () => TxState.COMMIT });
  try {
    await c.nack([], { delayMs: 1000 });
  } catch (e) {
    if (e instanceof NotSupportedError) void e.code;
  }
  // @ts-expect-error what the protocol cannot carry is not declared (it throws NotSupportedError)
  broker.stats();
  await broker.close();
  void r;
  // @ts-expect-error a remote send returns a Promise
  const sent: SendResult = broker.producer().send("orders", "x");
  void sent;
}
