//! `Consumer`: blocking `receive` (the GIL released, stepping the core's receive in
//! slices of at most 100 ms so Ctrl-C is seen), `ack`/`nack`, iteration, and the
//! hooks the asyncio helpers in `pocketmq._aio` build on (`_start_receive`,
//! `_receive_step`, `_on_ready`). When a receive ends is the core's to decide.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use pyo3::exceptions::PyTypeError;
use pyo3::types::{PyList, PyTuple};

use pocketmq::{MessageExt, Receive, Receiving};

use crate::convert::{duration_ms, Whole};
use crate::errors::{invalid, IntoPyResult};
use crate::message::Message;

/// The longest the GIL-free wait runs before Python gets to handle signals.
pub(crate) const SLICE: Duration = Duration::from_millis(100);

/// One consumer of a group.
#[pyclass(module = "pocketmq", name = "Consumer", frozen)]
pub struct Consumer {
    pub inner: Arc<pocketmq::Consumer>,
}

/// A receive in progress, for the asyncio helpers.
#[pyclass(module = "pocketmq", name = "_Receiving", frozen)]
pub struct PyReceiving(pub(crate) Receiving);

#[pymethods]
impl PyReceiving {
    /// Seconds left until the receive's deadline, or None when it has none.
    #[getter]
    fn remaining(&self) -> Option<f64> {
        self.0.remaining().map(|d| d.as_secs_f64())
    }
}

pub(crate) fn max_count(max_messages: Whole) -> PyResult<usize> {
    usize::try_from(max_messages.0)
        .ok()
        .filter(|n| *n <= u32::MAX as usize)
        .ok_or_else(|| {
            invalid(format!(
                "max_messages must be between 0 and {}, not {}",
                u32::MAX,
                max_messages.0
            ))
        })
}

pub(crate) const THIRTY_TWO: Whole = Whole(32);

/// The messages given to `ack`/`nack`: one, or a list or tuple of them.
pub(crate) fn messages_of<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<Vec<Bound<'py, Message>>> {
    if let Ok(one) = obj.cast::<Message>() {
        return Ok(vec![one.clone()]);
    }
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
    obj.try_iter()?
        .map(|item| item?.cast_into::<Message>().map_err(|_| type_error()))
        .collect()
}

/// The engine's messages of what was given to `ack`/`nack`.
fn messages(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<MessageExt>> {
    Ok(messages_of(obj, what)?
        .iter()
        .map(|m| m.get().0.clone())
        .collect())
}

/// A callback the engine may call from any thread, once, to wake a Python waiter.
pub(crate) fn waker(callback: Py<PyAny>) -> Box<dyn FnOnce() + Send> {
    // The engine may call back from its own thread, even after the interpreter has
    // begun to shut down: then there is nobody left to wake.
    Box::new(move || {
        Python::try_attach(|py| {
            if let Err(e) = callback.call0(py) {
                e.write_unraisable(py, None);
            }
        });
    })
}

/// A timeout in seconds (or a timedelta); `None` waits until a message or a close.
pub struct Timeout(pub(crate) Option<Duration>);

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

pub(crate) const ONE_SECOND: Timeout = Timeout(Some(Duration::from_secs(1)));

/// A blocking receive on either consumer kind: the GIL released, in slices.
pub(crate) fn receive_for<R: Receive + Sync>(
    py: Python<'_>,
    c: &R,
    max: usize,
    timeout: Option<Duration>,
) -> PyResult<Vec<Message>> {
    let r = c.start_receive(max, timeout).py_err()?;
    loop {
        if let Some(msgs) = py.detach(|| c.receive_step(&r, Some(SLICE))).py_err()? {
            return Ok(msgs.into_iter().map(Message::from).collect());
        }
        py.check_signals()?;
    }
}

/// `Closed` for a consumer that is: iterating one is a call after close, as any
/// other. A loop already running when its consumer closes ends quietly instead
/// (`__next__`), which is how a consuming thread is told to stop.
pub(crate) fn open_to_iterate(closed: bool) -> PyResult<()> {
    if closed {
        return Err(pocketmq::Error::Closed).py_err();
    }
    Ok(())
}

/// `_start_receive` of either kind (asyncio helpers): fails with `Closed` after a close.
pub(crate) fn start<R: Receive>(c: &R, max: Whole, timeout: Timeout) -> PyResult<PyReceiving> {
    let r = c.start_receive(max_count(max)?, timeout.0).py_err()?;
    Ok(PyReceiving(r))
}

/// `_receive_step` of either kind: looks once; the messages, `[]` when the receive
/// ended empty, None when it goes on.
pub(crate) fn step<R: Receive + Sync>(
    py: Python<'_>,
    c: &R,
    r: &PyReceiving,
) -> PyResult<Option<Vec<Message>>> {
    let step = py.detach(|| c.receive_step(&r.0, Some(Duration::ZERO)));
    Ok(step
        .py_err()?
        .map(|m| m.into_iter().map(Message::from).collect()))
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
        self.inner.is_closed()
    }

    /// Up to `max_messages` messages, waiting up to `timeout` seconds (real time) for
    /// the first; `[]` at the timeout or when the consumer or broker closes.
    #[pyo3(signature = (max_messages=THIRTY_TWO, timeout=ONE_SECOND), text_signature = "(self, max_messages=32, timeout=1.0)")]
    fn receive(
        &self,
        py: Python<'_>,
        max_messages: Whole,
        timeout: Timeout,
    ) -> PyResult<Vec<Message>> {
        receive_for(py, &*self.inner, max_count(max_messages)?, timeout.0)
    }

    /// Like `receive`, awaitable: waits on the event loop without a thread.
    #[pyo3(signature = (max_messages=THIRTY_TWO, timeout=ONE_SECOND), text_signature = "(self, max_messages=32, timeout=1.0)")]
    fn receive_async<'py>(
        slf: &Bound<'py, Self>,
        max_messages: Whole,
        timeout: Timeout,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        max_count(max_messages)?;
        let timeout = timeout.0.map(|d| d.as_secs_f64());
        py.import("pocketmq._aio")?
            .call_method1("receive_async", (slf, max_messages.0, timeout))
    }

    /// Marks a message (or a list of them, under one lock) done: never delivered
    /// to this group again.
    fn ack(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let msgs = messages(message, "ack")?;
        py.detach(|| self.inner.ack_all(&msgs)).py_err()
    }

    /// Sends a message (or each of a list) back for a later retry, after `delay`
    /// (seconds or a timedelta) instead of the retry ladder's step when given; past
    /// the limit, to the DLQ.
    #[pyo3(signature = (message, *, delay=None))]
    fn nack(
        &self,
        py: Python<'_>,
        message: &Bound<'_, PyAny>,
        delay: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let delay = delay
            .map(|d| duration_ms(&d, "delay").map(Duration::from_millis))
            .transpose()?;
        let msgs = messages(message, "nack")?;
        py.detach(|| {
            msgs.iter().try_for_each(|m| match delay {
                Some(d) => self.inner.nack_after(m, d),
                None => self.inner.nack(m),
            })
        })
        .py_err()
    }

    /// `ack` for asyncio: a coroutine that acks when it runs (in microseconds: an
    /// embedded ack waits for nothing).
    fn ack_async<'py>(
        slf: &Bound<'py, Self>,
        message: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        settle_async(slf.as_any(), "inline", "ack", message, None)
    }

    /// `nack` for asyncio (as `ack_async`).
    #[pyo3(signature = (message, *, delay=None))]
    fn nack_async<'py>(
        slf: &Bound<'py, Self>,
        message: &Bound<'py, PyAny>,
        delay: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        settle_async(slf.as_any(), "inline", "nack", message, Some(delay))
    }

    /// Runs `handler(msg)` for each message on `threads` threads: a return acks, an
    /// exception nacks (logged at WARNING), `RetryLater(seconds)` nacks with that
    /// delay. Returns the running `Listener`; `stop()` it to end.
    #[pyo3(signature = (handler, *, threads=Whole(4)), text_signature = "(self, handler, *, threads=4)")]
    fn listen(
        slf: &Bound<'_, Self>,
        handler: &Bound<'_, PyAny>,
        threads: Whole,
    ) -> PyResult<crate::listener::Listener> {
        let source = slf.get().inner.clone();
        crate::listener::start(slf.clone().into_any().unbind(), source, handler, threads)
    }

    /// Runs the async `handler(msg)` on each message, at most `concurrency` at a
    /// time, until cancelled or the consumer closes (an awaitable).
    #[pyo3(signature = (handler, *, concurrency=Whole(16)), text_signature = "(self, handler, *, concurrency=16)")]
    fn listen_async<'py>(
        slf: &Bound<'py, Self>,
        handler: &Bound<'py, PyAny>,
        concurrency: Whole,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.py()
            .import("pocketmq._aio")?
            .call_method1("listen_async", (slf, handler, concurrency.0))
    }

    /// Leaves the group; a receive blocked in another thread returns `[]`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.close()).py_err()
    }

    /// Starts a receive (asyncio helpers): fails with `Closed` after a close.
    #[pyo3(signature = (max_messages, timeout))]
    fn _start_receive(&self, max_messages: Whole, timeout: Timeout) -> PyResult<PyReceiving> {
        start(&*self.inner, max_messages, timeout)
    }

    /// Looks once (see `step`).
    fn _receive_step(
        &self,
        py: Python<'_>,
        receiving: &PyReceiving,
    ) -> PyResult<Option<Vec<Message>>> {
        step(py, &*self.inner, receiving)
    }

    /// Calls `callback()` once, from any thread: when a receive may find messages,
    /// or on close. The asyncio helpers wake their loop with it.
    fn _on_ready(&self, py: Python<'_>, callback: Py<PyAny>) {
        py.detach(|| self.inner.on_ready(waker(callback)));
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyResult<PyRef<'_, Self>> {
        open_to_iterate(slf.inner.is_closed())?;
        Ok(slf)
    }

    /// The next message, waiting as long as it takes; stops when the consumer closes.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Message>> {
        if self.inner.is_closed() {
            return Ok(None);
        }
        Ok(receive_for(py, &*self.inner, 1, None)?.into_iter().next())
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyResult<PyRef<'_, Self>> {
        open_to_iterate(slf.inner.is_closed())?;
        Ok(slf)
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
            if self.inner.is_closed() {
                ", closed"
            } else {
                ""
            }
        )
    }
}

/// An `ack_async` or `nack_async` (`method` is "ack" or "nack"; `delay` a nack's):
/// the coroutine `pocketmq._aio.<how>` makes of it ("inline": the consumer's own
/// `ack` or `nack` when it runs; "remote_call": `_ack_start` or `_nack_start` over
/// `connect()`).
pub(crate) fn settle_async<'py>(
    consumer: &Bound<'py, PyAny>,
    how: &str,
    method: &str,
    message: &Bound<'py, PyAny>,
    delay: Option<Option<Bound<'py, PyAny>>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = consumer.py();
    let options = match delay {
        Some(delay) => {
            let options = pyo3::types::PyDict::new(py);
            options.set_item("delay", delay)?;
            Some(options)
        }
        None => None,
    };
    let aio = py.import("pocketmq._aio")?;
    if how == "inline" {
        let call = consumer.getattr(method)?;
        aio.call_method1(how, (call, (message,), options))
    } else {
        let start = format!("_{method}_start");
        aio.call_method1(how, (consumer, start, (message,), options))
    }
}
