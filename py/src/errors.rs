//! The one mapping from the engine's `Error` to Python exceptions. The exception
//! classes live in `pocketmq._errors` (plain Python, so `InvalidArgument` can also
//! be a `ValueError`, and `IoError` and `DiskFull` `OSError`s); this module only picks the class.

use pyo3::prelude::*;

use pocketmq::{Error, ErrorKind};

pyo3::import_exception!(pocketmq._errors, InvalidArgument);
pyo3::import_exception!(pocketmq._errors, MessageTooLarge);
pyo3::import_exception!(pocketmq._errors, TopicNotFound);
pyo3::import_exception!(pocketmq._errors, StoreLocked);
pyo3::import_exception!(pocketmq._errors, StoreCorrupted);
pyo3::import_exception!(pocketmq._errors, Closed);
pyo3::import_exception!(pocketmq._errors, InvalidReceiptHandle);
pyo3::import_exception!(pocketmq._errors, IoError);
pyo3::import_exception!(pocketmq._errors, DiskFull);

/// The Python exception for an engine error. One exhaustive match: a new
/// `ErrorKind` does not compile until it has a Python class.
pub fn to_py(err: Error) -> PyErr {
    let msg = err.to_string();
    let e = kind_to_py(err.kind(), msg);
    if let Error::StoreLocked { path, pid } = &err {
        // The holder, for callers that want more than the message.
        Python::attach(|py| {
            let value = e.value(py);
            let _ = value.setattr("pid", *pid);
            let _ = value.setattr("path", path.as_str());
        });
    }
    e
}

/// The Python exception of an error kind, with `msg`.
pub fn kind_to_py(kind: ErrorKind, msg: String) -> PyErr {
    match kind {
        ErrorKind::InvalidArgument => InvalidArgument::new_err(msg),
        ErrorKind::MessageTooLarge => MessageTooLarge::new_err(msg),
        ErrorKind::TopicNotFound => TopicNotFound::new_err(msg),
        ErrorKind::StoreLocked => StoreLocked::new_err(msg),
        ErrorKind::StoreCorrupted => StoreCorrupted::new_err(msg),
        ErrorKind::Closed => Closed::new_err(msg),
        ErrorKind::InvalidReceiptHandle => InvalidReceiptHandle::new_err(msg),
        ErrorKind::Io => IoError::new_err(msg),
        ErrorKind::DiskFull => DiskFull::new_err(msg),
    }
}

/// An argument the binding cannot translate because its value is out of range.
pub fn invalid(msg: impl Into<String>) -> PyErr {
    to_py(Error::InvalidArgument(msg.into()))
}

/// Converts a core result, mapping its error.
pub trait IntoPyResult<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for pocketmq::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
