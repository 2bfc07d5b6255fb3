//! Finding the end of the CommitLog on open, and the checkpoint that bounds the tail.
//!
//! The checkpoint says how far the log was flushed (written while the broker runs and
//! at close, which also removes the `abort` marker that open creates). Open scans
//! the log record by record, checking every CRC. In the tail a crash may have torn
//! (past the checkpoint, in the last segment) the first invalid record ends the log:
//! it and everything after it are cut and zeroed, so nothing torn or stale can be
//! read, or reappear after a later crash. Anywhere else an invalid record is damage:
//! skipped to the next intact record and reported, never a reason to cut what
//! follows.

use std::io;

use serde::{Deserialize, Serialize};

use super::CommitLog;
use crate::message::id::Epoch;
use crate::message::record::{self, Parsed, RecordView, SYS_FLAG_ATOMIC, SYS_FLAG_ATOMIC_LAST};
use crate::store::meta::{read_json, write_json};
use crate::store::Backend;
use crate::Result;

/// Present while a broker has the store open; found at open, the last exit was unclean.
pub(crate) const ABORT_FILE: &str = "abort";

/// What a clean close leaves, and what an unclean open starts verifying from.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// Everything in the CommitLog below this offset was flushed.
    #[serde(rename = "physicFlushed")]
    pub flushed: u64,
    /// The store's first message-id nonce.
    pub nonce: u64,
    /// The later ones (`Nonces`), kept here too so that losing `store.json` changes
    /// no message id.
    #[serde(default, rename = "laterNonces", skip_serializing_if = "Vec::is_empty")]
    pub later: Vec<Epoch>,
}

impl Checkpoint {
    pub const FILE: &'static str = "checkpoint";

    pub fn read(backend: &dyn Backend) -> Result<Option<Checkpoint>> {
        read_json(backend, Checkpoint::FILE)
    }

    pub fn write(&self, backend: &dyn Backend) -> Result<()> {
        write_json(backend, Checkpoint::FILE, self)
    }
}

/// Who the store is: its message-id nonce and its CommitLog segment size, written
/// when the store is created (`config/store.json`), besides the checkpoint, so
/// losing either one changes no message id and no segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoreInfo {
    /// The first message-id nonce.
    pub nonce: u64,
    #[serde(rename = "segmentSize")]
    pub segment_size: u64,
    /// The later message-id nonces, one from each open after an unclean exit
    /// (`Nonces`).
    #[serde(default, rename = "laterNonces", skip_serializing_if = "Vec::is_empty")]
    pub later: Vec<Epoch>,
}

impl StoreInfo {
    pub const FILE: &'static str = "config/store.json";

    /// Whether `size` can be a CommitLog segment size.
    pub fn valid_size(size: u64) -> bool {
        (4096..=1 << 30).contains(&size)
    }
}

/// What the open-time scan found.
pub(crate) struct Scan {
    /// The end of the log: the next record goes here.
    pub end: u64,
    /// Ranges skipped as damaged, below the end: their records are lost, the
    /// records after them kept.
    pub damaged: Vec<(u64, u64)>,
}

impl CommitLog {
    /// Scans the log from its first record, checking every record's CRC, and calls
    /// `on_record` for each intact one. A damaged record in the tail that a crash
    /// may have torn (the last segment, at or after `tail_from`, what the
    /// checkpoint says was flushed) ends the log: it and what follows in that
    /// segment are cut and zeroed. A damaged record anywhere else is skipped, up to
    /// the next intact record (or the next segment), and reported: damage is never
    /// a reason to drop what follows it.
    /// An atomic block is kept only whole: one cut short by a crash ends the log at
    /// its first record.
    pub fn recover(
        &mut self,
        tail_from: u64,
        mut on_record: impl FnMut(&RecordView<'_>),
    ) -> io::Result<Scan> {
        let seg_size = self.seg.seg_size() as u64;
        let bases = self.seg.segment_bases();
        let mut pos = self.seg.min_pos();
        let mut damaged = Vec::new();
        // Trailing segments with nothing at their start (prepared ahead of need)
        // are past the end: the last segment is the last one holding data. One the
        // checkpoint says was written holds data whatever its first bytes (damage
        // there is skipped like damage anywhere, not taken for the end).
        let holds_data = |base: u64| {
            base < tail_from
                || self
                    .seg
                    .with_raw(base, |b| b.len() >= 8 && b[..8] != [0u8; 8])
                    .unwrap_or(false)
        };
        let last = bases
            .iter()
            .rev()
            .find(|b| holds_data(**b))
            .or(bases.first());
        let Some(&last_base) = last else {
            self.seg.truncate(pos)?;
            return Ok(Scan { end: pos, damaged });
        };
        let log_end = last_base + seg_size;
        // Where the atomic block being scanned was found whole.
        let mut whole_to = 0u64;
        enum Step {
            Advance(u64),
            Bad,
        }
        while pos < log_end {
            let step = self
                .seg
                .with_raw(pos, |buf| match record::parse(buf, pos, true) {
                    Parsed::Record(r) => {
                        if pos >= whole_to && r.sys_flag & SYS_FLAG_ATOMIC != 0 {
                            match block_len(buf, pos) {
                                Some(n) => whole_to = pos + n,
                                None => return Step::Bad,
                            }
                        }
                        on_record(&r);
                        let base = pos - pos % seg_size;
                        self.last_store_ts = self.last_store_ts.max(r.store_ts);
                        self.seg_last_ts.insert(base, self.last_store_ts);
                        Step::Advance(r.len() as u64)
                    }
                    Parsed::Blank => Step::Advance(buf.len() as u64),
                    Parsed::Invalid => Step::Bad,
                });
            match step {
                None => break,
                Some(Step::Advance(n)) => {
                    let next = pos + n;
                    if next / (4 << 20) != pos / (4 << 20) {
                        // Keep the scan's resident set small as it goes.
                        self.seg.release_before(next);
                    }
                    pos = next;
                }
                Some(Step::Bad) => {
                    let base = pos - pos % seg_size;
                    let last = base == last_base;
                    if last && pos >= tail_from {
                        break; // the tail a crash may have torn
                    }
                    let next = self.next_record(pos);
                    if last && next.is_none() {
                        break; // nothing intact follows: the end
                    }
                    let resume = next.unwrap_or(base + seg_size);
                    log::warn!(
                        "CommitLog bytes {pos}..{resume} are damaged: skipped, the records \
                         after them are kept"
                    );
                    damaged.push((pos, resume));
                    pos = resume;
                }
            }
        }
        let end = pos.min(log_end);
        if self.seg.truncate(end)? {
            log::warn!("recovery cut the CommitLog at offset {end}: a torn or damaged tail");
        }
        self.seg.release_sealed();
        Ok(Scan { end, damaged })
    }

    /// The offset of the first intact record after `pos` in its segment, if any.
    fn next_record(&self, pos: u64) -> Option<u64> {
        self.seg
            .with_raw(pos, |buf| {
                (1..buf.len().saturating_sub(record::FIXED_LEN)).find_map(|i| {
                    let magic = record::get_u32(buf, i + 4);
                    let candidate = magic == record::MAGIC_V1 || magic == record::MAGIC_V2;
                    let at = pos + i as u64;
                    (candidate && matches!(record::parse(&buf[i..], at, true), Parsed::Record(_)))
                        .then_some(at)
                })
            })
            .flatten()
    }
}

/// The length of the atomic block starting at the start of `buf` (at log position
/// `pos`), if every record of it up to its last is valid.
fn block_len(buf: &[u8], pos: u64) -> Option<u64> {
    let mut at = 0usize;
    loop {
        let p = pos + at as u64;
        let Parsed::Record(r) = record::parse(buf.get(at..)?, p, true) else {
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
