//! A simple (POP) consumer. Nothing here waits: the JS wrapper steps the core's
//! receive and awaits `onReady` between steps, as for `Consumer`. Acks and changes
//! of invisibility go by receipt handle (the wrapper keeps each message's current one).

use std::time::Duration;

use js_sys::Array;
use wasm_bindgen::prelude::*;

use crate::consumer::{ready_callback, Receiving};
use crate::convert::{ms, string};
use crate::errors::IntoJsResult;
use crate::message::Messages;

#[wasm_bindgen]
pub struct SimpleConsumer(pub(crate) pocketmq::SimpleConsumer);

#[wasm_bindgen]
impl SimpleConsumer {
    #[wasm_bindgen(js_name = startReceive)]
    pub fn start_receive(&self, max: f64, timeout_ms: Option<f64>) -> Result<Receiving, JsValue> {
        crate::consumer::start(&self.0, max, timeout_ms)
    }

    #[wasm_bindgen(js_name = receiveStep)]
    pub fn receive_step(&self, r: &Receiving) -> Result<Option<Messages>, JsValue> {
        crate::consumer::step(&self.0, r)
    }

    /// Calls `callback()` once, when a receive may find messages.
    #[wasm_bindgen(js_name = onReady)]
    pub fn on_ready(&self, callback: js_sys::Function) {
        self.0.on_ready(ready_callback(callback));
    }

    /// Acks the deliveries these receipt handles name (one lock).
    #[wasm_bindgen(js_name = ackHandles)]
    pub fn ack_handles(&self, handles: Array) -> Result<(), JsValue> {
        let handles = handles
            .iter()
            .map(|h| string("receipt handle", &h))
            .collect::<Result<Vec<_>, _>>()?;
        self.0.ack_handles(&handles).js_err()
    }

    /// Changes a delivery's invisibility to `ms` from now; returns the new handle.
    #[wasm_bindgen(js_name = changeInvisible)]
    pub fn change_invisible(&self, handle: JsValue, duration_ms: f64) -> Result<String, JsValue> {
        let h = string("receipt handle", &handle)?;
        let d = Duration::from_millis(ms("durationMs", duration_ms)?);
        self.0.change_invisible_handle(&h, d).js_err()
    }

    /// A failed delivery: visible again after `delay_ms`, or the retry ladder's step.
    pub fn nack(&self, handle: JsValue, delay_ms: Option<f64>) -> Result<(), JsValue> {
        let h = string("receipt handle", &handle)?;
        let delay = delay_ms
            .map(|d| ms("delayMs", d).map(Duration::from_millis))
            .transpose()?;
        self.0.nack_handle(&h, delay).js_err()
    }

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
