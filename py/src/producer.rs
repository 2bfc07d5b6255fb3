//! `Producer`: `send` and `send_batch` with keyword-only options.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};

use crate::convert::{self, message};
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

    /// Stores one message; the options are the engine's send options by name.
    #[pyo3(signature = (topic, body, **options))]
    fn send(
        &self,
        py: Python<'_>,
        topic: &str,
        body: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<SendResult> {
        let msg = message(topic, convert::body(body)?, options, "send()")?;
        let result = py.detach(|| self.0.send(msg)).py_err()?;
        Ok(SendResult(result))
    }

    /// Sends several bodies to one topic as one append; the options apply to each,
    /// but `dedup_ids`, one per body.
    #[pyo3(signature = (topic, bodies, *, dedup_ids = None, **options))]
    fn send_batch(
        &self,
        py: Python<'_>,
        topic: &str,
        bodies: &Bound<'_, PyAny>,
        dedup_ids: Option<Vec<Option<String>>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Vec<SendResult>> {
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
        for item in iter {
            msgs.push(message(
                topic,
                convert::body(&item?)?,
                options,
                "send_batch()",
            )?);
        }
        if let Some(ids) = dedup_ids {
            if ids.len() != msgs.len() {
                return Err(pocketmq::Error::InvalidArgument(format!(
                    "dedup_ids has {} ids for {} bodies",
                    ids.len(),
                    msgs.len()
                )))
                .py_err();
            }
            for (m, id) in msgs.iter_mut().zip(ids) {
                m.dedup_id = id;
            }
        }
        let results = py.detach(|| self.0.send_batch(msgs)).py_err()?;
        Ok(results.into_iter().map(SendResult).collect())
    }

    fn __repr__(&self) -> String {
        format!("Producer(group='{}')", self.0.group())
    }
}
