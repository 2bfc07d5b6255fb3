//! Business outcomes as the protocol reports them: every response carries a
//! `Status{code, message}` while the gRPC status stays OK (server-mode.md §2.1), and
//! clients map the code to an exception. `Refusal` is a failed call on its way to that
//! status; engine errors become one here, once, with an exhaustive match on
//! `ErrorKind`, so a new kind of engine error does not compile until it has a code.

use pocketmq::{Error, ErrorKind};

use crate::proto::{Code, Status};

/// The status of a successful call.
pub(crate) fn ok() -> Status {
    Status {
        code: Code::Ok as i32,
        message: "OK".to_string(),
    }
}

/// A status with `code` and a message saying why.
pub(crate) fn status(code: Code, message: impl Into<String>) -> Status {
    Status {
        code: code as i32,
        message: message.into(),
    }
}

/// A call refused with a protocol code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: Code,
    pub message: String,
}

impl Refusal {
    pub fn new(code: Code, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// An RPC the server answers but cannot carry out yet.
    pub fn not_implemented(what: &str) -> Refusal {
        Refusal::new(Code::NotImplemented, format!("{what} is not implemented"))
    }

    pub fn to_status(&self) -> Status {
        status(self.code, self.message.clone())
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        let code = match e.kind() {
            // The server validates requests before the engine sees them, so an
            // InvalidArgument here is a rule the server did not know of.
            ErrorKind::InvalidArgument => Code::BadRequest,
            ErrorKind::MessageTooLarge => Code::MessageBodyTooLarge,
            ErrorKind::TopicNotFound => Code::TopicNotFound,
            ErrorKind::InvalidReceiptHandle => Code::InvalidReceiptHandle,
            // The store is shutting down (server draining): clients retry elsewhere.
            ErrorKind::Closed => Code::InternalServerError,
            // RocketMQ's broker answers SERVICE_NOT_AVAILABLE for a full disk.
            ErrorKind::DiskFull => Code::InternalServerError,
            ErrorKind::StoreLocked | ErrorKind::StoreCorrupted | ErrorKind::Io => {
                Code::InternalServerError
            }
        };
        Refusal::new(code, e.to_string())
    }
}

/// The top-level status of per-entry outcomes: their common code, or MULTIPLE_RESULTS.
pub(crate) fn overall<'a>(mut statuses: impl Iterator<Item = Option<&'a Status>>) -> Status {
    let first = statuses.next().flatten().cloned().unwrap_or_else(ok);
    if statuses.all(|s| s.map(|s| s.code) == Some(first.code)) {
        first
    } else {
        status(Code::MultipleResults, "the entries had different outcomes")
    }
}

/// The outcome of one call's work.
pub(crate) type Outcome<T> = Result<T, Refusal>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_get_protocol_codes() {
        let r = Refusal::from(Error::MessageTooLarge { size: 9, limit: 8 });
        assert_eq!(r.code, Code::MessageBodyTooLarge);
        let r = Refusal::from(Error::TopicNotFound("t".into()));
        assert_eq!(r.code, Code::TopicNotFound);
        let r = Refusal::from(Error::Closed);
        assert_eq!(r.code, Code::InternalServerError);
        assert!(!r.message.is_empty());
        assert_eq!(r.to_status().code, Code::InternalServerError as i32);
    }

    #[test]
    fn overall_status_is_common_or_multiple() {
        let ok = ok();
        let bad = status(Code::InvalidReceiptHandle, "x");
        assert_eq!(
            overall([Some(&ok), Some(&ok)].into_iter()).code,
            Code::Ok as i32
        );
        assert_eq!(
            overall([Some(&ok), Some(&bad)].into_iter()).code,
            Code::MultipleResults as i32
        );
    }
}
