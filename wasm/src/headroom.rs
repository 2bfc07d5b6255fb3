//! The allocator: the standard one (dlmalloc), with the engine's memory grown in
//! large steps instead of one allocation's worth at a time.
//!
//! Each time a wasm memory grows, V8 gives it a new `ArrayBuffer` and counts the
//! memory's whole size as newly allocated external memory, which starts a full
//! garbage collection of the JS heap. A store grows its memory a segment at a time
//! (a 16 MiB commit log segment, a few hundred KiB for a consume queue's), so a
//! program holding a large JS heap paid a full collection every few thousand
//! sends. When an allocation grows the memory, this one allocates and frees a
//! block of a quarter of the memory's size (16 MiB to 256 MiB) right after: the
//! freed block joins dlmalloc's free top, and the next many allocations are
//! served from it without growing. Pages grown and never written cost no
//! resident memory.

use std::alloc::{GlobalAlloc, Layout, System};

#[global_allocator]
static ALLOC: Headroom = Headroom;

/// See the module docs.
pub struct Headroom;

const MIN_STEP: usize = 16 << 20;
const MAX_STEP: usize = 256 << 20;

/// The memory's size in bytes.
fn memory_bytes() -> usize {
    core::arch::wasm32::memory_size(0) * 65_536
}

/// Runs `alloc`; if it grew the memory, leaves free room of a quarter of the
/// memory's size behind it (see the module docs).
#[inline(never)]
fn grown(alloc: impl FnOnce() -> *mut u8) -> *mut u8 {
    let before = memory_bytes();
    let p = alloc();
    let after = memory_bytes();
    if after != before {
        let step = (after / 4).clamp(MIN_STEP, MAX_STEP);
        if let Ok(layout) = Layout::from_size_align(step, 16) {
            // SAFETY: a layout of non-zero size; the block is freed with the same
            // layout at once, and never read or written.
            unsafe {
                let room = System.alloc(layout);
                if !room.is_null() {
                    System.dealloc(room, layout);
                }
            }
        }
    }
    p
}

// SAFETY: every call goes to `System` with the caller's arguments unchanged;
// `grown` only adds an allocation that it frees before returning.
unsafe impl GlobalAlloc for Headroom {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grown(|| System.alloc(layout))
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grown(|| System.alloc_zeroed(layout))
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grown(|| System.realloc(ptr, layout, new_size))
    }
}
