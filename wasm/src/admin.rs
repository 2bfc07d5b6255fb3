//! Operations on the broker (RocketMQ's admin commands): the backlog drill, reads
//! without consuming, a group's progress, dead letters and their redrive, deleting a
//! topic. A drill runs to its end in one call (wasm has no threads); `onProgress`
//! is called between its steps, and an exception it throws stops the drill (the
//! group moved past what was copied) and is rethrown.

use js_sys::Function;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::broker::Broker;
use crate::convert::{integer, ms, string, u32_arg, usize_arg};
use crate::errors::{type_error, IntoJsResult};
use crate::message::Messages;

/// A drill's progress callback over an optional JS function; the first exception it
/// throws stops the drill and is kept to be rethrown.
struct Progress {
    callback: Option<Function>,
    failure: Option<JsValue>,
}

impl Progress {
    fn new(callback: JsValue) -> Result<Progress, JsValue> {
        let callback = if callback.is_undefined() || callback.is_null() {
            None
        } else {
            Some(
                callback
                    .dyn_into::<Function>()
                    .map_err(|_| type_error("onProgress must be a function"))?,
            )
        };
        Ok(Progress {
            callback,
            failure: None,
        })
    }

    fn step(&mut self, done: u64, total: u64) -> bool {
        let Some(f) = &self.callback else {
            return true;
        };
        match f.call2(
            &JsValue::NULL,
            &JsValue::from(done as f64),
            &JsValue::from(total as f64),
        ) {
            Ok(_) => true,
            Err(e) => {
                self.failure = Some(e);
                false
            }
        }
    }

    fn finish(self, n: u64) -> Result<f64, JsValue> {
        self.failure.map_or(Ok(n as f64), Err)
    }
}

/// An optional whole number argument, at least 0.
fn optional(what: &str, v: Option<f64>) -> Result<Option<u64>, JsValue> {
    v.map(|x| integer(what, x, 0.0, 9_007_199_254_740_991.0).map(|x| x as u64))
        .transpose()
}

#[wasm_bindgen]
impl Broker {
    /// The backlog drill: `group`'s unconsumed messages of `topic` to `to` (with
    /// `queues` queues, default as many as `topic`); returns how many it copied.
    #[wasm_bindgen(js_name = moveBacklog)]
    pub fn move_backlog(
        &self,
        group: JsValue,
        topic: JsValue,
        to: JsValue,
        queues: Option<f64>,
        on_progress: JsValue,
    ) -> Result<f64, JsValue> {
        let (g, t, to) = (
            string("group", &group)?,
            string("topic", &topic)?,
            string("to", &to)?,
        );
        let queues = queues.map(|q| u32_arg("queues", q)).transpose()?;
        let mut progress = Progress::new(on_progress)?;
        let n = self
            .inner
            .move_backlog(&g, &t, &to, queues, |d, total| progress.step(d, total))
            .js_err()?;
        progress.finish(n)
    }

    /// Messages of `topic` without consuming them (see the wrapper).
    pub fn browse(
        &self,
        topic: JsValue,
        queue_id: Option<f64>,
        offset: Option<f64>,
        limit: f64,
    ) -> Result<Messages, JsValue> {
        let t = string("topic", &topic)?;
        let queue_id = queue_id.map(|q| u32_arg("queueId", q)).transpose()?;
        let offset = optional("offset", offset)?;
        let limit = usize_arg("limit", limit)?;
        self.inner
            .browse(&t, queue_id, offset, limit)
            .js_err()
            .map(Messages)
    }

    /// Messages of `topic` stored in `[startMs, endMs)`, oldest first.
    #[wasm_bindgen(js_name = queryByTime)]
    pub fn query_by_time(
        &self,
        topic: JsValue,
        start_ms: f64,
        end_ms: f64,
        limit: f64,
    ) -> Result<Messages, JsValue> {
        let t = string("topic", &topic)?;
        let (start, end) = (ms("start", start_ms)?, ms("end", end_ms)?);
        let limit = usize_arg("limit", limit)?;
        self.inner
            .query_by_time(&t, start, end, limit)
            .js_err()
            .map(Messages)
    }

    /// `group`'s progress on each queue of `topic`, with the engine's (snake_case)
    /// names; the JS wrapper renames them.
    pub fn progress(&self, group: JsValue, topic: JsValue) -> Result<JsValue, JsValue> {
        let (g, t) = (string("group", &group)?, string("topic", &topic)?);
        crate::convert::to_js(&self.inner.progress(&g, &t).js_err()?)
    }

    /// `group`'s dead letters not yet redriven, oldest first.
    #[wasm_bindgen(js_name = deadLetters)]
    pub fn dead_letters(&self, group: JsValue, limit: f64) -> Result<Messages, JsValue> {
        let g = string("group", &group)?;
        let limit = usize_arg("limit", limit)?;
        self.inner.dead_letters(&g, limit).js_err().map(Messages)
    }

    /// Resends `group`'s dead letters (at most `limit`) to that group alone.
    pub fn redrive(
        &self,
        group: JsValue,
        limit: Option<f64>,
        on_progress: JsValue,
    ) -> Result<f64, JsValue> {
        let g = string("group", &group)?;
        let limit = optional("limit", limit)?;
        let mut progress = Progress::new(on_progress)?;
        let n = self
            .inner
            .redrive(&g, limit, |d, total| progress.step(d, total))
            .js_err()?;
        progress.finish(n)
    }

    /// Deletes a topic: its messages become unreachable, its groups reset.
    #[wasm_bindgen(js_name = deleteTopic)]
    pub fn delete_topic(&self, topic: JsValue) -> Result<(), JsValue> {
        let t = string("topic", &topic)?;
        self.inner.delete_topic(&t).js_err()
    }
}
