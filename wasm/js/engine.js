// Holds the loaded engine (the wasm-bindgen glue) for the wrapper. The entry
// module (node.js or web.js) loads the glue its platform needs and binds it here
// before anything else runs.
import { ERROR_CLASSES } from "./errors.js";

/** The wasm-bindgen glue of the engine. */
export let native = null;

/**
 * What the platform adds: `hostFs(path)`, the file functions of a store at
 * `path` (Node only; without it a `path` is refused), and `onExit(fn)`, which
 * runs `fn` when the process exits.
 */
export let platform = {};

/** Called once by the entry module with the loaded glue and its platform's additions. */
export function bind(glue, additions = {}) {
  native = glue;
  platform = additions;
  native.registerErrorClasses(ERROR_CLASSES);
}
