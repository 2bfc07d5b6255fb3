//! `Message` (a stored message, as receive/get/query return it) and `SendResult`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use pocketmq::{MessageExt, SendResult as CoreSendResult};

use crate::transaction::tx_state_to_py;

/// A stored message. Read-only; `ack`/`nack` take it back to the consumer.
#[pyclass(module = "pocketmq", name = "Message", frozen)]
pub struct Message(pub MessageExt);

/// A Python-style repr of a string: single quotes, escapes for the rest.
fn q(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn q_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", inner.join(", "))
}

fn short_body(body: &[u8]) -> String {
    const MAX: usize = 48;
    let shown = &body[..body.len().min(MAX)];
    let mut s = String::from("b'");
    for &c in shown {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\'' => s.push_str("\\'"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('\'');
    if body.len() > MAX {
        s.push_str(&format!("...({} bytes)", body.len()));
    }
    s
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

    /// The body decoded as UTF-8 (errors replaced).
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.body).into_owned()
    }

    fn __repr__(&self) -> String {
        let m = &self.0;
        format!(
            "Message(msg_id={}, topic={}, queue_id={}, queue_offset={}, tags={}, keys={}, reconsume_times={}, body={})",
            q(&m.msg_id),
            q(&m.topic),
            m.queue_id,
            m.queue_offset,
            m.tags.as_deref().map_or("None".to_string(), q),
            q_list(&m.keys),
            m.reconsume_times,
            short_body(&m.body),
        )
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

    fn __repr__(&self) -> String {
        let r = &self.0;
        let tx = r.transaction_state.map_or(String::new(), |s| {
            format!(", transaction_state={}", q(s.as_str()))
        });
        format!(
            "SendResult(status={}, msg_id={}, topic={}, queue_id={}, queue_offset={}{tx})",
            q(r.status.as_str()),
            q(&r.msg_id),
            q(&r.topic),
            r.queue_id,
            r.queue_offset,
        )
    }
}
