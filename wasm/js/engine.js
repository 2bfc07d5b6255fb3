// Holds the loaded engine (the wasm-bindgen glue) for the wrapper. The entry
// module (node.js or web.js) loads the glue its platform needs and binds it here
// before anything else runs.
import {
  InvalidArgumentError,
  MessageTooLargeError,
  TopicNotFoundError,
  StoreLockedError,
  StoreCorruptedError,
  ClosedError,
  IoError,
} from "./errors.js";

/** The wasm-bindgen glue of the engine. */
export let native = null;

/** Called once by the entry module with the loaded glue. */
export function bind(glue) {
  native = glue;
  native.registerErrorClasses({
    InvalidArgument: InvalidArgumentError,
    MessageTooLarge: MessageTooLargeError,
    TopicNotFound: TopicNotFoundError,
    StoreLocked: StoreLockedError,
    StoreCorrupted: StoreCorruptedError,
    Closed: ClosedError,
    Io: IoError,
  });
}
