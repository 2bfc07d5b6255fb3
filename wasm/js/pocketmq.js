// The public JavaScript surface of pocketmq over the wasm engine.
//
// The engine (the wasm module) never waits: it has no threads. This module
// gives the Promises: `receive` steps the engine's receive (which decides when it
// ends) and, between steps, awaits the engine's onReady callback (a send, a
// delay coming due, an ack, a close) or the receive's deadline. A timer set from
// `nextDueMs()` runs `tick()` when deferred work comes due; timers that only drive
// deferred work are unref'd in Node so that a process exits. Everything about
// messaging (what is delivered, when, to whom) is the engine's.

import { native, platform } from "./engine.js";
import { ClosedError, InvalidArgumentError, InvalidReceiptHandleError } from "./errors.js";
import * as wire from "./wire.js";
import { isPlainObject, optionsObject } from "./wire.js";

export * from "./errors.js";

/** The outcome of a local transaction, as `execute` and `check` return it. */
export const TxState = Object.freeze({
  COMMIT: "COMMIT",
  ROLLBACK: "ROLLBACK",
  UNKNOWN: "UNKNOWN",
});

/** The package version. */
export function version() {
  return native.version();
}

/** The levels of `setLogLevel`, quietest first; what the package itself logs follows it too. */
const LOG_LEVELS = ["off", "error", "warn", "info", "debug"];
let logLevel = LOG_LEVELS.indexOf("warn");
const logError = (...args) => logLevel >= 1 && console.error(...args);
const logWarn = (...args) => logLevel >= 2 && console.warn(...args);

/** Which of the engine's log records reach the console: "error", "warn" (default), "info", "debug" or "off". */
export function setLogLevel(level) {
  if (typeof level !== "string") throw new TypeError("the log level must be a string");
  native.setLogLevel(level);
  logLevel = LOG_LEVELS.indexOf(level);
}

// ---------------------------------------------------------------- helpers

/** A consumer's options given as Python gives them, `(group, topic, { ...options })`, made one object. */
function groupAndTopic(first, topic, more) {
  if (typeof first !== "string") return first;
  if (more != null && !isPlainObject(more)) throw new TypeError("consumer options must be an object");
  return { ...more, group: first, topic };
}

const NATIVE = Symbol("pocketmq.native");
const MAX_TIMER_MS = 2 ** 31 - 1;
const RETRY_DUE_MS = 100;
/** How often a file store's appended data is flushed (and due work run) while it is open. */
const FILE_TICK_MS = 250;
/** Sends and settles between two looks at the clock for a flush the timer could not make. */
const OPS_PER_FLUSH_CHECK = 256;
/** A receive that finds messages at once still gives the event loop a turn this often (ms). */
const TURN_MS = 20;
/** The last turn a receive gave the event loop (performance.now()). */
let lastTurn = 0;
/** A Promise resolved on the event loop's next turn: setImmediate in Node; in browsers a
 * message to ourselves (setTimeout(0) is clamped to 4 ms once nested). */
const nextTurn = (() => {
  if (typeof setImmediate === "function") return () => new Promise((r) => setImmediate(r));
  if (typeof MessageChannel === "function") {
    const channel = new MessageChannel();
    const waiting = [];
    channel.port1.onmessage = () => waiting.shift()?.();
    return () =>
      new Promise((r) => {
        waiting.push(r);
        channel.port2.postMessage(0);
      });
  }
  return () => new Promise((r) => setTimeout(r, 0));
})();
/** Topics a producer keeps by index for its fast path; more go the general way. */
const MAX_FAST_TOPICS = 256;
const decoder = new TextDecoder();

/** A time given as epoch ms or a Date, as epoch ms. */
function epochMs(v) {
  return v instanceof Date ? v.getTime() : v;
}

/** The engine's snake_case report with camelCase keys (topic and group names kept). */
function camelCase(value, isMap = false) {
  if (Array.isArray(value)) return value.map((v) => camelCase(v));
  if (value === null || typeof value !== "object") return value;
  const out = {};
  for (const [k, v] of Object.entries(value)) {
    const key = isMap ? k : k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
    out[key] = camelCase(v, key === "topics" && !isMap);
  }
  return out;
}

function unref(timer) {
  if (timer && typeof timer.unref === "function") timer.unref();
  return timer;
}

// ---------------------------------------------------------------- messages

let isMessage;
let settle;
let settleRun;
let setHandle;
let locate;

/** `n` more messages of an engine batch are settled; the last one frees the batch. */
function released(batch, n) {
  batch.open -= n;
  if (batch.open === 0) {
    batch.native.free();
    batch.native = null;
  }
}

/**
 * A message as `receive`, `get` and `query` return it. Its fields are read-only
 * as declared (index.d.ts), not frozen at run time: freezing costs about 40 ns a
 * message (a tenth of a receive + ack) and would guard nothing of the engine's,
 * since acks and nacks go through the private batch and index, never the fields.
 */
export class Message {
  /** `{ native, open }`: the engine's batch and how many of its messages are not yet settled. */
  #batch;
  #index;
  #settled = false;

  #handle;

  constructor(batch, index, msgId, topic, queueId, queueOffset, commitlogOffset, body, tags, keys, properties, bornTimestamp, storeTimestamp, reconsumeTimes, deliveryAttempt, receiptHandle) {
    this.msgId = msgId;
    this.topic = topic;
    this.queueId = queueId;
    this.queueOffset = queueOffset;
    this.commitlogOffset = commitlogOffset;
    this.body = body;
    this.tags = tags;
    this.keys = keys;
    this.properties = properties;
    this.bornTimestamp = bornTimestamp;
    this.storeTimestamp = storeTimestamp;
    this.reconsumeTimes = reconsumeTimes;
    this.deliveryAttempt = deliveryAttempt;
    this.#handle = receiptHandle;
    this.#batch = batch;
    this.#index = index;
  }

  /** From a simple consumer: this delivery's receipt handle (changeInvisibleDuration replaces it); else null. */
  get receiptHandle() {
    return this.#handle;
  }

  /** The body decoded as UTF-8. */
  text() {
    return decoder.decode(this.body);
  }

  static {
    isMessage = (m) => m !== null && typeof m === "object" && #batch in m;
    // The engine's batch and index of an unsettled message (null once settled).
    locate = (m) => (m.#settled ? null : [m.#batch.native, m.#index]);
    setHandle = (m, h) => {
      m.#handle = h;
    };
    // Acks or nacks `m` with `how(batch, index)`. Once every message of a batch is
    // settled the engine's copy is freed at once, not when the GC gets to it: a
    // consumer that drains a backlog in a tight loop must not grow the wasm memory.
    // Settling a settled message again is a no-op, as it is in the engine.
    settle = (m, how) => {
      if (m.#settled) return;
      const batch = m.#batch;
      if (m.#handle !== null) {
        throw new InvalidArgumentError("invalid argument: this message was received by a simple consumer; settle it with that consumer");
      }
      if (batch.native === null) {
        throw new InvalidArgumentError("invalid argument: this message was read, not received by a consumer (no receipt to ack)");
      }
      how(batch.native, m.#index);
      m.#settled = true;
      released(batch, 1);
    };
    // Settles `list` with one `run(batch, start, end)` when it is unsettled messages
    // of one batch at consecutive indices (a received batch, acked whole); false,
    // with nothing settled, otherwise or when the call fails (the caller then goes
    // message by message, which settles the ones before a failing one and throws
    // at it, as it would have without this).
    settleRun = (list, run) => {
      const first = list[0];
      const batch = first.#batch;
      if (batch.native === null) return false;
      for (let i = 0; i < list.length; i++) {
        const m = list[i];
        if (m.#batch !== batch || m.#settled || m.#index !== first.#index + i) return false;
      }
      try {
        run(batch.native, first.#index, first.#index + list.length);
      } catch {
        return false;
      }
      for (const m of list) m.#settled = true;
      released(batch, list.length);
      return true;
    };
  }
}

/**
 * The messages of an engine batch (or [] for none). `keep`: the batch stays in
 * the engine until every message is acked or nacked (classic consumers settle
 * through it); otherwise it is freed at once.
 */
function messages(handle, keep = true) {
  if (handle === undefined || handle === null) return [];
  if (handle.length === 0) {
    handle.free();
    return [];
  }
  const batch = { native: keep ? handle : null, open: handle.length };
  const out = wire.readMessages(
    handle.encode(),
    (msgId, topic, queueId, queueOffset, commitlogOffset, body, tags, keys, properties, born, stored, reconsumed, attempt, receipt, i) =>
      new Message(batch, i, msgId, topic, queueId, queueOffset, commitlogOffset, body, tags, keys, properties, born, stored, reconsumed, attempt, receipt),
  );
  if (!keep) handle.free();
  return out;
}

/** The messages of an engine batch that nobody acks (get, query, browse, a transaction's): decoded, and the batch freed at once. */
function readOnlyMessages(handle) {
  if (handle === undefined || handle === null) return [];
  const batch = { native: null, open: 0 };
  try {
    if (handle.length === 0) return [];
    return wire.readMessages(
      handle.encode(),
      (msgId, topic, queueId, queueOffset, commitlogOffset, body, tags, keys, properties, born, stored, reconsumed, attempt, receipt, i) =>
        new Message(batch, i, msgId, topic, queueId, queueOffset, commitlogOffset, body, tags, keys, properties, born, stored, reconsumed, attempt, receipt),
    );
  } finally {
    handle.free();
  }
}

/** A whole-number option, or undefined. */
function optionalNumber(what, v) {
  if (v !== undefined && v !== null && typeof v !== "number") throw new TypeError(`${what} must be a number`);
  return v === null ? undefined : v;
}

/** A progress callback option, or undefined. */
function optionalFunction(what, v) {
  if (v !== undefined && v !== null && typeof v !== "function") throw new TypeError(`${what} must be a function`);
  return v === null ? undefined : v;
}

/** The messages given to ack/nack (one or an array), checked before any is settled. */
function settling(msg) {
  const list = Array.isArray(msg) ? msg : [msg];
  for (const m of list) {
    if (!isMessage(m)) throw new TypeError("ack and nack take a message that receive returned");
  }
  return list;
}

// ---------------------------------------------------------------- clock

const clockBrokers = new WeakMap();

/** A clock that moves only when told to: delays, retries and checks follow it. */
export class ManualClock {
  /** @param {number} [startMs] epoch ms; the wall clock now when omitted. */
  constructor(startMs) {
    if (startMs != null && typeof startMs !== "number" && !(startMs instanceof Date)) {
      throw new TypeError("ManualClock takes epoch ms (a number) or a Date");
    }
    this[NATIVE] = new native.ManualClock(startMs == null ? undefined : epochMs(startMs));
    clockBrokers.set(this, new Set());
  }

  /** Moves the clock forward; work that became due runs on the brokers using it. */
  advance(ms) {
    if (typeof ms !== "number") throw new TypeError("advance takes a number of ms");
    this[NATIVE].advance(ms);
    for (const ref of clockBrokers.get(this)) {
      const broker = ref.deref();
      if (broker === undefined) clockBrokers.get(this).delete(ref);
      else broker._changed();
    }
  }

  /** Epoch ms on this clock. */
  now() {
    return this[NATIVE].now();
  }
}

// ---------------------------------------------------------------- broker

/** File-store brokers still open: closed (flushed, unlocked) when the process exits. */
const openStores = new Set();
let exitHooked = false;

function closeOpenStores() {
  for (const broker of [...openStores]) {
    try {
      broker.close();
    } catch (err) {
      logError("pocketmq: closing a store at exit failed:", err);
    }
  }
}

/** One embedded engine over one store (memory unless a `path` is given). */
export class Broker {
  #native;
  #clock;
  #timer = null;
  #timerDue = null;
  #lastFired = null;
  /** Receives waiting on this broker: while any does, the deferred-work timer is ref'd. */
  #waiting = 0;
  #fileTimer = null;
  #fileEvery = FILE_TICK_MS;
  #lastFileTick = 0;
  #ops = 0;

  constructor(options) {
    const o = { ...optionsObject("Broker options", options) };
    let clock;
    if (o.clock !== undefined && o.clock !== null) {
      if (!(o.clock instanceof ManualClock)) throw new TypeError("clock must be a ManualClock");
      clock = o.clock;
    }
    delete o.clock;
    if (o.path === null) delete o.path;
    // In Node a path is a file store over Node's fs; elsewhere the engine refuses it.
    const hostFs = typeof o.path === "string" && platform.hostFs ? platform.hostFs(o.path) : undefined;
    this.#native = new native.Broker(o, clock ? clock[NATIVE].share() : undefined, hostFs);
    this.#clock = clock;
    if (clock) clockBrokers.get(clock).add(new WeakRef(this));
    if (hostFs !== undefined) {
      // No threads in wasm: this timer drives the flushing of appended data (and
      // due work) while the store is open; unref'd, so it never keeps Node alive.
      const every = Math.min(Math.max(o.flushIntervalMs ?? FILE_TICK_MS, 10), MAX_TIMER_MS);
      this.#fileEvery = every;
      this.#lastFileTick = Date.now();
      this.#fileTimer = unref(setInterval(() => this.#fileTick(), every));
      openStores.add(this);
      if (!exitHooked && platform.onExit) {
        exitHooked = true;
        platform.onExit(closeOpenStores);
      }
    }
  }

  #fileTick() {
    this.#lastFileTick = Date.now();
    if (this.#native.isClosed()) return;
    try {
      this.#native.tick();
    } catch (err) {
      logError("pocketmq: flushing the store failed:", err);
    }
    this._schedule();
  }

  /** Creates a topic or grows its queue count (idempotent): `createTopic(name, { queues })`, or `createTopic(name, queues)`. */
  createTopic(name, options) {
    let { queues } = typeof options === "number" ? { queues: options } : optionsObject("createTopic options", options, ["queues"]);
    queues ??= undefined; // null: the default, as for every option
    if (queues !== undefined && typeof queues !== "number") throw new TypeError("queues must be a number");
    this.#native.createTopic(name, queues);
    this._changed();
  }

  /** The user topics: `[{ name, queues }]`. */
  topics() {
    return this.#native.topics();
  }

  /**
   * Runs `block(tx)`, where `tx.send(topic, body, options)` and `tx.ack(consumer, msg)`
   * are collected, and stores them as one append when it returns (nothing when it
   * throws). Returns the send results. The block is synchronous; blocks do not nest.
   */
  atomic(block) {
    if (typeof block !== "function") throw new TypeError("atomic takes a function: broker.atomic((tx) => { ... })");
    if (atomicDepth > 0) throw new InvalidArgumentError("atomic blocks do not nest: put the sends and acks in the outer block");
    const handle = this.#native.atomic();
    try {
      return Atomic._run(handle, block);
    } finally {
      handle.free();
      this._changed();
    }
  }

  /** A producer in `group`. */
  producer(group = "DEFAULT_PRODUCER") {
    return new Producer(this, this.#native.producer(group));
  }

  /** A producer of transactional messages; `check(msg)` decides half messages left UNKNOWN. */
  transactionProducer(group, options) {
    const { check } = optionsObject("transactionProducer options", options, ["check"]);
    if (check !== undefined && typeof check !== "function") throw new TypeError("check must be a function");
    const later = (promise, msg) => {
      settleLater(this, "check", promise, msg.queueOffset, msg.commitlogOffset).catch((err) =>
        logError("pocketmq: check's outcome could not be recorded:", err),
      );
    };
    const decide = (batch) => txDecision("check", check, batch, later);
    return new TransactionProducer(this, this.#native.transactionProducer(group, decide));
  }

  /** A consumer: `{ group, topic, tags, sql, broadcasting, orderly, maxReconsumeTimes, start, consumerId }`. */
  consumer(options, topic, more) {
    options = groupAndTopic(options, topic, more);
    if (!isPlainObject(options)) throw new TypeError("consumer options must be an object with group and topic");
    const o = options.start instanceof Date ? { ...options, start: options.start.getTime() } : options;
    const c = new Consumer(this, this.#native.consumer(o));
    this._changed();
    return c;
  }

  /** A simple (POP) consumer: `{ group, topic, tags, sql, invisibleDurationMs, maxDeliveryAttempts, fifo }`. */
  simpleConsumer(options, topic, more) {
    options = groupAndTopic(options, topic, more);
    if (!isPlainObject(options)) throw new TypeError("simple consumer options must be an object with group and topic");
    return new SimpleConsumer(this, this.#native.simpleConsumer(options));
  }

  /** The message with this id, or null. */
  get(msgId) {
    const got = readOnlyMessages(this.#native.get(msgId));
    return got.length === 0 ? null : got[0];
  }

  /** The messages of `topic` with `key` among their keys, oldest first. */
  query(topic, key) {
    const k = isPlainObject(key) ? key.key : key;
    return readOnlyMessages(this.#native.query(topic, k));
  }

  /** Messages of `topic` not yet acked by `group`. */
  lag(group, topic) {
    return this.#native.lag(group, topic);
  }

  /** Moves a group's offsets to "earliest", "latest" or a time (epoch ms or a Date). */
  resetOffset(group, topic, to) {
    const t = isPlainObject(to) ? to.to : to;
    this.#native.resetOffset(group, topic, epochMs(t));
    this._changed();
  }

  /**
   * The backlog drill: copies `group`'s unconsumed messages of `topic` to `to` (with
   * `queues` queues, default as many as `topic`), keeping each sharding key's order,
   * then moves the group past them; returns how many. `onProgress(done, total)` is
   * called between steps; an exception it throws stops the drill (the group past what
   * was copied) and is rethrown. Run again after a crash, it goes on where it stopped.
   */
  moveBacklog(group, topic, options, more) {
    // As Python's move_backlog(group, topic, to, ...): the destination may come third.
    if (typeof options === "string") options = { ...optionsObject("moveBacklog options", more, ["queues", "onProgress"]), to: options };
    const { to, queues, onProgress } = optionsObject("moveBacklog options", options, ["to", "queues", "onProgress"]);
    if (typeof to !== "string") throw new TypeError("moveBacklog needs { to }: the topic to move the backlog to");
    try {
      return this.#native.moveBacklog(group, topic, to, optionalNumber("queues", queues), optionalFunction("onProgress", onProgress));
    } finally {
      this._changed();
    }
  }

  /** Messages of `topic` without consuming them: `{ queueId, offset, limit }` (all queues in store order, from the oldest, 32). */
  browse(topic, options) {
    const { queueId, offset, limit } = optionsObject("browse options", options, ["queueId", "offset", "limit"]);
    return readOnlyMessages(
      this.#native.browse(topic, optionalNumber("queueId", queueId), optionalNumber("offset", offset), optionalNumber("limit", limit) ?? 32),
    );
  }

  /** Messages of `topic` stored at or after `start` and before `end` (epoch ms or Dates), oldest first. */
  queryByTime(topic, start, end, options) {
    const { limit } = optionsObject("queryByTime options", options, ["limit"]);
    const s = epochMs(start);
    const e = epochMs(end);
    if (typeof s !== "number" || typeof e !== "number") throw new TypeError("start and end must be epoch ms or Dates");
    return readOnlyMessages(this.#native.queryByTime(topic, s, e, optionalNumber("limit", limit) ?? 1000));
  }

  /** `group`'s progress on each queue of `topic` (mqadmin's consumerProgress). */
  progress(group, topic) {
    return camelCase(this.#native.progress(group, topic));
  }

  /** `group`'s dead letters not yet redriven, oldest first: `{ limit }` (100). */
  deadLetters(group, options) {
    const { limit } = optionsObject("deadLetters options", options, ["limit"]);
    return readOnlyMessages(this.#native.deadLetters(group, optionalNumber("limit", limit) ?? 100));
  }

  /** Resends `group`'s dead letters to that group alone: `{ limit, onProgress }`; returns how many. */
  redrive(group, options) {
    const { limit, onProgress } = optionsObject("redrive options", options, ["limit", "onProgress"]);
    try {
      return this.#native.redrive(group, optionalNumber("limit", limit), optionalFunction("onProgress", onProgress));
    } finally {
      this._changed();
    }
  }

  /** Deletes a topic: its messages become unreachable and its groups reset. */
  deleteTopic(topic) {
    this.#native.deleteTopic(topic);
    this._changed();
  }

  /** Sizes, lags and rates. */
  stats() {
    return camelCase(this.#native.stats());
  }

  /** Runs the work that is due now (delays, retries, transaction checks). */
  tick() {
    this.#native.tick();
    this._changed();
  }

  /** Forces everything appended so far to the store. */
  flush() {
    this.#native.flush();
  }

  /** Closes the broker; waiting receives resolve with []. Closing twice is harmless. */
  close() {
    if (this.#native.isClosed()) return;
    if (this.#fileTimer !== null) clearInterval(this.#fileTimer);
    this.#fileTimer = null;
    openStores.delete(this);
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#native.close();
  }

  /** Whether `close` was called. */
  get closed() {
    return this.#native.isClosed();
  }

  // -- internals shared with producers and consumers

  /** Runs due work if the broker's clock says it is due. */
  _drive() {
    if (this.#native.isClosed()) return;
    const due = this.#native.nextDueMs();
    if (due !== undefined && due !== null && due <= this.#native.nowMs()) this.#native.tick();
  }

  /** Resolves a half message an async `execute` or `check` decided (settleLater). */
  _endTransaction(halfOffset, commitlogOffset, state) {
    return this.#native.endTransaction(halfOffset, commitlogOffset, state);
  }

  /** After any call that may add due work: re-arm the timer that drives it. */
  _changed() {
    if (this.#fileTimer !== null) this.#counted();
    this._schedule();
  }

  /** After a send: re-arm the timer only if deferred work may be due sooner. */
  _sent(nextDue) {
    if (this.#fileTimer !== null) this.#counted();
    if (nextDue >= 0 && !(this.#timer !== null && this.#timerDue <= nextDue)) this._schedule(nextDue);
  }

  /**
   * A file store's flush timer runs only when the event loop turns: code that sends
   * or settles in a loop that never yields to it (a synchronous loop, or one awaiting
   * only settled Promises) flushes here, at the timer's pace.
   */
  #counted() {
    if (++this.#ops < OPS_PER_FLUSH_CHECK) return;
    this.#ops = 0;
    if (Date.now() - this.#lastFileTick >= this.#fileEvery) this.#fileTick();
  }

  _schedule(due = this.#native.isClosed() ? null : this.#native.nextDueMs()) {
    if (due === undefined || due === null) return;
    // A timer that fires no later than this work is enough.
    if (this.#timer !== null && this.#timerDue !== null && this.#timerDue <= due) return;
    if (this.#native.isClosed()) return;
    let wait = due - this.#native.nowMs();
    // A manual clock only moves by advance(), which calls _changed(): no timer then.
    if (this.#clock && wait > 0) return;
    // Work that stays due after a tick is retried at a gentle pace, not in a busy loop.
    if (wait <= 0 && due === this.#lastFired) wait = RETRY_DUE_MS;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerDue = due;
    this.#timer = setTimeout(() => this.#fire(), Math.min(Math.max(wait, 0), MAX_TIMER_MS));
    if (this.#waiting === 0) unref(this.#timer);
  }

  #fire() {
    this.#lastFired = this.#timerDue;
    this.#timer = null;
    this.#timerDue = null;
    if (this.#native.isClosed()) return;
    try {
      this._drive();
    } catch (err) {
      logError("pocketmq: deferred work failed:", err);
    }
    this._schedule();
  }

  /**
   * Resolves when the engine says `consumer` may find messages (its onReady), or
   * after `ms` (real time; undefined: no limit). A callback made at once resolves on
   * the next turn of the event loop, so a consumer never spins without yielding.
   */
  _ready(consumer, ms) {
    return new Promise((resolve) => {
      let settled = false;
      let now = true;
      let timer = null;
      const done = () => {
        if (settled) return;
        settled = true;
        if (timer !== null) clearTimeout(timer);
        if (--this.#waiting === 0) unref(this.#timer);
        if (now) setTimeout(resolve, 0);
        else resolve();
      };
      this.#waiting++;
      // A waiting receive keeps the deferred-work timer alive.
      if (this.#timer !== null && typeof this.#timer.ref === "function") this.#timer.ref();
      else this._schedule();
      if (ms !== undefined) timer = setTimeout(done, Math.min(Math.max(ms, 0), MAX_TIMER_MS));
      consumer.onReady(done);
      now = false;
    });
  }
}

/** Calls a user's execute/check on a message; an exception or a non-state is UNKNOWN. */
/** Whether `v` is a Promise or another thenable. */
function isThenable(v) {
  return v !== null && (typeof v === "object" || typeof v === "function") && typeof v.then === "function";
}

function txDecision(what, fn, batch, later) {
  if (fn === undefined) return TxState.UNKNOWN;
  try {
    const msg = readOnlyMessages(batch)[0];
    const state = fn(msg);
    if (state === TxState.COMMIT || state === TxState.ROLLBACK || state === TxState.UNKNOWN) return state;
    if (isThenable(state)) {
      // The engine decides synchronously: the half message stays UNKNOWN now and
      // is resolved when the Promise settles.
      later(state, msg);
      return TxState.UNKNOWN;
    }
    logError(`pocketmq: ${what} returned ${String(state)}, not a TxState; the message stays UNKNOWN`);
  } catch (err) {
    logError(`pocketmq: ${what} threw; the message stays UNKNOWN:`, err);
  }
  return TxState.UNKNOWN;
}

/**
 * The outcome an async `execute` or `check` settled on, recorded for the half message
 * at (`halfOffset`, `commitlogOffset`): COMMIT or ROLLBACK resolve it (unless
 * something resolved it first); UNKNOWN, a rejection or anything else leaves it to
 * the next check. Resolves to the state recorded.
 */
async function settleLater(broker, what, promise, halfOffset, commitlogOffset) {
  let state;
  try {
    state = await promise;
  } catch (err) {
    logError(`pocketmq: ${what}'s Promise rejected; the message stays UNKNOWN:`, err);
    return TxState.UNKNOWN;
  }
  if (state !== TxState.COMMIT && state !== TxState.ROLLBACK) {
    if (state !== TxState.UNKNOWN) logError(`pocketmq: ${what} resolved to ${String(state)}, not a TxState; the message stays UNKNOWN`);
    return TxState.UNKNOWN;
  }
  try {
    broker._endTransaction(halfOffset, commitlogOffset, state);
  } finally {
    broker._changed();
  }
  return state;
}

// ---------------------------------------------------------------- producers

/**
 * A body as a string or a Uint8Array (a view of any other buffer's bytes). Kept in this
 * module: it runs on every send, and imported from wire.js it cost 290-500 more
 * instructions a send in three callgrind rounds.
 */
function plainBody(body) {
  if (typeof body === "string" || body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  const got = body === null ? "null" : typeof body;
  throw new TypeError(`body must be a string, a Uint8Array or an ArrayBuffer, not ${got}`);
}

/** Send options, an object (their names are checked as they are encoded, wire.js). */
function sendOptions(opts) {
  if (opts === undefined || opts === null) return undefined;
  if (wire.usualObject(opts)) return opts;
  return optionsObject("send options", opts);
}

/** The bodies and options of `sendBatch`'s items: a body, or `{ body, ...options }`. */
function batchItems(items, common) {
  const bodies = [];
  const options = [];
  for (const item of items) {
    if (isPlainObject(item)) {
      const { body, ...own } = item;
      bodies.push(plainBody(body));
      options.push({ ...common, ...sendOptions(own) });
    } else {
      bodies.push(plainBody(item));
      options.push(common);
    }
  }
  return [bodies, options];
}

/** Sends messages on behalf of a producer group. */
export class Producer {
  #broker;
  #native;
  #topics = new Map();

  constructor(broker, handle) {
    this.#broker = broker;
    this.#native = handle;
  }

  get group() {
    return this.#native.group;
  }

  /** The engine's index of `topic` (a bounded table: past its size it starts afresh). */
  #topicIndex(topic) {
    if (typeof topic !== "string") throw new TypeError("topic must be a string");
    let i = this.#topics.get(topic);
    if (i === undefined) {
      const reset = this.#topics.size >= MAX_FAST_TOPICS;
      if (reset) this.#topics.clear();
      i = this.#native.topicIndex(topic, reset);
      this.#topics.set(topic, i);
    }
    return i;
  }

  /** Sends the encoded messages; the wire results' address. */
  #send(topic, bodies, options) {
    const i = this.#topicIndex(topic);
    return this.#sendEncoded(i, wire.encodeSend(bodies, options));
  }

  #sendEncoded(i, encoded) {
    if (typeof encoded !== "number") return this.#native.sendEncoded(i, encoded);
    // (One number back, 0 when the send failed: see takeError.)
    const ptr = this.#native.sendStaged(i, encoded);
    if (ptr === 0) throw native.takeError();
    return ptr;
  }

  /** Stores one message: `{ tags, keys, properties, shardingKey, queueId, delayLevel, deliverAt, delayMs, dedupId }`. */
  send(topic, body, options) {
    const i = this.#topicIndex(topic);
    const ptr = this.#sendEncoded(i, wire.encodeOne(plainBody(body), sendOptions(options)));
    const result = wire.readSendResult(ptr, topic);
    this.#broker._sent(wire.lastNextDue);
    return result;
  }

  /** Stores several messages of one topic as one append; an item is a body or `{ body, ...options }`. */
  sendBatch(topic, items, options) {
    if (!Array.isArray(items)) throw new TypeError("sendBatch takes an array of bodies or { body, ...options }");
    if (items.length > 1 && options != null && options.dedupId != null) {
      // One id for every body would store the first and call the rest its duplicates.
      throw new InvalidArgumentError(
        "invalid argument: sendBatch's options apply to every item, and one dedupId for several bodies " +
          "would keep only the first: give each item its own, { body, dedupId }",
      );
    }
    const ptr = this.#send(topic, ...batchItems(items, sendOptions(options)));
    const out = [];
    const nextDue = wire.readSendResults(ptr, (msgId, queueId, queueOffset, commitlogOffset, status, duplicate, recallHandle) => {
      const r = { msgId, topic, queueId, queueOffset, commitlogOffset, status, duplicate };
      if (recallHandle !== undefined) r.recallHandle = recallHandle;
      out.push(r);
    });
    this.#broker._sent(nextDue);
    return out;
  }

  /**
   * Cancels a delayed message before it is delivered (RocketMQ 5.3's recallMessage):
   * `recallHandle` is its send's. True when it was waiting and now never will be
   * delivered; false when its time has come, or it was recalled already.
   */
  recall(topic, recallHandle) {
    return this.#native.recall(topic, recallHandle);
  }
}

/** Sends transactional (half) messages. */
export class TransactionProducer {
  #broker;
  #native;

  constructor(broker, handle) {
    this.#broker = broker;
    this.#native = handle;
  }

  get group() {
    return this.#native.group;
  }

  /**
   * Stores a half message, runs `execute(msg)` and records its TxState. An `execute`
   * that returns a Promise (an async local transaction) makes this return a Promise
   * of the result, settled once its outcome is recorded.
   */
  send(topic, body, options) {
    const { execute, ...rest } = optionsObject("send options", options);
    if (typeof execute !== "function") throw new TypeError("send options need execute, a function returning a TxState");
    let pending = null;
    const decide = (batch) => txDecision("execute", execute, batch, (promise) => (pending = promise));
    const encoded = wire.encodeOne(plainBody(body), sendOptions(rest), true);
    let result;
    try {
      result = this.#native.send(topic, encoded, decide);
    } finally {
      this.#broker._changed();
    }
    if (pending === null) return result;
    return settleLater(this.#broker, "execute", pending, result.queueOffset, result.commitlogOffset).then((state) => {
      result.transactionState = state;
      return result;
    });
  }
}

// ---------------------------------------------------------------- consumer

/** `nack`'s `delayMs` option, or undefined (null, as for every option, means absent). */
function nackDelay(options) {
  const { delayMs } = optionsObject("nack options", options, ["delayMs"]);
  if (delayMs === null) return undefined;
  if (delayMs !== undefined && typeof delayMs !== "number") throw new TypeError("delayMs must be a number");
  return delayMs;
}

/** Thrown by a listener's handler: nack the message, redelivering it after `delayMs`. */
export class RetryLater extends Error {
  constructor(delayMs = 0) {
    if (typeof delayMs !== "number") throw new TypeError("RetryLater takes a delay in ms, a number");
    if (!(delayMs >= 0 && delayMs <= Number.MAX_SAFE_INTEGER)) {
      throw new InvalidArgumentError(`invalid argument: RetryLater's delay must be 0 or more ms, not ${delayMs}`);
    }
    super(`retry in ${delayMs} ms`);
    this.name = "RetryLater";
    this.delayMs = delayMs;
  }
}

/**
 * Runs `handler(msg)` on each message of `consumer`, at most `concurrency` at a
 * time: a result acks; a throw nacks (logged); a RetryLater nacks with its delay.
 * Returns a runner whose `stop()` takes no new messages and resolves once the
 * running handlers are done.
 */
function listen(consumer, handler, options, nack) {
  let { concurrency = 4 } = optionsObject("listen options", options, ["concurrency"]);
  concurrency ??= 4; // null: the default, as for every option
  if (typeof handler !== "function") throw new TypeError("listen takes a handler function");
  if (typeof concurrency !== "number") throw new TypeError("concurrency must be a number");
  if (consumer.closed) throw new ClosedError("closed: the consumer or its broker is closed");
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 100_000) {
    throw new InvalidArgumentError(`invalid argument: concurrency must be a whole number from 1 to 100000, not ${concurrency}`);
  }
  let stopping = false;
  const running = new Set();
  const handle = async (m) => {
    let failed = false;
    let failure;
    try {
      await handler(m);
    } catch (err) {
      failed = true;
      failure = err;
    }
    // Closed meanwhile: the consumer gave its deliveries back to the group.
    if (consumer.closed) return;
    try {
      if (!failed) consumer.ack(m);
      else if (failure instanceof RetryLater) nack(m, failure.delayMs);
      else {
        logWarn(`pocketmq: handler failed for message ${m.msgId}; it will be retried:`, failure);
        nack(m);
      }
    } catch (settleErr) {
      logWarn(`pocketmq: message ${m.msgId} could not be ${failed ? "nacked" : "acked"}:`, settleErr);
    }
  };
  const loop = (async () => {
    while (!stopping && !consumer.closed) {
      if (running.size >= concurrency) {
        await Promise.race(running);
        continue;
      }
      const msgs = await consumer.receive({ maxMessages: concurrency - running.size, timeoutMs: 100 });
      for (const m of msgs) {
        const p = handle(m).finally(() => running.delete(p));
        running.add(p);
      }
    }
    await Promise.all(running);
  })();
  // A receive that fails ends the runner: logged now, and thrown by `stop()` (never
  // an unhandled rejection, which would end a Node process).
  let failed = false;
  loop.catch((err) => {
    failed = true;
    logWarn("pocketmq: a listener stopped:", err);
  });
  return {
    stop: async () => {
      stopping = true;
      await loop;
    },
    get running() {
      return !stopping && !failed && !consumer.closed;
    },
  };
}

/** Each Consumer's and SimpleConsumer's engine handle, for atomic blocks. */
const nativeOf = new WeakMap();

/** Blocks being run: they do not nest. */
let atomicDepth = 0;

/** The sends and acks of `broker.atomic(block)`, stored together when the block returns. */
export class Atomic {
  #native;
  #topics = [];
  #acked = [];
  #open = true;

  constructor(handle) {
    this.#native = handle;
  }

  #check() {
    if (!this.#open) throw new InvalidArgumentError("this atomic block is finished: use tx inside its block");
  }

  /** Adds a send (the options of `Producer.send`): checked now, stored when the block returns. */
  send(topic, body, options) {
    this.#check();
    this.#native.sendEncoded(topic, wire.encodeOne(plainBody(body), sendOptions(options), true));
    this.#topics.push(topic);
  }

  /** Adds the ack of messages `consumer` (a Consumer or SimpleConsumer) received. */
  ack(consumer, msg) {
    this.#check();
    const list = settling(msg);
    const handle = nativeOf.get(consumer);
    if (handle === undefined) throw new TypeError("ack takes the Consumer or SimpleConsumer that received the message");
    for (const m of list) {
      if (consumer instanceof SimpleConsumer) {
        this.#native.ackHandle(handle, receiptHandles(m)[0]);
        continue;
      }
      if (m.receiptHandle !== null) {
        throw new InvalidArgumentError("invalid argument: this message was received by a simple consumer; ack it with that consumer");
      }
      const at = locate(m);
      if (at === null) throw new InvalidArgumentError("this message is already acked or nacked");
      if (at[0] === null) {
        throw new InvalidArgumentError("invalid argument: this message was read, not received by a consumer (no receipt to ack)");
      }
      this.#native.ack(handle, at[0], at[1]);
      this.#acked.push(m);
    }
  }

  /** Runs `block(this)` and commits; the send results, each with its topic. */
  static _run(handle, block) {
    const tx = new Atomic(handle);
    atomicDepth++;
    try {
      const out = block(tx);
      if (isThenable(out)) {
        // Its own failure (a use of tx after the block ended) is the one thrown here.
        out.then(undefined, () => {});
        throw new TypeError("an atomic block is synchronous: receive before it, then send and ack inside");
      }
    } catch (err) {
      handle.abort();
      throw err;
    } finally {
      atomicDepth--;
      tx.#open = false;
    }
    const results = [];
    let i = 0;
    wire.readSendResults(handle.commit(), (msgId, queueId, queueOffset, commitlogOffset, status, duplicate, recallHandle) => {
      const r = { msgId, topic: tx.#topics[i++], queueId, queueOffset, commitlogOffset, status, duplicate };
      if (recallHandle !== undefined) r.recallHandle = recallHandle;
      results.push(r);
    });
    for (const m of tx.#acked) settle(m, () => {});
    return results;
  }
}

/** What both consumer kinds share: the core's receive, stepped between its onReady wake-ups; close; iteration. */
class Receiver {
  #broker;
  #native;
  #closed = false;
  #keep;

  constructor(broker, handle, keep) {
    this.#broker = broker;
    this.#native = handle;
    this.#keep = keep;
    nativeOf.set(this, handle);
  }

  get group() {
    return this.#native.group;
  }

  get topic() {
    return this.#native.topic;
  }

  /** Up to `maxMessages` (32) messages, waiting up to `timeoutMs` (1000, real time; Infinity: no limit) for the first. */
  async receive(options) {
    let { maxMessages = 32, timeoutMs = 1000 } = optionsObject("receive options", options, ["maxMessages", "timeoutMs"]);
    // null is the default, as for every option; but not for timeoutMs, where it
    // could as well mean no limit (Python's None): that is Infinity.
    maxMessages ??= 32;
    if (typeof timeoutMs !== "number") throw new TypeError("timeoutMs must be a number (Infinity: no limit)");
    if (typeof maxMessages !== "number") throw new TypeError("maxMessages must be a number");
    // Messages waiting make every receive resolve at once, in a Promise job: a loop
    // of receives (listen, for await) would keep the event loop from timers and I/O,
    // a file store's flush among them, for as long as the backlog lasts.
    if (performance.now() - lastTurn >= TURN_MS) {
      const open = !this.closed;
      await nextTurn();
      lastTurn = performance.now();
      // Closed while this receive waited for its turn: it ends as a waiting one does.
      if (open && this.closed) return [];
    }
    // Infinity: no deadline (Python's timeout=None), until a message or a close.
    const receiving = this.#native.startReceive(maxMessages, timeoutMs === Infinity ? undefined : timeoutMs);
    try {
      for (;;) {
        const got = this.#native.receiveStep(receiving);
        if (got !== undefined) return messages(got, this.#keep);
        await this.#broker._ready(this.#native, receiving.remainingMs());
      }
    } finally {
      receiving.free();
    }
  }

  /** Runs `handler(msg)` on each message, at most `concurrency` (4) at a time; `await runner.stop()` to end. */
  listen(handler, options) {
    return listen(this, handler, options, (m, delayMs) => this.nack(m, delayMs === undefined ? undefined : { delayMs }));
  }

  /** Leaves the group; a waiting receive resolves with []. Closing twice is harmless. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.close();
    this.#broker._changed();
  }

  /** Whether `close` was called on this consumer or its broker. */
  get closed() {
    return this.#closed || this.#broker.closed;
  }

  /** Yields messages one at a time until the consumer or broker closes; the caller acks. */
  async *[Symbol.asyncIterator]() {
    while (!this.closed) {
      const got = await this.receive({ maxMessages: 1, timeoutMs: 1000 });
      for (const m of got) yield m;
    }
  }
}

/** Receives messages for one consumer of a group. */
export class Consumer extends Receiver {
  #broker;
  #native;
  #ack = (batch, index) => {
    if (!this.#native.ack(batch, index)) throw native.takeError();
  };
  #ackRange = (batch, start, end) => this.#native.ackRange(batch, start, end);

  constructor(broker, handle) {
    super(broker, handle, true);
    this.#broker = broker;
    this.#native = handle;
  }

  /** Marks messages done: never delivered to this group again. */
  ack(msg) {
    const list = settling(msg);
    try {
      if (list.length > 1 && settleRun(list, this.#ackRange)) return;
      for (const m of list) settle(m, this.#ack);
    } finally {
      this.#broker._changed();
    }
  }

  /** Sends messages back for a retry later (after `delayMs` instead of the retry ladder's step, if given; then to the DLQ). */
  nack(msg, options) {
    const list = settling(msg);
    const delayMs = nackDelay(options);
    const nack = (batch, index) => this.#native.nack(batch, index, delayMs);
    try {
      for (const m of list) settle(m, nack);
    } finally {
      this.#broker._changed();
    }
  }
}

/** The messages given to ack (one or an array), with their current receipt handles. */
function receiptHandles(msg) {
  const handles = settling(msg).map((m) => m.receiptHandle);
  if (handles.some((h) => typeof h !== "string")) {
    throw new InvalidReceiptHandleError("invalid receipt handle: this message was not received by a simple consumer");
  }
  return handles;
}

/** A member of a simple consumer group (RocketMQ 5's SimpleConsumer): any member takes any visible message, invisible to the group until acked or expired. */
export class SimpleConsumer extends Receiver {
  #broker;
  #native;

  constructor(broker, handle) {
    super(broker, handle, false);
    this.#broker = broker;
    this.#native = handle;
  }

  /** Acks messages: the group never gets them again. A stale receipt handle throws InvalidReceiptHandleError. */
  ack(msg) {
    try {
      this.#native.ackHandles(receiptHandles(msg));
    } finally {
      this.#broker._changed();
    }
  }

  /** Keeps a message invisible for `durationMs` from now (0: visible at once); replaces its receiptHandle. */
  changeInvisibleDuration(msg, durationMs) {
    if (!isMessage(msg)) throw new TypeError("changeInvisibleDuration takes one message that receive returned");
    const [handle] = receiptHandles(msg);
    if (typeof durationMs !== "number") throw new TypeError("durationMs must be a number");
    setHandle(msg, this.#native.changeInvisible(handle, durationMs));
    this.#broker._changed();
  }

  /** A failed delivery: visible again after `delayMs`, or the retry ladder's step for its attempt. */
  nack(msg, options) {
    const delayMs = nackDelay(options);
    try {
      for (const h of receiptHandles(msg)) this.#native.nack(h, delayMs);
    } finally {
      this.#broker._changed();
    }
  }
}
