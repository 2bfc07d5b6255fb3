//! The CommitLog: the one append-only log every topic's records go to, in RocketMQ's
//! record layout, over a `SegmentQueue`.
//!
//! Invariants: a batch is one append and never crosses a segment (a batch that does
//! not fit leaves an 8-byte blank marker and moves whole to the next segment); store
//! timestamps never decrease along the log; every record's PHYSICALOFFSET equals its
//! position; after `recover` nothing torn or stale lies at or beyond the end.
//!
//! `flush.rs` makes appended data durable (group commit); `recovery.rs` finds the
//! end of the log on open and keeps the checkpoint that bounds that scan.

pub(crate) mod flush;
pub(crate) mod recovery;

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use bytes::Bytes;

use crate::message::record::{self, Parsed, RecordSpec, RecordView, END_FILE_MIN_BLANK};
use crate::store::{Backend, FlushJob, SegmentQueue};
use crate::{Error, Result};

pub(crate) const DIR: &str = "commitlog";

/// A view of one segment shared by the records of one read (see `read_in`).
#[derive(Default)]
pub(crate) struct Span(Option<(u64, Bytes)>);

/// Where one appended record went.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placed {
    pub phys: u64,
    pub queue_offset: u64,
}

/// What a read at a CommitLog offset found.
pub(crate) enum Lookup<R> {
    Found(R),
    /// A record whose CRC fails: never handed out (counted and logged once).
    Corrupt,
    /// No record there (not retained, or not a record's offset).
    Missing,
}

impl<R> Lookup<R> {
    pub fn found(self) -> Option<R> {
        match self {
            Lookup::Found(r) => Some(r),
            _ => None,
        }
    }
}

pub(crate) struct CommitLog {
    seg: SegmentQueue,
    /// Whether records carry CRCs and reads check them: on a store that lives on a
    /// medium. A memory store holds only the records this process encoded and
    /// nothing of it outlives the process (no torn tail to tell from data), so its
    /// records carry zero CRCs and its reads check their layout alone.
    verify_reads: bool,
    /// Offsets of records found damaged by a read (each counted and logged once).
    corrupt: parking_lot::Mutex<std::collections::BTreeSet<u64>>,
    /// Store time of the last record: store times never decrease along the log.
    last_store_ts: u64,
    /// Store time of the last record in each segment, for retention by age.
    seg_last_ts: BTreeMap<u64, u64>,
    /// Where the bytes written out by flushes that left their syncs under way begin
    /// (`Region::flush_later`): below it the log is durable. None: all flushed bytes are.
    unsynced_from: Option<u64>,
}

impl CommitLog {
    /// The segment size of the CommitLog in `backend`, judged from its files (for
    /// a store whose `store.json` is lost): the largest that can be a size.
    pub fn size_of_existing(backend: &dyn Backend) -> io::Result<Option<usize>> {
        let mut best = None;
        for base in backend.list(DIR)? {
            if let Ok(r) = backend.open(DIR, base, 0, false) {
                if recovery::StoreInfo::valid_size(r.len() as u64) {
                    best = best.max(Some(r.len()));
                }
            }
        }
        Ok(best)
    }

    pub fn open(backend: Arc<dyn Backend>, seg_size: usize) -> io::Result<CommitLog> {
        Self::restore_cut_segments(&*backend, seg_size)?;
        let verify_reads = backend.is_persistent();
        let mut seg = SegmentQueue::open(backend, DIR, seg_size)?;
        seg.release_passed_reads();
        seg.prepare_ahead();
        Ok(CommitLog {
            seg,
            verify_reads,
            corrupt: parking_lot::Mutex::new(Default::default()),
            last_store_ts: 0,
            seg_last_ts: BTreeMap::new(),
            unsynced_from: None,
        })
    }

    /// Gives a segment file cut short (shorter than `seg_size`, yet starting with an
    /// intact record) its size back, zero-filled: recovery then reads what it kept
    /// and cuts or skips the rest. Anything else of the wrong size is left for open
    /// to refuse.
    fn restore_cut_segments(backend: &dyn Backend, seg_size: usize) -> io::Result<()> {
        for base in backend.list(DIR)? {
            let Ok(region) = backend.open(DIR, base, seg_size, false) else {
                continue;
            };
            if region.len() >= seg_size {
                continue;
            }
            // SAFETY: the region is valid for len() bytes; no one else uses it yet.
            let bytes = unsafe { std::slice::from_raw_parts(region.as_ptr(), region.len()) };
            if matches!(record::parse(bytes, base, true), Parsed::Record(_)) {
                log::warn!(
                    "{DIR}/{}: {} bytes, cut short of {seg_size}; restored to its size",
                    crate::store::segment_name(base),
                    region.len()
                );
                drop(region);
                backend.open(DIR, base, seg_size, true)?;
            }
        }
        Ok(())
    }

    /// Room left in the segment the next append goes to.
    pub fn remaining_in_segment(&self) -> usize {
        self.seg.remaining_in_segment()
    }

    pub fn end(&self) -> u64 {
        self.seg.write_pos()
    }
    pub fn min_offset(&self) -> u64 {
        self.seg.min_pos()
    }
    /// Below this offset the log is durable (it survives the machine): what a
    /// checkpoint may vouch for. (Flushes that left their syncs under way have
    /// written more out, which survives this process.)
    pub fn durable(&self) -> u64 {
        self.unsynced_from.unwrap_or_else(|| self.seg.flushed())
    }
    /// Whether flushes left syncs under way that no complete flush has finished since.
    pub fn syncs_under_way(&self) -> bool {
        self.unsynced_from.is_some()
    }
    pub fn seg_size(&self) -> usize {
        self.seg.seg_size()
    }
    pub fn retained_bytes(&self) -> u64 {
        self.seg.retained_bytes()
    }

    /// Appends `specs` as one batch, with consecutive `queue_offsets`, stamped no
    /// earlier than the last record; returns the store time they were stamped with.
    pub fn append(
        &mut self,
        specs: &[RecordSpec],
        queue_offsets: &[u64],
        now: u64,
        placed: &mut Vec<Placed>,
    ) -> Result<u64> {
        placed.clear();
        let total: usize = specs.iter().map(RecordSpec::encoded_len).sum();
        let seg_size = self.seg.seg_size();
        if total + END_FILE_MIN_BLANK > seg_size {
            return Err(Error::MessageTooLarge {
                size: total,
                limit: seg_size - END_FILE_MIN_BLANK,
            });
        }
        let remaining = self.seg.remaining_in_segment();
        if total + END_FILE_MIN_BLANK > remaining {
            // The next segment first: on a full disk nothing is written, not even
            // the blank marker.
            self.seg.reserve(total, true)?;
            self.seg
                .append_with(remaining, |buf, _| record::write_blank(buf, remaining))?;
            self.seg.roll();
            self.seg.release_sealed();
        }
        let store_ts = now.max(self.last_store_ts);
        self.seg.append_with(total, |buf, at| {
            let mut off = 0;
            for (spec, qo) in specs.iter().zip(queue_offsets) {
                let len = spec.encoded_len();
                spec.encode(
                    &mut buf[off..off + len],
                    *qo,
                    at + off as u64,
                    store_ts,
                    self.verify_reads,
                );
                placed.push(Placed {
                    phys: at + off as u64,
                    queue_offset: *qo,
                });
                off += len;
            }
        })?;
        self.last_store_ts = store_ts;
        let end = self.seg.write_pos() - 1;
        let base = end - end % seg_size as u64;
        // Mostly the segment of the last append: set in place, no search.
        match self.seg_last_ts.last_entry() {
            Some(mut last) if *last.key() == base => *last.get_mut() = store_ts,
            _ => {
                self.seg_last_ts.insert(base, store_ts);
            }
        }
        Ok(store_ts)
    }

    /// Runs `f` on the record at `phys` if it is there and intact: every read of a
    /// persistent store checks the record's CRC, so a damaged record is never handed
    /// out.
    pub fn with_record<R>(&self, phys: u64, f: impl FnOnce(&RecordView<'_>) -> R) -> Option<R> {
        self.read_record(phys, f).found()
    }

    /// Like `with_record`, telling a damaged record from a missing one.
    pub fn read_record<R>(&self, phys: u64, f: impl FnOnce(&RecordView<'_>) -> R) -> Lookup<R> {
        let found = self.seg.with_slice(phys, |buf| {
            match record::parse(buf, phys, self.verify_reads) {
                Parsed::Record(r) => Lookup::Found(f(&r)),
                // Laid out as a record of this offset, yet its CRC fails: damaged.
                _ if self.verify_reads
                    && matches!(record::parse(buf, phys, false), Parsed::Record(_)) =>
                {
                    Lookup::Corrupt
                }
                _ => Lookup::Missing,
            }
        });
        match found {
            Some(Lookup::Corrupt) => {
                self.note_corrupt(phys);
                Lookup::Corrupt
            }
            Some(l) => l,
            None => Lookup::Missing,
        }
    }

    /// Records a damaged record at `phys`: logged the first time it is met.
    fn note_corrupt(&self, phys: u64) {
        if self.corrupt.lock().insert(phys) {
            log::warn!(
                "the record at CommitLog offset {phys} fails its CRC: it is skipped, never delivered"
            );
        }
    }

    /// Damaged records found by reads since open.
    pub fn corrupt_records(&self) -> u64 {
        self.corrupt.lock().len() as u64
    }

    /// The written bytes from `phys` to the end of its segment, zero-copy.
    pub fn read_to_segment_end(&self, phys: u64) -> Option<Bytes> {
        let seg = self.seg.seg_size() as u64;
        let end = (phys - phys % seg)
            .saturating_add(seg)
            .min(self.seg.write_pos());
        self.seg.read(phys, end.checked_sub(phys)? as usize)
    }

    /// The intact record of `len` bytes at `phys`, cut from `span` as `read_in` does;
    /// empty when it is gone or fails its CRC (a damaged record is never handed out:
    /// it is counted and logged once).
    pub fn record_in(&self, span: &mut Span, phys: u64, len: usize) -> Bytes {
        let rec = self.read_in(span, phys, len);
        // A memory store's records are the ones this process encoded: taking one
        // parses it, which is all the checking it needs.
        if rec.is_empty()
            || !self.verify_reads
            || matches!(record::parse(&rec, phys, true), Parsed::Record(_))
        {
            return rec;
        }
        self.note_corrupt(phys);
        Bytes::new()
    }

    /// `len` bytes at `phys`, zero-copy, cut from `span` (refilled when it does not
    /// hold them): the bodies of one read share one view of the segment instead of
    /// taking one each. Empty when the bytes are gone.
    pub fn read_in(&self, span: &mut Span, phys: u64, len: usize) -> Bytes {
        // (A damaged ConsumeQueue entry may name any offset and size.)
        let Some(to) = phys.checked_add(len as u64) else {
            return Bytes::new();
        };
        let holds = |s: &Option<(u64, Bytes)>| {
            s.as_ref()
                .is_some_and(|(at, b)| phys >= *at && to <= at + b.len() as u64)
        };
        if !holds(&span.0) {
            span.0 = self.read_to_segment_end(phys).map(|b| (phys, b));
        }
        match &span.0 {
            Some((at, b)) if holds(&span.0) => b.slice((phys - at) as usize..(to - at) as usize),
            _ => Bytes::new(),
        }
    }

    /// `len` bytes at `phys`, zero-copy.
    pub fn read(&self, phys: u64, len: usize) -> Option<Bytes> {
        self.seg.read(phys, len)
    }

    /// Moves the end of the log past `target` (at most two segments on), leaving
    /// blank markers behind: after recovery lost data that had been flushed (a
    /// damaged tail), the offsets it used, and so its message ids, are never
    /// given to new messages.
    pub fn skip_to(&mut self, target: u64) -> io::Result<()> {
        let seg_size = self.seg.seg_size() as u64;
        let end = self.seg.write_pos();
        let target = target.min(end - end % seg_size + 2 * seg_size);
        while self.seg.write_pos() < target {
            let remaining = self.seg.remaining_in_segment();
            self.seg
                .append_with(remaining, |buf, _| record::write_blank(buf, remaining))?;
            self.seg.roll();
        }
        Ok(())
    }

    pub fn flush_job(&self) -> FlushJob {
        self.seg.flush_job()
    }
    /// Records a flush up to `upto`; `synced`: it made everything flushed so far
    /// durable, else it left syncs under way.
    pub fn flushed_to(&mut self, upto: u64, synced: bool) {
        if synced {
            self.unsynced_from = None;
        } else if self.unsynced_from.is_none() {
            self.unsynced_from = Some(self.seg.flushed());
        }
        self.seg.flushed_to(upto)
    }

    /// Sealed segments (never the active one), oldest first, with the store time of
    /// their last record.
    pub fn sealed_segments(&self) -> Vec<(u64, u64)> {
        let bases = self.seg.segment_bases();
        let n = bases.len().saturating_sub(1);
        bases[..n]
            .iter()
            .map(|b| (*b, self.seg_last_ts.get(b).copied().unwrap_or(0)))
            .collect()
    }

    /// Whether any segment besides the active one is retained.
    pub fn has_sealed(&self) -> bool {
        self.seg.segment_count() > 1
    }

    /// Deletes the oldest segment unless it is the active one.
    pub fn delete_oldest(&mut self) -> io::Result<bool> {
        match self.seg.remove_oldest()? {
            Some(base) => {
                self.seg_last_ts.remove(&base);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub fn release_sealed(&self) {
        self.seg.release_sealed()
    }

    /// Lets go of every segment (a closed store: see `SegmentQueue::release`).
    pub fn release(&mut self) {
        self.seg.release()
    }
}
