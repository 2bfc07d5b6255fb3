//! `Listener`: the engine's listener threads running a Python handler (RocketMQ's
//! push consumer). Each thread enters Python once per batch; a handler that
//! returns acks, one that raises nacks (logged at WARNING with the traceback), and
//! `RetryLater(seconds)` nacks with that delay.

use crate::convert::Whole;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::IntoPyDict;

use pocketmq::{ListenOptions, MessageExt, Outcome, Runner, Source};

use crate::errors::{invalid, IntoPyResult};
use crate::message::Message;
use crate::transaction::{callable, is_coroutine};

pyo3::import_exception!(pocketmq._errors, RetryLater);

/// A Python callable as the engine's listener.
struct Handler(Py<PyAny>);

impl Handler {
    fn outcome(&self, py: Python<'_>, msg: &mut MessageExt) -> Outcome {
        let result = Py::new(py, Message::from(msg.clone())).and_then(|m| {
            let r = self.0.call1(py, (m.clone_ref(py),));
            // The handler may have changed the delivery (change_invisible_duration):
            // the outcome applies to the current one.
            if let Some(h) = m.get().handle() {
                msg.receipt_handle = Some(h);
            }
            r
        });
        let e = match result {
            // A coroutine returned (a partial of an `async def`, say) was never run:
            // not an ack. `listen()` refuses coroutine functions themselves.
            Ok(v) if is_coroutine(py, v.bind(py)) => {
                let _ = v.bind(py).call_method0("close");
                pyo3::exceptions::PyTypeError::new_err(
                    "the handler returned a coroutine: listen() calls handlers \
                     synchronously (use listen_async for async ones)",
                )
            }
            Ok(_) => return Outcome::Ack,
            Err(e) => e,
        };
        if e.is_instance_of::<RetryLater>(py) {
            let secs: f64 = e
                .value(py)
                .getattr("delay")
                .and_then(|d| d.extract())
                .unwrap_or(0.0);
            if secs.is_finite() && secs >= 0.0 {
                return Outcome::RetryAfter(Duration::from_secs_f64(secs.min(1e9)));
            }
        }
        let logged = py.import("logging").and_then(|logging| {
            logging
                .call_method1("getLogger", ("pocketmq.listener",))?
                .call_method(
                    "warning",
                    (
                        "handler failed for message %s; it will be retried",
                        msg.msg_id.as_str(),
                    ),
                    Some(&[("exc_info", e.value(py))].into_py_dict(py)?),
                )
        });
        if let Err(log_err) = logged {
            log_err.write_unraisable(py, None);
        }
        Outcome::Retry
    }
}

impl pocketmq::Listener for Handler {
    fn handle(&self, msgs: &mut [MessageExt], outcomes: &mut Vec<Outcome>) {
        // Once the interpreter is shutting down nobody can handle: the messages are
        // nacked and come back later.
        Python::try_attach(|py| {
            outcomes.extend(msgs.iter_mut().map(|m| self.outcome(py, m)));
        });
    }
}

/// Running listener threads. It holds its consumer, which lives while it runs
/// (`broker.consumer(...).listen(h)` keeps consuming).
#[pyclass(module = "pocketmq", name = "Listener", frozen)]
pub struct Listener(Arc<Slot>, #[allow(dead_code)] Py<PyAny>);

type Slot = Mutex<Option<Runner>>;

/// Every listener started, to stop at interpreter exit.
static STARTED: Mutex<Vec<Weak<Slot>>> = Mutex::new(Vec::new());

/// Stops every running listener and waits for its handlers: registered with
/// `atexit`, so handlers finish while Python still runs them. Left to the
/// interpreter's shutdown, a handler that releases the GIL (`time.sleep`) is ended by
/// CPython inside the listener thread, which aborts the process. Ctrl-C ends the wait.
#[pyfunction]
pub fn _stop_listeners(py: Python<'_>) -> PyResult<()> {
    let slots: Vec<Arc<Slot>> = STARTED
        .lock()
        .map(|mut all| all.drain(..).filter_map(|w| w.upgrade()).collect())
        .unwrap_or_default();
    // All stop taking messages first, then each waits for its handlers.
    for slot in &slots {
        if let Ok(r) = slot.lock() {
            if let Some(r) = r.as_ref() {
                r.request_stop();
            }
        }
    }
    for slot in &slots {
        stop_slot(py, slot, true)?;
    }
    Ok(())
}

pub fn start<S: Source>(
    consumer: Py<PyAny>,
    source: Arc<S>,
    handler: &Bound<'_, PyAny>,
    threads: Whole,
) -> PyResult<Listener> {
    let threads = usize::try_from(threads.0)
        .ok()
        .filter(|t| (1..=1024).contains(t))
        .ok_or_else(|| {
            invalid(format!(
                "threads must be between 1 and 1024, not {}",
                threads.0
            ))
        })?;
    let is_async = handler
        .py()
        .import("inspect")
        .and_then(|m| m.call_method1("iscoroutinefunction", (handler,)))
        .and_then(|r| r.is_truthy())
        .unwrap_or(false);
    if is_async {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "handler is an async function: listen() calls it synchronously; use \
             listen_async(handler) for coroutines",
        ));
    }
    let handler = Arc::new(Handler(callable(handler, "handler")?));
    let options = ListenOptions {
        threads,
        ..ListenOptions::default()
    };
    let runner = pocketmq::listen(source, handler, options).py_err()?;
    let slot = Arc::new(Mutex::new(Some(runner)));
    if let Ok(mut all) = STARTED.lock() {
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&slot));
    }
    Ok(Listener(slot, consumer))
}

/// How often a waiting `stop` lets Python run its signal handlers.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Stops the threads and waits for their handlers; with `signals`, Ctrl-C
/// interrupts the wait (the threads still stop, after their handlers).
fn stop_slot(py: Python<'_>, slot: &Slot, signals: bool) -> PyResult<()> {
    let runner = slot.lock().ok().and_then(|mut r| r.take());
    let Some(mut r) = runner else {
        return Ok(());
    };
    r.request_stop();
    // The threads need the GIL to finish their handlers.
    while signals && !r.others_finished() {
        py.detach(|| std::thread::sleep(STOP_POLL));
        if let Err(e) = py.check_signals() {
            // Interrupted: a later stop (or the drop) waits for them.
            if let Ok(mut s) = slot.lock() {
                *s = Some(r);
            }
            return Err(e);
        }
    }
    py.detach(|| r.stop());
    Ok(())
}

impl Listener {
    fn stop_now(&self, py: Python<'_>, signals: bool) -> PyResult<()> {
        stop_slot(py, &self.0, signals)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        Python::try_attach(|py| self.stop_now(py, false));
    }
}

#[pymethods]
impl Listener {
    /// Takes no new messages and waits for the running handlers (their outcomes
    /// are applied). Twice is harmless.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        self.stop_now(py, true)
    }

    /// True while the threads run (until `stop`, or until the consumer closes).
    #[getter]
    fn running(&self) -> bool {
        self.0
            .lock()
            .map(|r| r.as_ref().is_some_and(|r| !r.is_finished()))
            .unwrap_or(false)
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
        self.stop_now(py, true)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "Listener(running={})",
            if self.running() { "True" } else { "False" }
        )
    }
}
