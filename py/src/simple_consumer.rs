//! `SimpleConsumer`: RocketMQ 5's simple (POP) consumer over the core's. Receives
//! step the core's receive like `Consumer` does (and share the asyncio helpers);
//! acks and changes of invisibility go by the message's current receipt handle.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use crate::consumer::{
    max_count, messages_of, receive_for, start, step, PyReceiving, Timeout, ONE_SECOND, THIRTY_TWO,
};
use crate::convert::duration_ms;
use crate::convert::Whole;
use crate::errors::IntoPyResult;
use crate::message::Message;

/// One member of a simple consumer group.
#[pyclass(module = "pocketmq", name = "SimpleConsumer", frozen)]
pub struct SimpleConsumer(pub Arc<pocketmq::SimpleConsumer>);

impl SimpleConsumer {
    /// The current receipt handles of a message or a list of them.
    fn handles(message: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<String>> {
        messages_of(message, what)?
            .iter()
            .map(|m| {
                m.get().handle().ok_or_else(|| {
                    crate::errors::to_py(pocketmq::Error::InvalidReceiptHandle(
                        "this message was not received by a simple consumer".into(),
                    ))
                })
            })
            .collect()
    }
}

impl Drop for SimpleConsumer {
    fn drop(&mut self) {
        let inner = &self.0;
        Python::try_attach(|py| py.detach(|| inner.close()));
    }
}

#[pymethods]
impl SimpleConsumer {
    #[getter]
    fn group(&self) -> &str {
        self.0.group()
    }

    #[getter]
    fn topic(&self) -> &str {
        self.0.topic()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Up to `max_messages` visible messages, waiting up to `timeout` seconds (real
    /// time) for the first; each stays invisible to the group for the consumer's
    /// invisible duration unless acked.
    #[pyo3(signature = (max_messages=THIRTY_TWO, timeout=ONE_SECOND), text_signature = "(self, max_messages=32, timeout=1.0)")]
    fn receive(
        &self,
        py: Python<'_>,
        max_messages: Whole,
        timeout: Timeout,
    ) -> PyResult<Vec<Message>> {
        receive_for(py, &*self.0, max_count(max_messages)?, timeout.0)
    }

    /// Like `receive`, awaitable: waits on the event loop without a thread.
    #[pyo3(signature = (max_messages=THIRTY_TWO, timeout=ONE_SECOND), text_signature = "(self, max_messages=32, timeout=1.0)")]
    fn receive_async<'py>(
        slf: &Bound<'py, Self>,
        max_messages: Whole,
        timeout: Timeout,
    ) -> PyResult<Bound<'py, PyAny>> {
        max_count(max_messages)?;
        let timeout = timeout.0.map(|d| d.as_secs_f64());
        slf.py()
            .import("pocketmq._aio")?
            .call_method1("receive_async", (slf, max_messages.0, timeout))
    }

    /// Acks a message (or a list of them): the group never gets it again. A handle
    /// that is not current raises `InvalidReceiptHandle`.
    fn ack(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let handles = Self::handles(message, "ack")?;
        py.detach(|| self.0.ack_handles(&handles)).py_err()
    }

    /// Keeps a message invisible for `seconds` from now instead (0: visible at once);
    /// updates `message.receipt_handle`.
    fn change_invisible_duration(
        &self,
        py: Python<'_>,
        message: &Bound<'_, Message>,
        seconds: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let d = Duration::from_millis(duration_ms(seconds, "seconds")?);
        let m = message.get();
        let old = Self::handles(message.as_any(), "change_invisible_duration")?.remove(0);
        let new = py
            .detach(|| self.0.change_invisible_handle(&old, d))
            .py_err()?;
        m.set_handle(new);
        Ok(())
    }

    /// A failed delivery: visible again after `delay` seconds, or after the retry
    /// ladder's step for its attempt; delivered again with attempt + 1.
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
        for m in messages_of(message, "nack")? {
            let msg = m.get().engine_message();
            py.detach(|| self.0.nack(&msg, delay)).py_err()?;
        }
        Ok(())
    }

    /// `ack` for asyncio: a coroutine that acks when it runs (in microseconds: an
    /// embedded ack waits for nothing).
    fn ack_async<'py>(
        slf: &Bound<'py, Self>,
        message: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::consumer::settle_async(slf.as_any(), "inline", "ack", message, None)
    }

    /// `nack` for asyncio (as `ack_async`).
    #[pyo3(signature = (message, *, delay=None))]
    fn nack_async<'py>(
        slf: &Bound<'py, Self>,
        message: &Bound<'py, PyAny>,
        delay: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::consumer::settle_async(slf.as_any(), "inline", "nack", message, Some(delay))
    }

    /// Runs `handler(msg)` for each message on `threads` threads (see
    /// `Consumer.listen`).
    #[pyo3(signature = (handler, *, threads=Whole(4)), text_signature = "(self, handler, *, threads=4)")]
    fn listen(
        slf: &Bound<'_, Self>,
        handler: &Bound<'_, PyAny>,
        threads: Whole,
    ) -> PyResult<crate::listener::Listener> {
        let source = slf.get().0.clone();
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
        py.detach(|| self.0.close()).py_err()
    }

    #[pyo3(signature = (max_messages, timeout))]
    fn _start_receive(&self, max_messages: Whole, timeout: Timeout) -> PyResult<PyReceiving> {
        start(&*self.0, max_messages, timeout)
    }

    fn _receive_step(
        &self,
        py: Python<'_>,
        receiving: &PyReceiving,
    ) -> PyResult<Option<Vec<Message>>> {
        step(py, &*self.0, receiving)
    }

    fn _on_ready(&self, py: Python<'_>, callback: Py<PyAny>) {
        py.detach(|| self.0.on_ready(crate::consumer::waker(callback)));
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyResult<PyRef<'_, Self>> {
        crate::consumer::open_to_iterate(slf.0.is_closed())?;
        Ok(slf)
    }

    /// The next message, waiting as long as it takes; stops when the consumer closes.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Message>> {
        if self.0.is_closed() {
            return Ok(None);
        }
        Ok(receive_for(py, &*self.0, 1, None)?.into_iter().next())
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyResult<PyRef<'_, Self>> {
        crate::consumer::open_to_iterate(slf.0.is_closed())?;
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
        let closed = if self.0.is_closed() { ", closed" } else { "" };
        format!(
            "SimpleConsumer(group={:?}, topic={:?}{closed})",
            self.0.group(),
            self.0.topic()
        )
    }
}
