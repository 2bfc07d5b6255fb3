// Node entry: loads the engine compiled for Node (CommonJS glue) synchronously,
// with a file store over Node's fs for `new Broker({ path })`.
import glue from "./node/pocketmq_wasm.js";
import { bind } from "./engine.js";
import { nodeHostFs } from "./node_fs.js";

bind(glue, {
  hostFs: nodeHostFs,
  onExit: (fn) => process.once("exit", fn),
});

export * from "./pocketmq.js";
export { connect, RemoteBroker } from "./remote.js";
