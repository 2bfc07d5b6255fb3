//! `pocketmq.connect("host:port")`: the Python API over Apache RocketMQ 5's gRPC
//! protocol, to a `pocketmq serve` or an Apache RocketMQ 5 proxy. Written in Rust in
//! the extension, over the server crate's generated protocol types, so the package
//! needs no gRPC library at run time and `connect()` behaves like the embedded
//! broker: the same `Message` and `SendResult` classes, the same option parsing,
//! the same exceptions. What the protocol cannot carry raises `NotSupported`
//! naming the call.
//!
//! `session` owns the runtime, the channel and the per-client duties (Telemetry
//! settings, heartbeats, signatures); `wire` converts; `producer` and `consumer` are
//! the Python classes.

mod consumer;
mod producer;
mod session;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::convert::{duration_ms, OwnedText, Text};
use crate::errors::{self, IntoPyResult as _};
use crate::transaction::PyCheck;

pub use consumer::{RemoteConsumer, RemoteReceive};
pub use producer::{RemoteProducer, RemoteSend, RemoteTransactionProducer};
use session::Connection;
use wire::Failure;

pyo3::import_exception!(pocketmq._errors, NotSupported);

pub fn not_supported(msg: impl Into<String>) -> PyErr {
    NotSupported::new_err(msg.into())
}

fn to_py(f: Failure) -> PyErr {
    match f.kind {
        None => not_supported(f.message),
        Some(kind) => errors::kind_to_py(kind, f.message),
    }
}

/// Remote results as Python results.
pub trait PyOutcome<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> PyOutcome<T> for Result<T, Failure> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// Connects to a RocketMQ 5 gRPC endpoint (`pocketmq serve`, or an Apache RocketMQ 5
/// proxy). Fails at once with `IoError` when nothing answers there.
#[pyfunction]
#[pyo3(signature = (endpoint, access_key=None, secret_key=None, namespace=None))]
pub fn connect(
    py: Python<'_>,
    endpoint: Text<'_>,
    access_key: Option<OwnedText>,
    secret_key: Option<OwnedText>,
    namespace: Option<OwnedText>,
) -> PyResult<RemoteBroker> {
    let endpoint = endpoint.0;
    let (access_key, secret_key) = (access_key.map(|t| t.0), secret_key.map(|t| t.0));
    let namespace = namespace.map(|t| t.0);
    let credentials = match (access_key, secret_key) {
        (Some(a), Some(s)) => Some((a, s)),
        (None, None) => None,
        _ => {
            return Err(errors::invalid(
                "access_key and secret_key go together: give both or neither",
            ))
        }
    };
    let namespace = namespace.unwrap_or_default();
    let conn = py
        .detach(|| Connection::open(endpoint, credentials, namespace))
        .py()?;
    Ok(RemoteBroker(Arc::new(conn)))
}

/// A broker over the network (`connect()`): producers and consumers as the embedded
/// `Broker` makes them; the rest raises `NotSupported`.
#[pyclass(module = "pocketmq", name = "RemoteBroker", frozen)]
pub struct RemoteBroker(Arc<Connection>);

impl RemoteBroker {
    fn live(&self) -> PyResult<&Arc<Connection>> {
        if self.0.is_closed() {
            Err(to_py(Failure::closed()))
        } else {
            Ok(&self.0)
        }
    }

    /// A method of `Broker` that the protocol cannot carry: NotSupported, naming it
    /// (Closed once the broker is closed, as every other call).
    fn refuse(
        &self,
        name: &str,
        why: &str,
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.live()?;
        Err(not_supported(format!(
            "{name}(): {why} (the RocketMQ 5 protocol that connect() speaks does not carry it)"
        )))
    }
}

#[pymethods]
impl RemoteBroker {
    /// The `host:port` this broker is connected to.
    #[getter]
    fn endpoint(&self) -> &str {
        &self.0.core.endpoint
    }

    /// The namespace resources are named in (`""` for none).
    #[getter]
    fn namespace(&self) -> &str {
        &self.0.core.namespace
    }

    /// Always None: the store is the server's.
    #[getter]
    fn path(&self) -> Option<String> {
        None
    }

    #[getter]
    fn closed(&self) -> bool {
        self.0.is_closed()
    }

    /// A producer of `group` (its own protocol client).
    #[pyo3(signature = (group = OwnedText("DEFAULT_PRODUCER".to_string())), text_signature = "(self, group='DEFAULT_PRODUCER')")]
    fn producer(&self, py: Python<'_>, group: OwnedText) -> PyResult<RemoteProducer> {
        let group = group.0;
        pocketmq::validate_group(&group).py_err()?;
        let conn = self.live()?.clone();
        let client = py.detach(|| producer::client(&conn, None)).py()?;
        Ok(RemoteProducer {
            conn,
            client,
            group,
        })
    }

    /// A transactional producer: `check(msg)` answers the server's check-backs.
    #[pyo3(signature = (group, *, check))]
    fn transaction_producer(
        &self,
        py: Python<'_>,
        group: OwnedText,
        check: &Bound<'_, PyAny>,
    ) -> PyResult<RemoteTransactionProducer> {
        let group = group.0;
        pocketmq::validate_group(&group).py_err()?;
        let check = producer::checker(PyCheck::new(py, check)?);
        let conn = self.live()?.clone();
        let client = py.detach(|| producer::client(&conn, Some(check))).py()?;
        Ok(RemoteTransactionProducer {
            conn,
            client,
            group,
        })
    }

    /// A simple (POP) consumer. `fifo` and `max_delivery_attempts` are the server's
    /// to decide: asking for other values than it has raises `NotSupported`.
    #[pyo3(signature = (group, topic, *, tags=None, invisible_duration=None, max_delivery_attempts=None, fifo=None, sql=None))]
    #[allow(clippy::too_many_arguments)]
    fn simple_consumer(
        &self,
        py: Python<'_>,
        group: OwnedText,
        topic: OwnedText,
        tags: Option<OwnedText>,
        invisible_duration: Option<Bound<'_, PyAny>>,
        max_delivery_attempts: Option<crate::convert::Whole>,
        fifo: Option<bool>,
        sql: Option<OwnedText>,
    ) -> PyResult<RemoteConsumer> {
        let group = group.0;
        let topic = topic.0;
        let filter = consumer::filter(tags.map(|t| t.0), sql.map(|t| t.0))?;
        pocketmq::validate_group(&group).py_err()?;
        let invisible = match invisible_duration {
            Some(d) => {
                let ms = duration_ms(&d, "invisible_duration")?;
                if ms == 0 {
                    return Err(errors::invalid("invisible_duration must be positive"));
                }
                Duration::from_millis(ms)
            }
            None => Duration::from_secs(30),
        };
        if max_delivery_attempts.is_some_and(|n| n.0 == 0) {
            return Err(errors::invalid("max_delivery_attempts must be at least 1"));
        }
        let wanted = consumer::Wanted {
            fifo,
            max_attempts: max_delivery_attempts.map(|n| n.0),
            what: "simple_consumer()",
        };
        let conn = self.live()?.clone();
        let pop = py
            .detach(|| consumer::Pop::open(conn, &group, &topic, filter, invisible, wanted, true))
            .py()?;
        Ok(RemoteConsumer(Arc::new(pop)))
    }

    /// A consumer of `group` on `topic` over the protocol's POP model (see the module
    /// docs of `consumer`): `broadcasting`, `start` other than "earliest" and
    /// `max_in_flight` raise `NotSupported`.
    #[pyo3(signature = (group, topic, **options))]
    fn consumer(
        &self,
        py: Python<'_>,
        group: OwnedText,
        topic: OwnedText,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<RemoteConsumer> {
        let group = group.0;
        let topic = topic.0;
        pocketmq::validate_group(&group).py_err()?;
        let (filter, invisible, wanted) = consumer::consumer_options(options)?;
        let conn = self.live()?.clone();
        let pop = py
            .detach(|| consumer::Pop::open(conn, &group, &topic, filter, invisible, wanted, false))
            .py()?;
        Ok(RemoteConsumer(Arc::new(pop)))
    }

    /// Closes every producer and consumer made here (each tells the server), then
    /// the connection. Twice is harmless.
    fn close(&self, py: Python<'_>) {
        let conn = &self.0;
        py.detach(|| conn.close());
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
    ) -> bool {
        self.close(py);
        false
    }

    // ---- what the protocol cannot carry ----

    #[pyo3(signature = (*args, **kwargs))]
    fn create_topic(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.refuse("create_topic", "topics are created on the server (pocketmq serve creates them on first use; mqadmin updateTopic on Apache RocketMQ)", args, kwargs)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn topics(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.refuse("topics", "the protocol lists no topics", args, kwargs)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn atomic(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.refuse(
            "atomic",
            "an atomic send-and-ack needs the store in this process",
            args,
            kwargs,
        )
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn get(&self, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        self.refuse(
            "get",
            "the protocol has no lookup by message id",
            args,
            kwargs,
        )
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn query(&self, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        self.refuse("query", "the protocol has no lookup by key", args, kwargs)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn lag(&self, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        self.refuse("lag", "the protocol reports no consumer lag", args, kwargs)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn reset_offset(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.refuse(
            "reset_offset",
            "POP consumers have no offsets to reset",
            args,
            kwargs,
        )
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn move_backlog(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.refuse(
            "move_backlog",
            "an operation on the store; run it where the store is",
            args,
            kwargs,
        )
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn browse(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.refuse(
            "browse",
            "the protocol cannot read without consuming",
            args,
            kwargs,
        )
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn query_by_time(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.refuse(
            "query_by_time",
            "the protocol has no lookup by time",
            args,
            kwargs,
        )
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn progress(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.refuse("progress", "POP consumers report no progress", args, kwargs)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn dead_letters(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.refuse(
            "dead_letters",
            "read %DLQ%<group> with a consumer instead",
            args,
            kwargs,
        )
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn redrive(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.refuse(
            "redrive",
            "an operation on the store; run it where the store is",
            args,
            kwargs,
        )
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn delete_topic(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.refuse(
            "delete_topic",
            "an operation on the store; run it where the store is",
            args,
            kwargs,
        )
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn stats(&self, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        self.refuse(
            "stats",
            "the protocol carries no statistics (pocketmq serve --metrics exports them)",
            args,
            kwargs,
        )
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn tick(&self, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        self.refuse(
            "tick",
            "the server runs its own timers; there is no ManualClock over the network",
            args,
            kwargs,
        )
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn next_due(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.refuse("next_due", "the server runs its own timers", args, kwargs)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn flush(&self, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        self.refuse("flush", "the server flushes its own store", args, kwargs)
    }

    fn __repr__(&self) -> String {
        let closed = if self.0.is_closed() { ", closed" } else { "" };
        format!("RemoteBroker(endpoint={:?}{closed})", self.0.core.endpoint)
    }
}
