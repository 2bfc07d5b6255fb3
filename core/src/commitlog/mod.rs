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

/// Where one appended record went.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placed {
    pub phys: u64,
    pub queue_offset: u64,
}

pub(crate) struct CommitLog {
    seg: SegmentQueue,
    /// Store time of the last record: store times never decrease along the log.
    last_store_ts: u64,
    /// Store time of the last record in each segment, for retention by age.
    seg_last_ts: BTreeMap<u64, u64>,
}

impl CommitLog {
    pub fn open(backend: Arc<dyn Backend>, seg_size: usize) -> io::Result<CommitLog> {
        let mut seg = SegmentQueue::open(backend, DIR, seg_size)?;
        seg.release_passed_reads();
        Ok(CommitLog {
            seg,
            last_store_ts: 0,
            seg_last_ts: BTreeMap::new(),
        })
    }

    pub fn end(&self) -> u64 {
        self.seg.write_pos()
    }
    pub fn min_offset(&self) -> u64 {
        self.seg.min_pos()
    }
    pub fn flushed(&self) -> u64 {
        self.seg.flushed()
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
                spec.encode(&mut buf[off..off + len], *qo, at + off as u64, store_ts);
                placed.push(Placed {
                    phys: at + off as u64,
                    queue_offset: *qo,
                });
                off += len;
            }
        })?;
        self.last_store_ts = store_ts;
        let end = self.seg.write_pos() - 1;
        self.seg_last_ts
            .insert(end - end % seg_size as u64, store_ts);
        Ok(store_ts)
    }

    /// Runs `f` on the record at `phys` (size `len`, when known from a ConsumeQueue).
    pub fn with_record<R>(&self, phys: u64, f: impl FnOnce(&RecordView<'_>) -> R) -> Option<R> {
        self.seg
            .with_slice(phys, |buf| match record::parse(buf, phys, false) {
                Parsed::Record(r) => Some(f(&r)),
                _ => None,
            })
            .flatten()
    }

    /// The written bytes from `phys` to the end of its segment, zero-copy.
    pub fn read_to_segment_end(&self, phys: u64) -> Option<Bytes> {
        let seg = self.seg.seg_size() as u64;
        let end = (phys - phys % seg + seg).min(self.seg.write_pos());
        self.seg.read(phys, end.checked_sub(phys)? as usize)
    }

    /// `len` bytes at `phys`, zero-copy.
    pub fn read(&self, phys: u64, len: usize) -> Option<Bytes> {
        self.seg.read(phys, len)
    }

    pub fn flush_job(&self) -> FlushJob {
        self.seg.flush_job()
    }
    pub fn flushed_to(&mut self, upto: u64) {
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
}
