//! The in-memory backend: segments are zeroed heap regions, metadata a map. The
//! default on wasm and for `Broker::memory()`; nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Backend, Region};

/// A heap region written through a raw pointer under the engine's lock.
pub(crate) struct MemRegion {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the region is plain memory owned by this struct; concurrent access is
// coordinated by SegmentQueue (appends under the engine lock, reads of written bytes only).
unsafe impl Send for MemRegion {}
// SAFETY: as above.
unsafe impl Sync for MemRegion {}

impl MemRegion {
    pub(crate) fn new(len: usize) -> MemRegion {
        let boxed: Box<[u8]> = vec![0u8; len].into_boxed_slice();
        MemRegion {
            ptr: Box::into_raw(boxed) as *mut u8,
            len,
        }
    }
}

impl Drop for MemRegion {
    fn drop(&mut self) {
        // SAFETY: ptr and len come from Box::into_raw of a boxed slice of len bytes.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.ptr, self.len,
            )))
        };
    }
}

// SAFETY: the pointer is a heap allocation of `len` bytes owned by the region and freed only on drop.
unsafe impl Region for MemRegion {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }
    fn len(&self) -> usize {
        self.len
    }
    fn flush(&self, _from: usize, _to: usize) -> io::Result<()> {
        Ok(())
    }
}

/// Segments and metadata kept in memory.
#[derive(Default)]
pub(crate) struct MemoryBackend {
    segments: Mutex<BTreeMap<(String, u64), Arc<MemRegion>>>,
    meta: Mutex<HashMap<String, Vec<u8>>>,
}

impl Backend for MemoryBackend {
    fn is_persistent(&self) -> bool {
        false
    }
    fn list(&self, dir: &str) -> io::Result<Vec<u64>> {
        Ok(self
            .segments
            .lock()
            .keys()
            .filter(|(d, _)| d == dir)
            .map(|(_, b)| *b)
            .collect())
    }
    fn list_dirs(&self, dir: &str) -> io::Result<Vec<String>> {
        let prefix = format!("{dir}/");
        let mut out: Vec<String> = self
            .segments
            .lock()
            .keys()
            .filter_map(|(d, _)| d.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        out.dedup();
        Ok(out)
    }
    fn open(&self, dir: &str, base: u64, size: usize, create: bool) -> io::Result<Arc<dyn Region>> {
        let mut segs = self.segments.lock();
        let key = (dir.to_string(), base);
        if let Some(r) = segs.get(&key) {
            return Ok(r.clone());
        }
        if !create {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{dir}/{base}"),
            ));
        }
        let r = Arc::new(MemRegion::new(size));
        segs.insert(key, r.clone());
        Ok(r)
    }
    fn remove(&self, dir: &str, base: u64) -> io::Result<()> {
        self.segments.lock().remove(&(dir.to_string(), base));
        Ok(())
    }
    fn read_meta(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.meta.lock().get(name).cloned())
    }
    fn write_meta(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.meta.lock().insert(name.to_string(), data.to_vec());
        Ok(())
    }
    fn remove_meta(&self, name: &str) -> io::Result<()> {
        self.meta.lock().remove(name);
        Ok(())
    }
    fn disk_usage(&self) -> Option<f64> {
        None
    }

    fn default_segment_size(&self) -> usize {
        16 << 20
    }
}
