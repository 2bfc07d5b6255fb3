//! A consumer of a group. `receive` never waits (wasm has no threads): the JS
//! wrapper retries it when the broker may have new messages, up to its timeout.

use std::time::Duration;

use wasm_bindgen::prelude::*;

use crate::convert::usize_arg;
use crate::errors::{invalid, IntoJsResult};
use crate::message::{to_array, Message};

#[wasm_bindgen]
pub struct Consumer(pub(crate) pocketmq::Consumer);

#[wasm_bindgen]
impl Consumer {
    /// Up to `max` messages that are ready now (maybe none).
    pub fn receive(&self, max: f64) -> Result<Vec<Message>, JsValue> {
        let max = usize_arg("maxMessages", max)?;
        if max == 0 {
            return Err(invalid("maxMessages must be at least 1"));
        }
        self.0.receive(max, Duration::ZERO).js_err().map(to_array)
    }

    /// Marks a message done for this group.
    pub fn ack(&self, msg: &Message) -> Result<(), JsValue> {
        self.0.ack(&msg.0).js_err()
    }

    /// Sends a message back for a later retry (or to the DLQ past the limit).
    pub fn nack(&self, msg: &Message) -> Result<(), JsValue> {
        self.0.nack(&msg.0).js_err()
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
