//! A consumer of a group. Nothing here waits (wasm has no threads): the JS wrapper
//! steps the core's receive (`startReceive`, `receiveStep`) and, between steps,
//! awaits the core's `onReady` callback or the receive's deadline.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use js_sys::Function;
use wasm_bindgen::prelude::*;

use crate::convert::{ms, usize_arg};
use crate::errors::{invalid, IntoJsResult};
use crate::message::Messages;

#[wasm_bindgen]
pub struct Consumer(pub(crate) pocketmq::Consumer);

/// A receive in progress.
#[wasm_bindgen]
pub struct Receiving(pocketmq::Receiving);

#[wasm_bindgen]
impl Receiving {
    /// Milliseconds left until the receive's deadline (undefined: none).
    #[wasm_bindgen(js_name = remainingMs)]
    pub fn remaining_ms(&self) -> Option<f64> {
        self.0.remaining().map(|d| d.as_secs_f64() * 1000.0)
    }
}

thread_local! {
    /// `onReady` callbacks waiting for the engine: the engine wants `Send`
    /// callbacks and JS functions are not, so it holds a number (wasm has one thread).
    static READY: RefCell<(u32, HashMap<u32, Function>)> = RefCell::new((0, HashMap::new()));
}

#[wasm_bindgen]
impl Consumer {
    /// Starts a receive of up to `max` messages ending after `timeoutMs` (undefined:
    /// only with messages or a close).
    #[wasm_bindgen(js_name = startReceive)]
    pub fn start_receive(&self, max: f64, timeout_ms: Option<f64>) -> Result<Receiving, JsValue> {
        let max = usize_arg("maxMessages", max)?;
        if max == 0 {
            return Err(invalid("maxMessages must be at least 1"));
        }
        let timeout = timeout_ms
            .map(|t| ms("timeoutMs", t).map(Duration::from_millis))
            .transpose()?;
        self.0.start_receive(max, timeout).js_err().map(Receiving)
    }

    /// Looks once: the messages (empty when the receive ended empty), or undefined
    /// when it goes on.
    #[wasm_bindgen(js_name = receiveStep)]
    pub fn receive_step(&self, r: &Receiving) -> Result<Option<Messages>, JsValue> {
        let step = self.0.receive_step(&r.0, Some(Duration::ZERO)).js_err()?;
        Ok(step.map(Messages))
    }

    /// Calls `callback()` once: at once if a receive may find messages, else when
    /// one may (a send, a delay coming due, an ack, a close).
    #[wasm_bindgen(js_name = onReady)]
    pub fn on_ready(&self, callback: Function) {
        let id = READY.with(|r| {
            let (next, table) = &mut *r.borrow_mut();
            *next = next.wrapping_add(1);
            table.insert(*next, callback);
            *next
        });
        self.0.on_ready(Box::new(move || {
            if let Some(f) = READY.with(|r| r.borrow_mut().1.remove(&id)) {
                let _ = f.call0(&JsValue::NULL);
            }
        }));
    }

    /// Marks the message at `index` of a batch done for this group.
    pub fn ack(&self, batch: &Messages, index: u32) -> Result<(), JsValue> {
        self.0.ack(batch.at(index)?).js_err()
    }

    /// Sends the message at `index` of a batch back for a later retry (or to the
    /// DLQ past the limit).
    pub fn nack(&self, batch: &Messages, index: u32) -> Result<(), JsValue> {
        self.0.nack(batch.at(index)?).js_err()
    }

    /// Leaves the group.
    pub fn close(&self) -> Result<(), JsValue> {
        self.0.close().js_err()
    }

    #[wasm_bindgen(getter)]
    pub fn group(&self) -> String {
        self.0.group().to_string()
    }

    #[wasm_bindgen(getter)]
    pub fn topic(&self) -> String {
        self.0.topic().to_string()
    }
}
