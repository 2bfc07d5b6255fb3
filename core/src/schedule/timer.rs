//! Deliver-at timers (RocketMQ 5's `TimerMessageStore`, reduced): a deliver-at message sits in `rmq_sys_wheel_timer` queue 0, delivery time
//! (ms) as the tag code. A hashed timer wheel of one-second slots indexes them: each
//! slot holds the newest timer's queue offset and each timer the next one of its slot,
//! in a link log (8 bytes per timer) kept in the store's backend, not on the heap. So
//! 10 million pending timers cost 80 MB of mapped link log plus a fixed 1 MiB wheel,
//! not 10 million heap entries. A slot fires when its second comes round; timers of a
//! later round are relinked, those later in the current second wait in a short list
//! (millisecond precision). The wheel is derived data: on open it is rebuilt from the
//! timer ConsumeQueue from a persisted low-water mark, skipping what the checkpoint
//! says was delivered. A crash may deliver a timer twice, never lose one.

use std::io;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::message_store::MessageStore;
use crate::store::meta::{read_json, store_err, to_json};
use crate::store::{Backend, SegmentQueue};
use crate::topic;
use crate::Result;

/// What the timer persists: of the timers below queue offset `covered`, those due
/// at or before `delivered_until` were delivered; timer queue offsets below
/// `low_water` are all delivered. (The claim is bounded by `covered` because a
/// later run's clock may be behind this one's: a timer added then, due before
/// `delivered_until`, was not delivered.) Written only once the deliveries it
/// covers are durable.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TimerCheckpoint {
    #[serde(rename = "deliveredUntil")]
    pub delivered_until: u64,
    #[serde(rename = "lowWater")]
    pub low_water: u64,
    /// Missing in checkpoints of older stores: then nothing is taken as delivered
    /// beyond `low_water` (a timer may come twice, never not at all).
    #[serde(default)]
    pub covered: u64,
}

impl TimerCheckpoint {
    pub const FILE: &'static str = "config/timer.json";
}

const WHEEL_SLOTS: u64 = 1 << 17; // about 36 hours of one-second slots
const CHUNK: u64 = 4096;
const LINKS_DIR: &str = "timerwheel";
const LINK_SEGMENT: usize = if cfg!(feature = "fuzzing") {
    64 << 10
} else {
    8 << 20
};
/// The widest jump in timer queue offsets the link log bridges (128 MiB of links);
/// beyond it, with timers pending, a record is taken as damaged.
const MAX_LINK_GAP: u64 = 1 << 24;

pub(crate) struct TimerWheel {
    slots: Vec<u64>,
    links: SegmentQueue,
    /// First timer queue offset the link log covers.
    base: u64,
    /// Slots of seconds up to this one have been walked.
    processed_sec: u64,
    /// Timers due later in the current second: (deliver ms, queue offset).
    current: Vec<(u64, u64)>,
    /// Undelivered timers per chunk of queue offsets from `base`.
    chunk_pending: Vec<u32>,
    pending: u64,
    /// The checkpoint the wheel was opened from: replay skips what it says was delivered.
    restored: TimerCheckpoint,
    /// The checkpoint last persisted.
    saved: TimerCheckpoint,
}

impl TimerWheel {
    /// Lets go of the link log's segments (a closed store).
    pub fn release(&mut self) {
        self.links.release();
    }

    /// An empty wheel whose link log starts at timer queue offset `base`.
    pub fn new(backend: Arc<dyn Backend>, base: u64, processed_ms: u64) -> io::Result<TimerWheel> {
        let mut links = SegmentQueue::open_derived(backend, LINKS_DIR, LINK_SEGMENT)?;
        links.clear()?;
        Ok(TimerWheel {
            slots: vec![0; WHEEL_SLOTS as usize],
            links,
            base,
            processed_sec: (processed_ms / 1000).saturating_sub(1),
            current: Vec::new(),
            chunk_pending: Vec::new(),
            pending: 0,
            restored: TimerCheckpoint::default(),
            saved: TimerCheckpoint::default(),
        })
    }

    /// The wheel of a store, empty, to be filled by replaying the timer records from
    /// the persisted checkpoint on. `queued` is how many timer records the timer
    /// ConsumeQueue holds: a checkpoint past it (damaged) is brought back to it.
    pub fn open(backend: Arc<dyn Backend>, queued: u64, now: u64) -> Result<TimerWheel> {
        let mut cp: TimerCheckpoint =
            read_json(&*backend, TimerCheckpoint::FILE)?.unwrap_or_default();
        if cp.low_water > queued {
            log::warn!(
                "{}: low water {} is past the {queued} timers queued; replaying from there",
                TimerCheckpoint::FILE,
                cp.low_water
            );
            cp.low_water = queued;
        }
        cp.covered = cp.covered.min(queued);
        // Walking starts from now if the last run's clock was ahead of this one's.
        let processed = cp.delivered_until.min(now);
        let mut w = TimerWheel::new(backend, cp.low_water, processed).map_err(store_err)?;
        w.restored = cp;
        w.saved = cp;
        Ok(w)
    }

    /// After replay: a checkpoint whose low water is past the `queued` timer records
    /// the log holds (damaged) is brought back to them. Every record there is below
    /// the old low water, so delivered: the wheel starts over, empty, at `queued`.
    pub fn clamp_to_queued(&mut self, backend: Arc<dyn Backend>, queued: u64) -> Result<()> {
        if self.base <= queued {
            return Ok(());
        }
        log::warn!(
            "{}: low water {} is past the {queued} timers queued; going on from there",
            TimerCheckpoint::FILE,
            self.base
        );
        let processed_ms = (self.processed_sec + 1) * 1000;
        let mut w = TimerWheel::new(backend, queued, processed_ms).map_err(store_err)?;
        let cp = TimerCheckpoint {
            low_water: queued,
            covered: self.restored.covered.min(queued),
            ..self.restored
        };
        w.restored = cp;
        w.saved = cp;
        *self = w;
        Ok(())
    }

    /// A timer replayed on open: scheduled unless the checkpoint says it was delivered.
    pub fn replay(&mut self, qo: u64, deliver_ms: u64) -> io::Result<()> {
        if qo >= self.base
            && qo < self.restored.covered
            && deliver_ms <= self.restored.delivered_until
        {
            self.skip(qo)
        } else {
            self.add(qo, deliver_ms)
        }
    }

    /// The timer records due at `now`, in delivery order: (timer queue offset,
    /// delivery time, CommitLog offset).
    pub fn due_records(&mut self, store: &MessageStore, now: u64) -> Vec<(u64, u64, u64)> {
        if self.pending == 0 && self.current.is_empty() {
            return Vec::new();
        }
        let Some(cq) = store.queues.get(topic::TIMER_TOPIC, 0) else {
            return Vec::new();
        };
        let due = self.due(now, |qo| cq.entry(qo).map_or(0, |e| e.code));
        due.iter()
            .filter_map(|&(at, qo)| cq.entry(qo).map(|e| (qo, at, e.phys)))
            .collect()
    }

    /// The checkpoint file, when it changed since it was last persisted (or `all`).
    pub fn metadata(&mut self, now: u64, all: bool) -> Result<Option<(&'static str, Vec<u8>)>> {
        let cp = self.checkpoint(now);
        let changed =
            cp != self.saved && (self.pending > 0 || self.saved.low_water != cp.low_water);
        if !(all || changed) {
            return Ok(None);
        }
        self.saved = cp;
        Ok(Some((TimerCheckpoint::FILE, to_json(&cp)?)))
    }

    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// The queue offsets of the timers not yet delivered, in no order: each waits in
    /// one slot's chain or in the current second's list.
    pub fn pending_offsets(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self.current.iter().map(|&(_, qo)| qo).collect();
        if self.pending == 0 {
            return out;
        }
        for &head in &self.slots {
            let mut next = head;
            while next != 0 {
                out.push(next - 1);
                next = self.read_link(next - 1);
            }
        }
        out
    }

    /// A timer queue offset at or below every pending timer's (retention keeps
    /// their records): the start of the first chunk with one pending, or of any
    /// waiting in the current second.
    pub fn first_pending(&self) -> Option<u64> {
        let chunk = self.chunk_pending.iter().position(|c| *c > 0);
        let in_chunks = chunk.map(|c| self.base + c as u64 * CHUNK);
        let current = self.current.iter().map(|(_, qo)| *qo).min();
        in_chunks.into_iter().chain(current).min()
    }

    /// Makes sure the links of the next `n` timers have their segment allocated,
    /// before their records are appended.
    pub fn reserve(&mut self, n: usize) -> io::Result<()> {
        self.links.reserve(n * 8, false)
    }

    fn link_pos(&self, qo: u64) -> u64 {
        (qo - self.base) * 8
    }

    fn read_link(&self, qo: u64) -> u64 {
        self.links
            .with_slice(self.link_pos(qo), |b| {
                u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]))
            })
            .unwrap_or(0)
    }

    fn ensure_link(&mut self, qo: u64) -> io::Result<()> {
        let end = self.base + self.links.write_pos() / 8;
        if qo >= end.saturating_add(MAX_LINK_GAP) {
            if self.pending > 0 || !self.current.is_empty() {
                return Err(crate::store::corrupt(format!(
                    "timer queue offset {qo} is far beyond the last one ({end})"
                )));
            }
            // Nothing pending: the link log starts again at this timer.
            self.links.clear()?;
            self.slots.fill(0);
            self.chunk_pending.clear();
            self.base = qo;
        }
        while self.base + self.links.write_pos() / 8 <= qo {
            self.links.append_with(8, |b, _| b.fill(0))?;
        }
        Ok(())
    }

    fn link(&mut self, qo: u64, deliver_ms: u64) {
        let slot = ((deliver_ms / 1000) % WHEEL_SLOTS) as usize;
        let head = self.slots[slot];
        self.links.write_at(self.link_pos(qo), &head.to_le_bytes());
        self.slots[slot] = qo + 1;
    }

    /// Adds the timer at queue offset `qo` (offsets arrive in increasing order).
    pub fn add(&mut self, qo: u64, deliver_ms: u64) -> io::Result<()> {
        if qo < self.base {
            return Ok(());
        }
        self.ensure_link(qo)?;
        let chunk = ((qo - self.base) / CHUNK) as usize;
        if self.chunk_pending.len() <= chunk {
            self.chunk_pending.resize(chunk + 1, 0);
        }
        self.chunk_pending[chunk] += 1;
        self.pending += 1;
        if deliver_ms / 1000 <= self.processed_sec {
            self.current.push((deliver_ms, qo));
        } else {
            self.link(qo, deliver_ms);
        }
        Ok(())
    }

    /// Marks a timer a caller has just skipped as already delivered (rebuild).
    pub fn skip(&mut self, qo: u64) -> io::Result<()> {
        if qo >= self.base {
            self.ensure_link(qo)?;
        }
        Ok(())
    }

    /// The queue offsets of timers due at `now`, in delivery-time order. `deliver_ms`
    /// reads a timer's delivery time from the timer ConsumeQueue.
    pub fn due(&mut self, now: u64, mut deliver_ms: impl FnMut(u64) -> u64) -> Vec<(u64, u64)> {
        let now_sec = now / 1000;
        let mut due = Vec::new();
        if self.pending > 0 && now_sec > self.processed_sec {
            let walk = (now_sec - self.processed_sec).min(WHEEL_SLOTS);
            for sec in now_sec + 1 - walk..=now_sec {
                let slot = (sec % WHEEL_SLOTS) as usize;
                let mut next = std::mem::take(&mut self.slots[slot]);
                while next != 0 {
                    let qo = next - 1;
                    next = self.read_link(qo);
                    let at = deliver_ms(qo);
                    if at <= now {
                        due.push((at, qo));
                    } else if at / 1000 == now_sec {
                        self.current.push((at, qo));
                    } else {
                        self.link(qo, at);
                    }
                }
            }
        }
        self.processed_sec = self.processed_sec.max(now_sec);
        if !self.current.is_empty() {
            self.current.retain(|&(at, qo)| {
                if at <= now {
                    due.push((at, qo));
                    false
                } else {
                    true
                }
            });
        }
        due.sort_unstable();
        for &(_, qo) in &due {
            let chunk = ((qo - self.base) / CHUNK) as usize;
            if let Some(c) = self.chunk_pending.get_mut(chunk) {
                *c = c.saturating_sub(1);
            }
            self.pending = self.pending.saturating_sub(1);
        }
        due
    }

    /// The earliest time something may be due: the next second boundary when timers
    /// are pending (exact for the current second's list).
    pub fn next_due(&self) -> Option<u64> {
        if self.pending == 0 {
            return None;
        }
        let next_sec = (self.processed_sec + 1) * 1000;
        Some(
            self.current
                .iter()
                .map(|(at, _)| *at)
                .min()
                .map_or(next_sec, |c| c.min(next_sec)),
        )
    }

    /// What to persist after delivering everything due at `now`.
    pub fn checkpoint(&self, now: u64) -> TimerCheckpoint {
        let mut delivered_until = now.min((self.processed_sec + 1) * 1000 - 1);
        if let Some(min) = self.current.iter().map(|(at, _)| *at).min() {
            delivered_until = delivered_until.min(min.saturating_sub(1));
        }
        let first_busy = self.chunk_pending.iter().position(|c| *c > 0);
        let low_water = match first_busy {
            Some(chunk) => self.base + chunk as u64 * CHUNK,
            None => self.base + self.links.write_pos() / 8,
        };
        TimerCheckpoint {
            delivered_until,
            low_water,
            covered: self.base + self.links.write_pos() / 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryBackend;

    #[test]
    fn timers_fire_at_their_millisecond_across_rounds() {
        let b: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        let start = 1_000_000_000u64;
        let mut w = TimerWheel::new(b, 0, start).unwrap();
        let times = [
            start + 1500,
            start + 1200,
            start + WHEEL_SLOTS * 1000 + 1200,
            start + 70_000,
        ];
        for (qo, at) in times.iter().enumerate() {
            w.add(qo as u64, *at).unwrap();
        }
        let at = |qo: u64| times[qo as usize];
        assert!(w.due(start + 1199, at).is_empty());
        assert_eq!(w.due(start + 1200, at), vec![(start + 1200, 1)]);
        assert!(w.due(start + 1499, at).is_empty());
        assert_eq!(w.due(start + 1500, at), vec![(start + 1500, 0)]);
        assert_eq!(w.due(start + 80_000, at), vec![(start + 70_000, 3)]);
        assert_eq!(w.pending(), 1);
        let cp = w.checkpoint(start + 80_000);
        assert_eq!(cp.low_water, 0);
        assert_eq!(
            w.due(start + WHEEL_SLOTS * 1000 + 1200, at),
            vec![(start + WHEEL_SLOTS * 1000 + 1200, 2)]
        );
        assert_eq!(w.pending(), 0);
        assert_eq!(w.checkpoint(start + WHEEL_SLOTS * 1000 + 1300).low_water, 4);
    }

    #[test]
    fn a_long_jump_delivers_everything_due() {
        let b: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        let mut w = TimerWheel::new(b, 10, 0).unwrap();
        let at = |qo: u64| qo * 3_600_000;
        for qo in 10..60 {
            w.add(qo, at(qo)).unwrap();
        }
        let due = w.due(40 * 3_600_000, at);
        assert_eq!(due.len(), 31);
        assert_eq!(w.pending(), 19);
    }
}
