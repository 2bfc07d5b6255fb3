//! `Producer`: `send` and `send_batch` with keyword-only options.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};

use crate::convert::{self, message, OwnedText, Text};
use crate::errors::IntoPyResult;
use crate::message::SendResult;

/// Sends messages on behalf of a producer group.
#[pyclass(module = "pocketmq", name = "Producer", frozen)]
pub struct Producer(pub pocketmq::Producer);

#[pymethods]
impl Producer {
    #[getter]
    fn group(&self) -> &str {
        self.0.group()
    }

    /// Stores one message. The options are keyword arguments of their own (no dict
    /// is built per call); each is the engine's send option of that name. PyO3 finds
    /// a keyword by comparing it with each name in turn: `dedup_id`, which goes on
    /// every send of a producer that uses it, comes first.
    #[pyo3(signature = (
        topic, body, *, dedup_id=None, tags=None, keys=None, properties=None,
        sharding_key=None, queue_id=None, delay_level=None, deliver_at=None, delay=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        py: Python<'_>,
        topic: Text<'_>,
        body: &Bound<'_, PyAny>,
        dedup_id: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        keys: Option<&Bound<'_, PyAny>>,
        properties: Option<&Bound<'_, PyAny>>,
        sharding_key: Option<&Bound<'_, PyAny>>,
        queue_id: Option<&Bound<'_, PyAny>>,
        delay_level: Option<&Bound<'_, PyAny>>,
        deliver_at: Option<&Bound<'_, PyAny>>,
        delay: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<SendResult> {
        let topic = topic.0;
        // The dedup id first: its place in the dedup window loads while the rest is
        // converted.
        let dedup = match convert::given(dedup_id) {
            Some(v) => {
                let id = convert::text("dedup_id", v)?;
                let prepared = self.0.prepare_dedup(topic, &id);
                Some((id, prepared))
            }
            None => None,
        };
        let mut msg = pocketmq::Message::new(topic, convert::body(body)?);
        // Text options straight into the message, the others through the builder.
        if let Some(v) = convert::given(tags) {
            msg.tags = Some(convert::text("tags", v)?);
        }
        if let Some(v) = convert::given(sharding_key) {
            msg.sharding_key = Some(convert::text("sharding_key", v)?);
        }
        let others = [
            ("keys", keys),
            ("properties", properties),
            ("queue_id", queue_id),
            ("delay_level", delay_level),
            ("deliver_at", deliver_at),
            ("delay", delay),
        ];
        if others.iter().any(|(_, v)| convert::given(*v).is_some()) {
            let mut b = pocketmq::MessageBuilder::from(msg);
            for (name, value) in others {
                if let Some(value) = convert::given(value) {
                    b = convert::set_message_option(b, name, value)?;
                }
            }
            msg = b.build();
        }
        let result = match dedup {
            Some((id, prepared)) => {
                msg.dedup_id = Some(id);
                py.detach(|| self.0.send_prepared(msg, prepared))
            }
            None => py.detach(|| self.0.send(msg)),
        };
        Ok(SendResult(result.py_err()?))
    }

    /// `send` for asyncio: a coroutine of the SendResult, with `send`'s arguments.
    /// Under `flush="sync"` the wait for the disk runs on the loop's default executor,
    /// so the loop goes on meanwhile; otherwise the send is stored at once, as `send`
    /// stores it, when the coroutine runs.
    #[pyo3(signature = (topic, body, **options))]
    fn send_async<'py>(
        slf: &Bound<'py, Self>,
        topic: &Bound<'py, PyAny>,
        body: &Bound<'py, PyAny>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(slf, "send", (topic, body), options)
    }

    /// `send_batch` for asyncio: a coroutine of the list of SendResults (as
    /// `send_async`).
    #[pyo3(signature = (topic, bodies, **options))]
    fn send_batch_async<'py>(
        slf: &Bound<'py, Self>,
        topic: &Bound<'py, PyAny>,
        bodies: &Bound<'py, PyAny>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(slf, "send_batch", (topic, bodies), options)
    }

    /// Cancels a delayed message before it is delivered (RocketMQ 5.3's
    /// recallMessage): `recall_handle` is its send's, `topic` the topic it was sent
    /// to. True when it was waiting and now never will be delivered; False when its
    /// time has come, or it was recalled already.
    fn recall(&self, py: Python<'_>, topic: Text<'_>, recall_handle: Text<'_>) -> PyResult<bool> {
        let topic = topic.0;
        let recall_handle = recall_handle.0;
        py.detach(|| self.0.recall(topic, recall_handle)).py_err()
    }

    /// Sends several bodies to one topic as one append; the options apply to each,
    /// but `dedup_ids`, one per body.
    #[pyo3(signature = (topic, bodies, *, dedup_ids = None, **options))]
    fn send_batch(
        &self,
        py: Python<'_>,
        topic: Text<'_>,
        bodies: &Bound<'_, PyAny>,
        dedup_ids: Option<Vec<Option<OwnedText>>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Vec<SendResult>> {
        let topic = topic.0;
        if bodies.is_instance_of::<PyBytes>()
            || bodies.is_instance_of::<PyString>()
            || bodies.is_instance_of::<PyByteArray>()
        {
            return Err(PyTypeError::new_err(
                "bodies must be a list of bytes or str, not a single body",
            ));
        }
        let iter = bodies
            .try_iter()
            .map_err(|_| PyTypeError::new_err("bodies must be a list of bytes or str"))?;
        let mut msgs = Vec::new();
        let one_id = options
            .and_then(|o| o.get_item("dedup_id").ok().flatten())
            .is_some_and(|v| !v.is_none());
        for item in iter {
            msgs.push(message(
                topic,
                convert::body(&item?)?,
                options,
                "send_batch()",
            )?);
        }
        if one_id && msgs.len() > 1 {
            // One id for every body would store the first and call the rest duplicates.
            return Err(pocketmq::Error::InvalidArgument(
                "send_batch's options apply to every body, and one dedup_id for several \
                 bodies would keep only the first: give one per body, dedup_ids=[...]"
                    .into(),
            ))
            .py_err();
        }
        if let Some(ids) = dedup_ids {
            if one_id {
                return Err(pocketmq::Error::InvalidArgument(
                    "give dedup_ids (one per body) or dedup_id (a batch of one), not both".into(),
                ))
                .py_err();
            }
            if ids.len() != msgs.len() {
                return Err(pocketmq::Error::InvalidArgument(format!(
                    "dedup_ids has {} ids for {} bodies",
                    ids.len(),
                    msgs.len()
                )))
                .py_err();
            }
            for (m, id) in msgs.iter_mut().zip(ids) {
                m.dedup_id = id.map(|t| t.0);
            }
        }
        let results = py.detach(|| self.0.send_batch(msgs)).py_err()?;
        Ok(results.into_iter().map(SendResult).collect())
    }

    fn __repr__(&self) -> String {
        format!("Producer(group='{}')", self.0.group())
    }
}

/// `pocketmq._aio.send_async` of `method` with `args` and `options`: a coroutine that
/// runs the send on the loop's default executor when it waits for the disk
/// (`flush="sync"`), else where it is awaited.
fn awaitable<'py>(
    slf: &Bound<'py, Producer>,
    method: &str,
    args: (&Bound<'py, PyAny>, &Bound<'py, PyAny>),
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let waits = slf.get().0.broker().config().flush == pocketmq::FlushMode::Sync;
    slf.py()
        .import("pocketmq._aio")?
        .call_method1("send_async", (slf, method, args, options, waits))
}
