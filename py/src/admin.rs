//! What the operations on `Broker` need beyond plain conversions: a Python
//! `on_progress(done, total)` callable as the engine's progress callback (it may
//! raise, or Ctrl-C may come, to stop a drill), counts, and engine reports as dicts.

use pyo3::prelude::*;

use crate::errors::invalid;

/// A drill's progress callback over an optional Python callable. The first exception
/// (from the callable, or a pending signal such as Ctrl-C) stops the drill and is
/// kept to be raised once the engine returns.
pub struct Progress {
    callback: Option<Py<PyAny>>,
    pub failure: Option<PyErr>,
}

impl Progress {
    pub fn new(callback: Option<Py<PyAny>>) -> Progress {
        Progress {
            callback,
            failure: None,
        }
    }

    /// Called by the engine (without the GIL) between steps; false stops the drill.
    pub fn step(&mut self, done: u64, total: u64) -> bool {
        Python::attach(|py| {
            let called = py.check_signals().and_then(|()| match &self.callback {
                Some(f) => f.call1(py, (done, total)).map(drop),
                None => Ok(()),
            });
            match called {
                Ok(()) => true,
                Err(e) => {
                    self.failure = Some(e);
                    false
                }
            }
        })
    }
}

/// A count argument: a non-negative integer.
pub fn count(value: crate::convert::Whole, what: &str) -> PyResult<usize> {
    let value = value.0;
    usize::try_from(value).map_err(|_| invalid(format!("{what} must be at least 0, not {value}")))
}

/// An engine report, encoded as JSON, as plain Python values (dicts, lists, numbers,
/// None).
pub fn to_python(
    py: Python<'_>,
    json: Result<String, serde_json::Error>,
) -> PyResult<Bound<'_, PyAny>> {
    let text = json.map_err(|e| invalid(format!("a report could not be encoded: {e}")))?;
    py.import("json")?.call_method1("loads", (text,))
}
