// `connect()`: the producers and consumers of `Broker` over Apache RocketMQ 5's gRPC
// protocol, to a `pocketmq serve` or an Apache RocketMQ 5 proxy (Node only). It runs
// over the official RocketMQ Node client (the optional package
// `rocketmq-client-nodejs`), loaded when a client first needs it: the package itself
// stays free of gRPC for everyone who embeds the engine. docs/CONNECT.md has the map
// from calls to the protocol and what differs from the embedded broker.

import {
  ClosedError,
  InvalidArgumentError,
  InvalidReceiptHandleError,
  IoError,
  MessageTooLargeError,
  NotSupportedError,
  PocketMQError,
  TopicNotFoundError,
} from "./errors.js";
import { Message, RetryLater, TxState } from "./pocketmq.js";
import { SEND_OPTIONS, isPlainObject, optionsObject } from "./wire.js";

const OFFICIAL = "rocketmq-client-nodejs";
/** RocketMQ's 18 delay levels (the protocol carries times, not levels). */
const LEVELS_MS = [1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200].map((s) => s * 1000);
/** The servers' retry backoff by delivery attempt (RocketMQ's levels 3 and up). */
const BACKOFF_MS = LEVELS_MS.slice(2);
/** How long one ReceiveMessage polls (Apache's proxy holds a poll at least 5 s). */
const POLL_MS = 15_000;
/** The servers' bounds of an invisible duration. */
const MIN_INVISIBLE_MS = 10_000;
const MAX_INVISIBLE_MS = 12 * 3600_000;
/** The most messages one ReceiveMessage returns (the servers' batch limit). */
const MAX_BATCH = 32;

let loaded = null;

/**
 * The official client's modules, loaded once: found from this package, else from the
 * main script or the working directory (an application whose copy of this package is
 * linked in, as `npm link` or a `file:` dependency does, which resolve to elsewhere).
 */
async function official() {
  if (loaded !== null) return loaded;
  const { createRequire } = await import("node:module");
  let first;
  const main = process.argv[1];
  for (const from of [import.meta.url, ...(main ? [main] : []), `${process.cwd()}/`]) {
    try {
      const require = createRequire(from);
      const client = require(OFFICIAL);
      const pb = require(`${OFFICIAL}/proto/apache/rocketmq/v2/definition_pb`);
      loaded = { ...client, pb };
      return loaded;
    } catch (e) {
      first ??= e;
    }
  }
  throw new NotSupportedError(
    `connect() runs over the official RocketMQ Node client: npm install ${OFFICIAL} (${first && first.message})`,
  );
}

/** The error of pocketmq's that an official client's failure stands for. */
function ours(e, official) {
  if (e instanceof PocketMQError) return e;
  const Code = official?.pb?.Code ?? {};
  const code = e && typeof e.code === "number" && e.code >= 20000 ? e.code : undefined;
  const text = `${e && e.message ? e.message : e}`;
  if (code === undefined) return new IoError(`i/o error: ${text}`);
  if (code === Code.TOPIC_NOT_FOUND) return new TopicNotFoundError(`topic not found: ${text}`);
  if (code === Code.MESSAGE_BODY_TOO_LARGE || code === Code.PAYLOAD_TOO_LARGE) return new MessageTooLargeError(text);
  if (code === Code.INVALID_RECEIPT_HANDLE) return new InvalidReceiptHandleError(`invalid receipt handle: ${text}`);
  if (code === Code.NOT_IMPLEMENTED) return new NotSupportedError(text);
  if (code >= 40000 && code < 50000 && code !== Code.UNAUTHORIZED && code !== Code.REQUEST_TIMEOUT) {
    return new InvalidArgumentError(`invalid argument: ${text}`);
  }
  return new IoError(`i/o error: ${text}`);
}

/** A name: a non-empty string (the server checks the rest, as it does for every client). */
function name(what, v) {
  if (typeof v !== "string") throw new TypeError(`${what} must be a string`);
  if (v.trim() === "" || /[\s\u0000-\u001f]/.test(v)) throw new InvalidArgumentError(`invalid argument: ${what} ${JSON.stringify(v)}`);
  return v;
}

/** A number of ms, or undefined for absent. */
function ms(what, v) {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number") throw new TypeError(`${what} must be a number`);
  if (!(v >= 0) || !Number.isFinite(v)) throw new InvalidArgumentError(`invalid argument: ${what} must be a finite number >= 0`);
  return Math.floor(v);
}

/** The official client's message for `send(topic, body, options)`. */
function outgoing(topic, body, options) {
  name("topic", topic);
  let bytes;
  if (typeof body === "string") bytes = Buffer.from(body);
  else if (ArrayBuffer.isView(body)) bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  else if (body instanceof ArrayBuffer) bytes = Buffer.from(body);
  else throw new TypeError(`body must be a string, a Uint8Array or an ArrayBuffer, not ${body === null ? "null" : typeof body}`);
  if (bytes.length === 0) throw new InvalidArgumentError("invalid argument: the message body is empty");
  const o = optionsObject("send option", options, SEND_OPTIONS);
  if (o.queueId != null) throw new NotSupportedError("send({ queueId }): the server chooses the queue over the RocketMQ 5 protocol");
  if (o.dedupId != null) throw new NotSupportedError("send({ dedupId }): the RocketMQ 5 protocol carries no dedup id");
  const msg = { topic, body: bytes };
  if (o.tags != null) {
    if (typeof o.tags !== "string") throw new TypeError("tags must be a string");
    if (o.tags === "" || o.tags.includes("||")) throw new InvalidArgumentError(`invalid argument: tag ${JSON.stringify(o.tags)}`);
    msg.tag = o.tags;
  }
  if (o.keys != null) {
    const keys = typeof o.keys === "string" ? [o.keys] : o.keys;
    if (!Array.isArray(keys) || keys.some((k) => typeof k !== "string")) throw new TypeError("keys must be a string or an array of strings");
    // One key per word, as RocketMQ's KEYS holds them.
    const words = keys.flatMap((k) => k.split(" ")).filter((w) => w !== "");
    if (keys.some((k) => k.trim() === "")) throw new InvalidArgumentError("invalid argument: a key is blank");
    msg.keys = words;
  }
  if (o.properties != null) {
    const entries = o.properties instanceof Map ? [...o.properties] : isPlainObject(o.properties) ? Object.entries(o.properties) : null;
    if (entries === null) throw new TypeError("properties must be an object or a Map of strings");
    for (const [k, v] of entries) {
      if (typeof k !== "string" || typeof v !== "string") throw new TypeError("properties must map strings to strings");
      if (k === "" || v === "") throw new InvalidArgumentError(`invalid argument: property ${JSON.stringify(k)} is empty`);
    }
    msg.properties = new Map(entries);
  }
  if (o.shardingKey != null) {
    if (typeof o.shardingKey !== "string") throw new TypeError("shardingKey must be a string");
    if (o.shardingKey === "") throw new InvalidArgumentError("invalid argument: the sharding key is empty");
    msg.messageGroup = o.shardingKey;
  }
  const delays = ["delayLevel", "deliverAt", "delayMs"].filter((k) => o[k] != null);
  if (delays.length > 1) throw new InvalidArgumentError(`invalid argument: give one of ${delays.join(", ")}`);
  let at;
  if (o.delayLevel != null) {
    if (typeof o.delayLevel !== "number") throw new TypeError("delayLevel must be a number");
    if (!Number.isInteger(o.delayLevel) || o.delayLevel < 0) throw new InvalidArgumentError("invalid argument: delayLevel is a whole number >= 0");
    if (o.delayLevel > 0) at = Date.now() + LEVELS_MS[Math.min(o.delayLevel, LEVELS_MS.length) - 1];
  } else if (o.delayMs != null) {
    at = Date.now() + ms("delayMs", o.delayMs);
  } else if (o.deliverAt != null) {
    at = o.deliverAt instanceof Date ? o.deliverAt.getTime() : o.deliverAt;
    if (typeof at !== "number") throw new TypeError("deliverAt must be epoch ms or a Date");
    if (!Number.isFinite(at)) throw new InvalidArgumentError("invalid argument: deliverAt is not a time");
  }
  if (at !== undefined) {
    if (msg.messageGroup !== undefined) throw new NotSupportedError("a message is FIFO (shardingKey) or delayed over the RocketMQ 5 protocol, not both");
    msg.deliveryTimestamp = new Date(Math.max(at, Date.now()));
  }
  return msg;
}

/** A received message: the embedded `Message`, with the delivery's receipt handle. */
class RemoteMessage extends Message {
  #handle;
  constructor(view) {
    const props = {};
    for (const [k, v] of view.properties ?? []) props[k] = v;
    const body = new Uint8Array(view.body.buffer, view.body.byteOffset, view.body.byteLength);
    const attempt = view.deliveryAttempt ?? 1;
    super({ native: null, open: 0 }, 0, view.messageId, view.topic, 0, view.offset ?? 0, 0, body, view.tag || null,
      // The official Node client keeps no store time: the born time stands for it.
      [...(view.keys ?? [])], props, view.bornTimestamp?.getTime() ?? 0, view.bornTimestamp?.getTime() ?? 0,
      Math.max(0, attempt - 1), attempt, view.receiptHandle);
    this.#handle = view.receiptHandle;
  }
  get receiptHandle() {
    return this.#handle;
  }
  static renew(m, handle) {
    m.#handle = handle;
  }
}

/** What a transactional `execute` or `check` decided, as the protocol names it. */
function resolution(state, pb) {
  if (state === TxState.COMMIT) return pb.TransactionResolution.COMMIT;
  if (state === TxState.ROLLBACK) return pb.TransactionResolution.ROLLBACK;
  return pb.TransactionResolution.TRANSACTION_RESOLUTION_UNSPECIFIED;
}

/** The broker over the network: `connect(endpoint, { accessKey, secretKey, namespace })`. */
export class RemoteBroker {
  #endpoint;
  #base;
  #clients = new Set();
  #consumers = new Set();
  #closed = false;

  constructor(endpoint, base) {
    this.#endpoint = endpoint;
    this.#base = base;
  }

  get endpoint() {
    return this.#endpoint;
  }

  get namespace() {
    return this.#base.namespace;
  }

  get closed() {
    return this.#closed;
  }

  /** @internal the official client of `kind`, started; closed with this broker. */
  async _start(make) {
    if (this.#closed) throw new ClosedError("closed");
    const o = await official();
    if (this.#closed) throw new ClosedError("closed");
    const client = make(o, { ...this.#base });
    this.#clients.add(client);
    try {
      await client.startup();
    } catch (e) {
      this.#clients.delete(client);
      client.shutdown().catch(() => {});
      throw ours(e, o);
    }
    return { client, o };
  }

  /** @internal */
  _forget(client) {
    this.#clients.delete(client);
  }

  /** @internal a consumer, closed with this broker (`_drop` when it closes first). */
  _adopt(consumer) {
    this.#consumers.add(consumer);
    return consumer;
  }

  /** @internal */
  _drop(consumer) {
    this.#consumers.delete(consumer);
  }

  #live() {
    if (this.#closed) throw new ClosedError("closed");
  }

  producer(group = "DEFAULT_PRODUCER") {
    this.#live();
    return new RemoteProducer(this, name("group", group), null);
  }

  transactionProducer(group, options) {
    this.#live();
    const { check } = optionsObject("transaction producer option", options, ["check"]);
    if (check != null && typeof check !== "function") throw new TypeError("check must be a function returning a TxState");
    return new RemoteProducer(this, name("group", group), check ?? (() => TxState.UNKNOWN));
  }

  consumer(group, topic, options) {
    this.#live();
    if (group !== null && typeof group === "object") return this.consumer(group.group, group.topic, withoutNames(group));
    const o = optionsObject("consumer option", options, ["tags", "sql", "broadcasting", "orderly", "maxReconsumeTimes", "start", "consumerId", "ackTimeoutMs", "maxInFlight"]);
    if (o.broadcasting) throw new NotSupportedError("consumer({ broadcasting }): the RocketMQ 5 clients have no broadcasting");
    if (o.orderly) throw new NotSupportedError("consumer({ orderly }): FIFO is the group's, set on the server (pocketmq serve --fifo-groups, mqadmin updateSubGroup -o true)");
    if (o.start != null && o.start !== "earliest") throw new NotSupportedError("consumer({ start }): over the protocol a new group starts at the earliest message");
    if (o.maxInFlight != null) throw new NotSupportedError("consumer({ maxInFlight }): the protocol has no flow control of this kind");
    if (o.maxReconsumeTimes != null && o.maxReconsumeTimes !== 16) throw new NotSupportedError("consumer({ maxReconsumeTimes }): retries are the group's, set on the server (16)");
    let invisible = o.ackTimeoutMs === null ? MAX_INVISIBLE_MS : (ms("ackTimeoutMs", o.ackTimeoutMs) ?? 900_000);
    if (invisible < MIN_INVISIBLE_MS || invisible > MAX_INVISIBLE_MS) {
      throw new InvalidArgumentError(`invalid argument: ackTimeoutMs over the protocol is ${MIN_INVISIBLE_MS} to ${MAX_INVISIBLE_MS} ms`);
    }
    return this._adopt(new RemoteConsumer(this, name("group", group), name("topic", topic), filter(o), invisible, true));
  }

  simpleConsumer(group, topic, options) {
    this.#live();
    if (group !== null && typeof group === "object") return this.simpleConsumer(group.group, group.topic, withoutNames(group));
    const o = optionsObject("simple consumer option", options, ["tags", "sql", "invisibleDurationMs", "maxDeliveryAttempts", "fifo"]);
    if (o.fifo) throw new NotSupportedError("simpleConsumer({ fifo }): FIFO is the group's, set on the server");
    if (o.maxDeliveryAttempts != null && o.maxDeliveryAttempts !== 17) {
      throw new NotSupportedError("simpleConsumer({ maxDeliveryAttempts }): the server decides (17 on pocketmq serve and Apache RocketMQ)");
    }
    const invisible = ms("invisibleDurationMs", o.invisibleDurationMs) ?? 30_000;
    return this._adopt(new RemoteConsumer(this, name("group", group), name("topic", topic), filter(o), invisible, false));
  }

  /** Shuts every client down; waiting receives resolve with []. Twice is harmless. */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    const consumers = [...this.#consumers];
    this.#consumers.clear();
    await Promise.all(consumers.map((c) => c.close()));
    const clients = [...this.#clients];
    this.#clients.clear();
    await Promise.all(clients.map((c) => c.shutdown().catch(() => {})));
  }
}

function withoutNames(o) {
  const { group: _g, topic: _t, ...rest } = o;
  return rest;
}

/** `{ tags }` or `{ sql }` as a filter: [expression, "TAG" | "SQL92"]. */
function filter(o) {
  if (o.tags != null && o.sql != null) throw new InvalidArgumentError("invalid argument: give tags or sql, not both");
  if (o.sql != null) {
    if (typeof o.sql !== "string") throw new TypeError("sql must be a string");
    return [o.sql, "SQL92"];
  }
  if (o.tags != null && typeof o.tags !== "string") throw new TypeError("tags must be a string");
  return [o.tags ?? "*", "TAG"];
}

// What the protocol cannot carry: NotSupportedError, naming the call.
for (const call of ["createTopic", "topics", "atomic", "get", "query", "lag", "resetOffset", "moveBacklog", "browse",
  "queryByTime", "progress", "deadLetters", "redrive", "deleteTopic", "stats", "tick", "nextDue", "flush"]) {
  RemoteBroker.prototype[call] = function () {
    throw new NotSupportedError(`${call}(): the RocketMQ 5 protocol that connect() speaks does not carry it`);
  };
}

class RemoteProducer {
  #broker;
  #group;
  #check;
  #started = null;

  constructor(broker, group, check) {
    this.#broker = broker;
    this.#group = group;
    this.#check = check;
  }

  get group() {
    return this.#group;
  }

  #client() {
    if (this.#broker.closed) return Promise.reject(new ClosedError("closed"));
    const check = this.#check;
    this.#started ??= this.#broker._start((o, base) => new o.Producer({
      ...base,
      checker: check && {
        check: async (view) => {
          let state;
          try {
            state = await check(new RemoteMessage(view));
          } catch {
            state = TxState.UNKNOWN;
          }
          return resolution(state, o.pb);
        },
      },
    }));
    this.#started.catch(() => (this.#started = null));
    return this.#started;
  }

  #result(topic, receipt) {
    const r = { msgId: receipt.messageId, topic, queueId: 0, queueOffset: Number(receipt.offset ?? 0), commitlogOffset: 0, status: "SEND_OK", duplicate: false };
    if (receipt.recallHandle) r.recallHandle = receipt.recallHandle;
    return r;
  }

  /** Stores one message: a Promise of its SendResult (or, from a transaction producer with `execute`, once its outcome is recorded). */
  async send(topic, body, options) {
    if (this.#check !== null) return this.#sendHalf(topic, body, options);
    const msg = outgoing(topic, body, options);
    const { client, o } = await this.#client();
    try {
      return this.#result(topic, await client.send(msg));
    } catch (e) {
      throw ours(e, o);
    }
  }

  async #sendHalf(topic, body, options) {
    const { execute, ...rest } = optionsObject("send option", options, [...SEND_OPTIONS, "execute"]);
    if (typeof execute !== "function") throw new TypeError("send options need execute, a function returning a TxState");
    const msg = outgoing(topic, body, rest);
    const { client, o } = await this.#client();
    const tx = client.beginTransaction();
    let result;
    try {
      result = this.#result(topic, await client.send(msg, tx));
    } catch (e) {
      throw ours(e, o);
    }
    // What `execute` sees: the half message, as embedded.
    const props = Object.fromEntries(msg.properties ?? []);
    const half = new Message({ native: null, open: 0 }, 0, result.msgId, topic, 0, result.queueOffset, 0,
      new Uint8Array(msg.body.buffer, msg.body.byteOffset, msg.body.byteLength), msg.tag ?? null, msg.keys ?? [], props,
      Date.now(), 0, 0, 1, null);
    let state;
    try {
      state = await execute(half);
    } catch {
      state = TxState.UNKNOWN; // left to check, as embedded
    }
    try {
      if (state === TxState.COMMIT) await tx.commit();
      else if (state === TxState.ROLLBACK) await tx.rollback();
    } catch (e) {
      throw ours(e, o);
    }
    result.transactionState = state === TxState.COMMIT || state === TxState.ROLLBACK ? state : TxState.UNKNOWN;
    return result;
  }

  /** Sends each item in turn (the official client sends one message a call): not all-or-none, unlike embedded. */
  async sendBatch(topic, items, options) {
    if (this.#check !== null) throw new NotSupportedError("sendBatch(): a transaction producer sends one message at a time, as embedded");
    if (!Array.isArray(items)) throw new TypeError("sendBatch takes an array of bodies or { body, ...options }");
    const each = items.map((item) => {
      if (isPlainObject(item)) {
        const { body, ...own } = item;
        return [body, { ...options, ...own }];
      }
      return [item, options];
    });
    for (const [body, o] of each) outgoing(topic, body, o); // every item checked before any is sent
    const out = [];
    for (const [body, o] of each) out.push(await this.send(topic, body, o));
    return out;
  }

  /** Cancels a delayed message before it is delivered: true when it was waiting; false when its time has come. */
  async recall(topic, recallHandle) {
    name("topic", topic);
    if (typeof recallHandle !== "string") throw new TypeError("recallHandle must be a string");
    const { client, o } = await this.#client();
    try {
      await client.recallMessage(topic, recallHandle);
      return true;
    } catch (e) {
      const mine = ours(e, o);
      if (e && (e.code === o.pb.Code.MESSAGE_NOT_FOUND || /timestamp invalid/.test(e.message ?? ""))) return false;
      throw mine;
    }
  }
}

/** A consumer over a SimpleConsumer client: `classic` for `consumer()` (nack, ack timeouts), else `simpleConsumer()`. */
class RemoteConsumer {
  #broker;
  #group;
  #topic;
  #filter;
  #invisible;
  #classic;
  #started = null;
  #closed = false;
  /** The poll under way: its messages go to the next receive if its own has ended. */
  #poll = null;
  #ready = [];
  #waiters = new Set();
  /** A failed poll's error, for the next receive to throw. */
  #failed = null;
  /** Each message's view, for its acks. */
  #views = new WeakMap();

  constructor(broker, group, topic, filterOf, invisible, classic) {
    this.#broker = broker;
    this.#group = group;
    this.#topic = topic;
    this.#filter = filterOf;
    this.#invisible = invisible;
    this.#classic = classic;
  }

  get group() {
    return this.#group;
  }

  get topic() {
    return this.#topic;
  }

  get closed() {
    return this.#closed || this.#broker.closed;
  }

  #client() {
    const [expression, type] = this.#filter;
    this.#started ??= this.#broker._start((o, base) => new o.SimpleConsumer({
      ...base,
      consumerGroup: this.#group,
      subscriptions: new Map([[this.#topic, new o.FilterExpression(expression, o.pb.FilterType[type])]]),
      awaitDuration: POLL_MS,
    }));
    this.#started.catch(() => (this.#started = null));
    return this.#started;
  }

  #live() {
    if (this.closed) throw new ClosedError("closed");
  }

  /** Starts a poll unless one is under way; its messages land in `#ready`. */
  #startPoll(client, o, max) {
    if (this.#poll !== null) return this.#poll;
    this.#poll = client.receive(Math.min(max, MAX_BATCH), this.#invisible).then(
      (views) => {
        for (const v of views) {
          const m = new RemoteMessage(v);
          this.#views.set(m, v);
          this.#ready.push(m);
        }
      },
      (e) => {
        if (!this.closed) this.#failed = ours(e, o);
      },
    ).finally(() => {
      this.#poll = null;
      for (const wake of this.#waiters) wake();
    });
    return this.#poll;
  }

  /** Up to `maxMessages` messages (at most 32 a call), waiting up to `timeoutMs` (Infinity: no limit) for the first. */
  async receive(options) {
    const o0 = optionsObject("receive option", options, ["maxMessages", "timeoutMs"]);
    const max = o0.maxMessages ?? 32;
    if (typeof max !== "number") throw new TypeError("maxMessages must be a number");
    if (!Number.isInteger(max) || max < 0) throw new InvalidArgumentError("invalid argument: maxMessages is a whole number >= 0");
    const timeoutMs = o0.timeoutMs ?? 1000;
    if (typeof timeoutMs !== "number") throw new TypeError("timeoutMs must be a number (Infinity: no limit)");
    if (!(timeoutMs >= 0)) throw new InvalidArgumentError("invalid argument: timeoutMs must be >= 0");
    this.#live();
    if (max === 0) return [];
    const { client, o } = await this.#client();
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.closed) return [];
      if (this.#failed !== null) {
        const e = this.#failed;
        this.#failed = null;
        throw e;
      }
      if (this.#ready.length > 0) return this.#ready.splice(0, max);
      const left = deadline - performance.now();
      if (left <= 0) return [];
      this.#startPoll(client, o, max);
      await new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = left === Infinity ? undefined : setTimeout(done, left);
        this.#waiters.add(done);
      });
    }
  }

  #view(m) {
    if (!(m instanceof Message)) throw new TypeError("ack and nack take a message that receive returned");
    const v = this.#views.get(m);
    if (v === undefined) throw new InvalidReceiptHandleError("invalid receipt handle: this consumer did not deliver the message");
    return v;
  }

  async #settle(msg, how) {
    const list = Array.isArray(msg) ? msg : [msg];
    const views = list.map((m) => this.#view(m));
    this.#live();
    const { client, o } = await this.#client();
    for (let i = 0; i < list.length; i++) {
      try {
        await how(client, views[i], list[i]);
      } catch (e) {
        throw ours(e, o);
      }
    }
  }

  /** Done for the group: a Promise, settled once the server has the ack. */
  ack(msg) {
    return this.#settle(msg, async (client, v, m) => {
      await client.ack(v);
      this.#views.delete(m);
    });
  }

  /** A failed delivery: visible again after `delayMs`, or the retry backoff for its attempt. */
  nack(msg, options) {
    const { delayMs } = optionsObject("nack option", options, ["delayMs"]);
    const delay = ms("delayMs", delayMs);
    return this.#settle(msg, async (client, v, m) => {
      const wait = delay ?? BACKOFF_MS[Math.min(Math.max(m.deliveryAttempt, 1), BACKOFF_MS.length) - 1];
      await client.changeInvisibleDuration(v, wait);
      this.#views.delete(m);
    });
  }

  /** Invisible for `durationMs` from now instead; replaces `msg.receiptHandle`. */
  changeInvisibleDuration(msg, durationMs) {
    const d = ms("durationMs", durationMs);
    if (d === undefined) throw new TypeError("durationMs must be a number");
    return this.#settle(msg, async (client, v, m) => {
      await client.changeInvisibleDuration(v, d);
      RemoteMessage.renew(m, v.receiptHandle);
    });
  }

  /** Runs `handler` on each message, at most `concurrency` (4) at a time: a result acks, a throw nacks, RetryLater nacks with its delay. */
  listen(handler, options) {
    if (typeof handler !== "function") throw new TypeError("listen takes a handler function");
    const { concurrency = 4 } = optionsObject("listen option", options, ["concurrency"]);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 100_000) {
      throw new InvalidArgumentError("invalid argument: concurrency is 1 to 100000");
    }
    this.#live();
    let stopping = false;
    let failure = null;
    const running = new Set();
    const one = async (m) => {
      try {
        await handler(m);
        await this.ack(m);
      } catch (e) {
        const delayMs = e instanceof RetryLater ? e.delayMs : undefined;
        await this.nack(m, { delayMs }).catch(() => {});
      }
    };
    const loop = (async () => {
      while (!stopping && !this.closed) {
        if (running.size >= concurrency) {
          await Promise.race(running);
          continue;
        }
        let msgs;
        try {
          msgs = await this.receive({ maxMessages: concurrency - running.size, timeoutMs: 500 });
        } catch (e) {
          if (!this.closed) failure = e;
          break;
        }
        for (const m of msgs) {
          const p = one(m).finally(() => running.delete(p));
          running.add(p);
        }
      }
      await Promise.all(running);
    })();
    return {
      get running() {
        return !stopping && failure === null;
      },
      stop: async () => {
        stopping = true;
        await loop;
        if (failure !== null) throw failure;
      },
    };
  }

  /** Leaves; messages received and not yet returned become visible again. Twice is harmless. */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#broker._drop(this);
    for (const wake of this.#waiters) wake();
    const started = this.#started;
    if (started === null) return;
    let client;
    try {
      ({ client } = await started);
    } catch {
      return;
    }
    const unreturned = this.#ready.splice(0);
    await Promise.all(unreturned.map((m) => client.changeInvisibleDuration(this.#views.get(m), 0).catch(() => {})));
    this.#broker._forget(client);
    await client.shutdown().catch(() => {});
  }

  async *[Symbol.asyncIterator]() {
    this.#live();
    while (!this.closed) {
      const [m] = await this.receive({ maxMessages: 1, timeoutMs: Infinity });
      if (m === undefined) return;
      yield m;
    }
  }
}

/**
 * A broker over the network: a `pocketmq serve` or an Apache RocketMQ 5 proxy at
 * `endpoint` ("host:port"). Clients connect as they are first used; a failure to
 * reach the server rejects that first call with IoError.
 */
export function connect(endpoint, options) {
  if (typeof endpoint !== "string") throw new TypeError("endpoint must be a string, host:port");
  if (!/^[^\s:]+:\d{1,5}$/.test(endpoint) && !/^\[[0-9a-fA-F:.]+\]:\d{1,5}$/.test(endpoint)) {
    throw new InvalidArgumentError(`invalid argument: endpoint ${JSON.stringify(endpoint)} is not host:port`);
  }
  const { accessKey, secretKey, namespace } = optionsObject("connect option", options, ["accessKey", "secretKey", "namespace"]);
  for (const [what, v] of [["accessKey", accessKey], ["secretKey", secretKey], ["namespace", namespace]]) {
    if (v != null && typeof v !== "string") throw new TypeError(`${what} must be a string`);
  }
  if ((accessKey == null) !== (secretKey == null)) throw new InvalidArgumentError("invalid argument: give accessKey and secretKey together");
  const base = {
    endpoints: endpoint,
    namespace: namespace ?? "",
    requestTimeout: 3000,
    logger: { info() {}, warn() {}, error() {}, debug() {} },
  };
  if (accessKey != null) base.sessionCredentials = { accessKey, accessSecret: secretKey };
  return new RemoteBroker(endpoint, base);
}
