//! Reads of a `SegmentQueue`: zero-copy views of written bytes (a view keeps its
//! segment alive), raw views for recovery scans, and dropping pages readers have
//! passed from the process's resident set (the page cache keeps the data).
//!
//! Never hands out a byte at or above the write position: those may still change.

use std::sync::Arc;

use bytes::Bytes;

use super::{Segment, SegmentQueue};
use crate::store::Region;

/// Granularity of dropping read pages from the resident set.
const RELEASE_CHUNK: u64 = 4 << 20;

/// A zero-copy view of bytes in a segment, keeping the segment alive.
struct SegmentSlice {
    region: Arc<dyn Region>,
    at: usize,
    len: usize,
}

impl AsRef<[u8]> for SegmentSlice {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: [at, at+len) lies below the queue's write position when the slice
        // is made; such bytes are never written again while the region lives
        // (truncation happens only at open, before any reader exists).
        unsafe { std::slice::from_raw_parts(self.region.as_ptr().add(self.at), self.len) }
    }
}

impl SegmentQueue {
    pub(super) fn find(&self, pos: u64) -> Option<&Segment> {
        let first = self.segs.first()?.base;
        if pos < first.max(self.min_pos) || pos >= self.write_pos {
            return None;
        }
        let idx = ((pos - first) / self.seg_size as u64) as usize;
        let seg = self.segs.get(idx)?;
        self.note_read(pos);
        Some(seg)
    }

    /// A reader moving on through the log drops the chunk two behind from the
    /// resident set (the page cache keeps it), so reading a whole store does not
    /// grow the process by the store's size. The chunk just left stays: callers
    /// still read the bodies they were handed from it. Chunks near the write head
    /// stay too. Only queues whose readers stream (the CommitLog) do this; the
    /// ConsumeQueues and the timer's links are read at random and keep their pages.
    fn note_read(&self, pos: u64) {
        use std::sync::atomic::Ordering;
        if !self.release_reads {
            return;
        }
        let chunk = pos / RELEASE_CHUNK;
        let prev = self.last_read.swap(chunk + 1, Ordering::Relaxed);
        if prev == chunk + 1 || chunk < 2 {
            return;
        }
        let start = (chunk - 2) * RELEASE_CHUNK;
        let end = start + RELEASE_CHUNK;
        if end + RELEASE_CHUNK > self.write_pos {
            return;
        }
        if let Some(s) = self
            .segs
            .iter()
            .find(|s| s.base <= start && start < s.base + self.seg_size as u64)
        {
            let from = (start - s.base) as usize;
            let to = (end - s.base).min(self.seg_size as u64) as usize;
            s.region.release_range(from, to);
        }
    }

    /// Runs `f` on the written bytes from `pos` to the end of its segment (or of the data).
    pub fn with_slice<R>(&self, pos: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let seg = self.find(pos)?;
        let off = (pos - seg.base) as usize;
        let end = ((self.write_pos - seg.base) as usize).min(self.seg_size);
        // SAFETY: [off, end) is written data inside the region (see SegmentSlice).
        let bytes = unsafe { std::slice::from_raw_parts(seg.region.as_ptr().add(off), end - off) };
        Some(f(bytes))
    }

    /// Like `with_slice` but over the whole segment, written or not (recovery scans).
    pub fn with_raw<R>(&self, pos: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let first = self.segs.first()?.base;
        if pos < first {
            return None;
        }
        let seg = self
            .segs
            .get(((pos - first) / self.seg_size as u64) as usize)?;
        let off = (pos - seg.base) as usize;
        // SAFETY: inside the region; recovery runs before any writer or reader.
        let bytes = unsafe {
            std::slice::from_raw_parts(seg.region.as_ptr().add(off), self.seg_size - off)
        };
        Some(f(bytes))
    }

    /// `len` written bytes at `pos` as a zero-copy `Bytes`.
    pub fn read(&self, pos: u64, len: usize) -> Option<Bytes> {
        let seg = self.find(pos)?;
        let at = (pos - seg.base) as usize;
        if at + len > self.seg_size || pos + len as u64 > self.write_pos {
            return None;
        }
        Some(Bytes::from_owner(SegmentSlice {
            region: seg.region.clone(),
            at,
            len,
        }))
    }

    /// Drops the pages of the segment holding `pos`, up to `pos`, from the resident set.
    pub fn release_before(&self, pos: u64) {
        if let Some(s) = self
            .segs
            .iter()
            .find(|s| s.base < pos && pos <= s.base + self.seg_size as u64)
        {
            let from = pos.saturating_sub(2 * RELEASE_CHUNK).max(s.base);
            s.region
                .release_range((from - s.base) as usize, (pos - s.base) as usize);
        }
    }

    /// Drops every segment's pages from the resident set.
    pub fn release_sealed_and_active(&self) {
        for s in &self.segs {
            s.region.release();
        }
    }

    /// Drops sealed segments' pages from the resident set.
    pub fn release_sealed(&self) {
        let n = self.segs.len();
        for s in self.segs.iter().take(n.saturating_sub(1)) {
            s.region.release();
        }
    }
}
