//! The store's small metadata files (topics, offsets, cursors, checkpoints): pretty
//! JSON a person can read, replaced atomically through the backend.

use std::io;

use serde::{Deserialize, Serialize};

use super::Backend;
use crate::{Error, Result};

/// Reads `name`, if it exists; unreadable JSON is `StoreCorrupted`.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(
    backend: &dyn Backend,
    name: &str,
) -> Result<Option<T>> {
    match backend.read_meta(name)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::StoreCorrupted(format!("{name}: {e}"))),
    }
}

/// Replaces `name` with `value`.
pub(crate) fn write_json<T: Serialize>(backend: &dyn Backend, name: &str, value: &T) -> Result<()> {
    backend.write_meta(name, &to_json(value)?)?;
    Ok(())
}

/// A metadata file's contents: pretty JSON, readable by a person.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::StoreCorrupted(e.to_string()))
}

/// The engine's error for a failed store operation: data that cannot be read back
/// as a store is `StoreCorrupted`, a full disk `DiskFull`, anything else an I/O error.
pub(crate) fn store_err(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::InvalidData {
        Error::StoreCorrupted(e.to_string())
    } else {
        Error::from(e)
    }
}
