//! The one error type of the engine. Every fallible call returns `Result<_, Error>`;
//! each binding maps `ErrorKind` to its language with one exhaustive `match`.

/// Everything that can go wrong in a call into the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value the caller passed is out of range or malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A message body (or encoded record) is over the configured limit.
    #[error("message too large: {size} bytes, the limit is {limit}")]
    MessageTooLarge {
        /// The size refused, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The topic does not exist and topics are not created on first send.
    #[error("topic not found: {0}")]
    TopicNotFound(String),
    /// Another process owns the store directory (or another broker of this process).
    #[error("store {path} is locked by process {pid}{}", held_here(*pid))]
    StoreLocked {
        /// The store directory.
        path: String,
        /// The process holding it (0 when unknown).
        pid: u32,
    },
    /// The store's files cannot be read back as a store.
    #[error("store corrupted: {0}")]
    StoreCorrupted(String),
    /// The broker, producer or consumer was closed.
    #[error("closed")]
    Closed,
    /// A simple consumer's receipt handle that is not current: from an earlier
    /// delivery (expired, or replaced by a change of invisibility), already acked,
    /// of another group, or never issued.
    #[error("invalid receipt handle: {0}")]
    InvalidReceiptHandle(String),
    /// The operating system refused a file operation.
    #[error("I/O error: {0}")]
    Io(std::io::Error),
    /// A write was refused because the disk is full, or used above
    /// `disk_max_used_ratio`: nothing was written and the store stays usable.
    #[error("disk full: {0}")]
    DiskFull(String),
    /// A broker used in a process forked from the one that opened it: it is closed
    /// there (kind `Closed`), and never writes.
    #[error("closed: this broker was opened by process {owner}; open a new Broker in the child")]
    Forked {
        /// The process that opened the broker.
        owner: u32,
    },
}

/// What a `StoreLocked` message adds when the holder is this process: another broker
/// of its own (a notebook cell run twice, a second `Broker(path)` in a service) has the
/// store open, which a second process can never be told to fix.
fn held_here(pid: u32) -> &'static str {
    if pid != 0 && pid == crate::runtime::process_id() {
        " (this process: another broker in it has the store open; close() that one first, \
         or share it)"
    } else {
        ""
    }
}

impl From<std::io::Error> for Error {
    /// A full disk (or quota) is `DiskFull`; anything else an I/O error.
    fn from(e: std::io::Error) -> Error {
        use std::io::ErrorKind as K;
        if matches!(e.kind(), K::StorageFull | K::QuotaExceeded) {
            Error::DiskFull(e.to_string())
        } else {
            Error::Io(e)
        }
    }
}

/// The kind of an [`Error`], without its details: what bindings match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// See [`Error::InvalidArgument`].
    InvalidArgument,
    /// See [`Error::MessageTooLarge`].
    MessageTooLarge,
    /// See [`Error::TopicNotFound`].
    TopicNotFound,
    /// See [`Error::StoreLocked`].
    StoreLocked,
    /// See [`Error::StoreCorrupted`].
    StoreCorrupted,
    /// See [`Error::Closed`] (also [`Error::Forked`]).
    Closed,
    /// See [`Error::InvalidReceiptHandle`].
    InvalidReceiptHandle,
    /// See [`Error::Io`].
    Io,
    /// See [`Error::DiskFull`].
    DiskFull,
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::MessageTooLarge { .. } => ErrorKind::MessageTooLarge,
            Error::TopicNotFound(_) => ErrorKind::TopicNotFound,
            Error::StoreLocked { .. } => ErrorKind::StoreLocked,
            Error::StoreCorrupted(_) => ErrorKind::StoreCorrupted,
            Error::Closed | Error::Forked { .. } => ErrorKind::Closed,
            Error::InvalidReceiptHandle(_) => ErrorKind::InvalidReceiptHandle,
            Error::Io(_) => ErrorKind::Io,
            Error::DiskFull(_) => ErrorKind::DiskFull,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidArgument(msg.into())
    }
}

impl ErrorKind {
    /// The kind's name, as the bindings use it: JS's `code` (Python's exception
    /// names, without "Error", for the kinds that predate the upper-case codes).
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "InvalidArgument",
            ErrorKind::MessageTooLarge => "MessageTooLarge",
            ErrorKind::TopicNotFound => "TopicNotFound",
            ErrorKind::StoreLocked => "StoreLocked",
            ErrorKind::StoreCorrupted => "StoreCorrupted",
            ErrorKind::Closed => "Closed",
            ErrorKind::InvalidReceiptHandle => "INVALID_RECEIPT_HANDLE",
            ErrorKind::Io => "Io",
            ErrorKind::DiskFull => "DISK_FULL",
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
