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

mod admin;
mod atomic;
mod broker;
mod consumer;
mod convert;
mod errors;
#[cfg(target_arch = "wasm32")]
mod headroom;
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

/// The engine's log records (a dead letter, a store taken over, a drill) on the
/// JS console: warnings and errors by default, more after `setLogLevel`.
struct ConsoleLog;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(s: &str);
    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn console_warn(s: &str);
    #[wasm_bindgen(js_namespace = console, js_name = info)]
    fn console_info(s: &str);
}

impl log::Log for ConsoleLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let text = format!("pocketmq: {}", r.args());
        match r.level() {
            log::Level::Error => console_error(&text),
            log::Level::Warn => console_warn(&text),
            _ => console_info(&text),
        }
    }

    fn flush(&self) {}
}

#[wasm_bindgen(start)]
fn start() {
    // The engine has no random source here: each new store's message-id nonce
    // takes the host's (two draws of 32 bits).
    let draw = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
    pocketmq::add_entropy(draw() << 32 | draw());
    // Under Node the engine records its process (a store's abort marker) by pid.
    let pid = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("process"))
        .ok()
        .filter(|p| p.is_object())
        .and_then(|p| js_sys::Reflect::get(&p, &JsValue::from_str("pid")).ok())
        .and_then(|pid| pid.as_f64());
    if let Some(pid) = pid.filter(|p| *p >= 0.0 && *p <= u32::MAX as f64) {
        pocketmq::set_process_id(pid as u32);
    }
    if log::set_logger(&ConsoleLog).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

/// Which of the engine's log records reach the console: "error", "warn" (the
/// default), "info", "debug" or "off".
#[wasm_bindgen(js_name = setLogLevel)]
pub fn set_log_level(level: &str) -> Result<(), JsValue> {
    let filter = match level {
        "off" => log::LevelFilter::Off,
        "error" => log::LevelFilter::Error,
        "warn" => log::LevelFilter::Warn,
        "info" => log::LevelFilter::Info,
        "debug" => log::LevelFilter::Debug,
        other => {
            let msg = format!("log level must be off, error, warn, info or debug, not {other:?}");
            return Err(errors::invalid(msg));
        }
    };
    log::set_max_level(filter);
    Ok(())
}

/// The version of the package.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
