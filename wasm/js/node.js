// Node entry: loads the engine compiled for Node (CommonJS glue) synchronously.
import glue from "./node/pocketmq_wasm.js";
import { bind } from "./engine.js";

bind(glue);

export * from "./pocketmq.js";
