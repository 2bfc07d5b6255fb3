//! `Message` (a stored message, as receive/get/query return it) and `SendResult`.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use pyo3::IntoPyObjectExt;

use pocketmq::{MessageExt, SendResult as CoreSendResult, SendStatus, TxState};

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

    /// Pickling (a `multiprocessing` or `concurrent.futures` worker, a cache): the
    /// copy has every field, a simple consumer's receipt handle included. A classic
    /// consumer acks only the message it handed out, not a copy.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyDict>,))> {
        let py = slf.py();
        let m = &slf.get().0;
        let d = PyDict::new(py);
        d.set_item("msg_id", &m.msg_id)?;
        d.set_item("topic", &m.topic)?;
        d.set_item("queue_id", m.queue_id)?;
        d.set_item("queue_offset", m.queue_offset)?;
        d.set_item("commitlog_offset", m.commitlog_offset)?;
        d.set_item("body", PyBytes::new(py, &m.body))?;
        d.set_item("tags", m.tags.as_deref())?;
        d.set_item("keys", &m.keys)?;
        d.set_item("properties", &m.properties)?;
        d.set_item("born_timestamp", m.born_timestamp)?;
        d.set_item("store_timestamp", m.store_timestamp)?;
        d.set_item("reconsume_times", m.reconsume_times)?;
        d.set_item("sys_flag", m.sys_flag)?;
        d.set_item("prepared_transaction_offset", m.prepared_transaction_offset)?;
        d.set_item("receipt_handle", slf.get().handle())?;
        d.set_item("delivery_attempt", m.delivery_attempt)?;
        Ok((restorer(py, "_message")?, (d,)))
    }
}

/// The module function pickle calls to rebuild one of this module's values.
fn restorer<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("pocketmq._native")?.getattr(name)
}

/// Field `name` of a pickled value's state.
fn field<'py, T: FromPyObjectOwned<'py>>(state: &Bound<'py, PyDict>, name: &str) -> PyResult<T> {
    match state.get_item(name)? {
        Some(v) => v.extract().map_err(Into::into),
        None => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "not a pickled pocketmq value: no {name:?}"
        ))),
    }
}

/// Rebuilds a pickled `Message`.
#[pyfunction]
pub fn _message(state: &Bound<'_, PyDict>) -> PyResult<Message> {
    let mut m = MessageExt::default();
    m.msg_id = field(state, "msg_id")?;
    m.topic = field(state, "topic")?;
    m.queue_id = field(state, "queue_id")?;
    m.queue_offset = field(state, "queue_offset")?;
    m.commitlog_offset = field(state, "commitlog_offset")?;
    m.body = field::<Vec<u8>>(state, "body")?.into();
    m.tags = field(state, "tags")?;
    m.keys = field(state, "keys")?;
    m.properties = field(state, "properties")?;
    m.born_timestamp = field(state, "born_timestamp")?;
    m.store_timestamp = field(state, "store_timestamp")?;
    m.reconsume_times = field(state, "reconsume_times")?;
    m.sys_flag = field(state, "sys_flag")?;
    m.prepared_transaction_offset = field(state, "prepared_transaction_offset")?;
    m.receipt_handle = field(state, "receipt_handle")?;
    m.delivery_attempt = field(state, "delivery_attempt")?;
    Ok(Message::from(m))
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

    /// Pickling, as `Message`'s.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyDict>,))> {
        let py = slf.py();
        let s = &slf.get().0;
        let d = PyDict::new(py);
        d.set_item("msg_id", &s.msg_id)?;
        d.set_item("topic", &s.topic)?;
        d.set_item("queue_id", s.queue_id)?;
        d.set_item("queue_offset", s.queue_offset)?;
        d.set_item("commitlog_offset", s.commitlog_offset)?;
        d.set_item("status", s.status.as_str())?;
        d.set_item("transaction_state", s.transaction_state.map(|t| t.as_str()))?;
        d.set_item("duplicate", s.duplicate)?;
        d.set_item("recall_handle", s.recall_handle.as_deref())?;
        Ok((restorer(py, "_send_result")?, (d,)))
    }
}

/// Rebuilds a pickled `SendResult`.
#[pyfunction]
pub fn _send_result(state: &Bound<'_, PyDict>) -> PyResult<SendResult> {
    let bad = |what: &str| {
        pyo3::exceptions::PyValueError::new_err(format!("not a pickled SendResult: {what:?}"))
    };
    let status = match field::<String>(state, "status")?.as_str() {
        "SEND_OK" => SendStatus::SendOk,
        "FLUSH_DISK_TIMEOUT" => SendStatus::FlushDiskTimeout,
        other => return Err(bad(other)),
    };
    let transaction_state = match field::<Option<String>>(state, "transaction_state")?.as_deref() {
        None => None,
        Some("COMMIT") => Some(TxState::Commit),
        Some("ROLLBACK") => Some(TxState::Rollback),
        Some("UNKNOWN") => Some(TxState::Unknown),
        Some(other) => return Err(bad(other)),
    };
    Ok(SendResult(CoreSendResult {
        msg_id: field(state, "msg_id")?,
        topic: field(state, "topic")?,
        queue_id: field(state, "queue_id")?,
        queue_offset: field(state, "queue_offset")?,
        commitlog_offset: field(state, "commitlog_offset")?,
        status,
        transaction_state,
        duplicate: field(state, "duplicate")?,
        recall_handle: field(state, "recall_handle")?,
    }))
}
