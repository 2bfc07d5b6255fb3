//! A log of contiguous fixed-size segments (RocketMQ's `MappedFileQueue`): append at
//! the end, read anywhere still retained, flush, truncate after recovery, drop whole
//! old segments for retention.
//!
//! Invariants: segments of one queue are contiguous and all the same size; bytes
//! below `write_pos` never change except by `truncate`, which zeroes what it cuts,
//! so no stale record can reappear after a later crash.
//!
//! `read.rs` holds the reads (zero-copy views of written bytes) and what keeps
//! readers from growing the resident set.

use std::io;
use std::sync::Arc;

use super::{corrupt, segment_name, Backend, Region};

mod read;

/// Zeroes a segment from `from` to its end, writing (and flushing) only the 4 KiB
/// chunks that hold data, so a clean open does not rewrite a whole segment. True
/// when anything was zeroed. No reader may exist (truncation happens at open).
fn zero_tail(seg: &Segment, from: usize, seg_size: usize) -> io::Result<bool> {
    // SAFETY: the region is seg_size bytes long; no reader exists during truncation.
    let tail =
        unsafe { std::slice::from_raw_parts_mut(seg.region.as_ptr().add(from), seg_size - from) };
    static ZEROS: [u8; 4096] = [0; 4096];
    const RELEASE_EVERY: usize = 4 << 20;
    let mut dirty: Option<(usize, usize)> = None;
    let mut released = from;
    for (i, chunk) in tail.chunks_mut(4096).enumerate() {
        // (A slice comparison is a memcmp, fast in any build.)
        if *chunk != ZEROS[..chunk.len()] {
            chunk.fill(0);
            let (a, b) = (from + i * 4096, from + i * 4096 + chunk.len());
            dirty = Some(dirty.map_or((a, b), |(x, _)| (x, b)));
        }
        // Reading the tail faulted its pages in: drop them from the resident set as
        // the check goes (the data stays), or every open would leave a whole
        // segment resident (64 MiB by default) for one message.
        let end = from + (i + 1) * 4096;
        if end - released >= RELEASE_EVERY {
            seg.region.release_range(released, end);
            released = end;
        }
    }
    seg.region.release_range(released, seg_size);
    if let Some((a, b)) = dirty {
        seg.region.flush(a, b)?;
    }
    Ok(dirty.is_some())
}

/// Whether anything was written in the first page of `seg` (records go from its
/// start, so one that never got a record has a blank first page).
fn starts_written(seg: &Segment, seg_size: usize) -> bool {
    let n = seg_size.min(seg.region.len()).min(4096);
    // SAFETY: the first n bytes lie inside the region; no writer exists during truncation.
    let head = unsafe { std::slice::from_raw_parts(seg.region.as_ptr(), n) };
    head.iter().any(|&b| b != 0)
}

struct Segment {
    base: u64,
    region: Arc<dyn Region>,
}

/// Work to make a queue durable up to `upto`, runnable without the engine's lock.
pub(crate) struct FlushJob {
    parts: Vec<(Arc<dyn Region>, usize, usize)>,
    pub upto: u64,
}

impl FlushJob {
    pub fn run(&self) -> io::Result<()> {
        for (region, from, to) in &self.parts {
            region.flush(*from, *to)?;
        }
        Ok(())
    }

    /// `run` with [`super::Region::flush_later`]: true when everything is durable on
    /// return, false when a sync was left under way (the backend's `sync_pending`).
    pub fn run_later(&self) -> io::Result<bool> {
        let mut durable = true;
        for (region, from, to) in &self.parts {
            durable &= region.flush_later(*from, *to)?;
        }
        Ok(durable)
    }
}

/// A log of contiguous fixed-size segments.
pub(crate) struct SegmentQueue {
    backend: Arc<dyn Backend>,
    dir: String,
    seg_size: usize,
    segs: Vec<Segment>,
    /// Offset where the next append goes.
    write_pos: u64,
    /// Everything below this is durable.
    flushed: u64,
    /// Lowest retained offset.
    min_pos: u64,
    /// Chunk + 1 of the last read (0: none), to drop passed chunks (`note_read`).
    last_read: std::sync::atomic::AtomicU64,
    /// Whether reads drop what they have passed (the CommitLog's readers stream).
    release_reads: bool,
    /// Whether the backend makes the next segment ready once half of this one is
    /// written (see [`SegmentQueue::prepare_ahead`]).
    prepare_ahead: bool,
    /// The next segment whose preparation was asked for (0: none yet).
    prepared_next: u64,
    /// The segment after the write position's, opened (allocated) by `reserve`
    /// ahead of the append that moves into it.
    spare: Option<Segment>,
    /// Where the write position's segment is known to have its disk blocks up to
    /// (a region allocated as it fills: see `Region::allocate`).
    allocated_to: u64,
    /// Appends ending at or below this go straight into the active segment (the last
    /// one, holding the write position): inside it, allocated, and short of where
    /// the next segment is to be prepared. 0 after anything moves the write position
    /// but an append; the next append then sees to all of that (`make_writable`).
    writable_to: u64,
    /// Let go of its segments (`release`): no segment is opened again.
    released: bool,
}

impl SegmentQueue {
    /// Opens the segments in `dir`. The write position starts at the end of the last
    /// segment; the owner finds the real end (by scanning) and calls `truncate`.
    pub fn open(backend: Arc<dyn Backend>, dir: &str, seg_size: usize) -> io::Result<SegmentQueue> {
        let mut segs = Vec::new();
        // The run before the last hole.
        let mut older = Vec::new();
        for base in backend.list(dir)? {
            if base % seg_size as u64 != 0 {
                return Err(corrupt(format!(
                    "{dir}/{}: not on a segment boundary",
                    segment_name(base)
                )));
            }
            if let Some(prev) = segs.last() {
                let prev: &Segment = prev;
                if prev.base + seg_size as u64 != base {
                    // A hole: keep only the newest contiguous run (older ones were being deleted).
                    older = std::mem::take(&mut segs);
                }
            }
            let region = backend.open(dir, base, seg_size, false)?;
            if region.len() != seg_size {
                return Err(corrupt(format!(
                    "{dir}/{}: {} bytes, segments here are {seg_size}",
                    segment_name(base),
                    region.len()
                )));
            }
            segs.push(Segment { base, region });
        }
        if let (Some(before), Some(after)) = (older.last(), segs.first()) {
            let (gone_from, gone_to) = (before.base + seg_size as u64, after.base);
            if segs.iter().all(|s| !starts_written(s, seg_size)) {
                // What follows the hole holds nothing (prepared ahead of need): the
                // log ended in what is missing, and the run before it is the log.
                log::warn!(
                    "{dir}: segments {}..{} are missing and those after them hold nothing: \
                     the log is the segments before them",
                    segment_name(gone_from),
                    segment_name(gone_to)
                );
                for s in std::mem::replace(&mut segs, older) {
                    backend.remove(dir, s.base)?;
                }
            } else {
                log::warn!(
                    "{dir}: segments {}..{} are missing: the log starts after them, the \
                     {} segments before them are not read",
                    segment_name(gone_from),
                    segment_name(gone_to),
                    older.len()
                );
            }
        }
        let end = segs.last().map_or(0, |s| s.base + seg_size as u64);
        let min = segs.first().map_or(0, |s| s.base);
        Ok(SegmentQueue {
            backend,
            dir: dir.to_string(),
            seg_size,
            segs,
            write_pos: end,
            flushed: end,
            min_pos: min,
            last_read: std::sync::atomic::AtomicU64::new(0),
            release_reads: false,
            prepare_ahead: false,
            prepared_next: 0,
            spare: None,
            allocated_to: 0,
            writable_to: 0,
            released: false,
        })
    }

    /// Lets go of every segment, for a closed store: its memory and mappings go back
    /// now, not when the last handle on the broker does (a message read from them
    /// keeps its own). Reads find nothing after it, and an append fails.
    pub fn release(&mut self) {
        self.segs.clear();
        self.spare = None;
        self.writable_to = 0;
        self.released = true;
    }

    /// Opens a queue of derived data (rebuilt from the CommitLog at will): segments
    /// that cannot be opened as such (a wrong size, say) are deleted, and the queue
    /// starts empty for the replay to refill.
    pub fn open_derived(
        backend: Arc<dyn Backend>,
        dir: &str,
        seg_size: usize,
    ) -> io::Result<SegmentQueue> {
        match SegmentQueue::open(backend.clone(), dir, seg_size) {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                log::warn!("{dir}: {e}; its files are rebuilt from the CommitLog");
                for base in backend.list(dir)? {
                    backend.remove(dir, base)?;
                }
                SegmentQueue::open(backend, dir, seg_size)
            }
            r => r,
        }
    }

    /// Lets streaming reads drop the chunks they have passed (see `note_read`).
    pub fn release_passed_reads(&mut self) {
        self.release_reads = true;
    }

    /// Has the backend make the next segment ready (allocated, its pages faulted in)
    /// on another thread once half of the current one is written.
    pub fn prepare_ahead(&mut self) {
        self.prepare_ahead = true;
    }

    pub fn seg_size(&self) -> usize {
        self.seg_size
    }
    pub fn write_pos(&self) -> u64 {
        self.write_pos
    }
    pub fn min_pos(&self) -> u64 {
        self.min_pos
    }
    pub fn flushed(&self) -> u64 {
        self.flushed
    }
    pub fn segment_count(&self) -> usize {
        self.segs.len()
    }
    pub fn segment_bases(&self) -> Vec<u64> {
        self.segs.iter().map(|s| s.base).collect()
    }
    /// Bytes retained.
    pub fn retained_bytes(&self) -> u64 {
        self.write_pos.saturating_sub(self.min_pos)
    }

    /// Starts an empty queue at `pos` (rounded down to a segment), for a queue whose
    /// first entries were never written here.
    pub fn reset_to(&mut self, pos: u64) -> io::Result<()> {
        for s in self.segs.drain(..).chain(self.spare.take()) {
            self.backend.remove(&self.dir, s.base)?;
        }
        let base = pos - pos % self.seg_size as u64;
        self.write_pos = base;
        self.flushed = base;
        self.min_pos = base;
        self.writable_to = 0;
        Ok(())
    }

    /// Empties the queue, keeping (zeroed) the segment at offset 0 if there is one:
    /// derived data rebuilt at every open reuses the space it already holds, so it
    /// needs none from a full disk.
    pub fn clear(&mut self) -> io::Result<()> {
        if self.segs.first().is_none_or(|s| s.base != 0) {
            return self.reset_to(0);
        }
        if let Some(spare) = self.spare.take() {
            self.backend.remove(&self.dir, spare.base)?;
        }
        while self.segs.len() > 1 {
            if let Some(s) = self.segs.pop() {
                self.backend.remove(&self.dir, s.base)?;
            }
        }
        if let Some(first) = self.segs.first() {
            zero_tail(first, 0, self.seg_size)?;
        }
        self.write_pos = 0;
        self.min_pos = 0;
        self.flushed = 0;
        self.writable_to = 0;
        Ok(())
    }

    /// Cuts the queue back to `end`: zeroes the cut bytes of its segment and deletes
    /// later segments. True when anything but zeros was cut.
    pub fn truncate(&mut self, end: u64) -> io::Result<bool> {
        self.truncate_as(end, true)
    }

    /// `truncate` for a derived queue whose files were closed cleanly: nothing lies
    /// past `end` in its segment (every open after a crash zeroed what it cut, and
    /// nothing is written past the end), so that tail is not read. Reading it made
    /// opening a store of many queues slow (a ConsumeQueue segment is 5.7 MiB).
    pub fn truncate_clean(&mut self, end: u64) -> io::Result<bool> {
        self.truncate_as(end, false)
    }

    fn truncate_as(&mut self, end: u64, zero: bool) -> io::Result<bool> {
        let mut cut = false;
        if let Some(spare) = self.spare.take() {
            self.backend.remove(&self.dir, spare.base)?;
        }
        while self.segs.last().is_some_and(|last| last.base >= end) {
            if let Some(last) = self.segs.pop() {
                // (A segment made ahead of its first record is no torn tail.)
                cut |= starts_written(&last, self.seg_size);
                self.backend.remove(&self.dir, last.base)?;
            }
        }
        if let Some(last) = self.segs.last().filter(|_| zero) {
            let from = end.saturating_sub(last.base) as usize;
            cut |= zero_tail(last, from, self.seg_size)?;
        }
        self.write_pos = end.max(self.min_pos);
        self.flushed = self.flushed.min(self.write_pos);
        self.allocated_to = 0;
        self.writable_to = 0;
        Ok(cut)
    }

    /// Room left in the segment the next append goes to (a full segment counts as 0).
    pub fn remaining_in_segment(&self) -> usize {
        self.seg_size - (self.write_pos % self.seg_size as u64) as usize
    }

    /// Moves the write position to the next segment boundary.
    pub fn roll(&mut self) {
        let rem = self.seg_size as u64 - self.write_pos % self.seg_size as u64;
        if rem != self.seg_size as u64 {
            self.write_pos += rem;
            self.writable_to = 0;
        }
    }

    /// Makes sure the next `len` bytes of appends, starting at the write position
    /// or, with `roll`, at the next segment, have their segments open (allocated),
    /// so those appends cannot fail for space. Fails, with nothing written, when
    /// a segment cannot be allocated (a full disk: `StorageFull`).
    #[inline]
    pub fn reserve(&mut self, len: usize, roll: bool) -> io::Result<()> {
        let seg = self.seg_size as u64;
        let off = self.write_pos % seg;
        if !roll
            && off != 0
            && off + len as u64 <= seg
            && self.write_pos + len as u64 <= self.allocated_to
        {
            return Ok(()); // inside the active segment, open since the first append
        }
        self.reserve_more(len, roll)
    }

    #[cold]
    fn reserve_more(&mut self, len: usize, roll: bool) -> io::Result<()> {
        let seg = self.seg_size as u64;
        let off = self.write_pos % seg;
        let mut at = self.write_pos;
        if roll && !at.is_multiple_of(seg) {
            at += seg - at % seg;
        }
        let last = at.saturating_add(len.max(1) as u64 - 1);
        let mut base = at - at % seg;
        while base <= last {
            self.segment_at(base, false)?;
            base += seg;
        }
        // The active segment's blocks for what goes into it (a segment made ahead
        // has its first chunk from its creation).
        if !roll && off != 0 {
            let end = (at + len as u64).min(at - off + seg);
            if end > self.allocated_to {
                self.allocate(at, end)?;
            }
        }
        Ok(())
    }

    /// Allocates `[from, to)` of the active segment (`from` at or above the write
    /// position, `to` inside the segment).
    #[cold]
    fn allocate(&mut self, from: u64, to: u64) -> io::Result<()> {
        let Some(seg) = self.segs.last() else {
            return Ok(());
        };
        let upto = seg
            .region
            .allocate((from - seg.base) as usize, (to - seg.base) as usize)?;
        self.allocated_to = seg.base + upto as u64;
        Ok(())
    }

    /// The segment starting at `base` (the write position's, or the one after it),
    /// opened and allocated if it is not yet; `take` makes it the active one.
    fn segment_at(&mut self, base: u64, take: bool) -> io::Result<()> {
        if self.segs.last().is_some_and(|s| s.base == base) {
            return Ok(());
        }
        if self.released {
            return Err(io::Error::other(format!(
                "{}: the store is closed",
                self.dir
            )));
        }
        let current = self.write_pos - self.write_pos % self.seg_size as u64;
        if !take && base != current {
            if self.spare.as_ref().is_some_and(|s| s.base == base) {
                return Ok(());
            }
            let region = self.backend.open(&self.dir, base, self.seg_size, true)?;
            self.spare = Some(Segment { base, region });
            return Ok(());
        }
        let seg = match self.spare.take() {
            Some(s) if s.base == base => s,
            other => {
                self.spare = other;
                let region = self.backend.open(&self.dir, base, self.seg_size, true)?;
                Segment { base, region }
            }
        };
        if self.segs.is_empty() {
            self.min_pos = base;
        }
        self.segs.push(seg);
        self.allocated_to = base;
        self.writable_to = 0;
        Ok(())
    }

    /// Appends `len` bytes written by `fill` (which gets the buffer and its offset).
    /// The caller guarantees `len <= remaining_in_segment()`.
    #[inline]
    pub fn append_with(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut [u8], u64),
    ) -> io::Result<u64> {
        let at = self.write_pos;
        if at + len as u64 > self.writable_to {
            self.make_writable(len)?;
        }
        let seg = self
            .segs
            .last()
            .expect("make_writable opened the active segment");
        let off = (at - seg.base) as usize;
        // SAFETY: [off, off+len) is inside the region and above the write position,
        // so no reader holds it; the engine's lock serialises appends.
        let buf = unsafe { std::slice::from_raw_parts_mut(seg.region.as_ptr().add(off), len) };
        fill(buf, at);
        self.write_pos = at + len as u64;
        Ok(at)
    }

    /// Readies the active segment for an append of `len` bytes at the write
    /// position: opens it (the next one, past a boundary), has the segment after it
    /// prepared once half of it is written (`prepare_ahead`), allocates its blocks,
    /// and sets how far appends may go before coming here again.
    #[cold]
    #[inline(never)]
    fn make_writable(&mut self, len: usize) -> io::Result<()> {
        let at = self.write_pos;
        let seg_size = self.seg_size as u64;
        let base = at - at % seg_size;
        if self.segs.last().is_none_or(|s| s.base != base) {
            self.segment_at(base, true)?;
        }
        let end = at + len as u64;
        let next = base + seg_size;
        if end > next {
            return Err(corrupt(format!(
                "{}: an append of {len} bytes at {at} would cross a segment boundary",
                self.dir
            )));
        }
        let half = base + seg_size / 2;
        if self.prepare_ahead && end > half && self.prepared_next != next {
            self.prepared_next = next;
            self.backend.prepare(&self.dir, next, self.seg_size);
        }
        if end > self.allocated_to {
            self.allocate(at, end)?;
        }
        let mut limit = next.min(self.allocated_to);
        if self.prepare_ahead && self.prepared_next != next {
            limit = limit.min(half);
        }
        self.writable_to = limit.max(end);
        Ok(())
    }

    /// Overwrites written bytes at `pos` (for small in-place structures such as the
    /// timer wheel's links, which only the engine's lock holder reads).
    pub fn write_at(&mut self, pos: u64, data: &[u8]) -> bool {
        let Some(seg) = self.find(pos) else {
            return false;
        };
        let off = (pos - seg.base) as usize;
        if off + data.len() > self.seg_size || pos + data.len() as u64 > self.write_pos {
            return false;
        }
        // SAFETY: inside the region and below the write position; callers hold the
        // engine's lock and no zero-copy reader exists for these structures.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), seg.region.as_ptr().add(off), data.len())
        };
        true
    }

    /// A job that makes everything written so far durable.
    pub fn flush_job(&self) -> FlushJob {
        let mut parts = Vec::new();
        for s in &self.segs {
            let end = s.base + self.seg_size as u64;
            if end <= self.flushed || s.base >= self.write_pos {
                continue;
            }
            let from = self.flushed.saturating_sub(s.base) as usize;
            let to = (self.write_pos.min(end) - s.base) as usize;
            parts.push((s.region.clone(), from, to));
        }
        FlushJob {
            parts,
            upto: self.write_pos,
        }
    }

    /// Records that a flush job finished.
    pub fn flushed_to(&mut self, upto: u64) {
        self.flushed = self.flushed.max(upto.min(self.write_pos));
    }

    /// Deletes the oldest segment unless it is the active one; returns its base.
    pub fn remove_oldest(&mut self) -> io::Result<Option<u64>> {
        if self.segs.len() <= 1 {
            return Ok(None);
        }
        let s = self.segs.remove(0);
        self.backend.remove(&self.dir, s.base)?;
        self.min_pos = self.segs[0].base.max(self.min_pos);
        Ok(Some(s.base))
    }

    /// Deletes whole segments that end at or below `pos` (never the active one).
    pub fn remove_below(&mut self, pos: u64) -> io::Result<()> {
        while self.segs.len() > 1 && self.segs[0].base + self.seg_size as u64 <= pos {
            self.remove_oldest()?;
        }
        Ok(())
    }

    /// Raises the lowest readable position (within retained segments).
    pub fn set_min_pos(&mut self, pos: u64) {
        self.min_pos = self.min_pos.max(pos.min(self.write_pos));
    }
}
