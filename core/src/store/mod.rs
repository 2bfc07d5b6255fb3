//! Segmented append-only storage (RocketMQ's "mapped file queue") over a pluggable
//! backend. A `Backend` hands out fixed-size zero-filled segments named by their
//! starting offset, and small metadata files written atomically. `SegmentQueue` is a
//! log made of such segments: append at the end, read anywhere still retained,
//! flush, truncate after recovery, drop whole old segments for retention.
//!
//! Invariants: segments of one queue are contiguous and all the same size; bytes
//! below `write_pos` never change except by `truncate`, which zeroes what it cuts,
//! so no stale record can reappear after a later crash.

pub(crate) mod host;
pub(crate) mod memory;
pub(crate) mod meta;
mod segment;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod file;

use std::io;
use std::sync::Arc;

pub(crate) use segment::{FlushJob, SegmentQueue};

use crate::{BrokerConfig, Result};

/// A segment in memory or mapped from a file: a fixed-size byte region that
/// `SegmentQueue` reads and writes through a raw pointer.
///
/// # Safety
/// An implementor guarantees that `as_ptr()` returns the same pointer for the
/// region's whole life, valid for reads and writes of `len()` bytes, and that the
/// memory stays allocated (never moved, shrunk or unmapped) until the region is
/// dropped, whatever `flush` and `release_range` do (they may drop pages from the
/// resident set but not the data). The region itself never writes to that memory;
/// `SegmentQueue` serialises writers and writes only above what it has handed to
/// readers.
pub(crate) unsafe trait Region: Send + Sync {
    /// The start of the region; valid for `len()` bytes while the region lives.
    fn as_ptr(&self) -> *mut u8;
    fn len(&self) -> usize;
    /// Forces `[from, to)` to durable storage.
    fn flush(&self, from: usize, to: usize) -> io::Result<()>;
    /// Writes `[from, to)` out like `flush` (it survives this process once this
    /// returns) but may leave forcing it to durable storage under way: false then,
    /// and the backend's [`Backend::sync_pending`] finishes it. By default `flush`.
    fn flush_later(&self, from: usize, to: usize) -> io::Result<bool> {
        self.flush(from, to).map(|()| true)
    }
    /// Gives `[from, to)` disk blocks, so that writes there through the mapping
    /// cannot fault for want of space (a full disk fails here, with nothing
    /// written). Returns the offset up to which the region is allocated now (at
    /// least `to`). A region allocated whole when made returns its length.
    fn allocate(&self, _from: usize, _to: usize) -> io::Result<usize> {
        Ok(self.len())
    }
    /// Drops the region's pages from this process's resident set (the data stays).
    fn release(&self) {
        self.release_range(0, self.len());
    }
    /// Drops the pages of `[from, to)` from the resident set (the data stays).
    fn release_range(&self, _from: usize, _to: usize) {}
}

/// Where segments and metadata live.
pub(crate) trait Backend: Send + Sync {
    /// Whether data survives the process.
    fn is_persistent(&self) -> bool;
    /// Starting offsets of the segments in `dir`, ascending.
    fn list(&self, dir: &str) -> io::Result<Vec<u64>>;
    /// Subdirectories of `dir`.
    fn list_dirs(&self, dir: &str) -> io::Result<Vec<String>>;
    /// Opens the segment `base` of `dir`, creating it zero-filled with `size` bytes
    /// when `create` is set. A segment of the wrong size is `StoreCorrupted`-worthy.
    fn open(&self, dir: &str, base: u64, size: usize, create: bool) -> io::Result<Arc<dyn Region>>;
    /// The length of segment `base` of `dir`; by default it is opened for it (a
    /// backend that reads a segment whole on open answers without reading it).
    fn segment_len(&self, dir: &str, base: u64) -> io::Result<usize> {
        self.open(dir, base, 0, false).map(|r| r.len())
    }
    fn remove(&self, dir: &str, base: u64) -> io::Result<()>;
    /// Removes `dir` with every segment under it (a deleted topic's queues); a missing
    /// directory is fine. By default removes the segments one by one.
    fn remove_dir(&self, dir: &str) -> io::Result<()> {
        for sub in self.list_dirs(dir)? {
            self.remove_dir(&format!("{dir}/{sub}"))?;
        }
        for base in self.list(dir)? {
            self.remove(dir, base)?;
        }
        Ok(())
    }
    fn read_meta(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Replaces `name` atomically (temp file, fsync, rename).
    fn write_meta(&self, name: &str, data: &[u8]) -> io::Result<()>;
    fn remove_meta(&self, name: &str) -> io::Result<()>;
    /// The used fraction of the disk holding the store, if known.
    fn disk_usage(&self) -> Option<f64>;
    /// Makes durable what [`Region::flush_later`]s left under way.
    fn sync_pending(&self) -> io::Result<()> {
        Ok(())
    }
    /// Gives up ownership of the store (close); the data stays readable here.
    fn unlock(&self) {}
    /// Lets go of what the backend itself holds of a closed store (a memory store's
    /// segments, which nothing can read any more).
    fn release(&self) {}
    /// The CommitLog segment size when the config names none.
    fn default_segment_size(&self) -> usize;
    /// Whether an open segment takes memory for its whole length (held in memory, not
    /// a file's pages mapped as they are touched): a store here makes its
    /// ConsumeQueue segments small, as every queue holds one.
    fn holds_segments_whole(&self) -> bool {
        false
    }
    /// Gets segment `base` of `dir` ready ahead of time, in the background, so the
    /// writer's first touch of each page is cheap (RocketMQ's allocate service).
    fn prepare(&self, _dir: &str, _base: u64, _size: usize) {}
}

/// The 20-digit name of the segment starting at `base`.
pub(crate) fn segment_name(base: u64) -> String {
    format!("{base:020}")
}

/// The backend a config names: a host's file system (wasm under Node), files, or
/// memory.
pub(crate) fn open_backend(config: &BrokerConfig) -> Result<Arc<dyn Backend>> {
    if let (Some(path), Some(fs)) = (&config.path, &config.host_fs) {
        let root = path.display().to_string();
        return Ok(Arc::new(host::HostBackend::open(fs.clone(), &root)?));
    }
    match &config.path {
        None => Ok(Arc::new(memory::MemoryBackend::default())),
        #[cfg(not(target_arch = "wasm32"))]
        Some(path) => Ok(Arc::new(file::FileBackend::open(path)?)),
        #[cfg(target_arch = "wasm32")]
        Some(_) => Err(crate::Error::invalid(
            "a file store needs a native target or a host file system (Node); \
             open a memory store here",
        )),
    }
}

/// An `InvalidData` error: bytes that cannot be read back as a store.
pub(crate) fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}
