//! A consumer of a group. `receive` never waits (wasm has no threads): the JS
//! wrapper retries it when the broker may have new messages, up to its timeout.

use std::time::Duration;

use wasm_bindgen::prelude::*;

use crate::convert::usize_arg;
use crate::errors::{invalid, IntoJsResult};
use crate::message::Messages;

#[wasm_bindgen]
pub struct Consumer(pub(crate) pocketmq::Consumer);

#[wasm_bindgen]
impl Consumer {
    /// Up to `max` messages that are ready now; `undefined` when none are.
    pub fn receive(&self, max: f64) -> Result<Option<Messages>, JsValue> {
        let max = usize_arg("maxMessages", max)?;
        if max == 0 {
            return Err(invalid("maxMessages must be at least 1"));
        }
        let msgs = self.0.receive(max, Duration::ZERO).js_err()?;
        Ok((!msgs.is_empty()).then_some(Messages(msgs)))
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
