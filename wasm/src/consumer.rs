//! A consumer of a group. Nothing here waits (wasm has no threads): the JS wrapper
//! steps the core's receive (`startReceive`, `receiveStep`) and, between steps,
//! awaits the core's `onReady` callback or the receive's deadline.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use js_sys::Function;
use pocketmq::Receive;
use wasm_bindgen::prelude::*;

use crate::convert::{ms, usize_arg};
use crate::errors::{done, invalid, IntoJsResult};
use crate::message::Messages;

#[wasm_bindgen]
pub struct Consumer(pub(crate) pocketmq::Consumer);

/// A receive in progress.
#[wasm_bindgen]
pub struct Receiving(pub(crate) pocketmq::Receiving);

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

/// The engine's callback for a JS function: the engine wants `Send` callbacks and
/// JS functions are not, so it holds a number (wasm has one thread).
pub(crate) fn ready_callback(callback: Function) -> Box<dyn FnOnce() + Send> {
    let id = READY.with(|r| {
        let (next, table) = &mut *r.borrow_mut();
        *next = next.wrapping_add(1);
        table.insert(*next, callback);
        *next
    });
    Box::new(move || {
        if let Some(f) = READY.with(|r| r.borrow_mut().1.remove(&id)) {
            let _ = f.call0(&JsValue::NULL);
        }
    })
}

/// `startReceive` of either kind: up to `max` messages ending after `timeoutMs`
/// (undefined: only with messages or a close).
pub(crate) fn start<R: Receive>(
    c: &R,
    max: f64,
    timeout_ms: Option<f64>,
) -> Result<Receiving, JsValue> {
    // 0 asks for nothing: the receive ends at once, empty (as in Python and Rust).
    let max = usize_arg("maxMessages", max)?;
    let timeout = timeout_ms
        .map(|t| ms("timeoutMs", t).map(Duration::from_millis))
        .transpose()?;
    c.start_receive(max, timeout).js_err().map(Receiving)
}

/// `receiveStep` of either kind: looks once; the messages (empty when the receive
/// ended empty), or undefined when it goes on.
pub(crate) fn step<R: Receive>(c: &R, r: &Receiving) -> Result<Option<Messages>, JsValue> {
    let step = c.receive_step(&r.0, Some(Duration::ZERO)).js_err()?;
    Ok(step.map(Messages))
}

#[wasm_bindgen]
impl Consumer {
    #[wasm_bindgen(js_name = startReceive)]
    pub fn start_receive(&self, max: f64, timeout_ms: Option<f64>) -> Result<Receiving, JsValue> {
        start(&self.0, max, timeout_ms)
    }

    #[wasm_bindgen(js_name = receiveStep)]
    pub fn receive_step(&self, r: &Receiving) -> Result<Option<Messages>, JsValue> {
        step(&self.0, r)
    }

    /// Calls `callback()` once: at once if a receive may find messages, else when
    /// one may (a send, a delay coming due, an ack, a close).
    #[wasm_bindgen(js_name = onReady)]
    pub fn on_ready(&self, callback: Function) {
        self.0.on_ready(ready_callback(callback));
    }

    /// Marks the message at `index` of a batch done for this group; false when that
    /// failed, its error then waiting in `takeError`.
    pub fn ack(&self, batch: &Messages, index: u32) -> bool {
        done(batch.at(index).and_then(|m| self.0.ack(m).js_err()))
    }

    /// Acks the messages at `start..end` of a batch under one lock, in order (what
    /// acking a whole received batch does).
    #[wasm_bindgen(js_name = ackRange)]
    pub fn ack_range(&self, batch: &Messages, start: u32, end: u32) -> Result<(), JsValue> {
        let run = batch.0.get(start as usize..end as usize).ok_or_else(|| {
            invalid(format!(
                "no messages {start}..{end} in this batch of {}",
                batch.0.len()
            ))
        })?;
        self.0.ack_all(run).js_err()
    }

    /// Sends the message at `index` of a batch back for a later retry, after
    /// `delay_ms` instead of the retry ladder's step when given (or to the DLQ past
    /// the limit).
    pub fn nack(&self, batch: &Messages, index: u32, delay_ms: Option<f64>) -> Result<(), JsValue> {
        let msg = batch.at(index)?;
        match delay_ms {
            Some(d) => self
                .0
                .nack_after(msg, Duration::from_millis(ms("delayMs", d)?)),
            None => self.0.nack(msg),
        }
        .js_err()
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
