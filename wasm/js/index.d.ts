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
  /** Age after which a whole CommitLog segment is deleted (72 h). */
  fileReservedTimeMs?: number;
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
}

export interface SendOptions {
  /** One tag, matched by consumers' tag expressions. */
  tags?: string;
  /** One key or several; `broker.query(topic, key)` finds the message by any of them. */
  keys?: string | string[];
  properties?: Record<string, string>;
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
}

export interface SendResult {
  msgId: string;
  topic: string;
  queueId: number;
  queueOffset: number;
  commitlogOffset: number;
  status: "SEND_OK" | "FLUSH_DISK_TIMEOUT";
  /** For a transactional send: what `execute` decided. */
  transactionState?: TxState;
}

/** One item of `sendBatch`: a body, or a body with its own options. */
export type BatchItem = Body | ({ body: Body } & SendOptions);

export interface ConsumerOptions {
  group: string;
  topic: string;
  /** A tag expression: "*" (default), "A" or "A || B". */
  tags?: string;
  /** Each consumer of the group gets every message (default false: clustering). */
  broadcasting?: boolean;
  /** One message in flight per queue; a failure retries in place. */
  orderly?: boolean;
  /** Deliveries beyond the first before a message goes to %DLQ%<group> (16). */
  maxReconsumeTimes?: number;
  /** Where a group with no committed offsets starts ("earliest"). */
  start?: Position;
  /** A stable name for this consumer; broadcasting offsets are kept under it. */
  consumerId?: string;
}

export interface ReceiveOptions {
  /** At most this many messages (32). */
  maxMessages?: number;
  /** Wait up to this long (real time) for the first message (1000). */
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
  /** Decides a half message left UNKNOWN (asked after transactionTimeoutMs, every checkIntervalMs). */
  check?: (msg: Message) => TxState;
}

export interface TransactionSendOptions extends SendOptions {
  /** Runs the local transaction; an exception counts as UNKNOWN. */
  execute: (msg: Message) => TxState;
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
  /** Records found damaged or unusable since open: skipped, never delivered. */
  corruptRecords: number;
}

/** One embedded engine over one store. */
export class Broker {
  constructor(options?: BrokerOptions);
  /** Creates a topic, or grows its queue count; idempotent. */
  createTopic(name: string, options?: { queues?: number }): void;
  topics(): TopicInfo[];
  producer(group: string): Producer;
  transactionProducer(group: string, options?: TransactionProducerOptions): TransactionProducer;
  consumer(options: ConsumerOptions): Consumer;
  /** The message with this id, if it is retained. */
  get(msgId: string): Message | null;
  /** The retained messages of `topic` with `key` among their keys, oldest first. */
  query(topic: string, key: string | { key: string }): Message[];
  /** Messages of `topic` not yet acked by `group`. */
  lag(group: string, topic: string): number;
  resetOffset(group: string, topic: string, to: Position | { to: Position }): void;
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
  /** Stores several messages of one topic as one append. */
  sendBatch(topic: string, items: BatchItem[], options?: SendOptions): SendResult[];
}

export class TransactionProducer {
  private constructor();
  readonly group: string;
  /** Stores a half message, runs `execute` and records the outcome. */
  send(topic: string, body: Body, options: TransactionSendOptions): SendResult;
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
  nack(msg: Message | Message[]): void;
  /** Leaves the group; twice is harmless. */
  close(): void;
  /** Messages one at a time until the consumer or broker closes; the caller acks. */
  [Symbol.asyncIterator](): AsyncIterator<Message>;
}

/** A clock that moves only when told to. */
export class ManualClock {
  /** @param startMs epoch ms (or a Date); the wall clock now when omitted. */
  constructor(startMs?: number | Date);
  /** Moves the clock forward; due work then runs on the brokers using it. */
  advance(ms: number): void;
  /** Epoch ms on this clock. */
  now(): number;
}

/** The package version. */
export function version(): string;

/** The base of the engine's errors; `code` names the kind. */
export class PocketMQError extends Error {
  readonly code:
    | "InvalidArgument"
    | "MessageTooLarge"
    | "TopicNotFound"
    | "StoreLocked"
    | "StoreCorrupted"
    | "Closed"
    | "Io"
    | "DISK_FULL";
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
