//! `Consumer`: blocking `receive` (the GIL released, waiting in slices of at most
//! 100 ms so Ctrl-C is seen), `ack`/`nack`, iteration, and the hooks the asyncio
//! helpers in `pocketmq._aio` build on (`_on_ready`). Slicing a wait must not change
//! what a single wait means: a receive that started before a close returns `[]`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use pyo3::exceptions::PyTypeError;
use pyo3::types::{PyList, PyTuple};

use pocketmq::{ErrorKind, MessageExt};

use crate::convert::duration_ms;
use crate::errors::{invalid, to_py, IntoPyResult};
use crate::message::Message;

/// The longest the GIL-free wait runs before Python gets to handle signals.
const SLICE: Duration = Duration::from_millis(100);

/// Real time for the caller's timeout; the broker's Clock never bounds a wait.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

/// One consumer of a group.
#[pyclass(module = "pocketmq", name = "Consumer", frozen)]
pub struct Consumer {
    pub inner: pocketmq::Consumer,
    pub broker: pocketmq::Broker,
    pub closed: AtomicBool,
}

fn max_count(max_messages: i64) -> PyResult<usize> {
    usize::try_from(max_messages).map_err(|_| {
        invalid(format!(
            "max_messages must be non-negative, not {max_messages}"
        ))
    })
}

/// The messages of a list or tuple given to `ack`/`nack`.
fn messages(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<MessageExt>> {
    let type_error = || {
        PyTypeError::new_err(format!(
            "{what} takes a Message or a list of Messages, not {}",
            obj.get_type()
                .name()
                .map_or_else(|_| "object".to_string(), |n| n.to_string())
        ))
    };
    if !(obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>()) {
        return Err(type_error());
    }
    let mut out = Vec::new();
    for item in obj.try_iter()? {
        let item = item?;
        let msg = item.cast::<Message>().map_err(|_| type_error())?;
        out.push(msg.get().0.clone());
    }
    Ok(out)
}

/// A timeout in seconds (or a timedelta); `None` waits until a message or a close.
pub struct Timeout(Option<Duration>);

impl<'a, 'py> FromPyObject<'a, 'py> for Timeout {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Timeout> {
        if obj.is_none() {
            return Ok(Timeout(None));
        }
        Ok(Timeout(Some(Duration::from_millis(duration_ms(
            &obj, "timeout",
        )?))))
    }
}

const ONE_SECOND: Timeout = Timeout(Some(Duration::from_secs(1)));

impl Consumer {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst) || self.broker.is_closed()
    }

    fn receive_for(
        &self,
        py: Python<'_>,
        max: usize,
        timeout: Option<Duration>,
    ) -> PyResult<Vec<Message>> {
        // A deadline too far to represent is no deadline.
        let deadline = timeout.and_then(|t| now().checked_add(t));
        let mut first = true;
        loop {
            let slice = match deadline {
                None => SLICE,
                Some(d) => d.saturating_duration_since(now()).min(SLICE),
            };
            match py.detach(|| self.inner.receive(max, slice)) {
                Ok(msgs) if !msgs.is_empty() => return Ok(msgs.into_iter().map(Message).collect()),
                Ok(_) => {}
                // Closed while this call was waiting: a wait that ends by a close is empty.
                Err(e) if !first && e.kind() == ErrorKind::Closed => return Ok(Vec::new()),
                Err(e) => return Err(to_py(e)),
            }
            first = false;
            if self.is_closed() || deadline.is_some_and(|d| now() >= d) {
                return Ok(Vec::new());
            }
            py.check_signals()?;
        }
    }
}

impl Drop for Consumer {
    /// Leaves the group without holding the GIL while the engine takes its lock.
    fn drop(&mut self) {
        let inner = &self.inner;
        Python::try_attach(|py| py.detach(|| inner.close()));
    }
}

#[pymethods]
impl Consumer {
    #[getter]
    fn group(&self) -> &str {
        self.inner.group()
    }

    #[getter]
    fn topic(&self) -> &str {
        self.inner.topic()
    }

    /// True once this consumer or its broker is closed.
    #[getter]
    fn closed(&self) -> bool {
        self.is_closed()
    }

    /// Up to `max_messages` messages, waiting up to `timeout` seconds (real time) for
    /// the first; `[]` at the timeout or when the consumer or broker closes.
    #[pyo3(signature = (max_messages=32, timeout=ONE_SECOND), text_signature = "(self, max_messages=32, timeout=1.0)")]
    fn receive(
        &self,
        py: Python<'_>,
        max_messages: i64,
        timeout: Timeout,
    ) -> PyResult<Vec<Message>> {
        self.receive_for(py, max_count(max_messages)?, timeout.0)
    }

    /// Like `receive`, awaitable: waits on the event loop without a thread.
    #[pyo3(signature = (max_messages=32, timeout=ONE_SECOND), text_signature = "(self, max_messages=32, timeout=1.0)")]
    fn receive_async<'py>(
        slf: &Bound<'py, Self>,
        max_messages: i64,
        timeout: Timeout,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        max_count(max_messages)?;
        let timeout = timeout.0.map(|d| d.as_secs_f64());
        py.import("pocketmq._aio")?
            .call_method1("receive_async", (slf, max_messages, timeout))
    }

    /// Marks a message (or a list of them, under one lock) done: never delivered
    /// to this group again.
    fn ack(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(one) = message.cast::<Message>() {
            let msg = &one.get().0;
            return py.detach(|| self.inner.ack(msg)).py_err();
        }
        let msgs = messages(message, "ack")?;
        py.detach(|| self.inner.ack_all(&msgs)).py_err()
    }

    /// Sends a message (or each of a list) back for a later retry; past the limit,
    /// to the DLQ.
    fn nack(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(one) = message.cast::<Message>() {
            let msg = &one.get().0;
            return py.detach(|| self.inner.nack(msg)).py_err();
        }
        let msgs = messages(message, "nack")?;
        py.detach(|| msgs.iter().try_for_each(|m| self.inner.nack(m)))
            .py_err()
    }

    /// Leaves the group; a receive blocked in another thread returns `[]`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.closed.store(true, Ordering::SeqCst);
        py.detach(|| self.inner.close()).py_err()
    }

    /// Calls `callback()` once, from any thread: when a receive may find messages,
    /// or on close. The asyncio helpers wake their loop with it.
    fn _on_ready(&self, py: Python<'_>, callback: Py<PyAny>) {
        // The engine may call back from its own thread, even after the interpreter
        // has begun to shut down: then there is nobody left to wake.
        let cb: Box<dyn FnOnce() + Send> = Box::new(move || {
            Python::try_attach(|py| {
                if let Err(e) = callback.call0(py) {
                    e.write_unraisable(py, None);
                }
            });
        });
        py.detach(|| self.inner.on_ready(cb));
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next message, waiting as long as it takes; stops when the consumer closes.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Message>> {
        if self.is_closed() {
            return Ok(None);
        }
        Ok(self.receive_for(py, 1, None)?.into_iter().next())
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py()
            .import("pocketmq._aio")?
            .call_method1("next_message", (slf,))
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "Consumer(group={:?}, topic={:?}{})",
            self.inner.group(),
            self.inner.topic(),
            if self.is_closed() { ", closed" } else { "" }
        )
    }
}
