//! The ConsumeQueue of one (topic, queue): fixed 20-byte entries `(commitlog offset
//! i64, size i32, tag code i64)`, RocketMQ's layout, so queue offset N is at byte 20N.
//! In the schedule and timer topics the tag code holds the delivery time instead.
//!
//! Invariants: derived data, rebuilt from the CommitLog at will; `put` is idempotent
//! (replaying a range changes nothing); never holds an entry beyond the CommitLog end.

use std::io;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::store::{Backend, FlushJob, SegmentQueue};

pub(crate) const ENTRY: usize = 20;
/// RocketMQ's entries per ConsumeQueue file (6,000,000-byte files): the most a
/// queue's segment holds.
const ROCKETMQ_ENTRIES: usize = 300_000;
/// Entries per segment file; small under the fuzz targets, whose every run opens a
/// store.
pub(crate) const FILE_ENTRIES: usize = if cfg!(feature = "fuzzing") {
    1024
} else {
    ROCKETMQ_ENTRIES
};
/// Entries per segment where segments are held in memory whole (a memory store,
/// Node's file store): small, since every queue holds at least one.
pub(crate) const MEMORY_ENTRIES: usize = 16_384;
/// `size` of a filler entry before a queue's first real one (RocketMQ's pre-blank).
pub(crate) const BLANK_SIZE: u32 = i32::MAX as u32;
/// The widest hole blank entries fill in a queue with entries; a wider jump starts
/// the queue again at the new offset.
const MAX_GAP: u64 = 1 << 20;
/// No queue gets near this many entries (its byte position must fit a u64).
const MAX_QUEUE_OFFSET: u64 = 1 << 56;

/// One entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CqEntry {
    pub phys: u64,
    pub size: u32,
    pub code: u64,
}

impl CqEntry {
    /// Whether this is a filler entry (before a queue's first record, or for a
    /// record recovery skipped), not a record's.
    pub fn is_filler(&self) -> bool {
        self.size == BLANK_SIZE
    }
}

pub(crate) struct ConsumeQueue {
    seg: SegmentQueue,
}

pub(crate) fn cq_dir(topic: &str, queue_id: u32) -> String {
    format!("consumequeue/{topic}/{queue_id}")
}

fn decode(b: &[u8]) -> CqEntry {
    CqEntry {
        phys: u64::from_be_bytes(b[0..8].try_into().unwrap_or([0; 8])),
        size: u32::from_be_bytes(b[8..12].try_into().unwrap_or([0; 4])),
        code: u64::from_be_bytes(b[12..20].try_into().unwrap_or([0; 8])),
    }
}

impl ConsumeQueue {
    /// Opens a queue's files and finds its end (the first empty entry). `clean`: the
    /// store's last exit was clean, so nothing follows the end in its segment. A new
    /// queue's segments hold `entries`; existing files keep the size they were made
    /// with (a store written by a Node process, whose segments are small, and opened
    /// natively; or the other way round).
    pub fn open(
        backend: Arc<dyn Backend>,
        topic: &str,
        queue_id: u32,
        entries: usize,
        clean: bool,
    ) -> io::Result<ConsumeQueue> {
        let persistent = backend.is_persistent();
        let dir = cq_dir(topic, queue_id);
        let seg_size = Self::size_of_existing(&*backend, &dir)?.unwrap_or(entries * ENTRY);
        let mut seg = SegmentQueue::open_derived(backend, &dir, seg_size)?;
        if !persistent {
            // In memory a queue's pages are anonymous memory, zeroed in the first
            // write's page fault unless they are made ready ahead. (On files the
            // backend's one preparing slot stays the commit log's.)
            seg.prepare_ahead();
        }
        // The end is the first empty entry of the last segment holding any (a
        // segment allocated ahead may follow it, empty).
        let mut end = None;
        for base in seg.segment_bases().into_iter().rev() {
            let used = seg
                .with_raw(base, |b| {
                    b.chunks_exact(ENTRY)
                        .position(|e| decode(e).size == 0)
                        .unwrap_or(b.len() / ENTRY)
                })
                .unwrap_or(0);
            end = Some(base + (used * ENTRY) as u64);
            if used > 0 {
                break;
            }
        }
        if let Some(end) = end {
            if clean {
                seg.truncate_clean(end)?;
            } else {
                seg.truncate(end)?;
            }
            // The scan touched the whole file; let readers fault in what they need.
            seg.release_sealed_and_active();
        }
        let mut cq = ConsumeQueue { seg };
        // Skip leading filler entries when computing the minimum.
        let mut min = cq.seg.min_pos() / ENTRY as u64;
        while min < cq.max_offset() && cq.entry(min).is_some_and(|e| e.size == BLANK_SIZE) {
            min += 1;
        }
        cq.seg.set_min_pos(min * ENTRY as u64);
        Ok(cq)
    }

    /// The next queue offset to be written.
    pub fn max_offset(&self) -> u64 {
        self.seg.write_pos() / ENTRY as u64
    }

    /// The lowest retained queue offset.
    pub fn min_offset(&self) -> u64 {
        self.seg.min_pos() / ENTRY as u64
    }

    /// The entry at queue offset `qo`, if retained.
    pub fn entry(&self, qo: u64) -> Option<CqEntry> {
        self.seg
            .with_slice(qo * ENTRY as u64, |b| {
                (b.len() >= ENTRY).then(|| decode(&b[..ENTRY]))
            })
            .flatten()
    }

    /// The size of the queue's first segment file, when it is one a queue can have
    /// (whole entries, at most RocketMQ's 300,000).
    fn size_of_existing(backend: &dyn Backend, dir: &str) -> io::Result<Option<usize>> {
        let Some(&base) = backend.list(dir)?.first() else {
            return Ok(None);
        };
        Ok(backend
            .segment_len(dir, base)
            .ok()
            .filter(|&len| len > 0 && len % ENTRY == 0 && len / ENTRY <= ROCKETMQ_ENTRIES))
    }

    /// Up to `max` entries from `qo` (fewer at a segment end), in one read.
    pub fn entries(&self, qo: u64, max: usize, out: &mut Vec<CqEntry>) {
        out.clear();
        self.seg.with_slice(qo * ENTRY as u64, |b| {
            out.extend(b.chunks_exact(ENTRY).take(max).map(decode));
        });
    }

    /// Writes the entry for queue offset `qo`. Idempotent: an entry already present is
    /// left alone. An entry beyond the end of an empty queue restarts the queue there
    /// (its earlier records are gone from the CommitLog, or were never written here);
    /// beyond the end of a queue with entries, the offsets between are filled with
    /// blank entries (their records were damaged and skipped by recovery).
    pub fn put(&mut self, qo: u64, e: CqEntry) -> io::Result<()> {
        let max = self.max_offset();
        if qo < max {
            return Ok(());
        }
        let filler = CqEntry {
            phys: 0,
            size: BLANK_SIZE,
            code: 0,
        };
        if qo > max && (max == self.min_offset() || qo - max > MAX_GAP) {
            if qo > MAX_QUEUE_OFFSET {
                return Err(crate::store::corrupt(format!(
                    "queue offset {qo} is beyond any a queue reaches"
                )));
            }
            self.seg.reset_to(qo * ENTRY as u64)?;
            while self.max_offset() < qo {
                self.append(filler)?;
            }
            self.seg.set_min_pos(qo * ENTRY as u64);
        }
        while self.max_offset() < qo {
            self.append(filler)?;
        }
        self.append(e)
    }

    /// `put` for a record replayed from the log, which is the truth: an entry
    /// already present that disagrees with it (a damaged ConsumeQueue file) is cut,
    /// with everything after it, and written again.
    pub fn replay(&mut self, qo: u64, e: CqEntry) -> io::Result<()> {
        if qo < self.max_offset() && qo >= self.min_offset() {
            match self.entry(qo) {
                Some(have) if have == e => return Ok(()),
                _ => {
                    log::warn!(
                        "a ConsumeQueue entry at offset {qo} disagrees with the log; rebuilt"
                    );
                    self.seg.truncate(qo * ENTRY as u64)?;
                }
            }
        }
        self.put(qo, e)
    }

    /// Makes sure the next `n` entries have their segment allocated (see
    /// `SegmentQueue::reserve`), before the records they index are appended.
    pub fn reserve(&mut self, n: usize) -> io::Result<()> {
        self.seg.reserve(n * ENTRY, false)
    }

    fn append(&mut self, e: CqEntry) -> io::Result<()> {
        self.seg.append_with(ENTRY, |b, _| {
            b[0..8].copy_from_slice(&e.phys.to_be_bytes());
            b[8..12].copy_from_slice(&e.size.to_be_bytes());
            b[12..20].copy_from_slice(&e.code.to_be_bytes());
        })?;
        Ok(())
    }

    /// Drops entries whose record does not end at or before `end` (the CommitLog end).
    pub fn truncate_to_commitlog(&mut self, end: u64) -> io::Result<()> {
        let mut max = self.max_offset();
        while max > self.min_offset() {
            match self.entry(max - 1) {
                Some(e) if e.size != BLANK_SIZE && e.phys.saturating_add(e.size as u64) > end => {
                    max -= 1
                }
                _ => break,
            }
        }
        if max < self.max_offset() {
            self.seg.truncate(max * ENTRY as u64)?;
        }
        Ok(())
    }

    /// Moves the minimum to the first entry at or above the CommitLog's minimum and
    /// deletes segments wholly below it.
    pub fn correct_min(&mut self, commitlog_min: u64) -> io::Result<()> {
        let (mut lo, mut hi) = (self.min_offset(), self.max_offset());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid) {
                Some(e) if e.size == BLANK_SIZE || e.phys < commitlog_min => lo = mid + 1,
                _ => hi = mid,
            }
        }
        self.seg.set_min_pos(lo * ENTRY as u64);
        self.seg.remove_below(lo * ENTRY as u64)
    }

    /// The first queue offset whose entry satisfies `at_or_after` (entries are in
    /// CommitLog order, so any monotonic predicate works), or the max offset.
    pub fn search(&self, mut at_or_after: impl FnMut(&CqEntry) -> bool) -> u64 {
        let (mut lo, mut hi) = (self.min_offset(), self.max_offset());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid) {
                Some(e) if !at_or_after(&e) => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    pub fn flush_job(&self) -> FlushJob {
        self.seg.flush_job()
    }

    pub fn flushed_to(&mut self, upto: u64) {
        self.seg.flushed_to(upto)
    }
}

/// Every topic's ConsumeQueues, opened on demand over one backend.
pub(crate) struct ConsumeQueues {
    backend: Arc<dyn Backend>,
    /// Entries per segment file.
    entries: usize,
    map: FxHashMap<String, Vec<ConsumeQueue>>,
}

impl ConsumeQueues {
    /// Lets go of every queue's segments (a closed store: see
    /// `SegmentQueue::release`).
    pub fn release(&mut self) {
        for cq in self.map.values_mut().flatten() {
            cq.seg.release();
        }
    }

    pub fn new(backend: Arc<dyn Backend>, entries: usize) -> ConsumeQueues {
        ConsumeQueues {
            backend,
            entries,
            map: FxHashMap::default(),
        }
    }

    /// The queues of `topic`, if it has any.
    pub fn topic(&self, topic: &str) -> Option<&[ConsumeQueue]> {
        self.map.get(topic).map(Vec::as_slice)
    }

    pub fn get(&self, topic: &str, queue_id: u32) -> Option<&ConsumeQueue> {
        self.map.get(topic)?.get(queue_id as usize)
    }

    pub fn get_mut(&mut self, topic: &str, queue_id: u32) -> Option<&mut ConsumeQueue> {
        self.map.get_mut(topic)?.get_mut(queue_id as usize)
    }

    /// The number of queues `topic` has open.
    pub fn count(&self, topic: &str) -> u32 {
        self.map.get(topic).map_or(0, Vec::len) as u32
    }

    /// Makes sure `topic` has queues `0..n`. The one place a queue's directory is
    /// named: a name that is not a valid topic, or more than `MAX_QUEUES` queues,
    /// is refused here whatever the caller checked, so no path is ever built from
    /// anything unchecked (a record or a metadata file read back is input too).
    pub fn ensure(&mut self, topic: &str, n: u32) -> io::Result<()> {
        self.open_queues(topic, n, false)
    }

    /// `ensure` at the store's open; `clean`: its last exit was clean (see
    /// `ConsumeQueue::open`).
    pub fn reopen(&mut self, topic: &str, n: u32, clean: bool) -> io::Result<()> {
        self.open_queues(topic, n, clean)
    }

    fn open_queues(&mut self, topic: &str, n: u32, clean: bool) -> io::Result<()> {
        let have = self.count(topic);
        if have >= n {
            return Ok(());
        }
        if let Err(e) = crate::topic::validate_topic(topic) {
            return Err(crate::store::corrupt(format!(
                "no queues for {topic:?}: {e}"
            )));
        }
        if n > crate::topic::MAX_QUEUES {
            return Err(crate::store::corrupt(format!(
                "{topic}: {n} queues, at most {} are possible",
                crate::topic::MAX_QUEUES
            )));
        }
        let mut added = Vec::with_capacity((n - have) as usize);
        for q in have..n {
            added.push(ConsumeQueue::open(
                self.backend.clone(),
                topic,
                q,
                self.entries,
                clean,
            )?);
        }
        self.map.entry(topic.to_string()).or_default().extend(added);
        Ok(())
    }

    /// Drops `topic`'s queues and deletes their files (the topic was deleted).
    pub fn remove_topic(&mut self, topic: &str) -> io::Result<()> {
        self.map.remove(topic);
        self.backend.remove_dir(&format!("consumequeue/{topic}"))
    }

    /// Every (topic, queues) pair.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Vec<ConsumeQueue>)> {
        self.map.iter()
    }

    /// Every queue.
    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut ConsumeQueue> {
        self.map.values_mut().flatten()
    }

    /// Flush jobs of every queue, with the queue they belong to.
    pub fn flush_jobs(&self) -> Vec<(String, u32, FlushJob)> {
        self.map
            .iter()
            .flat_map(|(t, l)| {
                l.iter()
                    .enumerate()
                    .map(move |(q, cq)| (t.clone(), q as u32, cq.flush_job()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryBackend;

    fn e(phys: u64) -> CqEntry {
        CqEntry {
            phys,
            size: 10,
            code: 7,
        }
    }

    #[test]
    fn put_is_idempotent_and_dense() {
        let b: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        let mut cq = ConsumeQueue::open(b.clone(), "t", 0, 4, false).unwrap();
        for i in 0..10 {
            cq.put(i, e(i * 10)).unwrap();
        }
        cq.put(3, e(999)).unwrap();
        assert_eq!(cq.entry(3), Some(e(30)));
        assert_eq!(cq.max_offset(), 10);
        cq.truncate_to_commitlog(55).unwrap();
        assert_eq!(cq.max_offset(), 5);
        let reopened = ConsumeQueue::open(b, "t", 0, 4, false).unwrap();
        assert_eq!(reopened.max_offset(), 5);
    }

    #[test]
    fn a_queue_can_start_late_and_its_minimum_follows_retention() {
        let b: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        let mut cq = ConsumeQueue::open(b.clone(), "t", 1, 4, false).unwrap();
        cq.put(6, e(600)).unwrap();
        assert_eq!((cq.min_offset(), cq.max_offset()), (6, 7));
        for i in 7..20 {
            cq.put(i, e(i * 100)).unwrap();
        }
        cq.correct_min(1250).unwrap();
        assert_eq!(cq.min_offset(), 13);
        assert_eq!(cq.search(|x| x.phys >= 1500), 15);
        let reopened = ConsumeQueue::open(b, "t", 1, 4, false).unwrap();
        assert_eq!(reopened.max_offset(), 20);
        assert!(reopened.min_offset() <= 13);
    }
}
