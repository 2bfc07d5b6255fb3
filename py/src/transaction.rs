//! Transactional sends: Python's `execute` and `check` callables as the engine's
//! deciders. A callable that raises or returns something other than a `TxState`
//! counts as UNKNOWN and is logged to the `pocketmq` logger, never re-raised.

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
    if v.is_none() {
        return false;
    }
    static ISCOROUTINE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    ISCOROUTINE
        .get_or_try_init(py, || {
            py.import("inspect")?
                .getattr("iscoroutine")
                .map(Bound::unbind)
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
                         return a TxState (message {}); counting it as UNKNOWN",
                        msg.msg_id
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
                        "{what} returned {shown}, not a TxState, for message {}; counting it as UNKNOWN",
                        msg.msg_id
                    ),
                    None,
                );
                TxState::Unknown
            }
        },
        Err(e) => {
            log_error(
                py,
                format!(
                    "{what} raised for message {}; counting it as UNKNOWN",
                    msg.msg_id
                ),
                Some(e),
            );
            TxState::Unknown
        }
    }
}

/// A Python `check(msg) -> TxState` callable as the engine's listener.
pub struct PyCheck(pub Py<PyAny>);

impl TransactionListener for PyCheck {
    fn check(&self, msg: &MessageExt) -> TxState {
        // Called from the engine's thread; once the interpreter is shutting down
        // nobody can decide, and the half message waits for a later check.
        Python::try_attach(|py| decide(py, self.0.bind(py), msg, "check"))
            .unwrap_or(TxState::Unknown)
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

    fn __repr__(&self) -> String {
        format!("TransactionProducer(group={:?})", self.0.group())
    }
}
