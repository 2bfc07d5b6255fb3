//! `Producer`: `send` and `send_batch` with keyword-only options.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};

use crate::convert::{body, duration_ms, epoch_ms, to_u32, SendOptions};
use crate::errors::{invalid, IntoPyResult};
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

    #[pyo3(signature = (topic, body, *, tags=None, keys=None, properties=None, sharding_key=None, queue_id=None, delay_level=None, deliver_at=None, delay=None))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        py: Python<'_>,
        topic: &str,
        body: &Bound<'_, PyAny>,
        tags: Option<String>,
        keys: Option<Bound<'_, PyAny>>,
        properties: Option<Bound<'_, PyAny>>,
        sharding_key: Option<String>,
        queue_id: Option<i64>,
        delay_level: Option<i64>,
        deliver_at: Option<Bound<'_, PyAny>>,
        delay: Option<Bound<'_, PyAny>>,
    ) -> PyResult<SendResult> {
        let opts = SendOptions {
            tags,
            keys,
            properties,
            sharding_key,
            queue_id,
        };
        let mut b = opts.builder(topic, crate::convert::body(body)?)?;
        let given = [delay_level.is_some(), deliver_at.is_some(), delay.is_some()];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(invalid(
                "give at most one of delay_level, deliver_at and delay",
            ));
        }
        if let Some(level) = delay_level {
            b = b.delay_level(to_u32(level, "delay_level")?);
        }
        if let Some(at) = &deliver_at {
            b = b.deliver_at_ms(epoch_ms(at, "deliver_at")?);
        }
        if let Some(d) = &delay {
            b = b.delay_ms(duration_ms(d, "delay")?);
        }
        let msg = b.build();
        let result = py.detach(|| self.0.send(msg)).py_err()?;
        Ok(SendResult(result))
    }

    /// Sends several bodies to one topic as one append; the options apply to each.
    #[pyo3(signature = (topic, bodies, *, tags=None, keys=None, properties=None, sharding_key=None, queue_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn send_batch(
        &self,
        py: Python<'_>,
        topic: &str,
        bodies: &Bound<'_, PyAny>,
        tags: Option<String>,
        keys: Option<Bound<'_, PyAny>>,
        properties: Option<Bound<'_, PyAny>>,
        sharding_key: Option<String>,
        queue_id: Option<i64>,
    ) -> PyResult<Vec<SendResult>> {
        if bodies.is_instance_of::<PyBytes>()
            || bodies.is_instance_of::<PyString>()
            || bodies.is_instance_of::<PyByteArray>()
        {
            return Err(PyTypeError::new_err(
                "bodies must be a list of bytes or str, not a single body",
            ));
        }
        let opts = SendOptions {
            tags,
            keys,
            properties,
            sharding_key,
            queue_id,
        };
        let iter = bodies
            .try_iter()
            .map_err(|_| PyTypeError::new_err("bodies must be a list of bytes or str"))?;
        let mut msgs = Vec::new();
        for item in iter {
            msgs.push(opts.builder(topic, body(&item?)?)?.build());
        }
        let results = py.detach(|| self.0.send_batch(msgs)).py_err()?;
        Ok(results.into_iter().map(SendResult).collect())
    }

    fn __repr__(&self) -> String {
        format!("Producer(group='{}')", self.0.group())
    }
}
