//! Producers: sends of messages the wrapper encodes (wire.rs), and the transactional
//! `send` whose `execute` and `check` are JS functions. The engine wants a `Send + Sync` listener; JS
//! functions are neither, so the listener holds a number and the functions live
//! in a thread-local table (wasm has one thread) until the listener drops.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use js_sys::Function;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use pocketmq::{MessageExt, TransactionListener, TxState};

use crate::convert::{send_result, string};
use crate::errors::{invalid, or_zero, type_error, IntoJsResult};
use crate::message::Messages;
use crate::wire;

/// A producer. Topics it sends to are kept by index (`topicIndex`), so that a send
/// does not decode the topic name from JS every time; messages arrive encoded (in
/// the staging area, or as bytes) and results go out in wire form (wire.rs).
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

    /// Sends what `read` decodes for the topic at `index`; the results' address.
    fn send_with(
        &self,
        index: u32,
        read: impl FnOnce(&str) -> Result<wire::Sent, JsValue>,
    ) -> Result<u32, JsValue> {
        let sent = {
            let topics = self.topics.borrow();
            let topic = topics
                .get(index as usize)
                .ok_or_else(|| invalid(format!("no topic {index} on this producer")))?;
            read(topic)?
        };
        let next_due = || self.broker.next_due_ms();
        Ok(match sent {
            wire::Sent::One(msg) => {
                let r = self.inner.send(msg).js_err()?;
                wire::send_results(std::slice::from_ref(&r), next_due())
            }
            wire::Sent::Batch(msgs) => {
                let results = self.inner.send_batch(msgs).js_err()?;
                wire::send_results(&results, next_due())
            }
        })
    }
}

#[wasm_bindgen]
impl Producer {
    /// The index under which this producer keeps `topic`; `reset` forgets the others
    /// first (the wrapper keeps a bounded table).
    #[wasm_bindgen(js_name = topicIndex)]
    pub fn topic_index(&self, topic: JsValue, reset: bool) -> Result<u32, JsValue> {
        let name = string("topic", &topic)?;
        let mut topics = self.topics.borrow_mut();
        if reset {
            topics.clear();
        }
        if let Some(i) = topics.iter().position(|t| *t == name) {
            return Ok(i as u32);
        }
        topics.push(name);
        Ok((topics.len() - 1) as u32)
    }

    /// Stores the messages the wrapper encoded in the staging area (its first `len`
    /// bytes) to the topic at `topic`, one message or one batch; returns the
    /// address of the results in wire form; 0 when the send failed, its error then
    /// waiting in `takeError`.
    #[wasm_bindgen(js_name = sendStaged)]
    pub fn send_staged(&self, topic: u32, len: u32) -> u32 {
        or_zero(self.send_with(topic, |t| wire::staged_messages(t, len)))
    }

    /// `sendStaged` with the encoded messages given as bytes (too large to stage).
    #[wasm_bindgen(js_name = sendEncoded)]
    pub fn send_encoded(&self, topic: u32, encoded: Vec<u8>) -> Result<u32, JsValue> {
        self.send_with(topic, |t| wire::read_send(&encoded, t))
    }

    /// The producer group.
    #[wasm_bindgen(getter)]
    pub fn group(&self) -> String {
        self.inner.group().to_string()
    }

    /// Cancels a delayed message before it is delivered (`Producer::recall`).
    pub fn recall(&self, topic: JsValue, handle: JsValue) -> Result<bool, JsValue> {
        let topic = string("topic", &topic)?;
        let handle = string("recallHandle", &handle)?;
        self.inner.recall(&topic, &handle).js_err()
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
    /// Stores the one encoded message (wire.rs) as a half message, calls
    /// `execute(message)` (which returns "COMMIT", "ROLLBACK" or "UNKNOWN") and
    /// records the outcome.
    pub fn send(
        &self,
        topic: JsValue,
        encoded: Vec<u8>,
        execute: JsValue,
    ) -> Result<JsValue, JsValue> {
        let Some(execute) = execute.dyn_ref::<Function>() else {
            return Err(type_error("execute must be a function"));
        };
        let topic = string("topic", &topic)?;
        let mut msgs = wire::read_messages(&encoded, &topic)?;
        let (Some(msg), None) = (msgs.pop(), msgs.pop()) else {
            return Err(invalid("a transactional send takes one message"));
        };
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
