//! Producers: `send`/`sendBatch`, and the transactional `send` whose `execute`
//! and `check` are JS functions. The engine wants a `Send + Sync` listener; JS
//! functions are neither, so the listener holds a number and the functions live
//! in a thread-local table (wasm has one thread) until the listener drops.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use js_sys::{Array, Function};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use pocketmq::{MessageExt, TransactionListener, TxState};

use crate::convert::{message, send_result, string};
use crate::errors::{invalid, type_error, IntoJsResult};
use crate::message::Message;

#[wasm_bindgen]
pub struct Producer(pub(crate) pocketmq::Producer);

#[wasm_bindgen]
impl Producer {
    /// Stores one message; returns its SendResult.
    pub fn send(
        &self,
        topic: JsValue,
        body: JsValue,
        options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let msg = message(&topic, &body, &options)?;
        send_result(&self.0.send(msg).js_err()?)
    }

    /// Stores the bodies, each with its options object, as one append.
    #[wasm_bindgen(js_name = sendBatch)]
    pub fn send_batch(
        &self,
        topic: JsValue,
        bodies: Array,
        options: Array,
    ) -> Result<Array, JsValue> {
        if bodies.length() != options.length() {
            return Err(invalid("sendBatch needs one options object per body"));
        }
        let msgs = bodies
            .iter()
            .zip(options.iter())
            .map(|(b, o)| message(&topic, &b, &o))
            .collect::<Result<Vec<_>, _>>()?;
        let out = Array::new();
        for r in self.0.send_batch(msgs).js_err()? {
            out.push(&send_result(&r)?);
        }
        Ok(out)
    }

    /// The producer group.
    #[wasm_bindgen(getter)]
    pub fn group(&self) -> String {
        self.0.group().to_string()
    }
}

thread_local! {
    static CHECKS: RefCell<HashMap<u32, Function>> = RefCell::new(HashMap::new());
    static NEXT_CHECK: RefCell<u32> = const { RefCell::new(0) };
}

/// Reads a transaction state name; anything else is UNKNOWN (left to check-back).
fn tx_state(value: &JsValue) -> TxState {
    match value.as_string().as_deref() {
        Some("COMMIT") => TxState::Commit,
        Some("ROLLBACK") => TxState::Rollback,
        _ => TxState::Unknown,
    }
}

/// Calls a JS function on a message; an exception counts as UNKNOWN.
fn decide(f: &Function, msg: &MessageExt) -> TxState {
    f.call1(&JsValue::NULL, &Message(msg.clone()).into())
        .map(|v| tx_state(&v))
        .unwrap_or(TxState::Unknown)
}

/// The check-back listener of one transaction producer.
struct JsListener {
    id: u32,
}

impl TransactionListener for JsListener {
    fn check(&self, msg: &MessageExt) -> TxState {
        let f = CHECKS.with(|c| c.borrow().get(&self.id).cloned());
        f.map_or(TxState::Unknown, |f| decide(&f, msg))
    }
}

impl Drop for JsListener {
    fn drop(&mut self) {
        CHECKS.with(|c| c.borrow_mut().remove(&self.id));
    }
}

pub(crate) fn listener(check: Function) -> Arc<dyn TransactionListener> {
    let id = NEXT_CHECK.with(|n| {
        let mut n = n.borrow_mut();
        *n = n.wrapping_add(1);
        *n
    });
    CHECKS.with(|c| c.borrow_mut().insert(id, check));
    Arc::new(JsListener { id })
}

#[wasm_bindgen]
pub struct TransactionProducer(pub(crate) pocketmq::TransactionProducer);

#[wasm_bindgen]
impl TransactionProducer {
    /// Stores a half message, calls `execute(message)` (which returns "COMMIT",
    /// "ROLLBACK" or "UNKNOWN") and records the outcome.
    pub fn send(
        &self,
        topic: JsValue,
        body: JsValue,
        options: JsValue,
        execute: JsValue,
    ) -> Result<JsValue, JsValue> {
        let Some(execute) = execute.dyn_ref::<Function>() else {
            return Err(type_error("execute must be a function"));
        };
        let msg = message(&topic, &body, &options)?;
        send_result(&self.0.send(msg, |m| decide(execute, m)).js_err()?)
    }

    /// The producer group.
    #[wasm_bindgen(getter)]
    pub fn group(&self) -> String {
        self.0.group().to_string()
    }
}

/// A producer group name.
pub(crate) fn group(value: &JsValue) -> Result<String, JsValue> {
    string("group", value)
}
