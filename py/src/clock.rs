//! `ManualClock`: time that moves only when told to, in seconds as Python counts them.

use std::sync::Arc;

use pyo3::prelude::*;

use pocketmq::Clock;

use crate::convert::{duration_ms, epoch_ms};
use crate::errors::IntoPyResult;

/// A clock for tests and notebooks: delays, retries and checks fall due only as it
/// advances (and run on the next `tick()` or broker call).
#[pyclass(module = "pocketmq", name = "ManualClock", frozen)]
pub struct ManualClock(pub pocketmq::ManualClock);

impl ManualClock {
    pub fn as_clock(&self) -> Arc<dyn Clock> {
        Arc::new(self.0.clone())
    }
}

#[pymethods]
impl ManualClock {
    /// `start`: epoch seconds or a datetime; None starts at the wall clock's now.
    #[new]
    #[pyo3(signature = (start=None))]
    fn new(start: Option<Bound<'_, PyAny>>) -> PyResult<ManualClock> {
        Ok(ManualClock(match start {
            None => pocketmq::ManualClock::starting_now(),
            Some(s) => pocketmq::ManualClock::try_new(epoch_ms(&s, "start")?).py_err()?,
        }))
    }

    /// Moves the clock forward by `seconds` (a number or a timedelta).
    fn advance(&self, seconds: Bound<'_, PyAny>) -> PyResult<()> {
        self.0
            .try_advance_ms(duration_ms(&seconds, "seconds")?)
            .py_err()
    }

    /// Moves the clock to `when` (epoch seconds or a datetime); never backwards.
    fn set(&self, when: Bound<'_, PyAny>) -> PyResult<()> {
        self.0.try_set_ms(epoch_ms(&when, "when")?).py_err()
    }

    /// The clock's time in epoch seconds.
    fn now(&self) -> f64 {
        self.0.now_ms() as f64 / 1000.0
    }

    /// The clock's time in milliseconds since the epoch.
    fn now_ms(&self) -> u64 {
        self.0.now_ms()
    }

    fn __repr__(&self) -> String {
        format!("ManualClock(start={})", self.0.now_ms() as f64 / 1000.0)
    }
}
