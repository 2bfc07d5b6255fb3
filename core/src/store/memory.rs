//! The in-memory backend: segments are zeroed memory (anonymous mappings, the next
//! one of the commit log and of each consume queue faulted in ahead on a background
//! thread; small ones and everything on wasm heap allocations), metadata a map. The
//! default on wasm and for `Broker::memory()`; nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Backend, Region};

/// A zeroed region of memory written through a raw pointer under the engine's lock:
/// an anonymous mapping when it is large (so it can be faulted in ahead, see
/// [`MemoryBackend::prepare`]), else a heap allocation. On wasm a region of whole
/// pages or more is pages of its own (see `pages`).
pub(crate) struct MemRegion {
    ptr: *mut u8,
    len: usize,
    /// The mapping `ptr` points into; `None`: `ptr` is a heap allocation of `len`
    /// bytes (alignment 1), or dangling when `len` is 0.
    #[cfg(not(target_arch = "wasm32"))]
    map: Option<memmap2::MmapRaw>,
    /// `ptr` is from `pages::take`, not the heap.
    #[cfg(target_arch = "wasm32")]
    paged: bool,
}

/// Regions of whole wasm pages (64 KiB) taken straight from `memory.grow`. New pages
/// are zero and untouched, so the host commits them only as they are written: the
/// heap's `alloc_zeroed` clears every byte it hands out, which made a queue's 320 KiB
/// segment resident for its first entry (1.3 GiB for 4,000 queues of one message
/// each). Pages given back are kept for the next region, merged with their
/// neighbours; those of them that hold anything but zeros are noted, and only those
/// are cleared when they are taken again, so the untouched rest stays uncommitted.
/// (wasm32-unknown-unknown has one thread; the lock is for the type system.)
#[cfg(target_arch = "wasm32")]
mod pages {
    use std::collections::BTreeMap;

    pub const PAGE: usize = 64 << 10;
    /// The least memory grows by.
    const GROW: usize = 16 << 20;

    struct Pages {
        /// Free runs: start address -> length in bytes.
        free: BTreeMap<usize, usize>,
        /// A bit per page of memory: set when a free page may hold anything but zeros.
        dirty: Vec<u64>,
    }

    static PAGES: parking_lot::Mutex<Pages> = parking_lot::const_mutex(Pages {
        free: BTreeMap::new(),
        dirty: Vec::new(),
    });

    impl Pages {
        fn bit(&mut self, page: usize) -> (&mut u64, u64) {
            if self.dirty.len() <= page / 64 {
                self.dirty.resize(page / 64 + 1, 0);
            }
            (&mut self.dirty[page / 64], 1 << (page % 64))
        }

        /// Adds `[at, at + n)` to the free runs, merged with its neighbours.
        fn add_free(&mut self, mut at: usize, mut n: usize) {
            if let Some(after) = self.free.remove(&(at + n)) {
                n += after;
            }
            let before = self.free.range(..at).next_back().map(|(a, l)| (*a, *l));
            if let Some((b, bl)) = before.filter(|(b, bl)| b + bl == at) {
                self.free.remove(&b);
                at = b;
                n += bl;
            }
            self.free.insert(at, n);
        }
    }

    /// `len` bytes (rounded up to whole pages), zeroed; None when memory cannot grow.
    pub fn take(len: usize) -> Option<*mut u8> {
        let len = len.div_ceil(PAGE) * PAGE;
        let mut p = PAGES.lock();
        let found = p
            .free
            .iter()
            .find(|(_, n)| **n >= len)
            .map(|(a, n)| (*a, *n));
        let Some((at, n)) = found else {
            // Memory grows by at least GROW at a time (the rest is free, and zero):
            // growing is slow in JavaScript engines, and a store opens thousands of
            // small segments.
            let grow = len.max(GROW);
            let old = match core::arch::wasm32::memory_grow(0, grow / PAGE) {
                usize::MAX => match core::arch::wasm32::memory_grow(0, len / PAGE) {
                    usize::MAX => return None,
                    old => return Some((old * PAGE) as *mut u8),
                },
                old => old * PAGE,
            };
            if grow > len {
                p.add_free(old + len, grow - len);
            }
            return Some(old as *mut u8);
        };
        p.free.remove(&at);
        if n > len {
            p.free.insert(at + len, n - len);
        }
        for page in at / PAGE..(at + len) / PAGE {
            let (word, bit) = p.bit(page);
            if *word & bit != 0 {
                *word &= !bit;
                // SAFETY: a free page this module took from memory.grow, which no
                // region holds.
                unsafe { std::ptr::write_bytes((page * PAGE) as *mut u8, 0, PAGE) };
            }
        }
        Some(at as *mut u8)
    }

    /// Gives back what `take(len)` returned, noting which of its pages were written
    /// (reading a page never written commits nothing).
    pub fn give_back(ptr: *mut u8, len: usize) {
        let (at, n) = (ptr as usize, len.div_ceil(PAGE) * PAGE);
        let mut p = PAGES.lock();
        for page in at / PAGE..(at + n) / PAGE {
            // SAFETY: the page is inside the region given back, 8-byte aligned (pages
            // are), and nothing holds it any more.
            let words =
                unsafe { std::slice::from_raw_parts((page * PAGE) as *const u64, PAGE / 8) };
            let written = words.iter().any(|w| *w != 0);
            let (word, bit) = p.bit(page);
            if written {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
        p.add_free(at, n);
    }
}

// SAFETY: the region is plain memory owned by this struct; concurrent access is
// coordinated by SegmentQueue (appends under the engine lock, reads of written bytes only).
unsafe impl Send for MemRegion {}
// SAFETY: as above.
unsafe impl Sync for MemRegion {}

/// Regions from this size on (commit log and consume queue segments) are mappings,
/// which can be faulted in ahead of their writer.
#[cfg(not(target_arch = "wasm32"))]
const MAPPED_FROM: usize = 256 << 10;

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
            if len >= pages::PAGE {
                let Some(ptr) = pages::take(len) else {
                    WASM_REGION_BYTES.fetch_sub(len, Ordering::Relaxed);
                    return Err(out_of_memory(len));
                };
                return Ok(MemRegion {
                    ptr,
                    len,
                    paged: true,
                });
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
            #[cfg(target_arch = "wasm32")]
            paged: false,
        })
    }

    /// Faults a mapped region's pages in, writable, so its writer takes no page fault
    /// (each costs microseconds, the kernel zeroing the page). Safe beside a writer:
    /// a page already in is left as it is, written bytes and all.
    #[cfg(not(target_arch = "wasm32"))]
    fn populate(&self) {
        if let Some(map) = &self.map {
            #[cfg(target_os = "linux")]
            let _ = map.advise(memmap2::Advice::PopulateWrite);
            #[cfg(not(target_os = "linux"))]
            let _ = map;
        }
    }
}

impl Drop for MemRegion {
    fn drop(&mut self) {
        #[cfg(not(target_arch = "wasm32"))]
        if self.map.is_some() {
            return; // the mapping unmaps itself
        }
        #[cfg(target_arch = "wasm32")]
        {
            WASM_REGION_BYTES.fetch_sub(self.len, std::sync::atomic::Ordering::Relaxed);
            if self.paged {
                pages::give_back(self.ptr, self.len);
                return;
            }
        }
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
    /// Segments made ready ahead of their first write ([`Backend::prepare`]).
    #[cfg(not(target_arch = "wasm32"))]
    ahead: Ahead,
}

/// A segment (directory, base) and its size.
#[cfg(not(target_arch = "wasm32"))]
type Job = ((String, u64), usize);

/// The segments asked for ahead: `None` until mapped (see [`Ahead::wanted`]).
#[cfg(not(target_arch = "wasm32"))]
type Wanted = Mutex<HashMap<(String, u64), Option<Arc<MemRegion>>>>;

/// Segments made ready ahead of their first write, by one background thread that
/// lives as long as the backend: the next commit log segment, and each consume
/// queue's next, so no writer zeroes pages in its own page faults.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Default)]
struct Ahead {
    /// Each segment asked for and not yet opened: `None` until it is mapped, then
    /// its region, whose pages may still be being faulted in (which goes on beside
    /// the writer that takes it). `open` removes the entry whatever its state, and
    /// the thread drops what it makes for an entry no longer there.
    wanted: Arc<Wanted>,
    /// The thread's work, started with the first request.
    jobs: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
}

#[cfg(not(target_arch = "wasm32"))]
impl Ahead {
    /// Asks for `key`'s segment; false when no thread can make it.
    fn request(&self, key: (String, u64), size: usize) -> bool {
        let mut jobs = self.jobs.lock();
        if jobs.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            let wanted = self.wanted.clone();
            // Ends when the backend, holding the sender, is dropped.
            let run = move || {
                for (key, size) in rx {
                    Ahead::make(&wanted, key, size);
                }
            };
            if crate::runtime::spawn_task("pocketmq-allocate", run).is_none() {
                return false;
            }
            *jobs = Some(tx);
        }
        jobs.as_ref().is_some_and(|tx| tx.send((key, size)).is_ok())
    }

    /// Maps `key`'s segment and publishes it if it is still wanted, then faults its
    /// pages in.
    fn make(wanted: &Wanted, key: (String, u64), size: usize) {
        if !wanted.lock().contains_key(&key) {
            return;
        }
        let Ok(region) = MemRegion::new(size) else {
            return;
        };
        let region = Arc::new(region);
        match wanted.lock().get_mut(&key) {
            Some(slot) => *slot = Some(region.clone()),
            None => return,
        }
        region.populate();
    }
}

impl MemoryBackend {
    /// The segment `key` made ahead, if it is mapped and of `size` bytes (its pages
    /// perhaps still being faulted in); if it is not mapped yet, the preparing thread
    /// sees the request gone and drops what it makes.
    #[cfg(not(target_arch = "wasm32"))]
    fn take_ahead(&self, key: &(String, u64), size: usize) -> Option<Arc<MemRegion>> {
        self.ahead
            .wanted
            .lock()
            .remove(key)
            .flatten()
            .filter(|r| r.len == size)
    }

    /// Nothing is made ready ahead without threads.
    #[cfg(target_arch = "wasm32")]
    fn take_ahead(&self, _key: &(String, u64), _size: usize) -> Option<Arc<MemRegion>> {
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
            None => Arc::new(MemRegion::new(size)?),
        };
        segs.insert(key, r.clone());
        Ok(r)
    }
    fn remove(&self, dir: &str, base: u64) -> io::Result<()> {
        self.segments.lock().remove(&(dir.to_string(), base));
        Ok(())
    }
    fn remove_dir(&self, dir: &str) -> io::Result<()> {
        let prefix = format!("{dir}/");
        let inside = |d: &String| d == dir || d.starts_with(&prefix);
        self.segments.lock().retain(|(d, _), _| !inside(d));
        #[cfg(not(target_arch = "wasm32"))]
        self.ahead.wanted.lock().retain(|(d, _), _| !inside(d));
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

    fn release(&self) {
        self.segments.lock().clear();
        self.meta.lock().clear();
        #[cfg(not(target_arch = "wasm32"))]
        self.ahead.wanted.lock().clear();
    }

    fn holds_segments_whole(&self) -> bool {
        true
    }

    /// Maps the segment `base` of `dir` and faults it in on another thread, as the
    /// file store does the commit log's files: its writer then finds its pages ready.
    #[cfg(not(target_arch = "wasm32"))]
    fn prepare(&self, dir: &str, base: u64, size: usize) {
        let key = (dir.to_string(), base);
        // Never the two locks at once here: `open` takes `segments`, then `wanted`.
        if self.segments.lock().contains_key(&key) {
            return;
        }
        {
            let mut wanted = self.ahead.wanted.lock();
            if wanted.contains_key(&key) {
                return;
            }
            wanted.insert(key.clone(), None);
        }
        if !self.ahead.request(key.clone(), size) {
            self.ahead.wanted.lock().remove(&key);
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

    /// Waits (up to a minute) until the segment `key` asked for is mapped and
    /// published; every segment asked for before it is then finished, faulted in
    /// too (one thread takes the requests in order).
    fn published(b: &MemoryBackend, dir: &str, base: u64) {
        let key = (dir.to_string(), base);
        for _ in 0..60_000 {
            if b.ahead.wanted.lock().get(&key).is_some_and(Option::is_some) {
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
        published(&b, "commitlog", SEG as u64);
        let made = b.ahead.wanted.lock()[&("commitlog".to_string(), SEG as u64)]
            .clone()
            .unwrap();
        let r = b.open("commitlog", SEG as u64, SEG, true).unwrap();
        assert_eq!(r.as_ptr(), made.as_ptr(), "the region made ahead");
        assert_eq!(r.len(), SEG);
        assert!(zeroed(&*r));
        assert!(
            b.ahead.wanted.lock().is_empty(),
            "handed over, not kept twice"
        );
        // SAFETY: the region is SEG bytes; nothing else touches it in this test.
        unsafe { *r.as_ptr().add(SEG - 1) = 7 };
        let again = b.open("commitlog", SEG as u64, SEG, false).unwrap();
        assert_eq!(again.as_ptr(), r.as_ptr(), "the same segment");
        // Preparing a segment that exists already does nothing.
        b.prepare("commitlog", SEG as u64, SEG);
        assert!(b.ahead.wanted.lock().is_empty());
    }

    #[test]
    fn a_segment_opened_while_it_is_being_prepared_is_one_region_that_keeps_its_writes() {
        let b = MemoryBackend::default();
        b.prepare("commitlog", 0, SEG);
        let r = b.open("commitlog", 0, SEG, true).unwrap();
        assert!(zeroed(&*r));
        // Written at once, perhaps while its pages are still being faulted in.
        for at in (0..SEG).step_by(4096 * 7) {
            // SAFETY: inside the region; this test is its only writer.
            unsafe { *r.as_ptr().add(at) = 9 };
        }
        // A later request finished means the first one is finished too.
        b.prepare("consumequeue/t/0", 0, SEG);
        published(&b, "consumequeue/t/0", 0);
        // Whichever came first, exactly one region serves the segment, nothing is left
        // waiting for an open that already happened, and no write was undone.
        assert!(!b
            .ahead
            .wanted
            .lock()
            .contains_key(&("commitlog".to_string(), 0)));
        assert_eq!(
            b.open("commitlog", 0, SEG, false).unwrap().as_ptr(),
            r.as_ptr()
        );
        // SAFETY: as above, read only.
        let bytes = unsafe { std::slice::from_raw_parts(r.as_ptr(), SEG) };
        for (at, byte) in bytes.iter().enumerate() {
            assert_eq!(*byte, if at % (4096 * 7) == 0 { 9 } else { 0 }, "byte {at}");
        }
    }

    #[test]
    fn removing_a_directory_drops_the_segments_made_ahead_for_it() {
        let b = MemoryBackend::default();
        b.open("consumequeue/t/0", 0, SEG, true).unwrap();
        b.prepare("consumequeue/t/0", SEG as u64, SEG);
        b.prepare("consumequeue/u/0", 0, SEG);
        published(&b, "consumequeue/u/0", 0);
        b.remove_dir("consumequeue/t").unwrap();
        assert!(b.list("consumequeue/t/0").unwrap().is_empty());
        let wanted = b.ahead.wanted.lock();
        assert_eq!(
            wanted.keys().collect::<Vec<_>>(),
            [&("consumequeue/u/0".to_string(), 0)]
        );
    }
}
