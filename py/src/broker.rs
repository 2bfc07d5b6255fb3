//! `Broker`: the Python face of one engine over one store. Keyword options map to
//! `BrokerConfig` fields (seconds to milliseconds); an option left out keeps the
//! engine's default.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use pocketmq::{BrokerConfig, ConsumerConfig, FlushMode, MessageModel};

use crate::clock::ManualClock;
use crate::consumer::Consumer;
use crate::convert::{duration_ms, start_from, to_u32, to_u64};
use crate::errors::{invalid, IntoPyResult};
use crate::message::Message;
use crate::producer::Producer;
use crate::transaction::{callable, PyCheck, TransactionProducer};

/// One embedded engine over one store: a directory, or memory when `path` is None.
#[pyclass(module = "pocketmq", name = "Broker", frozen)]
pub struct Broker {
    inner: pocketmq::Broker,
    path: Option<PathBuf>,
    default_queues: u32,
}

#[pymethods]
impl Broker {
    #[new]
    #[pyo3(signature = (path=None, *, flush=None, clock=None, max_message_size=None, auto_create_topics=None, default_queues=None, delay_levels=None, timer_max_delay=None, file_reserved_time=None, segment_size=None, transaction_timeout=None, check_interval=None, max_checks=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: Option<PathBuf>,
        flush: Option<&str>,
        clock: Option<PyRef<'_, ManualClock>>,
        max_message_size: Option<i64>,
        auto_create_topics: Option<bool>,
        default_queues: Option<i64>,
        delay_levels: Option<String>,
        timer_max_delay: Option<Bound<'_, PyAny>>,
        file_reserved_time: Option<Bound<'_, PyAny>>,
        segment_size: Option<i64>,
        transaction_timeout: Option<Bound<'_, PyAny>>,
        check_interval: Option<Bound<'_, PyAny>>,
        max_checks: Option<i64>,
    ) -> PyResult<Broker> {
        let mut cfg = BrokerConfig {
            path: path.clone(),
            ..BrokerConfig::default()
        };
        if let Some(f) = flush {
            cfg.flush = f.parse::<FlushMode>().py_err()?;
        }
        if let Some(c) = clock {
            cfg.clock = c.as_clock();
        }
        if let Some(n) = max_message_size {
            cfg.max_message_size = usize::try_from(n)
                .map_err(|_| invalid(format!("max_message_size must be non-negative, not {n}")))?;
        }
        if let Some(b) = auto_create_topics {
            cfg.auto_create_topics = b;
        }
        if let Some(n) = default_queues {
            cfg.default_queues = to_u32(n, "default_queues")?;
        }
        if let Some(levels) = delay_levels {
            cfg.delay_levels = levels;
        }
        if let Some(t) = &timer_max_delay {
            cfg.timer_max_delay_ms = duration_ms(t, "timer_max_delay")?;
        }
        if let Some(t) = &file_reserved_time {
            cfg.file_reserved_time_ms = duration_ms(t, "file_reserved_time")?;
        }
        if let Some(n) = segment_size {
            cfg.segment_size = Some(to_u64(n, "segment_size")?);
        }
        if let Some(t) = &transaction_timeout {
            cfg.transaction_timeout_ms = duration_ms(t, "transaction_timeout")?;
        }
        if let Some(t) = &check_interval {
            cfg.check_interval_ms = duration_ms(t, "check_interval")?;
        }
        if let Some(n) = max_checks {
            cfg.max_checks = to_u32(n, "max_checks")?;
        }
        let default_queues = cfg.default_queues;
        let inner = py.detach(|| pocketmq::Broker::open(cfg)).py_err()?;
        Ok(Broker {
            inner,
            path,
            default_queues,
        })
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
    fn create_topic(&self, py: Python<'_>, name: &str, queues: Option<i64>) -> PyResult<()> {
        let queues = match queues {
            Some(q) => to_u32(q, "queues")?,
            None => self.default_queues,
        };
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
    #[pyo3(signature = (group, topic, *, tags=None, broadcasting=false, orderly=false, max_reconsume_times=None, start=None, consumer_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn consumer(
        &self,
        py: Python<'_>,
        group: &str,
        topic: &str,
        tags: Option<String>,
        broadcasting: bool,
        orderly: bool,
        max_reconsume_times: Option<i64>,
        start: Option<Bound<'_, PyAny>>,
        consumer_id: Option<String>,
    ) -> PyResult<Consumer> {
        let mut cfg = ConsumerConfig::new(group, topic);
        if let Some(t) = tags {
            cfg.tags = t;
        }
        cfg.model = if broadcasting {
            MessageModel::Broadcasting
        } else {
            MessageModel::Clustering
        };
        cfg.orderly = orderly;
        if let Some(n) = max_reconsume_times {
            cfg.max_reconsume_times = to_u32(n, "max_reconsume_times")?;
        }
        if let Some(s) = &start {
            cfg.start = start_from(s, "start")?;
        }
        cfg.consumer_id = consumer_id;
        let inner = py.detach(|| self.inner.consumer(cfg)).py_err()?;
        Ok(Consumer {
            inner,
            broker: self.inner.clone(),
            closed: AtomicBool::new(false),
        })
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
