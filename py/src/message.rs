//! `Message` (a stored message, as receive/get/query return it) and `SendResult`.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use pyo3::IntoPyObjectExt;

use pocketmq::{MessageExt, SendResult as CoreSendResult};

use crate::transaction::tx_state_to_py;

/// A stored message. Read-only but for a simple consumer's receipt handle, which
/// `change_invisible_duration` replaces; `ack`/`nack` take it back to the consumer.
#[pyclass(module = "pocketmq", name = "Message", frozen)]
pub struct Message(pub MessageExt, Mutex<Option<String>>);

impl From<MessageExt> for Message {
    fn from(mut m: MessageExt) -> Message {
        let handle = m.receipt_handle.take();
        Message(m, Mutex::new(handle))
    }
}

impl Message {
    /// The current receipt handle (simple consumers).
    pub fn handle(&self) -> Option<String> {
        self.1.lock().map_or(None, |h| h.clone())
    }

    /// The engine's message with the current receipt handle.
    pub fn engine_message(&self) -> MessageExt {
        let mut m = self.0.clone();
        m.receipt_handle = self.handle();
        m
    }

    pub fn set_handle(&self, handle: String) {
        if let Ok(mut h) = self.1.lock() {
            *h = Some(handle);
        }
    }
}

/// Python's repr of a value.
fn r<'py>(py: Python<'py>, v: impl IntoPyObject<'py>) -> PyResult<String> {
    let obj = v.into_bound_py_any(py)?;
    Ok(obj.repr()?.to_string())
}

/// The repr of a body, cut after 48 bytes.
fn short_body(py: Python<'_>, body: &[u8]) -> PyResult<String> {
    let shown = r(py, PyBytes::new(py, &body[..body.len().min(48)]))?;
    Ok(match body.len() {
        n if n > 48 => format!("{shown}...({n} bytes)"),
        _ => shown,
    })
}

#[pymethods]
impl Message {
    #[getter]
    fn msg_id(&self) -> &str {
        &self.0.msg_id
    }
    #[getter]
    fn topic(&self) -> &str {
        &self.0.topic
    }
    #[getter]
    fn queue_id(&self) -> u32 {
        self.0.queue_id
    }
    #[getter]
    fn queue_offset(&self) -> u64 {
        self.0.queue_offset
    }
    #[getter]
    fn commitlog_offset(&self) -> u64 {
        self.0.commitlog_offset
    }
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.body)
    }
    #[getter]
    fn tags(&self) -> Option<&str> {
        self.0.tags.as_deref()
    }
    #[getter]
    fn keys(&self) -> Vec<String> {
        self.0.keys.clone()
    }
    #[getter]
    fn properties<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.0.properties {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    #[getter]
    fn born_timestamp(&self) -> u64 {
        self.0.born_timestamp
    }
    #[getter]
    fn store_timestamp(&self) -> u64 {
        self.0.store_timestamp
    }
    #[getter]
    fn reconsume_times(&self) -> u32 {
        self.0.reconsume_times
    }
    /// From a simple consumer: this delivery's receipt handle; else None.
    #[getter]
    fn receipt_handle(&self) -> Option<String> {
        self.handle()
    }
    /// From a simple consumer: which delivery this is (1 the first); else 1.
    #[getter]
    fn delivery_attempt(&self) -> u32 {
        self.0.delivery_attempt
    }

    /// The body decoded as UTF-8 (errors replaced).
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.body).into_owned()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let m = &self.0;
        Ok(format!(
            "Message(msg_id={}, topic={}, queue_id={}, queue_offset={}, tags={}, keys={}, reconsume_times={}, body={})",
            r(py, &m.msg_id)?,
            r(py, &m.topic)?,
            m.queue_id,
            m.queue_offset,
            r(py, m.tags.as_deref())?,
            r(py, &m.keys)?,
            m.reconsume_times,
            short_body(py, &m.body)?,
        ))
    }
}

/// What a send reports: where the message went and whether it reached the disk in time.
#[pyclass(module = "pocketmq", name = "SendResult", frozen)]
pub struct SendResult(pub CoreSendResult);

#[pymethods]
impl SendResult {
    #[getter]
    fn msg_id(&self) -> &str {
        &self.0.msg_id
    }
    #[getter]
    fn topic(&self) -> &str {
        &self.0.topic
    }
    #[getter]
    fn queue_id(&self) -> u32 {
        self.0.queue_id
    }
    #[getter]
    fn queue_offset(&self) -> u64 {
        self.0.queue_offset
    }
    #[getter]
    fn commitlog_offset(&self) -> u64 {
        self.0.commitlog_offset
    }
    /// `"SEND_OK"` or `"FLUSH_DISK_TIMEOUT"`.
    #[getter]
    fn status(&self) -> &'static str {
        self.0.status.as_str()
    }
    /// For a transactional send, what `execute` decided (a `TxState`); else None.
    #[getter]
    fn transaction_state<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.0
            .transaction_state
            .map(|s| tx_state_to_py(py, s))
            .transpose()
    }

    /// True when the send repeated a `dedup_id` inside the window: nothing was
    /// stored and this is the first send's result.
    #[getter]
    fn duplicate(&self) -> bool {
        self.0.duplicate
    }

    /// For a delayed message, what `Producer.recall` takes to cancel it before it is
    /// delivered; else None.
    #[getter]
    fn recall_handle(&self) -> Option<&str> {
        self.0.recall_handle.as_deref()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let s = &self.0;
        let tx = match s.transaction_state {
            Some(t) => format!(", transaction_state={}", r(py, t.as_str())?),
            None => String::new(),
        };
        let dup = if s.duplicate { ", duplicate=True" } else { "" };
        Ok(format!(
            "SendResult(status={}, msg_id={}, topic={}, queue_id={}, queue_offset={}{tx}{dup})",
            r(py, s.status.as_str())?,
            r(py, &s.msg_id)?,
            r(py, &s.topic)?,
            s.queue_id,
            s.queue_offset,
        ))
    }
}
