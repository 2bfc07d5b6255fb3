// Type declarations of the `pocketmq` package (Node and browsers).
// Times are milliseconds: timeoutMs, delayMs, deliverAt (epoch ms or a Date).

/** A message body: a string (sent as UTF-8), bytes, or an ArrayBuffer. */
export type Body = string | Uint8Array | ArrayBuffer | ArrayBufferView;

/** Where a group with no committed offset starts, or where `resetOffset` moves it. */
export type Position = "earliest" | "latest" | number | Date;

export interface BrokerOptions {
  /**
   * A store directory (Node only): a file store through Node's fs that keeps
   * messages, offsets and pending delays across restarts; one process owns it at
   * a time (a second open throws StoreLockedError). In memory when omitted;
   * browsers refuse a path (InvalidArgumentError).
   */
  path?: string;
  /** When appended data is forced to the store (default "async"). */
  flush?: "async" | "sync" | "none";
  /** The broker's time for delays, retries and checks (default: the wall clock). */
  clock?: ManualClock;
  /** Delay levels in RocketMQ's syntax, e.g. "1s 5s 10s 30s 1m". */
  delayLevels?: string;
  /** Largest body accepted, in bytes (4 MiB). */
  maxMessageSize?: number;
  /** Create topics on first send (true). */
  autoCreateTopics?: boolean;
  /** Queues of a topic created on first send or without a count (4). */
  defaultQueues?: number;
  /** CommitLog segment size in bytes. */
  segmentSize?: number;
  /** Farthest `deliverAt`/`delayMs` may reach ahead (30 days). */
  timerMaxDelayMs?: number;
  /**
   * Age after which a whole CommitLog segment may be deleted (72 h): in the
   * `deleteWhen` hours, or at any hour while the disk is used above `diskCleanRatio`.
   */
  fileReservedTimeMs?: number;
  /**
   * Hours of the day (UTC, broker clock) in which expired segments are deleted,
   * RocketMQ's deleteWhen: "04" (the default), several as "01;13", every hour "*".
   */
  deleteWhen?: string;
  /** Disk usage above which expired segments go at any hour (0.75). */
  diskCleanRatio?: number;
  /**
   * Disk usage above which sends are refused with DiskFullError until space
   * returns (0.9: RocketMQ's "disk full"). File stores only.
   */
  diskMaxUsedRatio?: number;
  /** Disk usage above which the oldest segments are deleted whatever their age (0.85). */
  diskCleanForciblyRatio?: number;
  /**
   * "time" (the default): segments go by age, as in RocketMQ (what a group had not
   * consumed is counted in its stats' `expired`). "keep-unconsumed": a segment
   * holding messages a group has not consumed stays until the disk ratio forces it out.
   */
  retention?: "time" | "keep-unconsumed";
  syncFlushTimeoutMs?: number;
  flushIntervalMs?: number;
  /** Age of a half message before it is first checked (6 s). */
  transactionTimeoutMs?: number;
  /** Time between checks of one half message (60 s). */
  checkIntervalMs?: number;
  /** Checks before a half message is discarded (15). */
  maxChecks?: number;
  /** How long a send's `dedupId` keeps a repeat of it from being stored (120 s; 0: off). */
  dedupWindowMs?: number;
}

export interface SendOptions {
  /** One tag, matched by consumers' tag expressions. */
  tags?: string;
  /**
   * One key or several; `broker.query(topic, key)` finds the message by any of them. A key
   * with spaces is one key per word, as RocketMQ's `setKeys("k1 k2")`.
   */
  keys?: string | string[];
  properties?: Record<string, string> | Map<string, string>;
  /** Messages with the same sharding key go to the same queue, in order. */
  shardingKey?: string;
  /** An explicit queue; wins over the sharding key. */
  queueId?: number;
  /** One of the broker's delay levels (1-based; 0: none; above the last: the last). */
  delayLevel?: number;
  /** Deliver at this time (epoch ms or a Date; the past: at once). */
  deliverAt?: number | Date;
  /** Deliver this many milliseconds after the send. */
  delayMs?: number;
  /**
   * Within the broker's `dedupWindowMs`, another send of the same (topic, dedupId)
   * stores nothing and returns this send's result with `duplicate` true.
   */
  dedupId?: string;
}

export interface SendResult {
  msgId: string;
  topic: string;
  /** Where the message was stored; for a transactional send, its half message (as in RocketMQ): a commit stores it again in its topic. */
  queueId: number;
  queueOffset: number;
  commitlogOffset: number;
  status: "SEND_OK" | "FLUSH_DISK_TIMEOUT";
  /** For a transactional send: what `execute` decided. */
  transactionState?: TxState;
  /** The send repeated a `dedupId` inside the window: nothing was stored; this is the first send's result. */
  duplicate: boolean;
  /** For a delayed message (`delayLevel`, `delayMs` or `deliverAt`): what `Producer.recall` takes to cancel it before it is delivered. */
  recallHandle?: string;
}

/** One item of `sendBatch`: a body, or a body with its own options. */
export type BatchItem = Body | ({ body: Body } & SendOptions);

export interface ConsumerOptions {
  group: string;
  topic: string;
  /** A tag expression: "*" (default), "A" or "A || B". */
  tags?: string;
  /**
   * An SQL92 expression over the properties instead of tags, as RocketMQ's
   * `MessageSelector.bySql`: "amount > 100 AND region IN ('eu', 'us')" (the tag is
   * `TAGS`). Give tags or sql, not both.
   */
  sql?: string;
  /** Each consumer of the group gets every message (default false: clustering). */
  broadcasting?: boolean;
  /**
   * One message in flight per queue; a failure retries in place, up to
   * `maxReconsumeTimes` times, then dead-letters. That count is kept in memory,
   * as RocketMQ's client keeps it: after a restart it starts from zero again.
   */
  orderly?: boolean;
  /** Deliveries beyond the first before a message goes to %DLQ%<group> (16). */
  maxReconsumeTimes?: number;
  /** Where a group with no committed offsets starts ("earliest"). */
  start?: Position;
  /** A stable name for this consumer; broadcasting offsets are kept under it. */
  consumerId?: string;
  /** A delivery neither acked nor nacked this long after it (broker clock) is sent back as a nack would be (900000); null: never. */
  ackTimeoutMs?: number | null;
  /** Most unacked messages this consumer holds; a receive returns fewer, or waits (1000). */
  maxInFlight?: number;
}

export interface NackOptions {
  /** Redeliver after this long instead of the retry ladder's step (still a reconsume). */
  delayMs?: number;
}

export interface ReceiveOptions {
  /** At most this many messages (32); 0 ends the receive at once with none. */
  maxMessages?: number;
  /** Wait up to this long (real time) for the first message (1000); Infinity waits until one comes or the consumer closes. */
  timeoutMs?: number;
}

/** A stored message, as `receive`, `get` and `query` return it. */
export class Message {
  private constructor();
  /** Unique id, 32 hex characters; kept on redeliveries and in the DLQ. */
  readonly msgId: string;
  /** The topic the producer sent to (also on a redelivery). */
  readonly topic: string;
  readonly queueId: number;
  readonly queueOffset: number;
  readonly commitlogOffset: number;
  /** The body's bytes: a view that may share its `buffer` with the other messages of one receive. */
  readonly body: Uint8Array;
  readonly tags: string | null;
  readonly keys: string[];
  /** User properties, plus the engine's (RETRY_TOPIC, ORIGIN_MESSAGE_ID, ...). */
  readonly properties: Record<string, string>;
  /** Epoch ms. */
  readonly bornTimestamp: number;
  /** Epoch ms. */
  readonly storeTimestamp: number;
  /** Deliveries before this one that were nacked. */
  readonly reconsumeTimes: number;
  /** From a simple consumer: which delivery this is (1 the first); else 1. */
  readonly deliveryAttempt: number;
  /** From a simple consumer: this delivery's receipt handle (changeInvisibleDuration replaces it); else null. */
  readonly receiptHandle: string | null;
  /** The body decoded as UTF-8. */
  text(): string;
}

/** The outcome of a local transaction. */
export type TxState = "COMMIT" | "ROLLBACK" | "UNKNOWN";
export const TxState: {
  readonly COMMIT: "COMMIT";
  readonly ROLLBACK: "ROLLBACK";
  readonly UNKNOWN: "UNKNOWN";
};

export interface TransactionProducerOptions {
  /**
   * Decides a half message left UNKNOWN (asked after transactionTimeoutMs, every
   * checkIntervalMs). A Promise's outcome is recorded when it settles (a rejection
   * leaves the message to the next check).
   */
  check?: (msg: Message) => TxState | Promise<TxState>;
}

/** A transactional message cannot also be delayed (`delayLevel`, `delayMs`, `deliverAt`: InvalidArgumentError), as in RocketMQ. */
export interface TransactionSendOptions extends SendOptions {
  /** Runs the local transaction; an exception counts as UNKNOWN. */
  execute: (msg: Message) => TxState;
}

export interface AsyncTransactionSendOptions extends SendOptions {
  /** Runs the local transaction asynchronously; a rejection counts as UNKNOWN. */
  execute: (msg: Message) => Promise<TxState>;
}

export interface TopicInfo {
  name: string;
  queues: number;
}

export interface QueueStats {
  queueId: number;
  minOffset: number;
  maxOffset: number;
}

export interface TopicStats {
  queues: QueueStats[];
  messagesIn: number;
  inRate: number;
}

export interface GroupStats {
  group: string;
  topic: string;
  consumers: number;
  lag: number;
  messagesOut: number;
  outRate: number;
  /** Messages retention removed before the group consumed them (since open). */
  expired: number;
}

export interface Stats {
  topics: Record<string, TopicStats>;
  groups: GroupStats[];
  commitlogBytes: number;
  pendingDelayed: number;
  pendingTransactions: number;
  /** Messages ever stored in the user topics (retry and dead-letter copies aside). */
  messagesIn: number;
  /** Messages the user topics still hold. */
  messagesRetained: number;
  /** Records found damaged or unusable since open: skipped, never delivered. */
  corruptRecords: number;
}

/** A group's progress on one queue (a row of mqadmin's consumerProgress). */
export interface ConsumeProgress {
  queueId: number;
  /** The queue's next offset to be written. */
  brokerOffset: number;
  /** The lowest offset the group has not acked. */
  consumerOffset: number;
  /** Messages of the queue the group has not acked. */
  lag: number;
  /** Delivered to the group, not yet acked. */
  inflight: number;
  /** Store time (epoch ms) of the last message the group consumed here (mqadmin's #LastTime), or of the first it has yet to consume; null for an empty queue. */
  lastStoreTimestamp: number | null;
  /** Messages retention removed from this queue before the group consumed them (since the broker opened). */
  expired: number;
}

export interface MoveBacklogOptions {
  /** The topic the backlog moves to (created, or grown to `queues`). */
  to: string;
  /** Queues of `to` (default: as many as the source topic). */
  queues?: number;
  /** Called between steps with what was copied so far; throwing stops the drill. */
  onProgress?: (done: number, total: number) => void;
}

export interface BrowseOptions {
  /** One queue (default: every queue, merged in store order). */
  queueId?: number;
  /** The queue offset to start from (default: the oldest retained). */
  offset?: number;
  /** At most this many (32). */
  limit?: number;
}

export interface RedriveOptions {
  /** At most this many dead letters (default: all). */
  limit?: number;
  onProgress?: (done: number, total: number) => void;
}

/** One embedded engine over one store. */
export class Broker {
  constructor(options?: BrokerOptions);
  /** Creates a topic, or grows its queue count; idempotent. */
  createTopic(name: string, options?: { queues?: number } | number): void;
  topics(): TopicInfo[];
  producer(group?: string): Producer;
  /**
   * Runs `block(tx)` and stores its sends and acks as one append when it returns:
   * all of them, or none when it throws (also across a crash). The block is
   * synchronous; blocks do not nest (InvalidArgumentError).
   */
  atomic(block: (tx: Atomic) => void): SendResult[];
  transactionProducer(group: string, options?: TransactionProducerOptions): TransactionProducer;
  consumer(options: ConsumerOptions): Consumer;
  /** As Python's `consumer(group, topic, **options)`. */
  consumer(group: string, topic: string, options?: Omit<ConsumerOptions, "group" | "topic">): Consumer;
  /** A simple (POP) consumer: RocketMQ 5's SimpleConsumer. */
  simpleConsumer(options: SimpleConsumerOptions): SimpleConsumer;
  /** As Python's `simple_consumer(group, topic, **options)`. */
  simpleConsumer(group: string, topic: string, options?: Omit<SimpleConsumerOptions, "group" | "topic">): SimpleConsumer;
  /** The message with this id, if it is retained. */
  get(msgId: string): Message | null;
  /** The retained messages of `topic` with `key` among their keys, oldest first. */
  query(topic: string, key: string | { key: string }): Message[];
  /**
   * Messages of `topic` not yet acked by `group`. A nacked or timed-out message counts until a
   * redelivery is acked or it goes to `%DLQ%<group>`.
   */
  lag(group: string, topic: string): number;
  resetOffset(group: string, topic: string, to: Position | { to: Position }): void;
  /** The backlog drill: moves `group`'s unconsumed messages of `topic` to a wider topic; returns how many. */
  moveBacklog(group: string, topic: string, options: MoveBacklogOptions): number;
  /** As Python's `move_backlog(group, topic, to, queues=...)`. */
  moveBacklog(group: string, topic: string, to: string, options?: Omit<MoveBacklogOptions, "to">): number;
  /** Messages of `topic` without consuming them. */
  browse(topic: string, options?: BrowseOptions): Message[];
  /** Messages of `topic` stored at or after `start` and before `end`, oldest first. */
  queryByTime(topic: string, start: number | Date, end: number | Date, options?: { limit?: number }): Message[];
  /**
   * `group`'s progress on each queue of `topic`. As in mqadmin's consumerProgress, the group's
   * retries are rows of `%RETRY%<group>`; `lag` counts them for the topic they came from.
   */
  progress(group: string, topic: string): ConsumeProgress[];
  /** `group`'s dead letters not yet redriven, oldest first. */
  deadLetters(group: string, options?: { limit?: number }): Message[];
  /** Resends `group`'s dead letters to that group alone; returns how many. */
  redrive(group: string, options?: RedriveOptions): number;
  /** Deletes a topic: its messages become unreachable and its groups reset. */
  deleteTopic(topic: string): void;
  stats(): Stats;
  /** Runs the work that is due now (delays, retries, transaction checks). */
  tick(): void;
  flush(): void;
  /** Flushes and releases the store; waiting receives resolve with []. Twice is harmless. */
  close(): void;
  readonly closed: boolean;
}

export class Producer {
  private constructor();
  readonly group: string;
  send(topic: string, body: Body, options?: SendOptions): SendResult;
  /**
   * Stores several messages of one topic as one append, to one queue (RocketMQ's batch):
   * all or none. `options` apply to every item; a `dedupId` belongs on each item
   * (`{ body, dedupId }`). Items must share `queueId` and `shardingKey`; a batch of two or
   * more cannot be delayed (`delayLevel`, `delayMs`, `deliverAt`: InvalidArgumentError, as
   * RocketMQ refuses delayed batches); the bodies together stay within the broker's
   * `maxMessageSize`.
   */
  sendBatch(topic: string, items: BatchItem[], options?: Omit<SendOptions, "dedupId">): SendResult[];
  /** Cancels a delayed message before it is delivered (RocketMQ 5.3's recallMessage): true when it was waiting and now never will be delivered; false when its time has come, or it was recalled already. */
  recall(topic: string, recallHandle: string): boolean;
}

export class TransactionProducer {
  private constructor();
  readonly group: string;
  /** Stores a half message, runs `execute` and records the outcome. */
  send(topic: string, body: Body, options: TransactionSendOptions): SendResult;
  /** The same with an async `execute`: the result once its outcome is recorded. */
  send(topic: string, body: Body, options: AsyncTransactionSendOptions): Promise<SendResult>;
}

export class Consumer implements AsyncIterable<Message> {
  private constructor();
  readonly group: string;
  readonly topic: string;
  /** Whether this consumer or its broker was closed. */
  readonly closed: boolean;
  /** Up to maxMessages messages, waiting up to timeoutMs for the first; [] on timeout or close. */
  receive(options?: ReceiveOptions): Promise<Message[]>;
  /** Done: never delivered to this group again. */
  ack(msg: Message | Message[]): void;
  /** Retry later via %RETRY%<group>, then %DLQ%<group>. */
  nack(msg: Message | Message[], options?: NackOptions): void;
  /** Runs handler on each message, at most concurrency (4) at a time: a result acks, a throw nacks, RetryLater nacks with its delay. */
  listen(handler: (msg: Message) => unknown | Promise<unknown>, options?: ListenOptions): ListenRunner;
  /** Leaves the group; twice is harmless. */
  close(): void;
  /** Messages one at a time until the consumer or broker closes; the caller acks. */
  [Symbol.asyncIterator](): AsyncIterator<Message>;
}

export interface ListenOptions {
  /** Handlers running at once: 1 to 100000 (4). */
  concurrency?: number;
}

/** A running listener. */
export interface ListenRunner {
  /** Takes no new messages; resolves once the running handlers are done (rejects with the error that stopped the listener, if one did). */
  stop(): Promise<void>;
  readonly running: boolean;
}

/** Thrown by a listener's handler: nack the message, redelivering it after delayMs. */
export class RetryLater extends Error {
  constructor(delayMs?: number);
  readonly delayMs: number;
}

export interface SimpleConsumerOptions {
  group: string;
  topic: string;
  /** A tag expression: "*" (default), "A" or "A || B". */
  tags?: string;
  /**
   * An SQL92 expression over the properties instead of tags, as RocketMQ's
   * `MessageSelector.bySql`: "amount > 100 AND region IN ('eu', 'us')" (the tag is
   * `TAGS`). Give tags or sql, not both.
   */
  sql?: string;
  /** How long a delivery stays invisible to the group unless acked (30000). */
  invisibleDurationMs?: number;
  /** Deliveries of a message before it goes to %DLQ%<group> (16). */
  maxDeliveryAttempts?: number;
  /** Messages of one shardingKey one at a time, in send order (false). */
  fifo?: boolean;
}

/** The sends and acks of one `broker.atomic` block. */
export class Atomic {
  private constructor();
  /** Adds a send; checked now, stored when the block returns. */
  send(topic: string, body: Body, options?: SendOptions): void;
  /** Adds the ack of messages the consumer received (already acked: InvalidArgumentError). */
  ack(consumer: Consumer | SimpleConsumer, msg: Message | Message[]): void;
}

export class SimpleConsumer implements AsyncIterable<Message> {
  private constructor();
  readonly group: string;
  readonly topic: string;
  readonly closed: boolean;
  /** Up to maxMessages visible messages, waiting up to timeoutMs for the first; each invisible until acked or expired. */
  receive(options?: ReceiveOptions): Promise<Message[]>;
  /** Done for the group; a stale receipt handle throws InvalidReceiptHandleError. */
  ack(msg: Message | Message[]): void;
  /** Invisible for durationMs from now instead (0: visible at once); replaces msg.receiptHandle. */
  changeInvisibleDuration(msg: Message, durationMs: number): void;
  /** A failed delivery: visible again after delayMs, or the retry ladder's step for its attempt. */
  nack(msg: Message | Message[], options?: NackOptions): void;
  listen(handler: (msg: Message) => unknown | Promise<unknown>, options?: ListenOptions): ListenRunner;
  close(): void;
  [Symbol.asyncIterator](): AsyncIterator<Message>;
}

/** A clock that moves only when told to. */
export class ManualClock {
  /** @param startMs epoch ms (or a Date); the wall clock now when omitted. */
  constructor(startMs?: number | Date | null);
  /** Moves the clock forward; due work then runs on the brokers using it. */
  advance(ms: number): void;
  /** Epoch ms on this clock. */
  now(): number;
}

/** The package version. */
export function version(): string;

/** Which of the engine's log records reach the console (default "warn"). */
export function setLogLevel(level: "error" | "warn" | "info" | "debug" | "off"): void;

/** The base of the engine's errors; `code` names the kind. */
export class PocketMQError extends Error {
  readonly code:
    | "InvalidArgument"
    | "MessageTooLarge"
    | "TopicNotFound"
    | "StoreLocked"
    | "StoreCorrupted"
    | "Closed"
    | "INVALID_RECEIPT_HANDLE"
    | "Io"
    | "DISK_FULL"
    | "NotSupported";
}
export class InvalidArgumentError extends PocketMQError {
  readonly code: "InvalidArgument";
}
export class MessageTooLargeError extends PocketMQError {
  readonly code: "MessageTooLarge";
}
export class TopicNotFoundError extends PocketMQError {
  readonly code: "TopicNotFound";
}
export class StoreLockedError extends PocketMQError {
  readonly code: "StoreLocked";
  /** The process that holds the store. */
  readonly pid: number;
  readonly path: string;
}
export class StoreCorruptedError extends PocketMQError {
  readonly code: "StoreCorrupted";
}
export class ClosedError extends PocketMQError {
  readonly code: "Closed";
}
export class InvalidReceiptHandleError extends PocketMQError {
  readonly code: "INVALID_RECEIPT_HANDLE";
}
export class IoError extends PocketMQError {
  readonly code: "Io";
}
/**
 * A write refused because the disk is full or used above `diskMaxUsedRatio`:
 * nothing was written and the store stays usable.
 */
export class DiskFullError extends PocketMQError {
  readonly code: "DISK_FULL";
}
/** A call `connect()`'s protocol cannot carry (named in the message), or `connect()` in a browser. */
export class NotSupportedError extends PocketMQError {
  readonly code: "NotSupported";
}
/** Each error class by its `code`. */
export const ERROR_CLASSES: Readonly<{
  InvalidArgument: typeof InvalidArgumentError;
  MessageTooLarge: typeof MessageTooLargeError;
  TopicNotFound: typeof TopicNotFoundError;
  StoreLocked: typeof StoreLockedError;
  StoreCorrupted: typeof StoreCorruptedError;
  Closed: typeof ClosedError;
  INVALID_RECEIPT_HANDLE: typeof InvalidReceiptHandleError;
  Io: typeof IoError;
  DISK_FULL: typeof DiskFullError;
  NotSupported: typeof NotSupportedError;
}>;

export interface ConnectOptions {
  /** Credentials the server checks (give both or neither). */
  accessKey?: string;
  secretKey?: string;
  /** The namespace resources are named in. */
  namespace?: string;
}

/**
 * The producers and consumers of `Broker` over Apache RocketMQ 5's gRPC protocol, to a
 * `pocketmq serve` or an Apache RocketMQ 5 proxy at `endpoint` ("host:port"). Node only,
 * over the official client: `npm install rocketmq-client-nodejs` (without it, the first
 * call rejects with NotSupportedError; in a browser `connect` throws it). Clients connect
 * when first used: a server that is not there rejects that call with IoError. Whatever
 * waits on the network returns a Promise. What the protocol cannot carry (createTopic,
 * get, query, lag, stats, tick, ...) throws NotSupportedError naming the call.
 */
export function connect(endpoint: string, options?: ConnectOptions): RemoteBroker;

export class RemoteBroker {
  private constructor();
  readonly endpoint: string;
  readonly namespace: string;
  readonly closed: boolean;
  producer(group?: string): RemoteProducer;
  transactionProducer(group: string, options?: TransactionProducerOptions): RemoteTransactionProducer;
  /** A classic consumer over the protocol's POP model: `ackTimeoutMs` is each delivery's invisible time (10 s to 12 h). */
  consumer(options: ConsumerOptions): RemoteConsumer;
  consumer(group: string, topic: string, options?: Omit<ConsumerOptions, "group" | "topic">): RemoteConsumer;
  simpleConsumer(options: SimpleConsumerOptions): RemoteConsumer;
  simpleConsumer(group: string, topic: string, options?: Omit<SimpleConsumerOptions, "group" | "topic">): RemoteConsumer;
  /** Shuts every client down; waiting receives resolve with []. Twice is harmless. */
  close(): Promise<void>;
}

export class RemoteProducer {
  private constructor();
  readonly group: string;
  /** `queueId` and `dedupId` throw NotSupportedError; a `shardingKey` is the message group. */
  send(topic: string, body: Body, options?: SendOptions): Promise<SendResult>;
  /** One send per item, in order (the official client sends one message a call): not all-or-none. */
  sendBatch(topic: string, items: BatchItem[], options?: Omit<SendOptions, "dedupId">): Promise<SendResult[]>;
  recall(topic: string, recallHandle: string): Promise<boolean>;
}

export class RemoteTransactionProducer {
  private constructor();
  readonly group: string;
  /** Sends a half message, runs `execute` (sync or async) and ends the transaction by its TxState. */
  send(topic: string, body: Body, options: SendOptions & { execute: (msg: Message) => TxState | Promise<TxState> }): Promise<SendResult>;
}

/** A consumer over the network: `consumer()` and `simpleConsumer()` alike; settling waits for the server. */
export class RemoteConsumer implements AsyncIterable<Message> {
  private constructor();
  readonly group: string;
  readonly topic: string;
  readonly closed: boolean;
  /** At most 32 messages a call (the servers' batch limit). */
  receive(options?: ReceiveOptions): Promise<Message[]>;
  ack(msg: Message | Message[]): Promise<void>;
  /** Visible again after `delayMs`, or the retry backoff for the delivery attempt. */
  nack(msg: Message | Message[], options?: NackOptions): Promise<void>;
  changeInvisibleDuration(msg: Message, durationMs: number): Promise<void>;
  listen(handler: (msg: Message) => unknown | Promise<unknown>, options?: ListenOptions): ListenRunner;
  close(): Promise<void>;
  [Symbol.asyncIterator](): AsyncIterator<Message>;
}
