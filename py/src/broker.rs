//! `Broker`: the Python face of one engine over one store. Keyword options are the
//! engine's options by name (`BrokerConfig::set_option`; durations in seconds or
//! timedeltas); an option left out, or None, keeps the engine's default.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use pocketmq::{BrokerConfig, ConsumerConfig, SimpleConsumerConfig};

use crate::admin::{count, to_python, Progress};
use crate::clock::ManualClock;
use crate::consumer::Consumer;
use crate::convert::{epoch_ms, set_options, start_from, to_u32, Text, Whole};
use crate::errors::{invalid, IntoPyResult};
use crate::message::Message;
use crate::producer::Producer;
use crate::simple_consumer::SimpleConsumer;
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
        set_options(&mut cfg, options, "Broker()")?;
        let inner = py.detach(|| pocketmq::Broker::open(cfg)).py_err()?;
        Ok(Broker { inner, path })
    }

    /// The store directory, or None for an in-memory broker.
    #[getter]
    fn path(&self) -> Option<std::ffi::OsString> {
        // As Python names a path (os.fsdecode): the one given comes back unchanged.
        self.path.as_ref().map(|p| p.clone().into_os_string())
    }

    /// True once `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Creates a topic or grows its queue count (never shrinks it); idempotent.
    #[pyo3(signature = (name, queues=None))]
    fn create_topic(&self, py: Python<'_>, name: Text<'_>, queues: Option<Whole>) -> PyResult<()> {
        let name = name.0;
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
    #[pyo3(signature = (group=Text("DEFAULT_PRODUCER")), text_signature = "(self, group='DEFAULT_PRODUCER')")]
    fn producer(&self, py: Python<'_>, group: Text<'_>) -> PyResult<Producer> {
        let group = group.0;
        Ok(Producer(py.detach(|| self.inner.producer(group)).py_err()?))
    }

    /// An atomic block: `with broker.atomic() as tx:` collects `tx.send(...)` and
    /// `tx.ack(consumer, msg)` and stores them as one append at the end of the block
    /// (nothing when it raises).
    fn atomic(&self, py: Python<'_>) -> PyResult<crate::atomic::Atomic> {
        let block = py.detach(|| self.inner.atomic()).py_err()?;
        let waits = self.inner.config().flush == pocketmq::FlushMode::Sync;
        Ok(crate::atomic::Atomic::new(block, waits))
    }

    /// A producer of transactional messages; `check(msg) -> TxState` answers for
    /// half messages left UNKNOWN. The first check comes `transaction_timeout` after
    /// the send, or after the whole seconds a message's
    /// `CHECK_IMMUNITY_TIME_IN_SECONDS` property names (at most a day); the message a
    /// check shows has `properties["TRANSACTION_CHECK_TIMES"]`, "1" the first time.
    #[pyo3(signature = (group, *, check))]
    fn transaction_producer(
        &self,
        py: Python<'_>,
        group: Text<'_>,
        check: &Bound<'_, PyAny>,
    ) -> PyResult<TransactionProducer> {
        let group = group.0;
        let listener = Arc::new(PyCheck::new(py, check)?);
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
        group: Text<'_>,
        topic: Text<'_>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Consumer> {
        let group = group.0;
        let topic = topic.0;
        let mut cfg = ConsumerConfig::new(group, topic);
        set_options(&mut cfg, options, "consumer()")?;
        let inner = py.detach(|| self.inner.consumer(cfg)).py_err()?;
        Ok(Consumer {
            inner: Arc::new(inner),
        })
    }

    /// A simple (POP) consumer of `topic` in `group` (RocketMQ 5's SimpleConsumer).
    #[pyo3(signature = (group, topic, **options))]
    fn simple_consumer(
        &self,
        py: Python<'_>,
        group: Text<'_>,
        topic: Text<'_>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<SimpleConsumer> {
        let group = group.0;
        let topic = topic.0;
        let mut cfg = SimpleConsumerConfig::new(group, topic);
        set_options(&mut cfg, options, "simple_consumer()")?;
        let inner = py.detach(|| self.inner.simple_consumer(cfg)).py_err()?;
        Ok(SimpleConsumer(Arc::new(inner)))
    }

    /// The message with this id, or None if it is not retained.
    fn get(&self, py: Python<'_>, msg_id: Text<'_>) -> PyResult<Option<Message>> {
        let msg_id = msg_id.0;
        Ok(py
            .detach(|| self.inner.get(msg_id))
            .py_err()?
            .map(Message::from))
    }

    /// The retained messages of `topic` with `key` among their keys, oldest first.
    fn query(&self, py: Python<'_>, topic: Text<'_>, key: Text<'_>) -> PyResult<Vec<Message>> {
        let topic = topic.0;
        let key = key.0;
        let found = py.detach(|| self.inner.query(topic, key)).py_err()?;
        Ok(found.into_iter().map(Message::from).collect())
    }

    /// Messages of `topic` not yet acked by `group`. A nacked or timed-out message
    /// counts until a redelivery is acked or it goes to `%DLQ%<group>`.
    fn lag(&self, py: Python<'_>, group: Text<'_>, topic: Text<'_>) -> PyResult<u64> {
        let group = group.0;
        let topic = topic.0;
        py.detach(|| self.inner.lag(group, topic)).py_err()
    }

    /// Moves `group`'s offsets on `topic` to "earliest", "latest" or a time
    /// (epoch seconds or a datetime).
    fn reset_offset(
        &self,
        py: Python<'_>,
        group: Text<'_>,
        topic: Text<'_>,
        to: Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let group = group.0;
        let topic = topic.0;
        let to = start_from(&to, "to")?;
        py.detach(|| self.inner.reset_offset(group, topic, to))
            .py_err()
    }

    /// The backlog drill: copies `group`'s unconsumed messages of `topic` to `to`
    /// (created with `queues` queues, default as many as `topic`), keeping each
    /// sharding key's order, then moves the group past them; returns how many.
    /// `on_progress(done, total)` is called between steps; an exception from it (or
    /// Ctrl-C) stops the drill, the group past what was copied, and is raised. Run
    /// again after a crash, a drill goes on where it stopped.
    #[pyo3(signature = (group, topic, *, to, queues=None, on_progress=None))]
    fn move_backlog(
        &self,
        py: Python<'_>,
        group: Text<'_>,
        topic: Text<'_>,
        to: Text<'_>,
        queues: Option<Whole>,
        on_progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let group = group.0;
        let topic = topic.0;
        let to = to.0;
        let queues = queues.map(|q| to_u32(q, "queues")).transpose()?;
        let cb = on_progress
            .map(|f| callable(&f, "on_progress"))
            .transpose()?;
        let mut progress = Progress::new(cb);
        let moved = py
            .detach(|| {
                self.inner
                    .move_backlog(group, topic, to, queues, |d, t| progress.step(d, t))
            })
            .py_err()?;
        progress.failure.map_or(Ok(moved), Err)
    }

    /// Messages of `topic` without consuming them: of queue `queue_id` from
    /// `offset` (default: the oldest retained), or of every queue from `offset`
    /// each, in store order; at most `limit`.
    #[pyo3(signature = (topic, queue_id=None, offset=None, limit=Whole(32)), text_signature = "(self, topic, queue_id=None, offset=None, limit=32)")]
    fn browse(
        &self,
        py: Python<'_>,
        topic: Text<'_>,
        queue_id: Option<Whole>,
        offset: Option<Whole>,
        limit: Whole,
    ) -> PyResult<Vec<Message>> {
        let topic = topic.0;
        let queue_id = queue_id.map(|q| to_u32(q, "queue_id")).transpose()?;
        let offset = offset.map(|o| count(o, "offset")).transpose()?;
        let limit = count(limit, "limit")?;
        let found = py
            .detach(|| {
                self.inner
                    .browse(topic, queue_id, offset.map(|o| o as u64), limit)
            })
            .py_err()?;
        Ok(found.into_iter().map(Message::from).collect())
    }

    /// Messages of `topic` stored at or after `start` and before `end` (epoch
    /// seconds or datetimes), oldest first, at most `limit`.
    #[pyo3(signature = (topic, start, end, limit=Whole(1000)), text_signature = "(self, topic, start, end, limit=1000)")]
    fn query_by_time(
        &self,
        py: Python<'_>,
        topic: Text<'_>,
        start: Bound<'_, PyAny>,
        end: Bound<'_, PyAny>,
        limit: Whole,
    ) -> PyResult<Vec<Message>> {
        let topic = topic.0;
        let start = epoch_ms(&start, "start")?;
        let end = epoch_ms(&end, "end")?;
        let limit = count(limit, "limit")?;
        let found = py
            .detach(|| self.inner.query_by_time(topic, start, end, limit))
            .py_err()?;
        Ok(found.into_iter().map(Message::from).collect())
    }

    /// `group`'s progress on each queue of `topic` (mqadmin's consumerProgress): a
    /// list of dicts with queue_id, broker_offset, consumer_offset, lag, inflight,
    /// last_store_timestamp (ms) and expired. As there, the group's retries are rows
    /// of `%RETRY%<group>`; `lag()` counts them for the topic they came from.
    fn progress<'py>(
        &self,
        py: Python<'py>,
        group: Text<'_>,
        topic: Text<'_>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let group = group.0;
        let topic = topic.0;
        let rows = py.detach(|| self.inner.progress(group, topic)).py_err()?;
        to_python(py, serde_json::to_string(&rows))
    }

    /// `group`'s dead letters not yet redriven, oldest first, at most `limit`.
    #[pyo3(signature = (group, limit=Whole(100)), text_signature = "(self, group, limit=100)")]
    fn dead_letters(
        &self,
        py: Python<'_>,
        group: Text<'_>,
        limit: Whole,
    ) -> PyResult<Vec<Message>> {
        let group = group.0;
        let limit = count(limit, "limit")?;
        let found = py
            .detach(|| self.inner.dead_letters(group, limit))
            .py_err()?;
        Ok(found.into_iter().map(Message::from).collect())
    }

    /// Resends `group`'s dead letters (at most `limit`) to that group alone, each a
    /// fresh delivery; returns how many. `on_progress` as for `move_backlog`.
    #[pyo3(signature = (group, limit=None, *, on_progress=None))]
    fn redrive(
        &self,
        py: Python<'_>,
        group: Text<'_>,
        limit: Option<Whole>,
        on_progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let group = group.0;
        let limit = limit.map(|l| count(l, "limit")).transpose()?;
        let cb = on_progress
            .map(|f| callable(&f, "on_progress"))
            .transpose()?;
        let mut progress = Progress::new(cb);
        let n = py
            .detach(|| {
                self.inner
                    .redrive(group, limit.map(|l| l as u64), |d, t| progress.step(d, t))
            })
            .py_err()?;
        progress.failure.map_or(Ok(n), Err)
    }

    /// Deletes a topic: its messages become unreachable and every group's offsets
    /// on it are reset. Consumers left open on it receive nothing until the topic
    /// comes back (a send, or `create_topic`), then read it from its start.
    fn delete_topic(&self, py: Python<'_>, topic: Text<'_>) -> PyResult<()> {
        let topic = topic.0;
        py.detach(|| self.inner.delete_topic(topic)).py_err()
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

    /// When the next deferred job is due, in epoch seconds, or None; `Closed` after
    /// `close()`.
    fn next_due(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        if self.inner.is_closed() {
            return Err::<Option<f64>, _>(pocketmq::Error::Closed).py_err();
        }
        Ok(py
            .detach(|| self.inner.next_due_ms())
            .map(|ms| ms as f64 / 1000.0))
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
