//! `Atomic`: `with broker.atomic() as tx:` (or `async with`) collects sends and acks
//! and stores them as one append when the block ends without an exception.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::consumer::Consumer;
use crate::convert::{self, message, Text};
use crate::errors::IntoPyResult;
use crate::message::{Message, SendResult};
use crate::simple_consumer::SimpleConsumer;

/// An atomic block: its sends and acks apply together at the end, or not at all.
#[pyclass(module = "pocketmq", name = "Atomic", frozen)]
pub struct Atomic {
    /// The block until it is committed or aborted.
    block: Mutex<Option<pocketmq::Atomic>>,
    /// The context variable's token while the block is entered (blocks do not nest).
    token: Mutex<Option<Py<PyAny>>>,
    results: Mutex<Option<Vec<pocketmq::SendResult>>>,
    /// Whether the commit waits for the disk (`flush="sync"`): `async with` then
    /// commits on the loop's default executor.
    waits: bool,
}

impl Atomic {
    pub fn new(block: pocketmq::Atomic, waits: bool) -> Atomic {
        Atomic {
            block: Mutex::new(Some(block)),
            token: Mutex::new(None),
            results: Mutex::new(None),
            waits,
        }
    }

    /// Leaves the block's context (blocks do not nest); whether it is to be
    /// committed: not after an exception (it is aborted), nor once finished.
    fn leave(slf: &Bound<'_, Self>, exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let py = slf.py();
        let token = slf.get().token.lock().ok().and_then(|mut t| t.take());
        if let Some(token) = token {
            py.import("pocketmq._atomic")?
                .getattr("current")?
                .call_method1("reset", (token,))?;
        }
        let failed = exc.get_item(0).is_ok_and(|e| !e.is_none());
        if failed {
            slf.get().abort();
            return Ok(false);
        }
        Ok(slf.get().block.lock().is_ok_and(|b| b.is_some()))
    }

    fn with<R>(&self, f: impl FnOnce(&mut pocketmq::Atomic) -> pocketmq::Result<R>) -> PyResult<R> {
        let mut block = self
            .block
            .lock()
            .map_err(|_| pocketmq::Error::InvalidArgument("the block is in use".into()))
            .py_err()?;
        match block.as_mut() {
            Some(b) => f(b).py_err(),
            None => Err(pocketmq::Error::InvalidArgument(
                "this atomic block is finished (committed or aborted)".into(),
            ))
            .py_err(),
        }
    }

    fn take(&self) -> Option<pocketmq::Atomic> {
        self.block.lock().ok().and_then(|mut b| b.take())
    }
}

#[pymethods]
impl Atomic {
    /// Adds a send (the options of `Producer.send`); checked now, stored at the end.
    #[pyo3(signature = (topic, body, **options))]
    fn send(
        &self,
        topic: Text<'_>,
        body: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let topic = topic.0;
        let msg = message(topic, convert::body(body)?, options, "send()")?;
        self.with(|b| b.send(msg))
    }

    /// Adds the ack of `message`, held by `consumer` (a Consumer or a SimpleConsumer).
    fn ack(&self, consumer: &Bound<'_, PyAny>, message: &Bound<'_, Message>) -> PyResult<()> {
        let m = message.get().engine_message();
        if let Ok(c) = consumer.cast::<Consumer>() {
            let c = c.get().inner.clone();
            return self.with(|b| b.ack(&c, &m));
        }
        if let Ok(c) = consumer.cast::<SimpleConsumer>() {
            let c = c.get().0.clone();
            return self.with(|b| b.ack_simple(&c, &m));
        }
        Err(pyo3::exceptions::PyTypeError::new_err(
            "ack takes the Consumer or SimpleConsumer that received the message",
        ))
    }

    /// Stores the sends and acks as one append; the sends' results.
    fn commit(&self, py: Python<'_>) -> PyResult<Vec<SendResult>> {
        let block = self
            .take()
            .ok_or_else(|| {
                pocketmq::Error::InvalidArgument(
                    "this atomic block is finished (committed or aborted)".into(),
                )
            })
            .py_err()?;
        let results = py.detach(|| block.commit()).py_err()?;
        if let Ok(mut r) = self.results.lock() {
            *r = Some(results.clone());
        }
        Ok(results.into_iter().map(SendResult).collect())
    }

    /// Drops the block: nothing is applied.
    fn abort(&self) {
        self.take();
    }

    /// The send results, once committed; else None.
    #[getter]
    fn results(&self) -> Option<Vec<SendResult>> {
        let r = self.results.lock().ok()?;
        r.as_ref()
            .map(|v| v.iter().cloned().map(SendResult).collect())
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<Py<Self>> {
        let py = slf.py();
        let var = py.import("pocketmq._atomic")?.getattr("current")?;
        if !var.call_method1("get", (py.None(),))?.is_none() {
            slf.get().take();
            return Err(pocketmq::Error::InvalidArgument(
                "atomic blocks do not nest: put the sends and acks in the outer block".into(),
            ))
            .py_err();
        }
        let token = var.call_method1("set", (slf,))?;
        if let Ok(mut t) = slf.get().token.lock() {
            *t = Some(token.unbind());
        }
        Ok(slf.clone().unbind())
    }

    #[pyo3(signature = (*exc))]
    fn __exit__(slf: &Bound<'_, Self>, exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        if Atomic::leave(slf, exc)? {
            slf.get().commit(slf.py())?;
        }
        Ok(false)
    }

    /// `async with broker.atomic() as tx:` enters as `with` does.
    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let entered = Atomic::__enter__(slf)?;
        slf.py()
            .import("pocketmq._aio")?
            .call_method1("ready", (entered,))
    }

    /// Ends an `async with` block as `with` does; a commit that waits for the disk
    /// (`flush="sync"`) runs on the loop's default executor.
    #[pyo3(signature = (*exc))]
    fn __aexit__<'py>(
        slf: &Bound<'py, Self>,
        exc: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let commit = Atomic::leave(slf, exc)?;
        slf.py()
            .import("pocketmq._aio")?
            .call_method1("atomic_exit", (slf, commit, commit && slf.get().waits))
    }

    fn __repr__(&self) -> String {
        let state = match self
            .block
            .lock()
            .ok()
            .and_then(|b| b.as_ref().map(|b| b.len()))
        {
            Some(n) => format!("{n} pending"),
            None => "finished".into(),
        };
        format!("Atomic({state})")
    }
}
