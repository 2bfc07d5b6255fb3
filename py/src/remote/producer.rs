//! Producers over the protocol: `send` and `send_batch` (SendMessage), and
//! transactional sends (a TRANSACTION message, `execute`, then EndTransaction; the
//! server's check-backs arrive on the Telemetry stream and run `check`). The send
//! options are parsed exactly as the embedded producer parses them (`convert`), so a
//! wrong type is the same `TypeError` and a wrong value the same `InvalidArgument`.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};

use pocketmq::{MessageExt, SendResult as CoreSendResult, SendStatus, TxState};
use pocketmq_server::proto::settings::PubSub;
use pocketmq_server::proto::{
    ClientType, Code, EndTransactionRequest, Message as PbMessage, Publishing,
    RecallMessageRequest, SendMessageRequest, SendResultEntry, TransactionResolution,
    TransactionSource,
};

use super::consumer::{start_call, take_answer, Answer};
use super::session::{rpc_failure, Client, Connection, REQUEST_TIMEOUT};
use super::wire::{self, Failure, Outcome};
use super::PyOutcome;
use crate::convert::{self, Text};
use crate::errors::IntoPyResult;
use crate::message::Message;
use crate::message::SendResult;
use crate::transaction::{
    answer_state, callable, decide, execute_answer, is_awaitable, PyCheck, Step, TransactionStep,
};

/// Starts a producer client.
pub fn client(
    conn: &Connection,
    on_check: Option<Arc<dyn Fn(MessageExt) -> TxState + Send + Sync>>,
) -> Outcome<Arc<Client>> {
    conn.client(
        ClientType::Producer,
        None,
        PubSub::Publishing(Publishing {
            topics: Vec::new(),
            max_body_size: 0,
            validate_message_type: true,
        }),
        on_check,
    )
}

/// Sends the messages of one topic in one SendMessage; one result per message.
async fn send(
    client: &Client,
    topic: &str,
    mut msgs: Vec<PbMessage>,
) -> Outcome<Vec<(CoreSendResult, String)>> {
    if client.is_closed() {
        return Err(Failure::closed());
    }
    if let Some(limit) = client.known_settings().and_then(|s| match s.pub_sub {
        Some(PubSub::Publishing(p)) if p.max_body_size > 0 => Some(p.max_body_size as usize),
        _ => None,
    }) {
        if let Some(m) = msgs.iter().find(|m| m.body.len() > limit) {
            return Err(pocketmq::Error::MessageTooLarge {
                size: m.body.len(),
                limit,
            }
            .into());
        }
    }
    let route = client.core.route(&client.id, topic).await?;
    client.publish(topic);
    // One queue for all: a batch is one append (the servers store it so).
    let q = client.core.pick(&route);
    for m in &mut msgs {
        if let Some(sys) = m.system_properties.as_mut() {
            sys.queue_id = q.id;
        }
    }
    let n = msgs.len();
    let ids: Vec<String> = msgs
        .iter()
        .map(|m| {
            m.system_properties
                .as_ref()
                .map_or_else(String::new, |p| p.message_id.clone())
        })
        .collect();
    let req = SendMessageRequest { messages: msgs };
    let resp = client
        .call(req, REQUEST_TIMEOUT, |mut s, r| async move {
            s.send_message(r).await
        })
        .await
        .map_err(|s| rpc_failure(&s, "send"))?;
    let mut entries = resp.entries;
    if entries.len() == 1 && n > 1 && wire::ok(entries[0].status.as_ref()) {
        // Apache RocketMQ stores a batch as one and answers with one entry (its
        // message id the batch's ids joined by commas, its offset the first's).
        let first = entries.remove(0);
        entries = ids
            .into_iter()
            .enumerate()
            .map(|(i, message_id)| SendResultEntry {
                message_id,
                offset: first.offset.saturating_add(i as i64),
                ..first.clone()
            })
            .collect();
    }
    if entries.len() != n {
        return Err(wire::failure(resp.status.as_ref(), "send"));
    }
    let mut out = Vec::with_capacity(n);
    for e in entries {
        let code = e.status.as_ref().map_or(Code::Ok as i32, |s| s.code);
        let status = if code == Code::MasterPersistenceTimeout as i32 {
            SendStatus::FlushDiskTimeout
        } else if wire::ok(e.status.as_ref()) {
            SendStatus::SendOk
        } else {
            return Err(wire::failure(e.status.as_ref(), "send"));
        };
        out.push((
            CoreSendResult {
                msg_id: e.message_id,
                topic: topic.to_string(),
                // The protocol's answer names no queue and no CommitLog offset.
                queue_id: 0,
                queue_offset: e.offset.max(0) as u64,
                commitlog_offset: 0,
                status,
                transaction_state: None,
                duplicate: false,
                recall_handle: Some(e.recall_handle).filter(|h| !h.is_empty()),
            },
            e.transaction_id,
        ));
    }
    Ok(out)
}

/// Recalls a delayed message (RecallMessage): true when it was waiting, false when
/// its time has come or it was recalled already (pocketmq serve: MESSAGE_NOT_FOUND;
/// Apache RocketMQ: "recall failed, timestamp invalid" as an internal error).
async fn recall(client: &Client, topic: &str, handle: String) -> Outcome<bool> {
    if client.is_closed() {
        return Err(Failure::closed());
    }
    let req = RecallMessageRequest {
        topic: Some(client.core.resource(topic)),
        recall_handle: handle,
    };
    let resp = client
        .call(req, REQUEST_TIMEOUT, |mut s, r| async move {
            s.recall_message(r).await
        })
        .await
        .map_err(|s| rpc_failure(&s, "recall"))?;
    let status = resp.status.as_ref();
    if wire::ok(status) {
        return Ok(true);
    }
    // Apache RocketMQ refuses a recall past the delivery time as an internal error
    // ("recall failed, timestamp invalid"); a recall it does not allow is an error.
    let too_late = status.is_some_and(|s| {
        s.code == Code::MessageNotFound as i32
            || (s.code == Code::InternalServerError as i32
                && s.message.contains("timestamp invalid"))
    });
    if too_late {
        return Ok(false);
    }
    Err(wire::failure(status, "recall"))
}

/// A message built from the send options, with a fresh id.
fn outgoing(
    conn: &Connection,
    topic: &str,
    body: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyDict>>,
    callable: &str,
    transactional: bool,
) -> PyResult<(pocketmq::Message, PbMessage)> {
    let msg = convert::message(topic, convert::body(body)?, options, callable)?;
    let id = conn.core.ids.next();
    let pb = wire::to_proto(&conn.core.namespace, msg.clone(), id, transactional).py()?;
    Ok((msg, pb))
}

/// Sends messages for a producer group, over `connect()`.
#[pyclass(module = "pocketmq", name = "RemoteProducer", frozen)]
pub struct RemoteProducer {
    pub conn: Arc<Connection>,
    pub client: Arc<Client>,
    pub group: String,
}

#[pymethods]
impl RemoteProducer {
    #[getter]
    fn group(&self) -> &str {
        &self.group
    }

    /// Sends one message (the embedded producer's options; `queue_id` and `dedup_id`
    /// raise `NotSupported`).
    #[pyo3(signature = (topic, body, **options))]
    fn send(
        &self,
        py: Python<'_>,
        topic: Text<'_>,
        body: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<SendResult> {
        let topic = topic.0;
        let (_, pb) = outgoing(&self.conn, topic, body, options, "send()", false)?;
        let client = self.client.clone();
        let mut r = self
            .conn
            .block_py(py, async move { send(&client, topic, vec![pb]).await })?
            .py()?;
        Ok(SendResult(r.remove(0).0))
    }

    /// Sends several bodies to one topic in one SendMessage; the options apply to each.
    #[pyo3(signature = (topic, bodies, *, dedup_ids = None, **options))]
    fn send_batch(
        &self,
        py: Python<'_>,
        topic: Text<'_>,
        bodies: &Bound<'_, PyAny>,
        dedup_ids: Option<Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Vec<SendResult>> {
        let topic = topic.0;
        let msgs = self.batch(topic, bodies, dedup_ids, options)?;
        if msgs.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client.clone();
        let r = self
            .conn
            .block_py(py, async move { send(&client, topic, msgs).await })?
            .py()?;
        Ok(r.into_iter().map(|(r, _)| SendResult(r)).collect())
    }

    /// `send` for asyncio: a coroutine of the SendResult. The send runs on the
    /// connection's runtime, so no thread waits for its answer.
    #[pyo3(signature = (topic, body, **options))]
    fn send_async<'py>(
        slf: &Bound<'py, Self>,
        topic: &Bound<'py, PyAny>,
        body: &Bound<'py, PyAny>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(slf, "_send_start", (topic, body), options)
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
        awaitable(slf, "_send_batch_start", (topic, bodies), options)
    }

    /// Starts `send` on the connection's runtime; `wake()` is called (from another
    /// thread) when it is answered. For `pocketmq._aio.remote_call`.
    #[pyo3(signature = (wake, topic, body, **options))]
    fn _send_start(
        &self,
        wake: Py<PyAny>,
        topic: Text<'_>,
        body: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<RemoteSend> {
        let (_, pb) = outgoing(&self.conn, topic.0, body, options, "send()", false)?;
        Ok(self.start(topic.0, vec![pb], wake, true))
    }

    /// Starts `send_batch` on the connection's runtime (as `_send_start`).
    #[pyo3(signature = (wake, topic, bodies, *, dedup_ids = None, **options))]
    fn _send_batch_start(
        &self,
        wake: Py<PyAny>,
        topic: Text<'_>,
        bodies: &Bound<'_, PyAny>,
        dedup_ids: Option<Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<RemoteSend> {
        let msgs = self.batch(topic.0, bodies, dedup_ids, options)?;
        Ok(self.start(topic.0, msgs, wake, false))
    }

    /// Cancels a delayed message before it is delivered (RecallMessage); as the
    /// embedded producer's `recall`.
    fn recall(&self, py: Python<'_>, topic: Text<'_>, recall_handle: Text<'_>) -> PyResult<bool> {
        let topic = topic.0;
        let recall_handle = recall_handle.0;
        let handle = pocketmq::RecallHandle::parse(recall_handle).py_err()?;
        // The servers name a namespaced topic `namespace%topic`.
        let ns = &self.conn.core.namespace;
        let named = format!("{ns}%{topic}");
        if handle.topic != topic && (ns.is_empty() || handle.topic != named) {
            return Err(pocketmq::Error::InvalidArgument(format!(
                "the recall handle is for a message sent to {:?}, not to {topic:?}",
                handle.topic
            )))
            .py_err();
        }
        let client = self.client.clone();
        let (topic, recall_handle) = (topic.to_string(), recall_handle.to_string());
        self.conn
            .block_py(
                py,
                async move { recall(&client, &topic, recall_handle).await },
            )?
            .py()
    }

    fn __repr__(&self) -> String {
        format!(
            "RemoteProducer(group={:?}, endpoint={:?})",
            self.group, self.conn.core.endpoint
        )
    }
}

impl RemoteProducer {
    /// The messages of a `send_batch`: one per body, each with the options.
    fn batch(
        &self,
        topic: &str,
        bodies: &Bound<'_, PyAny>,
        dedup_ids: Option<Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Vec<PbMessage>> {
        if bodies.is_instance_of::<PyBytes>()
            || bodies.is_instance_of::<PyString>()
            || bodies.is_instance_of::<PyByteArray>()
        {
            return Err(PyTypeError::new_err(
                "bodies must be a list of bytes or str, not a single body",
            ));
        }
        if dedup_ids.is_some_and(|d| !d.is_none()) {
            return Err(Failure::not_supported(
                "send_batch(dedup_ids=...): the RocketMQ 5 protocol carries no deduplication id",
            ))
            .py();
        }
        let iter = bodies
            .try_iter()
            .map_err(|_| PyTypeError::new_err("bodies must be a list of bytes or str"))?;
        let mut msgs = Vec::new();
        for item in iter {
            msgs.push(outgoing(&self.conn, topic, &item?, options, "send_batch()", false)?.1);
        }
        Ok(msgs)
    }

    /// Sends `msgs` on the connection's runtime and calls `wake` once answered (or
    /// once the connection's close drops the send unanswered).
    fn start(&self, topic: &str, msgs: Vec<PbMessage>, wake: Py<PyAny>, one: bool) -> RemoteSend {
        let (client, topic) = (self.client.clone(), topic.to_string());
        let result = start_call(&self.client, wake, async move {
            if msgs.is_empty() {
                return Ok(Vec::new());
            }
            let sent = send(&client, &topic, msgs).await?;
            Ok(sent.into_iter().map(|(r, _)| r).collect())
        });
        RemoteSend { result, one }
    }
}

/// `pocketmq._aio.remote_call` of `start` (`_send_start` or `_send_batch_start`) with
/// `args` and `options`: a coroutine of the send's answer.
fn awaitable<'py>(
    slf: &Bound<'py, RemoteProducer>,
    start: &str,
    args: (&Bound<'py, PyAny>, &Bound<'py, PyAny>),
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    slf.py()
        .import("pocketmq._aio")?
        .call_method1("remote_call", (slf, start, args, options))
}

/// A running send of `RemoteProducer.send_async` or `send_batch_async`
/// (`pocketmq._aio.remote_call`).
#[pyclass(module = "pocketmq", name = "RemoteSend", frozen)]
pub struct RemoteSend {
    result: Answer<Vec<CoreSendResult>>,
    /// `send_async`'s (one SendResult), not `send_batch_async`'s (a list).
    one: bool,
}

#[pymethods]
impl RemoteSend {
    /// The SendResult (or list of them) once answered (the callback was called), or
    /// the send's error; `Closed` when the connection closed before the answer.
    fn result<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut results = take_answer(&self.result).py()?;
        if self.one {
            if results.is_empty() {
                return Err(Failure::closed()).py();
            }
            return Ok(Bound::new(py, SendResult(results.remove(0)))?.into_any());
        }
        let list: Vec<SendResult> = results.into_iter().map(SendResult).collect();
        Ok(list.into_pyobject(py)?.into_any())
    }
}

impl Drop for RemoteProducer {
    fn drop(&mut self) {
        let client = &self.client;
        Python::try_attach(|py| py.detach(|| client.close()));
    }
}

/// How long an async check over `connect()` may take before it counts as UNKNOWN
/// (the server asks again later).
const ASYNC_CHECK_TIMEOUT_S: f64 = 10.0;

/// `check(msg)` from Python as the check-back handler; an awaitable answer (an
/// `async def check`) is awaited on the loop that was running where the producer
/// was made, or run to its end here (`pocketmq._aio.check_wait`).
pub fn checker(check: PyCheck) -> Arc<dyn Fn(MessageExt) -> TxState + Send + Sync> {
    Arc::new(move |m: MessageExt| {
        Python::try_attach(|py| {
            let answer = Py::new(py, Message::from(m.clone()))
                .and_then(|msg| check.check.bind(py).call1((msg,)));
            let answer = match answer {
                Ok(v) if is_awaitable(py, &v) => py.import("pocketmq._aio").and_then(|aio| {
                    aio.call_method1(
                        "check_wait",
                        (v, check.event_loop.as_ref(), ASYNC_CHECK_TIMEOUT_S),
                    )
                }),
                other => other,
            };
            answer_state(py, answer, &m.msg_id, "check")
        })
        .unwrap_or(TxState::Unknown)
    })
}

/// Transactional sends over `connect()`.
#[pyclass(module = "pocketmq", name = "RemoteTransactionProducer", frozen)]
pub struct RemoteTransactionProducer {
    pub conn: Arc<Connection>,
    pub client: Arc<Client>,
    pub group: String,
}

#[pymethods]
impl RemoteTransactionProducer {
    #[getter]
    fn group(&self) -> &str {
        &self.group
    }

    /// Sends a half message, runs `execute(msg)` and ends the transaction as it
    /// decides (UNKNOWN leaves it to the server's check-back, answered by `check`).
    #[pyo3(signature = (topic, body, *, execute, **options))]
    fn send(
        &self,
        py: Python<'_>,
        topic: Text<'_>,
        body: &Bound<'_, PyAny>,
        execute: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<SendResult> {
        let execute = callable(execute, "execute")?;
        let (pb, mut half) = self.prepare(topic.0, body, options, "send()")?;
        let client = self.client.clone();
        let topic = topic.0.to_string();
        let (mut result, tx_id) = self
            .conn
            .block_py(py, async move { send(&client, &topic, vec![pb]).await })?
            .py()?
            .remove(0);
        sent_as(&mut half, &result);
        let state = decide(py, execute.bind(py), &half, "execute");
        if let Some(req) = self.end_request(&result, &half.topic, tx_id, state) {
            let client = self.client.clone();
            self.conn
                .block_py(py, async move { end(&client, req).await })?
                .py()?;
        }
        result.transaction_state = Some(state);
        Ok(SendResult(result))
    }

    /// `send` for asyncio: a coroutine of the SendResult; `execute` may be a
    /// coroutine function (as the embedded producer's `send_async`). The half
    /// message's send and the EndTransaction run on the connection's runtime, so no
    /// thread waits for their answers.
    #[pyo3(signature = (topic, body, *, execute, **options))]
    fn send_async<'py>(
        slf: &Bound<'py, Self>,
        topic: &Bound<'py, PyAny>,
        body: &Bound<'py, PyAny>,
        execute: &Bound<'py, PyAny>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("pocketmq._aio")?.call_method1(
            "transaction_send_async",
            (slf, topic, body, execute, options, "remote"),
        )
    }

    /// Starts the half message's send of `send_async` on the connection's runtime;
    /// `wake()` is called (from another thread) when it is answered, and the job's
    /// `result()` is then the step whose `half` the local transaction runs on.
    #[pyo3(signature = (wake, topic, body, **options))]
    fn _begin_start(
        &self,
        wake: Py<PyAny>,
        topic: Text<'_>,
        body: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<RemoteTxJob> {
        let (pb, half) = self.prepare(topic.0, body, options, "send_async()")?;
        let (client, topic) = (self.client.clone(), topic.0.to_string());
        let done = start_call(&self.client, wake, async move {
            Ok(Some(send(&client, &topic, vec![pb]).await?.remove(0)))
        });
        Ok(RemoteTxJob {
            done,
            half: Mutex::new(Some(half)),
            result: Mutex::new(None),
        })
    }

    /// Ends `step`'s transaction as its local transaction decided (`answer`, what
    /// `execute` returned, awaited; or `error`, what it raised): EndTransaction on
    /// the connection's runtime unless UNKNOWN; `wake()` is called when it is
    /// answered, and the job's `result()` is then the SendResult.
    #[pyo3(signature = (wake, step, answer, error=None))]
    fn _finish_start<'py>(
        &self,
        py: Python<'py>,
        wake: Py<PyAny>,
        step: &TransactionStep,
        answer: Bound<'py, PyAny>,
        error: Option<Bound<'py, PyAny>>,
    ) -> PyResult<RemoteTxJob> {
        let Step::Remote {
            mut result,
            half,
            tx_id,
        } = step.take()?
        else {
            return Err(PyTypeError::new_err("a step of another producer"));
        };
        let state = answer_state(
            py,
            execute_answer(py, answer, error),
            &half.msg_id,
            "execute",
        );
        let req = self.end_request(&result, &half.topic, tx_id, state);
        result.transaction_state = Some(state);
        let client = self.client.clone();
        let done = start_call(&self.client, wake, async move {
            // UNKNOWN: nothing to send.
            if let Some(req) = req {
                end(&client, req).await?;
            }
            Ok(None)
        });
        Ok(RemoteTxJob {
            done,
            half: Mutex::new(None),
            result: Mutex::new(Some(result)),
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "RemoteTransactionProducer(group={:?}, endpoint={:?})",
            self.group, self.conn.core.endpoint
        )
    }
}

impl RemoteTransactionProducer {
    /// A transactional message to send: its protocol form, and the message as
    /// `execute` will see it (completed by `sent_as` once sent).
    fn prepare(
        &self,
        topic: &str,
        body: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
        call: &str,
    ) -> PyResult<(PbMessage, MessageExt)> {
        let (msg, pb) = outgoing(&self.conn, topic, body, options, call, true)?;
        if msg.delay != pocketmq::Delay::None {
            // As embedded.
            return Err(Failure::invalid(
                "a batch or a transactional message cannot be delayed",
            ))
            .py();
        }
        if msg.sharding_key.is_some() {
            // Embedded takes it; the protocol cannot carry it.
            return Err(Failure::not_supported(
                "send(sharding_key=...) of a transactional message: a RocketMQ 5 message is \
                 FIFO or transactional, not both",
            ))
            .py();
        }
        let mut half = MessageExt::default();
        half.topic = msg.topic;
        half.body = msg.body;
        half.tags = msg.tags;
        half.keys = msg.keys;
        half.properties = msg.properties;
        half.born_timestamp = wire::now_ms();
        half.delivery_attempt = 1;
        Ok((pb, half))
    }

    /// The EndTransaction of the half message `result` as `state` decides; None for
    /// UNKNOWN, which sends nothing and leaves it to the check-back.
    fn end_request(
        &self,
        result: &CoreSendResult,
        topic: &str,
        tx_id: String,
        state: TxState,
    ) -> Option<EndTransactionRequest> {
        let resolution = match state {
            TxState::Commit => TransactionResolution::Commit,
            TxState::Rollback => TransactionResolution::Rollback,
            TxState::Unknown => return None,
        };
        Some(EndTransactionRequest {
            topic: Some(self.conn.core.resource(topic)),
            message_id: result.msg_id.clone(),
            transaction_id: tx_id,
            resolution: resolution as i32,
            source: TransactionSource::SourceClient as i32,
            trace_context: String::new(),
        })
    }
}

/// Completes a prepared half message with what its send answered.
fn sent_as(half: &mut MessageExt, result: &CoreSendResult) {
    half.msg_id = result.msg_id.clone();
    half.queue_offset = result.queue_offset;
}

/// Sends an EndTransaction.
async fn end(client: &Client, req: EndTransactionRequest) -> Outcome<()> {
    let resp = client
        .call(req, REQUEST_TIMEOUT, |mut s, r| async move {
            s.end_transaction(r).await
        })
        .await
        .map_err(|s| rpc_failure(&s, "end_transaction"))?;
    if wire::ok(resp.status.as_ref()) {
        Ok(())
    } else {
        Err(wire::failure(resp.status.as_ref(), "end_transaction"))
    }
}

/// What `m` holds, taken out.
fn take<T>(m: &Mutex<Option<T>>) -> Option<T> {
    m.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// What a `RemoteTxJob` was answered: a send's result and transaction id, or None
/// for an end.
type TxJobAnswer = Option<(CoreSendResult, String)>;

/// A running step of `RemoteTransactionProducer.send_async` (`pocketmq._aio`): the
/// half message's send, or its EndTransaction.
#[pyclass(module = "pocketmq", name = "RemoteTxJob", frozen)]
pub struct RemoteTxJob {
    done: Answer<TxJobAnswer>,
    /// A send's message, as its `execute` sees it.
    half: Mutex<Option<MessageExt>>,
    /// An end's SendResult.
    result: Mutex<Option<CoreSendResult>>,
}

#[pymethods]
impl RemoteTxJob {
    /// Once answered (the callback was called): a send's step, or an end's
    /// SendResult; or the call's error (`Closed` when the connection closed first).
    fn result<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let sent = take_answer(&self.done).py()?;
        match sent {
            Some((result, tx_id)) => {
                let Some(mut half) = take(&self.half) else {
                    return Err(Failure::closed()).py();
                };
                sent_as(&mut half, &result);
                let step = TransactionStep(Mutex::new(Some(Step::Remote {
                    result,
                    half,
                    tx_id,
                })));
                Ok(Bound::new(py, step)?.into_any())
            }
            None => match take(&self.result) {
                Some(r) => Ok(Bound::new(py, SendResult(r))?.into_any()),
                None => Err(Failure::closed()).py(),
            },
        }
    }
}

impl Drop for RemoteTransactionProducer {
    fn drop(&mut self) {
        let client = &self.client;
        Python::try_attach(|py| py.detach(|| client.close()));
    }
}
