//! Delayed messages (RocketMQ's `ScheduleMessageService`): delay levels here, and
//! deliver-at timers in `timer.rs`.
//!
//! A message delayed by level sits in `SCHEDULE_TOPIC_XXXX` queue `level-1` with its
//! real topic and queue in properties and its delivery time as the ConsumeQueue tag
//! code; every message of a level has the same delay, so queue order is delivery
//! order and one cursor per level (persisted as `config/delay_offsets.json`,
//! RocketMQ's `delayOffset.json`) suffices. When due, a copy goes to the real topic
//! (the engine appends it) and the cursor moves past it. A crash may deliver a
//! message twice (the cursor is persisted within about 50 ms of a delivery, the
//! rest of the metadata once a second), never lose one.

pub(crate) mod recall;
pub(crate) mod timer;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub(crate) use timer::TimerWheel;

use crate::message::properties::{self, prop};
use crate::message::record::RecordSpec;
use crate::message_store::MessageStore;
use crate::store::meta::{read_json, to_json};
use crate::store::Backend;
use crate::topic;
use crate::{Delay, Error, Result};

/// The longest delay level accepted.
const MAX_LEVEL_MS: u64 = 365 * 86_400_000;

/// Most records one delivery step copies to their real topics in one append.
pub(crate) const DELIVERY_BATCH: usize = 256;

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
        match n.checked_mul(mult).filter(|ms| *ms <= MAX_LEVEL_MS) {
            Some(ms) => out.push(ms),
            None => {
                return Err(Error::invalid(format!(
                    "delay level {item:?} is too long (the longest is 365 days)"
                )))
            }
        }
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

/// Delay levels and their cursors.
pub(crate) struct ScheduleService {
    /// The delay of each level, in ms.
    pub levels: Vec<u64>,
    offsets: DelayOffsets,
    dirty: bool,
}

impl ScheduleService {
    pub fn open(levels: Vec<u64>, backend: &dyn Backend) -> Result<ScheduleService> {
        let offsets = read_json(backend, DelayOffsets::FILE)?.unwrap_or_default();
        Ok(ScheduleService {
            levels,
            offsets,
            dirty: false,
        })
    }

    fn level_count(&self) -> u32 {
        self.levels.len() as u32
    }

    /// The schedule queues to read: one per level, and those of levels a store opened
    /// with fewer levels no longer has (their messages still come due: recovery
    /// counts their delay as the last level's, as a send above the last is clamped).
    fn queue_count(&self, store: &MessageStore) -> u32 {
        self.level_count()
            .max(store.queues.count(topic::SCHEDULE_TOPIC))
    }

    /// `delay` counted from `since` (a moment already past) rather than from when
    /// the record is stored: a delivery at a fixed time.
    pub fn counted_from(&self, delay: Delay, since: u64) -> Delay {
        match delay {
            Delay::Level(l) if l > 0 => {
                let i = l.min(self.level_count()).saturating_sub(1) as usize;
                Delay::At(since.saturating_add(self.levels.get(i).copied().unwrap_or(0)))
            }
            Delay::After(ms) => Delay::At(since.saturating_add(ms)),
            other => other,
        }
    }

    /// Level `level`'s cursor, never below what the store retains.
    fn cursor(&self, store: &MessageStore, level: u32) -> Option<u64> {
        let cq = store.queues.get(topic::SCHEDULE_TOPIC, level - 1)?;
        let cur = self.offsets.table.get(&level).copied().unwrap_or(0);
        Some(cur.max(cq.min_offset()))
    }

    /// Clamps the cursors into what the schedule queues hold (after recovery).
    pub fn clamp_cursors(&mut self, store: &MessageStore) {
        for level in 1..=self.queue_count(store) {
            if let Some(cq) = store.queues.get(topic::SCHEDULE_TOPIC, level - 1) {
                let cur = self.offsets.table.get(&level).copied().unwrap_or(0);
                let clamped = cur.clamp(cq.min_offset(), cq.max_offset());
                if clamped != cur {
                    self.offsets.table.insert(level, clamped);
                    self.dirty = true;
                }
            }
        }
    }

    /// Turns `spec` into a message that waits for `delay`: a level's schedule queue,
    /// or the timer topic for a time ahead of `now` (at most `max_delay_ms` ahead).
    /// A time already past, and no delay, leave it as it is.
    pub fn apply(
        &self,
        spec: &mut RecordSpec,
        delay: Delay,
        now: u64,
        max_delay_ms: u64,
        store: &mut MessageStore,
    ) -> Result<()> {
        let at = match delay {
            Delay::None | Delay::Level(0) => return Ok(()),
            Delay::Level(l) => {
                let level = l.min(self.level_count());
                self.redirect(spec, topic::SCHEDULE_TOPIC, level - 1, prop::DELAY, level);
                store.system_queues(topic::SCHEDULE_TOPIC, self.level_count())?;
                return Ok(());
            }
            Delay::At(ms) => ms,
            Delay::After(ms) => now.saturating_add(ms),
        };
        if at <= now {
            return Ok(());
        }
        if at - now > max_delay_ms {
            return Err(Error::invalid(format!(
                "delivery {} ms ahead is beyond timer_max_delay ({max_delay_ms} ms)",
                at - now
            )));
        }
        self.redirect(spec, topic::TIMER_TOPIC, 0, prop::TIMER_DELIVER_MS, at);
        store.system_queues(topic::TIMER_TOPIC, 1)?;
        Ok(())
    }

    /// Points `spec` at an engine topic, keeping its real topic and queue.
    fn redirect(
        &self,
        spec: &mut RecordSpec,
        to: &str,
        queue_id: u32,
        name: &str,
        value: impl ToString,
    ) {
        // What dispatch reads is no longer where the send noted it.
        spec.found = crate::message::properties::Found::UNKNOWN;
        properties::push(&mut spec.properties, name, &value.to_string());
        properties::push(&mut spec.properties, prop::REAL_TOPIC, &spec.topic);
        properties::push(
            &mut spec.properties,
            prop::REAL_QID,
            &spec.queue_id.to_string(),
        );
        spec.topic = to.into();
        spec.queue_id = queue_id;
    }

    /// The next batch of level messages due at `now`: (level, cursor after them,
    /// their CommitLog offsets). Nothing due: None.
    pub fn due_batch(&self, store: &MessageStore, now: u64) -> Option<(u32, u64, Vec<u64>)> {
        for level in 1..=self.queue_count(store) {
            let (Some(cq), Some(mut cur)) = (
                store.queues.get(topic::SCHEDULE_TOPIC, level - 1),
                self.cursor(store, level),
            ) else {
                continue;
            };
            let mut due = Vec::new();
            while cur < cq.max_offset() && due.len() < DELIVERY_BATCH {
                match cq.entry(cur) {
                    Some(e) if e.code <= now => {
                        due.push(e.phys);
                        cur += 1;
                    }
                    _ => break,
                }
            }
            if !due.is_empty() {
                return Some((level, cur, due));
            }
        }
        None
    }

    /// Moves `level`'s cursor (its messages below were delivered).
    pub fn advance(&mut self, level: u32, cursor: u64) {
        self.offsets.table.insert(level, cursor);
        self.dirty = true;
    }

    /// The earliest delivery time of a waiting level message.
    pub fn next_due(&self, store: &MessageStore) -> Option<u64> {
        (1..=self.queue_count(store))
            .filter_map(|level| {
                let cq = store.queues.get(topic::SCHEDULE_TOPIC, level - 1)?;
                cq.entry(self.cursor(store, level)?).map(|e| e.code)
            })
            .min()
    }

    /// The lowest CommitLog offset of a level message not yet delivered (retention
    /// keeps it): each level's queue is in CommitLog order, so its cursor's.
    pub fn first_pending_phys(&self, store: &MessageStore) -> Option<u64> {
        (1..=self.queue_count(store))
            .filter_map(|level| {
                let cq = store.queues.get(topic::SCHEDULE_TOPIC, level - 1)?;
                crate::retention::first_record(cq, self.cursor(store, level)?)
            })
            .min()
    }

    /// Level messages not yet delivered.
    pub fn pending(&self, store: &MessageStore) -> u64 {
        (1..=self.queue_count(store))
            .filter_map(|level| {
                let cq = store.queues.get(topic::SCHEDULE_TOPIC, level - 1)?;
                Some(cq.max_offset().saturating_sub(self.cursor(store, level)?))
            })
            .sum()
    }

    /// The CommitLog offsets of the level messages not yet delivered.
    pub fn pending_phys(&self, store: &MessageStore) -> Vec<u64> {
        let mut out = Vec::new();
        for level in 1..=self.queue_count(store) {
            let (Some(cq), Some(cur)) = (
                store.queues.get(topic::SCHEDULE_TOPIC, level - 1),
                self.cursor(store, level),
            ) else {
                continue;
            };
            out.extend((cur..cq.max_offset()).filter_map(|qo| cq.entry(qo).map(|e| e.phys)));
        }
        out
    }

    /// The cursors file, when they moved since the last call (or `all`).
    pub fn metadata(&mut self, all: bool) -> Result<Option<(&'static str, Vec<u8>)>> {
        if !(all || self.dirty) {
            return Ok(None);
        }
        self.dirty = false;
        Ok(Some((DelayOffsets::FILE, to_json(&self.offsets)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn absurd_levels_are_refused_not_wrapped() {
        assert!(parse_levels("18446744073709552s").is_err());
        assert!(parse_levels("99999999999d").is_err());
        assert_eq!(parse_levels("365d").unwrap(), vec![MAX_LEVEL_MS]);
    }
}
