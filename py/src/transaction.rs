//! Transactional sends: Python's `execute` and `check` callables as the engine's
//! deciders. A callable that raises or returns something other than a `TxState`
//! counts as UNKNOWN and is logged to the `pocketmq` logger, never re-raised.

use std::sync::Mutex;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use pocketmq::{MessageExt, TransactionListener, TxState};

use crate::convert::Text;
use crate::errors::IntoPyResult;
use crate::message::{Message, SendResult};

/// `pocketmq.TxState[name]` for a core state.
pub fn tx_state_to_py(py: Python<'_>, state: TxState) -> PyResult<Bound<'_, PyAny>> {
    py.import("pocketmq._types")?
        .getattr("TxState")?
        .call1((state.as_str(),))
}

fn log_error(py: Python<'_>, text: String, exc: Option<PyErr>) {
    let logged = (|| -> PyResult<()> {
        let logger = py
            .import("logging")?
            .call_method1("getLogger", ("pocketmq",))?;
        let kwargs = PyDict::new(py);
        if let Some(e) = &exc {
            kwargs.set_item("exc_info", e.value(py))?;
        }
        logger.call_method("error", (text,), Some(&kwargs))?;
        Ok(())
    })();
    if let Err(e) = logged {
        e.write_unraisable(py, None);
    }
}

pub(crate) fn is_coroutine(py: Python<'_>, v: &Bound<'_, PyAny>) -> bool {
    // Most handlers return None; a listener asks this of every message, so
    // `inspect.iscoroutine` is looked up once, not imported per call.
    static ISCOROUTINE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    !v.is_none() && inspect_says(py, &ISCOROUTINE, "iscoroutine", v)
}

/// What `inspect.<test>(v)` says (false when it cannot be asked); the function is
/// looked up once, into `cell`.
fn inspect_says(
    py: Python<'_>,
    cell: &PyOnceLock<Py<PyAny>>,
    test: &str,
    v: &Bound<'_, PyAny>,
) -> bool {
    cell.get_or_try_init(py, || {
        py.import("inspect")?.getattr(test).map(Bound::unbind)
    })
    .and_then(|f| f.bind(py).call1((v,)))
    .and_then(|r| r.is_truthy())
    .unwrap_or(false)
}

/// Calls `decider(message)` and reads its answer as a `TxState`.
pub(crate) fn decide(
    py: Python<'_>,
    decider: &Bound<'_, PyAny>,
    msg: &MessageExt,
    what: &str,
) -> TxState {
    let answer = Py::new(py, Message::from(msg.clone())).and_then(|m| decider.call1((m,)));
    answer_state(py, answer, &msg.msg_id, what)
}

/// Reads `what`'s answer for message `msg_id` (or the exception it raised) as a
/// `TxState`: anything else counts as UNKNOWN and is logged.
pub(crate) fn answer_state(
    py: Python<'_>,
    answer: PyResult<Bound<'_, PyAny>>,
    msg_id: &str,
    what: &str,
) -> TxState {
    match answer {
        Ok(v) => match v.extract::<String>().as_deref() {
            Ok("COMMIT") => TxState::Commit,
            Ok("ROLLBACK") => TxState::Rollback,
            Ok("UNKNOWN") => TxState::Unknown,
            _ if is_coroutine(py, &v) => {
                // Never awaited: closed, so Python does not warn about it as well.
                let _ = v.call_method0("close");
                log_error(
                    py,
                    format!(
                        "{what} is a coroutine function: it is called synchronously and must \
                         return a TxState (message {msg_id}{hint}); counting it as UNKNOWN",
                        hint = if what == "execute" {
                            "; send_async awaits it"
                        } else {
                            ""
                        }
                    ),
                    None,
                );
                TxState::Unknown
            }
            _ => {
                let shown = v.repr().map_or_else(|_| "?".to_string(), |r| r.to_string());
                log_error(
                    py,
                    format!(
                        "{what} returned {shown}, not a TxState, for message {msg_id}; counting it as UNKNOWN"
                    ),
                    None,
                );
                TxState::Unknown
            }
        },
        Err(e) => {
            log_error(
                py,
                format!("{what} raised for message {msg_id}; counting it as UNKNOWN"),
                Some(e),
            );
            TxState::Unknown
        }
    }
}

/// What `execute` answered, as `pocketmq._aio.transaction_send_async` hands it to
/// `_finish`: its (awaited) return value, or the exception it raised.
pub(crate) fn execute_answer<'py>(
    py: Python<'py>,
    answer: Bound<'py, PyAny>,
    error: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    match error.filter(|e| !e.is_none()) {
        Some(e) => Err(PyErr::from_value(e)),
        None => Ok(answer.into_pyobject(py)?),
    }
}

/// A transactional send between its two steps (`send_async`): the half message is
/// stored and its local transaction runs; `_finish` records the outcome.
#[pyclass(module = "pocketmq", name = "TransactionStep", frozen)]
pub struct TransactionStep(pub Mutex<Option<Step>>);

/// The state of a `TransactionStep`, embedded or over `connect()`.
pub enum Step {
    Embedded(pocketmq::Begun),
    Remote {
        result: pocketmq::SendResult,
        half: MessageExt,
        tx_id: String,
    },
}

impl TransactionStep {
    /// Takes the step to finish it; `InvalidArgument` once finished.
    pub fn take(&self) -> PyResult<Step> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| {
                pocketmq::Error::InvalidArgument(
                    "this transactional send was finished already".into(),
                )
            })
            .py_err()
    }
}

#[pymethods]
impl TransactionStep {
    /// The half message to run the local transaction on; None when the outcome is
    /// known already (a repeated dedup id, a sync flush that timed out).
    #[getter]
    fn half(&self) -> Option<Message> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref()? {
            Step::Embedded(b) => b.half().cloned().map(Message::from),
            Step::Remote { half, .. } => Some(Message::from(half.clone())),
        }
    }

    /// The half message's send result (UNKNOWN while its outcome is open).
    #[getter]
    fn result(&self) -> PyResult<SendResult> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(Step::Embedded(b)) => Ok(SendResult(b.result().clone())),
            Some(Step::Remote { result, .. }) => Ok(SendResult(result.clone())),
            None => Err(pocketmq::Error::InvalidArgument(
                "this transactional send was finished already".into(),
            ))
            .py_err(),
        }
    }
}

/// A Python `check(msg) -> TxState` callable as the engine's listener. A check that
/// answers with an awaitable (an `async def check`) is awaited on the event loop
/// that was running where the producer was made (or on this thread's running loop):
/// the check counts as UNKNOWN now and its answer resolves the half message once it
/// comes. With no loop running it is run to its end here (`asyncio.run`).
pub struct PyCheck {
    pub check: Py<PyAny>,
    /// The event loop running where the producer was made, if any.
    pub event_loop: Option<Py<PyAny>>,
}

impl PyCheck {
    /// `check` as a listener, with the event loop running now (if any).
    pub fn new(py: Python<'_>, check: &Bound<'_, PyAny>) -> PyResult<PyCheck> {
        Ok(PyCheck {
            check: callable(check, "check")?,
            event_loop: running_loop(py)?,
        })
    }
}

/// The event loop running on this thread, if any.
pub(crate) fn running_loop(py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
    let l = py.import("pocketmq._aio")?.call_method0("running_loop")?;
    Ok((!l.is_none()).then(|| l.unbind()))
}

/// Whether `v` can be awaited (`inspect.isawaitable`).
pub(crate) fn is_awaitable(py: Python<'_>, v: &Bound<'_, PyAny>) -> bool {
    static ISAWAITABLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    !v.is_none()
        && !v.is_instance_of::<pyo3::types::PyString>()
        && inspect_says(py, &ISAWAITABLE, "isawaitable", v)
}

impl TransactionListener for PyCheck {
    fn check(&self, msg: &MessageExt) -> TxState {
        // Called from the engine's thread; once the interpreter is shutting down
        // nobody can decide, and the half message waits for a later check.
        Python::try_attach(|py| decide(py, self.check.bind(py), msg, "check"))
            .unwrap_or(TxState::Unknown)
    }

    fn check_on(&self, broker: &pocketmq::Broker, msg: &MessageExt) -> TxState {
        Python::try_attach(|py| {
            let answer = Py::new(py, Message::from(msg.clone()))
                .and_then(|m| self.check.bind(py).call1((m,)));
            let answer = match answer {
                Ok(v) if is_awaitable(py, &v) => {
                    let Some(id) = pocketmq::TxId::of(msg) else {
                        return TxState::Unknown;
                    };
                    let settle = TxSettle {
                        broker: broker.clone(),
                        id,
                        msg_id: msg.msg_id.clone(),
                    };
                    let later = py.import("pocketmq._aio").and_then(|aio| {
                        aio.call_method1("check_async", (v, self.event_loop.as_ref(), settle))
                    });
                    match later {
                        // Awaited on a loop: its answer resolves the half message later.
                        Ok(r) if r.is_none() => return TxState::Unknown,
                        other => other,
                    }
                }
                other => other,
            };
            answer_state(py, answer, &msg.msg_id, "check")
        })
        .unwrap_or(TxState::Unknown)
    }
}

/// Resolves a half message with the answer of its check, once an async check
/// answers (`pocketmq._aio.check_async`).
#[pyclass(module = "pocketmq", name = "_TxSettle", frozen)]
pub struct TxSettle {
    broker: pocketmq::Broker,
    id: pocketmq::TxId,
    msg_id: String,
}

#[pymethods]
impl TxSettle {
    #[pyo3(signature = (answer, error=None))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        answer: Bound<'py, PyAny>,
        error: Option<Bound<'py, PyAny>>,
    ) {
        let state = answer_state(py, execute_answer(py, answer, error), &self.msg_id, "check");
        if state == TxState::Unknown {
            return;
        }
        // A broker closed meanwhile: the next open's check-back asks again.
        if let Err(e) = py.detach(|| self.broker.end_transaction(&self.id, state)) {
            if e.kind() != pocketmq::ErrorKind::Closed {
                log_error(
                    py,
                    format!(
                        "the answer of check for message {} could not be recorded: {e}",
                        self.msg_id
                    ),
                    None,
                );
            }
        }
    }
}

/// Checks that `f` can be called, naming the argument otherwise.
pub fn callable<'py>(f: &Bound<'py, PyAny>, what: &str) -> PyResult<Py<PyAny>> {
    if f.is_callable() {
        Ok(f.clone().unbind())
    } else {
        let name = f
            .get_type()
            .name()
            .map_or_else(|_| "object".to_string(), |n| n.to_string());
        Err(PyTypeError::new_err(format!(
            "{what} must be callable, not {name}"
        )))
    }
}

/// Sends half messages, runs `execute` on each and records its decision.
#[pyclass(module = "pocketmq", name = "TransactionProducer", frozen)]
pub struct TransactionProducer(pub pocketmq::TransactionProducer);

#[pymethods]
impl TransactionProducer {
    #[getter]
    fn group(&self) -> &str {
        self.0.group()
    }

    /// Stores a half message, runs `execute(msg)` and records its decision.
    #[pyo3(signature = (topic, body, *, execute, **options))]
    fn send(
        &self,
        py: Python<'_>,
        topic: Text<'_>,
        body: &Bound<'_, PyAny>,
        execute: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<SendResult> {
        let topic = topic.0;
        let execute = callable(execute, "execute")?;
        let msg = crate::convert::message(topic, crate::convert::body(body)?, options, "send()")?;
        let result = py
            .detach(|| {
                self.0.send(msg, |half| {
                    Python::try_attach(|py| decide(py, execute.bind(py), half, "execute"))
                        .unwrap_or(TxState::Unknown)
                })
            })
            .py_err()?;
        Ok(SendResult(result))
    }

    /// `send` for asyncio: a coroutine of the SendResult. `execute` may be a
    /// coroutine function (or return an awaitable): its answer is awaited on the
    /// loop. Under `flush="sync"` the wait for the disk runs on the loop's default
    /// executor. Cancelled while `execute` runs, the half message stays open and the
    /// check-back decides it, as after a crash.
    #[pyo3(signature = (topic, body, *, execute, **options))]
    fn send_async<'py>(
        slf: &Bound<'py, Self>,
        topic: &Bound<'py, PyAny>,
        body: &Bound<'py, PyAny>,
        execute: &Bound<'py, PyAny>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let waits = slf.get().0.broker().config().flush == pocketmq::FlushMode::Sync;
        let how = if waits { "executor" } else { "here" };
        slf.py().import("pocketmq._aio")?.call_method1(
            "transaction_send_async",
            (slf, topic, body, execute, options, how),
        )
    }

    /// Stores a half message for `send_async`: the step whose `half` its local
    /// transaction runs on.
    #[pyo3(signature = (topic, body, **options))]
    fn _begin(
        &self,
        py: Python<'_>,
        topic: Text<'_>,
        body: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<TransactionStep> {
        let msg = crate::convert::message(
            topic.0,
            crate::convert::body(body)?,
            options,
            "send_async()",
        )?;
        let begun = py.detach(|| self.0.begin(msg)).py_err()?;
        Ok(TransactionStep(Mutex::new(Some(Step::Embedded(begun)))))
    }

    /// Records the outcome of `step`'s local transaction: `answer`, what `execute`
    /// returned (awaited), or `error`, what it raised.
    #[pyo3(signature = (step, answer, error=None))]
    fn _finish<'py>(
        &self,
        py: Python<'py>,
        step: &TransactionStep,
        answer: Bound<'py, PyAny>,
        error: Option<Bound<'py, PyAny>>,
    ) -> PyResult<SendResult> {
        let Step::Embedded(begun) = step.take()? else {
            return Err(PyTypeError::new_err("a step of another producer"));
        };
        let state = match begun.half() {
            Some(half) => {
                let msg_id = half.msg_id.clone();
                answer_state(py, execute_answer(py, answer, error), &msg_id, "execute")
            }
            None => TxState::Unknown,
        };
        let result = py.detach(|| self.0.finish(begun, state)).py_err()?;
        Ok(SendResult(result))
    }

    fn __repr__(&self) -> String {
        format!("TransactionProducer(group={:?})", self.0.group())
    }
}
