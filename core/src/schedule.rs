//! Delay levels and deliver-at timers.
//!
//! Levels: a delayed message sits in `SCHEDULE_TOPIC_XXXX` queue `level-1` with its
//! delivery time as the ConsumeQueue tag code; every message of a level has the same
//! delay, so queue order is delivery order and one cursor per level (persisted as
//! `config/delay_offsets.json`, RocketMQ's `delayOffset.json`) suffices.
//!
//! Timers: a deliver-at message sits in `rmq_sys_wheel_timer` queue 0, delivery time
//! (ms) as the tag code. A hashed timer wheel of one-second slots indexes them: each
//! slot holds the newest timer's queue offset and each timer the next one of its slot,
//! in a link log (8 bytes per timer) kept in the store's backend, not on the heap. So
//! 10 million pending timers cost 80 MB of mapped link log plus a fixed 1 MiB wheel,
//! not 10 million heap entries. A slot fires when its second comes round; timers of a
//! later round are relinked, those later in the current second wait in a short list
//! (millisecond precision). The wheel is derived data: on open it is rebuilt from the
//! timer ConsumeQueue from a persisted low-water mark, skipping what the checkpoint
//! says was delivered. A crash may deliver a timer twice, never lose one.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::store::{Backend, SegmentQueue};
use crate::{Error, Result};

/// Parses RocketMQ's level syntax: `"1s 5s 10s 30s 1m ... 2h"` (units s, m, h, d).
pub(crate) fn parse_levels(spec: &str) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for item in spec.split_whitespace() {
        let unit = item.chars().last().unwrap_or(' ');
        let num = &item[..item.len() - unit.len_utf8()];
        let mult = match unit {
            's' => 1000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            _ => {
                return Err(Error::invalid(format!(
                    "delay level {item:?}: the unit must be s, m, h or d"
                )))
            }
        };
        let n: u64 = num.parse().map_err(|_| {
            Error::invalid(format!("delay level {item:?} is not a number and a unit"))
        })?;
        if n == 0 {
            return Err(Error::invalid(format!(
                "delay level {item:?} must be positive"
            )));
        }
        out.push(n * mult);
    }
    if out.is_empty() || out.len() > 64 {
        return Err(Error::invalid("delay_levels needs 1 to 64 levels"));
    }
    Ok(out)
}

/// Per-level cursors into the schedule topic.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct DelayOffsets {
    #[serde(rename = "offsetTable")]
    pub table: BTreeMap<u32, u64>,
}

impl DelayOffsets {
    pub const FILE: &'static str = "config/delay_offsets.json";
}

/// What the timer persists: everything due at or before `delivered_until` was
/// delivered; timer queue offsets below `low_water` are all delivered.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TimerCheckpoint {
    #[serde(rename = "deliveredUntil")]
    pub delivered_until: u64,
    #[serde(rename = "lowWater")]
    pub low_water: u64,
}

impl TimerCheckpoint {
    pub const FILE: &'static str = "config/timer.json";
}

const WHEEL_SLOTS: u64 = 1 << 17; // about 36 hours of one-second slots
const CHUNK: u64 = 4096;
const LINKS_DIR: &str = "timerwheel";
const LINK_SEGMENT: usize = 8 << 20;

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
}

impl TimerWheel {
    /// An empty wheel whose link log starts at timer queue offset `base`.
    pub fn new(backend: Arc<dyn Backend>, base: u64, processed_ms: u64) -> io::Result<TimerWheel> {
        let mut links = SegmentQueue::open(backend, LINKS_DIR, LINK_SEGMENT)?;
        links.reset_to(0)?;
        let mut w = TimerWheel {
            slots: vec![0; WHEEL_SLOTS as usize],
            links,
            base,
            processed_sec: (processed_ms / 1000).saturating_sub(1),
            current: Vec::new(),
            chunk_pending: Vec::new(),
            pending: 0,
        };
        w.links.reset_to(0)?;
        Ok(w)
    }

    pub fn pending(&self) -> u64 {
        self.pending
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryBackend;

    #[test]
    fn default_levels_parse() {
        let l = parse_levels(crate::DEFAULT_DELAY_LEVELS).unwrap();
        assert_eq!(l.len(), 18);
        assert_eq!((l[0], l[2], l[17]), (1000, 10_000, 7_200_000));
        assert!(parse_levels("1x").is_err());
        assert!(parse_levels("").is_err());
        assert!(parse_levels("0s").is_err());
        assert!(parse_levels("1é").is_err());
        assert!(parse_levels("é").is_err());
    }

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
