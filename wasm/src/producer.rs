//! Producers: `send`/`sendBatch` (with fast paths for sends without options), and the transactional `send` whose `execute`
//! and `check` are JS functions. The engine wants a `Send + Sync` listener; JS
//! functions are neither, so the listener holds a number and the functions live
//! in a thread-local table (wasm has one thread) until the listener drops.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use js_sys::{Array, Function};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use pocketmq::{Message, MessageExt, SendResult, TransactionListener, TxState};

use crate::convert::{body, message, send_result, string};
use crate::errors::{invalid, type_error, IntoJsResult};
use crate::message::Messages;
use crate::wire;

/// A producer. Topics it sends to are kept by index (`topicIndex`), so that the
/// fast paths (`sendBytes`, `sendText`, `sendPlainBatch`) do not decode the topic
/// name from JS on every call; their results go out in wire form (wire.rs).
#[wasm_bindgen]
pub struct Producer {
    pub(crate) inner: pocketmq::Producer,
    pub(crate) broker: pocketmq::Broker,
    topics: RefCell<Vec<String>>,
}

impl Producer {
    pub(crate) fn new(inner: pocketmq::Producer, broker: pocketmq::Broker) -> Producer {
        Producer {
            inner,
            broker,
            topics: RefCell::new(Vec::new()),
        }
    }

    fn topic(&self, index: u32) -> Result<String, JsValue> {
        self.topics
            .borrow()
            .get(index as usize)
            .cloned()
            .ok_or_else(|| invalid(format!("no topic {index} on this producer")))
    }

    fn emit(&self, results: &[SendResult]) -> u32 {
        wire::send_results(results, self.broker.next_due_ms())
    }
}

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
        send_result(&self.inner.send(msg).js_err()?)
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
        for r in self.inner.send_batch(msgs).js_err()? {
            out.push(&send_result(&r)?);
        }
        Ok(out)
    }

    /// The index under which this producer keeps `topic` for the fast paths.
    #[wasm_bindgen(js_name = topicIndex)]
    pub fn topic_index(&self, topic: JsValue) -> Result<u32, JsValue> {
        let name = string("topic", &topic)?;
        let mut topics = self.topics.borrow_mut();
        if let Some(i) = topics.iter().position(|t| *t == name) {
            return Ok(i as u32);
        }
        topics.push(name);
        Ok((topics.len() - 1) as u32)
    }

    /// Stores one message without options to the topic at `topic`; returns the
    /// address of its result in wire form.
    #[wasm_bindgen(js_name = sendBytes)]
    pub fn send_bytes(&self, topic: u32, body: Vec<u8>) -> Result<u32, JsValue> {
        let r = self
            .inner
            .send(Message::new(self.topic(topic)?, body))
            .js_err()?;
        Ok(self.emit(std::slice::from_ref(&r)))
    }

    /// `sendBytes` with the body the wrapper wrote to the staging area (its first `len` bytes).
    #[wasm_bindgen(js_name = sendStaged)]
    pub fn send_staged(&self, topic: u32, len: u32) -> Result<u32, JsValue> {
        let body = wire::staged(len).ok_or_else(|| {
            invalid(format!(
                "a staged body is at most {} bytes",
                wire::STAGE_SIZE
            ))
        })?;
        let r = self
            .inner
            .send(Message::new(self.topic(topic)?, body))
            .js_err()?;
        Ok(self.emit(std::slice::from_ref(&r)))
    }

    /// `sendBytes` with a string body (stored as UTF-8).
    #[wasm_bindgen(js_name = sendText)]
    pub fn send_text(&self, topic: u32, body: String) -> Result<u32, JsValue> {
        let r = self
            .inner
            .send(Message::new(self.topic(topic)?, body.into_bytes()))
            .js_err()?;
        Ok(self.emit(std::slice::from_ref(&r)))
    }

    /// Stores bodies (strings or `Uint8Array`s) without options as one append;
    /// returns the address of the results in wire form.
    #[wasm_bindgen(js_name = sendPlainBatch)]
    pub fn send_plain_batch(&self, topic: u32, bodies: Array) -> Result<u32, JsValue> {
        let name = self.topic(topic)?;
        let msgs = bodies
            .iter()
            .map(|b| Ok(Message::new(name.clone(), body(&b)?)))
            .collect::<Result<Vec<_>, JsValue>>()?;
        let results = self.inner.send_batch(msgs).js_err()?;
        Ok(self.emit(&results))
    }

    /// The producer group.
    #[wasm_bindgen(getter)]
    pub fn group(&self) -> String {
        self.inner.group().to_string()
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
    f.call1(&JsValue::NULL, &Messages(vec![msg.clone()]).into())
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
