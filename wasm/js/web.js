// Browser entry: fetches and instantiates the engine before the module resolves.
import init, * as glue from "./web/pocketmq_wasm.js";
import { bind } from "./engine.js";
import { NotSupportedError } from "./errors.js";

await init({ module_or_path: new URL("./web/pocketmq_wasm_bg.wasm", import.meta.url) });
bind(glue);

export * from "./pocketmq.js";

/** `connect()` speaks gRPC, which a browser cannot: NotSupportedError (Node has it). */
export function connect() {
  throw new NotSupportedError("connect(): a browser cannot speak the RocketMQ 5 gRPC protocol (Node can)");
}
