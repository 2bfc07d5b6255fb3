//! The in-memory backend: segments are zeroed memory (commit log segments anonymous
//! mappings, the next one faulted in ahead on a background thread; consume queue
//! segments and everything on wasm heap allocations), metadata a map. The default on
//! wasm and for `Broker::memory()`; nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Backend, Region};

/// A zeroed region of memory written through a raw pointer under the engine's lock:
/// an anonymous mapping when it is large (so it can be faulted in ahead, see
/// [`MemoryBackend::prepare`]), else a heap allocation.
pub(crate) struct MemRegion {
    ptr: *mut u8,
    len: usize,
    /// The mapping `ptr` points into; `None`: `ptr` is a heap allocation of `len`
    /// bytes (alignment 1), or dangling when `len` is 0.
    #[cfg(not(target_arch = "wasm32"))]
    map: Option<memmap2::MmapRaw>,
}

// SAFETY: the region is plain memory owned by this struct; concurrent access is
// coordinated by SegmentQueue (appends under the engine lock, reads of written bytes only).
unsafe impl Send for MemRegion {}
// SAFETY: as above.
unsafe impl Sync for MemRegion {}

/// Regions from this size on (commit log segments, not consume queues) are mappings.
#[cfg(not(target_arch = "wasm32"))]
const MAPPED_FROM: usize = 4 << 20;

/// On wasm, all of a store's regions together stay below this many bytes, leaving
/// the rest of the 4 GiB address space to everything else the engine and its
/// callers allocate: past it an append is refused (`DiskFull`) instead of the
/// engine trapping on an allocation that cannot be served.
#[cfg(target_arch = "wasm32")]
const WASM_REGIONS_MAX: usize = 3 << 30;
#[cfg(target_arch = "wasm32")]
static WASM_REGION_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn out_of_memory(len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        format!(
            "no memory left for a segment of {len} bytes: the store is full (on wasm, the \
             segments of every broker in this instance share 3 GiB; memory comes back as \
             retention drops whole segments past file_reserved_time, or as a broker closes; \
             deleting a topic frees nothing before that)"
        ),
    )
}

impl MemRegion {
    /// A zeroed region of `len` bytes; `StorageFull` when the memory cannot be had.
    pub(crate) fn new(len: usize) -> io::Result<MemRegion> {
        #[cfg(not(target_arch = "wasm32"))]
        if len >= MAPPED_FROM {
            if let Ok(map) = memmap2::MmapOptions::new().len(len).map_anon() {
                let map = memmap2::MmapRaw::from(map);
                return Ok(MemRegion {
                    ptr: map.as_mut_ptr(),
                    len,
                    map: Some(map),
                });
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            use std::sync::atomic::Ordering;
            let total = WASM_REGION_BYTES.fetch_add(len, Ordering::Relaxed) + len;
            if total > WASM_REGIONS_MAX {
                WASM_REGION_BYTES.fetch_sub(len, Ordering::Relaxed);
                return Err(out_of_memory(len));
            }
        }
        let ptr = if len == 0 {
            std::ptr::NonNull::<u8>::dangling().as_ptr()
        } else {
            let layout = std::alloc::Layout::array::<u8>(len).map_err(|_| out_of_memory(len))?;
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
            if ptr.is_null() {
                #[cfg(target_arch = "wasm32")]
                WASM_REGION_BYTES.fetch_sub(len, std::sync::atomic::Ordering::Relaxed);
                return Err(out_of_memory(len));
            }
            ptr
        };
        Ok(MemRegion {
            ptr,
            len,
            #[cfg(not(target_arch = "wasm32"))]
            map: None,
        })
    }

    /// A region whose pages are already faulted in, writable: its writer takes no
    /// page fault (each costs microseconds, the kernel zeroing the page).
    #[cfg(not(target_arch = "wasm32"))]
    fn populated(len: usize) -> io::Result<MemRegion> {
        let r = MemRegion::new(len)?;
        if let Some(map) = &r.map {
            #[cfg(target_os = "linux")]
            let _ = map.advise(memmap2::Advice::PopulateWrite);
        }
        Ok(r)
    }
}

impl Drop for MemRegion {
    fn drop(&mut self) {
        #[cfg(not(target_arch = "wasm32"))]
        if self.map.is_some() {
            return; // the mapping unmaps itself
        }
        #[cfg(target_arch = "wasm32")]
        WASM_REGION_BYTES.fetch_sub(self.len, std::sync::atomic::Ordering::Relaxed);
        if self.len == 0 {
            return;
        }
        // SAFETY: without a mapping, ptr comes from alloc_zeroed with this layout
        // (which `new` checked).
        unsafe {
            std::alloc::dealloc(
                self.ptr,
                std::alloc::Layout::from_size_align_unchecked(self.len, 1),
            )
        };
    }
}

// SAFETY: the pointer is `len` bytes of memory (a mapping or a heap allocation) owned by the region and freed only on drop.
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
    /// The next segment, made ready on a background thread ([`Backend::prepare`]).
    #[cfg(not(target_arch = "wasm32"))]
    ahead: Arc<Mutex<Ahead>>,
}

/// A segment being made ready ahead of its first write: one at a time.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Default)]
struct Ahead {
    /// The segment asked for; cleared when `open` needed it before it was ready.
    key: Option<(String, u64)>,
    /// The ready region of `key`.
    region: Option<MemRegion>,
    busy: bool,
}

impl MemoryBackend {
    /// The segment `key` made ready ahead, if it is ready and of `size` bytes; if it
    /// is not ready, the preparing thread sees the key gone and drops what it makes.
    #[cfg(not(target_arch = "wasm32"))]
    fn take_ahead(&self, key: &(String, u64), size: usize) -> Option<MemRegion> {
        let mut ahead = self.ahead.lock();
        if ahead.key.as_ref() != Some(key) {
            return None;
        }
        ahead.key = None;
        ahead.region.take().filter(|r| r.len == size)
    }

    /// Nothing is made ready ahead without threads.
    #[cfg(target_arch = "wasm32")]
    fn take_ahead(&self, _key: &(String, u64), _size: usize) -> Option<MemRegion> {
        None
    }
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
        let r = match self.take_ahead(&key, size) {
            Some(r) => r,
            None => MemRegion::new(size)?,
        };
        let r = Arc::new(r);
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

    /// Faults the next commit log segment in on another thread, as the file store
    /// does its files: the writer then finds its pages ready.
    #[cfg(not(target_arch = "wasm32"))]
    fn prepare(&self, dir: &str, base: u64, size: usize) {
        let key = (dir.to_string(), base);
        // Never the two locks at once here: `open` takes `segments`, then `ahead`.
        if self.segments.lock().contains_key(&key) {
            return;
        }
        {
            let mut ahead = self.ahead.lock();
            if ahead.busy || ahead.key.as_ref() == Some(&key) {
                return;
            }
            *ahead = Ahead {
                key: Some(key.clone()),
                region: None,
                busy: true,
            };
        }
        let ahead = self.ahead.clone();
        let spawned = crate::runtime::spawn_task("pocketmq-allocate", move || {
            let region = MemRegion::populated(size).ok();
            let mut a = ahead.lock();
            a.busy = false;
            if a.key.as_ref() == Some(&key) {
                a.region = region;
            }
        });
        if spawned.is_none() {
            *self.ahead.lock() = Ahead::default();
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    const SEG: usize = 8 << 20;

    fn zeroed(r: &dyn Region) -> bool {
        // SAFETY: the region is r.len() bytes of initialised memory, not written here.
        let bytes = unsafe { std::slice::from_raw_parts(r.as_ptr(), r.len()) };
        bytes.iter().all(|b| *b == 0)
    }

    /// Waits (up to a minute) until no segment is being prepared.
    fn settled(b: &MemoryBackend) {
        for _ in 0..60_000 {
            if !b.ahead.lock().busy {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("the segment was never prepared");
    }

    #[test]
    fn a_segment_prepared_ahead_is_the_one_opened_zeroed_and_then_kept() {
        let b = MemoryBackend::default();
        b.prepare("commitlog", SEG as u64, SEG);
        settled(&b);
        assert!(b.ahead.lock().region.is_some(), "prepared ahead");
        let r = b.open("commitlog", SEG as u64, SEG, true).unwrap();
        assert_eq!(r.len(), SEG);
        assert!(zeroed(&*r));
        assert!(
            b.ahead.lock().region.is_none(),
            "handed over, not kept twice"
        );
        // SAFETY: the region is SEG bytes; nothing else touches it in this test.
        unsafe { *r.as_ptr().add(SEG - 1) = 7 };
        let again = b.open("commitlog", SEG as u64, SEG, false).unwrap();
        assert_eq!(again.as_ptr(), r.as_ptr(), "the same segment");
        // Preparing a segment that exists already does nothing.
        b.prepare("commitlog", SEG as u64, SEG);
        assert!(!b.ahead.lock().busy);
    }

    #[test]
    fn a_segment_opened_while_it_is_being_prepared_is_a_fresh_one() {
        let b = MemoryBackend::default();
        b.prepare("commitlog", 0, SEG);
        let r = b.open("commitlog", 0, SEG, true).unwrap();
        assert!(zeroed(&*r));
        settled(&b);
        // Whichever came first, exactly one region serves the segment and nothing is
        // left waiting for an open that already happened.
        let a = b.ahead.lock();
        assert!(a.region.is_none() && a.key.is_none());
        drop(a);
        assert_eq!(
            b.open("commitlog", 0, SEG, false).unwrap().as_ptr(),
            r.as_ptr()
        );
    }
}
