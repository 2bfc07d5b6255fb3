//! Committed consumer offsets, persisted as `config/offsets.json` in RocketMQ's
//! `consumerOffset.json` shape: `{"offsetTable": {"topic@group": {"0": 12, ...}}}`.
//! Broadcasting consumers keep their own entries under `topic@group@consumer`.
//! Beside it, `ackedAbove` (same keys) keeps the offsets acked above each committed
//! offset, as runs `[from, to)`: a restart passes over them instead of delivering
//! them again (RocketMQ redelivers everything from the committed offset).
//! Also what reads or moves a group's position: lag and offset resets.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::progress::of_group;
use super::{ConsumerGroups, QueueProgress};
use crate::message_store::MessageStore;
use crate::store::meta::to_json;
use crate::topic;
use crate::{Error, Result, StartFrom};

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct OffsetTable {
    #[serde(rename = "offsetTable")]
    pub table: BTreeMap<String, BTreeMap<u32, u64>>,
    /// Offsets acked above the committed one, as runs `[from, to)`, by the same keys.
    #[serde(
        rename = "ackedAbove",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub acked: BTreeMap<String, BTreeMap<u32, Vec<[u64; 2]>>>,
}

/// The most offsets acked above a queue's committed offset that are kept across a
/// restart; a queue with more (a filter that passed over a long stretch behind an
/// unacked message, say) is read again from its committed offset, as RocketMQ does.
pub(crate) const ACKED_ABOVE_MAX: usize = 65_536;

/// `offsets` (ascending) as runs `[from, to)`; empty when there are more than
/// `ACKED_ABOVE_MAX`.
fn runs(offsets: impl IntoIterator<Item = u64>) -> Vec<[u64; 2]> {
    let mut out: Vec<[u64; 2]> = Vec::new();
    for (n, qo) in offsets.into_iter().enumerate() {
        if n >= ACKED_ABOVE_MAX {
            return Vec::new();
        }
        match out.last_mut() {
            Some(run) if run[1] == qo => run[1] += 1,
            _ => out.push([qo, qo.saturating_add(1)]),
        }
    }
    out
}

impl OffsetTable {
    pub const FILE: &'static str = "config/offsets.json";

    pub fn key(topic: &str, owner: &str) -> String {
        format!("{topic}@{owner}")
    }

    pub fn get(&self, topic: &str, owner: &str, queue_id: u32) -> Option<u64> {
        self.table
            .get(&Self::key(topic, owner))?
            .get(&queue_id)
            .copied()
    }

    pub fn set(&mut self, topic: &str, owner: &str, queue_id: u32, offset: u64) -> bool {
        let slot = self.table.entry(Self::key(topic, owner)).or_default();
        slot.insert(queue_id, offset) != Some(offset)
    }

    /// After recovery: offsets beyond the end of their queue (its tail was torn and
    /// cut off) move back to the end, so the messages stored there next are read,
    /// not passed over as acked. True when one moved.
    pub fn clamp_to(&mut self, store: &MessageStore) -> bool {
        let mut moved = false;
        for (key, queues) in &mut self.table {
            let Some((t, _)) = key.split_once('@') else {
                continue;
            };
            for (q, offset) in queues.iter_mut() {
                let max = store.queues.get(t, *q).map_or(0, |cq| cq.max_offset());
                if *offset > max {
                    log::warn!(
                        "{key} queue {q}: committed offset {offset} is past the queue's end \
                         {max} after recovery; it reads from {max}"
                    );
                    *offset = max;
                    moved = true;
                }
            }
        }
        moved
    }
}

impl ConsumerGroups {
    /// The owners (group, or group@consumer when broadcasting) with progress on `t`:
    /// found by ordered ranges, not a scan of every group's entries.
    pub(super) fn owners_of(&self, group: &str, t: &str) -> Vec<String> {
        let prefix = OffsetTable::key(t, group);
        let committed = self
            .offsets
            .table
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix.as_str()))
            .filter_map(|k| k.strip_prefix(t)?.strip_prefix('@'))
            .filter(|o| of_group(o, group));
        // Owners whose only trace is acks of atomic blocks replayed since the open.
        let replayed = self
            .replayed_acks
            .keys()
            .filter(|(o, topic, _)| topic == t && of_group(o, group))
            .map(|(o, _, _)| o.as_str());
        let mut owners: Vec<String> = committed
            .chain(self.progress.owners_in(t, group))
            .chain(replayed)
            .map(str::to_string)
            .chain(self.pop.group(group, t).map(|g| g.name.clone()))
            .collect();
        owners.sort();
        owners.dedup();
        owners
    }

    /// How many messages of `owner` on (t, q) above its committed offset (`base`
    /// where none is known) are done already: acked out of order, or passed over by
    /// its tag filter.
    fn done_above_committed(&self, owner: &str, t: &str, q: u32, base: u64) -> u64 {
        match self.progress.get(&(owner.to_string(), t.to_string(), q)) {
            Some(p) => {
                let read = p.next.saturating_sub(p.committed());
                let in_flight = p.inflight.len() as u64;
                let ahead = p.acked_ahead.range(p.next..).count() as u64;
                read.saturating_sub(in_flight) + ahead
            }
            None => {
                // Acks of atomic blocks replayed on open, for a queue no reader
                // holds yet: done, not behind.
                let key = (owner.to_string(), t.to_string(), q);
                let from = self.offsets.get(t, owner, q).unwrap_or(base).max(base);
                let replayed = self
                    .replayed_acks
                    .get(&key)
                    .map_or(0, |acks| acks.range(from..).count() as u64);
                self.pop.done_above_committed(owner, t, q) + replayed
            }
        }
    }

    pub(super) fn committed(&self, owner: &str, t: &str, q: u32) -> Option<u64> {
        self.progress
            .get(&(owner.to_string(), t.to_string(), q))
            .map(QueueProgress::committed)
            .or_else(|| self.pop.committed(owner, t, q))
            .or_else(|| self.offsets.get(t, owner, q))
    }

    /// Messages of `t`'s queues not yet acked by `group` (the most behind consumer,
    /// for a broadcasting group). Its retries of them are the engine's to add
    /// (`engine/lag.rs`).
    pub fn lag(&self, store: &MessageStore, group: &str, t: &str) -> Result<u64> {
        topic::validate_group(group)?;
        topic::validate_topic(t)?;
        let Some(queues) = store.queues.topic(t) else {
            return Err(Error::TopicNotFound(t.to_string()));
        };
        let owners = self.owners_of(group, t);
        let lag_of = |owner: Option<&str>| -> u64 {
            queues
                .iter()
                .enumerate()
                .map(|(q, cq)| {
                    let q = q as u32;
                    let committed = owner.and_then(|o| self.committed(o, t, q));
                    let done = committed.unwrap_or(cq.min_offset()).max(cq.min_offset());
                    let behind = cq.max_offset().saturating_sub(done);
                    // Messages acked out of order above the committed offset are not
                    // behind (while retention has not passed the committed offset).
                    match owner {
                        Some(o) if committed.is_none_or(|c| c >= cq.min_offset()) => {
                            behind.saturating_sub(self.done_above_committed(o, t, q, done))
                        }
                        _ => behind,
                    }
                })
                .sum()
        };
        if owners.is_empty() {
            return Ok(lag_of(None));
        }
        Ok(owners.iter().map(|o| lag_of(Some(o))).max().unwrap_or(0))
    }

    /// Moves `group`'s offsets on `t` (every owner's, for a broadcasting group);
    /// what was in flight is forgotten.
    pub fn reset_offset(
        &mut self,
        store: &MessageStore,
        group: &str,
        t: &str,
        to: StartFrom,
        now: u64,
    ) -> Result<()> {
        topic::validate_group(group)?;
        topic::validate_topic(t)?;
        let queues = match store.queues.topic(t) {
            Some(q) => q.len() as u32,
            None => return Err(Error::TopicNotFound(t.to_string())),
        };
        let mut owners = self.owners_of(group, t);
        if owners.is_empty() {
            owners.push(group.to_string());
        }
        for owner in owners {
            for q in 0..queues {
                let target = match to {
                    // Searched also for a time ahead of now: the store may hold
                    // messages stamped later than this clock says (written under
                    // another clock). Past every message, the search gives the end.
                    StartFrom::Timestamp(ms) => Self::offset_at_time(store, t, q, ms),
                    _ => Self::start_offset(store, t, q, to, now),
                };
                self.offsets.set(t, &owner, q, target);
                self.pop.reset(&owner, t, q, target);
                let key = (owner.clone(), t.to_string(), q);
                // Acks from before the reset count no more: the group reads again.
                self.replayed_acks.remove(&key);
                if let Some(p) = self.progress.get_mut(&key) {
                    p.next = target;
                    p.inflight.clear();
                    p.acked_ahead.clear();
                    p.new_epoch();
                    p.orderly_retries = 0;
                    p.suspend_until = 0;
                }
            }
        }
        self.offsets_dirty = true;
        Ok(())
    }

    /// The offsets file, when offsets changed since the last call (or `all`).
    pub fn metadata(&mut self, all: bool) -> Result<Option<(&'static str, Vec<u8>)>> {
        if self.pop.moved {
            self.pop.moved = false;
            self.offsets_dirty = true;
        }
        if !(all || self.offsets_dirty) {
            return Ok(None);
        }
        for (t, g, q, base) in self.pop.bases() {
            self.offsets.set(t, g, q, base);
        }
        self.offsets.acked.clear();
        for ((owner, t, q), p) in self.progress.iter() {
            let committed = p.committed();
            self.offsets.set(t, owner, *q, committed);
            // Read and not in flight: acked (or passed over by the filter).
            let read = (committed..p.next).filter(|qo| !p.inflight.contains(*qo));
            let ahead = p.acked_ahead.range(p.next.max(committed)..).copied();
            let acked = runs(read.chain(ahead));
            if !acked.is_empty() {
                let key = OffsetTable::key(t, owner);
                self.offsets.acked.entry(key).or_default().insert(*q, acked);
            }
        }
        // Those of queues no reader has taken up since the open.
        for ((owner, t, q), set) in &self.replayed_acks {
            let from = self.offsets.get(t, owner, *q).unwrap_or(0);
            let acked = runs(set.range(from..).copied());
            if !acked.is_empty() {
                let key = OffsetTable::key(t, owner);
                self.offsets.acked.entry(key).or_default().insert(*q, acked);
            }
        }
        self.offsets_dirty = false;
        Ok(Some((OffsetTable::FILE, to_json(&self.offsets)?)))
    }
}
