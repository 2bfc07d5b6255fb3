//! `Broker`: the Python face of one engine over one store. Keyword options are the
//! engine's options by name (`BrokerConfig::set_option`; durations in seconds or
//! timedeltas); an option left out, or None, keeps the engine's default.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use pocketmq::{BrokerConfig, ConsumerConfig};

use crate::clock::ManualClock;
use crate::consumer::Consumer;
use crate::convert::{option_value, start_from, to_u32, unexpected, Whole};
use crate::errors::{invalid, IntoPyResult};
use crate::message::Message;
use crate::producer::Producer;
use crate::transaction::{callable, PyCheck, TransactionProducer};

/// One embedded engine over one store: a directory, or memory when `path` is None.
#[pyclass(module = "pocketmq", name = "Broker", frozen)]
pub struct Broker {
    inner: pocketmq::Broker,
    path: Option<PathBuf>,
}

#[pymethods]
impl Broker {
    #[new]
    #[pyo3(signature = (path=None, *, clock=None, **options))]
    fn new(
        py: Python<'_>,
        path: Option<PathBuf>,
        clock: Option<PyRef<'_, ManualClock>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Broker> {
        let mut cfg = BrokerConfig {
            path: path.clone(),
            ..BrokerConfig::default()
        };
        if let Some(c) = clock {
            cfg.clock = c.as_clock();
        }
        for (name, value) in options.into_iter().flatten() {
            let name: String = name.extract()?;
            let kind =
                BrokerConfig::option_kind(&name).ok_or_else(|| unexpected("Broker()", &name))?;
            if !value.is_none() {
                cfg.set_option(&name, option_value(&value, kind, &name)?)
                    .py_err()?;
            }
        }
        let inner = py.detach(|| pocketmq::Broker::open(cfg)).py_err()?;
        Ok(Broker { inner, path })
    }

    /// The store directory, or None for an in-memory broker.
    #[getter]
    fn path(&self) -> Option<String> {
        self.path.as_ref().map(|p| p.to_string_lossy().into_owned())
    }

    /// True once `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Creates a topic or grows its queue count (never shrinks it); idempotent.
    #[pyo3(signature = (name, queues=None))]
    fn create_topic(&self, py: Python<'_>, name: &str, queues: Option<Whole>) -> PyResult<()> {
        let queues = queues.map(|q| to_u32(q, "queues")).transpose()?;
        py.detach(|| self.inner.create_topic(name, queues)).py_err()
    }

    /// The user topics and their queue counts.
    fn topics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let topics = py.detach(|| self.inner.topics()).py_err()?;
        let d = PyDict::new(py);
        for t in topics {
            d.set_item(t.name, t.queues)?;
        }
        Ok(d)
    }

    /// A producer in `group`.
    #[pyo3(signature = (group="DEFAULT_PRODUCER"))]
    fn producer(&self, py: Python<'_>, group: &str) -> PyResult<Producer> {
        Ok(Producer(py.detach(|| self.inner.producer(group)).py_err()?))
    }

    /// A producer of transactional messages; `check(msg) -> TxState` answers for
    /// half messages left UNKNOWN.
    #[pyo3(signature = (group, *, check))]
    fn transaction_producer(
        &self,
        py: Python<'_>,
        group: &str,
        check: &Bound<'_, PyAny>,
    ) -> PyResult<TransactionProducer> {
        let listener = Arc::new(PyCheck(callable(check, "check")?));
        let tp = py
            .detach(|| self.inner.transaction_producer(group, listener))
            .py_err()?;
        Ok(TransactionProducer(tp))
    }

    /// A consumer of `topic` in `group`; it joins the group at once.
    #[pyo3(signature = (group, topic, **options))]
    fn consumer(
        &self,
        py: Python<'_>,
        group: &str,
        topic: &str,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Consumer> {
        let mut cfg = ConsumerConfig::new(group, topic);
        for (name, value) in options.into_iter().flatten() {
            let name: String = name.extract()?;
            let kind = ConsumerConfig::option_kind(&name)
                .ok_or_else(|| unexpected("consumer()", &name))?;
            if !value.is_none() {
                cfg.set_option(&name, option_value(&value, kind, &name)?)
                    .py_err()?;
            }
        }
        let inner = py.detach(|| self.inner.consumer(cfg)).py_err()?;
        Ok(Consumer { inner })
    }

    /// The message with this id, or None if it is not retained.
    fn get(&self, py: Python<'_>, msg_id: &str) -> PyResult<Option<Message>> {
        Ok(py.detach(|| self.inner.get(msg_id)).py_err()?.map(Message))
    }

    /// The retained messages of `topic` with `key` among their keys, oldest first.
    fn query(&self, py: Python<'_>, topic: &str, key: &str) -> PyResult<Vec<Message>> {
        let found = py.detach(|| self.inner.query(topic, key)).py_err()?;
        Ok(found.into_iter().map(Message).collect())
    }

    /// Messages of `topic` not yet acked by `group`.
    fn lag(&self, py: Python<'_>, group: &str, topic: &str) -> PyResult<u64> {
        py.detach(|| self.inner.lag(group, topic)).py_err()
    }

    /// Moves `group`'s offsets on `topic` to "earliest", "latest" or a time
    /// (epoch seconds or a datetime).
    fn reset_offset(
        &self,
        py: Python<'_>,
        group: &str,
        topic: &str,
        to: Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let to = start_from(&to, "to")?;
        py.detach(|| self.inner.reset_offset(group, topic, to))
            .py_err()
    }

    /// Per topic and queue sizes, per group lag, rates: a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stats = py.detach(|| self.inner.stats()).py_err()?;
        let text = serde_json::to_string(&stats)
            .map_err(|e| invalid(format!("stats could not be encoded: {e}")))?;
        py.import("json")?.call_method1("loads", (text,))
    }

    /// Runs the work that is due now (delays, retries, transaction checks, retention).
    fn tick(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.tick()).py_err()
    }

    /// When the next deferred job is due, in epoch seconds, or None.
    fn next_due(&self, py: Python<'_>) -> Option<f64> {
        py.detach(|| self.inner.next_due_ms())
            .map(|ms| ms as f64 / 1000.0)
    }

    /// Forces everything sent so far to disk.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.flush()).py_err()
    }

    /// Flushes, writes the checkpoint and releases the store; twice is harmless.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.close()).py_err()
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
        let closed = if self.inner.is_closed() {
            ", closed"
        } else {
            ""
        };
        match &self.path {
            Some(p) => format!("Broker({:?}{closed})", p.display().to_string()),
            None => format!("Broker(memory{closed})"),
        }
    }
}
