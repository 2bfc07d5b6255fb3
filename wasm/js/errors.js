// The errors of pocketmq: one `Error` subclass per kind of engine error, each
// with a `code` naming the kind ("InvalidArgument", ...). The engine builds
// them itself (wasm/src/errors.rs) once engine.js has registered them.

/** The base of every error the engine raises; `code` names its kind. */
export class PocketMQError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}
/** A value out of range or malformed (wrong types throw `TypeError`). */
export class InvalidArgumentError extends PocketMQError {}
/** A body over `maxMessageSize`. */
export class MessageTooLargeError extends PocketMQError {}
/** A topic that does not exist when `autoCreateTopics` is false. */
export class TopicNotFoundError extends PocketMQError {}
/** Another process owns the store directory (`pid` names it). */
export class StoreLockedError extends PocketMQError {}
/** The store's files cannot be read back as a store. */
export class StoreCorruptedError extends PocketMQError {}
/** A call on a closed broker, producer or consumer. */
export class ClosedError extends PocketMQError {}
/** A simple consumer's receipt handle that is not current (expired, changed, acked, of another group). */
export class InvalidReceiptHandleError extends PocketMQError {}
/** The platform refused a storage operation. */
export class IoError extends PocketMQError {}
/**
 * A write refused because the disk is full or used above `diskMaxUsedRatio`:
 * nothing was written and the store stays usable.
 */
export class DiskFullError extends PocketMQError {}

/** A call that `connect()`'s protocol cannot carry, or a platform without it (browsers). */
export class NotSupportedError extends PocketMQError {}

/** Each error class by its `code`: the engine builds these (engine.js registers them). */
export const ERROR_CLASSES = {
  InvalidArgument: InvalidArgumentError,
  MessageTooLarge: MessageTooLargeError,
  TopicNotFound: TopicNotFoundError,
  StoreLocked: StoreLockedError,
  StoreCorrupted: StoreCorruptedError,
  Closed: ClosedError,
  INVALID_RECEIPT_HANDLE: InvalidReceiptHandleError,
  Io: IoError,
  DISK_FULL: DiskFullError,
  NotSupported: NotSupportedError,
};

for (const [code, cls] of Object.entries(ERROR_CLASSES)) {
  Object.defineProperty(cls.prototype, "code", { value: code, writable: true, configurable: true });
}
