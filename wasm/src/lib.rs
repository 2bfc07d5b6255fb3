//! The JavaScript binding of pocketmq: thin wasm-bindgen newtypes over the core's
//! `Broker`, `Producer`, `TransactionProducer`, `Consumer`, batches of `MessageExt`
//! and `ManualClock`, plus the core's `HostFs` over Node's fs (host_fs.rs). This
//! crate converts JS values to engine values and back (results in the wire form
//! of wire.rs) and maps errors (errors.rs); it never decides messaging semantics.
//! The ES-module wrapper in `wasm/js/` gives the public surface (Promises, timers
//! that drive `tick`, `for await`), so nothing here waits: on wasm a receive
//! never blocks.
//!
//! No panic may reach JS: every value that comes from JS is checked and a bad one
//! becomes a `TypeError` (wrong type) or an `InvalidArgumentError` (wrong value).

mod atomic;
mod broker;
mod consumer;
mod convert;
mod errors;
mod host_fs;
mod message;
mod producer;
mod simple_consumer;
mod wire;

pub use atomic::Atomic;
pub use broker::{Broker, ManualClock};
pub use consumer::{Consumer, Receiving};
pub use errors::register_error_classes;
pub use message::Messages;
pub use producer::{Producer, TransactionProducer};
pub use simple_consumer::SimpleConsumer;

use wasm_bindgen::prelude::*;

/// The engine's linear memory, where results in wire form (wire.rs) are read.
#[wasm_bindgen(js_name = wasmMemory)]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}

/// Where the wrapper stages a body for `Producer.sendStaged`, and its size.
#[wasm_bindgen(js_name = stagingArea)]
pub fn staging_area() -> Vec<u32> {
    vec![wire::stage_ptr(), wire::STAGE_SIZE as u32]
}

/// The version of the package.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
