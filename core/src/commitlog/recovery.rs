//! Finding the end of the CommitLog on open, and the checkpoint that bounds the work.
//!
//! A clean close writes the checkpoint (how far the log was flushed, and the store's
//! message-id nonce) and removes the `abort` marker that open creates. Open scans the
//! log record by record; after an unclean exit (the marker is still there) it also
//! checks CRCs from the segment the checkpoint points into. The first invalid record
//! ends the log: it and everything after it are cut and zeroed, so nothing torn or
//! stale can be read, or reappear after a later crash.

use std::io;

use serde::{Deserialize, Serialize};

use super::CommitLog;
use crate::message::record::{self, Parsed, RecordView, SYS_FLAG_ATOMIC, SYS_FLAG_ATOMIC_LAST};
use crate::store::meta::{read_json, write_json};
use crate::store::Backend;
use crate::Result;

/// Present while a broker has the store open; found at open, the last exit was unclean.
pub(crate) const ABORT_FILE: &str = "abort";

/// What a clean close leaves, and what an unclean open starts verifying from.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// Everything in the CommitLog below this offset was flushed.
    #[serde(rename = "physicFlushed")]
    pub flushed: u64,
    /// The store's message-id nonce.
    pub nonce: u64,
}

impl Checkpoint {
    pub const FILE: &'static str = "checkpoint";

    pub fn read(backend: &dyn Backend) -> Result<Option<Checkpoint>> {
        read_json(backend, Checkpoint::FILE)
    }

    pub fn write(&self, backend: &dyn Backend) -> Result<()> {
        write_json(backend, Checkpoint::FILE, self)
    }

    /// Where an open must start checking CRCs: nowhere after a clean exit, else the
    /// start of the segment the checkpoint points into.
    pub fn verify_from(checkpoint: Option<Checkpoint>, unclean: bool, seg_size: u64) -> u64 {
        if !unclean {
            return u64::MAX;
        }
        let flushed = checkpoint.map_or(0, |c| c.flushed);
        flushed - flushed % seg_size
    }
}

impl CommitLog {
    /// Scans the log from its first record, checking CRCs from `verify_from` on, calls
    /// `on_record` for every valid record, and cuts the log at the first invalid one
    /// (zeroing what is cut). An atomic block is kept only whole: one cut short by a
    /// crash is cut at its first record. Returns the end.
    pub fn recover(
        &mut self,
        verify_from: u64,
        mut on_record: impl FnMut(&RecordView<'_>),
    ) -> io::Result<u64> {
        let seg_size = self.seg.seg_size() as u64;
        let bases = self.seg.segment_bases();
        let mut pos = self.seg.min_pos();
        let last_base = bases.last().copied().unwrap_or(0);
        // Where the atomic block being scanned was found whole.
        let mut whole_to = 0u64;
        'scan: loop {
            let step = self.seg.with_raw(pos, |buf| {
                match record::parse(buf, pos, pos >= verify_from) {
                    Parsed::Record(r) => {
                        if pos >= whole_to && r.sys_flag & SYS_FLAG_ATOMIC != 0 {
                            whole_to = pos + block_len(buf, pos, verify_from)?;
                        }
                        on_record(&r);
                        let base = pos - pos % seg_size;
                        self.last_store_ts = self.last_store_ts.max(r.store_ts);
                        self.seg_last_ts.insert(base, self.last_store_ts);
                        Some(r.len() as u64)
                    }
                    Parsed::Blank => Some(buf.len() as u64),
                    Parsed::Invalid => None,
                }
            });
            match step.flatten() {
                Some(n) => {
                    let next = pos + n;
                    if next / (4 << 20) != pos / (4 << 20) {
                        // Keep the scan's resident set small as it goes.
                        self.seg.release_before(next);
                    }
                    if next.is_multiple_of(seg_size) && next > last_base {
                        pos = next;
                        break 'scan;
                    }
                    pos = next;
                }
                None => break 'scan,
            }
        }
        self.seg.truncate(pos)?;
        self.seg.release_sealed();
        Ok(pos)
    }
}

/// The length of the atomic block starting at the start of `buf` (at log position
/// `pos`), if every record of it up to its last is valid.
fn block_len(buf: &[u8], pos: u64, verify_from: u64) -> Option<u64> {
    let mut at = 0usize;
    loop {
        let p = pos + at as u64;
        let Parsed::Record(r) = record::parse(buf.get(at..)?, p, p >= verify_from) else {
            return None;
        };
        if r.sys_flag & SYS_FLAG_ATOMIC == 0 {
            return None;
        }
        at += r.len();
        if r.sys_flag & SYS_FLAG_ATOMIC_LAST != 0 {
            return Some(at as u64);
        }
    }
}
